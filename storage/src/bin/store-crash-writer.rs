//! Test helper for the embedded engine's crash-safety test: commits transactions from several
//! concurrent writers as fast as it can and prints `writer seq` on stdout after each commit is
//! acknowledged, until it is killed. Each transaction writes two keys, so a reader can also
//! check that no transaction was applied in part.
//!
//! Usage: `store-crash-writer DIR WRITERS FLUSH_BYTES`

use gigafactory_storage::{EmbeddedOptions, EmbeddedStore, Error, transact};
use std::io::Write;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: store-crash-writer DIR WRITERS FLUSH_BYTES");
    let writers: u32 = args
        .next()
        .and_then(|w| w.parse().ok())
        .expect("WRITERS is a number");
    let flush_bytes: usize = args
        .next()
        .and_then(|f| f.parse().ok())
        .expect("FLUSH_BYTES is a number");
    let store = EmbeddedStore::open_with(
        &dir,
        EmbeddedOptions {
            flush_bytes,
            ..EmbeddedOptions::default()
        },
    )
    .expect("open store");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u32, u64)>();
    for w in 0..writers {
        let (store, tx) = (store.clone(), tx.clone());
        tokio::spawn(async move {
            for seq in 0u64.. {
                let a = format!("crash/{w:03}/{seq:010}/a");
                let b = format!("crash/{w:03}/{seq:010}/b");
                let value = format!("{w}:{seq}");
                transact!(store, |tx| {
                    tx.set(a.as_bytes(), value.as_bytes())?;
                    tx.set(b.as_bytes(), value.as_bytes())?;
                    Ok::<_, Error>(())
                })
                .expect("commit");
                if tx.send((w, seq)).is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut out = std::io::stdout().lock();
    while let Some((w, seq)) = rx.recv().await {
        writeln!(out, "{w} {seq}").expect("stdout");
        out.flush().expect("stdout");
    }
}

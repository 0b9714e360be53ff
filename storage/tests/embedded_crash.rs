//! Crash safety of the embedded engine: a writer process is SIGKILLed at a random moment; after
//! reopening, every commit it acknowledged is present, no transaction is half applied, and the
//! whole file reads back.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gigafactory_storage::{EmbeddedStore, KeyRange, RangeOptions, transact};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const WRITERS: u32 = 8;
const SEEDS: [u64; 5] = [1, 2, 3, 4, 5];

#[test]
fn acknowledged_commits_survive_sigkill() {
    for seed in SEEDS {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = SmallRng::seed_from_u64(seed);
        // Let some runs die early (while the file is young) and some late.
        let kill_after = Duration::from_millis(rng.random_range(50..1500));
        let mut child = Command::new(env!("CARGO_BIN_EXE_store-crash-writer"))
            .arg(dir.path())
            .arg(WRITERS.to_string())
            // Small memtables: kills land before, during and after flushes into the base.
            .arg(rng.random_range(16_384..262_144).to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start writer");
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acked = vec![None::<u64>; WRITERS as usize];
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let (w, s) = line.split_once(' ').expect("writer prints 'w seq'");
                acked[w.parse::<usize>().unwrap()] = Some(s.parse().unwrap());
            }
            acked
        });
        let started = Instant::now();
        std::thread::sleep(kill_after);
        child.kill().expect("SIGKILL writer");
        child.wait().unwrap();
        let acked = reader.join().unwrap();
        let acked_total: u64 = acked.iter().map(|a| a.map_or(0, |s| s + 1)).sum();
        eprintln!(
            "seed {seed}: killed after {:?}, {acked_total} commits acknowledged",
            started.elapsed()
        );

        let store = EmbeddedStore::open(dir.path()).expect("reopen after crash");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for (w, last) in acked.iter().enumerate() {
                let Some(last) = *last else { continue };
                // The writer acknowledges in order, so every sequence up to the last printed
                // one was acknowledged.
                let range = KeyRange::prefix(format!("crash/{w:03}/").as_bytes());
                let mut begin = range.begin.clone();
                let mut seen = 0u64;
                loop {
                    let page = transact!(store, |tx| {
                        tx.get_range(
                            &KeyRange::new(begin.clone(), range.end.clone()),
                            RangeOptions::limit(10_000),
                        )
                        .await
                    })
                    .unwrap();
                    let Some((last_key, _)) = page.last() else {
                        break;
                    };
                    begin = KeyRange::single(last_key).end;
                    for pair in page.chunks(2) {
                        assert_eq!(pair.len(), 2, "seed {seed}: a transaction was half applied");
                        let (a, b) = (&pair[0], &pair[1]);
                        assert!(
                            a.0.ends_with(b"/a") && b.0.ends_with(b"/b"),
                            "seed {seed}: a transaction was half applied"
                        );
                        assert_eq!(a.0[..a.0.len() - 2], b.0[..b.0.len() - 2]);
                        assert_eq!(
                            a.1,
                            format!("{w}:{seen}").into_bytes(),
                            "seed {seed}: wrong value"
                        );
                        assert_eq!(a.1, b.1);
                        seen += 1;
                    }
                }
                // Everything acknowledged is there; at most the in-flight batch may be extra.
                assert!(
                    seen > last,
                    "seed {seed}: writer {w} acknowledged {} commits, {seen} survived",
                    last + 1
                );
            }
        });
    }
}

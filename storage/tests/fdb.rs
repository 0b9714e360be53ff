//! The conformance suite on the FoundationDB cluster named by `FDB_CLUSTER_FILE`, each test in
//! a random namespace of its own, cleared when the test ends. Without that variable there is no
//! cluster to check: every test returns at once, after one line on stderr saying so. Building
//! this binary needs libfdb_c; where it is missing, `cargo check --tests` type-checks it.

#![cfg(feature = "fdb")]

mod suite;

use std::io::Write as _;
use std::sync::{Once, OnceLock};

use gigafactory_storage::{FdbStore, KeyRange, transact};

/// Every test namespace lives under this one, so one prefix clear from a handle on it removes
/// all of a test's keys, its watch counters included. (Namespaces must not nest for stores that
/// both read and write; the handle on this one only clears.)
const PARENT_NAMESPACE: &[u8] = b"gigafactory-test/";
/// The prefix the suite watches: FoundationDB prefix watches are registered at open.
const WATCHED_PREFIX: &[u8] = b"w/p/";

/// A store in a fresh namespace, or `None` (said once on stderr) without a cluster.
fn open() -> Option<(FdbStore, ClearOnDrop)> {
    let Ok(cluster_file) = std::env::var("FDB_CLUSTER_FILE") else {
        static SAID: Once = Once::new();
        SAID.call_once(|| {
            // Written to the handle, not with `eprintln!`, which the test harness captures and
            // hides for passing tests: this line must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "FDB_CLUSTER_FILE not set: skipping FoundationDB conformance"
            );
        });
        return None;
    };
    static PARENT: OnceLock<FdbStore> = OnceLock::new();
    let parent = PARENT
        .get_or_init(|| {
            FdbStore::with_namespace(&cluster_file, PARENT_NAMESPACE)
                .expect("open the FoundationDB test namespace")
        })
        .clone();
    let child = format!("{:016x}/", rand::random::<u64>()).into_bytes();
    let namespace = [PARENT_NAMESPACE, &child].concat();
    let store = FdbStore::with_namespace(&cluster_file, &namespace)
        .expect("open a FoundationDB store")
        .with_watch_prefixes(vec![WATCHED_PREFIX.to_vec()]);
    Some((store, ClearOnDrop { parent, child }))
}

/// Clears one test's namespace when the test ends, passed or failed.
struct ClearOnDrop {
    parent: FdbStore,
    child: Vec<u8>,
}

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        let parent = self.parent.clone();
        let child = std::mem::take(&mut self.child);
        // A thread with its own runtime: drop cannot await, and it runs inside the test's
        // runtime, which cannot block on a nested one.
        let cleared = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                transact!(parent, |tx| tx.clear_range(&KeyRange::prefix(&child)))
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        // Never panic here: this may run while a failed test unwinds.
        match cleared {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("cannot clear a FoundationDB test namespace: {e}"),
            Err(_) => eprintln!("clearing a FoundationDB test namespace panicked"),
        }
    }
}

conformance_suite!(match open() {
    Some(opened) => opened,
    None => return,
});

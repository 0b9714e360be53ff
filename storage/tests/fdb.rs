//! The conformance suite on the FoundationDB cluster named by `FDB_CLUSTER_FILE`, and what only
//! this engine has (the prefix-watch registry in the store), each test in a random namespace of
//! its own, cleared when the test ends. Without that variable there is no
//! cluster to check: every test returns at once, after one line on stderr saying so. Building
//! this binary needs libfdb_c; where it is missing, `cargo check --tests` type-checks it.

#![cfg(feature = "fdb")]

mod suite;

use std::io::Write as _;
use std::sync::{Once, OnceLock};

use gigafactory_storage::{FdbStore, KeyRange, Store, Watch, WatchTarget, transact};

/// Every test namespace lives under this one, so one prefix clear from a handle on it removes
/// all of a test's keys, its watch counters included. (Namespaces must not nest for stores that
/// both read and write; the handle on this one only clears.)
const PARENT_NAMESPACE: &[u8] = b"gigafactory-test/";
/// The prefix the suite watches: FoundationDB prefix watches must be registered.
const WATCHED_PREFIX: &[u8] = b"w/p/";

/// A fresh namespace on the cluster, cleared when the guard drops, or `None` (said once on
/// stderr) without a cluster.
fn fresh_namespace() -> Option<(String, Vec<u8>, ClearOnDrop)> {
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
    Some((cluster_file, namespace, ClearOnDrop { parent, child }))
}

/// A store in a fresh namespace, its watched prefix registered.
fn open() -> Option<(FdbStore, ClearOnDrop)> {
    let (cluster_file, namespace, clear) = fresh_namespace()?;
    let store = FdbStore::with_namespace(&cluster_file, &namespace)
        .expect("open a FoundationDB store")
        .with_watch_prefixes(vec![WATCHED_PREFIX.to_vec()]);
    Some((store, clear))
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

/// Arms a watch on the watched prefix through a handle on `namespace` that registers it.
async fn watch_the_prefix(cluster_file: &str, namespace: &[u8]) -> Watch {
    let watcher = FdbStore::with_namespace(cluster_file, namespace)
        .unwrap()
        .with_watch_prefixes(vec![WATCHED_PREFIX.to_vec()]);
    watcher
        .watch(WatchTarget::Prefix(WATCHED_PREFIX.to_vec()))
        .await
        .unwrap()
}

async fn assert_fires(watch: Watch) {
    tokio::time::timeout(suite::FIRE_DEADLINE, watch)
        .await
        .expect("prefix watch fired")
        .unwrap();
}

/// The registry lives in the store: a handle opened without `with_watch_prefixes` bumps the
/// counters of prefixes another handle registered, so prefix watches see its writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_opened_without_watch_prefixes_still_wakes_prefix_watchers() {
    let Some((cluster_file, namespace, _clear)) = fresh_namespace() else {
        return;
    };
    let watch = watch_the_prefix(&cluster_file, &namespace).await;
    let writer = FdbStore::with_namespace(&cluster_file, &namespace).unwrap();
    transact!(writer, |tx| tx.set(b"w/p/from-plain-handle", b"1")).unwrap();
    assert_fires(watch).await;
}

/// A handle that read the registry before a prefix was registered learns of it at its next
/// writing commit (which conflicts once and runs again), so that write wakes the watcher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_after_a_handle_started_reaches_its_next_write() {
    let Some((cluster_file, namespace, _clear)) = fresh_namespace() else {
        return;
    };
    let writer = FdbStore::with_namespace(&cluster_file, &namespace).unwrap();
    transact!(writer, |tx| tx.set(b"before", b"1")).unwrap();
    let watch = watch_the_prefix(&cluster_file, &namespace).await;
    transact!(writer, |tx| tx.set(b"w/p/after", b"1")).unwrap();
    assert_fires(watch).await;
}

/// Watching a prefix nobody registered is a configuration error, not a watch that never fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_an_unregistered_prefix_is_refused() {
    let Some((store, _clear)) = open() else {
        return;
    };
    assert!(matches!(
        store.watch(WatchTarget::Prefix(b"never/".to_vec())).await,
        Err(gigafactory_storage::Error::Config(_))
    ));
}

//! The conformance suite: the same behaviour asked of every engine. Each test is a generic
//! function over `Store`; `conformance_suite!` instantiates all of them for one engine.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use gigafactory_storage::limits::RANGE_MAX_ROWS;
use gigafactory_storage::{
    Error, KeyRange, RangeOptions, RetryPolicy, Store, Transaction, WatchTarget, transact,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

pub mod faulty;
mod limits;

pub use limits::*;

/// How long a test waits for a watch that must fire.
pub const FIRE_DEADLINE: Duration = Duration::from_secs(10);
/// How long a test watches for a notification that must not come.
pub const QUIET_WINDOW: Duration = Duration::from_millis(300);

pub fn k(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

pub async fn put<S: Store>(store: &S, key: &[u8], value: &[u8]) {
    transact!(store, |tx| tx.set(key, value)).expect("put");
}

pub async fn read<S: Store>(store: &S, key: &[u8]) -> Option<Vec<u8>> {
    transact!(store, |tx| tx.get(key).await).expect("read")
}

pub async fn scan<S: Store>(store: &S, range: &KeyRange) -> Vec<(Vec<u8>, Vec<u8>)> {
    transact!(store, |tx| {
        tx.get_range(range, RangeOptions::limit(RANGE_MAX_ROWS))
            .await
    })
    .expect("scan")
}

fn i64_of(v: &[u8]) -> i64 {
    i64::from_le_bytes(v.try_into().expect("8-byte counter"))
}

pub async fn reads_its_own_writes<S: Store>(store: S) {
    put(&store, b"a", b"stored").await;
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.get(b"a").await.unwrap(), Some(k("stored")));
    tx.set(b"a", b"mine").unwrap();
    tx.set(b"b", b"new").unwrap();
    assert_eq!(tx.get(b"a").await.unwrap(), Some(k("mine")));
    assert_eq!(tx.get(b"b").await.unwrap(), Some(k("new")));
    tx.clear(b"a").unwrap();
    assert_eq!(tx.get(b"a").await.unwrap(), None);
    let rows = tx
        .get_range(&KeyRange::new(k("a"), k("z")), RangeOptions::limit(10))
        .await
        .unwrap();
    assert_eq!(rows, vec![(k("b"), k("new"))]);
    // Another transaction sees nothing until commit.
    assert_eq!(read(&store, b"b").await, None);
    tx.commit().await.unwrap();
    assert_eq!(read(&store, b"a").await, None);
    assert_eq!(read(&store, b"b").await, Some(k("new")));
}

pub async fn range_reads_come_in_key_order_both_ways<S: Store>(store: S) {
    let mut rng = SmallRng::seed_from_u64(7);
    let mut keys: Vec<u32> = (0..200).collect();
    for i in (1..keys.len()).rev() {
        keys.swap(i, rng.random_range(0..=i));
    }
    for chunk in keys.chunks(50) {
        transact!(store, |tx| {
            for n in chunk {
                tx.set(format!("r/{n:05}").as_bytes(), &n.to_le_bytes())?;
            }
            Ok::<_, Error>(())
        })
        .unwrap();
    }
    put(&store, b"q", b"outside").await;
    put(&store, b"s", b"outside").await;
    let range = KeyRange::prefix(b"r/");
    let all = scan(&store, &range).await;
    let want: Vec<Vec<u8>> = (0..200u32)
        .map(|n| format!("r/{n:05}").into_bytes())
        .collect();
    assert_eq!(all.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), want);

    let mut tx = store.begin().await.unwrap();
    let first = tx.get_range(&range, RangeOptions::limit(3)).await.unwrap();
    assert_eq!(
        first.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        want[..3].to_vec()
    );
    let last = tx
        .get_range(&range, RangeOptions::limit(3).reverse())
        .await
        .unwrap();
    let want_last: Vec<Vec<u8>> = want.iter().rev().take(3).cloned().collect();
    assert_eq!(
        last.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        want_last
    );
    // The end bound is exclusive.
    let half = tx
        .get_range(
            &KeyRange::new(k("r/00010"), k("r/00020")),
            RangeOptions::limit(100),
        )
        .await
        .unwrap();
    assert_eq!(half.len(), 10);
    assert_eq!(half[0].0, k("r/00010"));
    assert_eq!(half[9].0, k("r/00019"));
}

pub async fn range_reads_merge_buffered_writes_and_clears<S: Store>(store: S) {
    transact!(store, |tx| {
        for n in 0..50u32 {
            tx.set(format!("m/{n:03}").as_bytes(), b"stored")?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.clear_range(&KeyRange::new(k("m/000"), k("m/040")))
        .unwrap();
    tx.set(b"m/005", b"mine").unwrap();
    tx.set(b"m/0455", b"mine").unwrap();
    tx.clear(b"m/041").unwrap();
    tx.atomic_add(b"m/042", 1).unwrap();
    let rows = tx
        .get_range(&KeyRange::prefix(b"m/"), RangeOptions::limit(4))
        .await
        .unwrap();
    let keys: Vec<Vec<u8>> = rows.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys, vec![k("m/005"), k("m/040"), k("m/042"), k("m/043")]);
    assert_eq!(rows[0].1, k("mine"));
    let rev = tx
        .get_range(&KeyRange::prefix(b"m/"), RangeOptions::limit(100).reverse())
        .await
        .unwrap();
    assert_eq!(rev.len(), 1 + 1 + 8 + 1); // m/005, m/040, m/042..m/049, m/0455
    assert_eq!(rev.last().unwrap().0, k("m/005"));
    assert!(rev.iter().any(|(k, _)| k == b"m/0455"));
    tx.commit().await.unwrap();
    let after = scan(&store, &KeyRange::prefix(b"m/")).await;
    assert_eq!(after.len(), 11);
}

pub async fn clear_range_removes_only_its_range<S: Store>(store: S) {
    for key in ["c/a", "c/b", "c/c", "c/d", "d"] {
        put(&store, key.as_bytes(), b"x").await;
    }
    transact!(store, |tx| tx
        .clear_range(&KeyRange::new(k("c/b"), k("c/d"))))
    .unwrap();
    let left: Vec<Vec<u8>> = scan(&store, &KeyRange::new(k("c"), k("e")))
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(left, vec![k("c/a"), k("c/d"), k("d")]);
}

pub async fn atomic_add_sums_concurrent_increments<S: Store>(store: S) {
    let tasks = 16;
    let per_task = 25;
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..per_task {
                transact!(store, |tx| tx.atomic_add(b"counter", 3)).unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let total = read(&store, b"counter").await.expect("counter exists");
    assert_eq!(i64_of(&total), 3 * tasks * per_task);
}

pub async fn atomic_add_is_visible_to_its_own_transaction<S: Store>(store: S) {
    put(&store, b"n", &40i64.to_le_bytes()).await;
    let mut tx = store.begin().await.unwrap();
    tx.atomic_add(b"n", 2).unwrap();
    assert_eq!(i64_of(&tx.get(b"n").await.unwrap().unwrap()), 42);
    tx.atomic_add(b"fresh", -5).unwrap();
    assert_eq!(i64_of(&tx.get(b"fresh").await.unwrap().unwrap()), -5);
    tx.commit().await.unwrap();
    assert_eq!(i64_of(&read(&store, b"n").await.unwrap()), 42);
}

/// Outcome counts of a transfer workload.
#[derive(Debug, Default)]
pub struct TransferRun {
    pub committed: u64,
    pub unknown: u64,
}

pub const ACCOUNTS: usize = 50;
pub const ACCOUNT_START: i64 = 1_000;

fn account(n: usize) -> Vec<u8> {
    format!("acct/{n:03}").into_bytes()
}

/// Each account holds (balance, number of transfers that touched it).
fn encode_account(balance: i64, touches: i64) -> Vec<u8> {
    let mut v = balance.to_le_bytes().to_vec();
    v.extend_from_slice(&touches.to_le_bytes());
    v
}

fn decode_account(v: &[u8]) -> (i64, i64) {
    (i64_of(&v[..8]), i64_of(&v[8..16]))
}

pub async fn seed_accounts<S: Store>(store: &S) {
    transact!(store, |tx| {
        for n in 0..ACCOUNTS {
            tx.set(&account(n), &encode_account(ACCOUNT_START, 0))?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// `tasks` tasks each run `per_task` transfers between random accounts. A commit whose outcome
/// is unknown is counted, not retried.
pub async fn run_transfers<S: Store>(
    store: &S,
    tasks: u64,
    per_task: u64,
    seed: u64,
) -> TransferRun {
    let committed = Arc::new(AtomicU64::new(0));
    let unknown = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = store.clone();
        let (committed, unknown) = (committed.clone(), unknown.clone());
        handles.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(seed ^ (t * 7919));
            for _ in 0..per_task {
                let from = rng.random_range(0..ACCOUNTS);
                let to = (from + rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
                let amount = rng.random_range(1..200i64);
                let policy = RetryPolicy {
                    attempts_max: 1_000,
                    ..RetryPolicy::default()
                };
                let outcome = transact!(store, policy, |tx| {
                    let (fb, ft) = decode_account(&tx.get(&account(from)).await?.expect("seeded"));
                    let (tb, tt) = decode_account(&tx.get(&account(to)).await?.expect("seeded"));
                    let moved = amount.min(fb);
                    tx.set(&account(from), &encode_account(fb - moved, ft + 1))?;
                    tx.set(&account(to), &encode_account(tb + moved, tt + 1))?;
                    Ok::<_, Error>(())
                });
                match outcome {
                    Ok(()) => committed.fetch_add(1, Ordering::Relaxed),
                    Err(Error::CommitUnknown(_)) => unknown.fetch_add(1, Ordering::Relaxed),
                    Err(e) => panic!("transfer failed: {e}"),
                };
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    TransferRun {
        committed: committed.load(Ordering::Relaxed),
        unknown: unknown.load(Ordering::Relaxed),
    }
}

/// Sum of balances and of touches over all accounts, read in one transaction.
pub async fn account_totals<S: Store>(store: &S) -> (i64, i64) {
    let rows = scan(store, &KeyRange::prefix(b"acct/")).await;
    assert_eq!(rows.len(), ACCOUNTS);
    rows.iter()
        .map(|(_, v)| decode_account(v))
        .fold((0, 0), |(b, t), (vb, vt)| (b + vb, t + vt))
}

pub async fn concurrent_transfers_keep_the_total_and_lose_no_update<S: Store>(store: S) {
    seed_accounts(&store).await;
    let run = run_transfers(&store, 16, 40, 42).await;
    assert_eq!(run.unknown, 0);
    let (balance, touches) = account_totals(&store).await;
    assert_eq!(
        balance,
        ACCOUNTS as i64 * ACCOUNT_START,
        "money was created or destroyed"
    );
    // Every committed transfer touched two accounts; a lost update would lose a touch.
    assert_eq!(touches, 2 * run.committed as i64, "an update was lost");
}

pub async fn two_inserts_into_a_range_both_read_empty_cannot_both_commit<S: Store>(store: S) {
    let range = KeyRange::prefix(b"slot/");
    let mut t1 = store.begin().await.unwrap();
    let mut t2 = store.begin().await.unwrap();
    assert!(
        t1.get_range(&range, RangeOptions::limit(1))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        t2.get_range(&range, RangeOptions::limit(1))
            .await
            .unwrap()
            .is_empty()
    );
    t1.set(b"slot/1", b"t1").unwrap();
    t2.set(b"slot/2", b"t2").unwrap();
    t1.commit().await.unwrap();
    assert_eq!(t2.commit().await, Err(Error::Conflict));
    assert_eq!(scan(&store, &range).await, vec![(k("slot/1"), k("t1"))]);
}

pub async fn write_skew_is_refused<S: Store>(store: S) {
    put(&store, b"x", b"0").await;
    put(&store, b"y", b"0").await;
    let mut t1 = store.begin().await.unwrap();
    let mut t2 = store.begin().await.unwrap();
    for t in [&mut t1, &mut t2] {
        t.get(b"x").await.unwrap();
        t.get(b"y").await.unwrap();
    }
    t1.set(b"x", b"1").unwrap();
    t2.set(b"y", b"1").unwrap();
    t1.commit().await.unwrap();
    assert_eq!(t2.commit().await, Err(Error::Conflict));
}

pub async fn a_deleted_key_that_was_read_is_a_conflict<S: Store>(store: S) {
    put(&store, b"gone", b"here").await;
    let mut t1 = store.begin().await.unwrap();
    assert!(t1.get(b"gone").await.unwrap().is_some());
    transact!(store, |tx| tx.clear(b"gone")).unwrap();
    t1.set(b"other", b"1").unwrap();
    assert_eq!(t1.commit().await, Err(Error::Conflict));
}

pub async fn snapshot_reads_add_no_conflict<S: Store>(store: S) {
    put(&store, b"s", b"0").await;
    let mut t1 = store.begin().await.unwrap();
    t1.get_snapshot(b"s").await.unwrap();
    t1.get_range(&KeyRange::prefix(b"s"), RangeOptions::limit(10).snapshot())
        .await
        .unwrap();
    put(&store, b"s", b"1").await;
    t1.set(b"t", b"1").unwrap();
    t1.commit().await.unwrap();
}

pub async fn retry_exhaustion_is_a_typed_error<S: Store>(store: S) {
    put(&store, b"hot", b"0").await;
    let runs = AtomicU32::new(0);
    let policy = RetryPolicy {
        attempts_max: 3,
        ..RetryPolicy::default()
    };
    let outcome = transact!(store, policy, |tx| {
        runs.fetch_add(1, Ordering::Relaxed);
        tx.get(b"hot").await?;
        // Someone else changes what this attempt read before it commits.
        put(&store, b"hot", b"changed").await;
        tx.set(b"cold", b"1")
    });
    assert_eq!(outcome, Err(Error::RetryLimitReached { attempts: 3 }));
    assert_eq!(runs.load(Ordering::Relaxed), 3);
    assert_eq!(read(&store, b"cold").await, None);
}

pub async fn an_unknown_commit_outcome_is_reported_not_retried<S: Store>(store: S) {
    let faulty = faulty::Faulty::new(store.clone(), faulty::Fault::UnknownAfterCommit);
    let runs = AtomicU32::new(0);
    let outcome = transact!(faulty, |tx| {
        runs.fetch_add(1, Ordering::Relaxed);
        tx.atomic_add(b"applied", 1)
    });
    assert!(
        matches!(outcome, Err(Error::CommitUnknown(_))),
        "{outcome:?}"
    );
    assert_eq!(runs.load(Ordering::Relaxed), 1);
    assert_eq!(read(&store, b"applied").await.map(|v| i64_of(&v)), Some(1));
}

pub async fn a_body_that_met_a_conflict_is_retried_whatever_it_returned<S: Store>(store: S) {
    let faulty = faulty::Faulty::new(store.clone(), faulty::Fault::ConflictOnFirstRead);
    let runs = AtomicU32::new(0);
    let outcome = transact!(faulty, |tx| {
        runs.fetch_add(1, Ordering::Relaxed);
        // The body swallows the conflict and fails its own way: the transaction still knows.
        if tx.get(b"seen").await.is_err() {
            return Err(Error::Engine("the caller's own error".into()));
        }
        tx.set(b"seen", b"1")
    });
    assert_eq!(outcome, Ok(()));
    assert_eq!(runs.load(Ordering::Relaxed), 2);
    assert_eq!(read(&store, b"seen").await, Some(k("1")));
}

async fn assert_quiet(watch: gigafactory_storage::Watch) -> gigafactory_storage::Watch {
    let mut watch = watch;
    let quiet = tokio::time::timeout(QUIET_WINDOW, &mut watch).await;
    assert!(quiet.is_err(), "watch fired with no change to its target");
    watch
}

pub async fn watches_fire_on_change_and_only_then<S: Store>(store: S) {
    put(&store, b"w/key", b"0").await;
    let watch = store.watch(WatchTarget::Key(k("w/key"))).await.unwrap();
    put(&store, b"w/other", b"0").await;
    let watch = assert_quiet(watch).await;
    put(&store, b"w/key", b"1").await;
    tokio::time::timeout(FIRE_DEADLINE, watch)
        .await
        .expect("watch fired")
        .unwrap();
    // Re-armed, it does not fire again for the change it already reported.
    let rearmed = store.watch(WatchTarget::Key(k("w/key"))).await.unwrap();
    assert_quiet(rearmed).await;

    let prefix = store.watch(WatchTarget::Prefix(k("w/p/"))).await.unwrap();
    put(&store, b"w/q", b"0").await;
    let prefix = assert_quiet(prefix).await;
    put(&store, b"w/p/a1", b"0").await;
    tokio::time::timeout(FIRE_DEADLINE, prefix)
        .await
        .expect("prefix watch fired")
        .unwrap();
    // Clearing a range that holds a key under the prefix is a change too.
    let prefix = store.watch(WatchTarget::Prefix(k("w/p/"))).await.unwrap();
    transact!(store, |tx| tx
        .clear_range(&KeyRange::new(k("w/p/a"), k("w/p/b"))))
    .unwrap();
    tokio::time::timeout(FIRE_DEADLINE, prefix)
        .await
        .expect("prefix watch fired on clear")
        .unwrap();
}

pub async fn a_watch_fires_for_a_change_after_its_read_version<S: Store>(store: S) {
    put(&store, b"late", b"0").await;
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.get(b"late").await.unwrap(), Some(k("0")));
    put(&store, b"late", b"1").await;
    let watch = tx.watch(WatchTarget::Key(k("late"))).await.unwrap();
    tokio::time::timeout(FIRE_DEADLINE, watch)
        .await
        .expect("missed change reported")
        .unwrap();
}

/// Instantiates every conformance test for one engine. `$open` is an async expression giving
/// `(store, guard)`; the guard keeps the store's resources alive for the test.
#[macro_export]
macro_rules! conformance_suite {
    ($open:expr) => {
        $crate::conformance_suite!(@tests $open;
            reads_its_own_writes,
            range_reads_come_in_key_order_both_ways,
            range_reads_merge_buffered_writes_and_clears,
            clear_range_removes_only_its_range,
            atomic_add_sums_concurrent_increments,
            atomic_add_is_visible_to_its_own_transaction,
            concurrent_transfers_keep_the_total_and_lose_no_update,
            two_inserts_into_a_range_both_read_empty_cannot_both_commit,
            write_skew_is_refused,
            a_deleted_key_that_was_read_is_a_conflict,
            snapshot_reads_add_no_conflict,
            retry_exhaustion_is_a_typed_error,
            an_unknown_commit_outcome_is_reported_not_retried,
            watches_fire_on_change_and_only_then,
            a_watch_fires_for_a_change_after_its_read_version,
            oversized_writes_are_refused_and_write_nothing,
            a_body_that_met_a_conflict_is_retried_whatever_it_returned,
            a_transaction_charged_the_limit_commits_and_one_byte_more_does_not,
            reserved_keys_cannot_be_written_read_or_watched,
        );
        #[tokio::test]
        async fn a_transaction_past_its_time_limit_is_refused() {
            let (store, _guard) = $open;
            $crate::suite::a_transaction_past_its_time_limit_is_refused(store).await;
        }
    };
    (@tests $open:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = $open;
                $crate::suite::$name(store).await;
            }
        )*
    };
}

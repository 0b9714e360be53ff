//! The conformance suite on a real three-member etcd cluster started on loopback ports, and the
//! same workload while a member is killed and restarted.

#![cfg(feature = "etcd")]

mod suite;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use gigafactory_storage::{EtcdStore, LocalEtcdCluster};

/// One cluster for the whole test binary; each test gets its own key namespace.
fn cluster() -> &'static LocalEtcdCluster {
    static CLUSTER: OnceLock<LocalEtcdCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| LocalEtcdCluster::start(3).expect("start a 3-member etcd cluster"))
}

fn open() -> (EtcdStore, ()) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let ns = format!(
        "test-{}-{}/",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    (
        EtcdStore::new(&cluster().endpoints(), ns.as_bytes()).expect("etcd store"),
        (),
    )
}

conformance_suite!(open());

/// The transfer workload keeps its invariants while one member is SIGKILLed and restarted.
/// Commits in flight at the kill may end with an unknown outcome: they are counted, and the
/// touch count must lie between what was acknowledged and what might have applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_stay_serializable_while_a_member_is_killed_and_restarted() {
    let mut own =
        tokio::task::spawn_blocking(|| LocalEtcdCluster::start(3).expect("start cluster"))
            .await
            .unwrap();
    let store = EtcdStore::new(&own.endpoints(), b"restart/").unwrap();
    suite::seed_accounts(&store).await;
    let workload = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut total = suite::TransferRun::default();
            for round in 0..6 {
                let run = suite::run_transfers(&store, 8, 15, round).await;
                total.committed += run.committed;
                total.unknown += run.unknown;
            }
            total
        })
    };
    for victim in [0, 2] {
        let mut c = own;
        own = tokio::task::spawn_blocking(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            c.kill(victim).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(700));
            c.restart(victim).unwrap();
            c
        })
        .await
        .unwrap();
    }
    let run = workload.await.unwrap();
    eprintln!(
        "member restarts: {} transfers acknowledged, {} unknown",
        run.committed, run.unknown
    );
    let (balance, touches) = suite::account_totals(&store).await;
    assert_eq!(balance, suite::ACCOUNTS as i64 * suite::ACCOUNT_START);
    let applied = touches / 2;
    assert!(
        applied >= run.committed as i64 && applied <= (run.committed + run.unknown) as i64,
        "{applied} transfers applied, {} acknowledged, {} unknown",
        run.committed,
        run.unknown
    );
    assert!(run.committed > 0);
    drop(own);
}

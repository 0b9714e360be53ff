//! One round trip per job: an end that asks for the factory's next jobs (`claim_next`) leases
//! them in its own transaction, and only when the end itself applies: a stale epoch's end, or
//! a retry answered from its first answer, leases nothing and leaves the queue as it was.

mod common;

use std::sync::Arc;

use gigafactory_actors::{Config, CoordError, Coordinator, SystemClock};
use gigafactory_core::event::Author;
use gigafactory_core::job::{Command, FactoryId, JobId};
use gigafactory_core::manifest::JobSpec;
use gigafactory_core::wire::{ClaimNext, EndAnswer};
use gigafactory_storage::AnyStore;

fn tester() -> Author {
    Author::Operator("test".into())
}

async fn start(dir: &std::path::Path) -> Coordinator {
    let store = AnyStore::open(&format!("embedded:{}", dir.display())).unwrap();
    let config = Config {
        stats_sample_interval_ms: 20,
        ..Config::default()
    };
    Coordinator::start(store, config, Arc::new(SystemClock))
        .await
        .unwrap()
}

async fn submit(coord: &Coordinator, key: &str, priority: u32) -> JobId {
    let spec: JobSpec = serde_json::from_value(serde_json::json!({
        "key": key, "title": key, "product": "t", "priority": priority,
        "payload": {"command": "true"}
    }))
    .unwrap();
    coord.submit(spec, vec![], &tester()).await.unwrap().0.id
}

/// Completes `job` under `epoch` as `factory` with request id `rid`, asking for `max` next jobs.
async fn complete_and_claim(
    coord: &Coordinator,
    factory: FactoryId,
    job: JobId,
    epoch: u64,
    rid: &str,
    max: u32,
) -> Result<EndAnswer, CoordError> {
    let cmd = Command::Complete { factory, epoch };
    let next = Some(ClaimNext { max_jobs: max });
    coord
        .factory_end(job, cmd, rid.into(), vec![], vec![], next)
        .await
}

async fn queued(coord: &Coordinator) -> usize {
    coord.scheduler_snapshot().await.unwrap().queued
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_carries_the_next_lease_granted_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let coord = start(dir.path()).await;
    let f = common::enroll(&coord, 2, 0.0).await.factory_id;
    let first = submit(&coord, "first", 900).await;
    let second = submit(&coord, "second", 500).await;
    let third = submit(&coord, "third", 100).await;
    let claimed = coord.claim(f, 1, 1_000).await.unwrap();
    assert_eq!(claimed[0].job_id, first);

    let end = complete_and_claim(&coord, f, first, 1, "r1", 1)
        .await
        .unwrap();
    assert_eq!(end.lease.state, "succeeded");
    assert_eq!(end.next.len(), 1, "one job asked for, one leased");
    assert_eq!(end.next[0].job_id, second, "placement order holds");
    assert_eq!(end.next[0].epoch, 1);
    let leased = coord.job(second).await.unwrap();
    assert_eq!(leased.state.lease().map(|l| l.factory), Some(f));
    assert_eq!(leased.epoch, 1);
    assert_eq!(queued(&coord).await, 1);

    // Two slots asked for, one job left: the answer carries what there is.
    let end = complete_and_claim(&coord, f, second, 1, "r2", 2)
        .await
        .unwrap();
    assert_eq!(
        end.next.iter().map(|j| j.job_id).collect::<Vec<_>>(),
        vec![third]
    );
    // The stats count a job leased with an end as a claim, as the overview's chart shows it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while coord.stats_history(None).last().map(|s| s.claims_total) != Some(3) {
        assert!(std::time::Instant::now() < deadline, "claims not counted");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Nothing queued: the end applies and carries no lease.
    let end = complete_and_claim(&coord, f, third, 1, "r3", 1)
        .await
        .unwrap();
    assert_eq!(end.lease.state, "succeeded");
    assert!(end.next.is_empty());
    assert_eq!(coord.job(third).await.unwrap().state.name(), "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_epochs_complete_gets_no_next_lease_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let coord = start(dir.path()).await;
    let f = common::enroll(&coord, 2, 0.0).await.factory_id;
    let job = submit(&coord, "job", 500).await;
    assert_eq!(coord.claim(f, 1, 1_000).await.unwrap()[0].epoch, 1);
    coord
        .act(
            job,
            gigafactory_core::job::Action::Requeue.into(),
            &tester(),
        )
        .await
        .unwrap();
    let again = coord.claim(f, 1, 1_000).await.unwrap();
    assert_eq!(again[0].job_id, job);
    assert!(
        again[0].epoch > 1,
        "the requeue and the claim moved the epoch on"
    );
    let waiting = submit(&coord, "waiting", 500).await;
    let before = coord.job(job).await.unwrap();

    let stale = complete_and_claim(&coord, f, job, 1, "stale", 1).await;
    assert!(
        matches!(stale, Err(CoordError::Fenced { .. })),
        "epoch 1 is stale: {stale:?}"
    );
    let after = coord.job(job).await.unwrap();
    assert_eq!(
        (after.state.name(), after.epoch),
        (before.state.name(), before.epoch)
    );
    let untouched = coord.job(waiting).await.unwrap();
    assert_eq!((untouched.state.name(), untouched.epoch), ("queued", 0));
    // The job placed for the refused end went back to the queue: the next claim gets it.
    assert_eq!(queued(&coord).await, 1);
    let claimed = coord.claim(f, 1, 1_000).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!((claimed[0].job_id, claimed[0].epoch), (waiting, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_complete_is_answered_again_without_leasing_more() {
    let dir = tempfile::tempdir().unwrap();
    let coord = start(dir.path()).await;
    let f = common::enroll(&coord, 1, 0.0).await.factory_id;
    let job = submit(&coord, "job", 900).await;
    let next = submit(&coord, "next", 500).await;
    let later = submit(&coord, "later", 100).await;
    coord.claim(f, 1, 1_000).await.unwrap();

    let first = complete_and_claim(&coord, f, job, 1, "once", 1)
        .await
        .unwrap();
    assert_eq!(first.next[0].job_id, next);
    let retry = complete_and_claim(&coord, f, job, 1, "once", 1)
        .await
        .unwrap();
    assert_eq!(retry.lease, first.lease, "the first answer, again");
    assert!(retry.next.is_empty(), "a retry leases nothing more");
    let still = coord.job(later).await.unwrap();
    assert_eq!((still.state.name(), still.epoch), ("queued", 0));
    assert_eq!(queued(&coord).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_factorys_complete_applies_and_leases_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let coord = start(dir.path()).await;
    let f = common::enroll(&coord, 1, 0.0).await.factory_id;
    let job = submit(&coord, "job", 900).await;
    let other = submit(&coord, "other", 100).await;
    coord.claim(f, 1, 1_000).await.unwrap();
    coord.drain_factory(f).await.unwrap();

    let end = complete_and_claim(&coord, f, job, 1, "r", 1).await.unwrap();
    assert_eq!(end.lease.state, "succeeded");
    assert!(end.next.is_empty());
    assert_eq!(coord.job(other).await.unwrap().state.name(), "queued");
    assert_eq!(queued(&coord).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_for_no_next_job_is_refused_and_the_end_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let coord = start(dir.path()).await;
    let f = common::enroll(&coord, 1, 0.0).await.factory_id;
    let job = submit(&coord, "job", 900).await;
    coord.claim(f, 1, 1_000).await.unwrap();

    let refused = complete_and_claim(&coord, f, job, 1, "r", 0).await;
    assert!(
        matches!(refused, Err(CoordError::Invalid(_))),
        "{refused:?}"
    );
    assert_eq!(coord.job(job).await.unwrap().state.name(), "leased");
}

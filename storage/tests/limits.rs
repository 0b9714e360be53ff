//! Limits in the claim transaction (`repo::limits`): a concurrency limit admits up to its max
//! and a lease's end gives the slot back; a counted rate admits a 61st of its rate each second;
//! a claim the state machine refuses counts nothing.

use gigafactory_core::event::Author;
use gigafactory_core::job::{Command, FactoryId, JobId, new_job};
use gigafactory_core::limits::{LimitHold, LimitSpec};
use gigafactory_core::manifest::{JobSpec, Payload};
use gigafactory_storage::repo::{self, RepoError};
use gigafactory_storage::{EmbeddedStore, transact};
use uuid::Uuid;

mod common;

const NOW: u64 = 1_800_000_000_000;

fn spec(key: Option<&str>) -> JobSpec {
    JobSpec {
        max_attempts: 1,
        concurrency_key: key.map(str::to_owned),
        ..JobSpec::new("j", "job", "p", Payload::Command("true".into()))
    }
}

async fn submit(store: &EmbeddedStore, key: Option<&str>) -> JobId {
    let job = new_job(JobId(Uuid::now_v7()), spec(key), Vec::new(), NOW - 1);
    transact!(store, |tx| repo::submit(tx, &job, &Author::Scheduler).await).unwrap();
    job.id
}

fn claim() -> Command {
    Command::Claim {
        factory: FactoryId(Uuid::from_u128(7)),
        ttl_ms: 60_000,
        placement: None,
        rate_micros_per_hour: 0,
        limit_slots: Vec::new(),
    }
}

async fn apply(store: &EmbeddedStore, id: JobId, cmd: Command, now: u64) -> Result<(), RepoError> {
    common::transition(store, id, cmd, &Author::Scheduler, now).await
}

async fn set_limit(
    store: &EmbeddedStore,
    key: &str,
    max_running: Option<u32>,
    per_minute: Option<u32>,
) {
    let spec = LimitSpec {
        max_running,
        per_minute,
        throttled_until: None,
    };
    transact!(store, |tx| repo::save_limit(tx, key, &spec)).unwrap();
}

#[tokio::test]
async fn a_concurrency_limit_admits_up_to_its_max_and_an_end_gives_the_slot_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    set_limit(&store, "repo:x", Some(2), None).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(submit(&store, Some("repo:x")).await);
    }
    apply(&store, ids[0], claim(), NOW).await.unwrap();
    apply(&store, ids[1], claim(), NOW).await.unwrap();
    match apply(&store, ids[2], claim(), NOW).await {
        Err(RepoError::Limited(LimitHold::Concurrency {
            running: 2, max: 2, ..
        })) => {}
        other => panic!("{other:?}"),
    }
    let complete = Command::Complete {
        factory: FactoryId(Uuid::from_u128(7)),
        epoch: 1,
    };
    apply(&store, ids[0], complete, NOW + 10).await.unwrap();
    // One slot is free. A claim of a job already leased is refused by the state machine and
    // counts nothing, so the free slot is still there for the third job.
    assert!(matches!(
        apply(&store, ids[1], claim(), NOW + 15).await,
        Err(RepoError::Job(_))
    ));
    apply(&store, ids[2], claim(), NOW + 20).await.unwrap();
    let state = transact!(store, |tx| repo::load_limit(tx, "repo:x", NOW).await)
        .unwrap()
        .unwrap();
    assert_eq!(state.running, 2);
}

#[tokio::test]
async fn a_counted_rate_admits_a_61st_of_its_rate_each_second() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    // 3,660 a minute: 60 a second.
    set_limit(&store, "product:p", None, Some(3_660)).await;
    let second = NOW - NOW % 1_000;
    let mut admitted = 0;
    let mut held = None;
    for n in 0..61 {
        let id = submit(&store, None).await;
        match apply(&store, id, claim(), second + n).await {
            Ok(()) => admitted += 1,
            Err(RepoError::Limited(hold)) => held = Some(hold),
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(admitted, 60);
    let hold = held.expect("the 61st was held");
    assert_eq!(hold.until(), Some(second + 1_000), "until the next second");
    let id = submit(&store, None).await;
    apply(&store, id, claim(), second + 1_000).await.unwrap();
}

//! Time-driven behaviour of a node with an injected clock: a lease expires exactly when its
//! TTL has passed by the node's clock and not a millisecond before, the retry backoff holds a
//! failed job back until the clock passes it, a wall-clock budget ends a job once it is used
//! up, a write arriving after its lease's `expires_at` is accepted until the reaper fences the
//! lease (the late-write rule), and a lease that ran out while the coordinator was down gets a
//! TTL to be renewed and costs no attempt. The tests move a [`ManualClock`] and wait on the
//! fleet stream for what follows; nothing sleeps.

mod common;

use std::sync::Arc;
use std::time::Duration;

use gigafactory_actors::{Config, CoordError, Coordinator, FleetEvent, ManualClock};
use gigafactory_core::event::{Author, EventKind};
use gigafactory_core::job::{Command, JobId, JobState};
use gigafactory_core::manifest::JobSpec;
use gigafactory_core::wire::EnrollResponse;
use tokio::sync::broadcast::Receiver;

/// Where the manual clock starts: far from 0, so no arithmetic can hide an underflow.
const T0: u64 = 1_700_000_000_000;
const TTL_MS: u64 = 10_000;
/// How long a test waits, in real time, for something the clock already made due.
const DUE_WITHIN: Duration = Duration::from_secs(20);

/// A silence between two records of the node serving that counts as an outage. The manual
/// clock jumps, and each jump is a silence: the tests that are not about outages jump less.
const OUTAGE_GAP_MS: u64 = 2 * TTL_MS;

fn config() -> Config {
    Config {
        lease_ttl_ms: TTL_MS,
        // Ticks come often in real time; what they find due is decided by the manual clock.
        reap_interval_ms: 5,
        hearing_interval_ms: 5,
        outage_gap_ms: OUTAGE_GAP_MS,
        budget_check_interval_ms: 5,
        ..Config::default()
    }
}

async fn start(dir: &std::path::Path, clock: &ManualClock) -> Coordinator {
    restart(dir, clock, config()).await
}

fn spec(key: &str, wall_clock_ms: Option<u64>) -> JobSpec {
    let mut s: JobSpec = serde_json::from_value(serde_json::json!({
        "key": key, "title": key, "product": "t", "payload": {"command": "true"}
    }))
    .unwrap();
    s.wall_clock_ms = wall_clock_ms;
    s
}

/// Submits a job and claims it: its id.
async fn leased(coord: &Coordinator, f: &EnrollResponse, key: &str, budget: Option<u64>) -> JobId {
    let author = Author::Operator("test".into());
    let (job, _) = coord
        .submit(spec(key, budget), vec![], &author)
        .await
        .unwrap();
    let claimed = coord.claim(f.factory_id, 1, 0).await.unwrap();
    assert_eq!(claimed.len(), 1, "{key} is claimed");
    assert_eq!(claimed[0].job_id, job.id);
    job.id
}

/// Waits for the next fleet event of `kind`.
async fn next(events: &mut Receiver<FleetEvent>, kind: EventKind) -> FleetEvent {
    tokio::time::timeout(DUE_WITHIN, async {
        loop {
            let e = events.recv().await.expect("the fleet stream is open");
            if e.kind == kind {
                return e;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} event"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_expires_when_its_ttl_has_passed_by_the_nodes_clock_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let coord = start(dir.path(), &clock).await;
    let f = common::enroll(&coord, 4, 0.0).await;
    let (_, mut events) = coord.follow_fleet(None);
    // The probe's lease runs out 1 ms before the job's.
    let probe = leased(&coord, &f, "probe", None).await;
    clock.advance(1);
    let job = leased(&coord, &f, "job", None).await;

    clock.advance(TTL_MS - 1);
    let expired = next(&mut events, EventKind::Expire).await;
    assert_eq!(expired.job_id, probe, "the probe's TTL has passed");
    // The pass that expired the probe saw the job 1 ms short of its TTL and left it alone.
    let held = coord.job(job).await.unwrap();
    assert!(
        matches!(held.state, JobState::Leased { .. }),
        "{:?}",
        held.state
    );
    assert_eq!(held.epoch, 1);

    clock.advance(1);
    let expired = next(&mut events, EventKind::Expire).await;
    assert_eq!(expired.job_id, job);
    let requeued = coord.job(job).await.unwrap();
    assert_eq!(requeued.epoch, 2, "J2: the expired holder is fenced");
    assert_eq!(requeued.last_error.as_deref(), Some("lease expired"));
    coord.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_waits_out_its_backoff_by_the_nodes_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let coord = start(dir.path(), &clock).await;
    let f = common::enroll(&coord, 4, 0.0).await;
    let (_, mut events) = coord.follow_fleet(None);
    let job = leased(&coord, &f, "job", None).await;
    clock.advance(TTL_MS);
    next(&mut events, EventKind::Expire).await;
    let JobState::Failed { retry_at } = coord.job(job).await.unwrap().state else {
        panic!("an expired job with attempts left waits to retry");
    };
    let backoff = config().backoff;
    let now = T0 + TTL_MS;
    assert!(
        (now..=now + backoff.cap_ms).contains(&retry_at),
        "retry at {retry_at}, expired at {now}"
    );

    clock.advance(retry_at - now - 1);
    assert!(
        coord.claim(f.factory_id, 1, 0).await.unwrap().is_empty(),
        "not placed a millisecond early"
    );
    clock.advance(1);
    let again = coord.claim(f.factory_id, 1, 0).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].job_id, again[0].epoch), (job, 3));
    coord.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wall_clock_budget_ends_its_job_once_used_up() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let coord = start(dir.path(), &clock).await;
    let f = common::enroll(&coord, 4, 0.0).await;
    let (_, mut events) = coord.follow_fleet(None);
    let probe = leased(&coord, &f, "probe", Some(4_999)).await;
    let job = leased(&coord, &f, "job", Some(5_000)).await;

    clock.advance(5_000);
    let ended = next(&mut events, EventKind::BudgetExhausted).await;
    assert_eq!(
        ended.job_id, probe,
        "4,999 ms of budget are used up at 5,000"
    );
    assert!(
        coord.job(job).await.unwrap().state.lease().is_some(),
        "exactly at its budget"
    );

    clock.advance(1);
    let ended = next(&mut events, EventKind::BudgetExhausted).await;
    assert_eq!(ended.job_id, job);
    let dead = coord.job(job).await.unwrap();
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(
        dead.last_error.as_deref(),
        Some("wall-clock budget exhausted")
    );
    coord.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_ran_out_while_the_coordinator_was_down_gets_a_ttl_and_costs_no_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let coord = start(dir.path(), &clock).await;
    let f = common::enroll(&coord, 4, 0.0).await;
    let renewed = leased(&coord, &f, "renewed", None).await;
    let abandoned = leased(&coord, &f, "abandoned", None).await;
    coord.stop();
    drop(coord);

    // Down for three TTLs: both leases run out while no node can hear a renewal.
    clock.advance(3 * TTL_MS);
    let back = T0 + 3 * TTL_MS;
    let coord = start(dir.path(), &clock).await;
    let (_, mut events) = coord.follow_fleet(None);
    let renew = Command::Renew {
        factory: f.factory_id,
        epoch: 1,
        ttl_ms: TTL_MS,
    };
    let answer = coord
        .factory_write(renewed, renew, "renew-after-outage".into(), vec![], vec![])
        .await
        .expect("a lease that ran out in the outage can still be renewed");
    assert_eq!(answer.epoch, 1, "renewed under its own epoch");

    // A TTL after the return, less a millisecond, the other lease is still the factory's.
    clock.advance(TTL_MS - 1);
    let renew = Command::Renew {
        factory: f.factory_id,
        epoch: 1,
        ttl_ms: TTL_MS,
    };
    coord
        .factory_write(renewed, renew, "renew-again".into(), vec![], vec![])
        .await
        .unwrap();
    let probe = leased(&coord, &f, "probe", None).await;
    clock.advance(1);
    let expired = next(&mut events, EventKind::Expire).await;
    assert_eq!(
        expired.job_id,
        abandoned,
        "the abandoned lease is taken a TTL after the return, at {}",
        back + TTL_MS
    );
    let taken = coord.job(abandoned).await.unwrap();
    assert_eq!((taken.epoch, taken.failures), (2, 0), "fenced, not blamed");
    assert_eq!(
        taken.last_error.as_deref(),
        Some("lease expired while no coordinator could hear it")
    );
    let kept = coord.job(renewed).await.unwrap();
    assert_eq!(kept.epoch, 1, "renewed, kept: {:?}", kept.state);

    // Leases that run out after the return are reaped on time and blamed.
    clock.advance(TTL_MS - 1);
    let mut taken = vec![
        next(&mut events, EventKind::Expire).await.job_id,
        next(&mut events, EventKind::Expire).await.job_id,
    ];
    taken.sort();
    let mut due = vec![renewed, probe];
    due.sort();
    assert_eq!(taken, due);
    for id in due {
        assert_eq!(coord.job(id).await.unwrap().failures, 1, "{id} is blamed");
    }
    coord.stop();
}

async fn restart(dir: &std::path::Path, clock: &ManualClock, config: Config) -> Coordinator {
    common::restart(dir, config, Arc::new(clock.clone())).await
}

/// The late-write rule (ARCHITECTURE, the lease protocol): a lease is over when the reaper
/// fences it, not when its `expires_at` passes; until then its holder's writes are accepted
/// and a renewal revives it. Safety rests on the epoch alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_after_expiry_is_accepted_until_the_reaper_moves_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    // A reaper that does not pass while the late renewal is sent.
    let asleep = Config {
        reap_interval_ms: 3_600_000,
        ..config()
    };
    let coord = restart(dir.path(), &clock, asleep).await;
    let f = common::enroll(&coord, 4, 0.0).await;
    let job = leased(&coord, &f, "job", None).await;
    let renew = |epoch| Command::Renew {
        factory: f.factory_id,
        epoch,
        ttl_ms: TTL_MS,
    };

    clock.advance(TTL_MS + 25);
    let late = coord
        .factory_write(job, renew(1), "late".into(), vec![], vec![])
        .await
        .expect("25 ms past expiry, before the reaper, the holder's renewal is accepted");
    let revived_until = T0 + TTL_MS + 25 + TTL_MS;
    assert_eq!(
        (late.epoch, late.state.as_str(), late.expires_at),
        (1, "running", Some(revived_until)),
        "the lease is revived for a TTL from now"
    );
    coord.stop();
    drop(coord);

    // A node whose reaper passes: the revived lease is reaped when its new TTL has passed, and
    // the holder's next write is fenced.
    let coord = restart(dir.path(), &clock, config()).await;
    let (_, mut events) = coord.follow_fleet(None);
    clock.advance(TTL_MS);
    let expired = next(&mut events, EventKind::Expire).await;
    assert_eq!(expired.job_id, job);
    let refused = coord
        .factory_write(job, renew(1), "after".into(), vec![], vec![])
        .await;
    assert!(
        matches!(
            refused,
            Err(CoordError::Fenced {
                presented: 1,
                current: 2
            })
        ),
        "{refused:?}"
    );
    coord.stop();
}

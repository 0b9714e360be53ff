//! A node's schedule actor on a [`ManualClock`]: ticks that passed while the node was away
//! (the clock jumps a day) are recorded missed, and `run_once` fires the latest of them once
//! while `skip` fires none; the next tick on time fires under both. The clock decides what is
//! due; the test waits for the history, with a deadline, and never sleeps for state. A change
//! of a schedule wakes the actor at once, long before its refresh.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use gigafactory_actors::{Config, Coordinator, ManualClock};
use gigafactory_core::event::Author;
use gigafactory_core::wire::{RunView, ScheduleBody};

/// 2026-01-01T00:00:00Z.
const T0: u64 = 1_767_225_600_000;
const HOUR_MS: u64 = 3_600_000;

fn body(missed: &str) -> ScheduleBody {
    ScheduleBody {
        cron: "0 3 * * *".into(),
        time_zone: None,
        overlap: None,
        missed: Some(missed.into()),
        catchup_window_s: Some(86_400),
        job: Some(serde_json::json!({
            "key": "nightly", "title": "nightly", "product": "t", "payload": {"command": "true"}
        })),
        manifest: None,
    }
}

/// The schedule's runs (newest first) once there are `n`, waiting up to 20 s of real time.
async fn runs(coord: &Coordinator, name: &str, n: usize) -> Vec<RunView> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let history = coord.schedule(name).await.unwrap().history;
        if history.len() >= n {
            return history;
        }
        assert!(Instant::now() < deadline, "{name}: {history:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn outcomes(runs: &[RunView]) -> Vec<(&str, u64)> {
    runs.iter().map(|r| (r.outcome.as_str(), r.tick)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_fires_the_latest_tick_missed_while_away_and_skip_records_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let config = Config {
        // Passes come often in real time; what they find due is decided by the manual clock.
        schedule_refresh_ms: 10,
        schedule_grace_ms: 5_000,
        ..Config::default()
    };
    let coord = common::restart(dir.path(), config, Arc::new(clock.clone())).await;
    let by = Author::Operator("test".into());
    for (name, missed) in [("once", "run_once"), ("skip", "skip")] {
        coord.set_schedule(name, body(missed), &by).await.unwrap();
    }
    // The node is away past two ticks (1 and 2 January, 03:00): both are late.
    clock.advance(28 * HOUR_MS);
    let (first, second) = (T0 + 3 * HOUR_MS, T0 + 27 * HOUR_MS);
    let once = runs(&coord, "once", 2).await;
    assert_eq!(
        outcomes(&once),
        [("submitted", second), ("missed", first)],
        "{once:?}"
    );
    assert_eq!(once[0].jobs.len(), 1);
    let skip = runs(&coord, "skip", 1).await;
    assert_eq!(outcomes(&skip), [("missed", second)], "{skip:?}");
    assert_eq!(skip[0].missed_ticks, Some(2));

    // The next tick, on time, fires under both policies, once.
    let third = T0 + 51 * HOUR_MS;
    clock.advance(third + 100 - (T0 + 28 * HOUR_MS));
    assert_eq!(runs(&coord, "once", 3).await[0].tick, third);
    let skip = runs(&coord, "skip", 2).await;
    assert_eq!(
        outcomes(&skip),
        [("submitted", third), ("missed", second)],
        "{skip:?}"
    );
    coord.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_of_a_schedule_wakes_the_actor_without_waiting_for_its_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    // Left to its timer, the actor would not look again for an hour of real time.
    let config = Config {
        schedule_refresh_ms: 3_600_000,
        ..Config::default()
    };
    let coord = common::restart(dir.path(), config, Arc::new(clock.clone())).await;
    let by = Author::Operator("test".into());
    coord
        .set_schedule("once", body("run_once"), &by)
        .await
        .unwrap();
    clock.advance(28 * HOUR_MS);
    // Pausing and resuming change the schedule: each wakes the actor, which finds the ticks.
    coord.pause_schedule("once", &by).await.unwrap();
    coord.resume_schedule("once").await.unwrap();
    let once = runs(&coord, "once", 2).await;
    assert_eq!(
        outcomes(&once),
        [
            ("submitted", T0 + 27 * HOUR_MS),
            ("missed", T0 + 3 * HOUR_MS)
        ],
        "{once:?}"
    );
    coord.stop();
}

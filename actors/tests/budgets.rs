//! Money through a node on an embedded store, with a manual clock: usage a lease holder
//! reports is priced and counted once per request id, a stale epoch's is refused; a budget
//! that reaches its limit holds its product's new jobs (and says why) until it is raised or
//! its period resets, a pause holds them until resumed, and policy `stop` preempts the ones
//! running; a job past its own cost budget ends; factory time is settled at the lease's end.
//! Reports an end carries count as they would alone, once per request id, and not at all
//! when the end is refused.

mod common;

use std::sync::Arc;
use std::time::Duration;

use gigafactory_actors::{Config, CoordError, Coordinator, FleetEvent, ManualClock};
use gigafactory_core::budget::{MICROS_PER_USD, Period, Policy};
use gigafactory_core::event::{Author, EventKind};
use gigafactory_core::job::{Command, JobId, JobState};
use gigafactory_core::manifest::{JobSpec, PAYLOAD_LEN_MAX_BYTES, Payload, TITLE_LEN_MAX_BYTES};
use gigafactory_core::usage::{CARRIED_REPORTS_MAX, Price, PriceTable};
use gigafactory_core::wire::{BudgetBody, EnrollResponse, UsageReport, UsageWrite};
use gigafactory_storage::AnyStore;
use tokio::sync::broadcast::Receiver;

/// 2026-12-02 15:30 UTC.
const T0: u64 = 1_796_225_400_000;
const DUE_WITHIN: Duration = Duration::from_secs(20);
/// Between two looks at a state the node reaches on its own (a bounded poll, not a wait).
const POLL: Duration = Duration::from_millis(5);

fn operator() -> Author {
    Author::Operator("test".into())
}

async fn start(dir: &std::path::Path, clock: &ManualClock) -> Coordinator {
    let store = AnyStore::open(&format!("embedded:{}", dir.display())).unwrap();
    let config = Config {
        prices: PriceTable::from([(
            "sonnet".to_owned(),
            Price {
                input_micros_per_mtok: 3 * MICROS_PER_USD,
                output_micros_per_mtok: 15 * MICROS_PER_USD,
            },
        )]),
        budget_refresh_ms: 10,
        ..Config::default()
    };
    Coordinator::start(store, config, Arc::new(clock.clone()))
        .await
        .unwrap()
}

fn spec(key: &str, product: &str) -> JobSpec {
    serde_json::from_value(serde_json::json!({
        "key": key, "title": key, "product": product, "payload": {"command": "true"}
    }))
    .unwrap()
}

async fn budget(coord: &Coordinator, name: &str, limit_usd: u64, policy: Policy) {
    let body = BudgetBody {
        product: "ops".into(),
        label: None,
        period: Period::Day,
        limit_micros: limit_usd * MICROS_PER_USD,
        alert_percent: None,
        policy: Some(policy),
    };
    coord.set_budget(name, body).await.unwrap();
}

/// Submits and claims a job of `product`: its id and epoch.
async fn leased(coord: &Coordinator, f: &EnrollResponse, spec: JobSpec) -> (JobId, u64) {
    let (job, _) = coord.submit(spec, vec![], &operator()).await.unwrap();
    let claimed = coord.claim(f.factory_id, 1, 0).await.unwrap();
    assert_eq!(claimed.len(), 1, "claimed");
    assert_eq!(claimed[0].job_id, job.id);
    (job.id, claimed[0].epoch)
}

fn report(cost_usd: u64) -> UsageReport {
    UsageReport {
        model: "gpt".into(),
        input_tokens: 10,
        output_tokens: 10,
        cost_micros: Some(cost_usd * MICROS_PER_USD),
    }
}

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

/// Waits until the scheduler holds (or no longer holds) `n` budgets.
async fn holds(coord: &Coordinator, n: usize) {
    tokio::time::timeout(DUE_WITHIN, async {
        while coord.scheduler_snapshot().await.unwrap().budget_holds != n {
            tokio::time::sleep(POLL).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the scheduler never held {n} budgets"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_priced_counted_once_per_request_and_refused_from_a_stale_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let coord = start(dir.path(), &clock).await;
    let f = common::enroll(&coord, 8, 0.0).await;
    budget(&coord, "ops-daily", 100, Policy::Finish).await;
    let (id, epoch) = leased(&coord, &f, spec("a", "ops")).await;
    let tokens = UsageReport {
        model: "sonnet".into(),
        input_tokens: 1_000_000,
        output_tokens: 200_000,
        cost_micros: None,
    };
    for _ in 0..2 {
        coord
            .report_usage(f.factory_id, id, epoch, "r1".into(), tokens.clone())
            .await
            .unwrap();
    }
    let job = coord.job(id).await.unwrap();
    assert_eq!(job.cost.total(), 6 * MICROS_PER_USD, "$3 in + $3 out, once");
    let spent = coord.budget("ops-daily").await.unwrap().budget.spent_micros;
    assert_eq!(spent, 6 * MICROS_PER_USD);

    let stale = coord
        .report_usage(f.factory_id, id, epoch + 1, "r2".into(), report(1))
        .await;
    assert!(matches!(stale, Err(CoordError::Fenced { .. })), "{stale:?}");
    let unknown = UsageReport {
        model: "mystery".into(),
        cost_micros: None,
        ..tokens
    };
    let refused = coord
        .report_usage(f.factory_id, id, epoch, "r3".into(), unknown)
        .await;
    assert!(
        matches!(&refused, Err(CoordError::Invalid(m)) if m.contains("no price for model")),
        "{refused:?}"
    );
    assert_eq!(
        coord.job(id).await.unwrap().cost.total(),
        6 * MICROS_PER_USD
    );
    coord.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_budget_holds_new_jobs_until_raised_and_the_next_day_releases_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let coord = start(dir.path(), &clock).await;
    let f = common::enroll(&coord, 8, 0.0).await;
    let (_, mut events) = coord.follow_fleet(None);
    budget(&coord, "ops-daily", 10, Policy::Finish).await;
    let (id, epoch) = leased(&coord, &f, spec("a", "ops")).await;
    coord
        .report_usage(f.factory_id, id, epoch, "r1".into(), report(8))
        .await
        .unwrap();
    let alert = next(&mut events, EventKind::BudgetAlert).await;
    assert_eq!(
        alert.detail.as_deref(),
        Some("budget ops-daily passed its alert: $8.00 of $10.00")
    );
    coord
        .report_usage(f.factory_id, id, epoch, "r2".into(), report(3))
        .await
        .unwrap();
    next(&mut events, EventKind::BudgetReached).await;
    holds(&coord, 1).await;

    let (waiting, _) = coord
        .submit(spec("b", "ops"), vec![], &operator())
        .await
        .unwrap();
    let (free, _) = coord
        .submit(spec("c", "other"), vec![], &operator())
        .await
        .unwrap();
    let claimed = coord.claim(f.factory_id, 2, 0).await.unwrap();
    assert_eq!(claimed.len(), 1, "only the other product's job runs");
    assert_eq!(claimed[0].job_id, free.id);
    let held = coord
        .held_by(&coord.job(waiting.id).await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        held.as_deref(),
        Some("budget ops-daily exhausted: $11.00 of $10.00, resets 2026-12-03 00:00 UTC")
    );
    assert!(
        coord.job(id).await.unwrap().state.lease().is_some(),
        "policy finish: the running job goes on"
    );

    budget(&coord, "ops-daily", 20, Policy::Finish).await;
    holds(&coord, 0).await;
    let claimed = coord.claim(f.factory_id, 1, 1_000).await.unwrap();
    assert_eq!(
        claimed.iter().map(|c| c.job_id).collect::<Vec<_>>(),
        [waiting.id]
    );

    // Spent to the new limit, then the day rolls over: a new period, nothing held.
    coord
        .report_usage(f.factory_id, id, epoch, "r3".into(), report(9))
        .await
        .unwrap();
    holds(&coord, 1).await;
    clock.advance(9 * 3_600_000);
    holds(&coord, 0).await;
    let view = coord.budget("ops-daily").await.unwrap().budget;
    assert_eq!((view.state.as_str(), view.spent_micros), ("active", 0));
    coord.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_budget_holds_until_resumed_and_policy_stop_preempts_running_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let coord = start(dir.path(), &clock).await;
    let f = common::enroll(&coord, 8, 0.0).await;
    budget(&coord, "ops-daily", 5, Policy::Stop).await;
    let (running, epoch) = leased(&coord, &f, spec("a", "ops")).await;

    let paused = coord
        .pause_budget("ops-daily", "runaway agent", &Author::Admin("alice".into()))
        .await
        .unwrap();
    assert_eq!(paused.state, "paused");
    assert!(
        coord
            .pause_budget("ops-daily", " ", &operator())
            .await
            .is_err(),
        "a reason is needed"
    );
    holds(&coord, 1).await;
    let (waiting, _) = coord
        .submit(spec("b", "ops"), vec![], &operator())
        .await
        .unwrap();
    assert!(coord.claim(f.factory_id, 1, 0).await.unwrap().is_empty());
    assert_eq!(
        coord
            .held_by(&coord.job(waiting.id).await.unwrap())
            .await
            .unwrap()
            .as_deref(),
        Some("budget ops-daily paused by admin:alice: runaway agent")
    );
    coord.resume_budget("ops-daily").await.unwrap();
    holds(&coord, 0).await;
    let claimed = coord.claim(f.factory_id, 1, 1_000).await.unwrap();
    assert_eq!(claimed[0].job_id, waiting.id);

    // Reaching the limit under policy `stop` asks the running jobs to checkpoint and release.
    coord
        .report_usage(f.factory_id, running, epoch, "r1".into(), report(6))
        .await
        .unwrap();
    tokio::time::timeout(DUE_WITHIN, async {
        loop {
            let a = coord.job(running).await.unwrap().state;
            let b = coord.job(waiting.id).await.unwrap().state;
            if matches!(a, JobState::Preempting { .. }) && matches!(b, JobState::Preempting { .. })
            {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
    })
    .await
    .expect("both running jobs were asked to stop");
    coord.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_own_cost_budget_ends_and_factory_time_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let coord = start(dir.path(), &clock).await;
    // $3.60 an hour: a micro-dollar a millisecond.
    let f = common::enroll(&coord, 8, 3.6).await;
    budget(&coord, "ops-daily", 100, Policy::Finish).await;
    let mut capped = spec("capped", "ops");
    capped.cost_budget_micros = Some(MICROS_PER_USD);
    let (id, epoch) = leased(&coord, &f, capped).await;
    clock.advance(500);
    coord
        .report_usage(f.factory_id, id, epoch, "r1".into(), report(1))
        .await
        .unwrap();
    let job = coord.job(id).await.unwrap();
    assert_eq!(
        job.state,
        JobState::Dead,
        "$1 of usage and 500 ms past a $1 cap"
    );
    assert_eq!(
        job.cost.factory_micros, 500,
        "the lease's time was settled at its end"
    );
    assert_eq!(
        job.last_error.as_deref(),
        Some("cost budget exhausted: $1.0005 of $1.00")
    );
    let timeline: Vec<EventKind> = coord
        .events(id, None, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        timeline.contains(&EventKind::CostCapReached),
        "{timeline:?}"
    );
    let retry = coord
        .act(id, gigafactory_core::job::Action::Retry.into(), &operator())
        .await;
    assert!(
        matches!(retry, Err(CoordError::CostCapReached(_))),
        "{retry:?}"
    );
    let spent = coord.budget("ops-daily").await.unwrap().budget.spent_micros;
    assert_eq!(
        spent,
        MICROS_PER_USD + 500,
        "usage and factory time both count"
    );
    let fenced = coord
        .factory_write(
            id,
            Command::Complete {
                factory: f.factory_id,
                epoch,
            },
            "done".into(),
            vec![],
            vec![],
        )
        .await;
    assert!(
        matches!(fenced, Err(CoordError::Fenced { .. })),
        "the holder was fenced"
    );
    coord.stop();
}

fn carried(request_id: &str, cost_usd: u64) -> UsageWrite {
    UsageWrite {
        request_id: request_id.into(),
        report: report(cost_usd),
    }
}

fn complete(f: &EnrollResponse, epoch: u64) -> Command {
    Command::Complete {
        factory: f.factory_id,
        epoch,
    }
}

/// The kinds and details of a job's usage and end events, in timeline order.
async fn money_timeline(coord: &Coordinator, id: JobId) -> Vec<(EventKind, Option<String>)> {
    coord
        .events(id, None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::Usage | EventKind::Complete))
        .map(|e| (e.kind, e.detail))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_carried_on_complete_counts_once_even_when_it_came_alone_first() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let coord = start(dir.path(), &clock).await;
    let f = common::enroll(&coord, 8, 0.0).await;
    let (_, mut events) = coord.follow_fleet(None);
    budget(&coord, "ops-daily", 10, Policy::Finish).await;
    let (id, epoch) = leased(&coord, &f, spec("a", "ops")).await;
    // Sent alone, its answer lost: the agent carries it again on the end.
    coord
        .report_usage(f.factory_id, id, epoch, "u1".into(), report(1))
        .await
        .unwrap();
    let usage = vec![carried("u1", 1), carried("u2", 8)];
    for _ in 0..2 {
        let answer = coord
            .factory_write(id, complete(&f, epoch), "end".into(), vec![], usage.clone())
            .await
            .unwrap();
        assert_eq!(
            answer.state, "succeeded",
            "a retried end is answered the same"
        );
    }
    let job = coord.job(id).await.unwrap();
    assert_eq!(job.cost.total(), 9 * MICROS_PER_USD, "$1 once and $8");
    let spent = coord.budget("ops-daily").await.unwrap().budget.spent_micros;
    assert_eq!(spent, 9 * MICROS_PER_USD);
    let alert = next(&mut events, EventKind::BudgetAlert).await;
    assert_eq!(
        alert.detail.as_deref(),
        Some("budget ops-daily passed its alert: $9.00 of $10.00"),
        "the carried report crosses the alert as it would alone"
    );
    assert_eq!(
        money_timeline(&coord, id).await,
        [
            (EventKind::Usage, Some("gpt: $1.00".into())),
            (EventKind::Usage, Some("gpt: $8.00".into())),
            (EventKind::Complete, None),
        ]
    );
    coord.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_carried_twice_on_one_end_or_resent_after_it_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let coord = start(dir.path(), &clock).await;
    let f = common::enroll(&coord, 8, 0.0).await;
    budget(&coord, "ops-daily", 100, Policy::Finish).await;
    let (id, epoch) = leased(&coord, &f, spec("a", "ops")).await;
    let usage = vec![carried("u1", 3), carried("u1", 3)];
    let answer = coord
        .factory_write(id, complete(&f, epoch), "end".into(), vec![], usage)
        .await
        .unwrap();
    assert_eq!(answer.state, "succeeded");
    // The end took the lease: a resend of its report alone meets the fence.
    let resent = coord
        .report_usage(f.factory_id, id, epoch, "u1".into(), report(3))
        .await;
    assert!(
        matches!(resent, Err(CoordError::Fenced { .. })),
        "{resent:?}"
    );
    assert_eq!(
        coord.job(id).await.unwrap().cost.total(),
        3 * MICROS_PER_USD
    );
    assert_eq!(
        coord.budget("ops-daily").await.unwrap().budget.spent_micros,
        3 * MICROS_PER_USD
    );
    assert_eq!(
        money_timeline(&coord, id).await,
        [
            (EventKind::Usage, Some("gpt: $3.00".into())),
            (EventKind::Complete, None),
        ]
    );
    coord.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_with_a_stale_epoch_carrying_usage_is_refused_and_counts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let coord = start(dir.path(), &clock).await;
    let f = common::enroll(&coord, 8, 0.0).await;
    budget(&coord, "ops-daily", 100, Policy::Finish).await;
    let (id, epoch) = leased(&coord, &f, spec("a", "ops")).await;
    let stale = coord
        .factory_write(
            id,
            complete(&f, epoch + 1),
            "end".into(),
            vec![],
            vec![carried("u1", 5)],
        )
        .await;
    assert!(matches!(stale, Err(CoordError::Fenced { .. })), "{stale:?}");
    let job = coord.job(id).await.unwrap();
    assert_eq!(job.cost.total(), 0);
    assert!(job.state.lease().is_some(), "the end was not applied");
    assert_eq!(
        coord.budget("ops-daily").await.unwrap().budget.spent_micros,
        0
    );
    assert_eq!(money_timeline(&coord, id).await, []);
    // Nothing was remembered under its id either: sent again by the holder, it counts.
    coord
        .report_usage(f.factory_id, id, epoch, "u1".into(), report(5))
        .await
        .unwrap();
    assert_eq!(
        coord.job(id).await.unwrap().cost.total(),
        5 * MICROS_PER_USD
    );
    coord.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_carrying_a_report_it_cannot_price_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let coord = start(dir.path(), &clock).await;
    let f = common::enroll(&coord, 8, 0.0).await;
    let (id, epoch) = leased(&coord, &f, spec("a", "ops")).await;
    let unknown = UsageWrite {
        request_id: "u2".into(),
        report: UsageReport {
            model: "mystery".into(),
            input_tokens: 10,
            output_tokens: 10,
            cost_micros: None,
        },
    };
    let refused = coord
        .factory_write(
            id,
            complete(&f, epoch),
            "end".into(),
            vec![],
            vec![carried("u1", 1), unknown],
        )
        .await;
    assert!(
        matches!(&refused, Err(CoordError::Invalid(m)) if m.starts_with("usage report u2: no price")),
        "{refused:?}"
    );
    let too_many: Vec<UsageWrite> = (0..=CARRIED_REPORTS_MAX)
        .map(|i| carried(&format!("u{i}"), 1))
        .collect();
    let refused = coord
        .factory_write(id, complete(&f, epoch), "end".into(), vec![], too_many)
        .await;
    assert!(
        matches!(refused, Err(CoordError::Invalid(_))),
        "{refused:?}"
    );
    let job = coord.job(id).await.unwrap();
    assert_eq!((job.cost.total(), job.state.name()), (0, "leased"));
    coord.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carried_report_past_the_jobs_cost_budget_ends_it_and_the_end_is_refused_as_stale() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let coord = start(dir.path(), &clock).await;
    let f = common::enroll(&coord, 8, 0.0).await;
    budget(&coord, "ops-daily", 100, Policy::Finish).await;
    let mut capped = spec("capped", "ops");
    capped.cost_budget_micros = Some(MICROS_PER_USD);
    let (id, epoch) = leased(&coord, &f, capped).await;
    // As if sent alone: the first report counts and ends the job, the second meets the fence.
    let ended = coord
        .factory_write(
            id,
            complete(&f, epoch),
            "end".into(),
            vec![],
            vec![carried("u1", 2), carried("u2", 5)],
        )
        .await;
    assert!(matches!(ended, Err(CoordError::Fenced { .. })), "{ended:?}");
    let job = coord.job(id).await.unwrap();
    assert_eq!(
        (job.state, job.cost.total()),
        (JobState::Dead, 2 * MICROS_PER_USD)
    );
    assert_eq!(
        coord.budget("ops-daily").await.unwrap().budget.spent_micros,
        2 * MICROS_PER_USD
    );
    assert_eq!(
        money_timeline(&coord, id).await,
        [(EventKind::Usage, Some("gpt: $2.00".into()))]
    );
    coord.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_job_ends_with_the_most_reports_an_end_may_carry() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let coord = start(dir.path(), &clock).await;
    let f = common::enroll(&coord, 8, 0.0).await;
    budget(&coord, "ops-daily", 1_000, Policy::Finish).await;
    let mut big = spec("big", "ops");
    big.payload = Payload::Command("x".repeat(PAYLOAD_LEN_MAX_BYTES));
    big.title = "t".repeat(TITLE_LEN_MAX_BYTES);
    let (id, epoch) = leased(&coord, &f, big).await;
    let usage: Vec<UsageWrite> = (0..CARRIED_REPORTS_MAX)
        .map(|i| carried(&format!("u{i}"), 1))
        .collect();
    let answer = coord
        .factory_write(id, complete(&f, epoch), "end".into(), vec![], usage)
        .await
        .unwrap();
    assert_eq!(answer.state, "succeeded");
    let reports = CARRIED_REPORTS_MAX as u64;
    assert_eq!(
        coord.job(id).await.unwrap().cost.total(),
        reports * MICROS_PER_USD
    );
    assert_eq!(
        coord.budget("ops-daily").await.unwrap().budget.spent_micros,
        reports * MICROS_PER_USD
    );
    coord.stop();
}

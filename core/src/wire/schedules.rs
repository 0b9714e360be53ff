//! The REST API's bodies for schedules: what an operator sets (`PUT /v1/schedules/{name}`)
//! and a schedule as it is shown, with its next runs and its history.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::job::{JobId, Millis};
use crate::schedule::{Draft, Outcome, Run, Schedule, ScheduleState, Target, Trigger, format_in};

/// A schedule as an operator sets it. Give exactly one of `job` (a single-job spec, the body
/// `POST /v1/jobs` takes, without `deps` or `idempotency_key`) and `manifest` (the TOML or
/// JSON `POST /v1/manifests` takes, without idempotency keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    /// Five fields (minute hour day month weekday), or six with seconds first.
    pub cron: String,
    /// An IANA zone; `UTC` when absent.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// `skip` (default), `queue` or `cancel_previous`.
    #[serde(default)]
    pub overlap: Option<String>,
    /// `skip` (default) or `run_once`.
    #[serde(default)]
    pub missed: Option<String>,
    /// How old a missed tick `run_once` still fires (default a day, at most a week).
    #[serde(default)]
    pub catchup_window_s: Option<u64>,
    #[serde(default)]
    pub job: Option<serde_json::Value>,
    #[serde(default)]
    pub manifest: Option<String>,
}

impl From<ScheduleBody> for Draft {
    fn from(b: ScheduleBody) -> Draft {
        Draft {
            cron: b.cron,
            time_zone: b.time_zone,
            overlap: b.overlap,
            missed: b.missed,
            catchup_window_s: b.catchup_window_s,
            job: b.job.map(|v| v.to_string()),
            manifest: b.manifest,
        }
    }
}

/// A tick to come, in UTC and in the schedule's zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NextRun {
    pub at: Millis,
    pub utc: String,
    pub local: String,
}

/// One run of a schedule's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunView {
    pub seq: u64,
    pub tick: Millis,
    pub at: Millis,
    /// The node that fired it.
    pub node: Uuid,
    /// `tick`, or `manual` (with `by`).
    pub trigger: String,
    pub by: Option<String>,
    /// `submitted`, `skipped`, `cancelled_previous`, `missed` or `failed`.
    pub outcome: String,
    /// The jobs it submitted (at most 100; `jobs_total` counts them all).
    pub jobs: Vec<JobId>,
    pub jobs_total: u32,
    pub cancelled: Vec<JobId>,
    /// Why it skipped or failed, or which ticks it missed.
    pub reason: Option<String>,
    pub missed_ticks: Option<u64>,
}

impl From<&Run> for RunView {
    fn from(r: &Run) -> Self {
        let (trigger, by) = match &r.trigger {
            Trigger::Tick => ("tick", None),
            Trigger::Manual(by) => ("manual", Some(by.clone())),
        };
        let (jobs_total, cancelled, reason, missed_ticks) = match &r.outcome {
            Outcome::Submitted { total, .. } => (*total, Vec::new(), None, None),
            Outcome::CancelledPrevious {
                cancelled, total, ..
            } => (*total, cancelled.clone(), None, None),
            Outcome::Skipped { reason } => (0, Vec::new(), Some(reason.clone()), None),
            Outcome::Failed { error } => (0, Vec::new(), Some(error.clone()), None),
            Outcome::Missed(m) => (
                0,
                Vec::new(),
                Some(format!(
                    "{}{} tick(s) missed, from {} to {}",
                    m.count,
                    if m.more { "+" } else { "" },
                    format_in(chrono_tz::Tz::UTC, m.first),
                    format_in(chrono_tz::Tz::UTC, m.last)
                )),
                Some(m.count),
            ),
        };
        RunView {
            seq: r.seq,
            tick: r.tick,
            at: r.at,
            node: r.node,
            trigger: trigger.into(),
            by,
            outcome: r.outcome.name().into(),
            jobs: r.outcome.jobs().to_vec(),
            jobs_total,
            cancelled,
            reason,
            missed_ticks,
        }
    }
}

/// A schedule as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScheduleView {
    pub name: String,
    pub cron: String,
    pub time_zone: String,
    pub overlap: String,
    pub missed: String,
    pub catchup_window_s: u64,
    pub job: Option<serde_json::Value>,
    pub manifest: Option<String>,
    /// `active` or `paused`.
    pub state: String,
    pub paused_at: Option<Millis>,
    pub paused_by: Option<String>,
    /// The shard it belongs to: its owner fires it.
    pub shard: u32,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub updated_by: String,
    /// The next ticks (five on a schedule's own page, one in the listing).
    pub next_runs: Vec<NextRun>,
    /// The latest runs, newest first.
    pub history: Vec<RunView>,
}

impl ScheduleView {
    /// `s` with its next `next` ticks after `now` and the runs given.
    pub fn of(s: &Schedule, now: Millis, next: usize, runs: &[Run]) -> Self {
        let zone = crate::schedule::parse_zone(&s.time_zone).unwrap_or(chrono_tz::Tz::UTC);
        let (job, manifest) = match &s.target {
            Target::Job(text) => (serde_json::from_str(text).ok(), None),
            Target::Manifest(text) => (None, Some(text.clone())),
        };
        let (state, paused_at, paused_by) = match &s.state {
            ScheduleState::Active => ("active", None, None),
            ScheduleState::Paused { since, by } => ("paused", Some(*since), Some(by.clone())),
        };
        ScheduleView {
            name: s.name.clone(),
            cron: s.cron.clone(),
            time_zone: s.time_zone.clone(),
            overlap: s.overlap.name().into(),
            missed: s.missed.name().into(),
            catchup_window_s: s.catchup_window_s,
            job,
            manifest,
            state: state.into(),
            paused_at,
            paused_by,
            shard: crate::schedule::shard_of_schedule(&s.name),
            created_at: s.created_at,
            updated_at: s.updated_at,
            updated_by: s.updated_by.clone(),
            next_runs: s
                .next_ticks(now, next)
                .into_iter()
                .map(|at| NextRun {
                    at,
                    utc: crate::schedule::format_in(chrono_tz::Tz::UTC, at),
                    local: crate::schedule::format_in(zone, at),
                })
                .collect(),
            history: runs.iter().map(RunView::from).collect(),
        }
    }
}

/// What a manual trigger did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TriggerAnswer {
    pub run: RunView,
    /// `false` when an earlier trigger with the same `Idempotency-Key` made `run`: nothing
    /// was submitted this time.
    pub created: bool,
}

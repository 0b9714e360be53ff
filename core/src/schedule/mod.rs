//! Schedules: a cron with a time zone that submits a job or a manifest template at each tick,
//! with an overlap and a missed-run policy. This module holds a schedule's record as the
//! store keeps it, its runs (the bounded history), what an operator sends and every problem
//! with it (`check`), and the shard a schedule belongs to. `cron.rs` is the tick maths with
//! its DST rule, `policy.rs` the decisions at a moment.
//!
//! S1: a tick submits at most once: the transaction that submits it also moves the
//! schedule's cursor past it and commits only while the schedule is exactly the record it
//! decided from (the store's `repo::schedules`: the cursor where the decision began, and no
//! edit since), and its jobs' idempotency keys are `schedule:NAME:TICK[:KEY]`. A manual
//! trigger with an idempotency key runs once per key: its jobs' keys are
//! `schedule:NAME:trigger-KEY[:JOBKEY]`.

pub mod cron;
pub mod policy;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use self::cron::{Cron, format_in, parse_zone};
pub use self::policy::{Due, Missed, MissedTicks, Overlap, OverlapDecision, due, on_overlap};
use crate::cluster::SHARDS;
use crate::job::{JobId, Millis};
use crate::manifest::{self, JobSpec};

/// How many runs a schedule's history keeps; older ones are deleted as new ones come.
pub const HISTORY_MAX: u64 = 50;

/// How many schedules a store holds (every node reads them all).
pub const SCHEDULES_MAX: usize = 1_000;

/// The longest catch-up window (`missed = "run_once"`), and the default.
pub const CATCHUP_WINDOW_MAX_S: u64 = 7 * 24 * 3600;
pub const CATCHUP_WINDOW_DEFAULT_S: u64 = 24 * 3600;

/// The longest idempotency key a manual trigger takes (a UUID is 36).
pub const TRIGGER_KEY_MAX_BYTES: usize = 64;

/// How many job ids a run keeps (a manifest of more keeps the first ones and the count).
pub const RUN_JOBS_MAX: usize = 100;

/// What a schedule submits. Kept as the text the operator sent, parsed again at each tick,
/// so a stored schedule does not depend on how job specs are encoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// A single-job spec, as JSON (`POST /v1/jobs`'s body; no `deps`, no idempotency key).
    Job(String),
    /// A manifest, as TOML or JSON (`POST /v1/manifests`'s body; no idempotency keys).
    Manifest(String),
}

/// Whether a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScheduleState {
    Active,
    Paused { since: Millis, by: String },
}

/// A schedule as the store keeps it: what the operator set, and where firing stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub name: String,
    pub cron: String,
    pub time_zone: String,
    pub overlap: Overlap,
    pub missed: Missed,
    pub catchup_window_s: u64,
    pub target: Target,
    pub state: ScheduleState,
    /// Every tick at or before this was fired or recorded missed (S1).
    pub cursor: Millis,
    /// The jobs of the latest run that submitted: what overlap looks at.
    pub previous_jobs: Vec<JobId>,
    /// Runs recorded so far; the next run's sequence number.
    pub runs: u64,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub updated_by: String,
}

/// Why a run happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Trigger {
    Tick,
    /// An operator's `trigger`, by name.
    Manual(String),
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Submitted {
        jobs: Vec<JobId>,
        total: u32,
    },
    /// The previous run's jobs were still running (`overlap = "skip"`).
    Skipped {
        reason: String,
    },
    /// The previous run's unfinished jobs were cancelled, then the tick submitted.
    CancelledPrevious {
        cancelled: Vec<JobId>,
        jobs: Vec<JobId>,
        total: u32,
    },
    Missed(MissedTicks),
    /// The submission was refused (the reason is the coordinator's).
    Failed {
        error: String,
    },
}

impl Outcome {
    /// The `outcome` label of `gigafactory_schedule_runs_total` and the API's word.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Submitted { .. } => "submitted",
            Outcome::Skipped { .. } => "skipped",
            Outcome::CancelledPrevious { .. } => "cancelled_previous",
            Outcome::Missed(_) => "missed",
            Outcome::Failed { .. } => "failed",
        }
    }

    pub const NAMES: [&'static str; 5] = [
        "submitted",
        "skipped",
        "cancelled_previous",
        "missed",
        "failed",
    ];

    /// The jobs this run submitted.
    pub fn jobs(&self) -> &[JobId] {
        match self {
            Outcome::Submitted { jobs, .. } | Outcome::CancelledPrevious { jobs, .. } => jobs,
            _ => &[],
        }
    }
}

/// One entry of a schedule's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub seq: u64,
    /// The tick fired (for a manual trigger, when it was asked; for missed ticks, the last).
    pub tick: Millis,
    pub at: Millis,
    pub node: Uuid,
    pub trigger: Trigger,
    pub outcome: Outcome,
}

/// What an operator sends, before checking.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Draft {
    pub cron: String,
    pub time_zone: Option<String>,
    pub overlap: Option<String>,
    pub missed: Option<String>,
    pub catchup_window_s: Option<u64>,
    /// The job spec as JSON text.
    pub job: Option<String>,
    pub manifest: Option<String>,
}

/// A draft that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub cron: String,
    pub time_zone: String,
    pub overlap: Overlap,
    pub missed: Missed,
    pub catchup_window_s: u64,
    pub target: Target,
}

/// Checks a schedule's name: 1 to 64 of `[a-z0-9._-]`, starting with a letter or digit.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a schedule name: 1 to 64 of [a-z0-9._-], starting with a letter or digit"
        ))
    }
}

/// Checks a draft, reporting every problem as `field: what is wrong` (`cron: ...`,
/// `job.priority: ...`). `now` is when it would start: a cron that never fires after it is
/// refused.
pub fn check(draft: &Draft, now: Millis) -> Result<Checked, Vec<String>> {
    let mut problems = Vec::new();
    let cron = Cron::parse(&draft.cron).map_err(|e| problems.push(format!("cron: {e}")));
    let zone_name = draft.time_zone.clone().unwrap_or_else(|| "UTC".to_owned());
    let zone = parse_zone(&zone_name).map_err(|e| problems.push(format!("time_zone: {e}")));
    if let (Ok(c), Ok(z)) = (&cron, zone)
        && c.next_tick(z, now).is_none()
    {
        problems.push(format!("cron: {:?} never fires", draft.cron));
    }
    let overlap = pick(
        &draft.overlap,
        "overlap",
        &Overlap::ALL,
        Overlap::name,
        &mut problems,
    );
    let missed = pick(
        &draft.missed,
        "missed",
        &Missed::ALL,
        Missed::name,
        &mut problems,
    );
    let catchup_window_s = draft.catchup_window_s.unwrap_or(CATCHUP_WINDOW_DEFAULT_S);
    if catchup_window_s > CATCHUP_WINDOW_MAX_S {
        problems.push(format!(
            "catchup_window_s: {catchup_window_s} is past the limit of {CATCHUP_WINDOW_MAX_S}"
        ));
    }
    let target = match (&draft.job, &draft.manifest) {
        (Some(job), None) => {
            check_job(job, &mut problems);
            Some(Target::Job(job.clone()))
        }
        (None, Some(text)) => {
            check_manifest(text, &mut problems);
            Some(Target::Manifest(text.clone()))
        }
        _ => {
            problems.push("job: give exactly one of job and manifest".to_owned());
            None
        }
    };
    match (cron, target) {
        (Ok(_), Some(target)) if problems.is_empty() => Ok(Checked {
            cron: draft.cron.trim().to_owned(),
            time_zone: zone_name,
            overlap: overlap.unwrap_or(Overlap::Skip),
            missed: missed.unwrap_or(Missed::Skip),
            catchup_window_s,
            target,
        }),
        _ => Err(problems),
    }
}

fn pick<T: Copy>(
    given: &Option<String>,
    field: &str,
    all: &[T],
    name: fn(T) -> &'static str,
    problems: &mut Vec<String>,
) -> Option<T> {
    let given = given.as_deref()?;
    // The CLI's spelling (`cancel-previous`) is the API's too.
    let found = all
        .iter()
        .copied()
        .find(|v| name(*v) == given.replace('-', "_"));
    if found.is_none() {
        let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
        problems.push(format!(
            "{field}: {given:?} is not one of {}",
            names.join(", ")
        ));
    }
    found
}

fn check_job(text: &str, problems: &mut Vec<String>) {
    match manifest::parse_job_spec_json(text) {
        Err(e) => problems.extend(e.0.iter().map(|p| format!("job.{p}"))),
        Ok(spec) => {
            if !spec.deps.is_empty() {
                problems.push("job.deps: a scheduled job has no parents".to_owned());
            }
            if spec.idempotency_key.is_some() {
                problems.push(
                    "job.idempotency_key: a schedule sets it (schedule:NAME:TICK)".to_owned(),
                );
            }
        }
    }
}

fn check_manifest(text: &str, problems: &mut Vec<String>) {
    match manifest::parse_manifest(text) {
        Err(e) => problems.extend(e.0.iter().map(|p| format!("manifest: {p}"))),
        Ok(m) => {
            for j in m.jobs.iter().filter(|j| j.idempotency_key.is_some()) {
                problems.push(format!(
                    "manifest: jobs[key={}].idempotency_key: a schedule sets it (schedule:NAME:TICK:KEY)",
                    j.key
                ));
            }
        }
    }
}

/// Checks a manual trigger's idempotency key: 1 to `TRIGGER_KEY_MAX_BYTES` of
/// `[A-Za-z0-9._-]`, so it sits in its jobs' keys (`schedule:NAME:trigger-KEY:JOBKEY`)
/// without a `:` that would make two of them read alike.
pub fn check_trigger_key(key: &str) -> Result<(), String> {
    let ok = (1..=TRIGGER_KEY_MAX_BYTES).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Idempotency-Key: must be 1 to {TRIGGER_KEY_MAX_BYTES} characters from [A-Za-z0-9._-], got {:?}",
            key.chars()
                .take(TRIGGER_KEY_MAX_BYTES + 1)
                .collect::<String>()
        ))
    }
}

/// What a manual trigger's jobs' keys are made from: its idempotency key, else the moment it
/// was asked (never alike: a key's part starts `trigger-`, a moment's `manual-`).
pub fn manual_run(at: Millis, key: Option<&str>) -> String {
    match key {
        Some(k) => format!("trigger-{k}"),
        None => format!("manual-{at}"),
    }
}

/// The idempotency key of a run's job: `run` is the tick (or [`manual_run`] for a trigger),
/// `key` the job's key in a manifest.
pub fn idempotency_key(name: &str, run: &str, key: Option<&str>) -> String {
    match key {
        Some(k) => format!("schedule:{name}:{run}:{k}"),
        None => format!("schedule:{name}:{run}"),
    }
}

/// The specs a run of `target` submits (`run`: its tick, or [`manual_run`]), each with its
/// idempotency key. Errors are the template's problems (checked when it was set, so only a
/// rule changed since then).
pub fn specs_for(name: &str, target: &Target, run: &str) -> Result<Vec<JobSpec>, String> {
    match target {
        Target::Job(text) => {
            let mut spec = manifest::parse_job_spec_json(text).map_err(|e| e.to_string())?;
            spec.idempotency_key = Some(idempotency_key(name, run, None));
            Ok(vec![spec])
        }
        Target::Manifest(text) => {
            let mut jobs = manifest::parse_manifest(text)
                .map_err(|e| e.to_string())?
                .jobs;
            for j in &mut jobs {
                j.idempotency_key = Some(idempotency_key(name, run, Some(&j.key)));
            }
            Ok(jobs)
        }
    }
}

/// The shard a schedule belongs to: its owner fires it.
pub fn shard_of_schedule(name: &str) -> u32 {
    let digest = Sha256::digest(name.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % SHARDS
}

impl Schedule {
    /// The cursor this schedule keeps when it is replaced by one with `cron` in `time_zone`:
    /// its own while its clock stays, else no earlier than `now`, so ticks the new clock has
    /// before the edit neither fire (`run_once`) nor count as missed.
    pub fn cursor_after_edit(&self, cron: &str, time_zone: &str, now: Millis) -> Millis {
        if self.cron == cron && self.time_zone == time_zone {
            self.cursor
        } else {
            self.cursor.max(now)
        }
    }

    /// What the policies owe at `now` by the schedule's clock (`clock()`, parsed once by the
    /// caller); ticks up to the cursor are decided, `grace_ms` as in [`due`].
    pub fn due_at(&self, (cron, zone): &(Cron, chrono_tz::Tz), now: Millis, grace_ms: u64) -> Due {
        let window_ms = self.catchup_window_s.saturating_mul(1_000);
        due(
            cron,
            *zone,
            self.cursor,
            now,
            self.missed,
            grace_ms,
            window_ms,
        )
    }

    /// The cron and zone, parsed (checked when set, so they parse).
    pub fn clock(&self) -> Result<(Cron, chrono_tz::Tz), String> {
        Ok((Cron::parse(&self.cron)?, parse_zone(&self.time_zone)?))
    }

    /// The next `n` ticks after `after`.
    pub fn next_ticks(&self, after: Millis, n: usize) -> Vec<Millis> {
        let Ok((cron, zone)) = self.clock() else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(n);
        let mut at = after;
        while out.len() < n {
            match cron.next_tick(zone, at) {
                Some(t) => {
                    out.push(t);
                    at = t;
                }
                None => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;

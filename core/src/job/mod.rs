//! Jobs and their state machine. Every change to a job is a pure function of the job, a
//! command and the time (`apply`); the store transaction and the actors only call it. The
//! invariants it keeps are numbered here once and cited wherever they are checked:
//!
//! - **J1** at most one live lease per job: only `Leased`, `Running` and `Preempting` hold one.
//! - **J2** epochs strictly increase: every new lease and every revocation of one (expiry,
//!   cancel, forced requeue) bumps the epoch, so a holder of an older epoch is fenced.
//! - **J3** a factory write is accepted only with the job's current epoch and only from the
//!   lease holder.
//! - **J4** a terminal job never changes state again (operator `retry` and `requeue` start a
//!   new life explicitly, with a new epoch).
//!
//! The review's own rules (R1, R2) are numbered in `review`, the questions' (Q1, Q2) in
//! `question`.

mod actions;
mod apply;
mod command;
pub mod question;
pub mod review;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::manifest::JobSpec;
use crate::scoring::ScoreBreakdown;
use crate::tracker::ItemRef;
use crate::usage::JobCost;

pub use actions::{ACTION_REASON_MAX_BYTES, Action, action_reason, allowed_actions};
pub use apply::{apply, check_fence, crossed_cost_cap};
pub use command::{Command, Effect, JobError};

/// Unix time in milliseconds. Core never reads a clock; callers pass it in.
pub type Millis = u64;

/// A job's id: a UUIDv7, so ids sort by creation time.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct JobId(pub Uuid);

/// A factory's id.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct FactoryId(pub Uuid);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for FactoryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The right of one factory to run a job until `expires_at`, fenced by `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub epoch: u64,
    pub factory: FactoryId,
    pub granted_at: Millis,
    pub expires_at: Millis,
}

/// Where a job is in its life. Only the states that hold a lease carry one (J1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JobState {
    /// Waiting for its parents to succeed.
    Pending,
    /// Ready to be placed once `not_before` has passed (0: at once).
    Queued {
        not_before: Millis,
    },
    /// A retryable failure, waiting out its backoff; claimable again after `retry_at`.
    Failed {
        retry_at: Millis,
    },
    /// Claimed; the factory has not reported it started.
    Leased {
        lease: Lease,
    },
    /// The factory reported progress (a renewal or a stage).
    Running {
        lease: Lease,
    },
    /// Asked to checkpoint and release for a higher-priority job, by `deadline`.
    Preempting {
        lease: Lease,
        by: Option<JobId>,
        deadline: Millis,
    },
    /// Finished; waits for an operator (or reviewer) to ship or reject it.
    Review,
    Succeeded,
    Shipped,
    Rejected,
    /// Failed `max_attempts` times, or ran out of its wall-clock budget.
    Dead,
    /// Cancelled by an operator (`by_parent` none), or because this parent ended dead,
    /// cancelled or rejected; that parent's new life brings the job back.
    Cancelled {
        by_parent: Option<JobId>,
    },
}

impl JobState {
    /// Every state's [`name`](Self::name), in the order of a job's life: what a filter by
    /// state may name (the API refuses any other, the CLI lists them on a typo).
    pub const NAMES: [&'static str; 12] = [
        "pending",
        "queued",
        "failed",
        "leased",
        "running",
        "preempting",
        "review",
        "succeeded",
        "shipped",
        "rejected",
        "dead",
        "cancelled",
    ];

    /// The stable lowercase name used by the API, the UI and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Queued { .. } => "queued",
            JobState::Failed { .. } => "failed",
            JobState::Leased { .. } => "leased",
            JobState::Running { .. } => "running",
            JobState::Preempting { .. } => "preempting",
            JobState::Review => "review",
            JobState::Succeeded => "succeeded",
            JobState::Shipped => "shipped",
            JobState::Rejected => "rejected",
            JobState::Dead => "dead",
            JobState::Cancelled { .. } => "cancelled",
        }
    }

    pub fn lease(&self) -> Option<&Lease> {
        match self {
            JobState::Leased { lease }
            | JobState::Running { lease }
            | JobState::Preempting { lease, .. } => Some(lease),
            _ => None,
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobState::Succeeded
                | JobState::Shipped
                | JobState::Rejected
                | JobState::Dead
                | JobState::Cancelled { .. }
        )
    }

    /// Terminal and good: children of such a parent may run.
    pub fn is_success(&self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Shipped)
    }

    /// Waiting for placement, and the earliest time it may be placed.
    pub fn ready_at(&self) -> Option<Millis> {
        match self {
            JobState::Queued { not_before } => Some(*not_before),
            JobState::Failed { retry_at } => Some(*retry_at),
            _ => None,
        }
    }
}

/// A job: what to run (`spec`) and where it is (`state` and the fields beside it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub spec: JobSpec,
    /// Parents, resolved to ids.
    pub parents: Vec<JobId>,
    pub state: JobState,
    /// Free-form progress the agent reports (`planning`, `coding`, `testing`).
    pub stage: Option<String>,
    /// The fencing token: the epoch of the current (or last) lease (J2).
    pub epoch: u64,
    /// Leases granted so far.
    pub attempts: u32,
    /// Attempts that ended in failure or expiry; `Dead` at `spec.max_attempts`.
    pub failures: u32,
    /// Where the last preempted attempt saved its work, handed to the next attempt.
    pub checkpoint: Option<String>,
    /// Why the last placement chose its factory.
    pub placement: Option<ScoreBreakdown>,
    pub last_error: Option<String>,
    pub exit_code: Option<i32>,
    /// Wall-clock time spent in finished leases, for the budget.
    pub run_ms: u64,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// Bumped on every write.
    pub rev: u64,
    /// What the job has spent: models it reported and its factories' time.
    pub cost: JobCost,
    /// The tracker item the job came from, whose tracker hears of its progress.
    pub origin: Option<ItemRef>,
    /// The concurrency limits whose count this lease holds (`core::limits`); given back
    /// when the lease ends.
    pub limit_slots: Vec<String>,
    /// Approvals of the review in progress, or of the one that shipped or rejected the job
    /// (R2: none in any other state).
    pub approvals: Vec<Approval>,
    /// Why a reviewer last asked for changes: handed to every attempt after it (as
    /// `GF_REVIEW_FEEDBACK`) until one completes.
    pub review_feedback: Option<String>,
    /// The question the job asked last (`question`): open while it waits for an answer, then
    /// with its outcome until the next one.
    pub question: Option<question::Question>,
}

/// A reviewer's approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Approval {
    /// The token's name.
    pub by: String,
    pub at: Millis,
}

/// Wall-clock time the job has run, counting the lease it holds now.
pub fn wall_clock_used(job: &Job, now: Millis) -> u64 {
    job.run_ms
        + job
            .state
            .lease()
            .map_or(0, |l| now.saturating_sub(l.granted_at))
}

/// Whether `new` repeats the submission that made `first` (they share an idempotency key):
/// the same spec, every field as stored (parsing filled in the defaults and sorted the
/// capabilities and labels, so two spellings of one spec compare equal), and, when the spec
/// names no parents in `deps` (a child added under a job, whose parent is in the path), the
/// same parents. Anything else is another job under a key already taken: a conflict, never
/// the old job.
pub fn same_submission(first: &Job, new: &Job) -> bool {
    first.spec == new.spec && (!new.spec.deps.is_empty() || first.parents == new.parents)
}

/// A new job as submitted: pending if it has parents, else queued.
pub fn new_job(id: JobId, spec: JobSpec, parents: Vec<JobId>, now: Millis) -> Job {
    let state = if parents.is_empty() {
        JobState::Queued { not_before: now }
    } else {
        JobState::Pending
    };
    Job {
        id,
        spec,
        parents,
        state,
        stage: None,
        epoch: 0,
        attempts: 0,
        failures: 0,
        checkpoint: None,
        placement: None,
        last_error: None,
        exit_code: None,
        run_ms: 0,
        created_at: now,
        updated_at: now,
        rev: 0,
        cost: JobCost::default(),
        origin: None,
        limit_slots: Vec::new(),
        approvals: Vec::new(),
        review_feedback: None,
        question: None,
    }
}

#[cfg(test)]
mod tests;

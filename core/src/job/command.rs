//! What can be asked of a job (`Command`), why a request is refused (`JobError`), and what a
//! change asks of the world outside once committed (`Effect`).

use serde::{Deserialize, Serialize};

use super::{FactoryId, JobId, Millis, question};
use crate::artifact::{ArtifactFile, ArtifactLimits};
use crate::budget::Micros;
use crate::event::EventKind;
use crate::scoring::ScoreBreakdown;

/// Who asks for a change: the lease holder, the scheduler/reaper, or an operator.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// The scheduler grants a lease.
    Claim {
        factory: FactoryId,
        ttl_ms: u64,
        placement: Option<ScoreBreakdown>,
        /// The factory's hourly rate: its time accrues to the job's cost while it holds it.
        rate_micros_per_hour: Micros,
        /// The concurrency limits the lease counts under (the claim transaction took a slot
        /// of each); the job holds them until its lease ends.
        limit_slots: Vec<String>,
    },
    /// The holder extends its lease (and so shows it is alive).
    Renew {
        factory: FactoryId,
        epoch: u64,
        ttl_ms: u64,
    },
    /// The holder reports progress.
    Stage {
        factory: FactoryId,
        epoch: u64,
        stage: String,
    },
    /// The holder reports what the job spent on a model (priced by the coordinator).
    Usage {
        factory: FactoryId,
        epoch: u64,
        model: String,
        input_tokens: u64,
        output_tokens: u64,
        micros: Micros,
    },
    /// The holder saved a file, already in the blob store; it is kept if it fits `limits`.
    Artifact {
        factory: FactoryId,
        epoch: u64,
        file: Box<ArtifactFile>,
        limits: ArtifactLimits,
    },
    /// The holder finished the job successfully.
    Complete {
        factory: FactoryId,
        epoch: u64,
    },
    /// The holder reports a failure; `retryable: false` kills the job at once.
    Fail {
        factory: FactoryId,
        epoch: u64,
        error: String,
        exit_code: Option<i32>,
        retryable: bool,
        jitter: f64,
    },
    /// The holder gives the job back (after a preemption), with a checkpoint to resume from.
    Release {
        factory: FactoryId,
        epoch: u64,
        checkpoint: Option<String>,
        /// The model provider throttled the job until then: it waits for it, and so does every
        /// job of its engine class (the store throttles `engine:<class>`).
        throttled_until: Option<Millis>,
    },
    /// The reaper: the lease ran out (or the preemption grace did). `jitter` in [0, 1).
    /// `blamed`: whether it counts as a failure of the job (not when the lease ran out while
    /// no coordinator node could hear its renewals; see `crate::hearing`).
    Expire {
        jitter: f64,
        blamed: bool,
    },
    /// The reaper: the job used up its wall-clock budget (refused while it has not).
    BudgetExhausted,
    /// The scheduler asks the holder to make room for `by`.
    Preempt {
        by: Option<JobId>,
        grace_ms: u64,
    },
    /// Every parent succeeded.
    ParentsDone,
    /// `parent` ended in `state` (dead, cancelled or rejected): the job can never run.
    ParentEnded {
        parent: JobId,
        state: &'static str,
    },
    /// `parent`, which cancelled the job, started a new life.
    ParentRevived {
        parent: JobId,
    },
    /// Operator actions, each with the reason the operator gave, if any (checked by
    /// `job::action_reason`, kept in the action's event).
    Cancel {
        reason: Option<String>,
    },
    Requeue {
        reason: Option<String>,
    },
    Retry {
        reason: Option<String>,
    },
    /// A reviewer (a token's name) approves the job in review; it ships with its last
    /// approval needed (see `review`).
    Ship {
        by: String,
        reason: Option<String>,
    },
    /// A reviewer ends the job in review for good.
    Reject {
        by: String,
        reason: Option<String>,
    },
    /// A reviewer sends the job in review back for a new attempt, which is handed `reason`.
    RequestChanges {
        by: String,
        reason: String,
    },
    /// The holder asks an operator a question (Q1: one open at a time).
    Ask {
        factory: FactoryId,
        epoch: u64,
        ask: question::Ask,
    },
    /// An operator (a token's name) answers the job's open question, which must be
    /// `question_id` (the one they read), with an optional note.
    Answer {
        question_id: String,
        by: String,
        answer: String,
        note: Option<String>,
    },
    /// The coordinator: the open question reached its timeout (refused before it did).
    QuestionTimeout,
}

impl Command {
    /// A short name for events and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Claim { .. } => "claim",
            Command::Usage { .. } => "usage",
            Command::Artifact { .. } => "artifact",
            Command::Renew { .. } => "renew",
            Command::Stage { .. } => "stage",
            Command::Complete { .. } => "complete",
            Command::Fail { .. } => "fail",
            Command::Release { .. } => "release",
            Command::Expire { .. } => "expire",
            Command::BudgetExhausted => "budget_exhausted",
            Command::Preempt { .. } => "preempt",
            Command::ParentsDone => "parents_done",
            Command::ParentEnded { .. } => "parent_ended",
            Command::ParentRevived { .. } => "parent_revived",
            Command::Cancel { .. } => "cancel",
            Command::Requeue { .. } => "requeue",
            Command::Retry { .. } => "retry",
            Command::Ship { .. } => "ship",
            Command::Reject { .. } => "reject",
            Command::RequestChanges { .. } => "request_changes",
            Command::Ask { .. } => "ask",
            Command::Answer { .. } => "answer",
            Command::QuestionTimeout => "question_timeout",
        }
    }

    /// What the timeline calls this change.
    pub fn event_kind(&self) -> EventKind {
        match self {
            Command::Claim { .. } => EventKind::Claim,
            Command::Renew { .. } => EventKind::Renew,
            Command::Stage { .. } => EventKind::Stage,
            Command::Usage { .. } => EventKind::Usage,
            Command::Artifact { .. } => EventKind::Artifact,
            Command::Complete { .. } => EventKind::Complete,
            Command::Fail { .. } => EventKind::Fail,
            Command::Release { .. } => EventKind::Release,
            Command::Expire { .. } => EventKind::Expire,
            Command::BudgetExhausted => EventKind::BudgetExhausted,
            Command::Preempt { .. } => EventKind::Preempt,
            Command::ParentsDone => EventKind::ParentsDone,
            Command::ParentEnded { .. } => EventKind::ParentEnded,
            Command::ParentRevived { .. } => EventKind::ParentRevived,
            Command::Cancel { .. } => EventKind::Cancel,
            Command::Requeue { .. } => EventKind::Requeue,
            Command::Retry { .. } => EventKind::Retry,
            Command::Ship { .. } => EventKind::Ship,
            Command::Reject { .. } => EventKind::Reject,
            Command::RequestChanges { .. } => EventKind::RequestChanges,
            Command::Ask { .. } => EventKind::Ask,
            Command::Answer { .. } => EventKind::Answer,
            Command::QuestionTimeout => EventKind::QuestionTimeout,
        }
    }

    /// The optional reason an operator gave with an action (a request for changes' required
    /// one is its feedback, not this).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Command::Cancel { reason }
            | Command::Requeue { reason }
            | Command::Retry { reason }
            | Command::Ship { reason, .. }
            | Command::Reject { reason, .. } => reason.as_deref(),
            _ => None,
        }
    }

    /// Whether the outcome depends on where the job's parents stand (see [`apply`]).
    pub fn needs_parents(&self) -> bool {
        matches!(
            self,
            Command::Retry { .. }
                | Command::Requeue { .. }
                | Command::RequestChanges { .. }
                | Command::ParentsDone
                | Command::ParentRevived { .. }
        )
    }

    /// The lease a factory write claims to hold: its writer and epoch (`None` for commands
    /// that are not factory writes).
    pub fn fence(&self) -> Option<(FactoryId, u64)> {
        match self {
            Command::Renew { factory, epoch, .. }
            | Command::Stage { factory, epoch, .. }
            | Command::Usage { factory, epoch, .. }
            | Command::Artifact { factory, epoch, .. }
            | Command::Complete { factory, epoch }
            | Command::Fail { factory, epoch, .. }
            | Command::Release { factory, epoch, .. }
            | Command::Ask { factory, epoch, .. } => Some((*factory, *epoch)),
            _ => None,
        }
    }
}

/// Why a command was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The write carries an epoch that is no longer current (J3): the writer lost its lease.
    #[error("stale epoch {presented}: the job's epoch is {current}")]
    Fenced { presented: u64, current: u64 },
    /// The writer does not hold the job's lease.
    #[error("the lease is held by another factory")]
    NotLeaseHolder,
    /// The command makes no sense in the job's state.
    #[error("cannot {command} a job that is {state}")]
    IllegalTransition {
        command: &'static str,
        state: &'static str,
    },
    /// Placement asked too early.
    #[error("the job is not ready before {not_before}")]
    NotReady { not_before: Millis },
    /// The job cannot start a new life while this parent stays ended: retry the parent.
    #[error("parent {parent} is {state}: retry it first")]
    ParentEnded { parent: JobId, state: &'static str },
    /// The job spent past its own cost budget; it cannot start a new life.
    #[error("the job spent {} of its {} cost budget", crate::budget::format_usd(*spent_micros), crate::budget::format_usd(*cap_micros))]
    CostCapReached {
        spent_micros: Micros,
        cap_micros: Micros,
    },
    /// The wall-clock budget is not used up yet.
    #[error("the job is within its wall-clock budget")]
    WithinBudget,
    /// The caller may not decide this job's review: ask one of its reviewers.
    #[error("{by} is not a reviewer of this job (its reviewers: {reviewers})")]
    NotAReviewer { by: String, reviewers: String },
    /// The reviewer approved this review already: another reviewer must approve it.
    #[error(
        "{by} approved this job already ({given} of {required} approvals): it needs another reviewer"
    )]
    AlreadyApproved {
        by: String,
        given: usize,
        required: u32,
    },
    /// A request for changes without a usable reason: give one.
    #[error("{0}")]
    InvalidReason(String),
    /// A question, or an answer to one, was refused (see `question::QuestionError`).
    #[error("{0}")]
    Question(question::QuestionError),
}

/// A consequence of a transition that someone outside must carry out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// Tell the factory holding `epoch` to stop (cancel) the job.
    StopOnFactory { factory: FactoryId, epoch: u64 },
    /// Tell the factory to checkpoint and release by `deadline`.
    PreemptOnFactory {
        factory: FactoryId,
        epoch: u64,
        deadline: Millis,
    },
    /// The job reached a terminal state: wake its children.
    Finished,
    /// The job can be placed (again) from `at`.
    Ready { at: Millis },
}

//! The actor room's error type. The API maps each variant to one HTTP status and a stable
//! `error` code, in one place.

use gigafactory_core::job::JobError;
use gigafactory_core::job::question::QuestionError;
use gigafactory_storage::repo::RepoError;

pub type Result<T, E = CoordError> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoordError {
    /// No such job, factory or token. Check the id.
    #[error("{0} not found")]
    NotFound(String),
    /// The write's epoch is not the job's current one: the writer lost its lease and must stop.
    #[error("stale epoch {presented}: the job's epoch is {current}")]
    Fenced { presented: u64, current: u64 },
    /// The lease belongs to another factory.
    #[error("the lease is held by another factory")]
    NotLeaseHolder,
    /// The action makes no sense in the job's (or factory's) state; nothing changed.
    #[error("cannot {command} a {subject} that is {state}")]
    IllegalTransition {
        /// `job` or `factory`.
        subject: &'static str,
        command: &'static str,
        state: &'static str,
    },
    /// The reviewer approved this review already; another reviewer must approve it.
    #[error("{0}")]
    AlreadyApproved(String),
    /// The job cannot start a new life while this parent stays ended; retry the parent first.
    #[error("parent {parent} is {state}: retry it first")]
    ParentEnded { parent: String, state: &'static str },
    /// The job spent past its own cost budget: it cannot start a new life.
    #[error("{0}")]
    CostCapReached(String),
    /// A budget holds the job (paused or exhausted); resume or raise the budget.
    #[error("{0}")]
    BudgetHeld(String),
    /// A concurrency or rate limit holds the job from a lease now.
    #[error("{0}")]
    LimitHeld(String),
    /// The job's output reached its bound; this chunk and the rest of the output are not
    /// kept. Stop sending output for this job.
    #[error("the job's output passed its limit of {limit_bytes} bytes; the rest is not kept")]
    LogLimitExceeded { limit_bytes: u64 },
    /// The artifact, or the job's artifacts with it, pass a limit; nothing was kept.
    #[error("{0}")]
    ArtifactLimit(String),
    /// The request is malformed or breaks a rule; nothing changed.
    #[error("{0}")]
    Invalid(String),
    /// A question to an operator conflicts with the job's: none is open to answer (any
    /// more), or one is open already; nothing changed.
    #[error("{0}")]
    QuestionConflict(String),
    /// The manifest has these problems; nothing was submitted.
    #[error("invalid manifest: {} problem(s)", .0.len())]
    InvalidManifest(Vec<String>),
    /// The schedule has these problems (`field: problem`); nothing changed.
    #[error("invalid schedule: {}", .0.join("; "))]
    InvalidSchedule(Vec<String>),
    /// Each entry names a job (with its location in a manifest) whose idempotency key is
    /// another job's, submitted with another spec; nothing was submitted. Send the same spec
    /// again to get the existing job, or use a new key.
    #[error("{}", conflicts_message(.0))]
    IdempotencyConflict(Vec<String>),
    /// Missing, revoked or expired credentials.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// A secret that matches no token, as a guess would: the API counts these per peer and
    /// throttles a peer that makes too many.
    #[error("unauthorized: unknown token")]
    UnknownToken,
    /// Valid credentials without the right to do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Too much work queued for this target; retry after a short wait.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// The store cannot be reached; retry after a short wait.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store may or may not have committed the change; re-read, then retry.
    #[error("outcome unknown: {0}")]
    CommitUnknown(String),
    /// A bug or an invariant broken; logged with details.
    #[error("internal error: {0}")]
    Internal(String),
    /// The node was started without a secrets key, and the request needs one; start it with
    /// `--secrets-key-file` or `GIGAFACTORY_SECRETS_KEY`.
    #[error("{0}")]
    SecretsNotConfigured(String),
    /// A stored secret does not open with the node's key (another key, or a changed record);
    /// start the node with the key the secret was set with, or set the secret again.
    #[error("{0}")]
    SecretsUnreadable(String),
}

impl CoordError {
    /// Whether the change this error answers may have been applied all the same.
    pub fn may_have_committed(&self) -> bool {
        matches!(self, CoordError::CommitUnknown(_))
    }
}

impl From<gigafactory_storage::Error> for CoordError {
    fn from(e: gigafactory_storage::Error) -> Self {
        use gigafactory_storage::Error as E;
        match e {
            E::KeyTooLarge { .. } | E::ValueTooLarge { .. } | E::TransactionTooLarge { .. } => {
                CoordError::Invalid(e.to_string())
            }
            E::RetryLimitReached { .. } => CoordError::Overloaded(e.to_string()),
            E::CommitUnknown(_) => CoordError::CommitUnknown(e.to_string()),
            E::Unavailable(_) | E::Closed | E::TransactionTooOld { .. } | E::Conflict => {
                CoordError::Unavailable(e.to_string())
            }
            E::Engine(_) | E::Codec(_) | E::Config(_) => CoordError::Internal(e.to_string()),
        }
    }
}

impl From<JobError> for CoordError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::Fenced { presented, current } => CoordError::Fenced { presented, current },
            JobError::NotLeaseHolder => CoordError::NotLeaseHolder,
            JobError::IllegalTransition { command, state } => CoordError::IllegalTransition {
                subject: "job",
                command,
                state,
            },
            JobError::ParentEnded { parent, state } => CoordError::ParentEnded {
                parent: parent.to_string(),
                state,
            },
            e @ JobError::CostCapReached { .. } => CoordError::CostCapReached(e.to_string()),
            JobError::WithinBudget => CoordError::IllegalTransition {
                subject: "job",
                command: "budget_exhausted",
                state: "within its budget",
            },
            e @ JobError::NotAReviewer { .. } => CoordError::Forbidden(e.to_string()),
            e @ JobError::AlreadyApproved { .. } => CoordError::AlreadyApproved(e.to_string()),
            JobError::InvalidReason(why) => CoordError::Invalid(why),
            JobError::Question(e) => match e {
                QuestionError::NotAChoice { .. } | QuestionError::Invalid(_) => {
                    CoordError::Invalid(e.to_string())
                }
                QuestionError::NoOpenQuestion(_)
                | QuestionError::AlreadyOpen(_)
                | QuestionError::NotDue(_)
                | QuestionError::Changed { .. } => CoordError::QuestionConflict(e.to_string()),
            },
            JobError::NotReady { not_before } => CoordError::IllegalTransition {
                subject: "job",
                command: "claim",
                state: if not_before > 0 {
                    "backing off"
                } else {
                    "queued"
                },
            },
        }
    }
}

fn conflicts_message(conflicts: &[String]) -> String {
    match conflicts {
        [one] => format!("{one}; nothing was submitted"),
        many => format!(
            "{} idempotency keys belong to jobs submitted with another spec; nothing was \
             submitted",
            many.len()
        ),
    }
}

impl From<RepoError> for CoordError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::NotFound(id) => CoordError::NotFound(format!("job {id}")),
            RepoError::Job(j) => j.into(),
            RepoError::Held(hold) => CoordError::BudgetHeld(hold.message),
            RepoError::Limited(hold) => CoordError::LimitHeld(hold.message()),
            RepoError::Artifact(a) => CoordError::ArtifactLimit(a.to_string()),
            e @ RepoError::BlobCollected => CoordError::Unavailable(e.to_string()),
            RepoError::Store(s) => s.into(),
        }
    }
}

impl From<ractor::RactorErr<()>> for CoordError {
    fn from(e: ractor::RactorErr<()>) -> Self {
        CoordError::Unavailable(format!("actor unavailable: {e}"))
    }
}

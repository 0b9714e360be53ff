//! The factory agent's one error type. An `AgentError` reaching the caller of [`crate::run`]
//! means the agent stopped; each variant says what the operator should do about it. Trouble
//! with one job (its process failed, its lease was lost) is never an `AgentError`: it is
//! reported to the coordinator and the agent carries on.

use std::path::PathBuf;

/// Result of the agent's public functions.
pub type Result<T, E = AgentError> = std::result::Result<T, E>;

/// Why the agent (or a `gigafactory job ...` helper) stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration cannot work (no coordinator URL, zero slots, an unusable URL). Fix the
    /// flags and start again.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The coordinator refused the enrollment token (unknown, expired or already spent). Ask an
    /// operator for a new enrollment token and start again.
    #[error("the coordinator refused the enrollment token: {0}")]
    EnrollRefused(String),
    /// The coordinator refused this factory's own token: an operator revoked it (or rotated it
    /// elsewhere). The agent does not re-enroll by itself; delete `path` and start again with a
    /// new enrollment token if this machine should keep working.
    #[error(
        "the coordinator refused this factory's token (revoked?): delete {} and enroll again",
        path.display()
    )]
    Revoked { path: PathBuf },
    /// The coordinator refused a request in a way no retry can fix (a 4xx other than the ones
    /// the protocol expects): the agent and the coordinator disagree on the API. Upgrade one of
    /// them; report it if they are the same version.
    #[error("the coordinator refused {what}: http {status} {code}: {message}")]
    Refused {
        what: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    /// The stored identity file cannot be read as JSON. Restore it, or delete it to enroll this
    /// machine as a new factory.
    #[error("identity file {} is corrupt: {source}", path.display())]
    CorruptIdentity {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A local file operation failed (the work directory is missing, full or not writable).
    /// Fix the disk or permissions and start again.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client could not be built (the platform lacks something reqwest needs). Not
    /// retryable.
    #[error("cannot build the http client: {0}")]
    Http(#[source] reqwest::Error),
    /// `gigafactory job stage|checkpoint|usage|artifact` ran outside a job: `GF_CONTROL_DIR` is not set. Run
    /// it only from inside a job's command.
    #[error("GF_CONTROL_DIR is not set: this command only works inside a gigafactory job")]
    NotInJob,
    /// A stage name, checkpoint reference, usage report or artifact is not one the coordinator would
    /// take (empty, too long, a line break, over a limit). Pass a value within the limits.
    #[error("invalid {what}: {reason}")]
    InvalidValue { what: &'static str, reason: String },
    /// `gigafactory job usage|artifact` found this many reports or files still waiting in
    /// `dir`: the agent is not sending them (it is stopped, or cannot reach a coordinator).
    /// Check the factory agent; what was already written is sent once it takes it.
    #[error(
        "{pending} {what} wait unsent in {}: the factory agent is not taking them",
        dir.display()
    )]
    Backlog {
        what: &'static str,
        pending: usize,
        dir: PathBuf,
    },
}

impl AgentError {
    /// An I/O error with what the agent was doing when it happened.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        AgentError::Io {
            context: context.into(),
            source,
        }
    }
}

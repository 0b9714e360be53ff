//! The load harness's one error type. An [`Error`] reaching the caller of
//! [`super::run`] means the bench stopped; each variant says what to do about it. A run that
//! finished but does not add up is an error too ([`Error::Check`]), returned after its figures
//! were printed.

/// Result of the harness's functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why `gigafactory bench` stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag is out of range, contradicts another, or names a coordinator off loopback. Fix the
    /// command line.
    #[error("{0}")]
    Usage(String),
    /// A coordinator node or the local etcd cluster could not be started, did not get ready, or
    /// the nodes did not share the shards in time. The message carries the end of the node's
    /// log where there is one; a shared machine under heavy load can be the cause.
    #[error("{0}")]
    Setup(String),
    /// A request to a coordinator got no usable answer (after the retries the request allows),
    /// was refused, or its answer was not what the API promises. `what` names the request.
    #[error("{what}: {why}")]
    Request { what: String, why: String },
    /// A local file, directory or process operation failed (the current directory is not
    /// writable, a port could not be had). Fix the disk or permissions and run again.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The run ended but does not add up: it stopped on an error, timed out, or the store's count
    /// disagrees with what the bench saw. Its figures were printed first; they are not a
    /// measurement.
    #[error("{0}")]
    Check(String),
    /// One phase of the cluster comparison failed; `source` says how.
    #[error("{phase}: {source}")]
    Phase {
        phase: &'static str,
        #[source]
        source: Box<Error>,
    },
    /// A task of the harness panicked: a bug of the harness. Report it.
    #[error("a bench task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// Ctrl-C or SIGTERM: the coordinators the bench started are gone with it.
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// An I/O error with what the harness was doing when it happened.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A request to a coordinator that failed, with what it was.
    pub(crate) fn request(what: impl Into<String>, why: impl Into<String>) -> Self {
        Error::Request {
            what: what.into(),
            why: why.into(),
        }
    }
}

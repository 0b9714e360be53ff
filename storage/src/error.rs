//! The storage crate's one error type. Each variant says what the caller should do about it;
//! callers above this crate map them to HTTP once (see `api`).

use std::time::Duration;

/// Result of every storage operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in a store. `transact` retries [`Error::Conflict`] by itself, at the
/// commit or met by a read; every other variant reaches the caller. Each engine maps its own
/// failures onto these the same way for the same cause (the table in ARCHITECTURE.md).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// A key longer than the engine-independent limit. Fix the key layout; retrying won't help.
    #[error("key of {len} bytes is over the {max}-byte limit")]
    KeyTooLarge { len: usize, max: usize },
    /// A value longer than the limit. Split the value (log chunks, for instance).
    #[error("value of {len} bytes is over the {max}-byte limit")]
    ValueTooLarge { len: usize, max: usize },
    /// The transaction was charged more than the limit (its writes, and its reads' conflict
    /// ranges once it writes: see [`crate::limits`]). Split the work into several transactions.
    #[error("transaction of {size} bytes is over the {max}-byte limit")]
    TransactionTooLarge { size: usize, max: usize },
    /// The transaction ran longer than the limit. Do less in one transaction.
    #[error("transaction ran {elapsed:?}, over the {max:?} limit")]
    TransactionTooOld { elapsed: Duration, max: Duration },
    /// Another transaction changed what this one read, or the engine asked for the
    /// transaction to start over with nothing of it applied (a replica behind, a read version
    /// lost in a recovery, throttling). Retried by `transact`; seen by a caller only through
    /// [`Error::RetryLimitReached`].
    #[error("transaction conflicted with a concurrent commit")]
    Conflict,
    /// `transact` gave up after this many conflicting attempts. The store is overloaded or one
    /// key is too hot; back off, or split the hot key.
    #[error("transaction gave up after {attempts} conflicting attempts")]
    RetryLimitReached { attempts: u32 },
    /// The commit may or may not have been applied (a lost connection, a failed fsync). The
    /// caller must re-read to find out; blind retry could apply it twice.
    #[error("commit outcome unknown: {0}")]
    CommitUnknown(String),
    /// The engine cannot be reached now; nothing was applied. Retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The engine refused the request for a reason that will not change on retry.
    #[error("store refused the request: {0}")]
    Engine(String),
    /// A stored value could not be decoded: corrupt data or a record written by an unknown
    /// version of the code. Not retryable.
    #[error("stored value cannot be decoded: {0}")]
    Codec(String),
    /// The store URL or options are wrong. Fix the configuration.
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// The store was closed or its committer stopped. Reopen it.
    #[error("store is closed")]
    Closed,
}

impl Error {
    /// Whether a fresh attempt of the same transaction may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Conflict)
    }
}

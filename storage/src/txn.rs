//! The `Store` and `Transaction` contract every engine implements, and `transact`, the retry
//! loop all callers use. The model is FoundationDB's: serializable transactions over an ordered
//! key space, optimistic, retried on conflict.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use rand::Rng;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::limits::RANGE_MAX_ROWS;

/// A half-open key range `[begin, end)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyRange {
    pub begin: Vec<u8>,
    pub end: Vec<u8>,
}

impl KeyRange {
    pub fn new(begin: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        KeyRange {
            begin: begin.into(),
            end: end.into(),
        }
    }

    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Self {
        KeyRange {
            begin: prefix.to_vec(),
            end: prefix_end(prefix),
        }
    }

    /// The range holding exactly `key`.
    pub fn single(key: &[u8]) -> Self {
        let mut end = key.to_vec();
        end.push(0);
        KeyRange {
            begin: key.to_vec(),
            end,
        }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.begin.as_slice() && key < self.end.as_slice()
    }

    pub fn is_empty(&self) -> bool {
        self.begin >= self.end
    }

    pub fn overlaps(&self, other: &KeyRange) -> bool {
        self.begin < other.end && other.begin < self.end
    }
}

/// The first key after every key that starts with `prefix`. The empty prefix (the whole key
/// space) ends at `[0xff]`, which no user key reaches: keys starting with 0xff are reserved, as
/// in FoundationDB.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff]
}

/// How a range read runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeOptions {
    /// Most rows returned; at most [`RANGE_MAX_ROWS`].
    pub limit: usize,
    /// Newest-first (descending key order).
    pub reverse: bool,
    /// A snapshot read adds no read conflict: a concurrent change to the range does not abort
    /// this transaction.
    pub snapshot: bool,
}

impl RangeOptions {
    pub fn limit(limit: usize) -> Self {
        RangeOptions {
            limit,
            reverse: false,
            snapshot: false,
        }
    }

    pub fn reverse(mut self) -> Self {
        self.reverse = true;
        self
    }

    pub fn snapshot(mut self) -> Self {
        self.snapshot = true;
        self
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.limit == 0 || self.limit > RANGE_MAX_ROWS {
            return Err(Error::Engine(format!(
                "range limit {} is outside 1..={RANGE_MAX_ROWS}",
                self.limit
            )));
        }
        Ok(())
    }

    /// The range a read of `range` that returned `rows` depends on, FoundationDB's rule: all of
    /// it, unless the read stopped at its limit, in which case only the part it saw.
    pub(crate) fn conflict_range(&self, range: &KeyRange, rows: &[KeyValue]) -> KeyRange {
        match rows.last() {
            Some((last, _)) if rows.len() == self.limit => {
                if self.reverse {
                    KeyRange::new(last.clone(), range.end.clone())
                } else {
                    KeyRange::new(range.begin.clone(), KeyRange::single(last).end)
                }
            }
            _ => range.clone(),
        }
    }
}

/// One row of a range read.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// What a watch observes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchTarget {
    /// One key: fires when it is set, cleared or added to.
    Key(Vec<u8>),
    /// Every key under a prefix.
    Prefix(Vec<u8>),
}

impl WatchTarget {
    pub(crate) fn range(&self) -> KeyRange {
        match self {
            WatchTarget::Key(k) => KeyRange::single(k),
            WatchTarget::Prefix(p) => KeyRange::prefix(p),
        }
    }
}

/// A one-shot notification that a watched key or prefix changed after the read version of the
/// transaction that created it. Re-arm by creating a new watch in a new transaction, after
/// reading what changed: nothing committed between the two is missed.
pub struct Watch {
    pub(crate) fired: oneshot::Receiver<Result<()>>,
}

/// Resolves when the change happens. An error means the watch could not be kept (the engine
/// lost its connection); the caller should re-read and re-arm, as after a change.
impl Future for Watch {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.fired)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Closed)))
    }
}

/// One transaction. Writes are buffered (or sent to the engine) and become visible to others
/// only at commit; reads see this transaction's own writes. Every write checks the limits and
/// the reserved-key rule in [`crate::limits`] and a write that breaks one poisons the
/// transaction: its commit fails with the same error, so nothing of it is written even if the
/// caller ignored the first error.
pub trait Transaction: Send + 'static {
    fn get(&mut self, key: &[u8]) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
    /// Like `get`, without a read conflict.
    fn get_snapshot(&mut self, key: &[u8]) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
    fn get_range(
        &mut self,
        range: &KeyRange,
        opts: RangeOptions,
    ) -> impl Future<Output = Result<Vec<KeyValue>>> + Send;
    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
    fn clear(&mut self, key: &[u8]) -> Result<()>;
    fn clear_range(&mut self, range: &KeyRange) -> Result<()>;
    /// Adds `delta` to the little-endian signed integer stored at `key` (absent counts as 0)
    /// without a read conflict: concurrent adders do not abort each other.
    fn atomic_add(&mut self, key: &[u8], delta: i64) -> Result<()>;
    /// A watch that fires on any change to `target` committed after this transaction's read
    /// version. It is armed whether or not this transaction commits.
    fn watch(&mut self, target: WatchTarget) -> impl Future<Output = Result<Watch>> + Send;
    fn commit(self) -> impl Future<Output = Result<()>> + Send;
    /// Whether an operation of this transaction already failed with an error a fresh attempt
    /// may not meet ([`Error::is_retryable`]: a conflict, a cluster recovery, throttling). The
    /// transaction is then poisoned with that error, and `transact!` starts over however the
    /// body ended, as FoundationDB's `on_error` does.
    fn must_retry(&self) -> bool {
        false
    }
}

/// An ordered, transactional key-value store.
pub trait Store: Clone + Send + Sync + 'static {
    type Txn: Transaction;

    /// Starts a transaction at the latest committed version.
    fn begin(&self) -> impl Future<Output = Result<Self::Txn>> + Send;

    /// A watch armed at the latest committed version.
    fn watch(&self, target: WatchTarget) -> impl Future<Output = Result<Watch>> + Send {
        async move {
            let mut txn = self.begin().await?;
            txn.watch(target).await
        }
    }
}

/// How `transact` retries conflicts.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts before [`Error::RetryLimitReached`].
    pub attempts_max: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts_max: 100,
            backoff_initial: Duration::from_millis(1),
            backoff_max: Duration::from_millis(200),
        }
    }
}

impl RetryPolicy {
    /// Full-jitter backoff before attempt `attempt + 1` (AWS' "full jitter": a uniform draw
    /// below the capped exponential, so colliding writers spread out).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .backoff_initial
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.backoff_max);
        let nanos = cap.as_nanos() as u64;
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }
}

/// Runs a body in a transaction and commits it, retrying on conflict with capped, jittered
/// exponential backoff: `transact!(store, |tx| { ...; Ok(value) })` (with `tx: &mut Txn`) or
/// `transact!(store, policy, |tx| ...)`. The body is an expression of type `Result<T, E>` with
/// `E: From<Error>`; it must be idempotent, since it may run several times and only the last
/// run's writes are committed. An error from the body aborts without writing.
///
/// A macro rather than a function taking an async closure: the body is inlined into the
/// caller's future, so that future stays `Send` (a closure taking `&mut Txn` would need
/// higher-ranked bounds that stable Rust cannot yet state for async closures).
#[macro_export]
macro_rules! transact {
    ($store:expr, |$tx:ident| $body:expr) => {
        $crate::transact!($store, $crate::RetryPolicy::default(), |$tx| $body)
    };
    ($store:expr, $policy:expr, |$tx:ident| $body:expr) => {{
        use $crate::{Store as _, Transaction as _};
        let store = &$store;
        let mut attempts = $crate::Attempts::new($policy);
        loop {
            let mut txn = match store.begin().await {
                Ok(txn) => txn,
                Err(e) => break Err(e.into()),
            };
            let outcome = {
                let $tx = &mut txn;
                async { $body }.await
            };
            match attempts.finish(txn, outcome).await {
                $crate::Attempt::Done(result) => break result,
                $crate::Attempt::Retry => continue,
            }
        }
    }};
}

/// What `transact!` does after one attempt.
pub enum Attempt<T, E> {
    Done(Result<T, E>),
    Retry,
}

/// The retry state of one `transact!`.
pub struct Attempts {
    policy: RetryPolicy,
    conflicts: u32,
}

impl Attempts {
    pub fn new(policy: RetryPolicy) -> Self {
        Attempts {
            policy,
            conflicts: 0,
        }
    }

    /// Commits `txn` if the body succeeded; on a conflict, at the commit or met by the body
    /// (which may have returned any error after it), waits out the backoff and asks for another
    /// attempt.
    pub async fn finish<X: Transaction, T, E: From<Error>>(
        &mut self,
        txn: X,
        outcome: Result<T, E>,
    ) -> Attempt<T, E> {
        let value = match outcome {
            Ok(v) => v,
            Err(_) if txn.must_retry() => return self.retry().await,
            Err(e) => return Attempt::Done(Err(e)),
        };
        match txn.commit().await {
            Ok(()) => Attempt::Done(Ok(value)),
            Err(e) if e.is_retryable() => self.retry().await,
            Err(e) => Attempt::Done(Err(e.into())),
        }
    }

    async fn retry<T, E: From<Error>>(&mut self) -> Attempt<T, E> {
        self.conflicts += 1;
        if self.conflicts >= self.policy.attempts_max {
            return Attempt::Done(Err(Error::RetryLimitReached {
                attempts: self.conflicts,
            }
            .into()));
        }
        tokio::time::sleep(self.policy.backoff(self.conflicts)).await;
        Attempt::Retry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_skips_trailing_ff_bytes() {
        assert_eq!(prefix_end(b"ab"), b"ac".to_vec());
        assert_eq!(prefix_end(&[1, 0xff, 0xff]), vec![2]);
        assert_eq!(prefix_end(&[]), vec![0xff]);
        assert_eq!(prefix_end(&[0xff]), vec![0xff]);
    }

    #[test]
    fn backoff_stays_under_its_cap() {
        let p = RetryPolicy::default();
        for attempt in 0..40 {
            assert!(p.backoff(attempt) <= p.backoff_max);
        }
    }
}

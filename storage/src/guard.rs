//! The bookkeeping every engine's transaction shares: its age, what it is charged (as
//! FoundationDB counts a commit, see [`crate::limits`]), the reserved-key rule, and the first
//! error that poisoned it. Because every engine runs the same guard, a transaction that breaks a
//! limit fails the same way, at the same operation, everywhere.

use tokio::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::limits::{self, TXN_BOOKKEEPING_BYTES, TXN_MAX_BYTES};
use crate::txn::KeyRange;

/// One mutation, as the guard admits it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Write<'a> {
    Set(&'a [u8], &'a [u8]),
    Clear(&'a [u8]),
    AtomicAdd(&'a [u8]),
    ClearRange(&'a KeyRange),
}

impl Write<'_> {
    /// Refuses a write no engine may make: a reserved or too-long key, a too-long value.
    fn check(&self) -> Result<()> {
        match *self {
            Write::Set(key, value) => {
                limits::check_not_reserved(key)?;
                limits::check_key(key)?;
                limits::check_value(value)
            }
            Write::Clear(key) | Write::AtomicAdd(key) => {
                limits::check_not_reserved(key)?;
                limits::check_key(key)
            }
            // A clear reaching into the reserved keys stops before them, as reads do.
            Write::ClearRange(range) => {
                limits::check_key(&range.begin)?;
                limits::check_key(&range.end)
            }
        }
    }

    fn charge(&self) -> usize {
        match *self {
            Write::Set(key, value) => limits::set_charge(key.len(), value.len()),
            Write::Clear(key) => limits::clear_charge(key.len()),
            Write::AtomicAdd(key) => limits::atomic_add_charge(key.len()),
            Write::ClearRange(range) => {
                limits::clear_range_charge(range.begin.len(), range.end.len())
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct TxnGuard {
    started: Instant,
    /// Bytes charged so far, reads and writes, bookkeeping included once it writes.
    charged: usize,
    /// Whether a write was admitted: only then is the size checked, since FoundationDB never
    /// sends a transaction that only read.
    writes: bool,
    poisoned: Option<Error>,
}

impl TxnGuard {
    pub(crate) fn new() -> Self {
        TxnGuard {
            started: Instant::now(),
            charged: 0,
            writes: false,
            poisoned: None,
        }
    }

    /// How long the transaction has run, on tokio's clock.
    pub(crate) fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// What the transaction has been charged so far.
    #[cfg(any(feature = "fdb", test))]
    pub(crate) fn charged(&self) -> usize {
        self.charged
    }

    /// Whether a write was admitted: a transaction without one sends nothing at its commit.
    pub(crate) fn writes(&self) -> bool {
        self.writes
    }

    /// Refuses work on a transaction past its age limit or already poisoned.
    pub(crate) fn check_live(&self) -> Result<()> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        limits::check_age(self.age())
    }

    /// Admits one mutation, poisoning the transaction if it breaks a rule or a limit.
    pub(crate) fn admit(&mut self, write: Write<'_>) -> Result<()> {
        self.check_live()?;
        let checked = write.check().and_then(|()| {
            let first = if self.writes {
                0
            } else {
                TXN_BOOKKEEPING_BYTES
            };
            self.charged += first + write.charge();
            self.writes = true;
            self.check_size()
        });
        self.poison_on(checked)
    }

    /// Charges the read conflict on `conflict` that a non-snapshot read adds.
    pub(crate) fn charge_read(&mut self, conflict: &KeyRange) {
        self.charged += limits::read_charge(conflict.begin.len(), conflict.end.len());
    }

    /// Checks, before a commit, everything a write checks: reads made after the last write
    /// count too.
    pub(crate) fn check_commit(&mut self) -> Result<()> {
        self.check_live()?;
        let checked = self.check_size();
        self.poison_on(checked)
    }

    /// Passes `result` on, first poisoning the transaction with an error that a fresh attempt
    /// may not meet (a conflict): every later operation, and the commit, fail with it, and
    /// [`TxnGuard::must_retry`] tells `transact!` to start over.
    pub(crate) fn note<T>(&mut self, result: Result<T>) -> Result<T> {
        match result {
            Err(e) if e.is_retryable() => self.poison_on(Err(e)),
            other => other,
        }
    }

    /// Whether the transaction is poisoned with a retryable error.
    pub(crate) fn must_retry(&self) -> bool {
        self.poisoned.as_ref().is_some_and(Error::is_retryable)
    }

    fn check_size(&self) -> Result<()> {
        if self.writes && self.charged > TXN_MAX_BYTES {
            return Err(Error::TransactionTooLarge {
                size: self.charged,
                max: TXN_MAX_BYTES,
            });
        }
        Ok(())
    }

    /// Passes `result` on, poisoning the transaction with its error, if any.
    pub(crate) fn poison_on<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            self.poisoned.get_or_insert_with(|| e.clone());
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{VALUE_MAX_BYTES, point_read_charge, set_charge};

    #[test]
    fn a_write_over_a_limit_poisons_the_transaction() {
        let mut g = TxnGuard::new();
        let big = vec![0u8; VALUE_MAX_BYTES + 1];
        assert!(matches!(
            g.admit(Write::Set(b"k", &big)),
            Err(Error::ValueTooLarge { .. })
        ));
        assert!(matches!(
            g.admit(Write::Set(b"k", b"v")),
            Err(Error::ValueTooLarge { .. })
        ));
        assert!(matches!(g.check_live(), Err(Error::ValueTooLarge { .. })));
    }

    #[test]
    fn the_first_write_pays_the_bookkeeping_and_reads_count_toward_the_size() {
        let mut g = TxnGuard::new();
        g.charge_read(&KeyRange::single(b"r"));
        assert_eq!(g.charged(), point_read_charge(1));
        g.admit(Write::Set(b"k", b"v")).unwrap();
        g.admit(Write::Set(b"k", b"v")).unwrap();
        assert_eq!(
            g.charged(),
            point_read_charge(1) + TXN_BOOKKEEPING_BYTES + 2 * set_charge(1, 1)
        );
    }

    #[test]
    fn a_transaction_that_only_reads_is_never_too_large() {
        let mut g = TxnGuard::new();
        let wide = KeyRange::new(vec![b'a'; 9_000], vec![b'b'; 9_000]);
        for _ in 0..1_000 {
            g.charge_read(&wide);
        }
        assert!(g.charged() > TXN_MAX_BYTES);
        assert!(g.check_commit().is_ok());
        assert!(matches!(
            g.admit(Write::Clear(b"k")),
            Err(Error::TransactionTooLarge { .. })
        ));
    }

    #[test]
    fn a_retryable_failure_poisons_and_asks_for_a_retry_but_others_do_not() {
        let mut g = TxnGuard::new();
        assert!(g.note(Err::<(), _>(Error::Engine("no".into()))).is_err());
        assert!(!g.must_retry() && g.check_live().is_ok());
        assert_eq!(g.note(Err::<(), _>(Error::Conflict)), Err(Error::Conflict));
        assert!(g.must_retry());
        assert_eq!(g.admit(Write::Set(b"k", b"v")), Err(Error::Conflict));
        assert_eq!(g.check_commit(), Err(Error::Conflict));
    }

    #[test]
    fn reserved_keys_are_refused_and_poison_but_clears_may_reach_them() {
        let mut g = TxnGuard::new();
        let range = KeyRange::new(b"a".to_vec(), vec![0xff, 0xff]);
        assert!(g.admit(Write::ClearRange(&range)).is_ok());
        assert!(matches!(
            g.admit(Write::AtomicAdd(b"\xff/n")),
            Err(Error::Engine(_))
        ));
        assert!(matches!(g.check_commit(), Err(Error::Engine(_))));
    }
}

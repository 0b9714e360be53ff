//! A store wrapper that injects a failure an engine meets on a real cluster: a commit that
//! applies and then reports an unknown outcome, as a lost connection after the engine committed
//! would; or a read that fails with a conflict, as a FoundationDB read does after a recovery.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gigafactory_storage::{
    Error, KeyRange, KeyValue, RangeOptions, Result, Store, Transaction, Watch, WatchTarget,
};

/// The failure a [`Faulty`] store injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every commit applies, then reports `Error::CommitUnknown`.
    UnknownAfterCommit,
    /// The store's first read, in whichever transaction makes it, fails with `Error::Conflict`,
    /// and that transaction asks `transact!` for a retry, as an engine's does.
    ConflictOnFirstRead,
}

#[derive(Clone)]
pub struct Faulty<S> {
    inner: S,
    fault: Fault,
    /// Whether the one-time fault has happened.
    tripped: Arc<AtomicBool>,
}

impl<S> Faulty<S> {
    pub fn new(inner: S, fault: Fault) -> Self {
        Faulty {
            inner,
            fault,
            tripped: Arc::new(AtomicBool::new(false)),
        }
    }
}

pub struct FaultyTxn<T> {
    inner: T,
    fault: Fault,
    tripped: Arc<AtomicBool>,
    /// Whether this transaction met the injected conflict.
    conflicted: bool,
}

impl<S: Store> Store for Faulty<S> {
    type Txn = FaultyTxn<S::Txn>;

    async fn begin(&self) -> Result<Self::Txn> {
        Ok(FaultyTxn {
            inner: self.inner.begin().await?,
            fault: self.fault,
            tripped: self.tripped.clone(),
            conflicted: false,
        })
    }
}

impl<T: Transaction> Transaction for FaultyTxn<T> {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.fault == Fault::ConflictOnFirstRead && !self.tripped.swap(true, Ordering::SeqCst) {
            self.conflicted = true;
            return Err(Error::Conflict);
        }
        self.inner.get(key).await
    }
    async fn get_snapshot(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get_snapshot(key).await
    }
    async fn get_range(&mut self, range: &KeyRange, opts: RangeOptions) -> Result<Vec<KeyValue>> {
        self.inner.get_range(range, opts).await
    }
    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.inner.set(key, value)
    }
    fn clear(&mut self, key: &[u8]) -> Result<()> {
        self.inner.clear(key)
    }
    fn clear_range(&mut self, range: &KeyRange) -> Result<()> {
        self.inner.clear_range(range)
    }
    fn atomic_add(&mut self, key: &[u8], delta: i64) -> Result<()> {
        self.inner.atomic_add(key, delta)
    }
    async fn watch(&mut self, target: WatchTarget) -> Result<Watch> {
        self.inner.watch(target).await
    }
    fn must_retry(&self) -> bool {
        self.conflicted || self.inner.must_retry()
    }
    async fn commit(self) -> Result<()> {
        if self.conflicted {
            return Err(Error::Conflict);
        }
        self.inner.commit().await?;
        match self.fault {
            Fault::UnknownAfterCommit => Err(Error::CommitUnknown(
                "injected: connection lost after commit".into(),
            )),
            Fault::ConflictOnFirstRead => Ok(()),
        }
    }
}

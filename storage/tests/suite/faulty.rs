//! A store wrapper whose commits apply and then report an unknown outcome, as a lost connection
//! after the engine committed would.

use gigafactory_storage::{
    Error, KeyRange, KeyValue, RangeOptions, Result, Store, Transaction, Watch, WatchTarget,
};

#[derive(Clone)]
pub struct UnknownAfterCommit<S>(pub S);

pub struct FaultyTxn<T>(T);

impl<S: Store> Store for UnknownAfterCommit<S> {
    type Txn = FaultyTxn<S::Txn>;

    async fn begin(&self) -> Result<Self::Txn> {
        Ok(FaultyTxn(self.0.begin().await?))
    }
}

impl<T: Transaction> Transaction for FaultyTxn<T> {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.0.get(key).await
    }
    async fn get_snapshot(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.0.get_snapshot(key).await
    }
    async fn get_range(&mut self, range: &KeyRange, opts: RangeOptions) -> Result<Vec<KeyValue>> {
        self.0.get_range(range, opts).await
    }
    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.0.set(key, value)
    }
    fn clear(&mut self, key: &[u8]) -> Result<()> {
        self.0.clear(key)
    }
    fn clear_range(&mut self, range: &KeyRange) -> Result<()> {
        self.0.clear_range(range)
    }
    fn atomic_add(&mut self, key: &[u8], delta: i64) -> Result<()> {
        self.0.atomic_add(key, delta)
    }
    async fn watch(&mut self, target: WatchTarget) -> Result<Watch> {
        self.0.watch(target).await
    }
    async fn commit(self) -> Result<()> {
        self.0.commit().await?;
        Err(Error::CommitUnknown(
            "injected: connection lost after commit".into(),
        ))
    }
}

//! `FdbStore` and `FdbTxn`: the store contract mapped one to one onto FoundationDB
//! transactions, under a namespace, through the shared guard, bumping the prefix-watch counters
//! of the namespace's registry (see `registry.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use foundationdb::future::FdbSlice;
use foundationdb::options::{MutationType, StreamingMode, TransactionOption};
use foundationdb::{Database, FdbError, FdbResult, KeySelector, RangeOption};
use tokio::time::Instant;

use super::errors::{self, Stage, TIMEOUT_MARGIN, Verdict};
use super::network;
use super::registry::Registry;
use crate::error::{Error, Result};
use crate::guard::{TxnGuard, Write};
use crate::limits::{NAMESPACE_MAX_BYTES, TXN_MAX_DURATION, is_reserved, user_part};
use crate::txn::{KeyRange, KeyValue, RangeOptions, Store, Transaction, Watch, WatchTarget};

/// Key prefix when none is given, so one cluster can hold other data too.
pub const DEFAULT_NAMESPACE: &str = "gigafactory/";

/// FoundationDB's `timeout` transaction option, in milliseconds: the guard's age limit and a
/// margin, so the guard, not the cluster, reports an old transaction, and a commit started just
/// inside the limit is not cut off (which would make its outcome unknown).
const TIMEOUT_MILLIS: i32 = (TXN_MAX_DURATION.as_millis() + TIMEOUT_MARGIN.as_millis()) as i32;

/// A read of the registry version, sent at a transaction's first write, awaited at its commit.
type RegistryCheck = Pin<Box<dyn Future<Output = FdbResult<Option<FdbSlice>>> + Send>>;

pub(super) struct Shared {
    db: Arc<Database>,
    pub(super) namespace: Vec<u8>,
    /// Prefixes this handle registers before its first transaction (`with_watch_prefixes`).
    pub(super) wanted: Vec<Vec<u8>>,
    /// The namespace's registry as this handle last read it; `None` before the first
    /// transaction, and after a commit found it stale.
    registry: Mutex<Option<Arc<Registry>>>,
    /// A watch-prefix registration that cannot work. `with_watch_prefixes` cannot fail, so
    /// `begin` and `watch` report it.
    refused: Option<Error>,
}

/// Handle to a FoundationDB-backed store; cheap to clone.
#[derive(Clone)]
pub struct FdbStore {
    pub(super) shared: Arc<Shared>,
}

impl FdbStore {
    /// Connects to the cluster named by `cluster_file` (empty: FoundationDB's default, the
    /// `FDB_CLUSTER_FILE` environment variable, then the platform's default file), with keys
    /// under [`DEFAULT_NAMESPACE`]. Starts the process's FoundationDB network on first use.
    pub fn open(cluster_file: &str) -> Result<Self> {
        Self::with_namespace(cluster_file, DEFAULT_NAMESPACE.as_bytes())
    }

    /// Like [`FdbStore::open`], with keys under `namespace`, which must not be empty (keys
    /// would reach FoundationDB's system key space), start with `0xff` (which is that space),
    /// nor be longer than [`NAMESPACE_MAX_BYTES`].
    pub fn with_namespace(cluster_file: &str, namespace: &[u8]) -> Result<Self> {
        if namespace.first().is_none_or(|&b| b == 0xff) || namespace.len() > NAMESPACE_MAX_BYTES {
            return Err(Error::Config(format!(
                "FoundationDB namespace \"{}\" must be non-empty, at most {NAMESPACE_MAX_BYTES} \
                 bytes long, and not start with 0xff",
                namespace.escape_ascii()
            )));
        }
        let db = network::database(cluster_file)?;
        Ok(FdbStore {
            shared: Arc::new(Shared {
                db,
                namespace: namespace.to_vec(),
                wanted: Vec::new(),
                registry: Mutex::new(None),
                refused: None,
            }),
        })
    }

    /// Registers `prefixes` for [`WatchTarget::Prefix`] watches, in the store: before this
    /// handle's first transaction they join the namespace's registry, and from then on every
    /// handle on the namespace, in any process, bumps their counters, whether or not it called
    /// this. Registration only adds. A prefix starting with `0xff`, or too long for its counter
    /// key, makes `begin` and `watch` fail with `Error::Config`.
    #[must_use]
    pub fn with_watch_prefixes(self, prefixes: Vec<Vec<u8>>) -> Self {
        let namespace = self.shared.namespace.clone();
        let refused = self.shared.refused.clone().or_else(|| {
            prefixes
                .iter()
                .find_map(|p| Registry::check_prefix(&namespace, p).err())
        });
        let mut wanted = self.shared.wanted.clone();
        wanted.extend(prefixes);
        FdbStore {
            shared: Arc::new(Shared {
                db: self.shared.db.clone(),
                namespace,
                wanted,
                registry: Mutex::new(None),
                refused,
            }),
        }
    }

    pub(super) fn full(&self, key: &[u8]) -> Vec<u8> {
        [self.shared.namespace.as_slice(), key].concat()
    }

    pub(super) fn usable(&self) -> Result<()> {
        match &self.shared.refused {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// A FoundationDB transaction with the store's timeout.
    pub(super) fn new_trx(&self) -> Result<foundationdb::Transaction> {
        let trx = self.shared.db.create_trx().map_err(outside_error)?;
        trx.set_option(TransactionOption::Timeout(TIMEOUT_MILLIS))
            .map_err(outside_error)?;
        Ok(trx)
    }

    /// The registry this handle works with, read (and its wanted prefixes registered) on
    /// first use.
    pub(super) async fn registry(&self) -> Result<Arc<Registry>> {
        if let Some(known) = self.cached_registry() {
            return Ok(known);
        }
        let read = Arc::new(self.load_registry().await?);
        *self.registry_slot() = Some(read.clone());
        Ok(read)
    }

    /// Makes the next transaction read the registry again.
    pub(super) fn forget_registry(&self) {
        *self.registry_slot() = None;
    }

    fn cached_registry(&self) -> Option<Arc<Registry>> {
        self.registry_slot().clone()
    }

    fn registry_slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<Registry>>> {
        self.shared
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for FdbStore {
    type Txn = FdbTxn;

    async fn begin(&self) -> Result<FdbTxn> {
        self.usable()?;
        let registry = self.registry().await?;
        // The guard's clock starts before FoundationDB's, so at an operation boundary the
        // guard, not the cluster, reports an old transaction.
        let guard = TxnGuard::new();
        let trx = self.new_trx()?;
        Ok(FdbTxn {
            store: self.clone(),
            trx,
            guard,
            bumped: vec![false; registry.prefixes().len()],
            registry,
            registry_check: None,
        })
    }

    /// Arms at the latest version directly, without a transaction to pin a version from.
    async fn watch(&self, target: WatchTarget) -> Result<Watch> {
        self.arm(&target, None).await
    }
}

/// One FoundationDB transaction.
pub struct FdbTxn {
    store: FdbStore,
    trx: foundationdb::Transaction,
    guard: TxnGuard,
    /// The registry whose counters this transaction bumps.
    registry: Arc<Registry>,
    /// Which registered prefixes' counters this transaction has bumped: one add per prefix
    /// and transaction changes the counter, which is all a watch needs.
    bumped: Vec<bool>,
    /// The read of the registry version, once the transaction writes.
    registry_check: Option<RegistryCheck>,
}

impl FdbTxn {
    /// Whether the transaction wrote (FoundationDB sends nothing for one that only read).
    pub(crate) fn writes(&self) -> bool {
        self.guard.writes()
    }

    fn read_error(&self, e: FdbError, asked: Instant) -> Error {
        fdb_error(
            e,
            Stage::Read {
                age: self.guard.age(),
                waited: asked.elapsed(),
            },
        )
    }

    /// After a write the guard admitted: bumps the counter of every registered prefix the
    /// write `touches` (once per transaction), and on the first write starts reading the
    /// registry version the commit checks.
    fn after_write(&mut self, touches: impl Fn(&[u8]) -> bool) -> Result<()> {
        if self.registry_check.is_none() {
            let version = self.trx.get(self.registry.version_key(), false);
            self.registry_check = Some(Box::pin(version));
        }
        let one = 1i64.to_le_bytes();
        for (w, bumped) in self.registry.prefixes().iter().zip(&mut self.bumped) {
            if !*bumped && touches(&w.prefix) {
                // Nobody reads a counter transactionally: a write conflict on it would only
                // cost size and could never matter.
                let unconflicted = self
                    .trx
                    .set_option(TransactionOption::NextWriteNoWriteConflictRange)
                    .map_err(outside_error);
                self.guard.poison_on(unconflicted)?;
                self.trx.atomic_op(&w.counter, &one, MutationType::Add);
                *bumped = true;
            }
        }
        Ok(())
    }

    async fn read(&mut self, key: &[u8], snapshot: bool) -> Result<Option<Vec<u8>>> {
        self.guard.check_live()?;
        if !snapshot {
            self.guard.charge_read(&KeyRange::single(key));
        }
        if is_reserved(key) {
            return Ok(None);
        }
        let asked = Instant::now();
        let value = self
            .trx
            .get(&self.store.full(key), snapshot)
            .await
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| self.read_error(e, asked));
        self.guard.note(value)
    }

    async fn read_rows(&mut self, range: &KeyRange, opts: RangeOptions) -> Result<Vec<KeyValue>> {
        let asked = Instant::now();
        let (begin, end) = (self.store.full(&range.begin), self.store.full(&range.end));
        let rows = read_range(&self.trx, &begin, &end, opts)
            .await
            .map_err(|e| self.read_error(e, asked))?;
        let namespace = self.store.shared.namespace.as_slice();
        rows.into_iter()
            .map(|(key, value)| match key.strip_prefix(namespace) {
                Some(key) => Ok((key.to_vec(), value)),
                None => Err(Error::Engine(
                    "FoundationDB returned a key outside the namespace".into(),
                )),
            })
            .collect()
    }

    /// Fails as a conflict if the namespace's registry changed since this transaction's
    /// handle read it, so that it runs again bumping the counters of every registered prefix.
    async fn check_registry(&mut self) -> Result<()> {
        let Some(check) = self.registry_check.take() else {
            return Ok(());
        };
        let asked = Instant::now();
        let stored = check.await.map_err(|e| self.read_error(e, asked))?;
        if !self.registry.is_current(stored.as_deref()) {
            tracing::debug!("watch-prefix registry changed: rereading it");
            self.store.forget_registry();
            return Err(Error::Conflict);
        }
        Ok(())
    }
}

impl Transaction for FdbTxn {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.read(key, false).await
    }

    async fn get_snapshot(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.read(key, true).await
    }

    async fn get_range(&mut self, range: &KeyRange, opts: RangeOptions) -> Result<Vec<KeyValue>> {
        self.guard.check_live()?;
        opts.check()?;
        let Some(range) = user_part(range) else {
            return Ok(Vec::new());
        };
        let rows = self.read_rows(&range, opts).await;
        let rows = self.guard.note(rows)?;
        if !opts.snapshot {
            // FoundationDB records the conflict itself; the guard charges the same range.
            self.guard.charge_read(&opts.conflict_range(&range, &rows));
        }
        Ok(rows)
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.guard.admit(Write::Set(key, value))?;
        self.trx.set(&self.store.full(key), value);
        self.after_write(|prefix| key.starts_with(prefix))
    }

    fn clear(&mut self, key: &[u8]) -> Result<()> {
        self.guard.admit(Write::Clear(key))?;
        self.trx.clear(&self.store.full(key));
        self.after_write(|prefix| key.starts_with(prefix))
    }

    fn clear_range(&mut self, range: &KeyRange) -> Result<()> {
        self.guard.admit(Write::ClearRange(range))?;
        // FoundationDB refuses an inverted range, poisoning the transaction; the contract makes
        // it a no-op.
        let Some(range) = user_part(range) else {
            return Ok(());
        };
        self.trx
            .clear_range(&self.store.full(&range.begin), &self.store.full(&range.end));
        self.after_write(|prefix| KeyRange::prefix(prefix).overlaps(&range))
    }

    fn atomic_add(&mut self, key: &[u8], delta: i64) -> Result<()> {
        self.guard.admit(Write::AtomicAdd(key))?;
        // FoundationDB's ADD is the crate's: little-endian, the stored value zero-extended or
        // truncated to the operand's 8 bytes, wrapping.
        self.trx.atomic_op(
            &self.store.full(key),
            &delta.to_le_bytes(),
            MutationType::Add,
        );
        self.after_write(|prefix| key.starts_with(prefix))
    }

    async fn watch(&mut self, target: WatchTarget) -> Result<Watch> {
        self.guard.check_live()?;
        let asked = Instant::now();
        let version = self.trx.get_read_version().await;
        let version = version.map_err(|e| self.read_error(e, asked));
        let version = self.guard.note(version)?;
        let watch = self.store.arm(&target, Some(version)).await;
        self.guard.note(watch)
    }

    async fn commit(mut self) -> Result<()> {
        self.guard.check_commit()?;
        self.check_registry().await?;
        let age = self.guard.age();
        let charged = self.guard.charged();
        match self.trx.commit().await {
            Ok(_) => Ok(()),
            Err(e) => Err(fdb_error(*e, Stage::Commit { age, charged })),
        }
    }

    fn must_retry(&self) -> bool {
        self.guard.must_retry()
    }
}

/// Up to `opts.limit` rows of `[begin, end)` (full keys), in one request unless the cluster
/// cuts the answer short.
pub(super) async fn read_range(
    trx: &foundationdb::Transaction,
    begin: &[u8],
    end: &[u8],
    opts: RangeOptions,
) -> FdbResult<Vec<KeyValue>> {
    // `Exact`: the caller named the number of rows it wants and takes them all at once. The
    // loop only continues if the cluster still cut the answer short.
    let mut opt = RangeOption {
        begin: KeySelector::first_greater_or_equal(begin.to_vec()),
        end: KeySelector::first_greater_or_equal(end.to_vec()),
        limit: Some(opts.limit),
        mode: StreamingMode::Exact,
        reverse: opts.reverse,
        ..RangeOption::default()
    };
    let mut rows = Vec::new();
    let mut iteration = 1;
    loop {
        let batch = trx.get_range(&opt, iteration, opts.snapshot).await?;
        rows.extend(
            batch
                .iter()
                .map(|kv| (kv.key().to_vec(), kv.value().to_vec())),
        );
        match opt.next_range(&batch) {
            Some(next) => {
                opt = next;
                iteration += 1;
            }
            None => break,
        }
    }
    debug_assert!(rows.len() <= opts.limit);
    Ok(rows)
}

/// Maps a FoundationDB error at `stage`, with the client library's own verdict on it.
pub(super) fn fdb_error(e: FdbError, stage: Stage) -> Error {
    errors::store_error(e.code(), Verdict::of(e), e.message(), stage)
}

/// Maps an error from outside any transaction's reads and commit.
pub(super) fn outside_error(e: FdbError) -> Error {
    fdb_error(e, Stage::Outside)
}

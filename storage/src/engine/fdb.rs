//! The FoundationDB engine: each `FdbTxn` is one FoundationDB transaction, so FoundationDB
//! itself provides what the other engines build by hand: read-your-writes, read-conflict
//! tracking (a limited range read depends only on the part it returned), serializable commits
//! and atomic adds that never conflict. This file adds the namespace, the crate's limits, one
//! error vocabulary and prefix watches.
//!
//! Keys live under a namespace prefix (`gigafactory/` unless told otherwise, at most
//! [`NAMESPACE_MAX_BYTES`] long), so a cluster can hold other data; range reads strip it from
//! the keys they return. Namespaces must not nest. Inside a namespace, keys from `0xff` up are
//! reserved, as on every engine (see [`crate::limits`]): this engine keeps its watch counters
//! there.
//!
//! Limits: every operation passes the shared guard first, exactly as on the other engines, so
//! the same code fails the same way everywhere. The guard charges an upper bound of what
//! FoundationDB counts (namespace and conflict ranges included), so FoundationDB's own
//! `transaction_too_large` is not expected; it would still map to `TransactionTooLarge`.
//!
//! Every transaction carries FoundationDB's `timeout` option at [`TXN_MAX_DURATION`]: without
//! it a request to an unreachable cluster waits forever. No retry-limit option is set: it only
//! bounds `on_error`, which this engine never calls, since `transact!` retries with a fresh
//! transaction. FoundationDB errors map onto [`Error`] in `fdb_error`.
//!
//! Watches: a key watch is FoundationDB's own. It is armed by a separate transaction pinned to
//! the watching transaction's read version, so it is armed whether or not that transaction
//! commits, and a change committed between that version and the arming is caught: FoundationDB
//! watches compare values, and the baseline is read at the pinned version. Being value
//! comparisons, they can miss a change that is undone before the storage server looks (A to B
//! and back to A). FoundationDB has no prefix watch, so each prefix to be watched is registered
//! when the store is opened ([`FdbStore::with_watch_prefixes`]); every write under a registered
//! prefix also adds 1 to the prefix's counter key (`namespace + b"\xff/watch/" + prefix`, once
//! per transaction), and a prefix watch is a key watch on that counter. Atomic adds never
//! conflict, so the counters cost writers no aborts; being monotonic, they cannot suffer A-B-A.
//! A prefix watch, like the embedded engine's, fires on any write under the prefix, even one that
//! changed nothing. Watching an unregistered prefix is an `Error::Config`.

use std::ffi::c_int;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use foundationdb::api::{FdbApiBuilder, NetworkAutoStop};
use foundationdb::options::{MutationType, StreamingMode, TransactionOption};
use foundationdb::{Database, FdbError, FdbResult, KeySelector, RangeOption};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::guard::{TxnGuard, Write};
use crate::limits::{
    self, FDB_KEY_MAX_BYTES, NAMESPACE_MAX_BYTES, TXN_MAX_BYTES, TXN_MAX_DURATION, is_reserved,
    user_part,
};
use crate::txn::{KeyRange, KeyValue, RangeOptions, Store, Transaction, Watch, WatchTarget};

/// Key prefix when none is given, so one cluster can hold other data too.
pub const DEFAULT_NAMESPACE: &str = "gigafactory/";

/// Where, inside a namespace, the per-prefix watch counters live: past every user key.
const WATCH_COUNTERS: &[u8] = b"\xff/watch/";

/// FoundationDB's `timeout` transaction option, in milliseconds: the crate's age limit.
const TIMEOUT_MILLIS: i32 = TXN_MAX_DURATION.as_millis() as i32;
/// A healthy cluster answers in milliseconds. A request that had waited this long when the
/// transaction's timeout cut it off was waiting on an unreachable or recovering cluster: that is
/// `Unavailable`, not a transaction that did too much.
const STALLED_REQUEST: Duration = Duration::from_secs(1);

/// FoundationDB error codes this engine tells apart (`error_definitions.h`).
const TRANSACTION_TOO_OLD: i32 = 1007;
const NOT_COMMITTED: i32 = 1020;
const TRANSACTION_TIMED_OUT: i32 = 1031;
const OPERATION_CANCELLED: i32 = 1101;
const TRANSACTION_TOO_LARGE: i32 = 2101;

/// The process's FoundationDB client network, or why it could not start.
///
/// libfdb_c runs one network thread per process, and it can be started only once: after it is
/// stopped, no FoundationDB call in this process can ever work again. So the guard that stops it
/// lives in a static, never dropped with a store; stores come and go without touching it.
/// The C API nevertheless requires the network to be stopped, and its thread to have returned,
/// before the process exits, or behaviour is undefined (in practice libfdb_c's exit-time
/// destructors race the running thread): `stop_network_at_exit`, an `atexit` handler, takes the
/// guard out and drops it, which does both. A failed start is kept too, since the API version
/// can be selected only once: every later `open` reports it.
static NETWORK: OnceLock<std::result::Result<Mutex<Option<NetworkAutoStop>>, String>> =
    OnceLock::new();

unsafe extern "C" {
    /// C's `atexit`. Handlers run last-registered first, so this one, registered after
    /// libfdb_c was loaded, runs before its exit-time destructors.
    fn atexit(callback: extern "C" fn()) -> c_int;
}

/// Starts the network on first use. This engine owns it: another library of the same process
/// that starts FoundationDB's network itself makes this panic (libfdb_c allows one start).
fn network() -> Result<()> {
    let started = NETWORK.get_or_init(|| {
        let builder = FdbApiBuilder::default()
            .build()
            .map_err(|e| format!("cannot select the FoundationDB API version: {e}"))?;
        // SAFETY: `boot` requires the returned guard to be dropped before the process exits;
        // `stop_network_at_exit` does it.
        let guard = unsafe { builder.boot() }
            .map_err(|e| format!("cannot start the FoundationDB network: {e}"))?;
        // SAFETY: registers a plain function that captures nothing.
        if unsafe { atexit(stop_network_at_exit) } != 0 {
            tracing::warn!("cannot register the FoundationDB network stop at exit");
        }
        Ok(Mutex::new(Some(guard)))
    });
    started
        .as_ref()
        .map(|_| ())
        .map_err(|e| Error::Config(e.clone()))
}

/// Stops the network and joins its thread (dropping the guard does both).
extern "C" fn stop_network_at_exit() {
    if let Some(Ok(network)) = NETWORK.get() {
        let guard = network
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(guard);
    }
}

/// A registered watch prefix and its change counter's full key.
struct WatchedPrefix {
    prefix: Vec<u8>,
    counter: Vec<u8>,
}

struct Shared {
    db: Arc<Database>,
    namespace: Vec<u8>,
    watched: Vec<WatchedPrefix>,
    /// A watch-prefix registration that cannot work. `with_watch_prefixes` cannot fail, so
    /// `begin` and `watch` report it.
    refused: Option<Error>,
}

/// Handle to a FoundationDB-backed store; cheap to clone.
#[derive(Clone)]
pub struct FdbStore {
    shared: Arc<Shared>,
}

impl FdbStore {
    /// Connects to the cluster named by `cluster_file` (empty: FoundationDB's default, the
    /// `FDB_CLUSTER_FILE` environment variable, then the platform's default file), with keys
    /// under [`DEFAULT_NAMESPACE`]. Starts the process's FoundationDB network on first use.
    pub fn open(cluster_file: &str) -> Result<Self> {
        Self::with_namespace(cluster_file, DEFAULT_NAMESPACE.as_bytes())
    }

    /// Like [`FdbStore::open`], with keys under `namespace`, which must not be empty (keys
    /// would reach FoundationDB's system key space) nor start with `0xff` (which is that space).
    pub fn with_namespace(cluster_file: &str, namespace: &[u8]) -> Result<Self> {
        if namespace.first().is_none_or(|&b| b == 0xff) || namespace.len() > NAMESPACE_MAX_BYTES {
            return Err(Error::Config(format!(
                "FoundationDB namespace \"{}\" must be non-empty, at most {NAMESPACE_MAX_BYTES} \
                 bytes long, and not start with 0xff",
                namespace.escape_ascii()
            )));
        }
        if cluster_file.contains('\0') {
            return Err(Error::Config(format!(
                "FoundationDB cluster file path {cluster_file:?} contains a NUL byte"
            )));
        }
        network()?;
        let db = Database::from_path(cluster_file).map_err(|e| {
            Error::Config(format!(
                "cannot open FoundationDB cluster file {cluster_file:?}: {e}"
            ))
        })?;
        Ok(FdbStore {
            shared: Arc::new(Shared {
                db: Arc::new(db),
                namespace: namespace.to_vec(),
                watched: Vec::new(),
                refused: None,
            }),
        })
    }

    /// Registers the prefixes that can be watched with [`WatchTarget::Prefix`], replacing any
    /// earlier registration; only writes through a handle that knows a prefix bump its counter,
    /// so register once, before the handle is cloned, and identically in every process that
    /// writes under the prefixes. A prefix starting with `0xff`, or too long for its counter
    /// key, makes `begin` and `watch` fail with `Error::Config`.
    #[must_use]
    pub fn with_watch_prefixes(mut self, prefixes: Vec<Vec<u8>>) -> Self {
        let mut prefixes = prefixes;
        prefixes.sort();
        prefixes.dedup();
        let namespace = self.shared.namespace.clone();
        let mut refused = None;
        let watched = prefixes
            .into_iter()
            .map(|prefix| {
                let counter = [namespace.as_slice(), WATCH_COUNTERS, &prefix].concat();
                if is_reserved(&prefix) || counter.len() > FDB_KEY_MAX_BYTES {
                    refused.get_or_insert_with(|| {
                        Error::Config(format!(
                            "watch prefix \"{}\" is reserved or too long for a counter key",
                            prefix.escape_ascii()
                        ))
                    });
                }
                WatchedPrefix { prefix, counter }
            })
            .collect();
        self.shared = Arc::new(Shared {
            db: self.shared.db.clone(),
            namespace,
            watched,
            refused,
        });
        self
    }

    fn full(&self, key: &[u8]) -> Vec<u8> {
        [self.shared.namespace.as_slice(), key].concat()
    }

    fn usable(&self) -> Result<()> {
        match &self.shared.refused {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// A FoundationDB transaction with the crate's time limit.
    fn new_trx(&self) -> Result<foundationdb::Transaction> {
        let trx = self.shared.db.create_trx().map_err(plain_error)?;
        trx.set_option(TransactionOption::Timeout(TIMEOUT_MILLIS))
            .map_err(plain_error)?;
        Ok(trx)
    }

    /// Arms a watch on `target` that fires on any change after `read_version` (the latest
    /// version if `None`). The watch belongs to a read-only transaction of its own: FoundationDB
    /// activates a watch when its transaction commits, and committing a transaction without
    /// writes succeeds at once. Its read of the watched key, at the pinned version, is the
    /// value the storage server compares against.
    async fn arm(&self, target: &WatchTarget, read_version: Option<i64>) -> Result<Watch> {
        self.usable()?;
        limits::check_watchable(target)?;
        let key = match target {
            WatchTarget::Key(k) => self.full(k),
            WatchTarget::Prefix(p) => self
                .shared
                .watched
                .iter()
                .find(|w| &w.prefix == p)
                .map(|w| w.counter.clone())
                .ok_or_else(|| {
                    Error::Config(format!(
                        "prefix \"{}\" is not registered for watches (FdbStore::with_watch_prefixes)",
                        p.escape_ascii()
                    ))
                })?,
        };
        let trx = self.new_trx()?;
        if let Some(v) = read_version {
            trx.set_read_version(v);
        }
        let asked = Instant::now();
        let armed = trx.watch(&key);
        if let Err(e) = trx.commit().await {
            let e = *e;
            if e.code() == TRANSACTION_TOO_OLD {
                return Ok(fired_now());
            }
            let waited = asked.elapsed();
            return Err(fdb_error(
                e,
                Stage::Read {
                    age: waited,
                    waited,
                },
            ));
        }
        let (mut fire, fired) = oneshot::channel();
        tokio::spawn(async move {
            let outcome = tokio::select! {
                // Nobody waits any more: dropping `armed` cancels the FoundationDB watch.
                _ = fire.closed() => return,
                outcome = armed => outcome,
            };
            let _ = fire.send(watch_outcome(outcome));
        });
        Ok(Watch { fired })
    }
}

impl Store for FdbStore {
    type Txn = FdbTxn;

    async fn begin(&self) -> Result<FdbTxn> {
        self.usable()?;
        // The guard's clock starts before FoundationDB's, so at an operation boundary the
        // guard, not the cluster, reports an old transaction.
        let guard = TxnGuard::new();
        let trx = self.new_trx()?;
        Ok(FdbTxn {
            store: self.clone(),
            trx,
            guard,
            bumped: vec![false; self.shared.watched.len()],
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
    /// Which registered prefixes' counters this transaction has bumped: one add per prefix
    /// and transaction changes the counter, which is all a watch needs.
    bumped: Vec<bool>,
}

impl FdbTxn {
    /// Bumps the counter of every registered prefix that a write touches (`touches(prefix)`),
    /// once per transaction.
    fn bump_watch_counters(&mut self, touches: impl Fn(&[u8]) -> bool) {
        let one = 1i64.to_le_bytes();
        for (w, bumped) in self.store.shared.watched.iter().zip(&mut self.bumped) {
            if !*bumped && touches(&w.prefix) {
                self.trx.atomic_op(&w.counter, &one, MutationType::Add);
                *bumped = true;
            }
        }
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
        // `Exact`: the caller named the number of rows it wants and takes them all at once. The
        // loop only continues if the cluster still cut the answer short.
        let mut opt = RangeOption {
            begin: KeySelector::first_greater_or_equal(self.store.full(&range.begin)),
            end: KeySelector::first_greater_or_equal(self.store.full(&range.end)),
            limit: Some(opts.limit),
            mode: StreamingMode::Exact,
            reverse: opts.reverse,
            ..RangeOption::default()
        };
        let namespace = self.store.shared.namespace.as_slice();
        let mut rows = Vec::new();
        let mut iteration = 1;
        let asked = Instant::now();
        loop {
            let batch = self
                .trx
                .get_range(&opt, iteration, opts.snapshot)
                .await
                .map_err(|e| self.read_error(e, asked))?;
            for kv in &batch {
                let key = kv.key().strip_prefix(namespace).ok_or_else(|| {
                    Error::Engine("FoundationDB returned a key outside the namespace".into())
                })?;
                rows.push((key.to_vec(), kv.value().to_vec()));
            }
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
        self.bump_watch_counters(|prefix| key.starts_with(prefix));
        Ok(())
    }

    fn clear(&mut self, key: &[u8]) -> Result<()> {
        self.guard.admit(Write::Clear(key))?;
        self.trx.clear(&self.store.full(key));
        self.bump_watch_counters(|prefix| key.starts_with(prefix));
        Ok(())
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
        self.bump_watch_counters(|prefix| KeyRange::prefix(prefix).overlaps(&range));
        Ok(())
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
        self.bump_watch_counters(|prefix| key.starts_with(prefix));
        Ok(())
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

/// A watch that has already fired.
fn fired_now() -> Watch {
    let (fire, fired) = oneshot::channel();
    let _ = fire.send(Ok(()));
    Watch { fired }
}

/// What an armed FoundationDB watch's end means for the caller.
fn watch_outcome(outcome: FdbResult<()>) -> Result<()> {
    match outcome {
        Ok(()) => Ok(()),
        // The baseline could not be read at the pinned version, which has left the cluster's
        // history: a change may have been missed, so report one (the caller re-reads).
        Err(e) if e.code() == TRANSACTION_TOO_OLD => Ok(()),
        Err(e) => {
            tracing::debug!(error = %e, code = e.code(), "FoundationDB watch failed");
            Err(fdb_error(e, Stage::Other))
        }
    }
}

/// Where a FoundationDB error surfaced: the same code means different things at a read and at
/// a commit.
#[derive(Debug, Clone, Copy)]
enum Stage {
    /// A read (or the arming of a watch) by a transaction `age` old, whose request waited
    /// `waited`.
    Read { age: Duration, waited: Duration },
    /// The commit of a transaction `age` old that the guard charged `charged` bytes.
    Commit { age: Duration, charged: usize },
    /// Outside a transaction's reads and commit: creating a transaction, setting an option,
    /// an armed watch waiting for its change.
    Other,
}

/// Maps a FoundationDB error onto the crate's. Only `not_committed` becomes `Conflict`, the one
/// error `transact!` retries; FoundationDB's other retryable errors (a cluster recovering,
/// throttling) become `Unavailable`.
fn fdb_error(e: FdbError, stage: Stage) -> Error {
    let what = format!("{e} (FoundationDB error {})", e.code());
    match (e.code(), stage) {
        (NOT_COMMITTED, _) => Error::Conflict,
        // The guard charges at least what FoundationDB counts, so this means the guard's model
        // fell short; `size` is the guard's count, the only one known.
        (TRANSACTION_TOO_LARGE, Stage::Commit { charged, .. }) => Error::TransactionTooLarge {
            size: charged,
            max: TXN_MAX_BYTES,
        },
        // A commit cut off by the timeout may still apply (fdb.options, `automatic_idempotency`);
        // FoundationDB's own commit logging counts a cancelled one as maybe committed too.
        (TRANSACTION_TIMED_OUT | OPERATION_CANCELLED, Stage::Commit { .. }) => {
            Error::CommitUnknown(what)
        }
        (_, Stage::Commit { .. }) if e.is_maybe_committed() => Error::CommitUnknown(what),
        (TRANSACTION_TIMED_OUT, Stage::Read { waited, .. }) if waited >= STALLED_REQUEST => {
            Error::Unavailable(format!("no answer in {waited:?}: {what}"))
        }
        (TRANSACTION_TOO_OLD | TRANSACTION_TIMED_OUT, Stage::Read { age, .. })
        | (TRANSACTION_TOO_OLD, Stage::Commit { age, .. }) => Error::TransactionTooOld {
            elapsed: age,
            max: TXN_MAX_DURATION,
        },
        _ if e.is_retryable() => Error::Unavailable(what),
        _ => Error::Engine(what),
    }
}

/// Maps an error from outside any transaction's work (creating one, setting an option).
fn plain_error(e: FdbError) -> Error {
    fdb_error(e, Stage::Other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_counters_sit_past_every_user_key() {
        let counter = [b"ns/".as_slice(), WATCH_COUNTERS, b"w/p/"].concat();
        let all_user_keys = KeyRange::prefix(b"");
        let namespaced = KeyRange::new(
            [b"ns/".as_slice(), &all_user_keys.begin].concat(),
            [b"ns/".as_slice(), &all_user_keys.end].concat(),
        );
        assert!(!namespaced.contains(&counter));
        assert!(counter.starts_with(b"ns/"));
    }
}

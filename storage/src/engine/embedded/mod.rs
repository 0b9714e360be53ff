//! The embedded engine: serializable transactions on one machine, with group commit.
//!
//! Layout of the data directory: `gigafactory.redb` (the base: a B-tree file) and `wal-*.log`
//! (the write-ahead log). One committer thread decides every commit: it rejects a transaction
//! whose reads overlap a write committed after the version it read (FoundationDB's resolver
//! check), appends each batch of survivors to the log as one record and `fdatasync`s once for
//! the whole batch before any of them is acknowledged, then adds the batch to an in-memory,
//! versioned layer (the memtable). When that layer grows past `FLUSH_BYTES` it is frozen and a
//! flusher thread writes it into the base in one large redb transaction, after which its log
//! segment is deleted. Readers see a snapshot at one version: the memtables filtered to that
//! version over a redb snapshot. Opening replays the log into the base.
//!
//! Why a log in front of redb rather than one redb commit per batch: redb's copy-on-write
//! B-tree costs ~25 µs per randomly placed key per commit on our machines (measured: 64
//! transactions of 2 keys per commit ran at ~300 commits/s), which caps group commit far below
//! the disk; large sorted flushes cost a fraction of that per key.

mod memtable;
mod wal;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, mpsc as std_mpsc};
use std::time::{Duration, Instant};

use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use self::memtable::{Entry, Memtable};
use self::wal::Wal;
use crate::buffer::{Buffered, Mutations, Op, Source, add_le};
use crate::error::{Error, Result};
use crate::limits::TXN_MAX_DURATION;
use crate::txn::{KeyRange, KeyValue, Store, Watch, WatchTarget};

const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The META entry holding the last version the base file contains.
const FLUSHED_VERSION: &str = "flushed_version";
/// The base file inside the data directory.
pub const FILE_NAME: &str = "gigafactory.redb";

/// redb's page cache. Its default (1 GiB) would dominate the coordinator's memory; hot data
/// (the ready index, leased jobs) is far smaller.
const CACHE_BYTES: usize = 128 * 1024 * 1024;
/// Memtable size at which it is frozen and flushed to the base, by default.
const FLUSH_BYTES: usize = 32 * 1024 * 1024;

/// Tuning of an embedded store.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedOptions {
    /// Memtable size at which it is frozen and flushed into the base file. Smaller flushes
    /// more often (tests use a few KiB to exercise every layer); larger holds more in memory.
    pub flush_bytes: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            flush_bytes: FLUSH_BYTES,
        }
    }
}
/// Most transactions the committer folds into one log record.
const BATCH_MAX_TXNS: usize = 4096;
/// Requests that may wait for the committer before senders wait too (backpressure).
const QUEUE_MAX_REQUESTS: usize = 8192;
/// Committed write sets kept for conflict checks. Transactions live at most
/// `TXN_MAX_DURATION`, so older entries are useless; the count bound caps memory under
/// extreme rates (a transaction older than the kept history conflicts and retries).
const HISTORY_MAX_ENTRIES: usize = 100_000;

type Base = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// The layers a snapshot reads, newest first.
#[derive(Clone)]
struct Layers {
    active: Arc<Memtable>,
    /// Frozen memtables waiting for (or in) a flush, newest first.
    frozen: Vec<Arc<Memtable>>,
    base: Arc<Base>,
}

/// What one transaction reads: the layers as of `version`.
struct Snapshot {
    version: u64,
    layers: Layers,
}

impl Snapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let l = &self.layers;
        for m in std::iter::once(&l.active).chain(&l.frozen) {
            if let Some(found) = m.get(key, self.version) {
                return Ok(found);
            }
        }
        Ok(l.base.get(key).map_err(engine)?.map(|v| v.value().to_vec()))
    }

    /// Up to `limit` live rows of `range`: every layer is read a page at a time and merged, the
    /// newest layer winning for a key, deletions hiding older values.
    fn scan(&self, range: &KeyRange, limit: usize, reverse: bool) -> Result<Vec<KeyValue>> {
        let l = &self.layers;
        let mems: Vec<&Arc<Memtable>> = std::iter::once(&l.active).chain(&l.frozen).collect();
        let mut cursor = range.clone();
        let mut out = Vec::new();
        while out.len() < limit && !cursor.is_empty() {
            let want = limit - out.len();
            // Each source's page, newest layer first; the base last.
            let mut pages: Vec<Vec<Entry>> = mems
                .iter()
                .map(|m| m.scan(&cursor, self.version, want, reverse))
                .collect();
            pages.push(base_page(&l.base, &cursor, want, reverse)?);
            let full: Vec<bool> = pages.iter().map(|p| p.len() == want).collect();
            // Rows are final only up to the nearest point where some full page stopped:
            // beyond it, that source may hold rows not fetched yet.
            let horizon: Option<Vec<u8>> = pages
                .iter()
                .zip(&full)
                .filter(|(_, f)| **f)
                .filter_map(|(p, _)| p.last().map(|(k, _)| k.clone()))
                .reduce(|a, b| if reverse { a.max(b) } else { a.min(b) });
            let mut merged: BTreeMap<Vec<u8>, (usize, Option<Vec<u8>>)> = BTreeMap::new();
            for (layer, page) in pages.into_iter().enumerate() {
                for (k, v) in page {
                    let beyond = horizon
                        .as_ref()
                        .is_some_and(|h| if reverse { k < *h } else { k > *h });
                    if beyond {
                        continue;
                    }
                    merged.entry(k).or_insert((layer, v));
                }
            }
            let ordered: Box<dyn Iterator<Item = _>> = if reverse {
                Box::new(merged.into_iter().rev())
            } else {
                Box::new(merged.into_iter())
            };
            for (k, (_, v)) in ordered {
                if let Some(v) = v {
                    out.push((k, v));
                    if out.len() == limit {
                        break;
                    }
                }
            }
            match horizon {
                None => break,
                Some(h) => {
                    if reverse {
                        cursor.end = h;
                    } else {
                        cursor.begin = KeyRange::single(&h).end;
                    }
                }
            }
        }
        Ok(out)
    }
}

/// One row of a base-file range, as redb yields it.
type BaseRow<'a> = std::result::Result<
    (
        redb::AccessGuard<'a, &'static [u8]>,
        redb::AccessGuard<'a, &'static [u8]>,
    ),
    redb::StorageError,
>;

fn base_page(base: &Base, range: &KeyRange, limit: usize, reverse: bool) -> Result<Vec<Entry>> {
    let bounds = (
        Bound::Included(range.begin.as_slice()),
        Bound::Excluded(range.end.as_slice()),
    );
    let iter = base.range::<&[u8]>(bounds).map_err(engine)?;
    let row = |r: BaseRow| {
        r.map(|(k, v)| (k.value().to_vec(), Some(v.value().to_vec())))
            .map_err(engine)
    };
    if reverse {
        iter.rev().take(limit).map(row).collect()
    } else {
        iter.take(limit).map(row).collect()
    }
}

struct Shared {
    snapshot: RwLock<Arc<Snapshot>>,
    requests: mpsc::Sender<Request>,
    dir: PathBuf,
}

/// Handle to an embedded store; cheap to clone. The files close when the last handle drops.
#[derive(Clone)]
pub struct EmbeddedStore {
    shared: Arc<Shared>,
}

enum Request {
    Commit {
        read_version: u64,
        reads: Vec<KeyRange>,
        writes: Mutations,
        reply: oneshot::Sender<Result<()>>,
    },
    Watch {
        since: u64,
        range: KeyRange,
        fire: oneshot::Sender<Result<()>>,
    },
}

fn engine(e: impl std::fmt::Display) -> Error {
    Error::Engine(e.to_string())
}

fn io_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Engine(format!("{what}: {e}"))
}

fn open_base(db: &Database) -> Result<Arc<Base>> {
    Ok(Arc::new(
        db.begin_read()
            .map_err(engine)?
            .open_table(KV)
            .map_err(engine)?,
    ))
}

/// Writes `entries` (sorted, one per key) into the base and records `version` as flushed, in
/// one durable redb transaction.
fn flush_into_base(db: &Database, entries: &[Entry], version: u64) -> Result<()> {
    let txn = db.begin_write().map_err(engine)?;
    {
        let mut table = txn.open_table(KV).map_err(engine)?;
        for (k, v) in entries {
            match v {
                Some(v) => table.insert(k.as_slice(), v.as_slice()).map(|_| ()),
                None => table.remove(k.as_slice()).map(|_| ()),
            }
            .map_err(engine)?;
        }
        txn.open_table(META)
            .map_err(engine)?
            .insert(FLUSHED_VERSION, version)
            .map_err(engine)?;
    }
    txn.commit().map_err(engine)
}

impl EmbeddedStore {
    /// Opens (or creates) the store in directory `dir`, replaying its log.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, EmbeddedOptions::default())
    }

    /// `open` with explicit tuning.
    pub fn open_with(dir: impl AsRef<Path>, options: EmbeddedOptions) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Config(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join(FILE_NAME);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| Error::Config(format!("cannot open {}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(engine)?;
        txn.open_table(KV).map_err(engine)?;
        let flushed = txn
            .open_table(META)
            .map_err(engine)?
            .get(FLUSHED_VERSION)
            .map_err(engine)?
            .map(|g| g.value());
        txn.commit().map_err(engine)?;
        let flushed = flushed.unwrap_or(0);

        // Recovery: fold every logged batch newer than the base into it, then start afresh.
        let segments = wal::segments(&dir).map_err(|e| io_err("cannot list the log", e))?;
        let mut replayed: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        let mut version = flushed;
        for seg in &segments {
            wal::replay(seg, |v, entries| {
                if v > flushed && v > version {
                    version = v;
                    replayed.extend(entries);
                }
            })
            .map_err(|e| io_err("cannot read the log", e))?;
        }
        if version > flushed {
            let entries: Vec<Entry> = replayed.into_iter().collect();
            flush_into_base(&db, &entries, version)?;
            tracing::info!(
                batches_up_to = version,
                keys = entries.len(),
                "replayed the write-ahead log"
            );
        }
        for seg in segments {
            std::fs::remove_file(&seg)
                .map_err(|e| io_err("cannot remove a replayed log segment", e))?;
        }
        let wal = Wal::create(&dir, version + 1).map_err(|e| io_err("cannot create the log", e))?;

        let db = Arc::new(db);
        let layers = Layers {
            active: Arc::default(),
            frozen: Vec::new(),
            base: open_base(&db)?,
        };
        let snapshot = RwLock::new(Arc::new(Snapshot {
            version,
            layers: layers.clone(),
        }));
        let (requests, rx) = mpsc::channel(QUEUE_MAX_REQUESTS);
        let shared = Arc::new(Shared {
            snapshot,
            requests,
            dir,
        });
        let layers = Arc::new(Mutex::new(layers));
        // One flush in progress and one waiting at most; past that the committer waits.
        let (flushes, flush_rx) = std_mpsc::sync_channel::<FlushJob>(1);
        let flusher = Flusher {
            db: db.clone(),
            layers: layers.clone(),
            shared: Arc::downgrade(&shared),
        };
        std::thread::Builder::new()
            .name("store-flusher".into())
            .spawn(move || flusher.run(flush_rx))
            .map_err(|e| Error::Config(format!("cannot start the flusher: {e}")))?;
        let committer = Committer {
            wal,
            layers,
            flushes,
            shared: Arc::downgrade(&shared),
            version,
            history: VecDeque::new(),
            history_floor: version,
            watches: Vec::new(),
            failed: None,
            flush_bytes: options.flush_bytes,
        };
        std::thread::Builder::new()
            .name("store-committer".into())
            .spawn(move || committer.run(rx))
            .map_err(|e| Error::Config(format!("cannot start the committer: {e}")))?;
        Ok(EmbeddedStore { shared })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }
}

impl Store for EmbeddedStore {
    type Txn = Buffered<EmbeddedSource>;

    async fn begin(&self) -> Result<Self::Txn> {
        let snap = self
            .shared
            .snapshot
            .read()
            .expect("snapshot lock poisoned")
            .clone();
        Ok(Buffered::new(EmbeddedSource {
            shared: self.shared.clone(),
            snap,
            reads: Vec::new(),
        }))
    }
}

/// One embedded transaction's snapshot and read set.
pub struct EmbeddedSource {
    shared: Arc<Shared>,
    snap: Arc<Snapshot>,
    reads: Vec<KeyRange>,
}

impl Source for EmbeddedSource {
    async fn read(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.snap.get(key)
    }

    async fn read_page(
        &mut self,
        range: &KeyRange,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<KeyValue>> {
        self.snap.scan(range, limit, reverse)
    }

    fn add_read_conflict(&mut self, range: KeyRange) {
        self.reads.push(range);
    }

    async fn watch(&mut self, target: WatchTarget) -> Result<Watch> {
        let (fire, fired) = oneshot::channel();
        let req = Request::Watch {
            since: self.snap.version,
            range: target.range(),
            fire,
        };
        self.shared
            .requests
            .send(req)
            .await
            .map_err(|_| Error::Closed)?;
        Ok(Watch { fired })
    }

    async fn commit(self, writes: Mutations) -> Result<()> {
        // A read-only transaction is serializable at its snapshot: nothing to check or write.
        if writes.is_empty() {
            return Ok(());
        }
        let (reply, replied) = oneshot::channel();
        let req = Request::Commit {
            read_version: self.snap.version,
            reads: self.reads,
            writes,
            reply,
        };
        self.shared
            .requests
            .send(req)
            .await
            .map_err(|_| Error::Closed)?;
        // The request was handed over: from here a silent end is an unknown outcome.
        replied
            .await
            .unwrap_or_else(|_| Err(Error::CommitUnknown("committer stopped".into())))
    }
}

/// The keys and ranges one committed batch wrote.
#[derive(Default)]
struct WriteSet {
    keys: BTreeSet<Vec<u8>>,
    ranges: Vec<KeyRange>,
}

impl WriteSet {
    fn add(&mut self, writes: &Mutations) {
        self.ranges.extend(writes.cleared.iter().cloned());
        self.keys.extend(writes.ops.iter().map(|(k, _)| k.clone()));
    }

    fn touches(&self, range: &KeyRange) -> bool {
        self.keys
            .range::<[u8], _>((
                Bound::Included(range.begin.as_slice()),
                Bound::Excluded(range.end.as_slice()),
            ))
            .next()
            .is_some()
            || self.ranges.iter().any(|r| r.overlaps(range))
    }
}

struct Committed {
    version: u64,
    at: Instant,
    writes: WriteSet,
}

struct PendingWatch {
    range: KeyRange,
    fire: oneshot::Sender<Result<()>>,
}

/// A frozen memtable for the flusher, and the log segment it makes redundant.
struct FlushJob {
    memtable: Arc<Memtable>,
    version: u64,
    segment: PathBuf,
}

struct Committer {
    wal: Wal,
    layers: Arc<Mutex<Layers>>,
    flushes: std_mpsc::SyncSender<FlushJob>,
    shared: std::sync::Weak<Shared>,
    version: u64,
    history: VecDeque<Committed>,
    /// Every version at or below this has left `history`; a transaction that read at such a
    /// version cannot be checked and is told to retry.
    history_floor: u64,
    watches: Vec<PendingWatch>,
    /// Set when a log write failed: after a failed fsync the file's state is unknown
    /// (Linux may drop the dirty pages), so nothing more is accepted until a reopen replays it.
    failed: Option<String>,
    flush_bytes: usize,
}

struct Accepted {
    writes: Mutations,
    reply: oneshot::Sender<Result<()>>,
}

impl Committer {
    fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        let mut batch = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < BATCH_MAX_TXNS {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            self.process(&mut batch);
        }
    }

    fn conflicts(&self, read_version: u64, reads: &[KeyRange], pending: &WriteSet) -> bool {
        if read_version < self.history_floor {
            return true;
        }
        let newer = self
            .history
            .iter()
            .rev()
            .take_while(|c| c.version > read_version);
        reads.iter().any(|r| pending.touches(r))
            || newer
                .into_iter()
                .any(|c| reads.iter().any(|r| c.writes.touches(r)))
    }

    fn process(&mut self, batch: &mut Vec<Request>) {
        let mut pending = WriteSet::default();
        let mut accepted: Vec<Accepted> = Vec::new();
        for req in batch.drain(..) {
            match req {
                Request::Commit { reply, .. } if self.failed.is_some() => {
                    let _ = reply.send(Err(Error::Unavailable(format!(
                        "embedded store stopped after a log failure: {}",
                        self.failed.as_deref().unwrap_or_default()
                    ))));
                }
                Request::Commit {
                    read_version,
                    reads,
                    writes,
                    reply,
                } => {
                    if self.conflicts(read_version, &reads, &pending) {
                        let _ = reply.send(Err(Error::Conflict));
                    } else {
                        pending.add(&writes);
                        accepted.push(Accepted { writes, reply });
                    }
                }
                Request::Watch { since, range, fire } => self.arm(since, range, fire),
            }
        }
        if accepted.is_empty() {
            return;
        }
        let latest = match self.shared.upgrade() {
            Some(shared) => shared
                .snapshot
                .read()
                .expect("snapshot lock poisoned")
                .clone(),
            None => return,
        };
        let entries = match resolve(&latest, &accepted) {
            Ok(e) => e,
            Err(e) => {
                for a in accepted {
                    let _ = a.reply.send(Err(e.clone()));
                }
                return;
            }
        };
        let version = self.version + 1;
        if let Err(e) = self.wal.append(version, &entries) {
            tracing::error!(error = %e, txns = accepted.len(), "embedded store log write failed");
            self.failed = Some(e.to_string());
            for a in accepted {
                let _ = a
                    .reply
                    .send(Err(Error::CommitUnknown(format!("log write failed: {e}"))));
            }
            return;
        }
        self.version = version;
        let layers = {
            let layers = self.layers.lock().expect("layers lock poisoned");
            layers.active.insert_batch(version, entries);
            layers.clone()
        };
        self.publish(layers);
        self.fire_watches(&pending);
        self.history.push_back(Committed {
            version,
            at: Instant::now(),
            writes: pending,
        });
        self.trim_history();
        for a in accepted {
            let _ = a.reply.send(Ok(()));
        }
        self.maybe_freeze();
    }

    fn publish(&self, layers: Layers) {
        if let Some(shared) = self.shared.upgrade() {
            *shared.snapshot.write().expect("snapshot lock poisoned") = Arc::new(Snapshot {
                version: self.version,
                layers,
            });
        }
    }

    /// Freezes the memtable once it is large and hands it to the flusher (waiting if the
    /// flusher is behind: that wait is the engine's backpressure).
    fn maybe_freeze(&mut self) {
        let big = self
            .layers
            .lock()
            .expect("layers lock poisoned")
            .active
            .bytes()
            >= self.flush_bytes;
        if !big {
            return;
        }
        let segment = match self.wal.rotate(self.version + 1) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot start a new log segment; flush postponed");
                return;
            }
        };
        let (memtable, layers) = {
            let mut l = self.layers.lock().expect("layers lock poisoned");
            let frozen = std::mem::take(&mut l.active);
            l.frozen.insert(0, frozen.clone());
            (frozen, l.clone())
        };
        self.publish(layers);
        let job = FlushJob {
            memtable,
            version: self.version,
            segment,
        };
        if self.flushes.send(job).is_err() {
            tracing::error!("the flusher stopped; the log keeps growing until a reopen");
        }
    }

    fn arm(&mut self, since: u64, range: KeyRange, fire: oneshot::Sender<Result<()>>) {
        let missed = since < self.history_floor
            || self
                .history
                .iter()
                .rev()
                .take_while(|c| c.version > since)
                .any(|c| c.writes.touches(&range));
        if missed {
            let _ = fire.send(Ok(()));
        } else {
            self.watches.push(PendingWatch { range, fire });
        }
    }

    fn fire_watches(&mut self, writes: &WriteSet) {
        self.watches.retain_mut(|w| {
            if w.fire.is_closed() {
                return false;
            }
            if writes.touches(&w.range) {
                let (fire, _) = oneshot::channel();
                let _ = std::mem::replace(&mut w.fire, fire).send(Ok(()));
                return false;
            }
            true
        });
    }

    fn trim_history(&mut self) {
        // Keep a margin past the transaction limit: a transaction's clock starts a little
        // before it takes its snapshot.
        let horizon = TXN_MAX_DURATION + Duration::from_secs(1);
        while let Some(oldest) = self.history.front() {
            if self.history.len() > HISTORY_MAX_ENTRIES || oldest.at.elapsed() > horizon {
                self.history_floor = oldest.version;
                self.history.pop_front();
            } else {
                break;
            }
        }
    }
}

/// Turns a batch of accepted transactions into the final value of every key it writes: cleared
/// ranges become deletions of the keys they hold, atomic adds are applied to the value the
/// earlier transactions of the batch (or the latest snapshot) left.
fn resolve(latest: &Snapshot, accepted: &[Accepted]) -> Result<Vec<Entry>> {
    let mut out: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    for a in accepted {
        for r in &a.writes.cleared {
            let mut cursor = r.clone();
            loop {
                let page = latest.scan(&cursor, 10_000, false)?;
                let Some((last, _)) = page.last() else { break };
                cursor.begin = KeyRange::single(last).end;
                for (k, _) in page {
                    out.insert(k, None);
                }
            }
            let inside: Vec<Vec<u8>> = out
                .range(r.begin.clone()..r.end.clone())
                .map(|(k, _)| k.clone())
                .collect();
            for k in inside {
                out.insert(k, None);
            }
        }
        for (key, op) in &a.writes.ops {
            let value = match op {
                Op::Set(v) => Some(v.clone()),
                Op::Clear => None,
                Op::Add(delta) => {
                    let base = match out.get(key) {
                        Some(v) => v.clone(),
                        None => latest.get(key)?,
                    };
                    Some(add_le(base.as_deref(), *delta))
                }
            };
            out.insert(key.clone(), value);
        }
    }
    Ok(out.into_iter().collect())
}

struct Flusher {
    db: Arc<Database>,
    layers: Arc<Mutex<Layers>>,
    shared: std::sync::Weak<Shared>,
}

impl Flusher {
    fn run(self, jobs: std_mpsc::Receiver<FlushJob>) {
        for job in jobs {
            let started = Instant::now();
            let entries = job.memtable.latest();
            if let Err(e) = flush_into_base(&self.db, &entries, job.version) {
                // The log still holds the data; a reopen replays it.
                tracing::error!(error = %e, "flushing the memtable into the base failed");
                continue;
            }
            let base = match open_base(&self.db) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the base after a flush");
                    continue;
                }
            };
            {
                let mut l = self.layers.lock().expect("layers lock poisoned");
                l.frozen.retain(|m| !Arc::ptr_eq(m, &job.memtable));
                l.base = base;
                if let Some(shared) = self.shared.upgrade() {
                    let mut snap = shared.snapshot.write().expect("snapshot lock poisoned");
                    *snap = Arc::new(Snapshot {
                        version: snap.version,
                        layers: l.clone(),
                    });
                }
            }
            if let Err(e) = std::fs::remove_file(&job.segment) {
                tracing::warn!(error = %e, segment = %job.segment.display(), "cannot remove a flushed log segment");
            }
            tracing::debug!(
                keys = entries.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "memtable flushed"
            );
            drop(entries);
            drop(job);
            release_freed_memory();
        }
    }
}

/// Hands the memory of a flushed memtable (many small allocations, freed at once) back to the
/// operating system. glibc keeps freed heap in its arenas otherwise, and a node that queued a
/// million jobs would hold on to that peak for good.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator; it touches no live data.
    unsafe {
        libc::malloc_trim(0);
    }
}

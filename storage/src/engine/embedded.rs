//! The embedded engine: one redb file, made serializable and fast by a single committer thread
//! that does group commit. Transactions read a shared redb snapshot tagged with a version and
//! send their read-conflict ranges and writes to the committer; it rejects any transaction
//! whose reads overlap a write committed after its version (the FoundationDB resolver's
//! check), applies every survivor of a batch in one redb write transaction, and fsyncs once for
//! the whole batch before any of them is acknowledged.

use std::collections::{BTreeSet, VecDeque};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use crate::buffer::{Buffered, Mutations, Op, Source, add_le};
use crate::error::{Error, Result};
use crate::limits::TXN_MAX_DURATION;
use crate::txn::{KeyRange, KeyValue, Store, Watch, WatchTarget};

const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
/// The file inside the data directory.
pub const FILE_NAME: &str = "gigafactory.redb";

/// redb's page cache. Its default (1 GiB) would dominate the coordinator's memory; hot data
/// (the ready index, leased jobs) is far smaller.
const CACHE_BYTES: usize = 128 * 1024 * 1024;
/// Most transactions the committer folds into one redb commit.
const BATCH_MAX_TXNS: usize = 4096;
/// Requests that may wait for the committer before senders wait too (backpressure).
const QUEUE_MAX_REQUESTS: usize = 8192;
/// Committed write sets kept for conflict checks. Transactions live at most
/// `TXN_MAX_DURATION`, so older entries are useless; the count bound caps memory under
/// extreme rates (a transaction older than the kept history conflicts and retries).
const HISTORY_MAX_ENTRIES: usize = 100_000;

/// A redb snapshot and the committed version it shows.
struct Snapshot {
    version: u64,
    table: ReadOnlyTable<&'static [u8], &'static [u8]>,
}

struct Shared {
    snapshot: RwLock<Arc<Snapshot>>,
    requests: mpsc::Sender<Request>,
    path: PathBuf,
}

/// Handle to an embedded store; cheap to clone. The file closes when the last handle drops.
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

impl EmbeddedStore {
    /// Opens (or creates) the store in directory `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Config(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join(FILE_NAME);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| Error::Config(format!("cannot open {}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(engine)?;
        txn.open_table(KV).map_err(engine)?;
        txn.commit().map_err(engine)?;
        let db = Arc::new(db);
        let snapshot = RwLock::new(Arc::new(read_snapshot(&db, 0)?));
        let (requests, rx) = mpsc::channel(QUEUE_MAX_REQUESTS);
        let shared = Arc::new(Shared {
            snapshot,
            requests,
            path,
        });
        let committer = Committer {
            db,
            shared: Arc::downgrade(&shared),
            version: 0,
            history: VecDeque::new(),
            history_floor: 0,
            watches: Vec::new(),
        };
        std::thread::Builder::new()
            .name("store-committer".into())
            .spawn(move || committer.run(rx))
            .map_err(|e| Error::Config(format!("cannot start committer: {e}")))?;
        Ok(EmbeddedStore { shared })
    }

    /// The file holding the data.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }
}

fn engine(e: impl std::fmt::Display) -> Error {
    Error::Engine(e.to_string())
}

fn read_snapshot(db: &Database, version: u64) -> Result<Snapshot> {
    let table = db
        .begin_read()
        .map_err(engine)?
        .open_table(KV)
        .map_err(engine)?;
    Ok(Snapshot { version, table })
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
        let got = self.snap.table.get(key).map_err(engine)?;
        Ok(got.map(|v| v.value().to_vec()))
    }

    async fn read_page(
        &mut self,
        range: &KeyRange,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<KeyValue>> {
        let bounds = (
            Bound::Included(range.begin.as_slice()),
            Bound::Excluded(range.end.as_slice()),
        );
        let iter = self.snap.table.range::<&[u8]>(bounds).map_err(engine)?;
        let pair = |r: std::result::Result<
            (redb::AccessGuard<&[u8]>, redb::AccessGuard<&[u8]>),
            redb::StorageError,
        >| {
            r.map(|(k, v)| (k.value().to_vec(), v.value().to_vec()))
                .map_err(engine)
        };
        if reverse {
            iter.rev().take(limit).map(pair).collect()
        } else {
            iter.take(limit).map(pair).collect()
        }
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

struct Committer {
    db: Arc<Database>,
    shared: std::sync::Weak<Shared>,
    version: u64,
    history: VecDeque<Committed>,
    /// Every version at or below this has left `history`; a transaction that read at such a
    /// version cannot be checked and is told to retry.
    history_floor: u64,
    watches: Vec<PendingWatch>,
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
        if let Err(e) = self.apply(&accepted) {
            tracing::error!(error = %e, txns = accepted.len(), "embedded store commit failed");
            for a in accepted {
                let _ = a.reply.send(Err(Error::CommitUnknown(e.to_string())));
            }
            return;
        }
        self.version += 1;
        match read_snapshot(&self.db, self.version) {
            Ok(snap) => {
                if let Some(shared) = self.shared.upgrade() {
                    *shared.snapshot.write().expect("snapshot lock poisoned") = Arc::new(snap);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot open a read snapshot after commit"),
        }
        self.fire_watches(&pending);
        self.history.push_back(Committed {
            version: self.version,
            at: Instant::now(),
            writes: pending,
        });
        self.trim_history();
        for a in accepted {
            let _ = a.reply.send(Ok(()));
        }
    }

    /// Applies the batch in one redb transaction and makes it durable (redb's default
    /// `Durability::Immediate` fsyncs before `commit` returns).
    fn apply(&self, accepted: &[Accepted]) -> Result<()> {
        let txn = self.db.begin_write().map_err(engine)?;
        {
            let mut table = txn.open_table(KV).map_err(engine)?;
            for a in accepted {
                for r in &a.writes.cleared {
                    let bounds = (
                        Bound::Included(r.begin.as_slice()),
                        Bound::Excluded(r.end.as_slice()),
                    );
                    table
                        .retain_in::<&[u8], _>(bounds, |_, _| false)
                        .map_err(engine)?;
                }
                for (key, op) in &a.writes.ops {
                    match op {
                        Op::Set(v) => {
                            table.insert(key.as_slice(), v.as_slice()).map_err(engine)?;
                        }
                        Op::Clear => {
                            table.remove(key.as_slice()).map_err(engine)?;
                        }
                        Op::Add(delta) => {
                            let base = table
                                .get(key.as_slice())
                                .map_err(engine)?
                                .map(|g| g.value().to_vec());
                            let v = add_le(base.as_deref(), *delta);
                            table.insert(key.as_slice(), v.as_slice()).map_err(engine)?;
                        }
                    }
                }
            }
        }
        txn.commit().map_err(engine)
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
        let mut kept = Vec::with_capacity(self.watches.len());
        for w in self.watches.drain(..) {
            if w.fire.is_closed() {
                continue;
            }
            if writes.touches(&w.range) {
                let _ = w.fire.send(Ok(()));
            } else {
                kept.push(w);
            }
        }
        self.watches = kept;
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

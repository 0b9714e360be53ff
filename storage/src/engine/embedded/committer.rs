//! The committer: the one thread that decides every commit of the embedded store. It takes the
//! waiting requests as a batch, rejects a transaction whose reads overlap a write committed
//! after the version it read (FoundationDB's resolver check), appends the survivors to the log
//! as one record and `fdatasync`s once before any of them is acknowledged, then adds the batch
//! to the active memtable and publishes the new snapshot. It guarantees: an acknowledged commit
//! is durable; a commit is acknowledged only if nothing it read was written after its read
//! version; after a failed log write nothing more is accepted until a reopen.
//!
//! It also arms watches (fired by the first batch that writes their range) and freezes the
//! memtable for the flusher once it is large.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::Shared;
use super::flusher::FlushJob;
use super::memtable::Entry;
use super::snapshot::{Layers, Snapshot};
use super::wal::Wal;
use crate::buffer::{Mutations, Op, add_le};
use crate::error::{Error, Result};
use crate::limits::TXN_MAX_DURATION;
use crate::txn::KeyRange;

/// Most transactions the committer folds into one log record.
const BATCH_MAX_TXNS: usize = 4096;
/// Committed write sets kept for conflict checks. Transactions live at most
/// `TXN_MAX_DURATION`, so older entries are useless; the count bound caps memory under
/// extreme rates (a transaction older than the kept history conflicts and retries).
const HISTORY_MAX_ENTRIES: usize = 100_000;

/// What a transaction asks of the committer.
pub(super) enum Request {
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

/// A committed batch, kept while a transaction that read before it could still commit.
struct Committed {
    version: u64,
    at: Instant,
    writes: WriteSet,
}

/// A watch waiting for a batch that writes its range.
struct PendingWatch {
    range: KeyRange,
    fire: oneshot::Sender<Result<()>>,
}

/// The one thread that decides every commit, in version order.
pub(super) struct Committer {
    wal: Wal,
    layers: Arc<Mutex<Layers>>,
    flushes: SyncSender<FlushJob>,
    shared: Weak<Shared>,
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

/// A transaction of the current batch that passed the conflict check.
struct Accepted {
    writes: Mutations,
    reply: oneshot::Sender<Result<()>>,
}

impl Committer {
    /// A committer whose log, layers and history start at `version` (what opening replayed).
    pub(super) fn new(
        wal: Wal,
        layers: Arc<Mutex<Layers>>,
        flushes: SyncSender<FlushJob>,
        shared: Weak<Shared>,
        version: u64,
        flush_bytes: usize,
    ) -> Self {
        Committer {
            wal,
            layers,
            flushes,
            shared,
            version,
            history: VecDeque::new(),
            history_floor: version,
            watches: Vec::new(),
            failed: None,
            flush_bytes,
        }
    }

    /// Starts the committer thread; it stops once every sender of `rx` is gone.
    pub(super) fn start(self, rx: mpsc::Receiver<Request>) -> Result<()> {
        std::thread::Builder::new()
            .name("store-committer".into())
            .spawn(move || self.run(rx))
            .map(|_| ())
            .map_err(|e| Error::Config(format!("cannot start the committer: {e}")))
    }

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

//! The flusher: the thread that writes each frozen memtable into the base file in one large,
//! sorted redb transaction, then publishes a snapshot without that memtable and deletes the log
//! segment it made redundant. It guarantees that a log segment is deleted only after the base
//! durably holds every batch in it (with the version flushed), so a crash at any point loses
//! nothing: opening replays whatever the base lacks.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use redb::Database;

use super::memtable::{Entry, Memtable};
use super::snapshot::{Layers, Snapshot, open_base};
use super::{FLUSHED_VERSION, KV, META, Shared, engine};
use crate::error::{Error, Result};

/// Writes `entries` (sorted, one per key) into the base and records `version` as flushed, in
/// one durable redb transaction.
pub(super) fn flush_into_base(db: &Database, entries: &[Entry], version: u64) -> Result<()> {
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

/// A frozen memtable for the flusher, and the log segment it makes redundant.
pub(super) struct FlushJob {
    pub(super) memtable: Arc<Memtable>,
    pub(super) version: u64,
    pub(super) segment: PathBuf,
}

struct Flusher {
    db: Arc<Database>,
    layers: Arc<Mutex<Layers>>,
    shared: Weak<Shared>,
}

/// Starts the flusher thread and returns where the committer hands it frozen memtables. It
/// stops once that sender is gone.
pub(super) fn start(
    db: Arc<Database>,
    layers: Arc<Mutex<Layers>>,
    shared: Weak<Shared>,
) -> Result<SyncSender<FlushJob>> {
    // One flush in progress and one waiting at most; past that the committer waits.
    let (flushes, jobs) = sync_channel::<FlushJob>(1);
    let flusher = Flusher { db, layers, shared };
    std::thread::Builder::new()
        .name("store-flusher".into())
        .spawn(move || flusher.run(jobs))
        .map_err(|e| Error::Config(format!("cannot start the flusher: {e}")))?;
    Ok(flushes)
}

impl Flusher {
    fn run(self, jobs: Receiver<FlushJob>) {
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

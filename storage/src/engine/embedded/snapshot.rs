//! What an embedded transaction reads: the store's layers (the active memtable, the frozen ones
//! waiting for a flush, the base file) as of one committed version. A snapshot never changes
//! once published: the committer and the flusher publish a new one instead, so a reader sees
//! exactly the batches committed at or before its version, whichever layer holds them by then.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use redb::{Database, ReadOnlyTable, ReadableDatabase};

use super::memtable::{Entry, Memtable};
use super::{KV, engine};
use crate::error::Result;
use crate::txn::{KeyRange, KeyValue};

type Base = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// The layers a snapshot reads, newest first.
#[derive(Clone)]
pub(super) struct Layers {
    pub(super) active: Arc<Memtable>,
    /// Frozen memtables waiting for (or in) a flush, newest first.
    pub(super) frozen: Vec<Arc<Memtable>>,
    pub(super) base: Arc<Base>,
}

/// What one transaction reads: the layers as of `version`.
pub(super) struct Snapshot {
    pub(super) version: u64,
    pub(super) layers: Layers,
}

impl Snapshot {
    pub(super) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
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
    pub(super) fn scan(
        &self,
        range: &KeyRange,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<KeyValue>> {
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

/// Up to `limit` rows of the base file in `range`, in key order (or reversed).
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

/// The base file as of now, for a new snapshot.
pub(super) fn open_base(db: &Database) -> Result<Arc<Base>> {
    Ok(Arc::new(
        db.begin_read()
            .map_err(engine)?
            .open_table(KV)
            .map_err(engine)?,
    ))
}

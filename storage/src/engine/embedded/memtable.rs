//! The in-memory layer of the embedded engine: recent writes, kept by version so that a reader
//! at version `V` sees exactly what was committed at or before `V` while the committer keeps
//! adding newer versions. Entries are `(key, version) → value or tombstone`, ordered by key and
//! then newest version first.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::txn::KeyRange;

type MemKey = (Vec<u8>, Reverse<u64>);

/// A value, or `None` for a deletion.
pub(super) type Entry = (Vec<u8>, Option<Vec<u8>>);

/// Bytes an entry is charged beyond its key and value (the map's node and bookkeeping).
const ENTRY_OVERHEAD_BYTES: usize = 64;

#[derive(Default)]
pub(super) struct Memtable {
    map: RwLock<BTreeMap<MemKey, Option<Vec<u8>>>>,
    bytes: AtomicUsize,
}

impl Memtable {
    /// Adds one committed batch. Versions must grow from batch to batch.
    pub fn insert_batch(&self, version: u64, writes: Vec<Entry>) {
        let mut added = 0;
        let mut map = self.map.write().expect("memtable lock poisoned");
        for (key, value) in writes {
            added += key.len() + value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD_BYTES;
            map.insert((key, Reverse(version)), value);
        }
        self.bytes.fetch_add(added, Ordering::Relaxed);
    }

    /// Approximate memory held.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The newest entry for `key` at or before version `at`: `None` if this layer has none,
    /// `Some(None)` if the key was deleted.
    pub fn get(&self, key: &[u8], at: u64) -> Option<Option<Vec<u8>>> {
        let map = self.map.read().expect("memtable lock poisoned");
        let from = (key.to_vec(), Reverse(at));
        map.range(from..)
            .next()
            .filter(|((k, _), _)| k.as_slice() == key)
            .map(|(_, v)| v.clone())
    }

    /// Up to `limit` keys of `range` as of version `at`, tombstones included, in key order (or
    /// reverse).
    pub fn scan(&self, range: &KeyRange, at: u64, limit: usize, reverse: bool) -> Vec<Entry> {
        let map = self.map.read().expect("memtable lock poisoned");
        let lo = Bound::Included((range.begin.clone(), Reverse(u64::MAX)));
        let hi = Bound::Excluded((range.end.clone(), Reverse(u64::MAX)));
        let iter = map.range((lo, hi));
        let mut out: Vec<Entry> = Vec::new();
        if reverse {
            // Going backwards, a key's versions come oldest first: the last visible one wins.
            let mut current: Option<Entry> = None;
            for ((k, Reverse(v)), value) in iter.rev() {
                if current.as_ref().is_some_and(|(ck, _)| ck != k) {
                    out.push(current.take().expect("checked"));
                    if out.len() == limit {
                        return out;
                    }
                }
                if *v <= at {
                    current = Some((k.clone(), value.clone()));
                }
            }
            out.extend(current);
        } else {
            let mut last: Option<&Vec<u8>> = None;
            for ((k, Reverse(v)), value) in iter {
                if *v > at || last == Some(k) {
                    continue;
                }
                last = Some(k);
                out.push((k.clone(), value.clone()));
                if out.len() == limit {
                    break;
                }
            }
        }
        out
    }

    /// The newest entry of every key, in key order: what a flush writes to the base file.
    pub fn latest(&self) -> Vec<Entry> {
        let map = self.map.read().expect("memtable lock poisoned");
        let mut out: Vec<Entry> = Vec::new();
        for ((k, _), v) in map.iter() {
            if out.last().is_some_and(|(lk, _)| lk == k) {
                continue;
            }
            out.push((k.clone(), v.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(k: &str, v: Option<&str>) -> Entry {
        (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()))
    }

    #[test]
    fn readers_see_only_versions_at_or_before_theirs() {
        let m = Memtable::default();
        m.insert_batch(1, vec![e("a", Some("1")), e("b", Some("1"))]);
        m.insert_batch(2, vec![e("a", Some("2")), e("b", None)]);
        m.insert_batch(3, vec![e("c", Some("3"))]);
        assert_eq!(m.get(b"a", 1), Some(Some(b"1".to_vec())));
        assert_eq!(m.get(b"a", 5), Some(Some(b"2".to_vec())));
        assert_eq!(m.get(b"b", 2), Some(None));
        assert_eq!(m.get(b"c", 2), None);
        let all = KeyRange::new(b"a".to_vec(), b"z".to_vec());
        assert_eq!(
            m.scan(&all, 1, 10, false),
            vec![e("a", Some("1")), e("b", Some("1"))]
        );
        assert_eq!(
            m.scan(&all, 3, 10, false),
            vec![e("a", Some("2")), e("b", None), e("c", Some("3"))]
        );
        assert_eq!(
            m.scan(&all, 3, 10, true),
            vec![e("c", Some("3")), e("b", None), e("a", Some("2"))]
        );
        assert_eq!(
            m.scan(&all, 1, 10, true),
            vec![e("b", Some("1")), e("a", Some("1"))]
        );
        assert_eq!(
            m.scan(&all, 3, 2, true),
            vec![e("c", Some("3")), e("b", None)]
        );
        assert_eq!(
            m.latest(),
            vec![e("a", Some("2")), e("b", None), e("c", Some("3"))]
        );
    }
}

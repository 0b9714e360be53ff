//! Read-your-writes for engines that commit a transaction's writes in one request at the end
//! (embedded and etcd): a write buffer over the engine's snapshot reads, merged in key order,
//! and the read-conflict ranges those reads imply. FoundationDB does all of this itself.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::ops::Bound;

use crate::error::Result;
use crate::guard::{TxnGuard, Write};
use crate::limits;
use crate::txn::{KeyRange, KeyValue, RangeOptions, Transaction, Watch, WatchTarget};

/// A buffered mutation of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Set(Vec<u8>),
    Clear,
    /// An atomic add not yet resolved against the stored value.
    Add(i64),
}

/// What a transaction commits: first the cleared ranges, then the per-key ops.
#[derive(Debug, Default)]
pub struct Mutations {
    pub cleared: Vec<KeyRange>,
    pub ops: Vec<(Vec<u8>, Op)>,
}

impl Mutations {
    pub fn is_empty(&self) -> bool {
        self.cleared.is_empty() && self.ops.is_empty()
    }
}

/// The little-endian signed add FoundationDB's `ADD` mutation performs: the stored value,
/// zero-extended or truncated to 8 bytes, plus `delta`, wrapping.
pub fn add_le(base: Option<&[u8]>, delta: i64) -> Vec<u8> {
    let mut bytes = [0u8; 8];
    if let Some(b) = base {
        let n = b.len().min(8);
        bytes[..n].copy_from_slice(&b[..n]);
    }
    i64::from_le_bytes(bytes)
        .wrapping_add(delta)
        .to_le_bytes()
        .to_vec()
}

/// An engine's view of one transaction: snapshot reads at a fixed version, conflict tracking,
/// watches and the final commit.
pub trait Source: Send + 'static {
    fn read(&mut self, key: &[u8]) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
    /// Up to `limit` rows of `range` in the snapshot, in order.
    fn read_page(
        &mut self,
        range: &KeyRange,
        limit: usize,
        reverse: bool,
    ) -> impl Future<Output = Result<Vec<KeyValue>>> + Send;
    /// Records that the transaction's outcome depends on `range` (a single key is
    /// `KeyRange::single`).
    fn add_read_conflict(&mut self, range: KeyRange);
    fn watch(&mut self, target: WatchTarget) -> impl Future<Output = Result<Watch>> + Send;
    fn commit(self, writes: Mutations) -> impl Future<Output = Result<()>> + Send;
}

/// A transaction made of a [`Source`] and a write buffer.
pub struct Buffered<S> {
    src: S,
    guard: TxnGuard,
    ops: BTreeMap<Vec<u8>, Op>,
    /// Disjoint cleared ranges keyed by their begin.
    cleared: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// How many snapshot rows a range read fetches at once beyond what it still needs, so that rows
/// hidden by buffered clears do not cost one round trip each.
const PAGE_SLACK_ROWS: usize = 16;

impl<S: Source> Buffered<S> {
    /// Whether the transaction wrote (its commit sends something to the engine).
    pub(crate) fn writes(&self) -> bool {
        self.guard.writes()
    }

    pub(crate) fn new(src: S) -> Self {
        Buffered {
            src,
            guard: TxnGuard::new(),
            ops: BTreeMap::new(),
            cleared: BTreeMap::new(),
        }
    }

    fn is_cleared(&self, key: &[u8]) -> bool {
        self.cleared
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()
            .is_some_and(|(_, end)| key < end.as_slice())
    }

    /// The snapshot value of `key`, unless a buffered clear hides it.
    async fn base(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.is_cleared(key) {
            Ok(None)
        } else {
            self.src.read(key).await
        }
    }

    async fn read_key(&mut self, key: &[u8], snapshot: bool) -> Result<Option<Vec<u8>>> {
        self.guard.check_live()?;
        if !snapshot {
            // Charged whether or not the value comes from the buffer: FoundationDB's count does
            // not depend on an engine's buffering, so neither may the guard's.
            self.guard.charge_read(&KeyRange::single(key));
        }
        if limits::is_reserved(key) {
            return Ok(None);
        }
        let value = match self.ops.get(key).cloned() {
            Some(Op::Set(v)) => return Ok(Some(v)),
            Some(Op::Clear) => return Ok(None),
            Some(Op::Add(delta)) => Some(add_le(self.base(key).await?.as_deref(), delta)),
            None => self.base(key).await?,
        };
        if !snapshot {
            self.src.add_read_conflict(KeyRange::single(key));
        }
        Ok(value)
    }

    fn insert_cleared(&mut self, range: &KeyRange) {
        let mut begin = range.begin.clone();
        let mut end = range.end.clone();
        // Absorb every cleared range that touches [begin, end).
        let touching: Vec<Vec<u8>> = self
            .cleared
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(end.as_slice())))
            .filter(|(b, e)| e.as_slice() >= begin.as_slice() && b.as_slice() <= end.as_slice())
            .map(|(b, _)| b.clone())
            .collect();
        for b in touching {
            let e = self.cleared.remove(&b).expect("key was just listed");
            begin = begin.min(b);
            end = end.max(e);
        }
        self.cleared.insert(begin, end);
    }

    /// Up to `opts.limit` rows of `range`: the snapshot's rows merged with the buffered writes.
    async fn read_range(&mut self, range: &KeyRange, opts: RangeOptions) -> Result<Vec<KeyValue>> {
        let mut out: Vec<KeyValue> = Vec::new();
        let local: Vec<(Vec<u8>, Op)> = {
            let it = self.ops.range::<[u8], _>((
                Bound::Included(range.begin.as_slice()),
                Bound::Excluded(range.end.as_slice()),
            ));
            let it = it.map(|(k, op)| (k.clone(), op.clone()));
            if opts.reverse {
                it.rev().collect()
            } else {
                it.collect()
            }
        };
        let mut local = local.into_iter().peekable();
        let mut cursor = range.clone();
        let mut page: VecDeque<KeyValue> = VecDeque::new();
        let mut exhausted = false;
        while out.len() < opts.limit {
            while page.is_empty() && !exhausted {
                let want = opts.limit - out.len() + PAGE_SLACK_ROWS;
                let rows = self.src.read_page(&cursor, want, opts.reverse).await?;
                exhausted = rows.len() < want;
                if let Some((last, _)) = rows.last() {
                    if opts.reverse {
                        cursor.end = last.clone();
                    } else {
                        cursor.begin = KeyRange::single(last).end;
                    }
                }
                page.extend(
                    rows.into_iter()
                        .filter(|(k, _)| !self.ops.contains_key(k) && !self.is_cleared(k)),
                );
            }
            let take_local = match (local.peek(), page.front()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((lk, _)), Some((bk, _))) => (lk < bk) != opts.reverse,
            };
            if take_local {
                let (key, op) = local.next().expect("peeked");
                match op {
                    Op::Set(v) => out.push((key, v)),
                    Op::Clear => {}
                    Op::Add(delta) => {
                        let base = self.base(&key).await?;
                        out.push((key, add_le(base.as_deref(), delta)));
                    }
                }
            } else {
                out.push(page.pop_front().expect("checked non-empty"));
            }
        }
        Ok(out)
    }
}

impl<S: Source> Transaction for Buffered<S> {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let value = self.read_key(key, false).await;
        self.guard.note(value)
    }

    async fn get_snapshot(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let value = self.read_key(key, true).await;
        self.guard.note(value)
    }

    async fn get_range(&mut self, range: &KeyRange, opts: RangeOptions) -> Result<Vec<KeyValue>> {
        self.guard.check_live()?;
        opts.check()?;
        let Some(range) = limits::user_part(range) else {
            return Ok(Vec::new());
        };
        let rows = self.read_range(&range, opts).await;
        let rows = self.guard.note(rows)?;
        if !opts.snapshot {
            let conflict = opts.conflict_range(&range, &rows);
            self.guard.charge_read(&conflict);
            self.src.add_read_conflict(conflict);
        }
        Ok(rows)
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.guard.admit(Write::Set(key, value))?;
        self.ops.insert(key.to_vec(), Op::Set(value.to_vec()));
        Ok(())
    }

    fn clear(&mut self, key: &[u8]) -> Result<()> {
        self.guard.admit(Write::Clear(key))?;
        self.ops.insert(key.to_vec(), Op::Clear);
        Ok(())
    }

    fn clear_range(&mut self, range: &KeyRange) -> Result<()> {
        self.guard.admit(Write::ClearRange(range))?;
        let Some(range) = limits::user_part(range) else {
            return Ok(());
        };
        let inside: Vec<Vec<u8>> = self
            .ops
            .range::<[u8], _>((
                Bound::Included(range.begin.as_slice()),
                Bound::Excluded(range.end.as_slice()),
            ))
            .map(|(k, _)| k.clone())
            .collect();
        for k in inside {
            self.ops.remove(&k);
        }
        self.insert_cleared(&range);
        Ok(())
    }

    fn atomic_add(&mut self, key: &[u8], delta: i64) -> Result<()> {
        self.guard.admit(Write::AtomicAdd(key))?;
        let op = match self.ops.get(key) {
            Some(Op::Set(v)) => Op::Set(add_le(Some(v), delta)),
            Some(Op::Clear) => Op::Set(add_le(None, delta)),
            Some(Op::Add(d)) => Op::Add(d.wrapping_add(delta)),
            None if self.is_cleared(key) => Op::Set(add_le(None, delta)),
            None => Op::Add(delta),
        };
        self.ops.insert(key.to_vec(), op);
        Ok(())
    }

    async fn watch(&mut self, target: WatchTarget) -> Result<Watch> {
        self.guard.check_live()?;
        limits::check_watchable(&target)?;
        let watch = self.src.watch(target).await;
        self.guard.note(watch)
    }

    async fn commit(mut self) -> Result<()> {
        self.guard.check_commit()?;
        let writes = Mutations {
            cleared: self
                .cleared
                .into_iter()
                .map(|(b, e)| KeyRange::new(b, e))
                .collect(),
            ops: self.ops.into_iter().collect(),
        };
        self.src.commit(writes).await
    }

    fn must_retry(&self) -> bool {
        self.guard.must_retry()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_le_extends_short_values_and_wraps() {
        assert_eq!(add_le(None, 5), 5i64.to_le_bytes().to_vec());
        assert_eq!(add_le(Some(&[1]), 1), 2i64.to_le_bytes().to_vec());
        assert_eq!(
            add_le(Some(&i64::MAX.to_le_bytes()), 1),
            i64::MIN.to_le_bytes().to_vec()
        );
        assert_eq!(add_le(Some(&[1, 0, 0, 0, 0, 0, 0, 0, 9]), -1), vec![0; 8]);
    }
}

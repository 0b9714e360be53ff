//! Limits every engine enforces identically, taken from FoundationDB's, so that code that works
//! on the embedded engine also works on FoundationDB: the same transaction gets the same answer
//! on every engine.
//!
//! **What a transaction is charged.** FoundationDB refuses to commit a transaction whose
//! mutations plus read- and write-conflict ranges exceed 10 MB, counting every key as the
//! cluster sees it, namespace included (`NativeAPI`'s `Transaction::getSize`). The shared guard
//! charges an upper bound of that count, the same on every engine:
//!
//! | operation | FoundationDB records | charged |
//! | --- | --- | --- |
//! | `set(k, v)` | mutation `k = v`, write conflict `[k, k\0)` | `3·K + 1 + v` |
//! | `clear(k)` | mutation clear `[k, k\0)`, write conflict `[k, k\0)` | `4·K + 2` |
//! | `atomic_add(k)` | mutation `k += 8 bytes`, write conflict `[k, k\0)` | `3·K + 9` |
//! | `clear_range(b, e)` | mutation clear `[b, e)`, write conflict `[b, e)` | `2·(B + E)` |
//! | `get(k)` | read conflict `[k, k\0)` | `2·K + 1` |
//! | `get_range` | read conflict: the range, or the part read if the limit stopped it | `B + E` |
//!
//! where `K`, `B` and `E` are key lengths plus [`NAMESPACE_MAX_BYTES`], the longest namespace a
//! cluster engine accepts. Snapshot reads and watches are not charged. A transaction that writes
//! is also charged [`TXN_BOOKKEEPING_BYTES`] once, for what an engine adds to it by itself
//! (FoundationDB's prefix-watch counters). A transaction that only reads is never refused for
//! its size: FoundationDB does not send it at all.
//!
//! **Reserved keys.** Keys from `0xff` up are reserved on every engine, as they are in
//! FoundationDB (where the FoundationDB engine keeps its bookkeeping): writing one poisons the
//! transaction, reading one finds nothing, range reads and clears stop before them, and neither
//! can be watched.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::txn::{KeyRange, WatchTarget};

/// FoundationDB's own key limit, which applies to a key with its namespace.
pub(crate) const FDB_KEY_MAX_BYTES: usize = 10_000;
/// Longest namespace (the prefix the etcd and FoundationDB engines put before every key) a
/// store accepts; every key is charged as if it carried one this long.
pub const NAMESPACE_MAX_BYTES: usize = 64;
/// Longest key, in bytes: FoundationDB's limit less the namespace, so a key fits under any.
pub const KEY_MAX_BYTES: usize = FDB_KEY_MAX_BYTES - NAMESPACE_MAX_BYTES;
/// Longest value, in bytes.
pub const VALUE_MAX_BYTES: usize = 100_000;
/// Most bytes one transaction may be charged (see the module doc for what counts).
pub const TXN_MAX_BYTES: usize = 10_000_000;
/// What a transaction that writes is charged once for the engine's own additions to it.
pub const TXN_BOOKKEEPING_BYTES: usize = 4_096;
/// Longest a transaction may run, from its first read to its commit.
pub const TXN_MAX_DURATION: Duration = Duration::from_secs(5);
/// Most rows one range read may ask for; larger scans page with a cursor.
pub const RANGE_MAX_ROWS: usize = 100_000;

/// The first reserved key.
const RESERVED_KEYS_BEGIN: &[u8] = &[0xff];

/// What one key costs wherever FoundationDB counts it: its bytes and a namespace's.
const fn key_charge(len: usize) -> usize {
    len + NAMESPACE_MAX_BYTES
}

/// What `set` of a `key_len`-byte key to a `value_len`-byte value is charged.
pub const fn set_charge(key_len: usize, value_len: usize) -> usize {
    3 * key_charge(key_len) + 1 + value_len
}

/// What `clear` of a `key_len`-byte key is charged.
pub const fn clear_charge(key_len: usize) -> usize {
    4 * key_charge(key_len) + 2
}

/// What `atomic_add` on a `key_len`-byte key is charged (its operand is 8 bytes).
pub const fn atomic_add_charge(key_len: usize) -> usize {
    3 * key_charge(key_len) + 9
}

/// What `clear_range` with bounds of these lengths is charged.
pub const fn clear_range_charge(begin_len: usize, end_len: usize) -> usize {
    2 * (key_charge(begin_len) + key_charge(end_len))
}

/// What a read conflict on a range with bounds of these lengths is charged.
pub const fn read_charge(begin_len: usize, end_len: usize) -> usize {
    key_charge(begin_len) + key_charge(end_len)
}

/// What a (non-snapshot) `get` of a `key_len`-byte key is charged: the range `[k, k\0)`.
pub const fn point_read_charge(key_len: usize) -> usize {
    read_charge(key_len, key_len + 1)
}

pub(crate) fn check_key(key: &[u8]) -> Result<()> {
    if key.len() > KEY_MAX_BYTES {
        return Err(Error::KeyTooLarge {
            len: key.len(),
            max: KEY_MAX_BYTES,
        });
    }
    Ok(())
}

pub(crate) fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > VALUE_MAX_BYTES {
        return Err(Error::ValueTooLarge {
            len: value.len(),
            max: VALUE_MAX_BYTES,
        });
    }
    Ok(())
}

pub(crate) fn check_age(elapsed: Duration) -> Result<()> {
    if elapsed > TXN_MAX_DURATION {
        return Err(Error::TransactionTooOld {
            elapsed,
            max: TXN_MAX_DURATION,
        });
    }
    Ok(())
}

/// Whether `key` is in the reserved key space.
pub(crate) fn is_reserved(key: &[u8]) -> bool {
    key >= RESERVED_KEYS_BEGIN
}

/// Refuses a key in the reserved key space.
pub(crate) fn check_not_reserved(key: &[u8]) -> Result<()> {
    if is_reserved(key) {
        return Err(Error::Engine(format!(
            "key \"{}\" is in the reserved 0xff key space",
            key.escape_ascii()
        )));
    }
    Ok(())
}

/// Refuses a watch on a reserved key, or on a prefix of reserved keys only.
pub(crate) fn check_watchable(target: &WatchTarget) -> Result<()> {
    match target {
        WatchTarget::Key(key) | WatchTarget::Prefix(key) => check_not_reserved(key),
    }
}

/// The part of `range` below the reserved keys, if any: what reads and clears act on.
pub(crate) fn user_part(range: &KeyRange) -> Option<KeyRange> {
    let end = range.end.as_slice().min(RESERVED_KEYS_BEGIN);
    (range.begin.as_slice() < end).then(|| KeyRange::new(range.begin.clone(), end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_what_foundationdb_records_with_the_longest_namespace() {
        let ns = NAMESPACE_MAX_BYTES;
        // Mutation key and value, then the write conflict range's two bounds.
        assert_eq!(set_charge(3, 10), (3 + ns) + 10 + (3 + ns) + (4 + ns));
        // A single-key clear is a range clear of [k, k\0), recorded twice.
        assert_eq!(clear_charge(3), 2 * ((3 + ns) + (4 + ns)));
        assert_eq!(atomic_add_charge(3), (3 + ns) + 8 + (3 + ns) + (4 + ns));
        assert_eq!(clear_range_charge(2, 5), 2 * ((2 + ns) + (5 + ns)));
        assert_eq!(point_read_charge(3), (3 + ns) + (4 + ns));
    }

    #[test]
    fn the_longest_key_fits_foundationdb_under_the_longest_namespace() {
        assert_eq!(KEY_MAX_BYTES + NAMESPACE_MAX_BYTES, FDB_KEY_MAX_BYTES);
        assert!(check_key(&vec![b'k'; KEY_MAX_BYTES]).is_ok());
        assert!(matches!(
            check_key(&vec![b'k'; KEY_MAX_BYTES + 1]),
            Err(Error::KeyTooLarge { .. })
        ));
    }

    #[test]
    fn reads_and_clears_stop_before_the_reserved_keys() {
        assert_eq!(
            user_part(&KeyRange::prefix(b"")),
            Some(KeyRange::new(Vec::new(), vec![0xff]))
        );
        assert_eq!(
            user_part(&KeyRange::new(b"a".to_vec(), vec![0xff, 0xff])),
            Some(KeyRange::new(b"a".to_vec(), vec![0xff]))
        );
        assert_eq!(user_part(&KeyRange::new(vec![0xff], vec![0xff, 1])), None);
        assert_eq!(
            user_part(&KeyRange::new(b"b".to_vec(), b"a".to_vec())),
            None
        );
    }

    #[test]
    fn keys_from_0xff_up_are_reserved_and_cannot_be_watched() {
        assert!(is_reserved(&[0xff]) && is_reserved(b"\xff/watch/") && !is_reserved(b"\xfe"));
        assert!(matches!(
            check_not_reserved(b"\xff/x"),
            Err(Error::Engine(m)) if m.contains("reserved")
        ));
        assert!(check_watchable(&WatchTarget::Prefix(vec![0xff])).is_err());
        assert!(check_watchable(&WatchTarget::Key(vec![0xff, 0])).is_err());
        assert!(check_watchable(&WatchTarget::Prefix(Vec::new())).is_ok());
    }
}

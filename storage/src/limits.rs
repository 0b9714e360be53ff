//! Limits every engine enforces identically, taken from FoundationDB's, so that code that works
//! on the embedded engine also works on FoundationDB.

use std::time::Duration;

use crate::error::{Error, Result};

/// Longest key, in bytes.
pub const KEY_MAX_BYTES: usize = 10_000;
/// Longest value, in bytes.
pub const VALUE_MAX_BYTES: usize = 100_000;
/// Most bytes one transaction may write (keys and values of its mutations, and the keys of its
/// cleared ranges), as FoundationDB counts them.
pub const TXN_MAX_BYTES: usize = 10_000_000;
/// Longest a transaction may run, from its first read to its commit.
pub const TXN_MAX_DURATION: Duration = Duration::from_secs(5);
/// Most rows one range read may ask for; larger scans page with a cursor.
pub const RANGE_MAX_ROWS: usize = 100_000;

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

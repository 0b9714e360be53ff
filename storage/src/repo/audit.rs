//! The audit log in the store: one record per entry under `("audit", at, id)`, appended with
//! a blind write (entries never conflict with each other or with the action they record) and
//! read newest first, a bounded slice at a time.

use gigafactory_core::audit::{AuditEntry, AuditFilter};
use uuid::Uuid;

use crate::codec;
use crate::error::Error;
use crate::keys;
use crate::txn::{RangeOptions, Transaction};

/// Entries one page reads at most, matching or not, so a filter that matches little costs a
/// bounded read per page (the page then ends early with a cursor).
pub const AUDIT_PAGE_SCAN_MAX: usize = 2_000;

/// Where a page of the audit log continues: the time and id of the last entry read.
pub type AuditCursor = (u64, Uuid);

/// Appends `entry` under `id` (a UUIDv7).
pub fn record_audit<T: Transaction>(tx: &mut T, id: Uuid, entry: &AuditEntry) -> Result<(), Error> {
    tx.set(&keys::audit(entry.at, id), &codec::encode(entry)?)
}

/// Up to `limit` entries matching `filter`, newest first, older than `before`; and the cursor
/// of the next page when the read stopped before the log's start.
pub async fn audit_page<T: Transaction>(
    tx: &mut T,
    before: Option<AuditCursor>,
    filter: &AuditFilter,
    limit: usize,
) -> Result<(Vec<AuditEntry>, Option<AuditCursor>), Error> {
    debug_assert!(limit > 0);
    let rows = tx
        .get_range(
            &keys::audit_before(before),
            RangeOptions::limit(AUDIT_PAGE_SCAN_MAX)
                .reverse()
                .snapshot(),
        )
        .await?;
    let mut out = Vec::new();
    for (i, (k, v)) in rows.iter().enumerate() {
        let entry: AuditEntry = codec::decode(v)?;
        if filter.matches(&entry) {
            out.push(entry);
        }
        let last_read = i + 1 == rows.len();
        if out.len() == limit || (last_read && rows.len() == AUDIT_PAGE_SCAN_MAX) {
            let more = !last_read || rows.len() == AUDIT_PAGE_SCAN_MAX;
            return Ok((out, more.then(|| keys::audit_parts(k)).transpose()?));
        }
    }
    Ok((out, None))
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EmbeddedStore, Store};

    fn entry(at: u64, caller: &str) -> AuditEntry {
        AuditEntry {
            at,
            role: "operator".into(),
            caller: caller.into(),
            action: "POST /v1/factories/{id}/drain".into(),
            target: format!("id={at}"),
            status: 204,
        }
    }

    async fn page(
        store: &EmbeddedStore,
        before: Option<AuditCursor>,
        caller: Option<&str>,
        limit: usize,
    ) -> (Vec<u64>, Option<AuditCursor>) {
        let mut tx = store.begin().await.unwrap();
        let filter = AuditFilter {
            action: None,
            caller: caller.map(Into::into),
        };
        let (entries, next) = audit_page(&mut tx, before, &filter, limit).await.unwrap();
        (entries.iter().map(|e| e.at).collect(), next)
    }

    #[tokio::test]
    async fn the_audit_log_reads_newest_first_a_page_at_a_time_with_a_filter() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let mut tx = store.begin().await.unwrap();
        for at in 1..=5 {
            let caller = if at % 2 == 0 { "even" } else { "odd" };
            record_audit(&mut tx, Uuid::now_v7(), &entry(at, caller)).unwrap();
        }
        tx.commit().await.unwrap();
        let (first, next) = page(&store, None, None, 2).await;
        assert_eq!(first, [5, 4]);
        let (second, next) = page(&store, next, None, 2).await;
        assert_eq!(second, [3, 2]);
        let (last, next) = page(&store, next, None, 2).await;
        assert_eq!(
            (last, next),
            (vec![1], None),
            "the log's start ends the paging"
        );
        assert_eq!(
            page(&store, None, Some("even"), 10).await,
            (vec![4, 2], None)
        );
    }
}

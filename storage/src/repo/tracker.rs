//! Tracker items and their outbox in the store. An item record holds what the tracker last
//! said of an item and the jobs it made. A delivery (an echo of one job change) is written in
//! the transaction of the change, with an entry in its shard's queue keyed by when it is due;
//! the node owning the shard delivers it and settles it (delivered, retried later, or
//! dead-lettered) in a transaction that re-reads it, so two nodes never both settle one try.

use gigafactory_core::cluster::shard_of;
use gigafactory_core::job::{JobId, Millis};
use gigafactory_core::tracker::{Delivery, DeliveryStatus, ItemRecord};

use crate::codec::{self, Record};
use crate::error::Error;
use crate::keys;
use crate::txn::{RangeOptions, Transaction};

/// Items one listing returns at most.
pub const ITEMS_PAGE_MAX: usize = 1_000;
/// Deliveries of one item listed at most.
pub const ITEM_DELIVERIES_MAX: usize = 1_000;

impl Record for ItemRecord {
    const KIND: &'static str = "item";
    const SCHEMA: u16 = 1;
}

impl Record for Delivery {
    const KIND: &'static str = "delivery";
    const SCHEMA: u16 = 1;
}

pub async fn load_item<T: Transaction>(
    tx: &mut T,
    source: &str,
    id: &str,
) -> Result<Option<ItemRecord>, Error> {
    match tx.get(&keys::item(source, id)).await? {
        Some(v) => Ok(Some(codec::decode(&v)?)),
        None => Ok(None),
    }
}

pub fn save_item<T: Transaction>(tx: &mut T, item: &ItemRecord) -> Result<(), Error> {
    tx.set(&keys::item(&item.source, &item.id), &codec::encode(item)?)
}

/// A source's items, by id.
pub async fn items<T: Transaction>(
    tx: &mut T,
    source: &str,
    limit: usize,
) -> Result<Vec<ItemRecord>, Error> {
    let rows = tx
        .get_range(
            &keys::items_of(source),
            RangeOptions::limit(limit.min(ITEMS_PAGE_MAX)).snapshot(),
        )
        .await?;
    rows.iter().map(|(_, v)| codec::decode(v)).collect()
}

/// The shard whose owner delivers a job's echoes: the job's own, as for its lease expiry.
fn shard(job: JobId) -> u32 {
    shard_of(job.0)
}

/// Queues `delivery` (pending, due at its `next_at`).
pub fn enqueue_delivery<T: Transaction>(tx: &mut T, delivery: &Delivery) -> Result<(), Error> {
    debug_assert_eq!(delivery.status, DeliveryStatus::Pending);
    tx.set(&keys::delivery(&delivery.id), &codec::encode(delivery)?)?;
    tx.set(
        &keys::item_delivery(&delivery.item.source, &delivery.item.id, &delivery.id),
        &[],
    )?;
    tx.set(
        &keys::outbox(delivery.next_at, shard(delivery.job), &delivery.id),
        &[],
    )
}

pub async fn load_delivery<T: Transaction>(
    tx: &mut T,
    id: &str,
) -> Result<Option<Delivery>, Error> {
    match tx.get(&keys::delivery(id)).await? {
        Some(v) => Ok(Some(codec::decode(&v)?)),
        None => Ok(None),
    }
}

/// Writes `new` in place of `old` (the same delivery, re-read in this transaction), moving
/// its queue entry: a pending delivery is queued at its `next_at`, a settled one not at all.
pub fn settle_delivery<T: Transaction>(
    tx: &mut T,
    old: &Delivery,
    new: &Delivery,
) -> Result<(), Error> {
    debug_assert_eq!(old.id, new.id);
    if old.status == DeliveryStatus::Pending {
        tx.clear(&keys::outbox(old.next_at, shard(old.job), &old.id))?;
    }
    if new.status == DeliveryStatus::Pending {
        tx.set(&keys::outbox(new.next_at, shard(new.job), &new.id), &[])?;
    }
    tx.set(&keys::delivery(&new.id), &codec::encode(new)?)
}

/// Deliveries due at `now`, soonest first, at most `limit`: `(shard, id)`.
pub async fn due_deliveries<T: Transaction>(
    tx: &mut T,
    now: Millis,
    limit: usize,
) -> Result<Vec<(u32, String)>, Error> {
    let rows = tx
        .get_range(
            &keys::outbox_due(now),
            RangeOptions::limit(limit).snapshot(),
        )
        .await?;
    rows.iter().map(|(k, _)| keys::outbox_parts(k)).collect()
}

/// An item's deliveries, oldest first.
pub async fn deliveries_of<T: Transaction>(
    tx: &mut T,
    source: &str,
    item: &str,
) -> Result<Vec<Delivery>, Error> {
    let rows = tx
        .get_range(
            &keys::item_deliveries(source, item),
            RangeOptions::limit(ITEM_DELIVERIES_MAX).snapshot(),
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (k, _) in rows {
        let id = keys::item_delivery_id(&k)?;
        if let Some(d) = load_delivery(tx, &id).await? {
            out.push(d);
        }
    }
    Ok(out)
}

//! The fleet and the cluster in the store: factories, access tokens (listed for their ids), scoring weights, the
//! nodes with their shard leases and fleet feeds, and the store-wide facts and signals nodes
//! share.

use gigafactory_core::cluster::{NodeRecord, SHARDS, ShardLease};
use gigafactory_core::fleet::{Factory, Token};
use gigafactory_core::hearing::Hearing;
use gigafactory_core::job::{FactoryId, Millis};
use gigafactory_core::scoring::WeightsOverride;
use gigafactory_core::wire::FleetEvent;
use uuid::Uuid;

use crate::codec;
use crate::error::Error;
use crate::keys;
use crate::txn::{RangeOptions, Transaction, WatchTarget};

pub async fn load_factory<T: Transaction>(
    tx: &mut T,
    id: FactoryId,
) -> Result<Option<Factory>, Error> {
    match tx.get(&keys::factory(id.0)).await? {
        Some(v) => Ok(Some(codec::decode(&v)?)),
        None => Ok(None),
    }
}

pub fn save_factory<T: Transaction>(tx: &mut T, f: &Factory) -> Result<(), Error> {
    tx.set(&keys::factory(f.id.0), &codec::encode(f)?)
}

pub async fn factories<T: Transaction>(tx: &mut T) -> Result<Vec<Factory>, Error> {
    let rows = tx
        .get_range(&keys::factories(), RangeOptions::limit(100_000).snapshot())
        .await?;
    rows.iter().map(|(_, v)| codec::decode(v)).collect()
}

pub async fn load_token<T: Transaction>(
    tx: &mut T,
    hash: &[u8; 32],
) -> Result<Option<Token>, Error> {
    match tx.get(&keys::token(hash)).await? {
        Some(v) => Ok(Some(codec::decode(&v)?)),
        None => Ok(None),
    }
}

pub fn save_token<T: Transaction>(tx: &mut T, hash: &[u8; 32], token: &Token) -> Result<(), Error> {
    tx.set(&keys::token(hash), &codec::encode(token)?)
}

/// Every token record with its secret's hash, in hash order. Read with conflict: a revocation
/// that checks the others (the last admin token is kept) must not race another.
pub async fn tokens<T: Transaction>(tx: &mut T) -> Result<Vec<([u8; 32], Token)>, Error> {
    let rows = tx
        .get_range(&keys::tokens(), RangeOptions::limit(100_000))
        .await?;
    rows.iter()
        .map(|(k, v)| Ok((keys::token_hash(k)?, codec::decode(v)?)))
        .collect()
}

/// When the first admin token was made, if it was.
pub async fn admin_bootstrapped_at<T: Transaction>(tx: &mut T) -> Result<Option<Millis>, Error> {
    Ok(tx
        .get(&keys::meta("admin"))
        .await?
        .map(|v| u64::from_le_bytes(v[..8].try_into().unwrap_or([0; 8]))))
}

pub fn mark_admin_bootstrapped<T: Transaction>(tx: &mut T, at: Millis) -> Result<(), Error> {
    tx.set(&keys::meta("admin"), &at.to_le_bytes())
}

/// A product's scoring weights override (absent: the defaults).
pub async fn load_weights<T: Transaction>(
    tx: &mut T,
    product: &str,
) -> Result<Option<WeightsOverride>, Error> {
    match tx.get(&keys::weights(product)).await? {
        Some(v) => Ok(Some(codec::decode(&v)?)),
        None => Ok(None),
    }
}

pub fn save_weights<T: Transaction>(
    tx: &mut T,
    product: &str,
    w: &WeightsOverride,
) -> Result<(), Error> {
    tx.set(&keys::weights(product), &codec::encode(w)?)
}

/// Every product's weights override.
pub async fn all_weights<T: Transaction>(
    tx: &mut T,
) -> Result<Vec<(String, WeightsOverride)>, Error> {
    let rows = tx
        .get_range(
            &keys::weights_all(),
            RangeOptions::limit(100_000).snapshot(),
        )
        .await?;
    rows.iter()
        .map(|(k, v)| Ok((keys::weights_product(k)?, codec::decode(v)?)))
        .collect()
}

/// Sets a product's fair share (checked by the caller).
pub fn save_share<T: Transaction>(tx: &mut T, product: &str, share: u32) -> Result<(), Error> {
    tx.set(&keys::share(product), &share.to_le_bytes())
}

/// Every share set through the API, by product.
pub async fn all_shares<T: Transaction>(tx: &mut T) -> Result<Vec<(String, u32)>, Error> {
    let rows = tx
        .get_range(&keys::shares_all(), RangeOptions::limit(100_000).snapshot())
        .await?;
    rows.iter()
        .map(|(k, v)| {
            let bytes: [u8; 4] = v
                .as_slice()
                .try_into()
                .map_err(|_| Error::Codec(format!("a share of {} bytes", v.len())))?;
            Ok((keys::share_product(k)?, u32::from_le_bytes(bytes)))
        })
        .collect()
}

/// What a scheduler watches to learn that some node made a job ready (every such commit adds
/// to this counter; see `save_job`).
pub fn ready_signal() -> WatchTarget {
    WatchTarget::Key(keys::signal("ready"))
}

/// Records that a node serving at `now` was heard, and returns the record as it now stands:
/// a silence longer than `gap_ms` before it was an outage (see `gigafactory_core::hearing`).
/// Read with conflict, so of two nodes recording at once one retries on the other's record.
pub async fn hear<T: Transaction>(tx: &mut T, now: Millis, gap_ms: u64) -> Result<Hearing, Error> {
    let before: Hearing = match tx.get(&keys::hearing()).await? {
        Some(v) => codec::decode(&v)?,
        None => Hearing::default(),
    };
    let after = before.heard(now, gap_ms);
    tx.set(&keys::hearing(), &codec::encode(&after)?)?;
    Ok(after)
}

/// Every node record.
pub async fn nodes<T: Transaction>(tx: &mut T) -> Result<Vec<NodeRecord>, Error> {
    let rows = tx
        .get_range(&keys::nodes(), RangeOptions::limit(10_000))
        .await?;
    rows.iter().map(|(_, v)| codec::decode(v)).collect()
}

pub fn save_node<T: Transaction>(tx: &mut T, node: &NodeRecord) -> Result<(), Error> {
    tx.set(&keys::node(node.id), &codec::encode(node)?)
}

/// Removes a dead node's record and its fleet feed: no node relays a feed whose node is not
/// listed.
pub fn forget_node<T: Transaction>(tx: &mut T, node: Uuid) -> Result<(), Error> {
    tx.clear(&keys::node(node))?;
    tx.clear_range(&keys::fleet_feed_of(node))
}

/// Every shard's lease, absent ones as `None`, in shard order.
pub async fn shard_leases<T: Transaction>(
    tx: &mut T,
) -> Result<Vec<(u32, Option<ShardLease>)>, Error> {
    let rows = tx
        .get_range(&keys::shards(), RangeOptions::limit(10_000))
        .await?;
    let mut out: Vec<(u32, Option<ShardLease>)> = (0..SHARDS).map(|s| (s, None)).collect();
    for (k, v) in rows {
        let n = keys::shard_number(&k)?;
        if let Some(slot) = out.get_mut(n as usize) {
            slot.1 = Some(codec::decode(&v)?);
        }
    }
    Ok(out)
}

pub fn save_shard_lease<T: Transaction>(
    tx: &mut T,
    shard: u32,
    lease: &ShardLease,
) -> Result<(), Error> {
    tx.set(&keys::shard(shard), &codec::encode(lease)?)
}

pub fn clear_shard_lease<T: Transaction>(tx: &mut T, shard: u32) -> Result<(), Error> {
    tx.clear(&keys::shard(shard))
}

/// Appends fleet events that `node` committed (in sequence order) to its feed, and drops its
/// entries older than the latest `kept`. Only blind writes to the node's own keys: feeds of
/// different nodes never conflict, and writing the same events again changes nothing.
pub fn append_fleet_feed<T: Transaction>(
    tx: &mut T,
    node: Uuid,
    events: &[FleetEvent],
    kept: u64,
) -> Result<(), Error> {
    debug_assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    for e in events {
        tx.set(&keys::fleet_feed(node, e.seq), &codec::encode(e)?)?;
    }
    if let Some(last) = events.last() {
        let keep_from = (last.seq + 1).saturating_sub(kept);
        if keep_from > 0 {
            tx.clear_range(&keys::fleet_feed_below(node, keep_from))?;
        }
    }
    Ok(())
}

/// Entries of `node`'s feed numbered after `after`, oldest first, at most `limit`.
pub async fn fleet_feed_after<T: Transaction>(
    tx: &mut T,
    node: Uuid,
    after: u64,
    limit: usize,
) -> Result<Vec<FleetEvent>, Error> {
    let rows = tx
        .get_range(
            &keys::fleet_feed_from(node, after.saturating_add(1)),
            RangeOptions::limit(limit).snapshot(),
        )
        .await?;
    rows.iter().map(|(_, v)| codec::decode(v)).collect()
}

/// What a relay watches to learn that some node's feed grew.
pub fn fleet_feeds_signal() -> WatchTarget {
    WatchTarget::Prefix(keys::fleet_feed_prefix())
}

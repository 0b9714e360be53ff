//! `MembershipActor`: this node's place in a cluster sharing one store. Every
//! `node_lease_ttl_ms / 3` it renews its node record (a liveness lease), reads the other nodes
//! and the shard leases, and takes, renews or releases shards per `core::cluster::plan_shards`
//! — all in one transaction, so two nodes can never both take a shard. The reaper handles only
//! the shards this node holds. Ownership only avoids duplicate work; safety comes from the
//! fenced job transactions.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use gigafactory_core::cluster::{NodeRecord, ShardLease, plan_shards};
use gigafactory_storage::{repo, transact};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use uuid::Uuid;

use crate::context::Context;

/// Node records stay this long after they expire, for the cluster view, then are removed.
const DEAD_NODE_KEPT_MS: u64 = 60_000;

pub(crate) enum MembershipMsg {
    RenewTick,
}

pub(crate) struct MembershipActor;

impl Actor for MembershipActor {
    type Msg = MembershipMsg;
    type State = Arc<Context>;
    type Arguments = Arc<Context>;

    async fn pre_start(
        &self,
        myself: ActorRef<MembershipMsg>,
        ctx: Arc<Context>,
    ) -> Result<Arc<Context>, ActorProcessingErr> {
        let every = Duration::from_millis((ctx.config.node_lease_ttl_ms / 3).max(1));
        myself.send_interval(every, || MembershipMsg::RenewTick);
        renew(&ctx).await;
        Ok(ctx)
    }

    async fn handle(
        &self,
        _: ActorRef<MembershipMsg>,
        msg: MembershipMsg,
        ctx: &mut Arc<Context>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MembershipMsg::RenewTick => renew(ctx).await,
        }
        Ok(())
    }
}

async fn renew(ctx: &Arc<Context>) {
    let now = ctx.now();
    let ttl = ctx.config.node_lease_ttl_ms;
    let me = ctx.node_id;
    let addr = ctx.config.node_addr.clone();
    let started_at = ctx.started_at;
    let outcome = transact!(ctx.store, |tx| {
        let record = NodeRecord {
            id: me,
            addr: addr.clone(),
            started_at,
            heartbeat_at: now,
            expires_at: now + ttl,
        };
        repo::save_node(tx, &record)?;
        let nodes = repo::nodes(tx).await?;
        for n in &nodes {
            if n.expires_at + DEAD_NODE_KEPT_MS < now {
                repo::forget_node(tx, n.id)?;
            }
        }
        let live: Vec<Uuid> = nodes
            .iter()
            .filter(|n| n.expires_at > now || n.id == me)
            .map(|n| n.id)
            .collect();
        let leases = repo::shard_leases(tx).await?;
        let plan = plan_shards(me, &live, &leases, now);
        // A shard taken gets a new epoch; a shard renewed keeps its own.
        let taken = plan
            .take
            .iter()
            .map(|s| (*s, leases[*s as usize].1.map_or(1, |l| l.epoch + 1)));
        let renewed = plan
            .renew
            .iter()
            .map(|s| (*s, leases[*s as usize].1.map_or(1, |l| l.epoch)));
        for (s, epoch) in taken.chain(renewed) {
            let lease = ShardLease {
                owner: me,
                epoch,
                expires_at: now + ttl,
            };
            repo::save_shard_lease(tx, s, &lease)?;
        }
        for s in &plan.release {
            repo::clear_shard_lease(tx, *s)?;
        }
        Ok::<_, gigafactory_storage::Error>(plan)
    });
    match outcome {
        Ok(plan) => {
            if !plan.take.is_empty() || !plan.release.is_empty() {
                tracing::info!(node_id = %me, took = ?plan.take, released = ?plan.release, "shards moved");
            }
            let owned: BTreeSet<u32> = plan.take.iter().chain(&plan.renew).copied().collect();
            metrics::gauge!(crate::metrics::SHARDS_OWNED).set(owned.len() as f64);
            ctx.hold_shards(owned, now + ttl);
        }
        // Our leases run out on their own if the store stays unreachable; the reaper stops
        // using them at their expiry (`Context::owns_shard`).
        Err(e) => tracing::warn!(node_id = %me, error = %e, "cannot renew the node lease"),
    }
}

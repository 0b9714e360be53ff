//! Watching the node: the overview's figures and their history, scaling hints, the fleet
//! stream, the cluster's nodes and shard owners, and the admin's fault injection for chaos
//! runs.

use schemars::JsonSchema;
use std::collections::BTreeMap;

use gigafactory_core::autoscale::{ScaleRule, ShapeHint};
use gigafactory_core::cluster::{NodeRecord, ShardLease};
use gigafactory_core::job::{FactoryId, JobId, Millis};
use gigafactory_core::load::{self, FleetCount, Shape, ShapeLoad, ShapeQueue};
use gigafactory_storage::{repo, transact};
use uuid::Uuid;

use super::Coordinator;
use crate::error::{CoordError, Result};
use crate::factory_actor::FactoryMsg;
use crate::fleet::{FleetEvent, FleetEventId};
use crate::job_actor::JobMsg;
use crate::reaper::ReaperMsg;
use crate::scheduler::SchedulerMsg;
use crate::stats_history::StatsSample;

/// The overview's figures (see [`Coordinator::stats`]).
#[derive(Debug, Clone, serde::Serialize, JsonSchema)]
pub struct Stats {
    pub now: u64,
    pub factories_online: usize,
    pub factories_draining: usize,
    pub factories_offline: usize,
    pub factories_revoked: usize,
    pub slots: u32,
    pub slots_busy: u32,
    pub queued: usize,
    pub queued_by_product: BTreeMap<String, usize>,
    pub queued_by_capability: BTreeMap<String, usize>,
    pub running: usize,
    /// Counters since this node started: a client derives rates from two readings.
    pub finished_total: u64,
    pub claims_total: u64,
    pub claim_latency_p50_ms: Option<f64>,
    pub claim_latency_p99_ms: Option<f64>,
}

/// Nodes and shard owners (see [`Coordinator::cluster`]).
#[derive(Debug, Clone, serde::Serialize, JsonSchema)]
pub struct ClusterView {
    pub this_node: Uuid,
    pub now: u64,
    /// `(alive, record)`.
    pub nodes: Vec<(bool, NodeRecord)>,
    /// `(shard, live lease)`.
    pub shards: Vec<(u32, Option<ShardLease>)>,
}

/// Scaling hints (see [`Coordinator::autoscale`] and `core::autoscale`). Any node answers for
/// the whole cluster: on a shared store its scheduler follows every node's ready index.
#[derive(Debug, Clone, serde::Serialize, JsonSchema)]
pub struct AutoscaleView {
    /// The node that answered.
    pub node: Uuid,
    pub rule: ScaleRule,
    pub shapes: Vec<ShapeHint>,
}

/// Which actor a chaos fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultTarget {
    Scheduler,
    Reaper,
    Job(JobId),
    Factory(FactoryId),
}

impl Coordinator {
    /// What the control plane's overview shows.
    pub async fn stats(&self) -> Result<Stats> {
        let fleet = FleetCount::of(&self.factories().await?);
        let scheduler = self.scheduler_snapshot().await?;
        let (p50, p99) = self.ctx.stats.claim_latency_ms();
        let (finished_total, claims_total) = self.ctx.stats.totals();
        Ok(Stats {
            now: self.now(),
            factories_online: fleet.online,
            factories_draining: fleet.draining,
            factories_offline: fleet.offline,
            factories_revoked: fleet.revoked,
            slots: fleet.slots,
            slots_busy: fleet.slots_busy,
            queued: scheduler.queued,
            queued_by_product: scheduler.queued_by_product,
            queued_by_capability: scheduler.queued_by_capability,
            running: scheduler.running,
            finished_total,
            claims_total,
            claim_latency_p50_ms: p50,
            claim_latency_p99_ms: p99,
        })
    }

    /// Per shape, what the queue asks of the fleet beside the online factories that fit it
    /// (see `core::load`). All the cluster's: on a shared store the scheduler follows every
    /// node's ready index (the head at once, the rest within `resync_interval_ms`), and reads
    /// running jobs and factories from the store.
    pub async fn shape_loads(&self) -> Result<Vec<ShapeLoad>> {
        let factories = self.factories().await?;
        let scheduler = self.scheduler_snapshot().await?;
        Ok(load::shape_loads(&scheduler.shapes, &factories, self.now()))
    }

    /// Per shape, the factories `rule` asks for; with `only`, that one shape, answered with
    /// zeros (and the factories that fit it) when nothing of it is queued or running.
    pub async fn autoscale(&self, rule: ScaleRule, only: Option<Shape>) -> Result<AutoscaleView> {
        let factories = self.factories().await?;
        let mut queues = self.scheduler_snapshot().await?.shapes;
        if let Some(shape) = only {
            queues.retain(|q| q.shape == shape);
            if queues.is_empty() {
                queues.push(ShapeQueue::empty(shape));
            }
        }
        Ok(AutoscaleView {
            node: self.ctx.node_id,
            rule,
            shapes: load::shape_loads(&queues, &factories, self.now())
                .iter()
                .map(|l| rule.hint(l))
                .collect(),
        })
    }

    /// When this node started: its stats history (kept in memory) begins no earlier.
    pub fn started_at(&self) -> Millis {
        self.ctx.started_at
    }

    /// The overview's samples taken after `after` (all kept when `None`), oldest first, one
    /// every `stats_sample_interval_ms`.
    pub fn stats_history(&self, after: Option<u64>) -> Vec<StatsSample> {
        self.ctx.stats.since(after)
    }

    /// The fleet stream: kept events after `after`, and live ones. On a shared store it holds
    /// every node's events (see `fleet_relay`).
    pub fn follow_fleet(
        &self,
        after: Option<FleetEventId>,
    ) -> (
        Vec<FleetEvent>,
        tokio::sync::broadcast::Receiver<FleetEvent>,
    ) {
        self.ctx.fleet.subscribe(after)
    }

    /// The cluster as the store sees it: nodes (with liveness) and shard owners.
    pub async fn cluster(&self) -> Result<ClusterView> {
        let now = self.now();
        let (nodes, shards) = transact!(self.ctx.store, |tx| {
            let nodes = repo::nodes(tx).await?;
            let shards = repo::shard_leases(tx).await?;
            Ok::<_, gigafactory_storage::Error>((nodes, shards))
        })?;
        Ok(ClusterView {
            this_node: self.ctx.node_id,
            now,
            nodes: nodes.into_iter().map(|n| (n.expires_at > now, n)).collect(),
            shards: shards
                .into_iter()
                .map(|(s, l)| (s, l.filter(|l| l.expires_at > now)))
                .collect(),
        })
    }

    /// Chaos testing: makes one actor fail as a panic would, so its supervisor must recover it.
    /// Admin only (the API checks, and serves it only on a node started with fault injection
    /// enabled); every injected fault is logged with `by`, the caller.
    pub async fn inject_fault(&self, target: FaultTarget, by: &str) -> Result<()> {
        tracing::warn!(?target, by, "fault injected");
        let sent = match target {
            FaultTarget::Scheduler => self
                .ctx
                .actors
                .scheduler()
                .map(|s| s.cast(SchedulerMsg::Crash).is_ok()),
            FaultTarget::Reaper => self
                .ctx
                .actors
                .reaper()
                .map(|r| r.cast(ReaperMsg::Crash).is_ok()),
            FaultTarget::Job(id) => {
                self.job(id).await?;
                let (actor, _) = self.ctx.job_actor(id).await?;
                Some(actor.send_message(JobMsg::Crash).is_ok())
            }
            FaultTarget::Factory(id) => {
                self.factory(id).await?;
                let actor = self.ctx.factory_actor(id).await?;
                Some(actor.cast(FactoryMsg::Crash).is_ok())
            }
        };
        match sent {
            Some(true) => Ok(()),
            _ => Err(CoordError::Unavailable("that actor is restarting".into())),
        }
    }
}

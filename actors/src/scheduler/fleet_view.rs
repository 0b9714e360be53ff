//! What the scheduler knows of the cluster beyond its own claims: every running job (for
//! preemption and fair share), every factory's shape, and the products' placement settings
//! (weights, shares). Its own claims and lease ends keep the view current between reads; a
//! periodic read of the store replaces it, so jobs started through other nodes, or before a
//! restart, are seen too. Reads run off the actor and arrive as one message.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use gigafactory_core::fair_share::Standing;
use gigafactory_core::fleet::FactoryStatus;
use gigafactory_core::job::{FactoryId, JobId, Millis};
use gigafactory_core::scoring::{self, FactoryView, JobView, RunningView, Weights};
use gigafactory_storage::repo;
use gigafactory_storage::transact;
use ractor::ActorRef;

use super::SchedulerMsg;
use crate::context::Context;

/// Running jobs read per transaction, so a big fleet's read stays within a transaction's
/// time limit.
const RUNNING_BATCH: usize = 500;
/// Running jobs read at most; beyond it preemption and fair share see the rest only through
/// this node's own claims.
const RUNNING_READ_MAX: usize = 100_000;

/// Running jobs, with the count per product that fair share reads.
#[derive(Default)]
pub(super) struct Running {
    jobs: HashMap<JobId, RunningView>,
}

impl Running {
    pub fn insert(&mut self, standing: &mut Standing, id: JobId, view: RunningView) {
        if let Some(old) = self.jobs.insert(id, view.clone()) {
            uncount(standing, &old.job.product);
        }
        standing.add(&view.job.product);
    }

    pub fn remove(&mut self, standing: &mut Standing, id: &JobId) {
        if let Some(old) = self.jobs.remove(id) {
            uncount(standing, &old.job.product);
        }
    }

    /// Replaces every running job with what the store held at `read_at`, keeping the jobs
    /// this node started since (the read could not see them).
    pub fn replace(
        &mut self,
        standing: &mut Standing,
        jobs: Vec<(JobId, RunningView)>,
        read_at: Millis,
    ) {
        let newer: Vec<(JobId, RunningView)> = self
            .jobs
            .drain()
            .filter(|(_, r)| r.started_at_ms >= read_at)
            .collect();
        standing.running.clear();
        for (id, view) in jobs.into_iter().chain(newer) {
            self.insert(standing, id, view);
        }
    }

    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&JobId, &RunningView)> {
        self.jobs.iter()
    }
}

fn uncount(standing: &mut Standing, product: &str) {
    if let Some(n) = standing.running.get_mut(product) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            standing.running.remove(product);
        }
    }
}

/// A read of the cluster, for the scheduler.
pub(crate) struct FleetRead {
    /// When the read began.
    pub read_at: Millis,
    pub running: Vec<(JobId, RunningView)>,
    pub factories: Vec<(FactoryId, FactoryView)>,
    /// Factories draining, offline or revoked (their claims may wait on this node).
    pub unavailable: Vec<FactoryId>,
    pub weights: HashMap<String, Weights>,
    /// Shares set through the API (they win over the configured ones).
    pub shares: BTreeMap<String, u32>,
}

/// Reads running jobs, factories and product settings off the actor, and sends them.
pub(super) fn read_fleet(ctx: Arc<Context>, scheduler: ActorRef<SchedulerMsg>) {
    tokio::spawn(async move {
        match read(&ctx).await {
            Ok(read) => {
                let _ = scheduler.cast(SchedulerMsg::FleetRead(Box::new(read)));
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the fleet; the view stays as it was"),
        }
    });
}

async fn read(ctx: &Context) -> Result<FleetRead, gigafactory_storage::Error> {
    let now = ctx.now();
    let (ids, records, stored_weights, shares) = transact!(ctx.store, |tx| {
        Ok::<_, gigafactory_storage::Error>((
            repo::leased_jobs(tx, RUNNING_READ_MAX).await?,
            repo::factories(tx).await?,
            repo::all_weights(tx).await?,
            repo::all_shares(tx).await?,
        ))
    })?;
    let mut running = Vec::with_capacity(ids.len());
    for batch in ids.chunks(RUNNING_BATCH) {
        let jobs = transact!(ctx.store, |tx| {
            let mut out = Vec::with_capacity(batch.len());
            for id in batch {
                if let Some(job) = repo::load_job(tx, *id).await? {
                    out.push(job);
                }
            }
            Ok::<_, gigafactory_storage::Error>(out)
        })?;
        for job in jobs {
            let Some(lease) = job.state.lease().copied() else {
                continue;
            };
            let view = JobView::of(&job);
            running.push((
                job.id,
                running_view(view, lease.factory, lease.granted_at, now),
            ));
        }
    }
    let (online, unavailable): (Vec<_>, Vec<_>) = records
        .iter()
        .partition(|f| f.status == FactoryStatus::Online);
    let factories = online.iter().map(|f| (f.id, FactoryView::of(f))).collect();
    let unavailable = unavailable.iter().map(|f| f.id).collect();
    let mut weights = HashMap::new();
    for (product, o) in stored_weights {
        match scoring::resolve_weights(&Weights::default(), Some(&o), None) {
            Ok(w) => {
                weights.insert(product, w);
            }
            Err(e) => {
                tracing::error!(product, error = %e, "stored weights are invalid; using the defaults")
            }
        }
    }
    Ok(FleetRead {
        read_at: now,
        running,
        factories,
        unavailable,
        weights,
        shares: shares.into_iter().collect(),
    })
}

/// A running job as preemption sees it: what preempting it now would lose is how long it has
/// run.
pub(super) fn running_view(
    job: JobView,
    factory: FactoryId,
    started_at_ms: Millis,
    now: Millis,
) -> RunningView {
    RunningView {
        job,
        factory_id: factory.0.as_u128(),
        started_at_ms,
        progress_ms: now.saturating_sub(started_at_ms),
    }
}

impl super::SchedulerState {
    /// Takes in a read of the store: running jobs (with this node's newer claims kept), the
    /// online factories, weights, and shares over the configured ones.
    pub(super) fn fleet_read(&mut self, read: FleetRead) {
        self.running
            .replace(&mut self.standing, read.running, read.read_at);
        self.factories = read.factories.into_iter().collect();
        // Another node drained it, or it went offline there.
        for id in read.unavailable {
            self.factory_unavailable(id);
        }
        self.weights = read.weights;
        let mut shares = self.ctx.config.shares.clone();
        shares.extend(read.shares);
        self.standing.shares = shares;
    }
}

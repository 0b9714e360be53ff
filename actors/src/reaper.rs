//! `ReaperActor`: takes crashed work back. Every `reap_interval_ms` it reads the lease-expiry
//! index up to now and, for each expired lease, bumps the epoch (fencing the old holder) and
//! requeues the job with backoff, or marks it dead after `max_attempts` — each in its own
//! transaction, which re-checks the expiry, so a lease renewed meanwhile is left alone. Every
//! `budget_check_interval_ms` it ends leased jobs whose wall-clock budget ran out.

use std::sync::Arc;
use std::time::Duration;

use gigafactory_core::job::{self, Command, JobId};
use gigafactory_storage::repo::{self, RepoError};
use gigafactory_storage::{KeyRange, RangeOptions, keys, transact};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rand::Rng;

use crate::coordinator::Shared;
use crate::effects;

pub(crate) enum ReaperMsg {
    ReapTick,
    BudgetTick,
    /// Fault injection (admin route): fail, so the supervisor restarts the reaper.
    Crash,
}

pub(crate) struct ReaperActor;

impl Actor for ReaperActor {
    type Msg = ReaperMsg;
    type State = Arc<Shared>;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        myself: ActorRef<ReaperMsg>,
        shared: Arc<Shared>,
    ) -> Result<Arc<Shared>, ActorProcessingErr> {
        myself.send_interval(
            Duration::from_millis(shared.config.reap_interval_ms),
            || ReaperMsg::ReapTick,
        );
        myself.send_interval(
            Duration::from_millis(shared.config.budget_check_interval_ms),
            || ReaperMsg::BudgetTick,
        );
        Ok(shared)
    }

    async fn handle(
        &self,
        _: ActorRef<ReaperMsg>,
        msg: ReaperMsg,
        shared: &mut Arc<Shared>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ReaperMsg::ReapTick => reap(shared).await,
            ReaperMsg::BudgetTick => check_budgets(shared).await,
            ReaperMsg::Crash => return Err("fault injected: reaper crash".into()),
        }
        Ok(())
    }
}

async fn reap(shared: &Arc<Shared>) {
    let now = shared.now();
    let limit = shared.config.reap_batch_max;
    let expired = match transact!(shared.store, |tx| repo::expired_leases(tx, now, limit)
        .await)
    {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "reaper cannot read the lease index");
            return;
        }
    };
    for (expired_at, id) in expired {
        if !shared.owns_shard(id) {
            continue;
        }
        let jitter = rand::rng().random::<f64>();
        let backoff = shared.config.backoff;
        let outcome = transact!(shared.store, |tx| repo::transition(
            tx,
            id,
            Command::Expire { jitter },
            "reaper",
            now,
            &backoff
        )
        .await);
        match outcome {
            Ok((job, effects)) => {
                tracing::info!(job_id = %id, epoch = job.epoch, expired_at, state = job.state.name(), "lease expired");
                shared.publish_event(&job, "expire", "reaper");
                metrics::counter!("gigafactory_leases_expired_total").increment(1);
                effects::dispatch(shared, &job, effects).await;
            }
            // Renewed or finished since the scan: nothing to do.
            Err(RepoError::Job(_) | RepoError::NotFound(_)) => {}
            Err(RepoError::Store(e)) => tracing::warn!(job_id = %id, error = %e, "cannot reap"),
        }
    }
}

async fn check_budgets(shared: &Arc<Shared>) {
    let now = shared.now();
    let leased = transact!(shared.store, |tx| {
        let rows = tx
            .get_range(
                &KeyRange::prefix(&keys::lease_expiry_prefix()),
                RangeOptions::limit(100_000).snapshot(),
            )
            .await?;
        rows.iter()
            .map(|(k, _)| keys::lease_expiry_parts(k).map(|(_, id)| JobId(id)))
            .collect::<Result<Vec<_>, _>>()
    });
    let Ok(leased) = leased else { return };
    for id in leased {
        let backoff = shared.config.backoff;
        let outcome = transact!(shared.store, |tx| {
            let Some(j) = repo::load_job(tx, id).await? else {
                return Ok(None);
            };
            match j.spec.wall_clock_ms {
                Some(budget) if job::wall_clock_used(&j, now) > budget => {
                    repo::transition(tx, id, Command::BudgetExhausted, "reaper", now, &backoff)
                        .await
                        .map(Some)
                }
                _ => Ok::<_, RepoError>(None),
            }
        });
        match outcome {
            Ok(Some((job, effects))) => {
                tracing::warn!(job_id = %id, epoch = job.epoch, "wall-clock budget exhausted");
                shared.publish_event(&job, "budget_exhausted", "reaper");
                effects::dispatch(shared, &job, effects).await;
            }
            Ok(None) | Err(RepoError::Job(_) | RepoError::NotFound(_)) => {}
            Err(RepoError::Store(e)) => {
                tracing::warn!(job_id = %id, error = %e, "cannot check budget")
            }
        }
    }
}

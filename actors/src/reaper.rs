//! `ReaperActor`: takes crashed work back. Every `reap_interval_ms` it reads the lease-expiry
//! index up to now and, for each expired lease in a shard this node owns, commits an `expire`
//! that bumps the epoch (fencing the old holder) and requeues the job with backoff, or marks
//! it dead after `max_attempts`. Each job is its own transaction, which re-checks the expiry
//! against the clock, so a lease renewed meanwhile is left alone. Every
//! `budget_check_interval_ms` it ends leased jobs whose wall-clock budget ran out (the state
//! machine refuses the others).

use std::sync::Arc;
use std::time::Duration;

use gigafactory_core::event::Author;
use gigafactory_core::job::Command;
use gigafactory_storage::repo;
use gigafactory_storage::transact;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rand::Rng;

use crate::commit::{self, JobWrite};
use crate::context::Context;

/// Leased jobs whose wall-clock budgets one check reads.
const BUDGET_CHECK_JOBS_MAX: usize = 100_000;

pub(crate) enum ReaperMsg {
    ReapTick,
    BudgetTick,
    /// Fault injection (admin route): fail, so the supervisor restarts the reaper.
    Crash,
}

pub(crate) struct ReaperActor;

impl Actor for ReaperActor {
    type Msg = ReaperMsg;
    type State = Arc<Context>;
    type Arguments = Arc<Context>;

    async fn pre_start(
        &self,
        myself: ActorRef<ReaperMsg>,
        ctx: Arc<Context>,
    ) -> Result<Arc<Context>, ActorProcessingErr> {
        myself.send_interval(Duration::from_millis(ctx.config.reap_interval_ms), || {
            ReaperMsg::ReapTick
        });
        myself.send_interval(
            Duration::from_millis(ctx.config.budget_check_interval_ms),
            || ReaperMsg::BudgetTick,
        );
        Ok(ctx)
    }

    async fn handle(
        &self,
        _: ActorRef<ReaperMsg>,
        msg: ReaperMsg,
        ctx: &mut Arc<Context>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ReaperMsg::ReapTick => reap(ctx).await,
            ReaperMsg::BudgetTick => check_budgets(ctx).await,
            ReaperMsg::Crash => return Err("fault injected: reaper crash".into()),
        }
        Ok(())
    }
}

async fn reap(ctx: &Arc<Context>) {
    let now = ctx.now();
    let limit = ctx.config.reap_batch_max;
    let expired = match transact!(ctx.store, |tx| repo::expired_leases(tx, now, limit).await) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "reaper cannot read the lease index");
            return;
        }
    };
    for (expired_at, id) in expired {
        if !ctx.owns_shard(id) {
            continue;
        }
        let jitter = rand::rng().random::<f64>();
        let write = JobWrite::batch(Author::Reaper, vec![(id, Command::Expire { jitter })]);
        match commit::commit(ctx, write).await {
            Ok(committed) => {
                for job in committed.jobs {
                    tracing::info!(job_id = %id, epoch = job.epoch, expired_at, state = job.state.name(), "lease expired");
                    metrics::counter!("gigafactory_leases_expired_total").increment(1);
                }
            }
            Err(e) => tracing::warn!(job_id = %id, error = %e, "cannot reap"),
        }
    }
}

async fn check_budgets(ctx: &Arc<Context>) {
    let leased = transact!(ctx.store, |tx| repo::leased_jobs(tx, BUDGET_CHECK_JOBS_MAX)
        .await);
    let Ok(leased) = leased else { return };
    for id in leased {
        let write = JobWrite::batch(Author::Reaper, vec![(id, Command::BudgetExhausted)]);
        match commit::commit(ctx, write).await {
            Ok(committed) => {
                for job in committed.jobs {
                    tracing::warn!(job_id = %id, epoch = job.epoch, "wall-clock budget exhausted");
                }
            }
            Err(e) => tracing::warn!(job_id = %id, error = %e, "cannot check budget"),
        }
    }
}

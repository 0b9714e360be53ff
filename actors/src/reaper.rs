//! `ReaperActor`: takes crashed work back. Every `reap_interval_ms` it reads the lease-expiry
//! index up to now and, for each expired lease in a shard this node owns, commits an `expire`
//! that bumps the epoch (fencing the old holder) and requeues the job with backoff, or marks
//! it dead after `max_attempts`. Each job is its own transaction, which re-checks the expiry
//! against the clock, so a lease renewed meanwhile is left alone. Every
//! `budget_check_interval_ms` it ends leased jobs whose wall-clock budget ran out (the state
//! machine refuses the others), and questions past their timeout (`coordinator::questions`).
//!
//! Every `hearing_interval_ms` it records that this node serves (`repo::hear`, before the
//! first pass too). A lease that ran out while no node was heard is left a lease TTL from the
//! coordinator's return to be renewed, and taking it then costs the job no attempt
//! (`gigafactory_core::hearing`): a coordinator outage does not burn retries.

use std::sync::Arc;
use std::time::Duration;

use gigafactory_core::event::Author;
use gigafactory_core::hearing::Hearing;
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
    HearTick,
    BudgetTick,
    /// Fault injection (admin route): fail, so the supervisor restarts the reaper.
    Crash,
}

pub(crate) struct ReaperActor;

pub(crate) struct ReaperState {
    ctx: Arc<Context>,
    /// The hearing as this node last recorded it.
    hearing: Hearing,
}

impl Actor for ReaperActor {
    type Msg = ReaperMsg;
    type State = ReaperState;
    type Arguments = Arc<Context>;

    async fn pre_start(
        &self,
        myself: ActorRef<ReaperMsg>,
        ctx: Arc<Context>,
    ) -> Result<ReaperState, ActorProcessingErr> {
        let mut state = ReaperState {
            ctx,
            hearing: Hearing::default(),
        };
        // Before the first pass: a node back from an outage must know of it before it reaps.
        hear(&mut state).await;
        let config = &state.ctx.config;
        myself.send_interval(Duration::from_millis(config.reap_interval_ms), || {
            ReaperMsg::ReapTick
        });
        myself.send_interval(Duration::from_millis(config.hearing_interval_ms), || {
            ReaperMsg::HearTick
        });
        myself.send_interval(
            Duration::from_millis(config.budget_check_interval_ms),
            || ReaperMsg::BudgetTick,
        );
        Ok(state)
    }

    async fn handle(
        &self,
        _: ActorRef<ReaperMsg>,
        msg: ReaperMsg,
        state: &mut ReaperState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ReaperMsg::ReapTick => reap(&state.ctx, &state.hearing).await,
            ReaperMsg::HearTick => hear(state).await,
            ReaperMsg::BudgetTick => {
                check_budgets(&state.ctx).await;
                crate::coordinator::time_out_questions(&state.ctx).await;
            }
            ReaperMsg::Crash => return Err("fault injected: reaper crash".into()),
        }
        Ok(())
    }
}

/// Records that this node serves; keeps the last record when the store cannot be reached (the
/// silence then shows as an outage to whoever records next).
async fn hear(state: &mut ReaperState) {
    let ctx = &state.ctx;
    let (now, gap) = (ctx.now(), ctx.config.outage_gap_ms);
    match transact!(ctx.store, |tx| repo::hear(tx, now, gap).await) {
        Ok(hearing) => {
            if hearing.outage != state.hearing.outage
                && let Some(o) = hearing.outage
            {
                tracing::warn!(
                    from = o.from,
                    until = o.until,
                    "no coordinator node was heard for {} ms: leases that ran out meanwhile get a lease TTL to be renewed",
                    o.until.saturating_sub(o.from)
                );
            }
            state.hearing = hearing;
        }
        Err(e) => tracing::warn!(error = %e, "cannot record that this node serves"),
    }
}

async fn reap(ctx: &Arc<Context>, hearing: &Hearing) {
    let now = ctx.now();
    let limit = ctx.config.reap_batch_max;
    let expired = match transact!(ctx.store, |tx| repo::expired_leases(tx, now, limit).await) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "reaper cannot read the lease index");
            return;
        }
    };
    let ttl = ctx.config.lease_ttl_ms;
    for (expired_at, id) in expired {
        if !ctx.owns_shard(id) || hearing.reap_at(expired_at, ttl) > now {
            continue;
        }
        let jitter = rand::rng().random::<f64>();
        let blamed = hearing.blames_job(expired_at);
        let expire = Command::Expire { jitter, blamed };
        let write = JobWrite::batch(Author::Reaper, vec![(id, expire)]);
        match commit::commit(ctx, write).await {
            Ok(committed) => {
                for job in committed.jobs {
                    tracing::info!(job_id = %id, epoch = job.epoch, expired_at, state = job.state.name(), "lease expired");
                    metrics::counter!(crate::metrics::LEASES_EXPIRED_TOTAL).increment(1);
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

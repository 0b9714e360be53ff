//! Committing a claim: the placements `place` chose for a factory go to the store in one
//! transaction, off the actor (a long-poll's own, or an end's that asked for its next jobs);
//! what the store refused for a budget or a limit goes back to the queue to wait, and the
//! factory gets the leases granted.

use std::sync::Arc;
use std::time::Instant;

use gigafactory_core::budget::Hold;
use gigafactory_core::event::Author;
use gigafactory_core::job::{Command, FactoryId, Job, JobId, Millis};
use gigafactory_core::limits::LimitHold;
use gigafactory_core::wire::ClaimedJob;
use gigafactory_storage::repo::ReadyEntry;
use ractor::ActorRef;

use super::{ClaimAsk, Picked, SchedulerMsg, SchedulerState};
use crate::commit::{self, JobWrite};
use crate::context::Context;
use crate::error::CoordError;

impl SchedulerState {
    /// Commits the claims in one transaction, off the actor, and answers the factory. A job
    /// whose state changed since it was indexed (cancelled, say) is skipped.
    pub(super) fn commit(
        &self,
        _myself: &ActorRef<SchedulerMsg>,
        ask: ClaimAsk,
        picked: Picked,
        now: Millis,
    ) {
        if picked.is_empty() {
            let _ = ask.reply.send(Vec::new());
            return;
        }
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let factory = ask.factory_id;
            let started = Instant::now();
            let claims = claim_commands(&ctx, factory, ask.factory.cost_per_hour_micros, &picked);
            let write = JobWrite::batch(Author::Factory(factory), claims);
            let answer = match commit::commit(&ctx, write).await {
                Ok(c) => {
                    let granted = Granted {
                        claimed: c.jobs,
                        held: c.held,
                        limited: c.limited,
                    };
                    settle(&ctx, factory, picked, granted, now, started)
                }
                Err(e) => {
                    tracing::warn!(factory_id = %factory, error = %e, "claim commit failed");
                    unsettled(&ctx, picked, &e);
                    Vec::new()
                }
            };
            if ask.reply.send(answer).is_err() {
                // The factory went away after the commit: its leases expire and the reaper
                // requeues the jobs.
                tracing::warn!(factory_id = %factory, "claim answered to nobody");
            }
        });
    }
}

/// What a transaction made of the claims of picked jobs.
pub(crate) struct Granted {
    /// Leased.
    pub claimed: Vec<Job>,
    /// Refused because a budget holds them, and which.
    pub held: Vec<(JobId, Hold)>,
    /// Refused because a concurrency or rate limit holds them, and which.
    pub limited: Vec<(JobId, LimitHold)>,
}

/// The claim command for each picked job, leasing it to `factory` (whose rate is
/// `rate_micros_per_hour`).
pub(crate) fn claim_commands(
    ctx: &Context,
    factory: FactoryId,
    rate_micros_per_hour: u64,
    picked: &Picked,
) -> Vec<(JobId, Command)> {
    let ttl_ms = ctx.config.lease_ttl_ms;
    picked
        .iter()
        .map(|(entry, breakdown)| {
            let cmd = Command::Claim {
                factory,
                ttl_ms,
                placement: Some(breakdown.clone()),
                rate_micros_per_hour,
                limit_slots: Vec::new(),
            };
            (entry.id, cmd)
        })
        .collect()
}

/// After the claims of `picked` committed: the scheduler hears which run now and which wait
/// for a budget or a limit (the rest changed state since they were queued, and are gone from
/// the queue); the answer is the leases for the factory.
pub(crate) fn settle(
    ctx: &Arc<Context>,
    factory: FactoryId,
    picked: Picked,
    committed: Granted,
    now: Millis,
    started: Instant,
) -> Vec<ClaimedJob> {
    let jobs = committed.claimed;
    // Back in the queue, to wait for their budgets or limits.
    if !committed.held.is_empty() {
        ctx.tell_scheduler(SchedulerMsg::Held(entries_of(&picked, committed.held)));
    }
    if !committed.limited.is_empty() {
        ctx.tell_scheduler(SchedulerMsg::Limited(entries_of(
            &picked,
            committed.limited,
        )));
    }
    metrics::counter!(crate::metrics::CLAIMS_TOTAL).increment(jobs.len() as u64);
    crate::metrics::leases_granted(&jobs, now);
    metrics::histogram!(crate::metrics::CLAIM_COMMIT_SECONDS)
        .record(started.elapsed().as_secs_f64());
    ctx.stats.record_claim_latency(started.elapsed());
    // Counted here, not where a claim is answered: an end's answer leases jobs too.
    ctx.stats.claims_answered(jobs.len());
    let running = picked
        .into_iter()
        .filter(|(e, _)| jobs.iter().any(|j| j.id == e.id))
        .map(|(e, _)| (e, now))
        .collect();
    ctx.tell_scheduler(SchedulerMsg::Claimed {
        factory,
        jobs: running,
    });
    let ttl_ms = ctx.config.lease_ttl_ms;
    jobs.iter().map(|j| ClaimedJob::of(j, ttl_ms)).collect()
}

/// After the write carrying the claims of `picked` failed with `e`.
pub(crate) fn unsettled(ctx: &Context, picked: Picked, e: &CoordError) {
    // An outcome that may have committed leaves the jobs leased (they expire) or in the
    // store's ready index (they come back at the next rebuild); any other failure aborted, so
    // the jobs go back in the queue.
    if !e.may_have_committed() {
        unclaim(ctx, picked);
    }
}

/// Puts picked jobs whose claims were not applied back in the queue.
pub(crate) fn unclaim(ctx: &Context, picked: Picked) {
    if !picked.is_empty() {
        ctx.tell_scheduler(SchedulerMsg::Unclaimed(
            picked.into_iter().map(|(e, _)| e).collect(),
        ));
    }
}

/// The picked entries of the refused claims, each with why it was refused.
fn entries_of<H>(picked: &Picked, refused: Vec<(JobId, H)>) -> Vec<(ReadyEntry, H)> {
    refused
        .into_iter()
        .filter_map(|(id, why)| {
            let (entry, _) = picked.iter().find(|(e, _)| e.id == id)?;
            Some((entry.clone(), why))
        })
        .collect()
}

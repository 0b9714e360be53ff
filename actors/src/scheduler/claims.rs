//! Committing a claim: the placements `place` chose for a factory go to the store in one
//! transaction, off the actor; what the store refused for a budget or a limit goes back to the
//! queue to wait, and the factory gets the leases granted.

use gigafactory_core::event::Author;
use gigafactory_core::job::{Command, JobId, Millis};
use gigafactory_core::scoring::ScoreBreakdown;
use gigafactory_core::wire::ClaimedJob;
use gigafactory_storage::repo::ReadyEntry;
use ractor::ActorRef;

use super::{ClaimAsk, SchedulerMsg, SchedulerState};
use crate::commit::{self, JobWrite};

impl SchedulerState {
    /// Commits the claims in one transaction, off the actor, and answers the factory. A job
    /// whose state changed since it was indexed (cancelled, say) is skipped.
    pub(super) fn commit(
        &self,
        myself: &ActorRef<SchedulerMsg>,
        ask: ClaimAsk,
        picked: Vec<(ReadyEntry, ScoreBreakdown)>,
        now: Millis,
    ) {
        if picked.is_empty() {
            let _ = ask.reply.send(Vec::new());
            return;
        }
        let ctx = self.ctx.clone();
        let myself = myself.clone();
        tokio::spawn(async move {
            let ttl_ms = ctx.config.lease_ttl_ms;
            let factory = ask.factory_id;
            let started = std::time::Instant::now();
            let claims = picked
                .iter()
                .map(|(entry, breakdown)| {
                    let cmd = Command::Claim {
                        factory,
                        ttl_ms,
                        placement: Some(breakdown.clone()),
                        rate_micros_per_hour: ask.factory.cost_per_hour_micros,
                        limit_slots: Vec::new(),
                    };
                    (entry.id, cmd)
                })
                .collect();
            let write = JobWrite::batch(Author::Factory(factory), claims);
            match commit::commit(&ctx, write).await {
                Ok(committed) => {
                    let jobs = committed.jobs;
                    // Back in the queue, to wait for their budgets or limits.
                    if !committed.held.is_empty() {
                        let held = entries_of(&picked, committed.held);
                        let _ = myself.cast(SchedulerMsg::Held(held));
                    }
                    if !committed.limited.is_empty() {
                        let limited = entries_of(&picked, committed.limited);
                        let _ = myself.cast(SchedulerMsg::Limited(limited));
                    }
                    metrics::counter!("gigafactory_claims_total").increment(jobs.len() as u64);
                    metrics::histogram!("gigafactory_claim_commit_seconds")
                        .record(started.elapsed().as_secs_f64());
                    ctx.stats.record_claim_latency(started.elapsed());
                    let running = picked
                        .iter()
                        .filter(|(e, _)| jobs.iter().any(|j| j.id == e.id))
                        .map(|(e, _)| (e.clone(), now))
                        .collect();
                    let _ = myself.cast(SchedulerMsg::Claimed {
                        factory,
                        jobs: running,
                    });
                    let answer = jobs.iter().map(|j| ClaimedJob::of(j, ttl_ms)).collect();
                    if ask.reply.send(answer).is_err() {
                        // The factory went away after the commit: its leases expire and the
                        // reaper requeues the jobs.
                        tracing::warn!(factory_id = %factory, "claim answered to nobody");
                    }
                }
                Err(e) => {
                    tracing::warn!(factory_id = %factory, error = %e, "claim commit failed");
                    // An outcome that may have committed leaves the jobs leased (they expire)
                    // or in the store's ready index (they come back at the next rebuild);
                    // any other failure aborted, so the jobs go back in the queue.
                    if !e.may_have_committed() {
                        let _ = myself.cast(SchedulerMsg::Unclaimed(
                            picked.into_iter().map(|(e, _)| e).collect(),
                        ));
                    }
                    let _ = ask.reply.send(Vec::new());
                }
            }
        });
    }
}

/// The picked entries of the refused claims, each with why it was refused.
fn entries_of<H>(
    picked: &[(ReadyEntry, ScoreBreakdown)],
    refused: Vec<(JobId, H)>,
) -> Vec<(ReadyEntry, H)> {
    refused
        .into_iter()
        .filter_map(|(id, why)| {
            let (entry, _) = picked.iter().find(|(e, _)| e.id == id)?;
            Some((entry.clone(), why))
        })
        .collect()
}

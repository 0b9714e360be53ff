//! The agent's main loops. The heartbeat loop tells the coordinator what runs here and carries
//! out its commands (cancel, preempt, drain); the claim loop long-polls for work while slots
//! are free and starts a job task per claimed job; `serve` waits for shutdown (or a fatal
//! error) and then stops the jobs within a bounded time. The state they share, and the rules
//! that keep it consistent, are in `context.rs`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gigafactory_core::wire::{
    ClaimRequest, ClaimResponse, FactoryCommand, HeartbeatRequest, HeartbeatResponse,
};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{Instrument, debug, error, info, warn};

use crate::AgentConfig;
use crate::backoff::retry_delay;
use crate::client::{
    CLAIM_TIMEOUT_MARGIN_MS, CLAIMS_PATH, CallError, Coordinator, REQUEST_TIMEOUT_MS, Retry,
};
use crate::context::Shared;
use crate::error::Result;
use crate::identity::Identity;
use crate::job;
use crate::orphans;
use crate::sandbox::Sandboxing;
use crate::stop::Stop;

/// With no free slot (or while draining) the claim loop re-checks at least this often.
const CLAIM_RECHECK_MS: u64 = 1_000;
/// After aborting the jobs that outlived the shutdown timeout, wait this long for their tasks
/// to unwind.
const ABORT_UNWIND_MS: u64 = 1_000;

/// Runs the enrolled agent until `shutdown` or a fatal error.
pub async fn serve(
    config: AgentConfig,
    sandboxing: Sandboxing,
    coordinator: Coordinator,
    identity: Identity,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let shared = Arc::new(Shared::new(config, sandboxing, coordinator, identity));
    info!(
        slots = shared.config.slots,
        coordinator = shared.coordinator.first_url(),
        "factory agent started"
    );
    let orphan_reports = orphans::recover(&shared);
    crate::job::clear_secret_leftovers(&shared.config.workdir);
    {
        let shared = shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.prune_workspaces()).await;
    }
    let heartbeats = tokio::spawn(heartbeat_loop(shared.clone()).in_current_span());
    let claims = tokio::spawn(claim_loop(shared.clone()).in_current_span());

    let fatal = tokio::select! {
        _ = shutdown => None,
        fatal = shared.fatal_raised() => fatal,
    };
    claims.abort();
    // After a fatal error nothing can be reported: stop the jobs without a word. On a normal
    // shutdown they are stopped and released, so the coordinator requeues them at once.
    if fatal.is_some() {
        heartbeats.abort();
        shared.stop_all(Stop::Cancel);
    } else {
        info!("shutting down: stopping and releasing running jobs");
        shared.stop_all(Stop::Shutdown);
    }
    let deadline = Instant::now() + shared.config.grace + shared.config.shutdown_report_timeout;
    if !shared.wait_for_jobs(deadline).await {
        shared.abort_jobs();
        shared
            .wait_for_jobs(Instant::now() + Duration::from_millis(ABORT_UNWIND_MS))
            .await;
    }
    heartbeats.abort();
    for report in orphan_reports {
        report.abort();
    }
    match fatal {
        Some(err) => Err(err),
        None => {
            info!("factory agent stopped");
            Ok(())
        }
    }
}

/// Every `heartbeat_interval`: tells the coordinator what runs here and obeys its commands.
async fn heartbeat_loop(shared: Arc<Shared>) {
    let path = format!("/v1/factories/{}/heartbeat", shared.identity.factory_id);
    let timeout =
        Duration::from_millis(REQUEST_TIMEOUT_MS).min(shared.config.heartbeat_interval * 5);
    let mut tick = tokio::time::interval(shared.config.heartbeat_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let running = shared.held_leases();
        let request = HeartbeatRequest {
            slots_busy: running.len() as u32,
            running,
            warm: Some(shared.warm_keys()),
            draining: shared.is_draining(),
        };
        // Sent once: the next tick is the retry, with the then-current state.
        let answer = shared
            .coordinator
            .post::<_, HeartbeatResponse>(
                &path,
                &shared.identity.token,
                &request,
                timeout,
                Retry::Once,
            )
            .await;
        match answer {
            Ok(Some(response)) => {
                shared.set_lease_ttl(response.lease_ttl_ms);
                for command in response.commands {
                    obey(&shared, command);
                }
            }
            Ok(None) => debug!("heartbeat answered without a body"),
            Err(e) if e.is_unauthorized() => {
                shared.raise_fatal(shared.revoked());
                return;
            }
            Err(e) => warn!(error = ?e, "heartbeat failed"),
        }
    }
}

fn obey(shared: &Shared, command: FactoryCommand) {
    match command {
        FactoryCommand::Cancel { job_id, epoch } => {
            info!(%job_id, epoch, "coordinator cancelled the job");
            shared.request_stop(job_id, epoch, Stop::Cancel);
        }
        FactoryCommand::Preempt {
            job_id,
            epoch,
            deadline,
        } => {
            info!(%job_id, epoch, deadline, "coordinator preempts the job");
            shared.request_stop(job_id, epoch, Stop::Preempt { deadline });
        }
        FactoryCommand::Drain => {
            if shared.drain() {
                info!("draining: claiming no more jobs");
            }
        }
        FactoryCommand::Undrain => {
            if shared.undrain() {
                info!("undrained: claiming jobs again");
            }
        }
    }
}

/// While slots are free and the factory is not draining: long-polls for jobs and starts them.
async fn claim_loop(shared: Arc<Shared>) {
    let wait_ms = shared.config.claim_wait.as_millis() as u64;
    let timeout = Duration::from_millis(wait_ms + CLAIM_TIMEOUT_MARGIN_MS);
    let mut failures: u32 = 0;
    loop {
        let free = shared.config.slots.saturating_sub(shared.running_count());
        if shared.is_draining() || free == 0 {
            // Bounded wait: a missed wakeup costs a second, not a stuck factory.
            let _ =
                tokio::time::timeout(Duration::from_millis(CLAIM_RECHECK_MS), shared.slot_freed())
                    .await;
            continue;
        }
        let request = ClaimRequest {
            max_jobs: free,
            wait_ms,
        };
        // Sent once: a claim is not idempotent, and the loop's own backoff paces retries.
        let answer = shared
            .coordinator
            .post::<_, ClaimResponse>(
                CLAIMS_PATH,
                &shared.identity.token,
                &request,
                timeout,
                Retry::Once,
            )
            .await;
        match answer {
            Ok(Some(response)) => {
                failures = 0;
                if response.jobs.len() > free as usize {
                    warn!(
                        claimed = response.jobs.len(),
                        free, "the coordinator handed out more jobs than free slots"
                    );
                }
                for job in response.jobs {
                    job::start(&shared, job);
                }
            }
            Ok(None) => failures = 0,
            Err(e) if e.is_unauthorized() => {
                shared.raise_fatal(shared.revoked());
                return;
            }
            Err(e) => {
                let delay = retry_delay(failures, rand::random::<f64>());
                failures = failures.saturating_add(1);
                if let CallError::Status { .. } | CallError::Decode(_) = e {
                    error!(error = ?e, "the coordinator refused a claim");
                } else {
                    warn!(error = ?e, "claim failed");
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

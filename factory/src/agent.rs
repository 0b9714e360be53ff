//! The agent's main loops and the state they share. The heartbeat loop tells the coordinator
//! what runs here and carries out its commands (cancel, preempt, drain); the claim loop
//! long-polls for work while slots are free and starts a job task per claimed job; `serve`
//! waits for shutdown (or a fatal error) and then stops the jobs within a bounded time.
//!
//! A job's entry in [`Shared::jobs`] is the agent's only record of it: present from the claim
//! until the job's task ends (its [`SlotGuard`] removes it even if the task panics or is
//! aborted), so the heartbeat's `running` list and the free-slot count never drift.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gigafactory_core::job::JobId;
use gigafactory_core::wire::{
    ClaimRequest, ClaimResponse, ClaimedJob, FactoryCommand, HeartbeatRequest, HeartbeatResponse,
    HeldLease,
};
use tokio::sync::{Notify, watch};
use tokio::task::AbortHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::AgentConfig;
use crate::backoff::retry_delay;
use crate::client::{
    CLAIM_TIMEOUT_MARGIN_MS, CLAIMS_PATH, CallError, Coordinator, REQUEST_TIMEOUT_MS, Retry,
};
use crate::error::{AgentError, Result};
use crate::identity::{Identity, identity_path};
use crate::job::{self, Stop};
use crate::orphans;
use crate::process::{self, Signal};
use crate::workspace::{self, Workspace};

/// Until a heartbeat or a claim tells us the coordinator's lease TTL, assume this one.
pub const LEASE_TTL_DEFAULT_MS: u64 = 15_000;
/// A lease is renewed after this fraction of its TTL (a third: two renewals may fail before
/// the lease runs out).
pub const RENEW_FRACTION: u64 = 3;
/// Renewals are never closer together than this, whatever TTL the coordinator sends.
const RENEW_INTERVAL_MIN_MS: u64 = 50;
/// With no free slot (or while draining) the claim loop re-checks at least this often.
const CLAIM_RECHECK_MS: u64 = 1_000;
/// After aborting the jobs that outlived the shutdown timeout, wait this long for their tasks
/// to unwind.
const ABORT_UNWIND_MS: u64 = 1_000;

/// What the agent's tasks share.
pub struct Shared {
    pub config: AgentConfig,
    pub coordinator: Coordinator,
    pub identity: Identity,
    /// The coordinator's lease TTL, from the last heartbeat answer or claim.
    lease_ttl_ms: AtomicU64,
    /// The jobs this factory holds, by id.
    jobs: Mutex<HashMap<JobId, JobEntry>>,
    /// Set by a `Drain` command: claim nothing more.
    draining: AtomicBool,
    /// A slot was freed or draining began: the claim loop should look again.
    slot_freed: Notify,
    /// A job's task ended: `serve` waiting for shutdown should look again.
    job_ended: Notify,
    /// The first error that must stop the agent.
    fatal: Mutex<Option<AgentError>>,
    fatal_raised: Notify,
    /// Pruning from two finishing jobs at once would race over the same directories.
    prune_lock: Mutex<()>,
}

/// What the agent knows about one held job.
struct JobEntry {
    epoch: u64,
    /// Asks the job's task to stop; the strongest request wins (see [`Stop`]).
    stop: Arc<watch::Sender<Option<Stop>>>,
    workspace: PathBuf,
    /// The job's process group once started (0 before).
    pgid: Arc<AtomicI32>,
    task: Option<AbortHandle>,
}

impl Shared {
    fn new(config: AgentConfig, coordinator: Coordinator, identity: Identity) -> Self {
        Shared {
            config,
            coordinator,
            identity,
            lease_ttl_ms: AtomicU64::new(LEASE_TTL_DEFAULT_MS),
            jobs: Mutex::new(HashMap::new()),
            draining: AtomicBool::new(false),
            slot_freed: Notify::new(),
            job_ended: Notify::new(),
            fatal: Mutex::new(None),
            fatal_raised: Notify::new(),
            prune_lock: Mutex::new(()),
        }
    }

    /// How long to wait between two renewals of a lease.
    pub fn renew_interval(&self) -> Duration {
        let ttl = self.lease_ttl_ms.load(Ordering::Relaxed);
        Duration::from_millis((ttl / RENEW_FRACTION).max(RENEW_INTERVAL_MIN_MS))
    }

    fn set_lease_ttl(&self, ttl_ms: u64) {
        if ttl_ms > 0 {
            self.lease_ttl_ms.store(ttl_ms, Ordering::Relaxed);
        }
    }

    /// Records an error that stops the agent (the first one wins) and wakes `serve`.
    pub fn raise_fatal(&self, err: AgentError) {
        let mut fatal = self.fatal.lock().expect("fatal lock");
        if fatal.is_none() {
            error!(error = %err, "stopping the agent");
            *fatal = Some(err);
        }
        self.fatal_raised.notify_one();
    }

    /// The error for a refused factory token.
    pub fn revoked(&self) -> AgentError {
        AgentError::Revoked {
            path: identity_path(&self.config.workdir),
        }
    }

    fn held_leases(&self) -> Vec<HeldLease> {
        let jobs = self.jobs.lock().expect("jobs lock");
        jobs.iter()
            .map(|(id, e)| HeldLease {
                job_id: *id,
                epoch: e.epoch,
            })
            .collect()
    }

    fn running_count(&self) -> u32 {
        self.jobs.lock().expect("jobs lock").len() as u32
    }

    /// Asks the job holding `(job_id, epoch)` to stop; a command for another epoch is stale and
    /// ignored.
    fn request_stop(&self, job_id: JobId, epoch: u64, stop: Stop) {
        let jobs = self.jobs.lock().expect("jobs lock");
        match jobs.get(&job_id) {
            Some(entry) if entry.epoch == epoch => {
                entry
                    .stop
                    .send_if_modified(|current| job::escalate(current, stop));
            }
            _ => debug!(%job_id, epoch, ?stop, "stop request for a job not held at that epoch"),
        }
    }

    fn stop_all(&self, stop: Stop) {
        let jobs = self.jobs.lock().expect("jobs lock");
        for entry in jobs.values() {
            entry
                .stop
                .send_if_modified(|current| job::escalate(current, stop));
        }
    }

    /// Workspaces of held jobs: never pruned, even before their running marker exists.
    fn active_workspaces(&self) -> HashSet<PathBuf> {
        self.jobs
            .lock()
            .expect("jobs lock")
            .values()
            .map(|e| e.workspace.clone())
            .collect()
    }

    /// Deletes old finished workspaces (blocking: call from a blocking thread).
    pub fn prune_workspaces(&self) {
        let active = self.active_workspaces();
        let _one_at_a_time = self.prune_lock.lock().expect("prune lock");
        workspace::prune(&self.config.workdir, self.config.workspaces_kept, &active);
    }
}

/// Removes a job's entry when its task ends, however it ends.
struct SlotGuard {
    shared: Arc<Shared>,
    job_id: JobId,
    epoch: u64,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Ok(mut jobs) = self.shared.jobs.lock() {
            // A newer lease of the same job (re-claimed after this one was fenced) keeps its
            // entry.
            if jobs
                .get(&self.job_id)
                .is_some_and(|e| e.epoch == self.epoch)
            {
                jobs.remove(&self.job_id);
            }
        }
        self.shared.slot_freed.notify_one();
        self.shared.job_ended.notify_one();
    }
}

/// Runs the enrolled agent until `shutdown` or a fatal error.
pub async fn serve(
    config: AgentConfig,
    coordinator: Coordinator,
    identity: Identity,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let shared = Arc::new(Shared::new(config, coordinator, identity));
    info!(
        slots = shared.config.slots,
        coordinator = shared.coordinator.first_url(),
        "factory agent started"
    );
    let orphan_reports = orphans::recover(&shared);
    {
        let shared = shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.prune_workspaces()).await;
    }
    let heartbeats = tokio::spawn(heartbeat_loop(shared.clone()).in_current_span());
    let claims = tokio::spawn(claim_loop(shared.clone()).in_current_span());

    let fatal = tokio::select! {
        _ = shutdown => None,
        _ = shared.fatal_raised.notified() => shared.fatal.lock().expect("fatal lock").take(),
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
    if !wait_for_jobs(&shared, deadline).await {
        abort_jobs(&shared);
        wait_for_jobs(
            &shared,
            Instant::now() + Duration::from_millis(ABORT_UNWIND_MS),
        )
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

/// Waits until no job is held, or `deadline`; whether all ended.
async fn wait_for_jobs(shared: &Shared, deadline: Instant) -> bool {
    loop {
        if shared.running_count() == 0 {
            return true;
        }
        tokio::select! {
            _ = shared.job_ended.notified() => {}
            _ = tokio::time::sleep_until(deadline) => return shared.running_count() == 0,
        }
    }
}

/// Ends the jobs whose end could not be delivered in time. Their running markers stay, so the
/// next start reports them as orphaned.
fn abort_jobs(shared: &Shared) {
    let jobs = shared.jobs.lock().expect("jobs lock");
    for (job_id, entry) in jobs.iter() {
        warn!(%job_id, epoch = entry.epoch, "the job's end was not delivered before the shutdown timeout");
        if let Some(task) = &entry.task {
            task.abort();
        }
        let pgid = entry.pgid.load(Ordering::Acquire);
        if pgid > 0 {
            process::signal_group(pgid, Signal::Kill);
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
            if !shared.draining.swap(true, Ordering::AcqRel) {
                info!("draining: claiming no more jobs");
            }
            shared.slot_freed.notify_one();
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
        if shared.draining.load(Ordering::Acquire) || free == 0 {
            // Bounded wait: a missed wakeup costs a second, not a stuck factory.
            let _ = tokio::time::timeout(
                Duration::from_millis(CLAIM_RECHECK_MS),
                shared.slot_freed.notified(),
            )
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
                    start_job(&shared, job);
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

/// Registers a claimed job and starts its task.
fn start_job(shared: &Arc<Shared>, job: ClaimedJob) {
    shared.set_lease_ttl(job.lease_ttl_ms);
    let (job_id, epoch) = (job.job_id, job.epoch);
    let (stop, _) = watch::channel(None);
    let stop = Arc::new(stop);
    let pgid = Arc::new(AtomicI32::new(0));
    let workspace = Workspace::path(&shared.config.workdir, job_id, job.attempt).root;
    {
        let mut jobs = shared.jobs.lock().expect("jobs lock");
        if let Some(old) = jobs.get(&job_id) {
            // The coordinator leased the job to us again: the older lease is certainly gone.
            warn!(%job_id, old_epoch = old.epoch, epoch, "job claimed again; stopping the older attempt");
            old.stop
                .send_if_modified(|current| job::escalate(current, Stop::Fenced));
        }
        jobs.insert(
            job_id,
            JobEntry {
                epoch,
                stop: stop.clone(),
                workspace,
                pgid: pgid.clone(),
                task: None,
            },
        );
    }
    info!(%job_id, epoch, attempt = job.attempt, title = %job.title, "job claimed");
    let span = info_span!("job", %job_id, epoch, attempt = job.attempt, factory_id = %shared.identity.factory_id);
    let guard = SlotGuard {
        shared: shared.clone(),
        job_id,
        epoch,
    };
    let task_shared = shared.clone();
    let task = tokio::spawn(
        async move {
            // Moved in, so the entry goes when the task ends, panics or is aborted.
            let _guard = guard;
            job::run_job(task_shared, job, stop, pgid).await;
        }
        .instrument(span),
    );
    let mut jobs = shared.jobs.lock().expect("jobs lock");
    if let Some(entry) = jobs.get_mut(&job_id).filter(|e| e.epoch == epoch) {
        entry.task = Some(task.abort_handle());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewals_come_at_a_third_of_the_ttl_and_never_too_often() {
        let shared = Shared::new(
            AgentConfig::new(vec!["http://x:1".into()], "t", "/tmp/none"),
            Coordinator::new(&["http://x:1".into()]).unwrap(),
            Identity {
                factory_id: gigafactory_core::job::FactoryId(uuid::Uuid::new_v4()),
                token: "t".into(),
            },
        );
        assert_eq!(shared.renew_interval(), Duration::from_millis(5_000));
        shared.set_lease_ttl(0);
        assert_eq!(
            shared.renew_interval(),
            Duration::from_millis(5_000),
            "a zero TTL is ignored"
        );
        shared.set_lease_ttl(30);
        assert_eq!(
            shared.renew_interval(),
            Duration::from_millis(RENEW_INTERVAL_MIN_MS)
        );
    }
}

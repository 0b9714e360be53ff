//! The agent's context: what the heartbeat loop, the claim loop, every job's task and the orphan
//! reports share — the configuration, the coordinator client, the factory's identity, the
//! coordinator's lease TTL, the record of held jobs, and the first fatal error.
//!
//! Guarantees:
//! - A job's entry in the record is the agent's only record of it: present from the claim
//!   ([`Shared::hold`]) until the job's task ends (its [`SlotGuard`] removes it even if the task
//!   panics or is aborted), so the heartbeat's `running` list and the free-slot count never
//!   drift.
//! - A stop request reaches only the lease it names (a command for an older epoch is ignored),
//!   and is folded so that it never weakens an earlier one ([`crate::stop::escalate`]).
//! - The first fatal error wins; it wakes whoever waits in [`Shared::fatal_raised`].
//!
//! This module holds state and the rules that keep it consistent; the loops that act on it live
//! in `agent.rs`, a job's life in `job.rs`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gigafactory_core::fleet::WARM_KEYS_MAX;

use crate::mirror::Mirrors;
use gigafactory_core::job::JobId;
use gigafactory_core::wire::HeldLease;
use tokio::sync::{Notify, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::{debug, error, warn};

use crate::AgentConfig;
use crate::client::Coordinator;
use crate::error::AgentError;
use crate::identity::{Identity, identity_path};
use crate::process::{self, Signal};
use crate::sandbox::Sandboxing;
use crate::stop::{Stop, escalate};
use crate::workspace;

/// Until a heartbeat or a claim tells us the coordinator's lease TTL, assume this one.
pub const LEASE_TTL_DEFAULT_MS: u64 = 15_000;
/// A lease is renewed after this fraction of its TTL (a third: two renewals may fail before
/// the lease runs out).
pub const RENEW_FRACTION: u64 = 3;
/// Renewals are never closer together than this, whatever TTL the coordinator sends.
const RENEW_INTERVAL_MIN_MS: u64 = 50;

/// What the agent's tasks share.
pub struct Shared {
    pub config: AgentConfig,
    /// What this machine isolates jobs with.
    pub sandboxing: Sandboxing,
    pub coordinator: Coordinator,
    pub identity: Identity,
    /// The coordinator's lease TTL, from the last heartbeat answer or claim.
    lease_ttl_ms: AtomicU64,
    /// The jobs this factory holds, by id.
    jobs: Mutex<HashMap<JobId, JobEntry>>,
    /// Set by a `Drain` command: claim nothing more.
    draining: AtomicBool,
    /// Set when the agent stops its jobs (shutdown or a fatal error): the stop every job
    /// held from then on gets at once (an end's answer may still bring one).
    closing: Mutex<Option<Stop>>,
    /// A slot was freed or draining began: the claim loop should look again.
    slot_freed: Notify,
    /// A job's task ended: `serve` waiting for shutdown should look again.
    job_ended: Notify,
    /// The first error that must stop the agent.
    fatal: Mutex<Option<AgentError>>,
    fatal_raised: Notify,
    /// Pruning from two finishing jobs at once would race over the same directories.
    prune_lock: Mutex<()>,
    /// What the factory holds warm, most recently used first (at most `WARM_KEYS_MAX`).
    warm: Mutex<VecDeque<String>>,
    /// The git mirrors jobs' checkouts come from.
    pub mirrors: Mirrors,
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

/// What a job's task needs from its entry, handed out when the lease is registered.
pub struct Held {
    /// Carries stop requests to the task.
    pub stop: Arc<watch::Sender<Option<Stop>>>,
    /// Where the task stores the job's process group once it started.
    pub pgid: Arc<AtomicI32>,
    /// Removes the entry when dropped: move it into the task.
    pub guard: SlotGuard,
}

impl Shared {
    pub fn new(
        config: AgentConfig,
        sandboxing: Sandboxing,
        coordinator: Coordinator,
        identity: Identity,
    ) -> Self {
        let mut config_warm: VecDeque<String> = VecDeque::new();
        for key in &config.warm {
            if !config_warm.contains(key) && config_warm.len() < WARM_KEYS_MAX {
                config_warm.push_back(key.clone());
            }
        }
        Shared {
            sandboxing,
            coordinator,
            identity,
            lease_ttl_ms: AtomicU64::new(LEASE_TTL_DEFAULT_MS),
            jobs: Mutex::new(HashMap::new()),
            draining: AtomicBool::new(false),
            closing: Mutex::new(None),
            slot_freed: Notify::new(),
            job_ended: Notify::new(),
            fatal: Mutex::new(None),
            fatal_raised: Notify::new(),
            prune_lock: Mutex::new(()),
            warm: Mutex::new(config_warm),
            mirrors: Mirrors::new(&config.workdir),
            config,
        }
    }

    /// A job with this affinity runs here: its repository or cache is warm from now on.
    pub fn mark_warm(&self, key: &str) {
        let mut warm = self.warm.lock().expect("warm keys lock");
        warm.retain(|k| k != key);
        warm.push_front(key.to_owned());
        warm.truncate(WARM_KEYS_MAX);
    }

    /// What the factory holds warm, for its heartbeat.
    pub fn warm_keys(&self) -> Vec<String> {
        self.warm
            .lock()
            .expect("warm keys lock")
            .iter()
            .cloned()
            .collect()
    }

    /// How long to wait between two renewals of a lease.
    pub fn renew_interval(&self) -> Duration {
        let ttl = self.lease_ttl_ms.load(Ordering::Relaxed);
        Duration::from_millis((ttl / RENEW_FRACTION).max(RENEW_INTERVAL_MIN_MS))
    }

    /// Adopts the coordinator's lease TTL; zero (an answer that does not say) is ignored.
    pub fn set_lease_ttl(&self, ttl_ms: u64) {
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

    /// Waits until a fatal error is raised, and takes it. One waiter: `serve`.
    pub async fn fatal_raised(&self) -> Option<AgentError> {
        self.fatal_raised.notified().await;
        self.fatal.lock().expect("fatal lock").take()
    }

    /// The error for a refused factory token.
    pub fn revoked(&self) -> AgentError {
        AgentError::Revoked {
            path: identity_path(&self.config.workdir),
        }
    }

    /// The leases held now, as a heartbeat reports them.
    pub fn held_leases(&self) -> Vec<HeldLease> {
        let jobs = self.jobs.lock().expect("jobs lock");
        jobs.iter()
            .map(|(id, e)| HeldLease {
                job_id: *id,
                epoch: e.epoch,
            })
            .collect()
    }

    pub fn running_count(&self) -> u32 {
        self.jobs.lock().expect("jobs lock").len() as u32
    }

    /// Asks the job holding `(job_id, epoch)` to stop; a command for another epoch is stale and
    /// ignored.
    pub fn request_stop(&self, job_id: JobId, epoch: u64, stop: Stop) {
        let jobs = self.jobs.lock().expect("jobs lock");
        match jobs.get(&job_id) {
            Some(entry) if entry.epoch == epoch => {
                entry
                    .stop
                    .send_if_modified(|current| escalate(current, stop));
            }
            _ => debug!(%job_id, epoch, ?stop, "stop request for a job not held at that epoch"),
        }
    }

    pub fn stop_all(&self, stop: Stop) {
        let jobs = self.jobs.lock().expect("jobs lock");
        *self.closing.lock().expect("closing lock") = Some(stop);
        for entry in jobs.values() {
            entry
                .stop
                .send_if_modified(|current| escalate(current, stop));
        }
    }

    /// Claims nothing more from now on; whether this call began draining.
    pub fn drain(&self) -> bool {
        let began = !self.draining.swap(true, Ordering::AcqRel);
        self.slot_freed.notify_one();
        began
    }

    /// Claims jobs again after a drain; whether this call ended draining.
    pub fn undrain(&self) -> bool {
        let ended = self.draining.swap(false, Ordering::AcqRel);
        self.slot_freed.notify_one();
        ended
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Whether a job's end should ask for the factory's next job (one round trip per job):
    /// not while draining or stopping.
    pub fn claims_next(&self) -> bool {
        !self.is_draining() && self.closing.lock().expect("closing lock").is_none()
    }

    /// Resolves once a slot was freed or draining began (one waiter: the claim loop).
    pub async fn slot_freed(&self) {
        self.slot_freed.notified().await;
    }

    /// Registers the lease `(job_id, epoch)` of a claimed job. A held older lease of the same
    /// job is told to stop: the coordinator leased the job to us again, so that one is gone.
    /// While the agent stops its jobs, the new one is stopped at once the same way.
    pub fn hold(self: &Arc<Self>, job_id: JobId, epoch: u64, workspace: PathBuf) -> Held {
        let mut jobs = self.jobs.lock().expect("jobs lock");
        let (stop, _) = watch::channel(*self.closing.lock().expect("closing lock"));
        let stop = Arc::new(stop);
        let pgid = Arc::new(AtomicI32::new(0));
        if let Some(old) = jobs.get(&job_id) {
            warn!(%job_id, old_epoch = old.epoch, epoch, "job claimed again; stopping the older attempt");
            old.stop
                .send_if_modified(|current| escalate(current, Stop::Fenced));
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
        Held {
            stop,
            pgid,
            guard: SlotGuard {
                shared: self.clone(),
                job_id,
                epoch,
            },
        }
    }

    /// Gives the held lease `(job_id, epoch)` its task, so a shutdown can abort it.
    pub fn attach_task(&self, job_id: JobId, epoch: u64, task: AbortHandle) {
        let mut jobs = self.jobs.lock().expect("jobs lock");
        if let Some(entry) = jobs.get_mut(&job_id).filter(|e| e.epoch == epoch) {
            entry.task = Some(task);
        }
    }

    /// Waits until no job is held, or `deadline`; whether all ended.
    pub async fn wait_for_jobs(&self, deadline: Instant) -> bool {
        loop {
            if self.running_count() == 0 {
                return true;
            }
            tokio::select! {
                _ = self.job_ended.notified() => {}
                _ = tokio::time::sleep_until(deadline) => return self.running_count() == 0,
            }
        }
    }

    /// Ends the jobs whose end could not be delivered in time: aborts their tasks and kills
    /// their process groups. Their running markers stay, so the next start reports them as
    /// orphaned.
    pub fn abort_jobs(&self) {
        let jobs = self.jobs.lock().expect("jobs lock");
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
pub struct SlotGuard {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Arc<Shared> {
        Arc::new(Shared::new(
            AgentConfig::new(vec!["http://x:1".into()], "t", "/tmp/none"),
            Sandboxing::detect(crate::sandbox::Mode::Off).unwrap(),
            Coordinator::new(&["http://x:1".into()], &Default::default()).unwrap(),
            Identity {
                factory_id: gigafactory_core::job::FactoryId(uuid::Uuid::new_v4()),
                token: "t".into(),
            },
        ))
    }

    #[test]
    fn renewals_come_at_a_third_of_the_ttl_and_never_too_often() {
        let shared = shared();
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

    #[test]
    fn a_job_is_held_until_its_guard_drops_and_a_newer_lease_outlives_an_older_guard() {
        let shared = shared();
        let job = JobId(uuid::Uuid::new_v4());
        let first = shared.hold(job, 1, PathBuf::from("/w/1"));
        assert_eq!(shared.running_count(), 1);
        let second = shared.hold(job, 2, PathBuf::from("/w/2"));
        assert_eq!(
            *first.stop.borrow(),
            Some(Stop::Fenced),
            "the older attempt is told its lease is gone"
        );
        drop(first.guard);
        assert_eq!(
            shared
                .held_leases()
                .iter()
                .map(|l| l.epoch)
                .collect::<Vec<_>>(),
            [2],
            "the older guard leaves the newer lease alone"
        );
        drop(second.guard);
        assert_eq!(shared.running_count(), 0);
    }
}

//! The coordinator node's handle: what the API calls. It owns the actor tree's shared services
//! (`Shared`: the store, the clock, the registries of virtual actors) and turns each request
//! into a store transaction or a message to the actor that serializes it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use dashmap::DashMap;
use gigafactory_core::fleet::{Factory, FactoryStatus, Role, Token};
use gigafactory_core::job::{self, Command, FactoryId, Job, JobId, JobState};
use gigafactory_core::manifest::{self, JobSpec};
use gigafactory_core::wire::{
    ClaimedJob, EnrollRequest, EnrollResponse, Event, HeartbeatRequest, HeartbeatResponse,
    LeaseAnswer, LogChunk, LogStream,
};
use gigafactory_storage::repo::{self, ReadyEntry};
use gigafactory_storage::{AnyStore, KeyRange, RangeOptions, codec, keys, transact};
use ractor::{Actor, ActorRef};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::auth;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::{CoordError, Result};
use crate::factory_actor::{FactoryActor, FactoryMsg, factory_view};
use crate::job_actor::{JobActor, JobActorArgs, JobMsg, lease_answer};
use crate::scheduler::{ClaimAsk, SchedulerMsg, SchedulerSnapshot};
use crate::stats_history::{ClaimLatencies, Counters, StatsHistory, StatsSample};
use crate::supervisor::{Supervisor, SupervisorMsg};

/// Rows a filtered job listing examines per page before it returns what it found.
const LIST_SCAN_MAX_ROWS: usize = 10_000;
/// Changed paths one report may list (the agent caps its list at the same number).
const CHANGED_PATHS_MAX: usize = 10_000;

pub(crate) struct JobSlot {
    pub actor: ActorRef<JobMsg>,
    /// Commands sent and not yet handled: the mailbox bound.
    pub queued: Arc<AtomicUsize>,
}

/// One line of a job's output.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    pub attempt: u32,
    pub seq: u64,
    pub stream: LogStream,
    pub data: String,
}

pub(crate) struct Shared {
    pub store: AnyStore,
    pub config: Config,
    clock: Arc<dyn Clock>,
    pub scheduler: RwLock<Option<ActorRef<SchedulerMsg>>>,
    pub reaper: RwLock<Option<ActorRef<crate::reaper::ReaperMsg>>>,
    supervisor: RwLock<Option<ActorRef<SupervisorMsg>>>,
    pub jobs: DashMap<JobId, JobSlot>,
    pub factories: DashMap<FactoryId, ActorRef<FactoryMsg>>,
    spawn_lock: tokio::sync::Mutex<()>,
    pub unhealthy: AtomicBool,
    /// Messages sent to the scheduler and not yet handled: its mailbox, bounded by refusing
    /// new submissions past `scheduler_backlog_max`.
    pub scheduler_backlog: AtomicUsize,
    /// This node's id in the cluster.
    pub node_id: Uuid,
    pub started_at: u64,
    /// Shards this node holds, and until when its leases on them run.
    pub shards: RwLock<(std::collections::BTreeSet<u32>, u64)>,
    pub fleet: crate::fleet::FleetHub,
    /// Jobs this node saw finish, and claims it answered, since it started.
    pub finished_total: std::sync::atomic::AtomicU64,
    pub claims_total: std::sync::atomic::AtomicU64,
    /// Latencies of the latest placements, from the scheduler choosing a job to the lease
    /// being committed (long-poll waiting excluded), for the control plane.
    claim_latencies: std::sync::Mutex<ClaimLatencies>,
    /// The overview's samples over the last `stats_history_samples` intervals.
    stats_history: std::sync::Mutex<StatsHistory>,
}

/// An operator's (or the scheduler's) action on a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorAction {
    Requeue,
    Reject,
    Cancel,
    Ship,
    Retry,
    /// The scheduler makes room for job `by`.
    Preempt {
        by: JobId,
    },
}

impl OperatorAction {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "requeue" => OperatorAction::Requeue,
            "reject" => OperatorAction::Reject,
            "cancel" => OperatorAction::Cancel,
            "ship" => OperatorAction::Ship,
            "retry" => OperatorAction::Retry,
            _ => return None,
        })
    }
}

/// Which jobs a listing shows; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub state: Option<String>,
    pub product: Option<String>,
    pub capability: Option<String>,
    pub factory: Option<FactoryId>,
    /// Case-insensitive substring of the title or key.
    pub text: Option<String>,
}

impl JobFilter {
    fn matches(&self, j: &Job) -> bool {
        self.state.as_deref().is_none_or(|s| s == j.state.name())
            && self.product.as_deref().is_none_or(|p| p == j.spec.product)
            && self
                .capability
                .as_deref()
                .is_none_or(|c| j.spec.capabilities.iter().any(|x| x == c))
            && self
                .factory
                .is_none_or(|f| j.state.lease().is_some_and(|l| l.factory == f))
            && self.text.as_deref().is_none_or(|t| {
                let t = t.to_lowercase();
                j.spec.title.to_lowercase().contains(&t) || j.spec.key.to_lowercase().contains(&t)
            })
    }
}

/// The overview's figures (see [`Coordinator::stats`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub now: u64,
    pub factories_online: usize,
    pub factories_draining: usize,
    pub factories_offline: usize,
    pub factories_revoked: usize,
    pub slots: u32,
    pub slots_busy: u32,
    pub queued: usize,
    pub queued_by_product: std::collections::BTreeMap<String, usize>,
    pub queued_by_capability: std::collections::BTreeMap<String, usize>,
    pub running: usize,
    /// Counters since this node started: a client derives rates from two readings.
    pub finished_total: u64,
    pub claims_total: u64,
    pub claim_latency_p50_ms: Option<f64>,
    pub claim_latency_p99_ms: Option<f64>,
}

/// Which actor a chaos fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultTarget {
    Scheduler,
    Reaper,
    Job(JobId),
    Factory(FactoryId),
}

/// Nodes and shard owners (see [`Coordinator::cluster`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterView {
    pub this_node: Uuid,
    pub now: u64,
    /// `(alive, record)`.
    pub nodes: Vec<(bool, gigafactory_core::cluster::NodeRecord)>,
    /// `(shard, live lease)`.
    pub shards: Vec<(u32, Option<gigafactory_core::cluster::ShardLease>)>,
}

/// Who is calling, once their token checked out.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub role: Role,
    pub name: String,
}

impl Shared {
    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The shards this node holds an unexpired lease on, or `None` on a store of its own
    /// (where it does all the work).
    pub fn owned_shards(&self) -> Option<std::collections::BTreeSet<u32>> {
        if !self.config.shared_store {
            return None;
        }
        let (owned, until) = &*self.shards.read().expect("shards lock poisoned");
        Some(if self.now() < *until {
            owned.clone()
        } else {
            Default::default()
        })
    }

    /// Whether this node should do one-owner work for `job` now: always on a store of its
    /// own; on a shared store only for the shards it holds an unexpired lease on.
    pub fn owns_shard(&self, job: JobId) -> bool {
        if !self.config.shared_store {
            return true;
        }
        let (owned, until) = &*self.shards.read().expect("shards lock poisoned");
        self.now() < *until && owned.contains(&gigafactory_core::cluster::shard_of(job.0))
    }

    /// Records how long one placement took to commit.
    pub fn record_claim_latency(&self, elapsed: Duration) {
        self.claim_latencies
            .lock()
            .expect("latency lock poisoned")
            .record(elapsed.as_micros() as u64);
    }

    /// Adds a sample of the node's counters to the overview's history.
    pub fn sample_stats(&self) {
        let latencies = self.claim_latencies.lock().expect("latency lock poisoned");
        let counters = Counters {
            finished_total: self.finished_total.load(Ordering::Relaxed),
            claims_total: self.claims_total.load(Ordering::Relaxed),
            latencies_recorded: latencies.recorded_total(),
        };
        self.stats_history
            .lock()
            .expect("stats history lock poisoned")
            .sample(self.now(), counters, &latencies);
    }

    /// Announces a committed transition on the fleet stream.
    pub fn publish_event(&self, job: &Job, kind: &str, actor: &str) {
        self.fleet.publish(job, kind, actor, self.now());
    }

    pub fn tell_scheduler(&self, msg: SchedulerMsg) {
        self.scheduler_backlog.fetch_add(1, Ordering::Relaxed);
        if let Some(s) = self
            .scheduler
            .read()
            .expect("scheduler lock poisoned")
            .as_ref()
            && s.cast(msg).is_err()
        {
            self.scheduler_backlog.fetch_sub(1, Ordering::Relaxed);
            // The scheduler is restarting; it rebuilds from the store, which already holds
            // the change this message announced.
            tracing::debug!("scheduler unavailable; it will rebuild from the store");
        }
    }

    pub async fn tell_factory(self: &Arc<Self>, id: FactoryId, msg: FactoryMsg) {
        match self.factory_actor(id).await {
            Ok(actor) => {
                let _ = actor.cast(msg);
            }
            Err(e) => tracing::warn!(factory_id = %id, error = %e, "cannot reach factory actor"),
        }
    }

    fn supervisor_cell(&self) -> Result<ractor::ActorCell> {
        self.supervisor
            .read()
            .expect("supervisor lock poisoned")
            .as_ref()
            .map(|s| s.get_cell())
            .ok_or_else(|| CoordError::Unavailable("coordinator is stopping".into()))
    }

    async fn factory_actor(self: &Arc<Self>, id: FactoryId) -> Result<ActorRef<FactoryMsg>> {
        if let Some(a) = self.factories.get(&id) {
            return Ok(a.clone());
        }
        let _guard = self.spawn_lock.lock().await;
        if let Some(a) = self.factories.get(&id) {
            return Ok(a.clone());
        }
        let (actor, _) = Actor::spawn_linked(
            None,
            FactoryActor,
            (self.clone(), id),
            self.supervisor_cell()?,
        )
        .await
        .map_err(|e| CoordError::Internal(format!("cannot start factory actor: {e}")))?;
        self.factories.insert(id, actor.clone());
        Ok(actor)
    }

    /// The job's actor, activated if it is not running, with its mailbox counter.
    async fn job_actor(
        self: &Arc<Self>,
        id: JobId,
    ) -> Result<(ActorRef<JobMsg>, Arc<AtomicUsize>)> {
        if let Some(s) = self.jobs.get(&id) {
            return Ok((s.actor.clone(), s.queued.clone()));
        }
        let _guard = self.spawn_lock.lock().await;
        if let Some(s) = self.jobs.get(&id) {
            return Ok((s.actor.clone(), s.queued.clone()));
        }
        let queued = Arc::new(AtomicUsize::new(0));
        let args = JobActorArgs {
            shared: self.clone(),
            id,
            queued: queued.clone(),
        };
        let (actor, _) = Actor::spawn_linked(None, JobActor, args, self.supervisor_cell()?)
            .await
            .map_err(|e| CoordError::Internal(format!("cannot start job actor: {e}")))?;
        self.jobs.insert(
            id,
            JobSlot {
                actor: actor.clone(),
                queued: queued.clone(),
            },
        );
        Ok((actor, queued))
    }

    /// Sends one command to the job's actor and waits for its answer; refuses with
    /// `overloaded` when the actor's mailbox is full.
    async fn ask_job(
        self: &Arc<Self>,
        id: JobId,
        make: impl Fn(ractor::RpcReplyPort<Result<Job>>) -> JobMsg,
    ) -> Result<Job> {
        // An actor can stop (passivate) between lookup and send: then activate a new one.
        for _ in 0..2 {
            let (actor, queued) = self.job_actor(id).await?;
            if queued.fetch_add(1, Ordering::Relaxed) >= self.config.job_mailbox_max {
                queued.fetch_sub(1, Ordering::Relaxed);
                return Err(CoordError::Overloaded(format!(
                    "job {id} has too many pending commands"
                )));
            }
            let (tx, rx) = oneshot::channel();
            if actor.send_message(make(tx.into())).is_err() {
                queued.fetch_sub(1, Ordering::Relaxed);
                self.jobs
                    .remove_if(&id, |_, s| s.actor.get_id() == actor.get_id());
                continue;
            }
            return match rx.await {
                Ok(r) => r,
                // The actor failed while handling it: the supervisor logged why; the outcome of
                // its transaction is unknown to us.
                Err(_) => Err(CoordError::Unavailable(format!(
                    "job {id} actor stopped; re-read the job"
                ))),
            };
        }
        Err(CoordError::Unavailable(format!(
            "job {id} actor keeps stopping"
        )))
    }

    pub async fn apply(
        self: &Arc<Self>,
        id: JobId,
        cmd: Command,
        actor: &str,
        request_id: Option<String>,
        changed_paths: Vec<String>,
    ) -> Result<Job> {
        let actor = actor.to_string();
        self.ask_job(id, |reply| JobMsg::Apply {
            cmd: cmd.clone(),
            actor: actor.clone(),
            request_id: request_id.clone(),
            changed_paths: changed_paths.clone(),
            reply,
        })
        .await
    }

    pub async fn operator_action(
        self: &Arc<Self>,
        id: JobId,
        action: OperatorAction,
        actor: &str,
    ) -> Result<Job> {
        let cmd = match action {
            OperatorAction::Requeue => Command::Requeue,
            OperatorAction::Reject => Command::Reject,
            OperatorAction::Cancel => Command::Cancel,
            OperatorAction::Ship => Command::Ship,
            OperatorAction::Retry => Command::Retry,
            OperatorAction::Preempt { by } => Command::Preempt {
                by: Some(by),
                grace_ms: self.config.preempt_grace_ms,
            },
        };
        self.apply(id, cmd, actor, None, Vec::new()).await
    }
}

/// A running coordinator node. Cheap to clone.
#[derive(Clone)]
pub struct Coordinator {
    shared: Arc<Shared>,
}

impl Coordinator {
    /// Starts the actor tree on `store`.
    pub async fn start(store: AnyStore, config: Config, clock: Arc<dyn Clock>) -> Result<Self> {
        let started_at = clock.now_ms();
        let node_id = Uuid::now_v7();
        // Only nodes sharing a store share fleet events; a store of its own needs no feed.
        let feed = config
            .shared_store
            .then(|| crate::fleet_relay::spawn_feed_writer(store.clone(), node_id));
        let history = StatsHistory::new(config.stats_history_samples.max(1));
        let shared = Arc::new(Shared {
            store,
            config,
            clock,
            scheduler: RwLock::new(None),
            reaper: RwLock::new(None),
            supervisor: RwLock::new(None),
            jobs: DashMap::new(),
            factories: DashMap::new(),
            spawn_lock: tokio::sync::Mutex::new(()),
            unhealthy: AtomicBool::new(false),
            scheduler_backlog: AtomicUsize::new(0),
            node_id,
            started_at,
            shards: RwLock::new((Default::default(), 0)),
            fleet: crate::fleet::FleetHub::new(node_id, feed),
            finished_total: Default::default(),
            claims_total: Default::default(),
            claim_latencies: Default::default(),
            stats_history: std::sync::Mutex::new(history),
        });
        let (sup, _) = Actor::spawn(None, Supervisor, shared.clone())
            .await
            .map_err(|e| CoordError::Internal(format!("cannot start the supervisor: {e}")))?;
        *shared.supervisor.write().expect("supervisor lock poisoned") = Some(sup);
        Ok(Coordinator { shared })
    }

    /// Stops the actor tree.
    pub fn stop(&self) {
        if let Some(s) = self
            .shared
            .supervisor
            .write()
            .expect("supervisor lock poisoned")
            .take()
        {
            s.stop(Some("shutdown".into()));
        }
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    pub fn now(&self) -> u64 {
        self.shared.now()
    }

    pub fn store_engine(&self) -> &'static str {
        self.shared.store.engine()
    }

    /// Ready to serve: the store answers and no actor is crash-looping.
    pub async fn ready(&self) -> Result<()> {
        if self.shared.unhealthy.load(Ordering::Relaxed) {
            return Err(CoordError::Unavailable("an actor is crash-looping".into()));
        }
        transact!(self.shared.store, |tx| tx.get(&keys::meta("admin")).await)?;
        Ok(())
    }

    pub async fn scheduler_snapshot(&self) -> Result<SchedulerSnapshot> {
        let scheduler = self
            .shared
            .scheduler
            .read()
            .expect("scheduler lock poisoned")
            .clone();
        let s = scheduler.ok_or_else(|| CoordError::Unavailable("scheduler restarting".into()))?;
        ractor::call!(s, crate::scheduler::SchedulerMsg::Snapshot)
            .map_err(|e| CoordError::Unavailable(format!("scheduler: {e}")))
    }

    // ---- tokens ----

    /// On the first start only: mints the admin token and returns its secret (shown once).
    pub async fn bootstrap_admin(&self) -> Result<Option<String>> {
        let secret = auth::new_secret();
        let hash = auth::hash_secret(&secret);
        let now = self.now();
        let made = transact!(self.shared.store, |tx| {
            if tx.get(&keys::meta("admin")).await?.is_some() {
                return Ok::<_, CoordError>(false);
            }
            tx.set(&keys::meta("admin"), &now.to_le_bytes())?;
            repo::save_token(
                tx,
                &hash,
                &Token {
                    role: Role::Admin,
                    name: "admin".into(),
                    created_at: now,
                    revoked: false,
                },
            )?;
            Ok(true)
        })?;
        Ok(made.then_some(secret))
    }

    /// Mints a token for `role` (admin, operator, viewer or enrollment).
    pub async fn mint_token(&self, role: Role, name: &str) -> Result<String> {
        if matches!(role, Role::Factory(_)) {
            return Err(CoordError::Invalid(
                "factory tokens come from enrollment".into(),
            ));
        }
        let secret = auth::new_secret();
        let hash = auth::hash_secret(&secret);
        let token = Token {
            role,
            name: name.into(),
            created_at: self.now(),
            revoked: false,
        };
        transact!(self.shared.store, |tx| repo::save_token(tx, &hash, &token))?;
        Ok(secret)
    }

    /// Who holds `secret`; revoked and unknown tokens are refused at once.
    pub async fn authenticate(&self, secret: &str) -> Result<Principal> {
        let hash = auth::hash_secret(secret);
        let token = transact!(self.shared.store, |tx| repo::load_token(tx, &hash).await)?;
        match token {
            Some(t) if !t.revoked => Ok(Principal {
                role: t.role,
                name: t.name,
            }),
            Some(_) => Err(CoordError::Unauthorized("token revoked".into())),
            None => Err(CoordError::Unauthorized("unknown token".into())),
        }
    }

    /// Spends an enrollment token to register a factory; returns its id and own token.
    pub async fn enroll(
        &self,
        enrollment_secret: &str,
        req: EnrollRequest,
    ) -> Result<EnrollResponse> {
        if req.slots == 0 || req.slots > 1024 {
            return Err(CoordError::Invalid("slots must be within 1..=1024".into()));
        }
        if req.name.trim().is_empty() || req.name.len() > 128 {
            return Err(CoordError::Invalid(
                "name must be 1 to 128 characters".into(),
            ));
        }
        if !req.cost_per_hour_usd.is_finite() || req.cost_per_hour_usd < 0.0 {
            return Err(CoordError::Invalid(
                "cost_per_hour_usd must be a non-negative number".into(),
            ));
        }
        let enroll_hash = auth::hash_secret(enrollment_secret);
        let id = FactoryId(Uuid::now_v7());
        let secret = auth::new_secret();
        let hash = auth::hash_secret(&secret);
        let now = self.now();
        let mut capabilities = req.capabilities.clone();
        capabilities.sort();
        capabilities.dedup();
        let factory = Factory {
            id,
            name: req.name.clone(),
            os: req.os.clone(),
            arch: req.arch.clone(),
            capabilities,
            engine_classes: req.engine_classes.clone(),
            slots: req.slots,
            cost_per_hour_micros: (req.cost_per_hour_usd * 1e6) as u64,
            status: FactoryStatus::Online,
            enrolled_at: now,
            last_heartbeat: now,
            slots_busy: 0,
            token_hash: hash,
        };
        transact!(self.shared.store, |tx| {
            let mut t = match repo::load_token(tx, &enroll_hash).await? {
                Some(t) if t.role == Role::Enrollment && !t.revoked => t,
                Some(t) if t.revoked => {
                    return Err(CoordError::Unauthorized(
                        "enrollment token already used or revoked".into(),
                    ));
                }
                Some(_) => return Err(CoordError::Forbidden("not an enrollment token".into())),
                None => return Err(CoordError::Unauthorized("unknown token".into())),
            };
            t.revoked = true;
            repo::save_token(tx, &enroll_hash, &t)?;
            repo::save_factory(tx, &factory)?;
            repo::save_token(
                tx,
                &hash,
                &Token {
                    role: Role::Factory(id),
                    name: req.name.clone(),
                    created_at: now,
                    revoked: false,
                },
            )?;
            Ok(())
        })?;
        tracing::info!(factory_id = %id, name = %req.name, slots = req.slots, "factory enrolled");
        Ok(EnrollResponse {
            factory_id: id,
            token: secret,
        })
    }

    /// Replaces a factory's token; the old one stops working at once.
    pub async fn rotate_factory(&self, id: FactoryId) -> Result<String> {
        let secret = auth::new_secret();
        let hash = auth::hash_secret(&secret);
        let now = self.now();
        transact!(self.shared.store, |tx| {
            let mut f = repo::load_factory(tx, id)
                .await?
                .ok_or_else(|| CoordError::NotFound(format!("factory {id}")))?;
            if f.status == FactoryStatus::Revoked {
                return Err(CoordError::IllegalTransition {
                    subject: "factory",
                    command: "rotate",
                    state: "revoked",
                });
            }
            if let Some(mut old) = repo::load_token(tx, &f.token_hash).await? {
                old.revoked = true;
                repo::save_token(tx, &f.token_hash, &old)?;
            }
            f.token_hash = hash;
            repo::save_factory(tx, &f)?;
            repo::save_token(
                tx,
                &hash,
                &Token {
                    role: Role::Factory(id),
                    name: f.name.clone(),
                    created_at: now,
                    revoked: false,
                },
            )?;
            Ok(())
        })?;
        Ok(secret)
    }

    /// Revokes a factory: its token stops working at once; its leases expire and are reaped.
    pub async fn revoke_factory(&self, id: FactoryId) -> Result<()> {
        transact!(self.shared.store, |tx| {
            let mut f = repo::load_factory(tx, id)
                .await?
                .ok_or_else(|| CoordError::NotFound(format!("factory {id}")))?;
            if let Some(mut t) = repo::load_token(tx, &f.token_hash).await? {
                t.revoked = true;
                repo::save_token(tx, &f.token_hash, &t)?;
            }
            f.status = FactoryStatus::Revoked;
            repo::save_factory(tx, &f)?;
            Ok::<_, CoordError>(())
        })
    }

    pub async fn drain_factory(&self, id: FactoryId) -> Result<()> {
        let actor = self.shared.factory_actor(id).await?;
        ractor::call!(actor, FactoryMsg::Drain)
            .map_err(|e| CoordError::Unavailable(format!("factory actor: {e}")))?
    }

    pub async fn factories(&self) -> Result<Vec<Factory>> {
        Ok(transact!(self.shared.store, |tx| repo::factories(tx).await)?)
    }

    pub async fn factory(&self, id: FactoryId) -> Result<Factory> {
        transact!(self.shared.store, |tx| repo::load_factory(tx, id).await)?
            .ok_or_else(|| CoordError::NotFound(format!("factory {id}")))
    }

    // ---- factories' calls ----

    pub async fn heartbeat(
        &self,
        id: FactoryId,
        req: HeartbeatRequest,
    ) -> Result<HeartbeatResponse> {
        let actor = self.shared.factory_actor(id).await?;
        ractor::call!(actor, FactoryMsg::Heartbeat, req)
            .map_err(|e| CoordError::Unavailable(format!("factory actor: {e}")))?
    }

    /// Long-poll claim: up to `max` jobs for the factory, waiting up to `wait_ms` for work.
    pub async fn claim(&self, id: FactoryId, max: u32, wait_ms: u64) -> Result<Vec<ClaimedJob>> {
        let factory = self.factory(id).await?;
        match factory.status {
            FactoryStatus::Revoked => {
                return Err(CoordError::Unauthorized("factory revoked".into()));
            }
            FactoryStatus::Draining => return Ok(Vec::new()),
            FactoryStatus::Online | FactoryStatus::Offline => {}
        }
        let max = max.clamp(1, self.shared.config.claim_batch_max);
        let wait_ms = wait_ms.min(self.shared.config.claim_wait_max_ms);
        let (reply, answer) = oneshot::channel();
        // The claim says how many slots are free now (an agent asks for exactly that many);
        // the last heartbeat's count may predate the job that just ended, and a waiting
        // claim placed against it would wait out its long-poll with a slot free.
        let mut view = factory_view(&factory);
        view.slots_busy = view.slots.saturating_sub(max.min(view.slots));
        let ask = ClaimAsk {
            factory_id: id,
            factory: view,
            max,
            deadline: self.now() + wait_ms,
            reply,
        };
        self.shared.tell_scheduler(SchedulerMsg::Claim(ask));
        let started = std::time::Instant::now();
        let out = match tokio::time::timeout(Duration::from_millis(wait_ms + 5_000), answer).await {
            Ok(Ok(jobs)) => Ok(jobs),
            Ok(Err(_)) => Err(CoordError::Unavailable(
                "scheduler restarted; claim again".into(),
            )),
            Err(_) => Ok(Vec::new()),
        };
        metrics::histogram!("gigafactory_claim_latency_seconds")
            .record(started.elapsed().as_secs_f64());
        if let Ok(jobs) = &out {
            self.shared
                .claims_total
                .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        }
        out
    }

    /// A fenced factory write (renew, stage, complete, fail, release). `changed_paths` (with
    /// complete and fail) outside the job's scope become a warning event.
    pub async fn factory_write(
        &self,
        id: JobId,
        cmd: Command,
        request_id: String,
        changed_paths: Vec<String>,
    ) -> Result<LeaseAnswer> {
        if changed_paths.len() > CHANGED_PATHS_MAX {
            return Err(CoordError::Invalid(format!(
                "at most {CHANGED_PATHS_MAX} changed paths"
            )));
        }
        if request_id.is_empty() || request_id.len() > 128 {
            return Err(CoordError::Invalid(
                "request_id must be 1 to 128 characters".into(),
            ));
        }
        let actor = match &cmd {
            Command::Renew { factory, .. }
            | Command::Stage { factory, .. }
            | Command::Complete { factory, .. }
            | Command::Fail { factory, .. }
            | Command::Release { factory, .. } => format!("factory:{factory}"),
            _ => return Err(CoordError::Internal("not a factory write".into())),
        };
        let job = self
            .shared
            .apply(id, cmd, &actor, Some(request_id), changed_paths)
            .await?;
        Ok(lease_answer(&job))
    }

    pub async fn append_log(
        &self,
        factory: FactoryId,
        id: JobId,
        epoch: u64,
        chunk: LogChunk,
    ) -> Result<LeaseAnswer> {
        if chunk.data.len() > 64 * 1024 {
            return Err(CoordError::Invalid(
                "a log chunk holds at most 64 KiB".into(),
            ));
        }
        let job = self
            .shared
            .ask_job(id, |reply| JobMsg::AppendLog {
                factory,
                epoch,
                chunk: chunk.clone(),
                reply,
            })
            .await?;
        Ok(lease_answer(&job))
    }

    // ---- operators ----

    /// Submits one job; `parents` must exist. With an idempotency key used before, returns the
    /// job made then (`created` false).
    pub async fn submit(
        &self,
        spec: JobSpec,
        parents: Vec<JobId>,
        actor: &str,
    ) -> Result<(Job, bool)> {
        manifest::validate_job_spec(&spec).map_err(|e| {
            CoordError::InvalidManifest(e.0.iter().map(|p| p.to_string()).collect())
        })?;
        self.admit_submission()?;
        let now = self.now();
        let mut job = job::new_job(JobId(Uuid::now_v7()), spec, parents.clone(), now);
        let (id, created) = transact!(self.shared.store, |tx| {
            let mut all_done = true;
            for p in &parents {
                let parent = repo::load_job(tx, *p)
                    .await?
                    .ok_or_else(|| CoordError::Invalid(format!("parent job {p} does not exist")))?;
                all_done &= parent.state.is_success();
            }
            if all_done {
                job.state = JobState::Queued { not_before: now };
            }
            Ok::<_, CoordError>(repo::submit(tx, &job, actor).await?)
        })?;
        let stored = self.job(id).await?;
        if created {
            self.shared.publish_event(&stored, "submitted", actor);
        }
        if created && let Some(entry) = ReadyEntry::of(&stored) {
            self.shared.tell_scheduler(SchedulerMsg::JobReady(entry));
        }
        metrics::counter!("gigafactory_jobs_submitted_total").increment(u64::from(created));
        Ok((stored, created))
    }

    /// Submits a manifest, all or nothing: every job or none.
    pub async fn submit_manifest(&self, text: &str, actor: &str) -> Result<Vec<(String, JobId)>> {
        let m = manifest::parse_manifest(text).map_err(|e| {
            CoordError::InvalidManifest(e.0.iter().map(|p| p.to_string()).collect())
        })?;
        self.admit_submission()?;
        let now = self.now();
        let ids: BTreeMap<String, JobId> = m
            .jobs
            .iter()
            .map(|j| (j.key.clone(), JobId(Uuid::now_v7())))
            .collect();
        let jobs: Vec<Job> = m
            .jobs
            .iter()
            .map(|spec| {
                let parents = spec.deps.iter().map(|d| ids[d]).collect();
                job::new_job(ids[&spec.key], spec.clone(), parents, now)
            })
            .collect();
        let made = transact!(self.shared.store, |tx| {
            let mut made = Vec::with_capacity(jobs.len());
            // Keys resolve to the ids actually stored, which differ for idempotent repeats.
            let mut resolved: BTreeMap<JobId, JobId> = BTreeMap::new();
            for j in &jobs {
                let mut j = j.clone();
                j.parents = j
                    .parents
                    .iter()
                    .map(|p| resolved.get(p).copied().unwrap_or(*p))
                    .collect();
                let (id, created) = repo::submit(tx, &j, actor).await?;
                resolved.insert(j.id, id);
                made.push((j.spec.key.clone(), id, created));
            }
            Ok::<_, CoordError>(made)
        })?;
        for (_, id, created) in &made {
            if *created {
                let job = self.job(*id).await?;
                self.shared.publish_event(&job, "submitted", actor);
                if let Some(entry) = ReadyEntry::of(&job) {
                    self.shared.tell_scheduler(SchedulerMsg::JobReady(entry));
                }
            }
        }
        Ok(made.into_iter().map(|(k, id, _)| (k, id)).collect())
    }

    /// Refuses new work while the scheduler is far behind (`overloaded`, with `Retry-After`):
    /// the backpressure that keeps its mailbox bounded.
    fn admit_submission(&self) -> Result<()> {
        let backlog = self.shared.scheduler_backlog.load(Ordering::Relaxed);
        if backlog > self.shared.config.scheduler_backlog_max {
            metrics::counter!("gigafactory_submissions_refused_total").increment(1);
            return Err(CoordError::Overloaded(format!(
                "the scheduler has {backlog} messages waiting"
            )));
        }
        Ok(())
    }

    /// What the control plane's overview shows.
    pub async fn stats(&self) -> Result<Stats> {
        let factories = self.factories().await?;
        let count = |s: FactoryStatus| factories.iter().filter(|f| f.status == s).count();
        let scheduler = self.scheduler_snapshot().await?;
        let (p50, p99) = self
            .shared
            .claim_latencies
            .lock()
            .expect("latency lock poisoned")
            .percentiles_ms(usize::MAX);
        let live: Vec<&Factory> = factories
            .iter()
            .filter(|f| matches!(f.status, FactoryStatus::Online | FactoryStatus::Draining))
            .collect();
        Ok(Stats {
            now: self.now(),
            factories_online: count(FactoryStatus::Online),
            factories_draining: count(FactoryStatus::Draining),
            factories_offline: count(FactoryStatus::Offline),
            factories_revoked: count(FactoryStatus::Revoked),
            slots: live.iter().map(|f| f.slots).sum(),
            slots_busy: live.iter().map(|f| f.slots_busy).sum(),
            queued: scheduler.queued,
            queued_by_product: scheduler.queued_by_product,
            queued_by_capability: scheduler.queued_by_capability,
            running: scheduler.running,
            finished_total: self.shared.finished_total.load(Ordering::Relaxed),
            claims_total: self.shared.claims_total.load(Ordering::Relaxed),
            claim_latency_p50_ms: p50,
            claim_latency_p99_ms: p99,
        })
    }

    /// The overview's samples taken after `after` (all kept when `None`), oldest first, one
    /// every `stats_sample_interval_ms`.
    pub fn stats_history(&self, after: Option<u64>) -> Vec<StatsSample> {
        self.shared
            .stats_history
            .lock()
            .expect("stats history lock poisoned")
            .since(after)
    }

    /// This node's id in the cluster; it also names its fleet stream.
    pub fn node_id(&self) -> Uuid {
        self.shared.node_id
    }

    /// The fleet stream: kept events after `after`, and live ones. On a shared store it holds
    /// every node's events (see `fleet_relay`).
    pub fn follow_fleet(
        &self,
        after: Option<crate::fleet::FleetEventId>,
    ) -> (
        Vec<crate::fleet::FleetEvent>,
        tokio::sync::broadcast::Receiver<crate::fleet::FleetEvent>,
    ) {
        self.shared.fleet.subscribe(after)
    }

    /// Chaos testing: makes one actor fail as a panic would, so its supervisor must recover it.
    /// Admin only (the API checks); every injected fault is logged.
    pub async fn inject_fault(&self, target: FaultTarget) -> Result<()> {
        tracing::warn!(?target, "fault injected");
        let sent = match target {
            FaultTarget::Scheduler => self
                .shared
                .scheduler
                .read()
                .expect("scheduler lock poisoned")
                .as_ref()
                .map(|s| s.cast(SchedulerMsg::Crash).is_ok()),
            FaultTarget::Reaper => self
                .shared
                .reaper
                .read()
                .expect("reaper lock poisoned")
                .as_ref()
                .map(|r| r.cast(crate::reaper::ReaperMsg::Crash).is_ok()),
            FaultTarget::Job(id) => {
                self.job(id).await?;
                let (actor, _) = self.shared.job_actor(id).await?;
                Some(actor.send_message(JobMsg::Crash).is_ok())
            }
            FaultTarget::Factory(id) => {
                self.factory(id).await?;
                let actor = self.shared.factory_actor(id).await?;
                Some(actor.cast(FactoryMsg::Crash).is_ok())
            }
        };
        match sent {
            Some(true) => Ok(()),
            _ => Err(CoordError::Unavailable("that actor is restarting".into())),
        }
    }

    /// The cluster as the store sees it: nodes (with liveness) and shard owners.
    pub async fn cluster(&self) -> Result<ClusterView> {
        let now = self.now();
        let (nodes, shards) = transact!(self.shared.store, |tx| {
            let nodes = repo::nodes(tx).await?;
            let shards = repo::shard_leases(tx).await?;
            Ok::<_, gigafactory_storage::Error>((nodes, shards))
        })?;
        Ok(ClusterView {
            this_node: self.shared.node_id,
            now,
            nodes: nodes.into_iter().map(|n| (n.expires_at > now, n)).collect(),
            shards: shards
                .into_iter()
                .map(|(s, l)| (s, l.filter(|l| l.expires_at > now)))
                .collect(),
        })
    }

    pub async fn job(&self, id: JobId) -> Result<Job> {
        transact!(self.shared.store, |tx| repo::load_job(tx, id).await)?
            .ok_or_else(|| CoordError::NotFound(format!("job {id}")))
    }

    /// A page of jobs in creation order after `cursor`, filtered; the next cursor is set when
    /// more rows remain.
    pub async fn list_jobs(
        &self,
        filter: &JobFilter,
        cursor: Option<JobId>,
        limit: usize,
    ) -> Result<(Vec<Job>, Option<JobId>)> {
        let limit = limit.clamp(1, 500);
        let mut range = KeyRange::prefix(&keys::job_prefix());
        if let Some(c) = cursor {
            range.begin = KeyRange::single(&keys::job(c.0)).end;
        }
        let mut out = Vec::new();
        let mut scanned = 0;
        let mut last = None;
        while out.len() < limit && scanned < LIST_SCAN_MAX_ROWS {
            let rows = transact!(self.shared.store, |tx| tx
                .get_range(&range, RangeOptions::limit(500).snapshot())
                .await)?;
            let exhausted = rows.len() < 500;
            for (k, v) in &rows {
                scanned += 1;
                range.begin = KeyRange::single(k).end;
                let job: Job = codec::decode(v)?;
                last = Some(job.id);
                if filter.matches(&job) {
                    out.push(job);
                    if out.len() == limit {
                        break;
                    }
                }
            }
            if exhausted && (out.len() < limit || rows.is_empty()) {
                return Ok((out, None));
            }
        }
        Ok((out, last))
    }

    pub async fn events(&self, id: JobId, after: Option<u64>, limit: usize) -> Result<Vec<Event>> {
        self.job(id).await?;
        Ok(transact!(self.shared.store, |tx| repo::events(
            tx,
            id,
            after,
            limit.clamp(1, 1000)
        )
        .await)?)
    }

    /// Stored output after position `(attempt, seq)`, in order.
    pub async fn logs(
        &self,
        id: JobId,
        after: Option<(u32, u64)>,
        limit: usize,
    ) -> Result<Vec<LogLine>> {
        let mut range = keys::logs_of(id.0);
        if let Some((a, s)) = after {
            range.begin = KeyRange::single(&keys::log_chunk(id.0, a, s)).end;
        }
        let rows = transact!(self.shared.store, |tx| tx
            .get_range(
                &range,
                RangeOptions::limit(limit.clamp(1, 10_000)).snapshot()
            )
            .await)?;
        decode_log_rows(rows)
    }

    /// Like [`Coordinator::logs`], with a watch armed in the same transaction that fires when
    /// the job gets more output (through any node): a follower reads, waits on the watch, and
    /// reads again, missing nothing in between.
    pub async fn logs_watch(
        &self,
        id: JobId,
        after: Option<(u32, u64)>,
        limit: usize,
    ) -> Result<(Vec<LogLine>, gigafactory_storage::Watch)> {
        let mut range = keys::logs_of(id.0);
        if let Some((a, s)) = after {
            range.begin = KeyRange::single(&keys::log_chunk(id.0, a, s)).end;
        }
        let (rows, watch) = transact!(self.shared.store, |tx| {
            let rows = tx
                .get_range(
                    &range,
                    RangeOptions::limit(limit.clamp(1, 10_000)).snapshot(),
                )
                .await?;
            let watch = tx
                .watch(gigafactory_storage::WatchTarget::Key(keys::log_bytes(id.0)))
                .await?;
            Ok::<_, gigafactory_storage::Error>((rows, watch))
        })?;
        Ok((decode_log_rows(rows)?, watch))
    }

    pub async fn act(&self, id: JobId, action: OperatorAction, actor: &str) -> Result<Job> {
        if matches!(action, OperatorAction::Preempt { .. }) {
            return Err(CoordError::Invalid("preemption is the scheduler's".into()));
        }
        self.shared.operator_action(id, action, actor).await
    }

    /// A product's weights: its override (empty when none) and the resolved set the scheduler
    /// uses.
    pub async fn weights(
        &self,
        product: &str,
    ) -> Result<(
        gigafactory_core::scoring::WeightsOverride,
        gigafactory_core::scoring::Weights,
    )> {
        let o = transact!(self.shared.store, |tx| repo::load_weights(tx, product)
            .await)?
        .unwrap_or_default();
        let w = gigafactory_core::scoring::resolve_weights(&Default::default(), Some(&o), None)
            .map_err(|e| CoordError::Invalid(e.to_string()))?;
        Ok((o, w))
    }

    /// Replaces a product's weights override; refused whole if any weight is out of range.
    pub async fn set_weights(
        &self,
        product: &str,
        o: gigafactory_core::scoring::WeightsOverride,
    ) -> Result<gigafactory_core::scoring::Weights> {
        if product.is_empty()
            || product.len() > 128
            || !product
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(CoordError::Invalid(format!(
                "{product:?} is not a product name"
            )));
        }
        let w = gigafactory_core::scoring::resolve_weights(&Default::default(), Some(&o), None)
            .map_err(|e| CoordError::Invalid(e.to_string()))?;
        transact!(self.shared.store, |tx| repo::save_weights(tx, product, &o))?;
        self.shared
            .tell_scheduler(SchedulerMsg::WeightsChanged(product.to_string(), w));
        Ok(w)
    }

    /// Children of a job (ids and states), and its parents.
    pub async fn dag(&self, id: JobId) -> Result<(Job, Vec<Job>, Vec<Job>)> {
        let job = self.job(id).await?;
        let child_ids = transact!(self.shared.store, |tx| repo::children(tx, id).await)?;
        let mut children = Vec::new();
        for c in child_ids {
            children.push(self.job(c).await?);
        }
        let mut parents = Vec::new();
        for p in &job.parents {
            parents.push(self.job(*p).await?);
        }
        Ok((job, parents, children))
    }

    pub async fn add_child(
        &self,
        parent: JobId,
        spec: JobSpec,
        actor: &str,
    ) -> Result<(Job, bool)> {
        self.job(parent).await?;
        self.submit(spec, vec![parent], actor).await
    }
}

/// Stored log chunks as lines: one byte naming the stream, then the text.
fn decode_log_rows(rows: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Vec<LogLine>> {
    rows.into_iter()
        .map(|(k, v)| {
            let (_, attempt, seq) = keys::log_chunk_parts(&k)?;
            let stream = if v.first() == Some(&b'e') {
                LogStream::Stderr
            } else {
                LogStream::Stdout
            };
            let data = String::from_utf8_lossy(v.get(1..).unwrap_or_default()).into_owned();
            Ok(LogLine {
                attempt,
                seq,
                stream,
                data,
            })
        })
        .collect::<std::result::Result<_, gigafactory_storage::Error>>()
        .map_err(Into::into)
}

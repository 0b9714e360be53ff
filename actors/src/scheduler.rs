//! `SchedulerActor`: places queued jobs on factories. It keeps an in-memory index of queued
//! jobs (packed entries, not actors: `ready_queue.rs`), answers claims —
//! long-polls wait here until work arrives — and the picks of ends that lease the next job
//! (its messages: `msg.rs`), lets `core::placement` choose among the candidates (fair share
//! across products, `core::fair_share`), commits the claims (`claims.rs`), skips jobs a budget or a limit holds (`holds.rs`), and preempts
//! lower-priority work when a job cannot be placed (`preemption.rs`). On a shared store it
//! follows what other nodes make ready (`store_sync.rs`); from every store it reads running
//! jobs, factories and product settings (`fleet_view.rs`), and it answers explanations
//! (`explain.rs`). The index is rebuilt from the store's ready index whenever the actor
//! starts, so a restart loses nothing: every change it hears about was committed first.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use gigafactory_core::fair_share::Standing;
use gigafactory_core::job::{FactoryId, JobId, Millis};
use gigafactory_core::load::{Shape, ShapeQueue};
use gigafactory_core::outcomes::Outcomes;
use gigafactory_core::placement;
use gigafactory_core::scoring::{self, FactoryView, JobView, Weights};
use gigafactory_storage::repo::{self, ReadyEntry};
use gigafactory_storage::transact;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::context::Context;
use crate::ready_queue::{Queued, ReadyQueue};

mod claims;
mod explain;
mod fleet_view;
mod holds;
mod msg;
mod preemption;
mod store_sync;

pub(crate) use claims::{Granted, claim_commands, settle, unclaim, unsettled};
pub use explain::Rivals;
pub(crate) use fleet_view::FleetRead;
use fleet_view::{Running, read_fleet, running_view};
use holds::{Holds, load_holds};
pub(crate) use msg::{ClaimAsk, PickAsk, Picked, SchedulerMsg};
use store_sync::{Resync, read_ready_index, watch_budgets_signal, watch_ready_signal};

/// Ready-queue entries examined per shape and placement: within a shape every job fits the
/// factory, so only jobs not yet due or reserved for another factory are skipped.
const SCAN_MAX_ENTRIES: usize = 4096;
/// How often the scheduler expires long-polls and looks for preemptions.
const TICK_MS: u64 = 250;
/// On a shared store a node places a newly ready job of a shard another node owns only after
/// this long, so the nodes do not all race to lease the same job (a lost race still costs the
/// store a commit); the owner, if it has a claim waiting, takes it first.
const CLAIM_AFFINITY_GRACE_MS: u64 = TICK_MS;
/// Ready-index rows a refresh reads from the store: the head of the queue, where placements
/// come from. Kept small because a refresh runs on every ready signal on every node (a deep
/// queue must not make each submission cost every node a read of thousands of rows); jobs
/// further back come with the next resync (`resync_interval_ms`).
const REFRESH_ROWS: usize = 1_024;
/// Rows per page of a resync, which reads the whole index in the background.
const RESYNC_PAGE_ROWS: usize = 10_000;
/// Shortest pause between two refreshes, so a burst of submissions on other nodes costs one
/// scan rather than one per commit.
const REFRESH_MIN_INTERVAL_MS: u64 = 20;

/// What the scheduler holds, for tests, `/readyz` and the UI.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerSnapshot {
    pub queued: usize,
    /// Queued jobs per product and per required capability, for the control plane.
    pub queued_by_product: std::collections::BTreeMap<String, usize>,
    pub queued_by_capability: std::collections::BTreeMap<String, usize>,
    pub waiting_claims: usize,
    pub running: usize,
    /// Running jobs (every lease the scheduler knows of, the fleet's) per product.
    pub running_by_product: std::collections::BTreeMap<String, u32>,
    pub preemptions_pending: usize,
    /// Budgets holding their jobs from placement.
    pub budget_holds: usize,
    /// Limit keys holding their jobs from placement.
    pub limit_holds: usize,
    /// Per shape: queued (with the oldest) and running, for metrics and scaling hints.
    pub shapes: Vec<ShapeQueue>,
}

/// How long the per-shape picture is reused before the queue is walked again.
const SHAPES_KEPT_MS: Millis = 1_000;

pub(crate) struct SchedulerActor;

pub(crate) struct SchedulerState {
    ctx: Arc<Context>,
    queue: ReadyQueue,
    waiters: VecDeque<ClaimAsk>,
    running: Running,
    /// Fair share: the shares in force and the slots each product holds.
    standing: Standing,
    /// Each factory's recent outcomes per product (this node's leases), for the success
    /// factor.
    outcomes: Outcomes,
    factories: HashMap<FactoryId, FactoryView>,
    /// A job that preempted, and the factory whose slot it waits for.
    reserved: HashMap<FactoryId, JobId>,
    /// Resolved weights of products that override the defaults.
    weights: HashMap<String, Weights>,
    by_product: HashMap<String, usize>,
    by_capability: HashMap<String, usize>,
    /// While a resync runs: the jobs it found in the store so far, and the jobs this node
    /// queued or dequeued itself meanwhile (newer than what the resync read, so left alone).
    resync: Option<Resync>,
    holds: Holds,
    /// The last per-shape picture and when it was taken: it costs a pass over the queue, and
    /// scrapes and pages ask for it often.
    shapes: Option<(Millis, Vec<ShapeQueue>)>,
}

impl Actor for SchedulerActor {
    type Msg = SchedulerMsg;
    type State = SchedulerState;
    type Arguments = Arc<Context>;

    async fn pre_start(
        &self,
        myself: ActorRef<SchedulerMsg>,
        ctx: Arc<Context>,
    ) -> Result<SchedulerState, ActorProcessingErr> {
        // Whatever waited in a crashed predecessor's mailbox is lost; the store has it all.
        ctx.actors.scheduler_backlog.store(0, Ordering::Relaxed);
        let mut state = SchedulerState {
            ctx: ctx.clone(),
            queue: ReadyQueue::default(),
            waiters: VecDeque::new(),
            running: Running::default(),
            outcomes: Outcomes::default(),
            standing: Standing {
                enabled: ctx.config.fair_share,
                shares: ctx.config.shares.clone(),
                running: Default::default(),
            },
            factories: HashMap::new(),
            reserved: HashMap::new(),
            weights: HashMap::new(),
            by_product: HashMap::new(),
            by_capability: HashMap::new(),
            resync: None,
            holds: Holds::default(),
            shapes: None,
        };
        for (product, o) in transact!(ctx.store, |tx| repo::all_weights(tx).await)? {
            match scoring::resolve_weights(&Weights::default(), Some(&o), None) {
                Ok(w) => {
                    state.weights.insert(product, w);
                }
                Err(e) => {
                    tracing::error!(product, error = %e, "stored weights are invalid; using the defaults")
                }
            }
        }
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = transact!(ctx.store, |tx| repo::ready_page(
                tx,
                after.as_deref(),
                10_000
            )
            .await)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (_, entry) in page {
                state.insert(entry);
            }
        }
        tracing::info!(
            queued = state.queue.len(),
            "scheduler index rebuilt from the store"
        );
        myself.send_interval(Duration::from_millis(TICK_MS), || SchedulerMsg::Tick);
        read_fleet(ctx.clone(), myself.clone());
        myself.send_interval(
            Duration::from_millis(ctx.config.fleet_refresh_ms.max(TICK_MS)),
            || SchedulerMsg::FleetTick,
        );
        load_holds(ctx.clone(), myself.clone());
        myself.send_interval(
            Duration::from_millis(ctx.config.budget_refresh_ms.max(TICK_MS)),
            || SchedulerMsg::BudgetTick,
        );
        if ctx.config.shared_store {
            watch_ready_signal(ctx.clone(), myself.clone());
            watch_budgets_signal(ctx.clone(), myself.clone());
            myself.send_interval(
                Duration::from_millis(ctx.config.resync_interval_ms.max(TICK_MS)),
                || SchedulerMsg::Resync,
            );
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<SchedulerMsg>,
        msg: SchedulerMsg,
        state: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        if msg.sent_by_tell() {
            let before = state
                .ctx
                .actors
                .scheduler_backlog
                .fetch_sub(1, Ordering::Relaxed);
            debug_assert!(
                before > 0,
                "a message counted on receipt was not counted on send"
            );
        }
        match msg {
            SchedulerMsg::JobReady(entry) => {
                state.insert(entry);
                state.serve_waiters(&myself);
            }
            SchedulerMsg::JobGone(id) => {
                state.remove(id);
            }
            SchedulerMsg::LeaseEnded { id, outcome } => {
                state.running.remove(&mut state.standing, &id);
                if let Some((factory, product, ok)) = outcome {
                    state.outcomes.record(factory.0.as_u128(), &product, ok);
                }
                if state.holds.lease_ended() {
                    state.serve_waiters(&myself);
                }
            }
            SchedulerMsg::Claim(ask) => state.claim(&myself, ask),
            SchedulerMsg::Pick(mut ask) => {
                ask.factory.success_by_product = state.outcomes.of(ask.factory_id.0.as_u128());
                state.factories.insert(ask.factory_id, ask.factory.clone());
                let now = state.ctx.now();
                let picked = state.place(ask.factory_id, &ask.factory, ask.max, now);
                if let Err(picked) = ask.reply.send(picked) {
                    state.unclaimed(&myself, picked.into_iter().map(|(e, _)| e));
                }
            }
            SchedulerMsg::Unclaimed(entries) => state.unclaimed(&myself, entries),
            SchedulerMsg::Claimed { factory, jobs } => {
                for (entry, at) in jobs {
                    state.reserved.retain(|_, j| *j != entry.id);
                    let view = running_view(entry.view(), factory, at, at);
                    state.running.insert(&mut state.standing, entry.id, view);
                }
            }
            SchedulerMsg::WeightsChanged(product, w) => {
                state.weights.insert(product, w);
            }
            SchedulerMsg::ShareChanged(product, share) => {
                state.standing.shares.insert(product, share);
            }
            SchedulerMsg::FleetTick => read_fleet(state.ctx.clone(), myself.clone()),
            SchedulerMsg::FleetRead(read) => state.fleet_read(*read),
            SchedulerMsg::Rivals {
                job,
                factories,
                reply,
            } => {
                let _ = reply.send(state.rivals(job, &factories));
            }
            SchedulerMsg::FactorySeen(id, view) => {
                // A claim waiting since before this heartbeat learns what the factory holds
                // warm now (its free slots are the claim's own).
                for ask in state.waiters.iter_mut().filter(|w| w.factory_id == id) {
                    ask.factory.warm_repos = view.warm_repos.clone();
                }
                state.factories.insert(id, view);
            }
            SchedulerMsg::FactoryUnavailable(id) => state.factory_unavailable(id),
            SchedulerMsg::Refresh => {
                state.refresh().await?;
                state.serve_waiters(&myself);
            }
            SchedulerMsg::Resync => {
                if state.resync.is_none() {
                    state.resync = Some(Resync::default());
                    read_ready_index(state.ctx.clone(), myself.clone());
                }
            }
            SchedulerMsg::ResyncPage { entries, last } => {
                state.resync_page(entries, last);
                state.serve_waiters(&myself);
            }
            SchedulerMsg::BudgetsChanged | SchedulerMsg::BudgetTick => {
                load_holds(state.ctx.clone(), myself.clone())
            }
            SchedulerMsg::HoldsLoaded(holds) => {
                if state.holds.replace(holds) {
                    state.serve_waiters(&myself);
                }
            }
            SchedulerMsg::Held(held) => {
                for (entry, hold) in held {
                    state.holds.set(hold);
                    state.insert(entry);
                }
            }
            SchedulerMsg::Limited(limited) => {
                let now = state.ctx.now();
                for (entry, hold) in limited {
                    state.holds.limit(&hold, now);
                    state.insert(entry);
                }
            }
            SchedulerMsg::BudgetReached(crossing) => state.budget_reached(crossing).await,
            SchedulerMsg::Tick => {
                if state.holds.expire(state.ctx.now()) {
                    load_holds(state.ctx.clone(), myself.clone());
                }
                state.expire_waiters();
                state.consider_preemption().await;
                state.serve_waiters(&myself);
            }
            SchedulerMsg::Crash => return Err("fault injected: scheduler crash".into()),
            SchedulerMsg::Snapshot(reply) => {
                let _ = reply.send(SchedulerSnapshot {
                    queued: state.queue.len(),
                    queued_by_product: state
                        .by_product
                        .iter()
                        .map(|(k, v)| (k.clone(), *v))
                        .collect(),
                    queued_by_capability: state
                        .by_capability
                        .iter()
                        .map(|(k, v)| (k.clone(), *v))
                        .collect(),
                    waiting_claims: state.waiters.len(),
                    running: state.running.len(),
                    running_by_product: state.standing.running.clone(),
                    preemptions_pending: state.reserved.len(),
                    budget_holds: state.holds.len(),
                    limit_holds: state.holds.limits_len(),
                    shapes: state.shape_queues(),
                });
            }
        }
        metrics::gauge!(crate::metrics::QUEUED_JOBS).set(state.queue.len() as f64);
        Ok(())
    }
}

impl SchedulerState {
    fn weights_of(&self, product: &str) -> &Weights {
        gigafactory_core::waiting::weights_of(&self.weights, product)
    }

    fn insert(&mut self, mut entry: ReadyEntry) {
        // As the queue gives it back, so counting it in and out agrees.
        entry.capabilities.sort_unstable();
        entry.capabilities.dedup();
        if let Some(r) = &mut self.resync {
            r.touched.insert(entry.id);
        }
        self.count(&entry, 1);
        if let Some(old) = self.queue.insert(entry) {
            self.count(&old, -1);
        }
    }

    fn remove(&mut self, id: JobId) -> Option<ReadyEntry> {
        if let Some(r) = &mut self.resync {
            r.touched.insert(id);
        }
        let entry = self.queue.remove(id)?;
        self.count(&entry, -1);
        Some(entry)
    }

    /// Each shape's queue and running jobs, shapes with either; at most `SHAPES_KEPT_MS` old.
    fn shape_queues(&mut self) -> Vec<ShapeQueue> {
        let now = self.ctx.now();
        if let Some((at, kept)) = &self.shapes
            && now.saturating_sub(*at) < SHAPES_KEPT_MS
        {
            return kept.clone();
        }
        let mut shapes: HashMap<Shape, ShapeQueue> = HashMap::new();
        let holds = &self.holds;
        for (shape, queued, runnable, oldest_ready_at) in
            self.queue.depths(now, |q| !holds.holds(q, now))
        {
            shapes.insert(
                shape.clone(),
                ShapeQueue {
                    shape,
                    queued,
                    runnable,
                    oldest_ready_at,
                    running: 0,
                },
            );
        }
        for (_, r) in self.running.iter() {
            let shape = Shape::new(&r.job.capabilities, r.job.engine_class.as_deref());
            shapes
                .entry(shape.clone())
                .or_insert_with(|| ShapeQueue::empty(shape))
                .running += 1;
        }
        let shapes: Vec<ShapeQueue> = shapes.into_values().collect();
        self.shapes = Some((now, shapes.clone()));
        shapes
    }

    /// Keeps the per-product and per-capability queue counts in step with the index.
    fn count(&mut self, entry: &ReadyEntry, delta: isize) {
        let bump = |m: &mut HashMap<String, usize>, k: &str| {
            let n = m.entry(k.to_string()).or_default();
            *n = n.saturating_add_signed(delta);
            if *n == 0 {
                m.remove(k);
            }
        };
        bump(&mut self.by_product, &entry.product);
        for c in &entry.capabilities {
            bump(&mut self.by_capability, c);
        }
    }

    /// Puts back entries whose claims were not committed, and places them.
    fn unclaimed(
        &mut self,
        myself: &ActorRef<SchedulerMsg>,
        entries: impl IntoIterator<Item = ReadyEntry>,
    ) {
        for e in entries {
            self.insert(e);
        }
        self.serve_waiters(myself);
    }

    /// Picks up to `max` jobs for the factory `factory_id`, removing them from the index.
    /// Which job goes first is `core::placement`'s choice among the best candidates of every
    /// shape the factory fits.
    fn place(
        &mut self,
        factory_id: FactoryId,
        factory: &FactoryView,
        max: u32,
        now: Millis,
    ) -> Picked {
        let mut factory = factory.clone();
        let mut picked = Vec::new();
        // This claim's picks count as running before they commit, so a claim of several
        // slots splits them by share too.
        let mut standing = self.standing.clone();
        // A job that preempted for this factory's slot goes first.
        if let Some(job) = self.reserved.get(&factory_id).copied()
            && let Some(view) = self.queue.get(job).map(|q| q.view())
            && scoring::eligible(&view, &factory)
            && let Some(entry) = self.remove(job)
        {
            let breakdown =
                scoring::score_candidate(&view, &factory, self.weights_of(&view.product), now);
            factory.slots_busy += 1;
            standing.add(&entry.product);
            picked.push((entry, breakdown));
        }
        let reserved_elsewhere: Vec<JobId> = self
            .reserved
            .iter()
            .filter(|(f, _)| **f != factory_id)
            .map(|(_, j)| *j)
            .collect();
        let shapes = self.queue.fitting(&factory);
        let owned = self.ctx.owned_shards();
        let mine_or_waited = |e: &Queued| {
            owned.as_ref().is_none_or(|owned| {
                owned.contains(&gigafactory_core::cluster::shard_of(e.id.0))
                    || now >= e.created_at.max(e.not_before) + CLAIM_AFFINITY_GRACE_MS
            })
        };
        while (picked.len() as u32) < max && factory.slots_busy < factory.slots {
            let (ids, views): (Vec<JobId>, Vec<JobView>) = self
                .queue
                .candidates(
                    &shapes,
                    now,
                    SCAN_MAX_ENTRIES,
                    self.ctx.config.placement_candidates_max,
                    |e| {
                        !reserved_elsewhere.contains(&e.id)
                            && mine_or_waited(e)
                            && !self.holds.holds(e, now)
                    },
                )
                .into_iter()
                .map(|e| (e.id, e.view()))
                .unzip();
            let weights = |product: &str| self.weights_of(product);
            let Some(choice) = placement::choose(&views, &factory, weights, &standing, now) else {
                break;
            };
            let Some(entry) = self.remove(ids[choice.index]) else {
                break;
            };
            factory.slots_busy += 1;
            standing.add(&entry.product);
            picked.push((entry, choice.breakdown));
        }
        picked
    }

    fn claim(&mut self, myself: &ActorRef<SchedulerMsg>, mut ask: ClaimAsk) {
        ask.factory.success_by_product = self.outcomes.of(ask.factory_id.0.as_u128());
        self.factories.insert(ask.factory_id, ask.factory.clone());
        let now = self.ctx.now();
        let picked = self.place(ask.factory_id, &ask.factory, ask.max, now);
        if !picked.is_empty() || ask.deadline <= now {
            self.commit(myself, ask, picked, now);
        } else if self.waiters.len() >= self.ctx.config.claim_waiters_max {
            // Bounded: answer at once rather than hold the connection.
            let _ = ask.reply.send(Vec::new());
        } else {
            self.waiters.push_back(ask);
        }
    }

    fn serve_waiters(&mut self, myself: &ActorRef<SchedulerMsg>) {
        let now = self.ctx.now();
        self.order_waiters_for_head(now);
        let mut still = VecDeque::with_capacity(self.waiters.len());
        while let Some(ask) = self.waiters.pop_front() {
            if ask.reply.is_closed() {
                continue;
            }
            if self.queue.is_empty() {
                still.push_back(ask);
                continue;
            }
            let picked = self.place(ask.factory_id, &ask.factory, ask.max, now);
            if picked.is_empty() {
                still.push_back(ask);
            } else {
                self.commit(myself, ask, picked, now);
            }
        }
        self.waiters = still;
    }

    /// Several factories waiting: the one the first job in placement order scores best on
    /// (warm for it, cheaper, less loaded, better at its product) asks first, so a job goes to
    /// its best factory rather than to whichever asked first. The order is stable on ties.
    fn order_waiters_for_head(&mut self, now: Millis) {
        if self.waiters.len() < 2 {
            return;
        }
        let Some(head) = self.queue.head(now, |e| !self.holds.holds(e, now)) else {
            return;
        };
        let view = head.view();
        let weights = *self.weights_of(&view.product);
        let weights = &weights;
        let score = |ask: &ClaimAsk| {
            if scoring::eligible(&view, &ask.factory) {
                scoring::score_candidate(&view, &ask.factory, weights, now).total
            } else {
                f64::NEG_INFINITY
            }
        };
        let mut scored: Vec<(f64, ClaimAsk)> =
            self.waiters.drain(..).map(|w| (score(&w), w)).collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        self.waiters = scored.into_iter().map(|(_, w)| w).collect();
    }

    /// Answers a factory's waiting claims empty and forgets its shape, so nothing is placed
    /// on it until it claims again (a draining factory's agent does not).
    fn factory_unavailable(&mut self, id: FactoryId) {
        self.factories.remove(&id);
        let (gone, kept): (VecDeque<_>, VecDeque<_>) =
            self.waiters.drain(..).partition(|w| w.factory_id == id);
        self.waiters = kept;
        for w in gone {
            let _ = w.reply.send(Vec::new());
        }
    }

    fn expire_waiters(&mut self) {
        let now = self.ctx.now();
        let (expired, kept): (VecDeque<_>, VecDeque<_>) = self
            .waiters
            .drain(..)
            .partition(|w| w.deadline <= now || w.reply.is_closed());
        self.waiters = kept;
        for w in expired {
            let _ = w.reply.send(Vec::new());
        }
    }
}

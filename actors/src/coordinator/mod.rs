//! The coordinator node's handle: what the API calls. Each file holds one concern — tokens
//! and the audit log (`tokens.rs`), the fleet of factories (`factories.rs`), leases and the factories' fenced
//! writes (`leases.rs`), submissions (`submit.rs`), operators' actions and settings
//! (`operate.rs`), money — usage and budgets (`budgets.rs`) —, artifacts (`artifacts.rs`), work in from trackers and
//! what they are told (`intake.rs`), schedules (`schedules.rs`; a run: `schedule_fire.rs`), concurrency and rate limits (`limits.rs`), secrets sealed, listed and handed to a
//! lease holder (`secrets.rs`), why a job
//! is not running (`explain.rs`), questions to an operator (`questions.rs`), and reads of jobs, logs and the node (`reads.rs`,
//! `observe.rs`, and its state on `/metrics`: `gauges.rs`). Every method turns a request into a store transaction, or a message to the
//! actor that serializes it; none keeps state of its own.

mod artifacts;
mod budgets;
mod explain;
mod factories;
mod gauges;
mod intake;
mod leases;
mod limits;
mod observe;
mod operate;
mod questions;
mod reads;
mod schedule_fire;
mod schedules;
mod secrets;
mod submit;
mod tokens;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use gigafactory_storage::{AnyStore, repo, transact};
use ractor::Actor;

pub use explain::WhyNotRunning;
pub use gauges::{GaugeFamily, GaugeSample};
pub use intake::IntakeOutcome;
pub use observe::{AutoscaleView, ClusterView, FaultTarget, Stats};
pub use operate::OperatorAction;
pub(crate) use questions::time_out_questions;
pub(crate) use schedule_fire::{Fired, Firing};
pub use tokens::{Minted, Principal, Session, TokenInfo};

use crate::clock::Clock;
use crate::config::Config;
use crate::context::{Context, Edges};
use crate::error::{CoordError, Result};
use crate::scheduler::{SchedulerMsg, SchedulerSnapshot};
use crate::supervisor::Supervisor;

/// A running coordinator node. Cheap to clone.
#[derive(Clone)]
pub struct Coordinator {
    ctx: Arc<Context>,
}

impl Coordinator {
    /// Starts the actor tree on `store`, sending no tracker callbacks, keeping artifacts in
    /// memory.
    pub async fn start(store: AnyStore, config: Config, clock: Arc<dyn Clock>) -> Result<Self> {
        Self::start_with(store, config, Edges::with_clock(clock)).await
    }

    /// Starts the actor tree on `store`, reaching the world through `edges`.
    pub async fn start_with(store: AnyStore, config: Config, edges: Edges) -> Result<Self> {
        let ctx = Arc::new(Context::new(store, config, edges));
        let (sup, _) = Actor::spawn(None, Supervisor, ctx.clone())
            .await
            .map_err(|e| CoordError::Internal(format!("cannot start the supervisor: {e}")))?;
        *ctx.actors
            .supervisor
            .write()
            .expect("supervisor lock poisoned") = Some(sup);
        Ok(Coordinator { ctx })
    }

    /// The handle of a node already running, for its own actors (the schedule actor fires
    /// through the same paths as the API).
    pub(crate) fn of(ctx: Arc<Context>) -> Self {
        Coordinator { ctx }
    }

    /// Stops the actor tree.
    pub fn stop(&self) {
        if let Some(s) = self
            .ctx
            .actors
            .supervisor
            .write()
            .expect("supervisor lock poisoned")
            .take()
        {
            s.stop(Some("shutdown".into()));
        }
    }

    pub fn config(&self) -> &Config {
        &self.ctx.config
    }

    pub fn now(&self) -> u64 {
        self.ctx.now()
    }

    pub fn store_engine(&self) -> &'static str {
        self.ctx.store.engine()
    }

    /// This node's id in the cluster; it also names its fleet stream.
    pub fn node_id(&self) -> uuid::Uuid {
        self.ctx.node_id
    }

    /// Ready to serve: the store answers and no actor has crash-looped within the last
    /// restart window.
    pub async fn ready(&self) -> Result<()> {
        if self.now() < self.ctx.unhealthy_until.load(Ordering::Relaxed) {
            return Err(CoordError::Unavailable("an actor is crash-looping".into()));
        }
        transact!(self.ctx.store, |tx| repo::admin_bootstrapped_at(tx).await)?;
        Ok(())
    }

    pub async fn scheduler_snapshot(&self) -> Result<SchedulerSnapshot> {
        let s = self
            .ctx
            .actors
            .scheduler()
            .ok_or_else(|| CoordError::Unavailable("scheduler restarting".into()))?;
        ractor::call!(s, SchedulerMsg::Snapshot)
            .map_err(|e| CoordError::Unavailable(format!("scheduler: {e}")))
    }
}

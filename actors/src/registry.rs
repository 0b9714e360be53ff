//! How the actors of a node reach each other: the singletons' current references (replaced
//! when the supervisor restarts one) and the virtual actors, one per active job and per
//! factory, activated on first use and forgotten when they stop. Every bound on a mailbox is
//! kept here: the scheduler's backlog and each job actor's pending commands.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use gigafactory_core::job::{FactoryId, JobId};
use ractor::{Actor, ActorRef};
use tokio::sync::oneshot;

use crate::context::Context;
use crate::error::{CoordError, Result};
use crate::factory_actor::{FactoryActor, FactoryMsg};
use crate::job_actor::{JobActor, JobActorArgs, JobMsg};
use crate::reaper::ReaperMsg;
use crate::scheduler::SchedulerMsg;
use crate::supervisor::SupervisorMsg;

/// A job actor and its mailbox count.
pub(crate) struct JobSlot {
    pub actor: ActorRef<JobMsg>,
    /// Commands sent and not yet handled: the mailbox bound.
    pub queued: Arc<AtomicUsize>,
}

#[derive(Default)]
pub(crate) struct Registry {
    pub supervisor: RwLock<Option<ActorRef<SupervisorMsg>>>,
    pub scheduler: RwLock<Option<ActorRef<SchedulerMsg>>>,
    /// Messages sent to the scheduler and not yet handled: its mailbox, bounded by refusing
    /// new submissions past `scheduler_backlog_max`.
    pub scheduler_backlog: AtomicUsize,
    pub reaper: RwLock<Option<ActorRef<ReaperMsg>>>,
    pub jobs: DashMap<JobId, JobSlot>,
    pub factories: DashMap<FactoryId, ActorRef<FactoryMsg>>,
    /// One activation at a time, so two callers never start two actors for one job.
    spawn_lock: tokio::sync::Mutex<()>,
}

impl Registry {
    pub fn scheduler(&self) -> Option<ActorRef<SchedulerMsg>> {
        self.scheduler
            .read()
            .expect("scheduler lock poisoned")
            .clone()
    }

    pub fn reaper(&self) -> Option<ActorRef<ReaperMsg>> {
        self.reaper.read().expect("reaper lock poisoned").clone()
    }

    /// Forgets a failed job or factory actor, so the next command activates a fresh one.
    pub fn forget(&self, id: ractor::ActorId) {
        self.jobs.retain(|_, slot| slot.actor.get_id() != id);
        self.factories.retain(|_, actor| actor.get_id() != id);
    }
}

impl Context {
    pub fn tell_scheduler(&self, msg: SchedulerMsg) {
        self.actors
            .scheduler_backlog
            .fetch_add(1, Ordering::Relaxed);
        if let Some(s) = self.actors.scheduler()
            && s.cast(msg).is_err()
        {
            self.actors
                .scheduler_backlog
                .fetch_sub(1, Ordering::Relaxed);
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
        self.actors
            .supervisor
            .read()
            .expect("supervisor lock poisoned")
            .as_ref()
            .map(|s| s.get_cell())
            .ok_or_else(|| CoordError::Unavailable("coordinator is stopping".into()))
    }

    /// The factory's actor, activated if it is not running.
    pub async fn factory_actor(self: &Arc<Self>, id: FactoryId) -> Result<ActorRef<FactoryMsg>> {
        if let Some(a) = self.actors.factories.get(&id) {
            return Ok(a.clone());
        }
        let _guard = self.actors.spawn_lock.lock().await;
        if let Some(a) = self.actors.factories.get(&id) {
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
        self.actors.factories.insert(id, actor.clone());
        Ok(actor)
    }

    /// The job's actor, activated if it is not running, with its mailbox counter.
    pub async fn job_actor(
        self: &Arc<Self>,
        id: JobId,
    ) -> Result<(ActorRef<JobMsg>, Arc<AtomicUsize>)> {
        if let Some(s) = self.actors.jobs.get(&id) {
            return Ok((s.actor.clone(), s.queued.clone()));
        }
        let _guard = self.actors.spawn_lock.lock().await;
        if let Some(s) = self.actors.jobs.get(&id) {
            return Ok((s.actor.clone(), s.queued.clone()));
        }
        let queued = Arc::new(AtomicUsize::new(0));
        let args = JobActorArgs {
            ctx: self.clone(),
            id,
            queued: queued.clone(),
        };
        let (actor, _) = Actor::spawn_linked(None, JobActor, args, self.supervisor_cell()?)
            .await
            .map_err(|e| CoordError::Internal(format!("cannot start job actor: {e}")))?;
        self.actors.jobs.insert(
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
    pub async fn ask_job<T: Send + 'static>(
        self: &Arc<Self>,
        id: JobId,
        make: impl Fn(ractor::RpcReplyPort<Result<T>>) -> JobMsg,
    ) -> Result<T> {
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
                self.actors
                    .jobs
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
}

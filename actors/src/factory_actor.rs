//! `FactoryActor`: one per enrolled factory seen by this node. It takes the factory's
//! heartbeats (persisting liveness and slot use), holds the commands waiting for it (cancel,
//! preempt, drain) until its next heartbeat, and marks it offline when heartbeats stop for
//! `heartbeat_window_ms`.

use std::sync::Arc;
use std::time::Duration;

use gigafactory_core::fleet::FactoryStatus;
use gigafactory_core::job::FactoryId;
use gigafactory_core::scoring::FactoryView;
use gigafactory_core::wire::{FactoryCommand, HeartbeatRequest, HeartbeatResponse};
use gigafactory_storage::repo;
use gigafactory_storage::transact;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::context::Context;
use crate::error::{CoordError, Result};
use crate::scheduler::SchedulerMsg;

/// Commands held for one factory at most; older ones are dropped first (a cancel is repeated
/// by the fenced answer the factory gets at its next write anyway).
const PENDING_COMMANDS_MAX: usize = 1024;

pub(crate) enum FactoryMsg {
    Heartbeat(HeartbeatRequest, RpcReplyPort<Result<HeartbeatResponse>>),
    /// Deliver at the next heartbeat.
    Enqueue(FactoryCommand),
    /// Stop taking new work.
    Drain(RpcReplyPort<Result<()>>),
    /// Take new work again after a drain; refused unless draining.
    Undrain(RpcReplyPort<Result<()>>),
    /// Mark offline if no heartbeat came since `seen`.
    LivenessCheck(u64),
    /// Fault injection (admin route): fail; the next heartbeat re-activates the factory.
    Crash,
}

pub(crate) struct FactoryActor;

pub(crate) struct FactoryActorState {
    ctx: Arc<Context>,
    id: FactoryId,
    pending: Vec<FactoryCommand>,
    beats: u64,
}

impl Actor for FactoryActor {
    type Msg = FactoryMsg;
    type State = FactoryActorState;
    type Arguments = (Arc<Context>, FactoryId);

    async fn pre_start(
        &self,
        _: ActorRef<FactoryMsg>,
        (ctx, id): (Arc<Context>, FactoryId),
    ) -> Result<FactoryActorState, ActorProcessingErr> {
        Ok(FactoryActorState {
            ctx,
            id,
            pending: Vec::new(),
            beats: 0,
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<FactoryMsg>,
        state: &mut FactoryActorState,
    ) -> Result<(), ActorProcessingErr> {
        state
            .ctx
            .actors
            .factories
            .remove_if(&state.id, |_, r| r.get_id() == myself.get_id());
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<FactoryMsg>,
        msg: FactoryMsg,
        state: &mut FactoryActorState,
    ) -> Result<(), ActorProcessingErr> {
        // No span is entered across the awaits below (it would leak into other tasks);
        // events carry factory_id.
        match msg {
            FactoryMsg::Heartbeat(req, reply) => {
                let outcome = state.heartbeat(req).await;
                let _ = reply.send(outcome);
                state.beats += 1;
                let seen = state.beats;
                myself.send_after(
                    Duration::from_millis(state.ctx.config.heartbeat_window_ms),
                    move || FactoryMsg::LivenessCheck(seen),
                );
            }
            FactoryMsg::Enqueue(cmd) => {
                if state.pending.len() >= PENDING_COMMANDS_MAX {
                    state.pending.remove(0);
                }
                state.pending.push(cmd);
            }
            FactoryMsg::Drain(reply) => {
                let outcome = state.set_status(FactoryStatus::Draining).await;
                if outcome.is_ok() {
                    state.pending.push(FactoryCommand::Drain);
                }
                let _ = reply.send(outcome);
            }
            FactoryMsg::Undrain(reply) => {
                let outcome = state.undrain().await;
                if outcome.is_ok() {
                    state.pending.retain(|c| *c != FactoryCommand::Drain);
                    state.pending.push(FactoryCommand::Undrain);
                }
                let _ = reply.send(outcome);
            }
            FactoryMsg::Crash => return Err("fault injected: factory actor crash".into()),
            FactoryMsg::LivenessCheck(seen) => {
                if seen == state.beats {
                    tracing::warn!(factory_id = %state.id, "heartbeats stopped: factory offline");
                    if let Err(e) = state.set_status(FactoryStatus::Offline).await {
                        tracing::error!(error = %e, "cannot mark factory offline");
                    }
                    myself.stop(Some("offline".into()));
                }
            }
        }
        Ok(())
    }
}

impl FactoryActorState {
    async fn heartbeat(&mut self, req: HeartbeatRequest) -> Result<HeartbeatResponse> {
        let now = self.ctx.now();
        let id = self.id;
        let factory = transact!(self.ctx.store, |tx| {
            let mut f = repo::load_factory(tx, id)
                .await?
                .ok_or_else(|| CoordError::NotFound(format!("factory {id}")))?;
            if f.status == FactoryStatus::Revoked {
                return Err(CoordError::Unauthorized("factory revoked".into()));
            }
            f.last_heartbeat = now;
            f.slots_busy = req.slots_busy.min(f.slots);
            if let Some(warm) = &req.warm {
                f.warm = warm.clone();
            }
            if f.status == FactoryStatus::Offline {
                f.status = FactoryStatus::Online;
            }
            repo::save_factory(tx, &f)?;
            Ok(f)
        })?;
        self.ctx
            .tell_scheduler(SchedulerMsg::FactorySeen(id, FactoryView::of(&factory)));
        let mut commands = std::mem::take(&mut self.pending);
        // Both follow the stored status, not only the commands kept in memory (lost when the
        // coordinator restarts): a draining factory is told again, an undrained one too.
        if factory.status == FactoryStatus::Draining && !commands.contains(&FactoryCommand::Drain) {
            commands.push(FactoryCommand::Drain);
        }
        if req.draining
            && factory.status != FactoryStatus::Draining
            && !commands.contains(&FactoryCommand::Undrain)
        {
            commands.push(FactoryCommand::Undrain);
        }
        Ok(HeartbeatResponse {
            commands,
            lease_ttl_ms: self.ctx.config.lease_ttl_ms,
        })
    }

    /// Back online from draining (only from draining: an offline or revoked factory is not
    /// made to look online), and seen by the scheduler again.
    async fn undrain(&mut self) -> Result<()> {
        let id = self.id;
        let factory = transact!(self.ctx.store, |tx| {
            let mut f = repo::load_factory(tx, id)
                .await?
                .ok_or_else(|| CoordError::NotFound(format!("factory {id}")))?;
            f.status = f
                .status
                .undrained()
                .map_err(|e| CoordError::Invalid(format!("factory {}: {e}", f.name)))?;
            repo::save_factory(tx, &f)?;
            Ok::<_, CoordError>(f)
        })?;
        self.ctx
            .tell_scheduler(SchedulerMsg::FactorySeen(id, FactoryView::of(&factory)));
        Ok(())
    }

    async fn set_status(&mut self, status: FactoryStatus) -> Result<()> {
        let id = self.id;
        transact!(self.ctx.store, |tx| {
            let mut f = repo::load_factory(tx, id)
                .await?
                .ok_or_else(|| CoordError::NotFound(format!("factory {id}")))?;
            if f.status != FactoryStatus::Revoked {
                f.status = status;
                repo::save_factory(tx, &f)?;
            }
            Ok::<_, CoordError>(())
        })?;
        if status != FactoryStatus::Online {
            // A claim it left waiting must not take work now.
            self.ctx
                .tell_scheduler(crate::scheduler::SchedulerMsg::FactoryUnavailable(id));
        }
        Ok(())
    }
}

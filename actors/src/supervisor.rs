//! `Supervisor`: the root of a node's actor tree. It restarts the scheduler, the reaper, the
//! outbox, the artifact sweeper, the schedule actor and, on a shared store, the membership and fleet relay actors when they fail — each
//! rebuilds what it holds from the store — and escalates a crash loop (more than
//! `restart_max` restarts within `restart_window_ms`) by marking the node unhealthy, which
//! `/readyz` reports until a whole window has passed without a crash loop. Job and factory actors are virtual: when one fails, the supervisor only
//! logs it; the next command for that job or factory activates a fresh one. ractor's default
//! (stop the supervisor when any child stops) would take the node down with one job. It also
//! samples the node's counters for the overview's history on a timer.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::context::Context;
use crate::fleet_relay::FleetRelayActor;
use crate::membership::MembershipActor;
use crate::outbox::OutboxActor;
use crate::reaper::ReaperActor;
use crate::schedule_actor::ScheduleActor;
use crate::scheduler::SchedulerActor;
use crate::sweeper::SweeperActor;

pub(crate) enum SupervisorMsg {
    /// Take a sample of the node's counters for the overview's history
    /// (`stats_sample_interval_ms`). The supervisor does it because it lives as long as the
    /// node and is never restarted, so the history is never lost.
    SampleStatsTick,
}

pub(crate) struct Supervisor;

pub(crate) struct SupervisorState {
    ctx: Arc<Context>,
    scheduler: Option<ActorCell>,
    reaper: Option<ActorCell>,
    membership: Option<ActorCell>,
    fleet_relay: Option<ActorCell>,
    outbox: Option<ActorCell>,
    sweeper: Option<ActorCell>,
    schedules: Option<ActorCell>,
    /// When singleton restarts happened, for crash-loop detection.
    restarts: VecDeque<u64>,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = Arc<Context>;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        ctx: Arc<Context>,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut state = SupervisorState {
            ctx,
            scheduler: None,
            reaper: None,
            membership: None,
            fleet_relay: None,
            outbox: None,
            sweeper: None,
            schedules: None,
            restarts: VecDeque::new(),
        };
        state.start_scheduler(&myself).await?;
        state.start_reaper(&myself).await?;
        state.start_outbox(&myself).await?;
        state.start_sweeper(&myself).await?;
        state.start_schedules(&myself).await?;
        if state.ctx.config.shared_store {
            state.start_membership(&myself).await?;
            state.start_fleet_relay(&myself).await?;
        }
        let every = Duration::from_millis(state.ctx.config.stats_sample_interval_ms.max(1));
        myself.send_interval(every, || SupervisorMsg::SampleStatsTick);
        Ok(state)
    }

    async fn handle(
        &self,
        _: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::SampleStatsTick => state.ctx.stats.sample(state.ctx.now()),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        evt: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, why) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => (cell, format!("failed: {err}")),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, format!("stopped: {}", reason.unwrap_or_default()))
            }
            _ => return Ok(()),
        };
        let id = cell.get_id();
        if state.scheduler.as_ref().is_some_and(|c| c.get_id() == id) {
            tracing::error!(why, "scheduler stopped; restarting it from the store");
            state.note_restart();
            state.start_scheduler(&myself).await?;
        } else if state.reaper.as_ref().is_some_and(|c| c.get_id() == id) {
            tracing::error!(why, "reaper stopped; restarting it");
            state.note_restart();
            state.start_reaper(&myself).await?;
        } else if state.outbox.as_ref().is_some_and(|c| c.get_id() == id) {
            tracing::error!(why, "outbox stopped; restarting it");
            state.note_restart();
            state.start_outbox(&myself).await?;
        } else if state.sweeper.as_ref().is_some_and(|c| c.get_id() == id) {
            tracing::error!(why, "artifact sweeper stopped; restarting it");
            state.note_restart();
            state.start_sweeper(&myself).await?;
        } else if state.schedules.as_ref().is_some_and(|c| c.get_id() == id) {
            tracing::error!(why, "schedule actor stopped; restarting it");
            state.note_restart();
            state.start_schedules(&myself).await?;
        } else if state.membership.as_ref().is_some_and(|c| c.get_id() == id) {
            tracing::error!(why, "membership stopped; restarting it");
            state.note_restart();
            state.start_membership(&myself).await?;
        } else if state.fleet_relay.as_ref().is_some_and(|c| c.get_id() == id) {
            tracing::error!(why, "fleet relay stopped; restarting it");
            state.note_restart();
            state.start_fleet_relay(&myself).await?;
        } else if why.starts_with("failed") {
            // Forget the dead actor so the next command activates a fresh one.
            state.ctx.actors.forget(id);
            // A job or factory actor: virtual, re-activated by its next command.
            tracing::warn!(actor = %id, why, "actor failed; it will be re-activated from the store");
            metrics::counter!(crate::metrics::ACTOR_FAILURES_TOTAL).increment(1);
        }
        Ok(())
    }
}

impl SupervisorState {
    async fn start_scheduler(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
    ) -> Result<(), ActorProcessingErr> {
        let (r, _) =
            Actor::spawn_linked(None, SchedulerActor, self.ctx.clone(), myself.get_cell()).await?;
        self.scheduler = Some(r.get_cell());
        *self
            .ctx
            .actors
            .scheduler
            .write()
            .expect("scheduler lock poisoned") = Some(r);
        Ok(())
    }

    async fn start_reaper(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
    ) -> Result<(), ActorProcessingErr> {
        let (r, _) =
            Actor::spawn_linked(None, ReaperActor, self.ctx.clone(), myself.get_cell()).await?;
        self.reaper = Some(r.get_cell());
        *self
            .ctx
            .actors
            .reaper
            .write()
            .expect("reaper lock poisoned") = Some(r);
        Ok(())
    }

    async fn start_outbox(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
    ) -> Result<(), ActorProcessingErr> {
        let (r, _) =
            Actor::spawn_linked(None, OutboxActor, self.ctx.clone(), myself.get_cell()).await?;
        self.outbox = Some(r.get_cell());
        Ok(())
    }

    async fn start_sweeper(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
    ) -> Result<(), ActorProcessingErr> {
        let (r, _) =
            Actor::spawn_linked(None, SweeperActor, self.ctx.clone(), myself.get_cell()).await?;
        self.sweeper = Some(r.get_cell());
        Ok(())
    }

    async fn start_schedules(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
    ) -> Result<(), ActorProcessingErr> {
        let (r, _) =
            Actor::spawn_linked(None, ScheduleActor, self.ctx.clone(), myself.get_cell()).await?;
        self.schedules = Some(r.get_cell());
        Ok(())
    }

    async fn start_membership(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
    ) -> Result<(), ActorProcessingErr> {
        let (r, _) =
            Actor::spawn_linked(None, MembershipActor, self.ctx.clone(), myself.get_cell()).await?;
        self.membership = Some(r.get_cell());
        Ok(())
    }

    async fn start_fleet_relay(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
    ) -> Result<(), ActorProcessingErr> {
        let (r, _) =
            Actor::spawn_linked(None, FleetRelayActor, self.ctx.clone(), myself.get_cell()).await?;
        self.fleet_relay = Some(r.get_cell());
        Ok(())
    }

    fn note_restart(&mut self) {
        let now = self.ctx.now();
        let window = self.ctx.config.restart_window_ms;
        self.restarts.push_back(now);
        while self
            .restarts
            .front()
            .is_some_and(|t| now.saturating_sub(*t) > window)
        {
            self.restarts.pop_front();
        }
        metrics::counter!(crate::metrics::ACTOR_RESTARTS_TOTAL).increment(1);
        if self.restarts.len() as u32 > self.ctx.config.restart_max {
            tracing::error!(
                restarts = self.restarts.len(),
                "crash loop: node marked unhealthy"
            );
            self.ctx
                .unhealthy_until
                .store(now.saturating_add(window), Ordering::Relaxed);
        }
    }
}

//! `ScheduleActor`: fires the schedules of the shards this node owns (every schedule on a
//! store of its own). Each pass reads every schedule, asks `core::schedule::due` what each
//! active one owes at the node's clock, and hands a decision to the coordinator's
//! `fire_schedule`, whose transaction admits it only while the schedule's cursor is where the
//! decision started (S1): two nodes that both think they own a shard (one losing it) submit a
//! tick once. It then sleeps until the soonest next tick, or `schedule_refresh_ms`, so a
//! shard taken over is picked up within that; a change of a schedule (on any node: it bumps
//! the `schedules` signal) wakes it at once.

use std::sync::Arc;
use std::time::Duration;

use gigafactory_core::schedule::{self, ScheduleState, shard_of_schedule};
use gigafactory_storage::{repo, transact};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::context::Context;
use crate::coordinator::{Coordinator, Firing};
use crate::signal_watch::AbortOnDrop;

pub(crate) enum ScheduleMsg {
    /// Fire what is due, then sleep until the next tick: the timer of generation `n` (a
    /// timer of an older generation was overtaken by a pass since, and does nothing).
    WakeTick(u64),
    /// A schedule changed: fire what is due now, and set the timer again.
    SchedulesChanged,
}

pub(crate) struct ScheduleActor;

pub(crate) struct ScheduleActorState {
    ctx: Arc<Context>,
    /// The generation of the one timer that counts: every pass starts a new one, so a wake
    /// by a change never leaves two timers running.
    timer: u64,
    /// The task waking it on changes; it holds the store, so it ends with the actor.
    _watcher: AbortOnDrop,
}

/// Wake-ups by changes come at most this often (a burst of changes costs one pass).
const CHANGED_MIN_INTERVAL_MS: u64 = 50;

impl Actor for ScheduleActor {
    type Msg = ScheduleMsg;
    type State = ScheduleActorState;
    type Arguments = Arc<Context>;

    async fn pre_start(
        &self,
        myself: ActorRef<ScheduleMsg>,
        ctx: Arc<Context>,
    ) -> Result<ScheduleActorState, ActorProcessingErr> {
        let me = myself.clone();
        let changed = repo::schedules_signal();
        let watcher = crate::signal_watch::on_signal(
            ctx.clone(),
            changed,
            CHANGED_MIN_INTERVAL_MS,
            move || me.send_message(ScheduleMsg::SchedulesChanged).is_ok(),
        );
        myself.send_message(ScheduleMsg::WakeTick(0))?;
        Ok(ScheduleActorState {
            ctx,
            timer: 0,
            _watcher: AbortOnDrop(watcher),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ScheduleMsg>,
        msg: ScheduleMsg,
        state: &mut ScheduleActorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ScheduleMsg::WakeTick(n) if n != state.timer => {}
            ScheduleMsg::WakeTick(_) | ScheduleMsg::SchedulesChanged => {
                let sleep = fire_due(&state.ctx).await;
                state.timer += 1;
                let n = state.timer;
                myself.send_after(sleep, move || ScheduleMsg::WakeTick(n));
            }
        }
        Ok(())
    }
}

/// One pass; returns how long to sleep.
async fn fire_due(ctx: &Arc<Context>) -> Duration {
    let refresh = ctx.config.schedule_refresh_ms.max(1);
    let all = match transact!(ctx.store, |tx| repo::schedules(tx).await) {
        Ok(all) => all,
        Err(e) => {
            tracing::warn!(error = %e, "schedules cannot be read");
            return Duration::from_millis(refresh);
        }
    };
    let coord = Coordinator::of(ctx.clone());
    let owned = ctx.owned_shards();
    let mut wake = ctx.now() + refresh;
    for s in all {
        if s.state != ScheduleState::Active
            || owned
                .as_ref()
                .is_some_and(|o| !o.contains(&shard_of_schedule(&s.name)))
        {
            continue;
        }
        let Ok((cron, zone)) = s.clock() else {
            continue;
        };
        let now = ctx.now();
        let window_ms = s.catchup_window_s.saturating_mul(1_000);
        let grace = ctx.config.schedule_grace_ms;
        let due = schedule::due(&cron, zone, s.cursor, now, s.missed, grace, window_ms);
        let mut cursor = s.cursor;
        if due.fire.is_some() || due.missed.is_some() {
            let firing = Firing::Ticks {
                from: s.cursor,
                due,
            };
            match coord.fire_schedule(&s.name, firing).await {
                Ok(runs) => {
                    for r in &runs {
                        tracing::info!(schedule = %s.name, tick = r.tick, outcome = r.outcome.name(), "schedule ran");
                    }
                    cursor = due.cursor;
                }
                Err(e) => tracing::warn!(schedule = %s.name, error = %e, "schedule cannot fire"),
            }
        }
        if let Some(next) = cron.next_tick(zone, cursor.max(now)) {
            wake = wake.min(next);
        }
    }
    Duration::from_millis(wake.saturating_sub(ctx.now()).max(5))
}

//! `ScheduleActor`: fires the schedules of the shards this node owns (every schedule on a
//! store of its own). Each pass reads every schedule, asks `core::schedule::due` what each
//! active one owes at the node's clock, and hands a decision to the coordinator's
//! `fire_schedule`, whose transaction admits it only while the schedule's cursor is where the
//! decision started (S1): two nodes that both think they own a shard (one losing it) submit a
//! tick once. It then sleeps until the soonest next tick, or `schedule_refresh_ms`, so a
//! schedule set on another node or a shard taken over is picked up within that.

use std::sync::Arc;
use std::time::Duration;

use gigafactory_core::schedule::{self, ScheduleState, shard_of_schedule};
use gigafactory_storage::{repo, transact};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::context::Context;
use crate::coordinator::{Coordinator, Firing};

pub(crate) enum ScheduleMsg {
    /// Fire what is due, then sleep until the next tick.
    WakeTick,
}

pub(crate) struct ScheduleActor;

impl Actor for ScheduleActor {
    type Msg = ScheduleMsg;
    type State = Arc<Context>;
    type Arguments = Arc<Context>;

    async fn pre_start(
        &self,
        myself: ActorRef<ScheduleMsg>,
        ctx: Arc<Context>,
    ) -> Result<Arc<Context>, ActorProcessingErr> {
        myself.send_message(ScheduleMsg::WakeTick)?;
        Ok(ctx)
    }

    async fn handle(
        &self,
        myself: ActorRef<ScheduleMsg>,
        msg: ScheduleMsg,
        ctx: &mut Arc<Context>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ScheduleMsg::WakeTick => {
                let sleep = fire_due(ctx).await;
                myself.send_after(sleep, || ScheduleMsg::WakeTick);
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

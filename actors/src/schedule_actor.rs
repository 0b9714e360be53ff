//! `ScheduleActor`: fires the schedules of the shards this node owns (every schedule on a
//! store of its own). Each pass reads every schedule, asks `core::schedule::due` what each
//! active one owes at the node's clock, and hands the pass to the coordinator's
//! `fire_schedule`, which decides again from the schedule it reads and whose transaction
//! commits only while the schedule is exactly that record, its cursor where the pass found it
//! (S1): two nodes that both think they own a shard (one losing it) submit a tick once, and an
//! edit that races the firing is what fires. It then sleeps until the soonest next tick, or
//! `schedule_refresh_ms`, so a shard taken over is picked up within that. Each pass also arms
//! a watch on the `schedules` signal in the transaction that reads the schedules, so an
//! operator's change committed after that read, on any node, wakes it at once.

use std::sync::Arc;
use std::time::Duration;

use gigafactory_core::schedule::{ScheduleState, shard_of_schedule};
use gigafactory_storage::{Watch, repo, transact};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::context::Context;
use crate::coordinator::{Coordinator, Fired, Firing};
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
    /// The task that waits for the latest pass's watch; replaced (so aborted) by each pass,
    /// and ended with the actor, since a watch holds the store.
    watcher: Option<AbortOnDrop>,
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
        myself.send_message(ScheduleMsg::WakeTick(0))?;
        Ok(ScheduleActorState {
            ctx,
            timer: 0,
            watcher: None,
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
                let (sleep, watch) = fire_due(&state.ctx).await;
                state.timer += 1;
                let n = state.timer;
                myself.send_after(sleep, move || ScheduleMsg::WakeTick(n));
                state.watcher = watch.map(|w| {
                    let me = myself.clone();
                    AbortOnDrop(tokio::spawn(async move {
                        if let Err(e) = w.await {
                            tracing::debug!(error = %e, "schedules watch ended; the timer reads them");
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(CHANGED_MIN_INTERVAL_MS)).await;
                        let _ = me.send_message(ScheduleMsg::SchedulesChanged);
                    }))
                });
            }
        }
        Ok(())
    }
}

/// One pass; returns how long to sleep, and the watch that fires on a change after its read.
async fn fire_due(ctx: &Arc<Context>) -> (Duration, Option<Watch>) {
    let refresh = ctx.config.schedule_refresh_ms.max(1);
    let read = transact!(ctx.store, |tx| {
        let all = repo::schedules(tx).await?;
        // Armed at this transaction's read version: a change the read missed fires it.
        let watch = tx.watch(repo::schedules_signal()).await?;
        Ok::<_, gigafactory_storage::Error>((all, watch))
    });
    let (all, watch) = match read {
        Ok(read) => read,
        Err(e) => {
            tracing::warn!(error = %e, "schedules cannot be read");
            return (Duration::from_millis(refresh), None);
        }
    };
    let coord = Coordinator::of(ctx.clone());
    let owned = ctx.owned_shards();
    // One time for the whole pass: a tick is judged late against when the pass woke, not
    // against how long the schedules before it took to fire.
    let now = ctx.now();
    let mut wake = now + refresh;
    for s in all {
        if s.state != ScheduleState::Active
            || owned
                .as_ref()
                .is_some_and(|o| !o.contains(&shard_of_schedule(&s.name)))
        {
            continue;
        }
        let Ok(clock) = s.clock() else {
            continue;
        };
        let due = s.due_at(&clock, now, ctx.config.schedule_grace_ms);
        let mut cursor = s.cursor;
        if due.fire.is_some() || due.missed.is_some() {
            // The firing decides again from the schedule it reads, so an edit since this
            // pass's read is what fires (S1).
            let firing = Firing::Ticks {
                from: s.cursor,
                at: now,
            };
            match coord.fire_schedule(&s.name, firing).await {
                Ok(fired) => {
                    if let Fired::Recorded(runs) = fired {
                        for r in &runs {
                            tracing::info!(schedule = %s.name, tick = r.tick, outcome = r.outcome.name(), "schedule ran");
                        }
                    }
                    cursor = due.cursor;
                }
                Err(e) => tracing::warn!(schedule = %s.name, error = %e, "schedule cannot fire"),
            }
        }
        let (cron, zone) = clock;
        if let Some(next) = cron.next_tick(zone, cursor.max(now)) {
            wake = wake.min(next);
        }
    }
    let sleep = Duration::from_millis(wake.saturating_sub(ctx.now()).max(5));
    (sleep, Some(watch))
}

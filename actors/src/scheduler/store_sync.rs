//! Keeping a scheduler's queue in step with a store other nodes write too: a watch on the
//! `ready` signal triggers a re-read of the head of the ready index (`refresh`), and a
//! periodic background read of the whole index (`resync`) brings in jobs made ready further
//! back and drops jobs other nodes took, leaving alone what this node changed meanwhile.

use std::collections::HashSet;
use std::sync::Arc;

use gigafactory_core::job::JobId;
use gigafactory_storage::repo::{self, ReadyEntry};
use gigafactory_storage::transact;
use ractor::{ActorProcessingErr, ActorRef};

use super::{
    REFRESH_MIN_INTERVAL_MS, REFRESH_ROWS, RESYNC_PAGE_ROWS, SchedulerMsg, SchedulerState,
};
use crate::context::Context;
use crate::ready_queue::placement_order;

/// On a store other nodes write too, wakes the scheduler whenever any node makes a job ready:
/// every such commit bumps the `ready` signal key, which this task watches. A watch is armed at
/// the version of the read that precedes it, so no change falls between two watches.
pub(super) fn watch_ready_signal(ctx: Arc<Context>, scheduler: ActorRef<SchedulerMsg>) {
    crate::signal_watch::on_signal(
        ctx,
        repo::ready_signal(),
        REFRESH_MIN_INTERVAL_MS,
        move || scheduler.cast(SchedulerMsg::Refresh).is_ok(),
    );
}

/// On a store other nodes write too, re-reads budgets whenever any node changes one or
/// reports spend that reaches one (both bump the `budgets` signal).
pub(super) fn watch_budgets_signal(ctx: Arc<Context>, scheduler: ActorRef<SchedulerMsg>) {
    let target = repo::budgets_signal();
    crate::signal_watch::on_signal(ctx, target, REFRESH_MIN_INTERVAL_MS, move || {
        scheduler.cast(SchedulerMsg::BudgetTick).is_ok()
    });
}

/// Reads the whole ready index a page at a time, off the actor, and sends the pages to it.
pub(super) fn read_ready_index(ctx: Arc<Context>, scheduler: ActorRef<SchedulerMsg>) {
    tokio::spawn(async move {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = transact!(ctx.store, |tx| repo::ready_page(
                tx,
                after.as_deref(),
                RESYNC_PAGE_ROWS
            )
            .await);
            let (entries, last) = match page {
                Ok(page) => {
                    let last = page.len() < RESYNC_PAGE_ROWS;
                    after = page.last().map(|(k, _)| k.clone());
                    (Some(page.into_iter().map(|(_, e)| e).collect()), last)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "resync of the ready index failed; trying at the next interval");
                    (None, true)
                }
            };
            if scheduler
                .cast(SchedulerMsg::ResyncPage { entries, last })
                .is_err()
                || last
            {
                return;
            }
        }
    });
}

#[derive(Default)]
/// While a resync runs: the jobs it found in the store so far, and the jobs this node queued
/// or dequeued itself meanwhile (newer than what the resync read, so left alone).
pub(super) struct Resync {
    pub(super) seen: HashSet<JobId>,
    pub(super) touched: HashSet<JobId>,
}

impl SchedulerState {
    /// Takes one page of a resync: queues what this node lacked and, after the last page,
    /// forgets what the store no longer has. Jobs this node queued or dequeued during the
    /// resync are newer than the pages and left as they are.
    pub(super) fn resync_page(&mut self, entries: Option<Vec<ReadyEntry>>, last: bool) {
        let Some(entries) = entries else {
            self.resync = None;
            return;
        };
        let Some(mut r) = self.resync.take() else {
            return;
        };
        for e in entries {
            r.seen.insert(e.id);
            if !r.touched.contains(&e.id) && !self.queue.contains(e.id) {
                self.insert(e);
            }
        }
        if !last {
            self.resync = Some(r);
            return;
        }
        let gone: Vec<JobId> = self
            .queue
            .keys()
            .map(|(_, _, id)| id)
            .filter(|id| !r.seen.contains(id) && !r.touched.contains(id))
            .collect();
        if !gone.is_empty() {
            tracing::debug!(gone = gone.len(), "resync dropped jobs other nodes took");
        }
        for id in gone {
            self.remove(id);
        }
    }

    /// Re-reads the head of the store's ready index: adds what other nodes made ready and
    /// drops what they claimed or cancelled (within the part read).
    pub(super) async fn refresh(&mut self) -> Result<(), ActorProcessingErr> {
        let page = transact!(self.ctx.store, |tx| repo::ready_page(
            tx,
            None,
            REFRESH_ROWS
        )
        .await)?;
        let complete = page.len() < REFRESH_ROWS;
        let last = page.last().map(|(_, e)| placement_order(e));
        let stored: std::collections::HashSet<JobId> = page.iter().map(|(_, e)| e.id).collect();
        let stale: Vec<JobId> = self
            .queue
            .keys()
            .filter(|k| (complete || last.is_some_and(|l| *k <= l)) && !stored.contains(&k.2))
            .map(|(_, _, id)| id)
            .collect();
        for id in stale {
            self.remove(id);
        }
        for (_, entry) in page {
            self.insert(entry);
        }
        Ok(())
    }
}

//! The fleet stream across a cluster: on a store several nodes share, each node writes the
//! transitions it commits to its own bounded feed in the store (`("fleet", node, seq)`, see
//! `spawn_feed_writer`), and `FleetRelayActor` relays every other node's feed into this node's
//! `FleetHub`, so any node's `/v1/events` shows the whole fleet.
//!
//! Nothing here runs on a store of its own (the embedded default): there the hub has no feed
//! and no relay starts, so a transition costs what it did before.
//!
//! - Writing is off the commit path: a job's transaction is unchanged; its event is queued
//!   (bounded, dropped past `FEED_QUEUE_MAX`) and one writer task commits queued events in
//!   batches, in sequence order, as blind writes to the node's own keys, trimming the feed to
//!   its latest `FEED_KEPT_EVENTS`. Feeds of different nodes never conflict.
//! - Relaying reads each other node's feed after the last entry relayed (a node that starts
//!   takes the kept entries, so its overview shows recent fleet events at once) and arms a
//!   watch on every feed in the same transaction, so no entry committed between a read and
//!   the next watch is missed; the hub skips entries it relayed before, so a re-read repeats
//!   nothing, and keeps its cursors across a restart of this actor.

use std::sync::Arc;
use std::time::Duration;

use gigafactory_storage::{AnyStore, Watch, repo, transact};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::context::Context;
use crate::fleet::{FLEET_BUFFER_EVENTS, FleetEvent};

/// Events waiting to be written to this node's feed. Past it new events stay off the feed
/// (other nodes' streams miss them; this node's own stream still has them) rather than grow
/// memory while the store is slow.
pub(crate) const FEED_QUEUE_MAX: usize = 4096;
/// Events written to the feed in one transaction.
const FEED_BATCH_MAX: usize = 256;
/// After the first event of a batch, how long the writer waits for more: one feed commit then
/// carries many transitions instead of one each (the store's commits are the cluster's cost).
const FEED_BATCH_WAIT_MS: u64 = 20;
/// Entries each node keeps in its feed: as many as a stream keeps for resumption.
const FEED_KEPT_EVENTS: u64 = FLEET_BUFFER_EVENTS as u64;
/// Attempts to write one batch before it is given up.
const FEED_WRITE_ATTEMPTS_MAX: u32 = 5;
const FEED_WRITE_RETRY_MS: u64 = 500;
/// Entries read from one node's feed in one pass; a pass that hits it reads again at once.
const FEED_READ_MAX: usize = 1024;
/// Least time between two relay passes: in a busy cluster one pass takes many entries.
const RELAY_MIN_INTERVAL_MS: u64 = 50;
/// Wait before a pass that failed (the store unreachable) is tried again.
const RELAY_RETRY_MS: u64 = 1_000;

/// Starts the task that writes this node's fleet events to its feed in the store, and returns
/// the queue to send them to. The task ends when every sender is gone.
pub(crate) fn spawn_feed_writer(store: AnyStore, node: Uuid) -> mpsc::Sender<FleetEvent> {
    let (tx, mut rx) = mpsc::channel(FEED_QUEUE_MAX);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(FEED_BATCH_MAX);
        while rx.recv_many(&mut batch, FEED_BATCH_MAX).await > 0 {
            if batch.len() < FEED_BATCH_MAX {
                tokio::time::sleep(Duration::from_millis(FEED_BATCH_WAIT_MS)).await;
                while batch.len() < FEED_BATCH_MAX {
                    match rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(_) => break,
                    }
                }
            }
            write_batch(&store, node, &batch).await;
            batch.clear();
        }
    });
    tx
}

/// Writes one batch, retrying any failure: the writes are idempotent (the same keys get the
/// same values), so even a commit of unknown outcome may be sent again.
async fn write_batch(store: &AnyStore, node: Uuid, batch: &[FleetEvent]) {
    for attempt in 1..=FEED_WRITE_ATTEMPTS_MAX {
        match transact!(store, |tx| repo::append_fleet_feed(
            tx,
            node,
            batch,
            FEED_KEPT_EVENTS
        )) {
            Ok(()) => return,
            Err(e) if attempt < FEED_WRITE_ATTEMPTS_MAX => {
                tracing::debug!(error = %e, attempt, "fleet feed write failed; retrying");
                tokio::time::sleep(Duration::from_millis(FEED_WRITE_RETRY_MS)).await;
            }
            Err(e) => {
                metrics::counter!("gigafactory_fleet_feed_dropped_total")
                    .increment(batch.len() as u64);
                tracing::warn!(error = %e, events = batch.len(), "cannot write the fleet feed; these events stay off the other nodes' streams");
            }
        }
    }
}

pub(crate) enum FleetRelayMsg {
    /// Read what other nodes' feeds gained, and watch them again.
    CatchUpTick,
}

pub(crate) struct FleetRelayActor;

impl Actor for FleetRelayActor {
    type Msg = FleetRelayMsg;
    type State = Arc<Context>;
    type Arguments = Arc<Context>;

    async fn pre_start(
        &self,
        myself: ActorRef<FleetRelayMsg>,
        ctx: Arc<Context>,
    ) -> Result<Arc<Context>, ActorProcessingErr> {
        myself.cast(FleetRelayMsg::CatchUpTick)?;
        Ok(ctx)
    }

    async fn handle(
        &self,
        myself: ActorRef<FleetRelayMsg>,
        msg: FleetRelayMsg,
        ctx: &mut Arc<Context>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            FleetRelayMsg::CatchUpTick => match catch_up(ctx).await {
                Ok(Pass::More) => myself.cast(FleetRelayMsg::CatchUpTick)?,
                Ok(Pass::Watching(watch)) => {
                    tokio::spawn(async move {
                        if let Err(e) = watch.await {
                            tracing::debug!(error = %e, "fleet feed watch ended; reading again");
                            tokio::time::sleep(Duration::from_millis(RELAY_RETRY_MS)).await;
                        }
                        tokio::time::sleep(Duration::from_millis(RELAY_MIN_INTERVAL_MS)).await;
                        // Fails only when this actor stopped; its successor watches anew.
                        let _ = myself.cast(FleetRelayMsg::CatchUpTick);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the other nodes' fleet feeds; retrying");
                    myself.send_after(Duration::from_millis(RELAY_RETRY_MS), || {
                        FleetRelayMsg::CatchUpTick
                    });
                }
            },
        }
        Ok(())
    }
}

/// How a relay pass ended.
enum Pass {
    /// A feed had more entries than one pass reads: read again at once.
    More,
    /// Caught up; the watch fires when any feed changes.
    Watching(Watch),
}

async fn catch_up(ctx: &Context) -> Result<Pass, gigafactory_storage::Error> {
    let me = ctx.node_id;
    let cursors = ctx.fleet.relay_cursors();
    let (reads, watch) = transact!(ctx.store, |tx| {
        let mut reads = Vec::new();
        for node in repo::nodes(tx).await?.iter().filter(|n| n.id != me) {
            let after = cursors.get(&node.id).copied().unwrap_or(0);
            let entries = repo::fleet_feed_after(tx, node.id, after, FEED_READ_MAX).await?;
            reads.push((node.id, entries));
        }
        // Armed at this transaction's read version: whatever the reads above did not see
        // fires it.
        let watch = tx.watch(repo::fleet_feeds_signal()).await?;
        Ok::<_, gigafactory_storage::Error>((reads, watch))
    })?;
    let full = reads.iter().any(|(_, e)| e.len() == FEED_READ_MAX);
    let added = ctx.fleet.relay(reads);
    if added > 0 {
        metrics::counter!("gigafactory_fleet_events_relayed_total").increment(added as u64);
        tracing::debug!(added, "fleet events relayed from other nodes");
    }
    Ok(if full {
        Pass::More
    } else {
        Pass::Watching(watch)
    })
}

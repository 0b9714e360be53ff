//! The fleet event stream of this node: every job transition it commits and, on a store other
//! nodes share, every transition they commit (relayed from their feeds in the store by
//! `FleetRelayActor`), numbered in this node's own order, kept in a bounded ring so a
//! reconnecting follower resumes from its last event id, and broadcast live. A follower that
//! falls more than `FLEET_BUFFER_EVENTS` behind is dropped (it reconnects and resumes from the
//! ring) rather than allowed to grow memory.
//!
//! An event's id on the stream is `{node}:{seq}`: the node whose stream numbered it, and the
//! number. A follower that resumes with an id of another node's stream (or of this node before
//! a restart) cannot be placed in this one's order; it gets every kept event, so it misses
//! nothing it could have had, though it may see some again.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use gigafactory_core::event::{Author, EventKind};
use gigafactory_core::job::{Job, Millis};
pub use gigafactory_core::wire::FleetEvent;
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

/// Events kept for resumption and buffered per live follower.
pub const FLEET_BUFFER_EVENTS: usize = 1024;

/// Where a follower stopped: the id of the last event it saw, `{node}:{seq}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetEventId {
    pub node: Uuid,
    pub seq: u64,
}

impl FleetEventId {
    /// Reads an id as the stream writes it; `None` when it is not one.
    pub fn parse(s: &str) -> Option<Self> {
        let (node, seq) = s.split_once(':')?;
        Some(FleetEventId {
            node: Uuid::parse_str(node).ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl std::fmt::Display for FleetEventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.node, self.seq)
    }
}

pub(crate) struct FleetHub {
    /// This node: the origin of the events it publishes and the name of its stream.
    node: Uuid,
    tx: broadcast::Sender<FleetEvent>,
    state: Mutex<HubState>,
    /// On a shared store: this node's events on their way to its feed in the store (a bounded
    /// queue; see `fleet_relay`). `None` on a store of its own, where nobody else reads them.
    feed: Option<mpsc::Sender<FleetEvent>>,
}

/// Under one lock, so that a subscriber sees every event exactly once across backlog and live,
/// and relayed events are numbered in the order they are broadcast.
struct HubState {
    ring: VecDeque<FleetEvent>,
    next_seq: u64,
    /// Per other node, the sequence of the last entry of its feed relayed here.
    relayed: HashMap<Uuid, u64>,
}

impl FleetHub {
    pub fn new(node: Uuid, feed: Option<mpsc::Sender<FleetEvent>>) -> Self {
        FleetHub {
            node,
            tx: broadcast::channel(FLEET_BUFFER_EVENTS).0,
            state: Mutex::new(HubState {
                ring: VecDeque::new(),
                next_seq: 1,
                relayed: HashMap::new(),
            }),
            feed,
        }
    }

    /// Announces a transition this node committed.
    pub fn publish(
        &self,
        job: &Job,
        kind: EventKind,
        actor: &Author,
        at: Millis,
        detail: Option<String>,
    ) {
        let mut state = self.state.lock().expect("fleet ring poisoned");
        let event = FleetEvent {
            seq: 0,
            node: self.node,
            at,
            job_id: job.id,
            title: job.spec.title.clone(),
            product: job.spec.product.clone(),
            kind,
            state: job.state.name().into(),
            actor: actor.clone(),
            epoch: job.epoch,
            detail,
        };
        let event = self.push(&mut state, event);
        // Still under the lock: the feed gets this node's events in sequence order.
        if let Some(feed) = &self.feed
            && feed.try_send(event).is_err()
        {
            metrics::counter!("gigafactory_fleet_feed_dropped_total").increment(1);
            tracing::debug!("fleet feed queue full; an event stays off the other nodes' streams");
        }
    }

    /// Numbers `event` in this stream, keeps it and broadcasts it; returns it numbered.
    fn push(&self, state: &mut HubState, mut event: FleetEvent) -> FleetEvent {
        event.seq = state.next_seq;
        state.next_seq += 1;
        if state.ring.len() == FLEET_BUFFER_EVENTS {
            state.ring.pop_front();
        }
        state.ring.push_back(event.clone());
        let _ = self.tx.send(event.clone());
        event
    }

    /// The last relayed entry of each other node's feed (absent: none yet).
    pub fn relay_cursors(&self) -> HashMap<Uuid, u64> {
        self.state
            .lock()
            .expect("fleet ring poisoned")
            .relayed
            .clone()
    }

    /// Takes what the relay read from the feeds of the nodes the store lists now (each feed's
    /// entries after its cursor, in sequence order) and adds those not relayed before to this
    /// stream, oldest first by commit time. Nodes absent from `reads` have left the cluster
    /// (their feeds went with their records) and are forgotten, which bounds the cursors by
    /// the cluster's size. Returns how many events were added.
    pub fn relay(&self, reads: Vec<(Uuid, Vec<FleetEvent>)>) -> usize {
        let mut state = self.state.lock().expect("fleet ring poisoned");
        let mut cursors = HashMap::with_capacity(reads.len());
        let mut fresh = Vec::new();
        for (node, entries) in reads {
            if node == self.node {
                continue;
            }
            let cursor = state.relayed.get(&node).copied().unwrap_or(0);
            debug_assert!(entries.windows(2).all(|w| w[0].seq < w[1].seq));
            debug_assert!(
                entries.iter().all(|e| e.node == node),
                "a feed holds its own node's events"
            );
            let last = entries.last().map_or(cursor, |e| e.seq.max(cursor));
            // A pass may read what an earlier one relayed: skip it.
            fresh.extend(entries.into_iter().filter(|e| e.seq > cursor));
            cursors.insert(node, last);
        }
        // Stable: one node's events keep their order where their times tie.
        fresh.sort_by_key(|e| e.at);
        let added = fresh.len();
        for e in fresh {
            self.push(&mut state, e);
        }
        state.relayed = cursors;
        added
    }

    /// The kept events after `after` (all kept when it is `None` or names another stream), and
    /// a live receiver for the rest.
    pub fn subscribe(
        &self,
        after: Option<FleetEventId>,
    ) -> (Vec<FleetEvent>, broadcast::Receiver<FleetEvent>) {
        let state = self.state.lock().expect("fleet ring poisoned");
        let rx = self.tx.subscribe();
        let after = after.filter(|a| a.node == self.node).map(|a| a.seq);
        let backlog = state
            .ring
            .iter()
            .filter(|e| after.is_none_or(|a| e.seq > a))
            .cloned()
            .collect();
        (backlog, rx)
    }
}

#[cfg(test)]
mod tests {
    use gigafactory_core::job::{JobId, new_job};

    use super::*;

    fn job(n: u128) -> Job {
        let spec = serde_json::from_value(serde_json::json!({
            "key": "k", "title": format!("job {n}"), "product": "p", "payload": {"command": "true"}
        }))
        .unwrap();
        new_job(JobId(Uuid::from_u128(n)), spec, vec![], 0)
    }

    fn from(node: Uuid, seq: u64, job_n: u128) -> FleetEvent {
        FleetEvent {
            seq,
            node,
            at: 0,
            job_id: JobId(Uuid::from_u128(job_n)),
            title: format!("job {job_n}"),
            product: "p".into(),
            kind: EventKind::Submitted,
            state: "queued".into(),
            actor: Author::Scheduler,
            detail: None,
            epoch: 0,
        }
    }

    fn jobs(events: &[FleetEvent]) -> Vec<u128> {
        events.iter().map(|e| e.job_id.0.as_u128()).collect()
    }

    const ME: Uuid = Uuid::from_u128(100);
    const OTHER: Uuid = Uuid::from_u128(200);

    #[test]
    fn event_ids_read_back_as_written() {
        let id = FleetEventId { node: ME, seq: 42 };
        assert_eq!(FleetEventId::parse(&id.to_string()), Some(id));
        for bad in ["42", "x:1", &format!("{ME}:"), &format!("{ME}:-1")] {
            assert_eq!(FleetEventId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_follower_resumes_after_its_last_event_id() {
        let hub = FleetHub::new(ME, None);
        for n in 1..=5 {
            hub.publish(&job(n), EventKind::Submitted, &Author::Scheduler, 0, None);
        }
        let (backlog, _) = hub.subscribe(Some(FleetEventId { node: ME, seq: 3 }));
        assert_eq!(jobs(&backlog), [4, 5]);
        assert!(backlog.iter().all(|e| e.node == ME));
    }

    #[test]
    fn an_id_of_another_stream_resumes_from_everything_kept() {
        let hub = FleetHub::new(ME, None);
        for n in 1..=3 {
            hub.publish(&job(n), EventKind::Submitted, &Author::Scheduler, 0, None);
        }
        let (backlog, _) = hub.subscribe(Some(FleetEventId {
            node: OTHER,
            seq: 2,
        }));
        assert_eq!(jobs(&backlog), [1, 2, 3]);
    }

    #[test]
    fn the_ring_keeps_only_the_latest_events() {
        let hub = FleetHub::new(ME, None);
        for n in 0..(FLEET_BUFFER_EVENTS as u128 + 10) {
            hub.publish(&job(n), EventKind::Submitted, &Author::Scheduler, 0, None);
        }
        let (backlog, _) = hub.subscribe(None);
        assert_eq!(backlog.len(), FLEET_BUFFER_EVENTS);
        assert_eq!(backlog[0].seq, 11);
    }

    #[test]
    fn relayed_events_join_the_stream_in_its_own_order_once() {
        let hub = FleetHub::new(ME, None);
        hub.publish(&job(1), EventKind::Submitted, &Author::Scheduler, 0, None);
        let (_, mut live) = hub.subscribe(None);
        let added = hub.relay(vec![(OTHER, vec![from(OTHER, 7, 70), from(OTHER, 8, 80)])]);
        assert_eq!(added, 2);
        // The next pass re-reads entry 8: it is not relayed twice.
        let added = hub.relay(vec![(OTHER, vec![from(OTHER, 8, 80), from(OTHER, 9, 90)])]);
        assert_eq!(added, 1);
        let (all, _) = hub.subscribe(None);
        assert_eq!(jobs(&all), [1, 70, 80, 90]);
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(
            all[1].node, OTHER,
            "a relayed event names the node that committed it"
        );
        let live: Vec<u64> = std::iter::from_fn(|| live.try_recv().ok())
            .map(|e| e.seq)
            .collect();
        assert_eq!(live, [2, 3, 4]);
        // Resuming inside the relayed part works like anywhere else in the stream.
        let (rest, _) = hub.subscribe(Some(FleetEventId { node: ME, seq: 3 }));
        assert_eq!(jobs(&rest), [90]);
    }

    #[test]
    fn one_pass_over_several_feeds_adds_their_events_by_commit_time() {
        let hub = FleetHub::new(ME, None);
        const THIRD: Uuid = Uuid::from_u128(300);
        let at = |mut e: FleetEvent, at: Millis| {
            e.at = at;
            e
        };
        hub.relay(vec![
            (
                OTHER,
                vec![at(from(OTHER, 1, 10), 100), at(from(OTHER, 2, 20), 300)],
            ),
            (THIRD, vec![at(from(THIRD, 1, 30), 200)]),
        ]);
        assert_eq!(jobs(&hub.subscribe(None).0), [10, 30, 20]);
        assert_eq!(hub.relay_cursors(), HashMap::from([(OTHER, 2), (THIRD, 1)]));
    }

    #[test]
    fn a_node_that_left_is_forgotten() {
        let hub = FleetHub::new(ME, None);
        hub.relay(vec![(OTHER, vec![from(OTHER, 3, 30)])]);
        hub.relay(vec![]);
        assert!(hub.relay_cursors().is_empty());
    }

    #[tokio::test]
    async fn published_events_go_to_the_feed_in_order() {
        let (tx, mut rx) = mpsc::channel(8);
        let hub = FleetHub::new(ME, Some(tx));
        hub.publish(&job(1), EventKind::Submitted, &Author::Scheduler, 0, None);
        hub.publish(&job(2), EventKind::Claim, &Author::Scheduler, 0, None);
        let sent: Vec<(u64, Uuid)> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| (e.seq, e.node))
            .collect();
        assert_eq!(sent, [(1, ME), (2, ME)]);
    }
}

//! The fleet event stream of this node: every job transition it commits, numbered, kept in a
//! bounded ring so a reconnecting follower resumes from its last event id, and broadcast live.
//! A follower that falls more than `FLEET_BUFFER_EVENTS` behind is dropped (it reconnects and
//! resumes from the ring) rather than allowed to grow memory.

use std::collections::VecDeque;
use std::sync::Mutex;

use gigafactory_core::job::{Job, JobId, Millis};
use serde::Serialize;
use tokio::sync::broadcast;

/// Events kept for resumption and buffered per live follower.
pub const FLEET_BUFFER_EVENTS: usize = 1024;

/// One transition, as the fleet stream shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetEvent {
    /// Increases by one per event on this node.
    pub seq: u64,
    pub at: Millis,
    pub job_id: JobId,
    pub title: String,
    pub product: String,
    pub kind: String,
    pub state: String,
    pub actor: String,
    pub epoch: u64,
}

pub(crate) struct FleetHub {
    tx: broadcast::Sender<FleetEvent>,
    /// The latest events and the next sequence number, under one lock so that a subscriber
    /// sees every event exactly once across backlog and live.
    ring: Mutex<(VecDeque<FleetEvent>, u64)>,
}

impl FleetHub {
    pub fn new() -> Self {
        FleetHub {
            tx: broadcast::channel(FLEET_BUFFER_EVENTS).0,
            ring: Mutex::new((VecDeque::new(), 1)),
        }
    }

    pub fn publish(&self, job: &Job, kind: &str, actor: &str, at: Millis) {
        let mut ring = self.ring.lock().expect("fleet ring poisoned");
        let seq = ring.1;
        ring.1 += 1;
        let event = FleetEvent {
            seq,
            at,
            job_id: job.id,
            title: job.spec.title.clone(),
            product: job.spec.product.clone(),
            kind: kind.into(),
            state: job.state.name().into(),
            actor: actor.into(),
            epoch: job.epoch,
        };
        if ring.0.len() == FLEET_BUFFER_EVENTS {
            ring.0.pop_front();
        }
        ring.0.push_back(event.clone());
        let _ = self.tx.send(event);
    }

    /// The kept events after `after` (all kept when `None`), and a live receiver for the rest.
    pub fn subscribe(
        &self,
        after: Option<u64>,
    ) -> (Vec<FleetEvent>, broadcast::Receiver<FleetEvent>) {
        let ring = self.ring.lock().expect("fleet ring poisoned");
        let rx = self.tx.subscribe();
        let backlog = ring
            .0
            .iter()
            .filter(|e| after.is_none_or(|a| e.seq > a))
            .cloned()
            .collect();
        (backlog, rx)
    }
}

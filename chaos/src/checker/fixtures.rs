//! Hand-built histories for the checker's unit tests: events written the way the coordinator
//! writes them, one acknowledged job around them, and an assertion that a check finds an
//! invariant broken.

use gigafactory_core::event::Author;
use gigafactory_core::job::FactoryId;
use gigafactory_core::wire::Event;
use uuid::Uuid;

use super::{Invariant, check};
use crate::history::{Attempt, History, JobRecord, Outcome, Submit};

pub(super) const F1: &str = "0190f1f1-0000-7000-8000-000000000001";
pub(super) const F2: &str = "0190f2f2-0000-7000-8000-000000000002";

pub(super) fn ev(seq: u64, kind: &str, actor: &str, epoch: u64, state: &str) -> Event {
    Event {
        seq,
        at: 1_000 + seq * 100,
        kind: kind.parse().expect("an event kind"),
        actor: actor.parse().expect("an author"),
        epoch,
        state: state.into(),
        detail: None,
    }
}

pub(super) fn by(f: &str) -> String {
    Author::Factory(FactoryId(Uuid::parse_str(f).unwrap())).to_string()
}

pub(super) fn claim(seq: u64, f: &str, epoch: u64) -> Event {
    Event {
        detail: Some(format!("factory {f}")),
        ..ev(seq, "claim", &by(f), epoch, "leased")
    }
}

pub(super) fn submitted() -> Event {
    ev(1, "submitted", "operator:admin", 0, "queued")
}

/// A history of one acknowledged job with `events`, ending in `state`.
pub(super) fn one_job(state: &str, events: Vec<Event>) -> History {
    History {
        submits: vec![Submit {
            key: "k1".into(),
            attempts: vec![Attempt {
                node: 0,
                sent_at: 1,
                answered_at: 2,
                outcome: Outcome::Acked {
                    id: "j1".into(),
                    created: true,
                },
            }],
        }],
        jobs: vec![JobRecord {
            id: "j1".into(),
            found: true,
            state: Some(state.into()),
            events,
            cost_micros: None,
        }],
        ..History::default()
    }
}

/// Asserts the checker finds `inv` broken in `h` (others may be broken too).
pub(super) fn detects(h: &History, inv: Invariant) {
    let v = check(h);
    assert!(
        v.violations_of(inv) > 0,
        "{inv} not detected: {:?}",
        v.violations
    );
}

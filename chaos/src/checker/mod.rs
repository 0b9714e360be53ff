//! The checker: proves the lease and fencing invariants over a recorded [`History`]. It reads
//! only the history, so it runs the same on a live run and on a saved `history.json`.
//!
//! The invariants are numbered here once (ARCHITECTURE.md mirrors them):
//!
//! - **C1** no acknowledged submit is lost: every job id a node acknowledged exists after the
//!   run, and every acknowledgement of one idempotency key names the same job. (Each job ends
//!   terminal or is still queued or running when the run stops; those counts are reported.)
//! - **C2** no job reaches a terminal state twice: at most one write leaves a job terminal,
//!   unless an operator `retry` or `requeue` re-opened it.
//! - **C3** completions match successes: a succeeded job has exactly one `complete` event, no
//!   other job has one, so the number of `complete` events equals the number of succeeded
//!   jobs.
//! - **C4** no write with a stale epoch is accepted: every factory write carries the epoch of
//!   the latest `claim` before it and comes from that claim's factory.
//! - **C5** epochs of a job never decrease along its events, and each claim's epoch is higher
//!   than every earlier event's (a new lease always fences the old one).
//! - **C6** at most one factory holds a valid lease on a job at any time: all factory writes
//!   under one lease epoch come from one factory, no two claims share an epoch, and no two
//!   factories were handed the same lease.
//! - **C7** what the factories were told is what the store kept: every lease a claim answer
//!   handed a factory is a recorded claim of that factory at that epoch, and every `complete`,
//!   `fail` or `release` the coordinator acknowledged is a recorded event of that lease.
//! - **C8** money is counted exactly: each job's cost is the sum of the usage its timeline
//!   says the store accepted, and the run's budget spent exactly the sum of its jobs' costs.
//!   (That no usage from a fenced epoch was counted is C4: a usage report is a factory write,
//!   and C4 holds for every factory write, on both sides.)
//!
//! C4 and C6 are also checked from the factories' journals (every request and its answer): an
//! accepted write must carry an epoch the store leased to that factory, its answer must show
//! the job at that epoch (one more after a `release`) and, but for a `complete`, `fail` or
//! `release`, still under a lease; and a write first sent after the coordinator fenced that
//! epoch for the factory must not be accepted (epochs only grow, so the later answer could only
//! be a stale acceptance). Journals are one process's own order of events, so these checks
//! need no clock shared between processes.
//!
//! How epochs appear in events: an event carries the job's epoch *after* its write. A claim
//! sets the new lease's epoch; `stage`, `complete` and `fail` keep it; `release` gives the job
//! back and bumps it, so a release's lease epoch is its epoch minus one.
//!
//! The rooms: this file holds the findings ([`Invariant`], [`Violation`], [`Verdict`]) and
//! [`check`], which runs both sides; `store` checks what the store kept (the acknowledged
//! submits and each job's timeline: C1–C6), `journal` checks the factories' journals against
//! it (C4, C6, C7), `money` checks costs and the budget (C8).

mod journal;
mod money;
mod store;

use std::collections::{BTreeSet, HashMap};

use gigafactory_core::event::EventKind;
use gigafactory_core::job::FactoryId;
use gigafactory_core::wire::Event;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use self::journal::check_factory_side;
use self::money::check_money;
use self::store::{
    check_acknowledged, check_completions, check_epochs, check_fencing, check_single_holder,
    check_terminal_once, distinct_writes, in_order,
};
use crate::history::{History, JobRecord, is_terminal};

/// The invariants, in the order they are checked and reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Invariant {
    C1,
    C2,
    C3,
    C4,
    C5,
    C6,
    C7,
    C8,
}

impl Invariant {
    pub const ALL: [Invariant; 8] = [
        Invariant::C1,
        Invariant::C2,
        Invariant::C3,
        Invariant::C4,
        Invariant::C5,
        Invariant::C6,
        Invariant::C7,
        Invariant::C8,
    ];

    /// One line stating the invariant, for reports.
    pub fn statement(self) -> &'static str {
        match self {
            Invariant::C1 => "no acknowledged submit is lost",
            Invariant::C2 => "no job reaches a terminal state twice",
            Invariant::C3 => "the number of complete events equals the number of succeeded jobs",
            Invariant::C4 => {
                "no stale-epoch write is accepted: factory writes carry the latest claim's epoch \
                 and factory"
            }
            Invariant::C5 => "epochs never decrease; each claim's epoch exceeds every earlier one",
            Invariant::C6 => "at most one factory holds a valid lease on a job at any time",
            Invariant::C7 => {
                "every lease handed out and every end of a lease acknowledged to a factory is \
                 in the store"
            }
            Invariant::C8 => {
                "each job's cost is the usage its timeline accepted; the budget spent exactly \
                 its jobs' costs"
            }
        }
    }
}

impl std::fmt::Display for Invariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// One broken invariant, with the events that show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub invariant: Invariant,
    pub job: Option<String>,
    pub message: String,
    pub events: Vec<Event>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ", self.invariant)?;
        if let Some(job) = &self.job {
            write!(f, "job {job}: ")?;
        }
        write!(f, "{}", self.message)?;
        for e in &self.events {
            write!(
                f,
                "\n    seq {} at {} {} by {} epoch {} -> {}{}",
                e.seq,
                e.at,
                e.kind,
                e.actor,
                e.epoch,
                e.state,
                e.detail
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            )?;
        }
        Ok(())
    }
}

/// The checker's findings: job counts and every violation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub submitted: usize,
    pub acknowledged: usize,
    pub succeeded: usize,
    pub dead: usize,
    /// Terminal in another way (cancelled, shipped, rejected).
    pub other_terminal: usize,
    /// `queued` or `failed` (waiting for a retry) when the run stopped.
    pub still_queued: usize,
    /// `leased`, `running` or `preempting` when the run stopped.
    pub still_running: usize,
    /// Any other open state (`pending`, `review`) or unknown.
    pub other_open: usize,
    pub complete_events: usize,
    /// Requests in the factories' journals, and how many of them the checks could match
    /// against a stored timeline (the rest concern jobs outside the history).
    #[serde(default)]
    pub factory_requests: usize,
    #[serde(default)]
    pub factory_requests_matched: usize,
    pub violations: Vec<Violation>,
}

impl Verdict {
    pub fn violations_of(&self, inv: Invariant) -> usize {
        self.violations
            .iter()
            .filter(|v| v.invariant == inv)
            .count()
    }
}

/// Runs every invariant over `history`.
pub fn check(history: &History) -> Verdict {
    let mut v = Verdict {
        submitted: history.submits.len(),
        ..Verdict::default()
    };
    let jobs: HashMap<&str, &JobRecord> = history.jobs.iter().map(|j| (j.id.as_str(), j)).collect();
    check_acknowledged(history, &jobs, &mut v);
    let mut acked: BTreeSet<&str> = BTreeSet::new();
    for s in &history.submits {
        if let Some(id) = s.acked_id() {
            acked.insert(id);
        }
    }
    v.acknowledged = acked.len();
    for id in acked {
        let Some(job) = jobs.get(id).filter(|j| j.found) else {
            continue;
        };
        match job.state.as_deref().unwrap_or("") {
            "succeeded" => v.succeeded += 1,
            "dead" => v.dead += 1,
            s if is_terminal(s) => v.other_terminal += 1,
            "queued" | "failed" => v.still_queued += 1,
            "leased" | "running" | "preempting" => v.still_running += 1,
            _ => v.other_open += 1,
        }
        let events = in_order(&job.events);
        v.complete_events += distinct_writes(&events, |e| e.kind == EventKind::Complete);
        check_terminal_once(job, &events, &mut v.violations);
        check_completions(job, &events, &mut v.violations);
        check_fencing(job, &events, &mut v.violations);
        check_epochs(job, &events, &mut v.violations);
        check_single_holder(job, &events, &mut v.violations);
    }
    check_factory_side(history, &jobs, &mut v);
    check_money(history, &mut v.violations);
    if v.complete_events != v.succeeded && v.violations_of(Invariant::C3) == 0 {
        v.violations.push(Violation {
            invariant: Invariant::C3,
            job: None,
            message: format!(
                "{} complete events but {} succeeded jobs",
                v.complete_events, v.succeeded
            ),
            events: Vec::new(),
        });
    }
    v.violations.sort_by_key(|x| x.invariant);
    v
}

/// The factory that wrote `e`, if a factory did.
fn writer(e: &Event) -> Option<FactoryId> {
    e.actor.factory()
}

/// The factory a claim leased to, from its detail (`factory <id>`).
fn claimed_by(e: &Event) -> Option<FactoryId> {
    let id = e.detail.as_deref()?.strip_prefix("factory ")?;
    Uuid::parse_str(id).ok().map(FactoryId)
}

/// The epoch of the lease a factory write was made under (see the module docs).
fn lease_epoch(e: &Event) -> u64 {
    if e.kind == EventKind::Release {
        e.epoch.saturating_sub(1)
    } else {
        e.epoch
    }
}

/// How a message names the holder of a lease: the factory, or that no claim records one.
fn recorded(holder: Option<FactoryId>) -> String {
    holder.map_or_else(|| "no such claim".to_string(), |f| format!("factory {f}"))
}

#[cfg(test)]
mod fixtures;

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn a_clean_history_has_no_violation() {
        // Claimed, expired, re-claimed by another factory, released, re-claimed, completed;
        // a warning shares the completing write's sequence.
        let h = one_job(
            "succeeded",
            vec![
                submitted(),
                claim(2, F1, 1),
                ev(3, "stage", &by(F1), 1, "running"),
                ev(4, "expire", "reaper", 2, "failed"),
                claim(5, F2, 3),
                ev(6, "release", &by(F2), 4, "queued"),
                claim(7, F1, 5),
                ev(8, "fail", &by(F1), 5, "failed"),
                claim(9, F2, 6),
                ev(10, "complete", &by(F2), 6, "succeeded"),
                ev(10, "scope_warning", &by(F2), 6, "succeeded"),
            ],
        );
        let v = check(&h);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        assert_eq!((v.acknowledged, v.succeeded, v.complete_events), (1, 1, 1));
    }

    #[test]
    fn a_violation_names_its_job_and_events() {
        let h = one_job(
            "succeeded",
            vec![
                submitted(),
                claim(2, F1, 1),
                ev(3, "expire", "reaper", 2, "failed"),
                ev(4, "complete", &by(F1), 2, "succeeded"),
            ],
        );
        let text = check(&h)
            .violations
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(text.contains("job j1") && text.contains("seq 4"), "{text}");
    }
}

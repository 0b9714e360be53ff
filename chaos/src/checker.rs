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
//!
//! C4 and C6 are also checked from the factories' journals (every request and its answer): an
//! accepted write must carry an epoch the store leased to that factory, its answer must show
//! the job at that epoch (one more after a `release`) and, but for a `complete`, `fail` or
//! `release`, still under a lease; and a write first sent after the coordinator fenced that
//! epoch for the factory must not be accepted (epochs only grow, so the later answer could only
//! be a stale acceptance). Journals are one process's
//! own order of events, so these checks need no clock shared between processes.
//!
//! How epochs appear in events: an event carries the job's epoch *after* its write. A claim
//! sets the new lease's epoch; `stage`, `complete` and `fail` keep it; `release` gives the job
//! back and bumps it, so a release's lease epoch is its epoch minus one.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use gigafactory_core::event::EventKind;
use gigafactory_core::job::FactoryId;
use gigafactory_core::journal::Exchange;
use gigafactory_core::wire::Event;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::history::{History, JobRecord, Outcome, is_terminal};

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
}

impl Invariant {
    pub const ALL: [Invariant; 7] = [
        Invariant::C1,
        Invariant::C2,
        Invariant::C3,
        Invariant::C4,
        Invariant::C5,
        Invariant::C6,
        Invariant::C7,
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

/// A job's events by sequence. Two events of one write share a sequence (a warning beside its
/// transition); the sort is stable so they keep their stored order.
fn in_order(events: &[Event]) -> Vec<&Event> {
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| e.seq);
    sorted
}

/// How many writes (distinct sequences) have an event matching `pred`.
fn distinct_writes(events: &[&Event], pred: impl Fn(&Event) -> bool) -> usize {
    events
        .iter()
        .filter(|e| pred(e))
        .map(|e| e.seq)
        .collect::<BTreeSet<_>>()
        .len()
}

/// Whether an operator re-opened the job: only operators (and admins) retry or requeue.
fn reopened_by_operator(events: &[&Event]) -> bool {
    events
        .iter()
        .any(|e| matches!(e.kind, EventKind::Retry | EventKind::Requeue))
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

/// C1.
fn check_acknowledged(history: &History, jobs: &HashMap<&str, &JobRecord>, out: &mut Verdict) {
    for s in &history.submits {
        let ids: BTreeSet<&str> = s
            .attempts
            .iter()
            .filter_map(|a| match &a.outcome {
                Outcome::Acked { id, .. } => Some(id.as_str()),
                Outcome::Unacked { .. } => None,
            })
            .collect();
        if ids.len() > 1 {
            out.violations.push(Violation {
                invariant: Invariant::C1,
                job: None,
                message: format!(
                    "submit {} was acknowledged as different jobs: {ids:?}",
                    s.key
                ),
                events: Vec::new(),
            });
        }
        for id in ids {
            match jobs.get(id) {
                Some(j) if j.found => {}
                Some(_) => out.violations.push(Violation {
                    invariant: Invariant::C1,
                    job: Some(id.to_string()),
                    message: format!("acknowledged submit {} is unknown to the cluster", s.key),
                    events: Vec::new(),
                }),
                None => out.violations.push(Violation {
                    invariant: Invariant::C1,
                    job: Some(id.to_string()),
                    message: format!("acknowledged submit {} was never fetched", s.key),
                    events: Vec::new(),
                }),
            }
        }
    }
}

/// C2.
fn check_terminal_once(job: &JobRecord, events: &[&Event], out: &mut Vec<Violation>) {
    if reopened_by_operator(events) {
        return;
    }
    let terminal: Vec<&Event> = events
        .iter()
        .copied()
        .filter(|e| is_terminal(&e.state))
        .collect();
    if distinct_writes(&terminal, |_| true) > 1 {
        out.push(Violation {
            invariant: Invariant::C2,
            job: Some(job.id.clone()),
            message: "more than one write left the job terminal".into(),
            events: terminal.into_iter().cloned().collect(),
        });
    }
}

/// C3, per job; the total is compared in [`check`].
fn check_completions(job: &JobRecord, events: &[&Event], out: &mut Vec<Violation>) {
    if reopened_by_operator(events) {
        return;
    }
    let completes: Vec<Event> = events
        .iter()
        .filter(|e| e.kind == EventKind::Complete)
        .map(|e| (*e).clone())
        .collect();
    let n = distinct_writes(events, |e| e.kind == EventKind::Complete);
    let state = job.state.as_deref().unwrap_or("");
    // Without review, `complete` leads to succeeded; with review, to review, shipped or rejected.
    let completed_state = matches!(state, "succeeded" | "review" | "shipped" | "rejected");
    let message = if n > 1 {
        Some(format!("{n} complete events"))
    } else if state == "succeeded" && n == 0 {
        Some("succeeded without a complete event".to_string())
    } else if n == 1 && !completed_state {
        Some(format!("a complete event, but the job ended {state}"))
    } else {
        None
    };
    if let Some(message) = message {
        out.push(Violation {
            invariant: Invariant::C3,
            job: Some(job.id.clone()),
            message,
            events: completes,
        });
    }
}

/// C4.
fn check_fencing(job: &JobRecord, events: &[&Event], out: &mut Vec<Violation>) {
    let mut last_claim: Option<&Event> = None;
    for e in events {
        let Some(factory) = writer(e) else { continue };
        if e.kind == EventKind::Claim {
            if claimed_by(e) != Some(factory) {
                out.push(Violation {
                    invariant: Invariant::C4,
                    job: Some(job.id.clone()),
                    message: format!("claim by factory {factory} leased to another factory"),
                    events: vec![(*e).clone()],
                });
            }
            last_claim = Some(e);
            continue;
        }
        let Some(claim) = last_claim else {
            out.push(Violation {
                invariant: Invariant::C4,
                job: Some(job.id.clone()),
                message: format!("{} by factory {factory} with no claim before it", e.kind),
                events: vec![(*e).clone()],
            });
            continue;
        };
        let holder = claimed_by(claim).or(writer(claim));
        if holder != Some(factory) || lease_epoch(e) != claim.epoch {
            out.push(Violation {
                invariant: Invariant::C4,
                job: Some(job.id.clone()),
                message: format!(
                    "{} by factory {factory} under epoch {} accepted, but the latest claim is \
                     epoch {} for {}",
                    e.kind,
                    lease_epoch(e),
                    claim.epoch,
                    recorded(holder)
                ),
                events: vec![claim.clone(), (*e).clone()],
            });
        }
    }
}

/// C5.
fn check_epochs(job: &JobRecord, events: &[&Event], out: &mut Vec<Violation>) {
    let mut prev: Option<&Event> = None;
    let mut highest: Option<&Event> = None;
    for e in events {
        if let Some(p) = prev
            && e.epoch < p.epoch
        {
            out.push(Violation {
                invariant: Invariant::C5,
                job: Some(job.id.clone()),
                message: format!("epoch went down from {} to {}", p.epoch, e.epoch),
                events: vec![p.clone(), (*e).clone()],
            });
        }
        if e.kind == EventKind::Claim
            && let Some(h) = highest
            && e.epoch <= h.epoch
        {
            out.push(Violation {
                invariant: Invariant::C5,
                job: Some(job.id.clone()),
                message: format!(
                    "claim at epoch {} is not above the earlier epoch {}",
                    e.epoch, h.epoch
                ),
                events: vec![h.clone(), (*e).clone()],
            });
        }
        prev = Some(e);
        if highest.is_none_or(|h| e.epoch > h.epoch) {
            highest = Some(e);
        }
    }
}

/// C6.
fn check_single_holder(job: &JobRecord, events: &[&Event], out: &mut Vec<Violation>) {
    // Lease epoch → the first factory event seen under it.
    let mut holders: BTreeMap<u64, &Event> = BTreeMap::new();
    let mut claims: BTreeMap<u64, &Event> = BTreeMap::new();
    for e in events {
        let Some(factory) = writer(e) else { continue };
        if e.kind == EventKind::Claim
            && let Some(first) = claims.insert(e.epoch, e)
        {
            out.push(Violation {
                invariant: Invariant::C6,
                job: Some(job.id.clone()),
                message: format!("two claims granted epoch {}", e.epoch),
                events: vec![first.clone(), (*e).clone()],
            });
        }
        let epoch = lease_epoch(e);
        match holders.get(&epoch) {
            Some(first) if writer(first) != Some(factory) => out.push(Violation {
                invariant: Invariant::C6,
                job: Some(job.id.clone()),
                message: format!(
                    "factories {} and {factory} both wrote under epoch {epoch}",
                    recorded(writer(first))
                ),
                events: vec![(*first).clone(), (*e).clone()],
            }),
            Some(_) => {}
            None => {
                holders.insert(epoch, e);
            }
        }
    }
}

/// Whether a factory write of this kind gives its lease up (and leaves an event behind).
fn ends_lease(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::Complete | EventKind::Fail | EventKind::Release
    )
}

/// What a job's timeline says about its leases, to match the journals against.
struct StoredLeases {
    /// Lease epoch → the factory the claim leased it to.
    claims: BTreeMap<u64, FactoryId>,
    /// (kind, lease epoch, factory) of every `complete`, `fail` and `release`.
    ends: BTreeSet<(EventKind, u64, FactoryId)>,
}

impl StoredLeases {
    fn of(job: &JobRecord) -> Self {
        let mut claims = BTreeMap::new();
        let mut ends = BTreeSet::new();
        for e in &job.events {
            let Some(factory) = writer(e) else { continue };
            if e.kind == EventKind::Claim {
                claims.insert(e.epoch, claimed_by(e).unwrap_or(factory));
            } else if ends_lease(e.kind) {
                ends.insert((e.kind, lease_epoch(e), factory));
            }
        }
        StoredLeases { claims, ends }
    }

    fn holder(&self, epoch: u64) -> Option<FactoryId> {
        self.claims.get(&epoch).copied()
    }
}

/// C4, C6 and C7 from the factories' side.
fn check_factory_side(history: &History, jobs: &HashMap<&str, &JobRecord>, out: &mut Verdict) {
    let stored: HashMap<&str, StoredLeases> = jobs
        .iter()
        .filter(|(_, j)| j.found)
        .map(|(id, j)| (*id, StoredLeases::of(j)))
        .collect();
    // (job, epoch) → the factories a claim answer handed that lease to.
    let mut grants: BTreeMap<(String, u64), BTreeSet<FactoryId>> = BTreeMap::new();
    for journal in &history.factories {
        // A journal names its factory as the agent enrolled it; one that cannot is matched
        // against nothing (its exchanges count as unmatched).
        let me = Uuid::parse_str(&journal.factory_id)
            .map(FactoryId)
            .unwrap_or(FactoryId(Uuid::nil()));
        // Per factory: when it first heard each (job, epoch) was fenced, and when it first sent
        // each request id (a retry replays the first answer, so it counts from its first send).
        let mut fenced_at: HashMap<(String, u64), u64> = HashMap::new();
        let mut first_sent: HashMap<&str, u64> = HashMap::new();
        for e in &journal.exchanges {
            if let Some(w) = &e.write {
                let t = first_sent.entry(w.request_id.as_str()).or_insert(e.sent_at);
                *t = (*t).min(e.sent_at);
                if e.fenced() {
                    let t = fenced_at
                        .entry((w.job.to_string(), w.epoch))
                        .or_insert(e.answered_at);
                    *t = (*t).min(e.answered_at);
                }
            }
        }
        for e in &journal.exchanges {
            out.factory_requests += 1;
            let mut matched = false;
            if e.accepted() {
                for g in &e.leases {
                    let job = g.job.to_string();
                    grants.entry((job.clone(), g.epoch)).or_default().insert(me);
                    if let Some(s) = stored.get(job.as_str()) {
                        matched = true;
                        if s.holder(g.epoch) != Some(me) {
                            out.violations.push(journal_violation(
                                Invariant::C7,
                                &job,
                                format!(
                                    "a claim answer handed factory {me} epoch {}, but the store \
                                     records {}",
                                    g.epoch,
                                    recorded(s.holder(g.epoch))
                                ),
                                e,
                            ));
                        }
                    }
                }
            }
            if let Some(w) = e.write.as_ref().filter(|_| e.accepted()) {
                let job = w.job.to_string();
                let kind = w.action.parse::<EventKind>().ok();
                let ends_lease = kind.is_some_and(ends_lease);
                if let Some(s) = stored.get(job.as_str()) {
                    matched = true;
                    if s.holder(w.epoch) != Some(me) {
                        out.violations.push(journal_violation(
                            Invariant::C4,
                            &job,
                            format!(
                                "{} from factory {me} accepted under epoch {}, which the store \
                                 leased to {}",
                                w.action,
                                w.epoch,
                                recorded(s.holder(w.epoch))
                            ),
                            e,
                        ));
                    }
                    if let Some(kind) = kind.filter(|_| ends_lease)
                        && !s.ends.contains(&(kind, w.epoch, me))
                    {
                        out.violations.push(journal_violation(
                            Invariant::C7,
                            &job,
                            format!(
                                "{} under epoch {} was acknowledged to factory {me} but is not \
                                 in the timeline",
                                w.action, w.epoch
                            ),
                            e,
                        ));
                    }
                }
                if let Some(seen) = &e.answer {
                    let expected = w.epoch + u64::from(w.action == "release");
                    let leased = matches!(seen.state.as_str(), "leased" | "running" | "preempting");
                    if seen.epoch != expected || !(ends_lease || leased) {
                        out.violations.push(journal_violation(
                            Invariant::C4,
                            &job,
                            format!(
                                "{} under epoch {} from factory {me} was accepted with the job \
                                 at epoch {}, {}",
                                w.action, w.epoch, seen.epoch, seen.state
                            ),
                            e,
                        ));
                    }
                }
                if let Some(&fenced) = fenced_at.get(&(job.clone(), w.epoch))
                    && first_sent.get(w.request_id.as_str()).copied().unwrap_or(0) > fenced
                {
                    out.violations.push(journal_violation(
                        Invariant::C4,
                        &job,
                        format!(
                            "{} under epoch {} accepted from factory {me} after the coordinator \
                             had fenced that epoch for it (at {fenced})",
                            w.action, w.epoch
                        ),
                        e,
                    ));
                }
            }
            if matched {
                out.factory_requests_matched += 1;
            }
        }
    }
    for ((job, epoch), holders) in grants {
        if holders.len() > 1 {
            out.violations.push(Violation {
                invariant: Invariant::C6,
                job: Some(job),
                message: format!(
                    "claim answers handed epoch {epoch} to factories {}",
                    holders
                        .iter()
                        .map(FactoryId::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                events: Vec::new(),
            });
        }
    }
}

fn recorded(holder: Option<FactoryId>) -> String {
    holder.map_or_else(|| "no such claim".to_string(), |f| format!("factory {f}"))
}

fn journal_violation(inv: Invariant, job: &str, message: String, e: &Exchange) -> Violation {
    Violation {
        invariant: inv,
        job: Some(job.to_string()),
        message: format!(
            "{message} (request to {}{} sent at {}, answered {} at {})",
            e.node, e.path, e.sent_at, e.status, e.answered_at
        ),
        events: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Attempt, Submit};
    use gigafactory_core::event::Author;

    const F1: &str = "0190f1f1-0000-7000-8000-000000000001";
    const F2: &str = "0190f2f2-0000-7000-8000-000000000002";

    fn ev(seq: u64, kind: &str, actor: &str, epoch: u64, state: &str) -> Event {
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

    fn by(f: &str) -> String {
        Author::Factory(FactoryId(Uuid::parse_str(f).unwrap())).to_string()
    }

    fn claim(seq: u64, f: &str, epoch: u64) -> Event {
        Event {
            detail: Some(format!("factory {f}")),
            ..ev(seq, "claim", &by(f), epoch, "leased")
        }
    }

    fn submitted() -> Event {
        ev(1, "submitted", "operator:admin", 0, "queued")
    }

    /// A history of one acknowledged job with `events`, ending in `state`.
    fn one_job(state: &str, events: Vec<Event>) -> History {
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
            }],
            ..History::default()
        }
    }

    /// Asserts the checker finds `inv` broken in `h` (others may be broken too).
    fn detects(h: &History, inv: Invariant) {
        let v = check(h);
        assert!(
            v.violations_of(inv) > 0,
            "{inv} not detected: {:?}",
            v.violations
        );
    }

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
    fn a_lost_submit_breaks_c1() {
        let mut h = one_job("queued", vec![submitted()]);
        h.jobs[0].found = false;
        detects(&h, Invariant::C1);
        h.jobs.clear();
        detects(&h, Invariant::C1);
    }

    #[test]
    fn one_key_acknowledged_as_two_jobs_breaks_c1() {
        let mut h = one_job("queued", vec![submitted()]);
        let mut second = h.submits[0].attempts[0].clone();
        second.outcome = Outcome::Acked {
            id: "j2".into(),
            created: false,
        };
        h.submits[0].attempts.push(second);
        detects(&h, Invariant::C1);
    }

    #[test]
    fn a_second_terminal_write_breaks_c2() {
        let h = one_job(
            "dead",
            vec![
                submitted(),
                claim(2, F1, 1),
                ev(3, "complete", &by(F1), 1, "succeeded"),
                ev(4, "expire", "reaper", 2, "dead"),
            ],
        );
        detects(&h, Invariant::C2);
    }

    #[test]
    fn an_operator_retry_may_reopen_a_terminal_job() {
        let h = one_job(
            "succeeded",
            vec![
                submitted(),
                claim(2, F1, 1),
                ev(3, "fail", &by(F1), 1, "dead"),
                ev(4, "retry", "operator:admin", 1, "queued"),
                claim(5, F1, 2),
                ev(6, "complete", &by(F1), 2, "succeeded"),
            ],
        );
        assert_eq!(check(&h).violations, vec![]);
    }

    #[test]
    fn success_without_completion_or_two_completions_break_c3() {
        detects(
            &one_job("succeeded", vec![submitted(), claim(2, F1, 1)]),
            Invariant::C3,
        );
        detects(
            &one_job(
                "succeeded",
                vec![
                    submitted(),
                    claim(2, F1, 1),
                    ev(3, "complete", &by(F1), 1, "succeeded"),
                    ev(4, "complete", &by(F1), 1, "succeeded"),
                ],
            ),
            Invariant::C3,
        );
        detects(
            &one_job(
                "queued",
                vec![
                    submitted(),
                    claim(2, F1, 1),
                    ev(3, "complete", &by(F1), 1, "queued"),
                ],
            ),
            Invariant::C3,
        );
    }

    #[test]
    fn a_write_accepted_after_expiry_breaks_c4() {
        // The stopped holder wakes after the reaper fenced it, and its completion is accepted.
        let h = one_job(
            "succeeded",
            vec![
                submitted(),
                claim(2, F1, 1),
                ev(3, "expire", "reaper", 2, "failed"),
                ev(4, "complete", &by(F1), 2, "succeeded"),
            ],
        );
        detects(&h, Invariant::C4);
    }

    #[test]
    fn a_write_from_a_factory_that_holds_no_lease_breaks_c4() {
        let h = one_job(
            "running",
            vec![
                submitted(),
                claim(2, F1, 1),
                ev(3, "stage", &by(F2), 1, "running"),
            ],
        );
        detects(&h, Invariant::C4);
        let h = one_job(
            "running",
            vec![submitted(), ev(2, "stage", &by(F2), 1, "running")],
        );
        detects(&h, Invariant::C4);
    }

    #[test]
    fn a_falling_epoch_or_a_claim_that_does_not_fence_breaks_c5() {
        let h = one_job(
            "queued",
            vec![
                submitted(),
                claim(2, F1, 2),
                ev(3, "expire", "reaper", 1, "queued"),
            ],
        );
        detects(&h, Invariant::C5);
        let h = one_job(
            "leased",
            vec![
                submitted(),
                claim(2, F1, 1),
                ev(3, "expire", "reaper", 2, "failed"),
                claim(4, F2, 2),
            ],
        );
        detects(&h, Invariant::C5);
    }

    #[test]
    fn two_holders_of_one_epoch_break_c6() {
        let h = one_job(
            "leased",
            vec![submitted(), claim(2, F1, 1), claim(3, F2, 1)],
        );
        detects(&h, Invariant::C6);
        let h = one_job(
            "running",
            vec![
                submitted(),
                claim(2, F1, 1),
                ev(3, "stage", &by(F1), 1, "running"),
                ev(4, "stage", &by(F2), 1, "running"),
            ],
        );
        detects(&h, Invariant::C6);
    }

    /// Job "j1" needs a uuid id to appear in journals.
    const J: &str = "0190aaaa-0000-7000-8000-00000000000a";

    fn job_id() -> gigafactory_core::job::JobId {
        gigafactory_core::job::JobId(J.parse().unwrap())
    }

    fn journaled(events: Vec<Event>, journals: Vec<(&str, Vec<Exchange>)>) -> History {
        let mut h = one_job("succeeded", events);
        h.submits[0].attempts[0].outcome = Outcome::Acked {
            id: J.into(),
            created: true,
        };
        h.jobs[0].id = J.into();
        h.factories = journals
            .into_iter()
            .enumerate()
            .map(|(index, (f, exchanges))| crate::history::FactoryJournal {
                index,
                factory_id: f.into(),
                exchanges,
            })
            .collect();
        h
    }

    fn sent(at: u64, status: u16) -> Exchange {
        Exchange {
            sent_at: at,
            answered_at: at + 1,
            node: "http://127.0.0.1:1".into(),
            path: "/v1/claims".into(),
            write: None,
            status,
            error: None,
            leases: Vec::new(),
            answer: None,
        }
    }

    fn granted(at: u64, epoch: u64) -> Exchange {
        Exchange {
            leases: vec![gigafactory_core::journal::Grant {
                job: job_id(),
                epoch,
            }],
            ..sent(at, 200)
        }
    }

    fn wrote(at: u64, action: &str, epoch: u64, request: &str, status: u16) -> Exchange {
        Exchange {
            path: format!("/v1/jobs/{J}/{action}"),
            write: Some(gigafactory_core::journal::WriteTag {
                job: job_id(),
                action: action.into(),
                epoch,
                request_id: request.into(),
            }),
            error: (status == 409).then(|| "fenced".to_string()),
            answer: (status == 200).then(|| gigafactory_core::journal::Seen {
                epoch: epoch + u64::from(action == "release"),
                state: match action {
                    "complete" => "succeeded",
                    "fail" => "failed",
                    "release" => "queued",
                    _ => "running",
                }
                .into(),
            }),
            ..sent(at, status)
        }
    }

    /// F1 claims epoch 1, is stopped past its lease, F2 claims epoch 3 and completes; F1 wakes
    /// and is fenced.
    fn fenced_run() -> Vec<Event> {
        vec![
            submitted(),
            claim(2, F1, 1),
            ev(3, "expire", "reaper", 2, "failed"),
            claim(4, F2, 3),
            ev(5, "complete", &by(F2), 3, "succeeded"),
        ]
    }

    #[test]
    fn journals_that_match_the_store_have_no_violation() {
        let h = journaled(
            fenced_run(),
            vec![
                (
                    F1,
                    vec![
                        granted(10, 1),
                        wrote(20, "renew", 1, "r1", 200),
                        wrote(90, "complete", 1, "r2", 409),
                        // A retry of a write first sent before the fence replays its answer.
                        wrote(95, "renew", 1, "r1", 200),
                    ],
                ),
                (
                    F2,
                    vec![
                        sent(40, 0),
                        granted(50, 3),
                        wrote(60, "complete", 3, "r3", 200),
                    ],
                ),
            ],
        );
        let v = check(&h);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        assert_eq!((v.factory_requests, v.factory_requests_matched), (7, 5));
        assert_eq!(h.fenced_refusals(), 1);
    }

    #[test]
    fn a_lease_handed_out_but_not_recorded_breaks_c7() {
        let h = journaled(
            fenced_run(),
            vec![(F1, vec![granted(10, 1), granted(55, 3)])],
        );
        detects(&h, Invariant::C7);
    }

    #[test]
    fn an_acknowledged_completion_missing_from_the_timeline_breaks_c7() {
        let h = journaled(
            fenced_run(),
            vec![(F1, vec![granted(10, 1), wrote(20, "fail", 1, "r1", 200)])],
        );
        detects(&h, Invariant::C7);
    }

    #[test]
    fn one_lease_handed_to_two_factories_breaks_c6() {
        let h = journaled(
            fenced_run(),
            vec![(F1, vec![granted(50, 3)]), (F2, vec![granted(50, 3)])],
        );
        detects(&h, Invariant::C6);
    }

    #[test]
    fn an_accepted_write_under_a_lease_the_factory_does_not_hold_breaks_c4() {
        let h = journaled(
            fenced_run(),
            vec![(F1, vec![wrote(60, "renew", 3, "r1", 200)])],
        );
        detects(&h, Invariant::C4);
    }

    #[test]
    fn an_accepted_write_whose_answer_shows_another_epoch_breaks_c4() {
        // A renew at epoch 1 answered as if the job were at epoch 3: accepted against the
        // wrong lease.
        let mut renew = wrote(30, "renew", 1, "r1", 200);
        renew.answer = Some(gigafactory_core::journal::Seen {
            epoch: 3,
            state: "running".into(),
        });
        let h = journaled(fenced_run(), vec![(F1, vec![granted(10, 1), renew])]);
        detects(&h, Invariant::C4);
    }

    #[test]
    fn a_write_accepted_after_its_epoch_was_fenced_breaks_c4() {
        let h = journaled(
            fenced_run(),
            vec![(
                F1,
                vec![
                    granted(10, 1),
                    wrote(90, "renew", 1, "r1", 409),
                    wrote(95, "renew", 1, "r2", 200),
                ],
            )],
        );
        detects(&h, Invariant::C4);
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

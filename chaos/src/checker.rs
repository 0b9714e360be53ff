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
//!   under one lease epoch come from one factory, and no two claims share an epoch.
//!
//! How epochs appear in events: an event carries the job's epoch *after* its write. A claim
//! sets the new lease's epoch; `stage`, `complete` and `fail` keep it; `release` gives the job
//! back and bumps it, so a release's lease epoch is its epoch minus one.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use gigafactory_core::wire::Event;
use serde::{Deserialize, Serialize};

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
}

impl Invariant {
    pub const ALL: [Invariant; 6] = [
        Invariant::C1,
        Invariant::C2,
        Invariant::C3,
        Invariant::C4,
        Invariant::C5,
        Invariant::C6,
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
        v.complete_events += distinct_writes(&events, |e| e.kind == "complete");
        check_terminal_once(job, &events, &mut v.violations);
        check_completions(job, &events, &mut v.violations);
        check_fencing(job, &events, &mut v.violations);
        check_epochs(job, &events, &mut v.violations);
        check_single_holder(job, &events, &mut v.violations);
    }
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
        .any(|e| matches!(e.kind.as_str(), "retry" | "requeue"))
}

/// The factory id of a factory's write (`factory:<id>`).
fn writer(e: &Event) -> Option<&str> {
    e.actor.strip_prefix("factory:")
}

/// The factory a claim leased to, from its detail (`factory <id>`).
fn claimed_by(e: &Event) -> Option<&str> {
    e.detail.as_deref().and_then(|d| d.strip_prefix("factory "))
}

/// The epoch of the lease a factory write was made under (see the module docs).
fn lease_epoch(e: &Event) -> u64 {
    if e.kind == "release" {
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
        .filter(|e| e.kind == "complete")
        .map(|e| (*e).clone())
        .collect();
    let n = distinct_writes(events, |e| e.kind == "complete");
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
        if e.kind == "claim" {
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
                    holder.unwrap_or("?")
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
        if e.kind == "claim"
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
        if e.kind == "claim"
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
                    writer(first).unwrap_or("?")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Attempt, Submit};

    const F1: &str = "0190f1f1-0000-7000-8000-000000000001";
    const F2: &str = "0190f2f2-0000-7000-8000-000000000002";

    fn ev(seq: u64, kind: &str, actor: &str, epoch: u64, state: &str) -> Event {
        Event {
            seq,
            at: 1_000 + seq * 100,
            kind: kind.into(),
            actor: actor.into(),
            epoch,
            state: state.into(),
            detail: None,
        }
    }

    fn by(f: &str) -> String {
        format!("factory:{f}")
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

    fn only(h: &History, inv: Invariant) {
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
        only(&h, Invariant::C1);
        h.jobs.clear();
        only(&h, Invariant::C1);
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
        only(&h, Invariant::C1);
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
        only(&h, Invariant::C2);
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
        only(
            &one_job("succeeded", vec![submitted(), claim(2, F1, 1)]),
            Invariant::C3,
        );
        only(
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
        only(
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
        only(&h, Invariant::C4);
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
        only(&h, Invariant::C4);
        let h = one_job(
            "running",
            vec![submitted(), ev(2, "stage", &by(F2), 1, "running")],
        );
        only(&h, Invariant::C4);
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
        only(&h, Invariant::C5);
        let h = one_job(
            "leased",
            vec![
                submitted(),
                claim(2, F1, 1),
                ev(3, "expire", "reaper", 2, "failed"),
                claim(4, F2, 2),
            ],
        );
        only(&h, Invariant::C5);
    }

    #[test]
    fn two_holders_of_one_epoch_break_c6() {
        let h = one_job(
            "leased",
            vec![submitted(), claim(2, F1, 1), claim(3, F2, 1)],
        );
        only(&h, Invariant::C6);
        let h = one_job(
            "running",
            vec![
                submitted(),
                claim(2, F1, 1),
                ev(3, "stage", &by(F1), 1, "running"),
                ev(4, "stage", &by(F2), 1, "running"),
            ],
        );
        only(&h, Invariant::C6);
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

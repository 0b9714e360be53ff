//! The store-side checks: what the cluster kept, read from the history alone. The acknowledged
//! submits are matched against the fetched jobs (C1), and each job's timeline, in sequence
//! order, is checked for a second terminal write (C2), completions that do not match its end
//! (C3), factory writes outside the latest claim's lease (C4), falling epochs or claims that do
//! not fence (C5) and two holders of one lease (C6). The invariants are stated in [`super`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use gigafactory_core::event::EventKind;
use gigafactory_core::wire::Event;

use super::{Invariant, Verdict, Violation, claimed_by, lease_epoch, recorded, writer};
use crate::history::{History, JobRecord, Outcome, is_terminal};

/// A job's events by sequence. Two events of one write share a sequence (a warning beside its
/// transition); the sort is stable so they keep their stored order.
pub(super) fn in_order(events: &[Event]) -> Vec<&Event> {
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| e.seq);
    sorted
}

/// How many writes (distinct sequences) have an event matching `pred`.
pub(super) fn distinct_writes(events: &[&Event], pred: impl Fn(&Event) -> bool) -> usize {
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

/// C1: every acknowledged id was fetched and found, and one idempotency key names one job.
pub(super) fn check_acknowledged(
    history: &History,
    jobs: &HashMap<&str, &JobRecord>,
    out: &mut Verdict,
) {
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

/// C2: at most one write leaves the job terminal, unless an operator re-opened it.
pub(super) fn check_terminal_once(job: &JobRecord, events: &[&Event], out: &mut Vec<Violation>) {
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

/// C3, per job: a succeeded job has exactly one `complete`, and a `complete` leads to a
/// completed state. The total is compared in [`check`](super::check).
pub(super) fn check_completions(job: &JobRecord, events: &[&Event], out: &mut Vec<Violation>) {
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

/// C4: every factory write carries the latest claim's epoch and comes from its factory.
pub(super) fn check_fencing(job: &JobRecord, events: &[&Event], out: &mut Vec<Violation>) {
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

/// C5: epochs never fall, and each claim's epoch is above every earlier one.
pub(super) fn check_epochs(job: &JobRecord, events: &[&Event], out: &mut Vec<Violation>) {
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

/// C6: no two claims share an epoch, and one factory writes under each lease epoch.
pub(super) fn check_single_holder(job: &JobRecord, events: &[&Event], out: &mut Vec<Violation>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::check;
    use crate::checker::fixtures::*;

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
}

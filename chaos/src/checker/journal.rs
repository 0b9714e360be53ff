//! The journal-side checks: C4, C6 and C7 from the factories' side. Each factory's journal
//! (every request and its answer, in that process's own order) is matched against the leases
//! the stored timelines record, as the module docs of [`super`] describe; the requests that
//! concern jobs outside the history are counted as unmatched.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use gigafactory_core::event::EventKind;
use gigafactory_core::job::FactoryId;
use gigafactory_core::journal::Exchange;
use uuid::Uuid;

use super::{Invariant, Verdict, Violation, claimed_by, lease_epoch, recorded, writer};
use crate::history::{History, JobRecord};

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
pub(super) fn check_factory_side(
    history: &History,
    jobs: &HashMap<&str, &JobRecord>,
    out: &mut Verdict,
) {
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
                // A usage report an end carries is sent with it, under its own id: alone
                // before, or carried again after, it is the same request.
                for id in std::iter::once(&w.request_id).chain(&w.usage) {
                    let t = first_sent.entry(id.as_str()).or_insert(e.sent_at);
                    *t = (*t).min(e.sent_at);
                }
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
                let sent_after = |fenced: u64| {
                    std::iter::once(&w.request_id)
                        .chain(&w.usage)
                        .any(|id| first_sent.get(id.as_str()).copied().unwrap_or(0) > fenced)
                };
                if let Some(&fenced) = fenced_at.get(&(job.clone(), w.epoch))
                    && sent_after(fenced)
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

/// A violation found in a journal, naming the request that shows it.
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
    use gigafactory_core::wire::Event;

    use super::*;
    use crate::checker::check;
    use crate::checker::fixtures::*;
    use crate::history::Outcome;

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
                usage: Vec::new(),
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

    /// `wrote`, carrying the usage reports `usage`.
    fn carrying(mut e: Exchange, usage: &[&str]) -> Exchange {
        let tag = e.write.as_mut().expect("a write");
        tag.usage = usage.iter().map(|u| u.to_string()).collect();
        e
    }

    #[test]
    fn usage_carried_on_an_end_is_checked_as_a_write_of_that_lease() {
        let run = |factory: &'static str, epoch: u64| {
            journaled(
                fenced_run(),
                vec![(
                    factory,
                    vec![
                        wrote(55, "usage", epoch, "u1", 200),
                        carrying(wrote(60, "complete", epoch, "r3", 200), &["u1", "u2"]),
                    ],
                )],
            )
        };
        let v = check(&run(F2, 3));
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        detects(&run(F1, 3), Invariant::C4);
    }

    #[test]
    fn a_usage_report_first_sent_after_its_epoch_was_fenced_breaks_c4_even_when_carried() {
        // F1 heard epoch 1 fenced at 91; a report it first sent after that, then carried on a
        // retry of an end first sent before, must not have been taken.
        let h = journaled(
            fenced_run(),
            vec![(
                F1,
                vec![
                    granted(10, 1),
                    wrote(80, "complete", 1, "r2", 0),
                    wrote(90, "renew", 1, "r1", 409),
                    wrote(92, "usage", 1, "u9", 0),
                    carrying(wrote(95, "complete", 1, "r2", 200), &["u9"]),
                ],
            )],
        );
        let v = check(&h);
        assert!(
            v.violations.iter().any(|x| x.invariant == Invariant::C4
                && x.message.contains("after the coordinator had fenced")),
            "{:?}",
            v.violations
        );
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
}

//! The dependency rules between a job and its parents, written once: when a child may run
//! (every parent succeeded), when it can never run as things stand (a parent ended dead,
//! cancelled or rejected: it is cancelled with that reason), and when a parent's new life
//! (`retry`, `requeue`) brings a child cancelled that way back. The store applies them
//! transitively in the transaction that changed the parent (`storage::repo`).

use crate::job::{Command, Job, JobId, JobState};

/// Where a job's parents stand, as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Every parent succeeded (or there are none).
    Ready,
    /// Some parent has not finished; none ended badly.
    Waiting,
    /// This parent (the first in the job's order) ended badly and was not retried.
    Blocked { parent: JobId, state: &'static str },
}

/// What a parent's state means to its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Succeeded or shipped: children may run.
    Succeeded,
    /// Dead, cancelled or rejected: children cannot run.
    Ended,
    /// Anything else: children wait.
    Open,
}

/// What `state` means to the children of a job in it.
pub fn outcome(state: &JobState) -> Outcome {
    if state.is_success() {
        Outcome::Succeeded
    } else if state.is_terminal() {
        Outcome::Ended
    } else {
        Outcome::Open
    }
}

/// Where a child stands given its parents' states, in the child's parent order.
pub fn readiness<'a>(parents: impl IntoIterator<Item = (JobId, &'a JobState)>) -> Readiness {
    let mut waiting = false;
    for (parent, state) in parents {
        match outcome(state) {
            Outcome::Succeeded => {}
            Outcome::Ended => {
                return Readiness::Blocked {
                    parent,
                    state: state.name(),
                };
            }
            Outcome::Open => waiting = true,
        }
    }
    if waiting {
        Readiness::Waiting
    } else {
        Readiness::Ready
    }
}

/// Whether a change of a job from `old` to `new` can matter to its children.
pub fn concerns_children(old: &JobState, new: &JobState) -> bool {
    outcome(old) != outcome(new)
}

/// What a child must do after one of its parents changed, given where its parents stand now:
/// a pending child runs or is cancelled; a child cancelled because of a parent that is no
/// longer ended comes back (to wait, to run, or cancelled by another ended parent).
pub fn follow_up(child: &Job, parents: Readiness) -> Option<Command> {
    match (&child.state, parents) {
        (JobState::Pending, Readiness::Ready) => Some(Command::ParentsDone),
        (JobState::Pending, Readiness::Blocked { parent, state }) => {
            Some(Command::ParentEnded { parent, state })
        }
        (
            JobState::Cancelled {
                by_parent: Some(cause),
            },
            r,
        ) if !matches!(r, Readiness::Blocked { parent, .. } if parent == *cause) => {
            Some(Command::ParentRevived { parent: *cause })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::new_job;
    use crate::manifest::{JobSpec, Payload};
    use uuid::Uuid;

    fn id(n: u128) -> JobId {
        JobId(Uuid::from_u128(n))
    }

    fn child(state: JobState) -> Job {
        let spec: JobSpec = JobSpec {
            payload: Payload::Command("true".into()),
            ..serde_json::from_value(serde_json::json!({
                "key": "c", "title": "c", "product": "p", "payload": {"command": "true"}
            }))
            .unwrap()
        };
        Job {
            state,
            ..new_job(id(9), spec, vec![id(1), id(2)], 0)
        }
    }

    #[test]
    fn readiness_waits_for_every_parent_and_names_the_first_that_ended() {
        let done = JobState::Succeeded;
        let running = JobState::Queued { not_before: 0 };
        let dead = JobState::Dead;
        assert_eq!(readiness([]), Readiness::Ready);
        assert_eq!(
            readiness([(id(1), &done), (id(2), &JobState::Shipped)]),
            Readiness::Ready
        );
        assert_eq!(
            readiness([(id(1), &done), (id(2), &running)]),
            Readiness::Waiting
        );
        assert_eq!(
            readiness([
                (id(1), &running),
                (id(2), &dead),
                (id(3), &JobState::Rejected)
            ]),
            Readiness::Blocked {
                parent: id(2),
                state: "dead"
            }
        );
    }

    #[test]
    fn a_pending_child_runs_or_is_cancelled_by_its_parents() {
        let pending = child(JobState::Pending);
        assert_eq!(
            follow_up(&pending, Readiness::Ready),
            Some(Command::ParentsDone)
        );
        assert_eq!(follow_up(&pending, Readiness::Waiting), None);
        let blocked = Readiness::Blocked {
            parent: id(1),
            state: "cancelled",
        };
        assert_eq!(
            follow_up(&pending, blocked),
            Some(Command::ParentEnded {
                parent: id(1),
                state: "cancelled"
            })
        );
    }

    #[test]
    fn a_child_cancelled_by_a_parent_comes_back_only_when_that_parent_does() {
        let cancelled = child(JobState::Cancelled {
            by_parent: Some(id(1)),
        });
        let still = Readiness::Blocked {
            parent: id(1),
            state: "dead",
        };
        assert_eq!(follow_up(&cancelled, still), None);
        for r in [
            Readiness::Waiting,
            Readiness::Ready,
            Readiness::Blocked {
                parent: id(2),
                state: "dead",
            },
        ] {
            assert_eq!(
                follow_up(&cancelled, r),
                Some(Command::ParentRevived { parent: id(1) }),
                "{r:?}"
            );
        }
        let by_operator = child(JobState::Cancelled { by_parent: None });
        assert_eq!(follow_up(&by_operator, Readiness::Ready), None);
        assert_eq!(
            follow_up(&child(JobState::Succeeded), Readiness::Ready),
            None
        );
    }

    #[test]
    fn only_changes_between_succeeded_ended_and_open_concern_children() {
        let q = JobState::Queued { not_before: 0 };
        assert!(concerns_children(&JobState::Dead, &q));
        assert!(concerns_children(&q, &JobState::Succeeded));
        assert!(concerns_children(&JobState::Review, &JobState::Rejected));
        assert!(!concerns_children(&JobState::Succeeded, &JobState::Shipped));
        assert!(!concerns_children(&JobState::Pending, &q));
        assert!(!concerns_children(
            &JobState::Dead,
            &JobState::Cancelled { by_parent: None }
        ));
    }
}

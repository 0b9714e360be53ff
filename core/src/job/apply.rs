//! The state machine: `apply` takes a job, a command, the time and where the job's parents
//! stand, and returns the new job with its effects or the reason it refuses. Every change of
//! every job is this function; it asserts the invariants J1–J4 (see `job`).

use super::{Command, Effect, FactoryId, Job, JobError, JobState, Lease, Millis, wall_clock_used};
use crate::backoff::Backoff;
use crate::parents::Readiness;

fn illegal(cmd: &Command, state: &JobState) -> JobError {
    JobError::IllegalTransition {
        command: cmd.name(),
        state: state.name(),
    }
}

/// J3: whether `factory` writing under `epoch` holds `job`'s current lease. Every factory
/// write (commands, log chunks) is checked here, inside the transaction that applies it.
pub fn check_fence(job: &Job, factory: FactoryId, epoch: u64) -> Result<(), JobError> {
    let fenced = JobError::Fenced {
        presented: epoch,
        current: job.epoch,
    };
    if epoch != job.epoch {
        return Err(fenced);
    }
    match job.state.lease() {
        Some(l) if l.factory == factory => Ok(()),
        Some(_) => Err(JobError::NotLeaseHolder),
        None => Err(fenced),
    }
}

/// Where a job starting a new life (or whose parents changed) goes, given its parents.
fn reopened(
    cmd: &Command,
    parents: Readiness,
    now: Millis,
    effects: &mut Vec<Effect>,
) -> Result<JobState, JobError> {
    match parents {
        Readiness::Ready => {
            effects.push(Effect::Ready { at: now });
            Ok(JobState::Queued { not_before: now })
        }
        Readiness::Waiting => Ok(JobState::Pending),
        Readiness::Blocked { parent, state } => match cmd {
            // A child brought back by one parent may still be held by another.
            Command::ParentRevived { .. } => Ok(JobState::Cancelled {
                by_parent: Some(parent),
            }),
            _ => Err(JobError::ParentEnded { parent, state }),
        },
    }
}

/// Applies `cmd` to `job` at time `now`: the new job and what must happen outside, or why not.
/// `parents` says where the job's parents stand; only commands that
/// [need it](Command::needs_parents) read it.
pub fn apply(
    job: &Job,
    cmd: Command,
    now: Millis,
    backoff: &Backoff,
    parents: Readiness,
) -> Result<(Job, Vec<Effect>), JobError> {
    if let Some((factory, epoch)) = cmd.fence() {
        // J3: fencing first, so a late writer learns it lost the lease whatever state the job
        // is in now.
        check_fence(job, factory, epoch)?;
    }
    let mut next = job.clone();
    let mut effects = Vec::new();
    let state = &job.state;
    match (cmd, state) {
        (
            Command::Claim {
                factory,
                ttl_ms,
                placement,
            },
            JobState::Queued { not_before }
            | JobState::Failed {
                retry_at: not_before,
            },
        ) => {
            if *not_before > now {
                return Err(JobError::NotReady {
                    not_before: *not_before,
                });
            }
            next.epoch += 1;
            next.attempts += 1;
            next.placement = placement;
            next.stage = None;
            next.state = JobState::Leased {
                lease: Lease {
                    epoch: next.epoch,
                    factory,
                    granted_at: now,
                    expires_at: now + ttl_ms,
                },
            };
        }
        (
            Command::Renew { ttl_ms, .. },
            JobState::Leased { lease } | JobState::Running { lease },
        ) => {
            next.state = JobState::Running {
                lease: Lease {
                    expires_at: now + ttl_ms,
                    ..*lease
                },
            };
        }
        (
            Command::Renew { ttl_ms, .. },
            JobState::Preempting {
                lease,
                by,
                deadline,
            },
        ) => {
            // The holder keeps its lease while it checkpoints, but not past the grace deadline.
            let expires_at = (now + ttl_ms).min(*deadline);
            next.state = JobState::Preempting {
                lease: Lease {
                    expires_at,
                    ..*lease
                },
                by: *by,
                deadline: *deadline,
            };
        }
        (
            Command::Stage { stage, .. },
            JobState::Leased { lease } | JobState::Running { lease },
        ) => {
            next.stage = Some(stage);
            next.state = JobState::Running { lease: *lease };
        }
        (Command::Stage { stage, .. }, JobState::Preempting { .. }) => {
            next.stage = Some(stage);
        }
        (
            Command::Complete { .. },
            JobState::Leased { .. } | JobState::Running { .. } | JobState::Preempting { .. },
        ) => {
            next.state = if job.spec.review {
                JobState::Review
            } else {
                JobState::Succeeded
            };
            next.exit_code = Some(0);
            next.last_error = None;
            if next.state.is_terminal() {
                effects.push(Effect::Finished);
            }
        }
        (
            Command::Fail {
                error,
                exit_code,
                retryable,
                jitter,
                ..
            },
            JobState::Leased { .. } | JobState::Running { .. } | JobState::Preempting { .. },
        ) => {
            next.failures += 1;
            next.last_error = Some(error);
            next.exit_code = exit_code;
            retry_or_die(&mut next, retryable, now, backoff, jitter, &mut effects);
        }
        (
            Command::Release { checkpoint, .. },
            JobState::Leased { .. } | JobState::Running { .. } | JobState::Preempting { .. },
        ) => {
            // Giving a job back is not a failure: it does not count toward max_attempts.
            next.epoch += 1;
            next.checkpoint = checkpoint.or(next.checkpoint);
            next.state = JobState::Queued { not_before: now };
            effects.push(Effect::Ready { at: now });
        }
        (
            Command::Expire { jitter },
            JobState::Leased { lease }
            | JobState::Running { lease }
            | JobState::Preempting { lease, .. },
        ) => {
            if lease.expires_at > now {
                return Err(illegal(&Command::Expire { jitter }, state));
            }
            // J2: the expired holder is fenced before anyone else may claim.
            next.epoch += 1;
            let preempted = matches!(state, JobState::Preempting { .. });
            if !preempted {
                next.failures += 1;
                next.last_error = Some("lease expired".into());
            }
            retry_or_die(&mut next, true, now, backoff, jitter, &mut effects);
        }
        (Command::BudgetExhausted, s) if !s.is_terminal() => {
            if job
                .spec
                .wall_clock_ms
                .is_none_or(|budget| wall_clock_used(job, now) <= budget)
            {
                return Err(JobError::WithinBudget);
            }
            if let Some(lease) = s.lease() {
                effects.push(Effect::StopOnFactory {
                    factory: lease.factory,
                    epoch: lease.epoch,
                });
                next.epoch += 1;
            }
            next.last_error = Some("wall-clock budget exhausted".into());
            next.state = JobState::Dead;
            effects.push(Effect::Finished);
        }
        (
            Command::Preempt { by, grace_ms },
            JobState::Leased { lease } | JobState::Running { lease },
        ) => {
            if !job.spec.preemptible {
                return Err(illegal(&Command::Preempt { by, grace_ms }, state));
            }
            let deadline = now + grace_ms;
            effects.push(Effect::PreemptOnFactory {
                factory: lease.factory,
                epoch: lease.epoch,
                deadline,
            });
            next.state = JobState::Preempting {
                lease: Lease {
                    expires_at: lease.expires_at.min(deadline),
                    ..*lease
                },
                by,
                deadline,
            };
        }
        (Command::ParentsDone, JobState::Pending) if parents == Readiness::Ready => {
            next.state = JobState::Queued { not_before: now };
            effects.push(Effect::Ready { at: now });
        }
        (Command::ParentEnded { parent, state }, JobState::Pending) => {
            next.state = JobState::Cancelled {
                by_parent: Some(parent),
            };
            next.last_error = Some(format!("parent {parent} {state}"));
            effects.push(Effect::Finished);
        }
        (
            cmd @ Command::ParentRevived { parent },
            JobState::Cancelled {
                by_parent: Some(cause),
            },
        ) if parent == *cause => {
            next.state = reopened(&cmd, parents, now, &mut effects)?;
            next.last_error = match parents {
                Readiness::Blocked { parent, state } => Some(format!("parent {parent} {state}")),
                _ => None,
            };
        }
        (Command::Cancel, s) if !s.is_terminal() => {
            if let Some(lease) = s.lease() {
                effects.push(Effect::StopOnFactory {
                    factory: lease.factory,
                    epoch: lease.epoch,
                });
                next.epoch += 1;
            }
            next.state = JobState::Cancelled { by_parent: None };
            effects.push(Effect::Finished);
        }
        (Command::Requeue, s) if !matches!(s, JobState::Pending | JobState::Queued { .. }) => {
            // Checked first: a refusal must change nothing.
            let state = reopened(&Command::Requeue, parents, now, &mut effects)?;
            // J4: a forced requeue starts over with a new epoch; a holder is told to stop.
            if let Some(lease) = s.lease() {
                effects.push(Effect::StopOnFactory {
                    factory: lease.factory,
                    epoch: lease.epoch,
                });
            }
            next.epoch += 1;
            if s.is_terminal() {
                // J4: a new life gets its attempts back, as with `retry`. Kept, a job requeued
                // after dying at `max_attempts` would die of its next failure with
                // `failures > max_attempts`, or even of an expiry while preempting.
                next.failures = 0;
            }
            next.state = state;
        }
        (
            Command::Retry,
            JobState::Dead
            | JobState::Cancelled { .. }
            | JobState::Failed { .. }
            | JobState::Rejected,
        ) => {
            next.state = reopened(&Command::Retry, parents, now, &mut effects)?;
            next.epoch += 1;
            next.failures = 0;
        }
        (Command::Ship, JobState::Review) => {
            next.state = JobState::Shipped;
            effects.push(Effect::Finished);
        }
        (Command::Reject, JobState::Review) => {
            next.state = JobState::Rejected;
            effects.push(Effect::Finished);
        }
        (cmd, s) => return Err(illegal(&cmd, s)),
    }
    if let (Some(old), None) = (job.state.lease(), next.state.lease()) {
        next.run_ms += now.saturating_sub(old.granted_at);
    }
    next.updated_at = now;
    next.rev += 1;
    debug_assert!(next.epoch >= job.epoch, "J2: epochs never go back");
    debug_assert!(
        next.state.lease().is_none_or(|l| l.epoch == next.epoch),
        "J1/J2: a live lease has the current epoch"
    );
    Ok((next, effects))
}

fn retry_or_die(
    next: &mut Job,
    retryable: bool,
    now: Millis,
    backoff: &Backoff,
    jitter: f64,
    effects: &mut Vec<Effect>,
) {
    if retryable && next.failures < next.spec.max_attempts {
        let retry_at = now + backoff.delay_ms(next.failures, jitter);
        next.state = JobState::Failed { retry_at };
        effects.push(Effect::Ready { at: retry_at });
    } else {
        next.state = JobState::Dead;
        effects.push(Effect::Finished);
    }
}

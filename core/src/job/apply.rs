//! The state machine: `apply` takes a job, a command, the time and where the job's parents
//! stand, and returns the new job with its effects or the reason it refuses. Every change of
//! every job is this function; it asserts the invariants J1–J4 (see `job`) and R1–R2 (see
//! `review`).

use super::{
    Command, Effect, FactoryId, Job, JobError, JobState, Lease, Millis, question, review,
    wall_clock_used,
};
use crate::backoff::Backoff;
use crate::budget::format_usd;
use crate::parents::Readiness;
use crate::usage::FACTORY_TIME_SETTLE_MS;

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

/// Where a job starting a new life, or a new attempt (or whose parents changed), goes, given
/// its parents; `revived` when a parent that cancelled it came back.
fn reopened(
    revived: bool,
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
        // A child brought back by one parent may still be held by another.
        Readiness::Blocked { parent, .. } if revived => Ok(JobState::Cancelled {
            by_parent: Some(parent),
        }),
        Readiness::Blocked { parent, state } => Err(JobError::ParentEnded { parent, state }),
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
    let name = cmd.name();
    match (cmd, state) {
        (
            Command::Claim {
                factory,
                ttl_ms,
                placement,
                rate_micros_per_hour,
                limit_slots,
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
            next.limit_slots = limit_slots;
            next.stage = None;
            next.cost.start_lease(rate_micros_per_hour, now);
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
            settle_at_interval(&mut next, now);
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
            settle_at_interval(&mut next, now);
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
            Command::Usage {
                model,
                input_tokens,
                output_tokens,
                micros,
                ..
            },
            JobState::Leased { .. } | JobState::Running { .. } | JobState::Preempting { .. },
        ) => {
            // Settled with the report, so a cost budget sees the whole spend.
            next.cost.settle(now);
            next.cost.add(&model, input_tokens, output_tokens, micros);
        }
        (
            Command::Artifact { .. },
            JobState::Leased { .. } | JobState::Running { .. } | JobState::Preempting { .. },
        ) => {}
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
            // The attempt that was to answer the feedback is done with it.
            next.review_feedback = None;
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
            Command::Release {
                checkpoint,
                throttled_until,
                ..
            },
            JobState::Leased { .. } | JobState::Running { .. } | JobState::Preempting { .. },
        ) => {
            // Giving a job back is not a failure: it does not count toward max_attempts. A
            // throttled job waits for its provider's reset.
            next.epoch += 1;
            next.checkpoint = checkpoint.or(next.checkpoint);
            let at = throttled_until.map_or(now, |t| t.max(now));
            next.state = JobState::Queued { not_before: at };
            effects.push(Effect::Ready { at });
        }
        (
            Command::Expire { jitter, blamed },
            JobState::Leased { lease }
            | JobState::Running { lease }
            | JobState::Preempting { lease, .. },
        ) => {
            if lease.expires_at > now {
                return Err(illegal(&Command::Expire { jitter, blamed }, state));
            }
            // J2: the expired holder is fenced before anyone else may claim.
            next.epoch += 1;
            let preempted = matches!(state, JobState::Preempting { .. });
            if !preempted && blamed {
                next.failures += 1;
                next.last_error = Some("lease expired".into());
            } else if !preempted {
                next.last_error = Some("lease expired while no coordinator could hear it".into());
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
            Command::ParentRevived { parent },
            JobState::Cancelled {
                by_parent: Some(cause),
            },
        ) if parent == *cause => {
            next.state = reopened(true, parents, now, &mut effects)?;
            next.last_error = match parents {
                Readiness::Blocked { parent, state } => Some(format!("parent {parent} {state}")),
                _ => None,
            };
        }
        (Command::Cancel { .. }, s) if !s.is_terminal() => {
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
        (Command::Requeue { .. }, s)
            if !matches!(s, JobState::Pending | JobState::Queued { .. }) =>
        {
            // Checked first: a refusal must change nothing.
            within_cost_cap(job)?;
            let state = reopened(false, parents, now, &mut effects)?;
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
            Command::Retry { .. },
            JobState::Dead
            | JobState::Cancelled { .. }
            | JobState::Failed { .. }
            | JobState::Rejected,
        ) => {
            within_cost_cap(job)?;
            next.state = reopened(false, parents, now, &mut effects)?;
            next.epoch += 1;
            next.failures = 0;
        }
        (Command::Ship { by, .. }, JobState::Review) => {
            // R1: the approval counts once per reviewer; the last one needed ships the job.
            if review::approve(&mut next, by, now)? {
                next.state = JobState::Shipped;
                effects.push(Effect::Finished);
            }
        }
        (Command::Reject { by, .. }, JobState::Review) => {
            review::check_reviewer(job, &by)?;
            next.state = JobState::Rejected;
            effects.push(Effect::Finished);
        }
        (Command::RequestChanges { by, reason }, JobState::Review) => {
            // Checked first: a refusal must change nothing. A round of review is not a
            // failure: it counts toward no `max_attempts` (a person asks for it, and a job
            // past its own cost budget is refused a new attempt).
            review::check_reviewer(job, &by)?;
            let reason = review::reason(&reason)?;
            within_cost_cap(job)?;
            next.state = reopened(false, parents, now, &mut effects)?;
            next.review_feedback = Some(reason);
        }
        (Command::Ask { ask, .. }, JobState::Leased { .. } | JobState::Running { .. }) => {
            question::ask(&mut next, ask, now)?;
        }
        (
            Command::Answer {
                question_id,
                by,
                answer,
                note,
            },
            _,
        ) => {
            question::answer(&mut next, &question_id, by, &answer, note.as_deref(), now)?;
        }
        (Command::QuestionTimeout, _) => question::time_out(&mut next, now)?,
        (cmd, s) => return Err(illegal(&cmd, s)),
    }
    if let (Some(old), None) = (job.state.lease(), next.state.lease()) {
        next.run_ms += now.saturating_sub(old.granted_at);
        next.cost.end_lease(now);
    }
    end_past_cost_cap(&mut next, &mut effects, now);
    // Q1: nobody waits for an answer once the lease that asked is gone (after the cost cap,
    // which may end it too).
    question::close_with_lease(job, &mut next, name, now);
    if !matches!(
        next.state,
        JobState::Review | JobState::Shipped | JobState::Rejected
    ) {
        // R2: a job out of review starts its next review without approvals.
        next.approvals.clear();
    }
    next.updated_at = now;
    next.rev += 1;
    if next.state.lease().is_none() {
        // Limit slots belong to a lease: whatever ended it gives them back.
        next.limit_slots.clear();
    }
    debug_assert!(next.epoch >= job.epoch, "J2: epochs never go back");
    debug_assert!(
        next.state.lease().is_none_or(|l| l.epoch == next.epoch),
        "J1/J2: a live lease has the current epoch"
    );
    debug_assert!(
        next.state != JobState::Shipped
            || review::approved(&next)
            || job.state == JobState::Shipped,
        "R1: a job ships with the approvals it needs"
    );
    debug_assert!(
        question::open(&next).is_none() || next.state.lease().is_some(),
        "Q1: an open question needs a lease"
    );
    Ok((next, effects))
}

/// Settles the lease's factory time once `FACTORY_TIME_SETTLE_MS` of it is unsettled, so a
/// long lease counts against budgets while it runs, without a budget write per renewal.
fn settle_at_interval(next: &mut Job, now: Millis) {
    if now.saturating_sub(next.cost.settled_at) >= FACTORY_TIME_SETTLE_MS {
        next.cost.settle(now);
    }
}

/// A job past its own cost budget cannot start a new life: its spend stays.
fn within_cost_cap(job: &Job) -> Result<(), JobError> {
    match job.spec.cost_budget_micros {
        Some(cap) if job.cost.total() > cap => Err(JobError::CostCapReached {
            spent_micros: job.cost.total(),
            cap_micros: cap,
        }),
        _ => Ok(()),
    }
}

/// Whether the change from `old` to `new` took the job past its own cost budget.
pub fn crossed_cost_cap(old: &Job, new: &Job) -> bool {
    new.spec
        .cost_budget_micros
        .is_some_and(|cap| old.cost.total() <= cap && new.cost.total() > cap)
}

/// A job whose spend passed its own cost budget ends: dead, or in review when it has review
/// on; a lease it holds is revoked (its holder told to stop) and its time settled.
fn end_past_cost_cap(next: &mut Job, effects: &mut Vec<Effect>, now: Millis) {
    let Some(cap) = next.spec.cost_budget_micros else {
        return;
    };
    if next.cost.total() <= cap || next.state.is_terminal() || next.state == JobState::Review {
        return;
    }
    if let Some(lease) = next.state.lease().copied() {
        effects.push(Effect::StopOnFactory {
            factory: lease.factory,
            epoch: lease.epoch,
        });
        next.epoch += 1;
        next.run_ms += now.saturating_sub(lease.granted_at);
        next.cost.end_lease(now);
    }
    effects.retain(|e| !matches!(e, Effect::Ready { .. }));
    next.last_error = Some(format!(
        "cost budget exhausted: {} of {}",
        format_usd(next.cost.total()),
        format_usd(cap)
    ));
    next.state = if next.spec.review {
        JobState::Review
    } else {
        effects.push(Effect::Finished);
        JobState::Dead
    };
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

//! Jobs and their state machine. Every change to a job is a pure function of the job, a
//! command and the time (`apply`); the store transaction and the actors only call it. The
//! invariants it keeps are numbered here once and cited wherever they are checked:
//!
//! - **J1** at most one live lease per job: only `Leased`, `Running` and `Preempting` hold one.
//! - **J2** epochs strictly increase: every new lease and every revocation of one (expiry,
//!   cancel, forced requeue) bumps the epoch, so a holder of an older epoch is fenced.
//! - **J3** a factory write is accepted only with the job's current epoch and only from the
//!   lease holder.
//! - **J4** a terminal job never changes state again (operator `retry` and `requeue` start a
//!   new life explicitly, with a new epoch).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::backoff::Backoff;
use crate::manifest::JobSpec;
use crate::scoring::ScoreBreakdown;

/// Unix time in milliseconds. Core never reads a clock; callers pass it in.
pub type Millis = u64;

/// A job's id: a UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub Uuid);

/// A factory's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FactoryId(pub Uuid);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for FactoryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The right of one factory to run a job until `expires_at`, fenced by `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub epoch: u64,
    pub factory: FactoryId,
    pub granted_at: Millis,
    pub expires_at: Millis,
}

/// Where a job is in its life. Only the states that hold a lease carry one (J1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JobState {
    /// Waiting for its parents to succeed.
    Pending,
    /// Ready to be placed once `not_before` has passed (0: at once).
    Queued {
        not_before: Millis,
    },
    /// A retryable failure, waiting out its backoff; claimable again after `retry_at`.
    Failed {
        retry_at: Millis,
    },
    /// Claimed; the factory has not reported it started.
    Leased {
        lease: Lease,
    },
    /// The factory reported progress (a renewal or a stage).
    Running {
        lease: Lease,
    },
    /// Asked to checkpoint and release for a higher-priority job, by `deadline`.
    Preempting {
        lease: Lease,
        by: Option<JobId>,
        deadline: Millis,
    },
    /// Finished; waits for an operator (or reviewer) to ship or reject it.
    Review,
    Succeeded,
    Shipped,
    Rejected,
    /// Failed `max_attempts` times, or ran out of its wall-clock budget.
    Dead,
    Cancelled,
}

impl JobState {
    /// The stable lowercase name used by the API, the UI and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Queued { .. } => "queued",
            JobState::Failed { .. } => "failed",
            JobState::Leased { .. } => "leased",
            JobState::Running { .. } => "running",
            JobState::Preempting { .. } => "preempting",
            JobState::Review => "review",
            JobState::Succeeded => "succeeded",
            JobState::Shipped => "shipped",
            JobState::Rejected => "rejected",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn lease(&self) -> Option<&Lease> {
        match self {
            JobState::Leased { lease }
            | JobState::Running { lease }
            | JobState::Preempting { lease, .. } => Some(lease),
            _ => None,
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobState::Succeeded
                | JobState::Shipped
                | JobState::Rejected
                | JobState::Dead
                | JobState::Cancelled
        )
    }

    /// Terminal and good: children of such a parent may run.
    pub fn is_success(&self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Shipped)
    }

    /// Waiting for placement, and the earliest time it may be placed.
    pub fn ready_at(&self) -> Option<Millis> {
        match self {
            JobState::Queued { not_before } => Some(*not_before),
            JobState::Failed { retry_at } => Some(*retry_at),
            _ => None,
        }
    }
}

/// A job: what to run (`spec`) and where it is (`state` and the fields beside it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub spec: JobSpec,
    /// Parents, resolved to ids.
    pub parents: Vec<JobId>,
    pub state: JobState,
    /// Free-form progress the agent reports (`planning`, `coding`, `testing`).
    pub stage: Option<String>,
    /// The fencing token: the epoch of the current (or last) lease (J2).
    pub epoch: u64,
    /// Leases granted so far.
    pub attempts: u32,
    /// Attempts that ended in failure or expiry; `Dead` at `spec.max_attempts`.
    pub failures: u32,
    /// Where the last preempted attempt saved its work, handed to the next attempt.
    pub checkpoint: Option<String>,
    /// Why the last placement chose its factory.
    pub placement: Option<ScoreBreakdown>,
    pub last_error: Option<String>,
    pub exit_code: Option<i32>,
    /// Wall-clock time spent in finished leases, for the budget.
    pub run_ms: u64,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// Bumped on every write.
    pub rev: u64,
}

/// Who asks for a change: the lease holder, the scheduler/reaper, or an operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// The scheduler grants a lease.
    Claim {
        factory: FactoryId,
        ttl_ms: u64,
        placement: Option<ScoreBreakdown>,
    },
    /// The holder extends its lease (and so shows it is alive).
    Renew {
        factory: FactoryId,
        epoch: u64,
        ttl_ms: u64,
    },
    /// The holder reports progress.
    Stage {
        factory: FactoryId,
        epoch: u64,
        stage: String,
    },
    /// The holder finished the job successfully.
    Complete {
        factory: FactoryId,
        epoch: u64,
    },
    /// The holder reports a failure; `retryable: false` kills the job at once.
    Fail {
        factory: FactoryId,
        epoch: u64,
        error: String,
        exit_code: Option<i32>,
        retryable: bool,
        jitter: f64,
    },
    /// The holder gives the job back (after a preemption), with a checkpoint to resume from.
    Release {
        factory: FactoryId,
        epoch: u64,
        checkpoint: Option<String>,
    },
    /// The reaper: the lease ran out (or the preemption grace did). `jitter` in [0, 1).
    Expire {
        jitter: f64,
    },
    /// The reaper: the job used up its wall-clock budget.
    BudgetExhausted,
    /// The scheduler asks the holder to make room for `by`.
    Preempt {
        by: Option<JobId>,
        grace_ms: u64,
    },
    /// Every parent succeeded.
    ParentsDone,
    /// Operator actions.
    Cancel,
    Requeue,
    Retry,
    Ship,
    Reject,
}

impl Command {
    /// A short name for events and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Claim { .. } => "claim",
            Command::Renew { .. } => "renew",
            Command::Stage { .. } => "stage",
            Command::Complete { .. } => "complete",
            Command::Fail { .. } => "fail",
            Command::Release { .. } => "release",
            Command::Expire { .. } => "expire",
            Command::BudgetExhausted => "budget_exhausted",
            Command::Preempt { .. } => "preempt",
            Command::ParentsDone => "parents_done",
            Command::Cancel => "cancel",
            Command::Requeue => "requeue",
            Command::Retry => "retry",
            Command::Ship => "ship",
            Command::Reject => "reject",
        }
    }

    /// The lease a factory write claims to hold.
    fn fence(&self) -> Option<(FactoryId, u64)> {
        match self {
            Command::Renew { factory, epoch, .. }
            | Command::Stage { factory, epoch, .. }
            | Command::Complete { factory, epoch }
            | Command::Fail { factory, epoch, .. }
            | Command::Release { factory, epoch, .. } => Some((*factory, *epoch)),
            _ => None,
        }
    }
}

/// Why a command was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The write carries an epoch that is no longer current (J3): the writer lost its lease.
    #[error("stale epoch {presented}: the job's epoch is {current}")]
    Fenced { presented: u64, current: u64 },
    /// The writer does not hold the job's lease.
    #[error("the lease is held by another factory")]
    NotLeaseHolder,
    /// The command makes no sense in the job's state.
    #[error("cannot {command} a job that is {state}")]
    IllegalTransition {
        command: &'static str,
        state: &'static str,
    },
    /// Placement asked too early.
    #[error("the job is not ready before {not_before}")]
    NotReady { not_before: Millis },
}

/// A consequence of a transition that someone outside must carry out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// Tell the factory holding `epoch` to stop (cancel) the job.
    StopOnFactory { factory: FactoryId, epoch: u64 },
    /// Tell the factory to checkpoint and release by `deadline`.
    PreemptOnFactory {
        factory: FactoryId,
        epoch: u64,
        deadline: Millis,
    },
    /// The job reached a terminal state: wake its children.
    Finished,
    /// The job can be placed (again) from `at`.
    Ready { at: Millis },
}

fn illegal(cmd: &Command, state: &JobState) -> JobError {
    JobError::IllegalTransition {
        command: cmd.name(),
        state: state.name(),
    }
}

/// Applies `cmd` to `job` at time `now`: the new job and what must happen outside, or why not.
pub fn apply(
    job: &Job,
    cmd: Command,
    now: Millis,
    backoff: &Backoff,
) -> Result<(Job, Vec<Effect>), JobError> {
    if let Some((factory, epoch)) = cmd.fence() {
        // J3: fencing first, so a late writer learns it lost the lease whatever state the job
        // is in now.
        if epoch != job.epoch {
            return Err(JobError::Fenced {
                presented: epoch,
                current: job.epoch,
            });
        }
        match job.state.lease() {
            Some(l) if l.factory == factory => {}
            Some(_) => return Err(JobError::NotLeaseHolder),
            None => {
                return Err(JobError::Fenced {
                    presented: epoch,
                    current: job.epoch,
                });
            }
        }
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
        (Command::ParentsDone, JobState::Pending) => {
            next.state = JobState::Queued { not_before: now };
            effects.push(Effect::Ready { at: now });
        }
        (Command::Cancel, s) if !s.is_terminal() => {
            if let Some(lease) = s.lease() {
                effects.push(Effect::StopOnFactory {
                    factory: lease.factory,
                    epoch: lease.epoch,
                });
                next.epoch += 1;
            }
            next.state = JobState::Cancelled;
            effects.push(Effect::Finished);
        }
        (Command::Requeue, s) if !matches!(s, JobState::Pending | JobState::Queued { .. }) => {
            // J4: a forced requeue starts over with a new epoch; a holder is told to stop.
            if let Some(lease) = s.lease() {
                effects.push(Effect::StopOnFactory {
                    factory: lease.factory,
                    epoch: lease.epoch,
                });
            }
            next.epoch += 1;
            next.state = JobState::Queued { not_before: now };
            effects.push(Effect::Ready { at: now });
        }
        (
            Command::Retry,
            JobState::Dead | JobState::Cancelled | JobState::Failed { .. } | JobState::Rejected,
        ) => {
            next.epoch += 1;
            next.failures = 0;
            next.state = JobState::Queued { not_before: now };
            effects.push(Effect::Ready { at: now });
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

/// Wall-clock time the job has run, counting the lease it holds now.
pub fn wall_clock_used(job: &Job, now: Millis) -> u64 {
    job.run_ms
        + job
            .state
            .lease()
            .map_or(0, |l| now.saturating_sub(l.granted_at))
}

/// A new job as submitted: pending if it has parents, else queued.
pub fn new_job(id: JobId, spec: JobSpec, parents: Vec<JobId>, now: Millis) -> Job {
    let state = if parents.is_empty() {
        JobState::Queued { not_before: now }
    } else {
        JobState::Pending
    };
    Job {
        id,
        spec,
        parents,
        state,
        stage: None,
        epoch: 0,
        attempts: 0,
        failures: 0,
        checkpoint: None,
        placement: None,
        last_error: None,
        exit_code: None,
        run_ms: 0,
        created_at: now,
        updated_at: now,
        rev: 0,
    }
}

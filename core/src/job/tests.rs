//! The state machine case by case, and its invariants J1–J4 by property over random command
//! sequences.

use super::*;
use crate::backoff::Backoff;
use crate::manifest::{PRIORITY_DEFAULT, Payload, validate_job_spec};
use crate::parents::Readiness;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// When every test job is created: far from 0, so no time arithmetic can hide an underflow.
const T0: Millis = 1_000_000;
const TTL_MS: u64 = 30_000;
/// The factory rate of leases in the random runs: a micro-dollar per millisecond.
const RATE_MICROS_PER_HOUR: u64 = 3_600_000;

fn backoff() -> Backoff {
    Backoff {
        base_ms: 1_000,
        cap_ms: 60_000,
    }
}

fn factory(n: usize) -> FactoryId {
    FactoryId(Uuid::from_u128(0xF000 + n as u128))
}

const A: usize = 0;
const B: usize = 1;

/// A valid spec (see `the_test_spec_is_a_valid_job_spec`): three attempts, preemptible, no
/// review.
fn spec() -> JobSpec {
    JobSpec {
        key: "build-api".into(),
        title: "Build the API".into(),
        product: "acme".into(),
        payload: Payload::Command("make".into()),
        priority: PRIORITY_DEFAULT,
        capabilities: vec!["rust".into()],
        labels: Vec::new(),
        engine_class: None,
        profile: None,
        deps: Vec::new(),
        idempotency_key: None,
        allowed_scope: Vec::new(),
        artifacts: Vec::new(),
        max_attempts: 3,
        wall_clock_ms: None,
        cost_budget_micros: None,
        preemptible: true,
        review: false,
    }
}

fn spec_with(max_attempts: u32, review: bool, preemptible: bool) -> JobSpec {
    JobSpec {
        max_attempts,
        review,
        preemptible,
        ..spec()
    }
}

fn queued(spec: JobSpec) -> Job {
    new_job(JobId(Uuid::from_u128(1)), spec, Vec::new(), T0)
}

/// Applies a command that must be accepted.
fn ok(job: &Job, cmd: Command, now: Millis) -> (Job, Vec<Effect>) {
    let shown = format!("{cmd:?}");
    apply(job, cmd, now, &backoff(), Readiness::Ready)
        .unwrap_or_else(|e| panic!("{shown} on a {} job refused: {e}", job.state.name()))
}

/// Applies a command that must be refused, and returns why.
fn refused(job: &Job, cmd: Command, now: Millis) -> JobError {
    let shown = format!("{cmd:?}");
    match apply(job, cmd, now, &backoff(), Readiness::Ready) {
        Ok((next, _)) => panic!(
            "{shown} on a {} job accepted: now {}",
            job.state.name(),
            next.state.name()
        ),
        Err(e) => e,
    }
}

fn claim(f: usize) -> Command {
    Command::Claim {
        factory: factory(f),
        ttl_ms: TTL_MS,
        placement: None,
        rate_micros_per_hour: 0,
    }
}

fn renew(f: usize, epoch: u64) -> Command {
    Command::Renew {
        factory: factory(f),
        epoch,
        ttl_ms: TTL_MS,
    }
}

fn complete(f: usize, epoch: u64) -> Command {
    Command::Complete {
        factory: factory(f),
        epoch,
    }
}

fn fail(f: usize, epoch: u64, retryable: bool, jitter: f64) -> Command {
    Command::Fail {
        factory: factory(f),
        epoch,
        error: "tests failed".into(),
        exit_code: Some(1),
        retryable,
        jitter,
    }
}

fn release(f: usize, epoch: u64, checkpoint: Option<&str>) -> Command {
    Command::Release {
        factory: factory(f),
        epoch,
        checkpoint: checkpoint.map(Into::into),
    }
}

/// Every kind of factory write, as `f` holding `epoch` would send it.
fn factory_writes(f: usize, epoch: u64) -> Vec<Command> {
    vec![
        renew(f, epoch),
        Command::Stage {
            factory: factory(f),
            epoch,
            stage: "coding".into(),
        },
        complete(f, epoch),
        fail(f, epoch, true, 0.5),
        release(f, epoch, Some("ckpt")),
    ]
}

/// Every command that is not a factory write, retry and requeue last.
fn operator_and_scheduler_commands() -> Vec<Command> {
    vec![
        claim(A),
        Command::Expire { jitter: 0.5 },
        Command::BudgetExhausted,
        Command::Preempt {
            by: None,
            grace_ms: 1_000,
        },
        Command::ParentsDone,
        Command::Cancel,
        Command::Ship,
        Command::Reject,
        Command::Retry,
        Command::Requeue,
    ]
}

fn lease_of(job: &Job) -> Lease {
    *job.state
        .lease()
        .unwrap_or_else(|| panic!("a {} job holds no lease", job.state.name()))
}

/// A job claimed by `f` at `T0`, epoch 1.
fn leased(spec: JobSpec, f: usize) -> Job {
    ok(&queued(spec), claim(f), T0).0
}

#[test]
fn the_test_spec_is_a_valid_job_spec() {
    assert_eq!(validate_job_spec(&spec()), Ok(()));
}

#[test]
fn claim_grants_a_lease_with_the_next_epoch_and_counts_an_attempt() {
    let job = queued(spec());
    let (next, effects) = ok(&job, claim(A), T0 + 5);
    assert_eq!(
        next.state,
        JobState::Leased {
            lease: Lease {
                epoch: 1,
                factory: factory(A),
                granted_at: T0 + 5,
                expires_at: T0 + 5 + TTL_MS,
            },
        }
    );
    assert_eq!((next.epoch, next.attempts, next.failures), (1, 1, 0));
    assert_eq!((next.rev, next.updated_at), (1, T0 + 5));
    assert_eq!(effects, []);
    // J1: a second claim cannot grant a second lease.
    assert_eq!(
        refused(&next, claim(B), T0 + 6),
        JobError::IllegalTransition {
            command: "claim",
            state: "leased"
        }
    );
}

#[test]
fn claim_of_a_backing_off_job_before_its_retry_time_is_not_ready() {
    let job = leased(spec(), A);
    let (failed, effects) = ok(&job, fail(A, 1, true, 0.0), T0 + 10);
    // The first failure waits half the 1 s base ceiling when the jitter is 0.
    let retry_at = T0 + 10 + 500;
    assert_eq!(failed.state, JobState::Failed { retry_at });
    assert_eq!(effects, [Effect::Ready { at: retry_at }]);
    assert_eq!(
        refused(&failed, claim(B), retry_at - 1),
        JobError::NotReady {
            not_before: retry_at
        }
    );
    let (again, _) = ok(&failed, claim(B), retry_at);
    assert_eq!((again.epoch, again.attempts), (2, 2));
    assert_eq!(lease_of(&again).factory, factory(B));
}

#[test]
fn factory_writes_with_a_stale_epoch_are_fenced_and_change_nothing() {
    // A held epoch 1, gave the job back (epoch 2) and holds epoch 3 now: writes with an
    // older epoch or a made-up future one are refused, whatever the factory.
    let job = leased(spec(), A);
    let (requeued, _) = ok(&job, release(A, 1, None), T0 + 100);
    assert_eq!(requeued.epoch, 2);
    let (job, _) = ok(&requeued, claim(A), T0 + 200);
    assert_eq!(job.epoch, 3);
    let before = job.clone();
    for stale in [0, 1, 2, 4] {
        for f in [A, B] {
            for cmd in factory_writes(f, stale) {
                assert_eq!(
                    refused(&job, cmd, T0 + 500),
                    JobError::Fenced {
                        presented: stale,
                        current: 3
                    }
                );
            }
        }
    }
    assert_eq!(job, before);
}

#[test]
fn a_write_from_a_factory_that_does_not_hold_the_lease_is_refused() {
    let job = leased(spec(), A);
    let before = job.clone();
    for cmd in factory_writes(B, 1) {
        assert_eq!(refused(&job, cmd, T0 + 1), JobError::NotLeaseHolder);
    }
    assert_eq!(job, before);
    // The holder's own writes with the same epoch are accepted.
    for cmd in factory_writes(A, 1) {
        ok(&job, cmd, T0 + 1);
    }
}

#[test]
fn renew_extends_the_lease_and_marks_the_job_running() {
    let job = leased(spec(), A);
    let (running, effects) = ok(&job, renew(A, 1), T0 + 1_000);
    assert_eq!(
        running.state,
        JobState::Running {
            lease: Lease {
                epoch: 1,
                factory: factory(A),
                granted_at: T0,
                expires_at: T0 + 1_000 + TTL_MS,
            },
        }
    );
    assert_eq!((running.epoch, effects), (1, vec![]));
}

#[test]
fn complete_succeeds_a_job_that_needs_no_review() {
    let job = ok(&leased(spec(), A), renew(A, 1), T0 + 1).0;
    let (done, effects) = ok(&job, complete(A, 1), T0 + 2);
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.exit_code, Some(0));
    assert_eq!(effects, [Effect::Finished]);
}

#[test]
fn complete_sends_a_job_that_asks_for_review_to_review() {
    let job = leased(spec_with(3, true, true), A);
    let (done, effects) = ok(&job, complete(A, 1), T0 + 2);
    assert_eq!(done.state, JobState::Review);
    assert!(!done.state.is_terminal());
    assert_eq!(effects, [], "review is not terminal: children wait");
}

#[test]
fn fail_backs_off_until_max_attempts_then_dies() {
    let mut job = queued(spec());
    let mut now = T0;
    for attempt in 1..=3 {
        job = ok(&job, claim(A), now).0;
        now += 10;
        let (next, effects) = ok(&job, fail(A, job.epoch, true, 0.5), now);
        assert_eq!((next.attempts, next.failures), (attempt, attempt));
        assert_eq!(next.last_error.as_deref(), Some("tests failed"));
        assert_eq!(next.exit_code, Some(1));
        if attempt < 3 {
            let retry_at = now + backoff().delay_ms(attempt, 0.5);
            assert!(retry_at > now);
            assert_eq!(next.state, JobState::Failed { retry_at });
            assert_eq!(effects, [Effect::Ready { at: retry_at }]);
            now = retry_at;
        } else {
            assert_eq!(next.state, JobState::Dead);
            assert_eq!(effects, [Effect::Finished]);
        }
        job = next;
    }
}

#[test]
fn a_non_retryable_fail_kills_the_job_at_once() {
    let job = leased(spec(), A);
    let (dead, effects) = ok(&job, fail(A, 1, false, 0.5), T0 + 10);
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(dead.failures, 1);
    assert_eq!(effects, [Effect::Finished]);
}

#[test]
fn expire_before_the_lease_runs_out_is_refused() {
    let job = leased(spec(), A);
    let expires_at = lease_of(&job).expires_at;
    assert_eq!(
        refused(&job, Command::Expire { jitter: 0.5 }, expires_at - 1),
        JobError::IllegalTransition {
            command: "expire",
            state: "leased"
        }
    );
}

#[test]
fn expire_after_the_lease_runs_out_fences_the_holder_and_backs_off() {
    let job = leased(spec(), A);
    let expires_at = lease_of(&job).expires_at;
    let (expired, effects) = ok(&job, Command::Expire { jitter: 0.0 }, expires_at);
    let retry_at = expires_at + 500;
    assert_eq!(expired.state, JobState::Failed { retry_at });
    assert_eq!(effects, [Effect::Ready { at: retry_at }]);
    assert_eq!((expired.epoch, expired.failures), (2, 1));
    assert_eq!(expired.last_error.as_deref(), Some("lease expired"));
    assert_eq!(
        refused(&expired, renew(A, 1), expires_at + 1),
        JobError::Fenced {
            presented: 1,
            current: 2
        }
    );
}

#[test]
fn expire_at_max_attempts_kills_the_job() {
    let job = leased(spec_with(1, false, true), A);
    let expires_at = lease_of(&job).expires_at;
    let (dead, effects) = ok(&job, Command::Expire { jitter: 0.5 }, expires_at + 7);
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!((dead.epoch, dead.failures), (2, 1));
    assert_eq!(effects, [Effect::Finished]);
}

#[test]
fn preempt_asks_the_holder_to_checkpoint_by_the_deadline() {
    let job = leased(spec(), A);
    let by = Some(JobId(Uuid::from_u128(2)));
    let (preempting, effects) = ok(&job, Command::Preempt { by, grace_ms: 100 }, T0 + 50);
    let deadline = T0 + 150;
    assert_eq!(
        preempting.state,
        JobState::Preempting {
            lease: Lease {
                expires_at: deadline,
                ..lease_of(&job)
            },
            by,
            deadline,
        }
    );
    assert_eq!(
        preempting.epoch, 1,
        "the holder keeps its lease to checkpoint"
    );
    assert_eq!(
        effects,
        [Effect::PreemptOnFactory {
            factory: factory(A),
            epoch: 1,
            deadline
        }]
    );
    // A renewal while checkpointing never reaches past the grace deadline.
    let (renewed, _) = ok(&preempting, renew(A, 1), T0 + 60);
    assert_eq!(lease_of(&renewed).expires_at, deadline);
}

#[test]
fn expire_of_a_preempting_job_is_not_a_failure() {
    // With a single attempt, an expiry that counted as a failure would kill the job.
    let job = leased(spec_with(1, false, true), A);
    let preempt = Command::Preempt {
        by: None,
        grace_ms: 100,
    };
    let (preempting, _) = ok(&job, preempt, T0 + 50);
    let deadline = T0 + 150;
    let (expired, effects) = ok(&preempting, Command::Expire { jitter: 0.9 }, deadline);
    assert_eq!((expired.epoch, expired.failures), (2, 0));
    assert_eq!(expired.last_error, None);
    // No failure, so no backoff: placeable at once.
    assert_eq!(expired.state, JobState::Failed { retry_at: deadline });
    assert_eq!(effects, [Effect::Ready { at: deadline }]);
}

#[test]
fn release_requeues_with_the_checkpoint_and_fences_the_old_holder() {
    let job = leased(spec(), A);
    let (released, effects) = ok(&job, release(A, 1, Some("s3://ckpt/1")), T0 + 300);
    assert_eq!(
        released.state,
        JobState::Queued {
            not_before: T0 + 300
        }
    );
    assert_eq!(effects, [Effect::Ready { at: T0 + 300 }]);
    assert_eq!(released.checkpoint.as_deref(), Some("s3://ckpt/1"));
    assert_eq!((released.epoch, released.failures), (2, 0));
    assert_eq!(
        refused(&released, renew(A, 1), T0 + 301),
        JobError::Fenced {
            presented: 1,
            current: 2
        }
    );
    // The next attempt resumes from the checkpoint; a release without one keeps it.
    let (next, _) = ok(&released, claim(B), T0 + 400);
    let (again, _) = ok(&next, release(B, 3, None), T0 + 500);
    assert_eq!(again.checkpoint.as_deref(), Some("s3://ckpt/1"));
}

#[test]
fn preempt_of_a_non_preemptible_job_is_refused() {
    let job = leased(spec_with(3, false, false), A);
    assert_eq!(
        refused(
            &job,
            Command::Preempt {
                by: None,
                grace_ms: 100
            },
            T0 + 1
        ),
        JobError::IllegalTransition {
            command: "preempt",
            state: "leased"
        }
    );
}

#[test]
fn cancel_of_a_leased_job_fences_the_holder_and_stops_it_with_the_old_epoch() {
    let job = ok(&leased(spec(), A), renew(A, 1), T0 + 1).0;
    let (cancelled, effects) = ok(&job, Command::Cancel, T0 + 2);
    assert_eq!(cancelled.state, JobState::Cancelled { by_parent: None });
    assert_eq!(cancelled.epoch, 2);
    assert_eq!(
        effects,
        [
            Effect::StopOnFactory {
                factory: factory(A),
                epoch: 1
            },
            Effect::Finished
        ]
    );
    assert_eq!(
        refused(&cancelled, complete(A, 1), T0 + 3),
        JobError::Fenced {
            presented: 1,
            current: 2
        }
    );
}

#[test]
fn ship_and_reject_are_accepted_only_from_review() {
    let reviewed = leased(spec_with(3, true, true), A);
    let succeeded = ok(&leased(spec(), A), complete(A, 1), T0 + 1).0;
    for job in [queued(spec()), reviewed.clone(), succeeded] {
        for (cmd, name) in [(Command::Ship, "ship"), (Command::Reject, "reject")] {
            assert_eq!(
                refused(&job, cmd, T0 + 2),
                JobError::IllegalTransition {
                    command: name,
                    state: job.state.name()
                }
            );
        }
    }
    let review = ok(&reviewed, complete(A, 1), T0 + 1).0;
    let (shipped, effects) = ok(&review, Command::Ship, T0 + 2);
    assert_eq!(
        (shipped.state, effects),
        (JobState::Shipped, vec![Effect::Finished])
    );
    let (rejected, effects) = ok(&review, Command::Reject, T0 + 2);
    assert_eq!(
        (rejected.state, effects),
        (JobState::Rejected, vec![Effect::Finished])
    );
}

#[test]
fn retry_from_dead_resets_failures_and_starts_a_new_epoch() {
    let job = leased(spec_with(1, false, true), A);
    let (dead, _) = ok(&job, fail(A, 1, true, 0.5), T0 + 10);
    assert_eq!((dead.state.clone(), dead.failures), (JobState::Dead, 1));
    let (retried, effects) = ok(&dead, Command::Retry, T0 + 20);
    assert_eq!(
        retried.state,
        JobState::Queued {
            not_before: T0 + 20
        }
    );
    assert_eq!(effects, [Effect::Ready { at: T0 + 20 }]);
    assert_eq!((retried.epoch, retried.failures), (2, 0));
}

/// The five terminal states, each reached the ordinary way, with `A` the last holder at
/// epoch 1.
fn terminal_jobs() -> Vec<Job> {
    let review = ok(&leased(spec_with(3, true, true), A), complete(A, 1), T0 + 1).0;
    let cancelled = ok(&leased(spec(), A), Command::Cancel, T0 + 1).0;
    vec![
        ok(&leased(spec(), A), complete(A, 1), T0 + 1).0,
        ok(&review, Command::Ship, T0 + 2).0,
        ok(&review, Command::Reject, T0 + 2).0,
        ok(&leased(spec(), A), fail(A, 1, false, 0.5), T0 + 1).0,
        cancelled,
    ]
}

fn with_parents(parents: Readiness, job: &Job, cmd: Command) -> Result<Job, JobError> {
    apply(job, cmd, T0 + 5, &backoff(), parents).map(|(next, _)| next)
}

#[test]
fn a_new_life_waits_for_parents_and_is_refused_while_one_stays_ended() {
    let dead = ok(&leased(spec(), A), fail(A, 1, false, 0.5), T0 + 1).0;
    let parent = JobId(Uuid::from_u128(77));
    let blocked = Readiness::Blocked {
        parent,
        state: "dead",
    };
    for cmd in [Command::Retry, Command::Requeue] {
        assert_eq!(
            with_parents(blocked, &dead, cmd.clone()),
            Err(JobError::ParentEnded {
                parent,
                state: "dead"
            })
        );
        let waiting = with_parents(Readiness::Waiting, &dead, cmd.clone()).unwrap();
        assert_eq!(waiting.state, JobState::Pending);
        assert_eq!(waiting.epoch, dead.epoch + 1);
        let ready = with_parents(Readiness::Ready, &dead, cmd).unwrap();
        assert_eq!(ready.state, JobState::Queued { not_before: T0 + 5 });
    }
}

#[test]
fn a_child_is_cancelled_with_its_parent_and_comes_back_with_it() {
    let parent = JobId(Uuid::from_u128(77));
    let other = JobId(Uuid::from_u128(78));
    let pending = new_job(JobId(Uuid::from_u128(1)), spec(), vec![parent, other], T0);
    let (cancelled, effects) = ok(
        &pending,
        Command::ParentEnded {
            parent,
            state: "rejected",
        },
        T0 + 1,
    );
    assert_eq!(
        cancelled.state,
        JobState::Cancelled {
            by_parent: Some(parent)
        }
    );
    assert_eq!(
        cancelled.last_error.as_deref(),
        Some(format!("parent {parent} rejected").as_str())
    );
    assert_eq!(effects, [Effect::Finished]);
    let revive =
        |parents, by| with_parents(parents, &cancelled, Command::ParentRevived { parent: by });
    assert!(
        matches!(
            revive(Readiness::Waiting, other),
            Err(JobError::IllegalTransition { .. })
        ),
        "only the parent that cancelled it brings it back"
    );
    let back = revive(Readiness::Waiting, parent).unwrap();
    assert_eq!((back.state, back.last_error), (JobState::Pending, None));
    let held = revive(
        Readiness::Blocked {
            parent: other,
            state: "dead",
        },
        parent,
    )
    .unwrap();
    assert_eq!(
        held.state,
        JobState::Cancelled {
            by_parent: Some(other)
        },
        "another ended parent keeps it cancelled, now in its name"
    );
    let operator = ok(&pending, Command::Cancel, T0 + 1).0;
    assert!(revive(Readiness::Ready, parent).is_ok());
    assert!(
        with_parents(
            Readiness::Ready,
            &operator,
            Command::ParentRevived { parent }
        )
        .is_err(),
        "an operator's cancel is not undone by a parent"
    );
    assert!(
        with_parents(Readiness::Waiting, &pending, Command::ParentsDone).is_err(),
        "parents_done needs every parent done"
    );
}

#[test]
fn the_wall_clock_budget_ends_a_job_only_once_it_is_used_up() {
    let budgeted = JobSpec {
        wall_clock_ms: Some(1_000),
        ..spec()
    };
    let job = leased(budgeted, A);
    let granted = lease_of(&job).granted_at;
    assert_eq!(
        refused(&job, Command::BudgetExhausted, granted + 1_000),
        JobError::WithinBudget
    );
    let (dead, effects) = ok(&job, Command::BudgetExhausted, granted + 1_001);
    assert_eq!(dead.state, JobState::Dead);
    assert!(effects.contains(&Effect::Finished));
    assert_eq!(
        refused(&leased(spec(), A), Command::BudgetExhausted, T0 + 1_000_000),
        JobError::WithinBudget,
        "a job without a budget never exhausts it"
    );
}

#[test]
fn a_terminal_job_refuses_every_write_and_action_but_retry_and_requeue() {
    let now = T0 + 10 * TTL_MS;
    for job in terminal_jobs() {
        assert!(job.state.is_terminal(), "{:?}", job.state);
        let name = job.state.name();
        for f in [A, B] {
            for epoch in [1, job.epoch] {
                for cmd in factory_writes(f, epoch) {
                    assert!(
                        matches!(refused(&job, cmd, now), JobError::Fenced { .. }),
                        "{name}"
                    );
                }
            }
        }
        for cmd in operator_and_scheduler_commands() {
            let command = cmd.name();
            let result = apply(&job, cmd, now, &backoff(), Readiness::Ready);
            // J4: only an explicit new life leaves a terminal state, and always with a
            // new epoch. The code allows `retry` only from the bad ends.
            let new_life = command == "requeue"
                || (command == "retry" && matches!(name, "dead" | "cancelled" | "rejected"));
            match result {
                Ok((next, effects)) => {
                    assert!(new_life, "{command} accepted on a {name} job");
                    assert_eq!(next.state, JobState::Queued { not_before: now });
                    assert_eq!(next.epoch, job.epoch + 1);
                    assert_eq!(effects, [Effect::Ready { at: now }]);
                }
                Err(e) => {
                    assert!(!new_life, "{command} refused on a {name} job: {e}");
                    assert_eq!(e, illegal_named(command, name));
                }
            }
        }
    }
}

fn illegal_named(command: &'static str, state: &'static str) -> JobError {
    JobError::IllegalTransition { command, state }
}

#[test]
fn requeue_of_a_job_dead_at_max_attempts_gives_it_its_attempts_back() {
    // Regression: requeue kept `failures == max_attempts`, so the next retryable failure
    // pushed `failures` past `max_attempts` and killed the job at once, and even an
    // expiry during preemption (not a failure) killed it.
    let job = leased(spec_with(1, false, true), A);
    let (dead, _) = ok(&job, fail(A, 1, true, 0.5), T0 + 10);
    assert_eq!((dead.state.clone(), dead.failures), (JobState::Dead, 1));
    let (requeued, _) = ok(&dead, Command::Requeue, T0 + 20);
    assert_eq!(requeued.failures, 0);
    let (again, _) = ok(&requeued, claim(B), T0 + 30);
    let (preempting, _) = ok(
        &again,
        Command::Preempt {
            by: None,
            grace_ms: 10,
        },
        T0 + 40,
    );
    let (expired, _) = ok(&preempting, Command::Expire { jitter: 0.5 }, T0 + 50);
    assert_eq!(expired.state, JobState::Failed { retry_at: T0 + 50 });
    assert_eq!(expired.failures, 0);
}

#[test]
fn parents_done_moves_a_pending_job_to_queued() {
    let parent = JobId(Uuid::from_u128(7));
    let pending = new_job(JobId(Uuid::from_u128(1)), spec(), vec![parent], T0);
    assert_eq!(pending.state, JobState::Pending);
    assert_eq!(
        refused(&pending, claim(A), T0 + 1),
        illegal_named("claim", "pending")
    );
    let (ready, effects) = ok(&pending, Command::ParentsDone, T0 + 5);
    assert_eq!(ready.state, JobState::Queued { not_before: T0 + 5 });
    assert_eq!(effects, [Effect::Ready { at: T0 + 5 }]);
    assert_eq!(ready.epoch, 0);
    assert_eq!(
        refused(&ready, Command::ParentsDone, T0 + 6),
        illegal_named("parents_done", "queued")
    );
}

#[test]
fn run_ms_accumulates_lease_time_when_a_lease_ends() {
    let job = leased(spec(), A);
    let (job, _) = ok(&job, renew(A, 1), T0 + 100);
    assert_eq!(job.run_ms, 0, "a live lease is not yet counted");
    let (job, _) = ok(&job, release(A, 1, None), T0 + 400);
    assert_eq!(job.run_ms, 400);
    let (job, _) = ok(&job, claim(B), T0 + 1_000);
    let (job, _) = ok(&job, complete(B, 3), T0 + 1_250);
    assert_eq!(job.run_ms, 650);
}

#[test]
fn wall_clock_used_counts_the_live_lease() {
    let job = leased(spec(), A);
    let (queued_again, _) = ok(&job, release(A, 1, None), T0 + 400);
    assert_eq!(wall_clock_used(&queued_again, T0 + 900), 400);
    let (job, _) = ok(&queued_again, claim(B), T0 + 1_000);
    assert_eq!(wall_clock_used(&job, T0 + 1_000), 400);
    assert_eq!(wall_clock_used(&job, T0 + 1_300), 700);
}

// Property tests: random command sequences against one job.

const FACTORIES: usize = 3;

/// Who sends a factory write: the current holder (factory 0 when there is none) or any
/// of the factories.
#[derive(Debug, Clone)]
enum Writer {
    Holder,
    Factory(usize),
}

/// The epoch a factory write presents: the job's current one, or one that is not
/// (older, or a made-up future one), drawn from `k`.
#[derive(Debug, Clone)]
enum Presented {
    Current,
    Other(u64),
}

/// A command whose writer and epoch are picked against the job it is applied to.
#[derive(Debug, Clone)]
enum Op {
    Claim {
        factory: usize,
        ttl_ms: u64,
    },
    Usage {
        w: Writer,
        e: Presented,
        micros: u64,
    },
    Renew {
        w: Writer,
        e: Presented,
        ttl_ms: u64,
    },
    Stage {
        w: Writer,
        e: Presented,
    },
    Complete {
        w: Writer,
        e: Presented,
    },
    Fail {
        w: Writer,
        e: Presented,
        retryable: bool,
        jitter: f64,
    },
    Release {
        w: Writer,
        e: Presented,
        checkpoint: bool,
    },
    Expire {
        jitter: f64,
    },
    BudgetExhausted,
    Preempt {
        grace_ms: u64,
    },
    ParentsDone,
    Cancel,
    Requeue,
    Retry,
    Ship,
    Reject,
}

impl Op {
    fn resolve(&self, job: &Job) -> Command {
        let writer = |w: &Writer| match w {
            Writer::Holder => job.state.lease().map_or(factory(0), |l| l.factory),
            Writer::Factory(n) => factory(*n),
        };
        let epoch = |e: &Presented| match e {
            Presented::Current => job.epoch,
            Presented::Other(k) => match k % (job.epoch + 2) {
                same if same == job.epoch => job.epoch + 1,
                other => other,
            },
        };
        match self {
            Op::Claim { factory: n, ttl_ms } => Command::Claim {
                factory: factory(*n),
                ttl_ms: *ttl_ms,
                placement: None,
                rate_micros_per_hour: RATE_MICROS_PER_HOUR,
            },
            Op::Usage { w, e, micros } => Command::Usage {
                factory: writer(w),
                epoch: epoch(e),
                model: "m".into(),
                input_tokens: 1,
                output_tokens: 1,
                micros: *micros,
            },
            Op::Renew { w, e, ttl_ms } => Command::Renew {
                factory: writer(w),
                epoch: epoch(e),
                ttl_ms: *ttl_ms,
            },
            Op::Stage { w, e } => Command::Stage {
                factory: writer(w),
                epoch: epoch(e),
                stage: "testing".into(),
            },
            Op::Complete { w, e } => Command::Complete {
                factory: writer(w),
                epoch: epoch(e),
            },
            Op::Fail {
                w,
                e,
                retryable,
                jitter,
            } => Command::Fail {
                factory: writer(w),
                epoch: epoch(e),
                error: "boom".into(),
                exit_code: Some(2),
                retryable: *retryable,
                jitter: *jitter,
            },
            Op::Release { w, e, checkpoint } => Command::Release {
                factory: writer(w),
                epoch: epoch(e),
                checkpoint: checkpoint.then(|| "ckpt".into()),
            },
            Op::Expire { jitter } => Command::Expire { jitter: *jitter },
            Op::BudgetExhausted => Command::BudgetExhausted,
            Op::Preempt { grace_ms } => Command::Preempt {
                by: None,
                grace_ms: *grace_ms,
            },
            Op::ParentsDone => Command::ParentsDone,
            Op::Cancel => Command::Cancel,
            Op::Requeue => Command::Requeue,
            Op::Retry => Command::Retry,
            Op::Ship => Command::Ship,
            Op::Reject => Command::Reject,
        }
    }
}

fn writer() -> impl Strategy<Value = Writer> {
    prop_oneof![
        Just(Writer::Holder),
        (0..FACTORIES).prop_map(Writer::Factory)
    ]
}

fn presented() -> impl Strategy<Value = Presented> {
    prop_oneof![
        2 => Just(Presented::Current),
        1 => any::<u64>().prop_map(Presented::Other),
    ]
}

/// Times and TTLs of the same order, so leases both outlive and miss their renewals.
fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..FACTORIES, 1u64..3_000)
            .prop_map(|(factory, ttl_ms)| Op::Claim { factory, ttl_ms }),
        2 => (writer(), presented(), 0u64..400_000)
            .prop_map(|(w, e, micros)| Op::Usage { w, e, micros }),
        3 => (writer(), presented(), 1u64..3_000)
            .prop_map(|(w, e, ttl_ms)| Op::Renew { w, e, ttl_ms }),
        2 => (writer(), presented()).prop_map(|(w, e)| Op::Stage { w, e }),
        2 => (writer(), presented()).prop_map(|(w, e)| Op::Complete { w, e }),
        3 => (writer(), presented(), any::<bool>(), 0.0f64..1.0).prop_map(
            |(w, e, retryable, jitter)| Op::Fail { w, e, retryable, jitter }
        ),
        2 => (writer(), presented(), any::<bool>())
            .prop_map(|(w, e, checkpoint)| Op::Release { w, e, checkpoint }),
        3 => (0.0f64..1.0).prop_map(|jitter| Op::Expire { jitter }),
        1 => Just(Op::BudgetExhausted),
        2 => (0u64..2_000).prop_map(|grace_ms| Op::Preempt { grace_ms }),
        1 => Just(Op::ParentsDone),
        1 => Just(Op::Cancel),
        1 => Just(Op::Requeue),
        1 => Just(Op::Retry),
        1 => Just(Op::Ship),
        1 => Just(Op::Reject),
    ]
}

/// One random life of a job: its spec, whether it starts pending, and the steps (time to
/// advance in ms, then the command).
#[derive(Debug, Clone)]
struct Run {
    spec: JobSpec,
    pending: bool,
    steps: Vec<(u64, Op)>,
}

fn run() -> impl Strategy<Value = Run> {
    (
        1u32..=4,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(0u64..2_000_000),
        prop::collection::vec((0u64..2_000, op()), 1..60),
    )
        .prop_map(
            |(max_attempts, review, preemptible, pending, cap, steps)| Run {
                spec: JobSpec {
                    cost_budget_micros: cap,
                    ..spec_with(max_attempts, review, preemptible)
                },
                pending,
                steps,
            },
        )
}

/// One command of a run, as applied.
struct Step<'a> {
    before: &'a Job,
    cmd: &'a Command,
    now: Millis,
    result: &'a Result<(Job, Vec<Effect>), JobError>,
}

impl Step<'_> {
    /// The job after the step: the new one, or the old one kept when refused.
    fn after(&self) -> &Job {
        self.result.as_ref().map_or(self.before, |(next, _)| next)
    }
}

/// Plays `run` with an increasing `now`, keeping the job when a command is refused, and
/// hands every step to `check`.
fn play(
    run: &Run,
    mut check: impl FnMut(&Step) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    let parents = if run.pending {
        vec![JobId(Uuid::from_u128(7))]
    } else {
        Vec::new()
    };
    let mut job = new_job(JobId(Uuid::from_u128(1)), run.spec.clone(), parents, T0);
    let mut now = T0;
    for (advance_ms, op) in &run.steps {
        now += advance_ms;
        let cmd = op.resolve(&job);
        let result = apply(&job, cmd.clone(), now, &backoff(), Readiness::Ready);
        check(&Step {
            before: &job,
            cmd: &cmd,
            now,
            result: &result,
        })?;
        if let Ok((next, _)) = result {
            job = next;
        }
    }
    Ok(())
}

/// The factory and epoch of a factory write, read independently of `Command::fence`.
fn write_fence(cmd: &Command) -> Option<(FactoryId, u64)> {
    match cmd {
        Command::Renew { factory, epoch, .. }
        | Command::Stage { factory, epoch, .. }
        | Command::Complete { factory, epoch }
        | Command::Fail { factory, epoch, .. }
        | Command::Release { factory, epoch, .. } => Some((*factory, *epoch)),
        _ => None,
    }
}

/// Whether `factory` holding `epoch` could still write to `job` (a renewal is accepted).
fn can_write(job: &Job, factory: FactoryId, epoch: u64, now: Millis) -> bool {
    let probe = Command::Renew {
        factory,
        epoch,
        ttl_ms: 1,
    };
    apply(job, probe, now, &backoff(), Readiness::Ready).is_ok()
}

/// Whether `b` is the same lease as `a` (possibly renewed or shortened), not a new one.
fn same_lease(a: &Lease, b: &Lease) -> bool {
    (a.epoch, a.factory, a.granted_at) == (b.epoch, b.factory, b.granted_at)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// J1: after every step only the lease-holding states carry a lease, it has the job's
    /// epoch, and of every lease ever granted at most one (that one) can still write.
    #[test]
    fn j1_no_sequence_produces_two_live_leases(run in run()) {
        let mut granted: Vec<(FactoryId, u64)> = Vec::new();
        play(&run, |step| {
            let job = step.after();
            let holds = matches!(
                job.state,
                JobState::Leased { .. } | JobState::Running { .. } | JobState::Preempting { .. }
            );
            prop_assert_eq!(holds, job.state.lease().is_some(), "J1: {:?}", job.state);
            if let Some(lease) = job.state.lease() {
                prop_assert_eq!(lease.epoch, job.epoch, "J1: the live lease has the job's epoch");
                if !granted.contains(&(lease.factory, lease.epoch)) {
                    granted.push((lease.factory, lease.epoch));
                }
            }
            let mut writers: Vec<(FactoryId, u64)> = granted
                .iter()
                .copied()
                .filter(|&(f, e)| can_write(job, f, e, step.now))
                .collect();
            // Any factory at the current epoch, in case a lease slipped past `granted`.
            for n in 0..FACTORIES {
                if can_write(job, factory(n), job.epoch, step.now)
                    && !writers.contains(&(factory(n), job.epoch))
                {
                    writers.push((factory(n), job.epoch));
                }
            }
            prop_assert!(writers.len() <= 1, "J1: live leases {:?}", writers);
            let live = job.state.lease().map(|l| (l.factory, l.epoch));
            prop_assert_eq!(writers.first().copied(), live, "J1: the writer is the holder");
            Ok(())
        })?;
    }

    /// J2: the epoch never goes back; every new lease and every end of a lease other than
    /// the holder's own `complete` or `fail` bumps it (those two end the lease and leave
    /// the epoch, since no lease is left to fence); a lease that carries on keeps it.
    /// Exactly: +1 on claim, release, expire, requeue, retry, and on cancel or budget
    /// exhaustion of a leased job; unchanged otherwise.
    #[test]
    fn j2_epochs_never_go_back_and_every_new_or_revoked_lease_bumps_them(run in run()) {
        play(&run, |step| {
            let Ok((next, _)) = step.result else { return Ok(()) };
            let before = step.before;
            prop_assert!(next.epoch >= before.epoch, "J2: epoch went back");
            let old = before.state.lease();
            let new = next.state.lease();
            let carries_on = matches!((old, new), (Some(a), Some(b)) if same_lease(a, b));
            let holder_finished =
                matches!(step.cmd, Command::Complete { .. } | Command::Fail { .. });
            if new.is_some() && !carries_on {
                prop_assert!(next.epoch > before.epoch, "J2: a new lease bumps the epoch");
            }
            if old.is_some() && !carries_on {
                if holder_finished {
                    prop_assert_eq!(next.epoch, before.epoch);
                } else {
                    prop_assert!(next.epoch > before.epoch, "J2: a revocation bumps the epoch");
                }
            }
            if carries_on {
                prop_assert_eq!(next.epoch, before.epoch, "J2: the holder is not fenced");
            }
            let bump = match step.cmd {
                Command::Claim { .. }
                | Command::Release { .. }
                | Command::Expire { .. }
                | Command::Requeue
                | Command::Retry => 1,
                Command::Cancel | Command::BudgetExhausted => u64::from(old.is_some()),
                // Spend past the job's own cost budget revokes the lease it was reported under.
                Command::Usage { .. } | Command::Renew { .. } => {
                    u64::from(crossed_cost_cap(before, next))
                }
                _ => 0,
            };
            prop_assert_eq!(next.epoch, before.epoch + bump, "J2: {:?}", step.cmd);
            Ok(())
        })?;
    }

    /// J3: an accepted factory write carried the job's current epoch and came from the
    /// factory holding the lease.
    #[test]
    fn j3_every_accepted_factory_write_comes_from_the_current_holder(run in run()) {
        play(&run, |step| {
            if let (Ok(_), Some((factory, epoch))) = (step.result, write_fence(step.cmd)) {
                prop_assert_eq!(epoch, step.before.epoch, "J3: stale epoch accepted");
                let holder = step.before.state.lease().map(|l| l.factory);
                prop_assert_eq!(Some(factory), holder, "J3: write from a non-holder");
            }
            Ok(())
        })?;
    }

    /// A refused command leaves the job as it was, and `apply` is a pure function: the
    /// same job, command and time give the same answer.
    #[test]
    fn apply_is_deterministic_and_a_refused_command_changes_nothing(run in run()) {
        play(&run, |step| {
            let snapshot = step.before.clone();
            let again = apply(step.before, step.cmd.clone(), step.now, &backoff(), Readiness::Ready);
            prop_assert_eq!(&again, step.result, "apply is not deterministic");
            prop_assert_eq!(step.before, &snapshot);
            if step.result.is_err() {
                prop_assert_eq!(step.after(), &snapshot);
            }
            Ok(())
        })?;
    }

    /// J4: a terminal job changes only by `requeue` (from any terminal state) or `retry`
    /// (from dead, cancelled or rejected), and those start a new life: queued at once,
    /// with a new epoch.
    #[test]
    fn j4_a_terminal_job_changes_only_by_retry_or_requeue(run in run()) {
        play(&run, |step| {
            let before = step.before;
            if !before.state.is_terminal() {
                return Ok(());
            }
            if let Ok((next, _)) = step.result {
                let allowed = match step.cmd {
                    Command::Requeue => true,
                    Command::Retry => matches!(
                        before.state,
                        JobState::Dead | JobState::Cancelled { .. } | JobState::Rejected
                    ),
                    _ => false,
                };
                prop_assert!(allowed, "J4: {:?} changed a {} job", step.cmd, before.state.name());
                prop_assert_eq!(&next.state, &JobState::Queued { not_before: step.now });
                prop_assert!(next.epoch > before.epoch, "J4: a new life has a new epoch");
            }
            Ok(())
        })?;
    }

    /// `rev` counts accepted commands: exactly one more per accepted command.
    #[test]
    fn rev_grows_by_exactly_one_per_accepted_command(run in run()) {
        play(&run, |step| {
            if let Ok((next, _)) = step.result {
                prop_assert_eq!(next.rev, step.before.rev + 1);
                prop_assert_eq!(next.updated_at, step.now);
            }
            Ok(())
        })?;
    }

    /// Spend only grows, and a job past its own cost budget never stays alive: after any
    /// step it is terminal, in review, or within its budget.
    #[test]
    fn a_job_never_lives_on_past_its_cost_budget(run in run()) {
        play(&run, |step| {
            let job = step.after();
            prop_assert!(job.cost.total() >= step.before.cost.total(), "spend went back");
            if let Some(cap) = job.spec.cost_budget_micros {
                prop_assert!(
                    job.cost.total() <= cap
                        || job.state.is_terminal()
                        || job.state == JobState::Review,
                    "{} spent {} of {} after {:?}",
                    job.state.name(),
                    job.cost.total(),
                    cap,
                    step.cmd
                );
            }
            prop_assert!(
                job.state.lease().is_some() || job.cost.rate_micros_per_hour == 0,
                "factory time accrues only under a lease"
            );
            Ok(())
        })?;
    }

    /// `failures` never exceeds `max_attempts`: the job dies when it reaches it.
    #[test]
    fn failures_never_exceed_max_attempts(run in run()) {
        play(&run, |step| {
            let job = step.after();
            prop_assert!(
                job.failures <= job.spec.max_attempts,
                "{} failures of {} after {:?} on a {} job",
                job.failures,
                job.spec.max_attempts,
                step.cmd,
                step.before.state.name()
            );
            Ok(())
        })?;
    }
}

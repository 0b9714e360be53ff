//! A lease's life case by case: claims, renewals, fencing, ends, expiry, preemption, release
//! and cancellation.

use super::*;

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
        refused(
            &job,
            Command::Expire {
                jitter: 0.5,
                blamed: true
            },
            expires_at - 1
        ),
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
    let (expired, effects) = ok(
        &job,
        Command::Expire {
            jitter: 0.0,
            blamed: true,
        },
        expires_at,
    );
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
    let (dead, effects) = ok(
        &job,
        Command::Expire {
            jitter: 0.5,
            blamed: true,
        },
        expires_at + 7,
    );
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!((dead.epoch, dead.failures), (2, 1));
    assert_eq!(effects, [Effect::Finished]);
}

#[test]
fn an_expiry_while_no_coordinator_could_hear_fences_but_costs_no_attempt() {
    let job = leased(spec_with(1, false, true), A);
    let expires_at = lease_of(&job).expires_at;
    let expire = Command::Expire {
        jitter: 0.0,
        blamed: false,
    };
    let (expired, effects) = ok(&job, expire, expires_at + 7);
    assert_eq!((expired.epoch, expired.failures), (2, 0));
    assert!(
        matches!(expired.state, JobState::Failed { .. }),
        "requeued, not dead, at its one attempt: {:?}",
        expired.state
    );
    assert!(matches!(effects.as_slice(), [Effect::Ready { .. }]));
    assert_eq!(
        expired.last_error.as_deref(),
        Some("lease expired while no coordinator could hear it")
    );
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
    let (expired, effects) = ok(
        &preempting,
        Command::Expire {
            jitter: 0.9,
            blamed: true,
        },
        deadline,
    );
    assert_eq!((expired.epoch, expired.failures), (2, 0));
    assert_eq!(expired.last_error, None);
    // No failure, so no backoff: placeable at once.
    assert_eq!(expired.state, JobState::Failed { retry_at: deadline });
    assert_eq!(effects, [Effect::Ready { at: deadline }]);
}

#[test]
fn a_throttled_release_waits_for_the_reset_and_counts_no_failure() {
    let job = leased(spec(), A);
    let throttled = Command::Release {
        factory: factory(A),
        epoch: 1,
        checkpoint: None,
        throttled_until: Some(T0 + 60_000),
    };
    let (released, effects) = ok(&job, throttled, T0 + 300);
    assert_eq!(
        released.state,
        JobState::Queued {
            not_before: T0 + 60_000
        }
    );
    assert_eq!(effects, [Effect::Ready { at: T0 + 60_000 }]);
    assert_eq!((released.epoch, released.failures), (2, 0));
    // A reset already past waits for nothing.
    let past = Command::Release {
        factory: factory(B),
        epoch: 3,
        checkpoint: None,
        throttled_until: Some(T0),
    };
    let (next, _) = ok(&released, claim(B), T0 + 61_000);
    let (again, _) = ok(&next, past, T0 + 62_000);
    assert_eq!(
        again.state,
        JobState::Queued {
            not_before: T0 + 62_000
        }
    );
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
    let (cancelled, effects) = ok(&job, Command::Cancel { reason: None }, T0 + 2);
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

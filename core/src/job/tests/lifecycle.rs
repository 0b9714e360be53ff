//! A job's life around its leases case by case: review, retry and requeue, parents, the
//! wall-clock budget, terminal states.

use super::*;

#[test]
fn ship_and_reject_are_accepted_only_from_review() {
    let reviewed = leased(spec_with(3, true, true), A);
    let succeeded = ok(&leased(spec(), A), complete(A, 1), T0 + 1).0;
    for job in [queued(spec()), reviewed.clone(), succeeded] {
        for (cmd, name) in [
            (ship("ana"), "ship"),
            (reject("ana"), "reject"),
            (request_changes("ana", "more tests"), "request_changes"),
        ] {
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
    let (shipped, effects) = ok(&review, ship("ana"), T0 + 2);
    assert_eq!(
        (shipped.state, effects),
        (JobState::Shipped, vec![Effect::Finished])
    );
    let (rejected, effects) = ok(&review, reject("ana"), T0 + 2);
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
    let (retried, effects) = ok(&dead, Command::Retry { reason: None }, T0 + 20);
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
    let cancelled = ok(&leased(spec(), A), Command::Cancel { reason: None }, T0 + 1).0;
    vec![
        ok(&leased(spec(), A), complete(A, 1), T0 + 1).0,
        ok(&review, ship("ana"), T0 + 2).0,
        ok(&review, reject("ana"), T0 + 2).0,
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
    for cmd in [
        Command::Retry { reason: None },
        Command::Requeue { reason: None },
    ] {
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
    let operator = ok(&pending, Command::Cancel { reason: None }, T0 + 1).0;
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
    let (requeued, _) = ok(&dead, Command::Requeue { reason: None }, T0 + 20);
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
    let (expired, _) = ok(
        &preempting,
        Command::Expire {
            jitter: 0.5,
            blamed: true,
        },
        T0 + 50,
    );
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

#[test]
fn a_repeat_is_the_same_spec_and_parents_and_anything_else_conflicts() {
    let parent = JobId(Uuid::from_u128(7));
    let first = new_job(JobId(Uuid::from_u128(1)), spec(), vec![parent], T0);
    let again = new_job(JobId(Uuid::from_u128(2)), spec(), vec![parent], T0 + 5);
    assert!(
        same_submission(&first, &again),
        "ids and times are not the submission"
    );
    let mut title = again.clone();
    title.spec.title.push('!');
    assert!(!same_submission(&first, &title));
    let elsewhere = new_job(JobId(Uuid::from_u128(3)), spec(), vec![], T0);
    assert!(
        !same_submission(&first, &elsewhere),
        "a child under another parent is another job"
    );
    // A manifest's job names its parents by key in `deps`: the keys are the submission, the
    // ids they resolved to are not (a parent without a key is made anew each time).
    let mut by_key = spec();
    by_key.deps = vec!["build".into()];
    let first = new_job(JobId(Uuid::from_u128(1)), by_key.clone(), vec![parent], T0);
    let again = new_job(
        JobId(Uuid::from_u128(2)),
        by_key,
        vec![JobId(Uuid::from_u128(8))],
        T0,
    );
    assert!(same_submission(&first, &again));
}

/// One state of each kind; the match below stops compiling when a kind is added, so the
/// list of names cannot silently fall behind.
fn one_of_each_state() -> Vec<JobState> {
    let lease = Lease {
        epoch: 1,
        factory: factory(0),
        granted_at: T0,
        expires_at: T0 + TTL_MS,
    };
    let all = vec![
        JobState::Pending,
        JobState::Queued { not_before: 0 },
        JobState::Failed { retry_at: T0 },
        JobState::Leased { lease },
        JobState::Running { lease },
        JobState::Preempting {
            lease,
            by: None,
            deadline: T0,
        },
        JobState::Review,
        JobState::Succeeded,
        JobState::Shipped,
        JobState::Rejected,
        JobState::Dead,
        JobState::Cancelled { by_parent: None },
    ];
    for s in &all {
        match s {
            JobState::Pending
            | JobState::Queued { .. }
            | JobState::Failed { .. }
            | JobState::Leased { .. }
            | JobState::Running { .. }
            | JobState::Preempting { .. }
            | JobState::Review
            | JobState::Succeeded
            | JobState::Shipped
            | JobState::Rejected
            | JobState::Dead
            | JobState::Cancelled { .. } => {}
        }
    }
    all
}

#[test]
fn the_list_of_state_names_holds_every_states_name_once_in_order() {
    let names: Vec<&str> = one_of_each_state().iter().map(JobState::name).collect();
    assert_eq!(names, JobState::NAMES);
}

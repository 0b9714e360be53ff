//! The state machine's invariants J1–J4 by property: random command sequences against one
//! job.

use super::*;

const FACTORIES: usize = 3;
/// The token names reviews are decided by; the runs' specs allow some of them.
pub(super) const REVIEWERS: [&str; 3] = ["ana", "bo", "cy"];

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
        blamed: bool,
    },
    BudgetExhausted,
    Preempt {
        grace_ms: u64,
    },
    ParentsDone,
    Cancel,
    Requeue,
    Retry,
    /// Decisions by `REVIEWERS[n]`.
    Ship(usize),
    Reject(usize),
    RequestChanges(usize),
    /// A question with a timeout of `timeout_ms`, and its default when `default`.
    Ask {
        w: Writer,
        e: Presented,
        timeout_ms: u64,
        default: bool,
    },
    /// An answer: a choice, or (false) a word that is none.
    Answer(bool),
    QuestionTimeout,
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
                limit_slots: vec![format!("repo:r{n}")],
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
                throttled_until: None,
            },
            Op::Expire { jitter, blamed } => Command::Expire {
                jitter: *jitter,
                blamed: *blamed,
            },
            Op::BudgetExhausted => Command::BudgetExhausted,
            Op::Preempt { grace_ms } => Command::Preempt {
                by: None,
                grace_ms: *grace_ms,
            },
            Op::ParentsDone => Command::ParentsDone,
            Op::Cancel => Command::Cancel { reason: None },
            Op::Requeue => Command::Requeue { reason: None },
            Op::Retry => Command::Retry { reason: None },
            Op::Ship(n) => ship(REVIEWERS[*n]),
            Op::Reject(n) => reject(REVIEWERS[*n]),
            Op::RequestChanges(n) => request_changes(REVIEWERS[*n], "add a test"),
            Op::Ask {
                w,
                e,
                timeout_ms,
                default,
            } => Command::Ask {
                factory: writer(w),
                epoch: epoch(e),
                ask: crate::job::question::Ask {
                    id: format!("q{}", job.rev),
                    text: "merge?".into(),
                    choices: vec!["yes".into(), "no".into()],
                    default: default.then(|| "no".into()),
                    timeout_ms: Some(*timeout_ms),
                },
            },
            Op::Answer(choice) => Command::Answer {
                // The open question's id, as an operator who read it sends it.
                question_id: job
                    .question
                    .as_ref()
                    .map_or_else(String::new, |q| q.id.clone()),
                by: "ana".into(),
                answer: if *choice { "yes" } else { "maybe" }.into(),
                note: None,
            },
            Op::QuestionTimeout => Command::QuestionTimeout,
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
        3 => (0.0f64..1.0, any::<bool>()).prop_map(|(jitter, blamed)| Op::Expire { jitter, blamed }),
        1 => Just(Op::BudgetExhausted),
        2 => (0u64..2_000).prop_map(|grace_ms| Op::Preempt { grace_ms }),
        1 => Just(Op::ParentsDone),
        1 => Just(Op::Cancel),
        1 => Just(Op::Requeue),
        1 => Just(Op::Retry),
        3 => (0..REVIEWERS.len()).prop_map(Op::Ship),
        1 => (0..REVIEWERS.len()).prop_map(Op::Reject),
        1 => (0..REVIEWERS.len()).prop_map(Op::RequestChanges),
        2 => (writer(), presented(), 1u64..3_000, any::<bool>()).prop_map(
            |(w, e, timeout_ms, default)| Op::Ask { w, e, timeout_ms, default }
        ),
        1 => any::<bool>().prop_map(Op::Answer),
        1 => Just(Op::QuestionTimeout),
    ]
}

/// One random life of a job: its spec, whether it starts pending, and the steps (time to
/// advance in ms, then the command).
#[derive(Debug, Clone)]
pub(super) struct Run {
    pub(super) spec: JobSpec,
    pending: bool,
    steps: Vec<(u64, Op)>,
}

/// Reviews need one to three approvals, from anyone or from some of `REVIEWERS` (never fewer
/// than the approvals, as the manifest checks).
pub(super) fn run() -> impl Strategy<Value = Run> {
    (
        (1u32..=4, any::<bool>(), any::<bool>(), any::<bool>()),
        prop::option::of(0u64..2_000_000),
        (
            1u32..=3,
            prop::sample::subsequence(REVIEWERS.to_vec(), 0..=3),
        ),
        prop::collection::vec((0u64..2_000, op()), 1..60),
    )
        .prop_map(
            |((max_attempts, review, preemptible, pending), cap, (approvals, allowed), steps)| {
                let reviewers: Vec<String> = allowed.iter().map(|r| r.to_string()).collect();
                let approvals = match reviewers.len() {
                    0 => approvals,
                    n => approvals.min(n as u32),
                };
                Run {
                    spec: JobSpec {
                        cost_budget_micros: cap,
                        approvals,
                        reviewers,
                        ..spec_with(max_attempts, review, preemptible)
                    },
                    pending,
                    steps,
                }
            },
        )
}

/// One command of a run, as applied.
pub(super) struct Step<'a> {
    pub(super) before: &'a Job,
    pub(super) cmd: &'a Command,
    pub(super) now: Millis,
    pub(super) result: &'a Result<(Job, Vec<Effect>), JobError>,
}

impl Step<'_> {
    /// The job after the step: the new one, or the old one kept when refused.
    pub(super) fn after(&self) -> &Job {
        self.result.as_ref().map_or(self.before, |(next, _)| next)
    }
}

/// Plays `run` with an increasing `now`, keeping the job when a command is refused, and
/// hands every step to `check`.
pub(super) fn play(
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
        | Command::Release { factory, epoch, .. }
        | Command::Ask { factory, epoch, .. } => Some((*factory, *epoch)),
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
            // Limit slots belong to the lease: held exactly while it is (every claim here
            // takes one), so whatever ends a lease gives them back.
            prop_assert_eq!(!job.limit_slots.is_empty(), holds, "slots {:?}", job.limit_slots);
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
                | Command::Requeue { .. }
                | Command::Retry { .. } => 1,
                Command::Cancel { .. } | Command::BudgetExhausted => u64::from(old.is_some()),
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
                    Command::Requeue { .. } => true,
                    Command::Retry { .. } => matches!(
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

    /// Q1: a question is open only under a lease; Q2: an ended question keeps its outcome
    /// until a new question (another id) replaces it.
    #[test]
    fn q1_q2_a_question_is_open_only_under_a_lease_and_ends_once(run in run()) {
        play(&run, |step| {
            let job = step.after();
            prop_assert!(
                crate::job::question::open(job).is_none() || job.state.lease().is_some(),
                "Q1: an open question without a lease after {:?}",
                step.cmd
            );
            if let (Some(before), Some(after)) = (&step.before.question, &job.question)
                && before.id == after.id
                && before.outcome.is_some()
            {
                prop_assert_eq!(&before.outcome, &after.outcome, "Q2: {:?}", step.cmd);
            }
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

//! The state machine's tests: shared helpers here; the lease's life case by case
//! (`lease.rs`), the job's life around it (`lifecycle.rs`), its review (`review.rs`), and
//! questions to an operator (`question.rs`), and invariants J1–J4 by property over random command sequences (`props.rs`).

use super::*;
use crate::backoff::Backoff;
use crate::manifest::validate_job_spec;
use crate::parents::Readiness;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

mod actions;
mod lease;
mod lifecycle;
mod props;
mod question;
mod review;

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
    JobSpec::sample()
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
        limit_slots: Vec::new(),
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
        throttled_until: None,
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
        Command::Expire {
            jitter: 0.5,
            blamed: true,
        },
        Command::BudgetExhausted,
        Command::Preempt {
            by: None,
            grace_ms: 1_000,
        },
        Command::ParentsDone,
        Command::Cancel { reason: None },
        ship("ana"),
        reject("ana"),
        request_changes("ana", "more tests"),
        Command::Retry { reason: None },
        Command::Requeue { reason: None },
    ]
}

fn ship(by: &str) -> Command {
    Command::Ship {
        by: by.into(),
        reason: None,
    }
}

fn reject(by: &str) -> Command {
    Command::Reject {
        by: by.into(),
        reason: None,
    }
}

fn request_changes(by: &str, reason: &str) -> Command {
    Command::RequestChanges {
        by: by.into(),
        reason: reason.into(),
    }
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

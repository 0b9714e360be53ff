//! Reading records written by older versions. Each older shape is declared here as it was,
//! field for field (bincode is not self-describing: the order is the format), and converted
//! to the current one. Jobs: schema 1 had no cause on `Cancelled`; schemas 1 and 2 had no
//! labels and no cost; schema 3 no origin; schemas up to 4 no artifact globs in the spec;
//! schemas up to 5 no approvals, reviewers, concurrency key or affinity in the spec, and no
//! limit slots or approvals on the job; schema 6 no review feedback; schemas up to 7 no
//! sandbox in the spec; schemas up to 8 no question; schemas up to 9 no repository in the
//! spec. Other records' older shapes are in `records.rs`.

use gigafactory_core::job::question::Question;
use gigafactory_core::job::{Approval, Job, JobId, JobState, Lease, Millis};
use gigafactory_core::manifest::{JobSpec, Payload, sorted_unique_strings};
use gigafactory_core::sandbox::SandboxSpec;
use gigafactory_core::scoring::ScoreBreakdown;
use gigafactory_core::tracker::ItemRef;
use gigafactory_core::usage::JobCost;
use serde::Deserialize;

mod records;

pub(super) use records::{factory, fleet_event, ready_entry, token};

use crate::codec::decode_payload;
use crate::error::{Error, Result};

/// A job spec before labels.
#[derive(Deserialize)]
struct JobSpecV1 {
    key: String,
    title: String,
    product: String,
    payload: Payload,
    priority: u32,
    #[serde(deserialize_with = "sorted_unique_strings")]
    capabilities: Vec<String>,
    engine_class: Option<String>,
    profile: Option<String>,
    deps: Vec<String>,
    idempotency_key: Option<String>,
    allowed_scope: Vec<String>,
    max_attempts: u32,
    wall_clock_ms: Option<u64>,
    cost_budget_micros: Option<u64>,
    preemptible: bool,
    review: bool,
}

impl From<JobSpecV1> for JobSpec {
    fn from(s: JobSpecV1) -> Self {
        JobSpec {
            key: s.key,
            title: s.title,
            product: s.product,
            payload: s.payload,
            priority: s.priority,
            capabilities: s.capabilities,
            labels: Vec::new(),
            engine_class: s.engine_class,
            profile: s.profile,
            deps: s.deps,
            idempotency_key: s.idempotency_key,
            allowed_scope: s.allowed_scope,
            max_attempts: s.max_attempts,
            wall_clock_ms: s.wall_clock_ms,
            cost_budget_micros: s.cost_budget_micros,
            preemptible: s.preemptible,
            review: s.review,
            artifacts: Vec::new(),
            ..scheduling_defaults()
        }
    }
}

/// A job spec with labels and without artifact globs (job schemas 3 and 4).
#[derive(Deserialize)]
struct JobSpecV2 {
    key: String,
    title: String,
    product: String,
    payload: Payload,
    priority: u32,
    #[serde(deserialize_with = "sorted_unique_strings")]
    capabilities: Vec<String>,
    #[serde(deserialize_with = "sorted_unique_strings")]
    labels: Vec<String>,
    engine_class: Option<String>,
    profile: Option<String>,
    deps: Vec<String>,
    idempotency_key: Option<String>,
    allowed_scope: Vec<String>,
    max_attempts: u32,
    wall_clock_ms: Option<u64>,
    cost_budget_micros: Option<u64>,
    preemptible: bool,
    review: bool,
}

impl From<JobSpecV2> for JobSpec {
    fn from(s: JobSpecV2) -> Self {
        JobSpec {
            key: s.key,
            title: s.title,
            product: s.product,
            payload: s.payload,
            priority: s.priority,
            capabilities: s.capabilities,
            labels: s.labels,
            engine_class: s.engine_class,
            profile: s.profile,
            deps: s.deps,
            idempotency_key: s.idempotency_key,
            allowed_scope: s.allowed_scope,
            artifacts: Vec::new(),
            max_attempts: s.max_attempts,
            wall_clock_ms: s.wall_clock_ms,
            cost_budget_micros: s.cost_budget_micros,
            preemptible: s.preemptible,
            review: s.review,
            ..scheduling_defaults()
        }
    }
}

/// A job spec with artifact globs, before approvals, reviewers, concurrency key and affinity
/// (job schema 5).
#[derive(Deserialize)]
struct JobSpecV3 {
    key: String,
    title: String,
    product: String,
    payload: Payload,
    priority: u32,
    #[serde(deserialize_with = "sorted_unique_strings")]
    capabilities: Vec<String>,
    #[serde(deserialize_with = "sorted_unique_strings")]
    labels: Vec<String>,
    engine_class: Option<String>,
    profile: Option<String>,
    deps: Vec<String>,
    idempotency_key: Option<String>,
    allowed_scope: Vec<String>,
    artifacts: Vec<String>,
    max_attempts: u32,
    wall_clock_ms: Option<u64>,
    cost_budget_micros: Option<u64>,
    preemptible: bool,
    review: bool,
}

impl From<JobSpecV3> for JobSpec {
    fn from(s: JobSpecV3) -> Self {
        JobSpec {
            key: s.key,
            title: s.title,
            product: s.product,
            payload: s.payload,
            priority: s.priority,
            capabilities: s.capabilities,
            labels: s.labels,
            engine_class: s.engine_class,
            profile: s.profile,
            deps: s.deps,
            idempotency_key: s.idempotency_key,
            allowed_scope: s.allowed_scope,
            artifacts: s.artifacts,
            max_attempts: s.max_attempts,
            wall_clock_ms: s.wall_clock_ms,
            cost_budget_micros: s.cost_budget_micros,
            preemptible: s.preemptible,
            review: s.review,
            ..scheduling_defaults()
        }
    }
}

/// A job spec before sandboxes (job schemas 6 and 7): schema 5's fields, then the scheduling
/// ones. bincode writes a nested struct's fields in order, as if they stood here.
#[derive(Deserialize)]
struct JobSpecV7 {
    base: JobSpecV3,
    approvals: u32,
    reviewers: Vec<String>,
    concurrency_key: Option<String>,
    affinity: Option<String>,
}

impl From<JobSpecV7> for JobSpec {
    fn from(s: JobSpecV7) -> Self {
        // Before sandboxes a job had the network and no limits: the default.
        JobSpec {
            approvals: s.approvals,
            reviewers: s.reviewers,
            concurrency_key: s.concurrency_key,
            affinity: s.affinity,
            ..s.base.into()
        }
    }
}

/// A job spec before repositories (job schemas 8 and 9): schema 7's, then the sandbox.
#[derive(Deserialize)]
struct JobSpecV9 {
    base: JobSpecV7,
    sandbox: SandboxSpec,
}

impl From<JobSpecV9> for JobSpec {
    fn from(s: JobSpecV9) -> Self {
        // Before repositories a job ran in an empty directory: no repository.
        JobSpec {
            sandbox: s.sandbox,
            ..s.base.into()
        }
    }
}

/// What a spec written before schema 6 means for the fields it lacks: one approval by any
/// operator, no concurrency key, no affinity. The rest is overwritten by the caller.
fn scheduling_defaults() -> JobSpec {
    JobSpec::new("", "", "", Payload::Command(String::new()))
}

/// A job as schemas 1 and 2 stored it (they differ only in `S`, the state's shape): no labels
/// in its spec, no cost.
#[derive(Deserialize)]
struct JobV1<S> {
    id: JobId,
    spec: JobSpecV1,
    parents: Vec<JobId>,
    state: S,
    stage: Option<String>,
    epoch: u64,
    attempts: u32,
    failures: u32,
    checkpoint: Option<String>,
    placement: Option<ScoreBreakdown>,
    last_error: Option<String>,
    exit_code: Option<i32>,
    run_ms: u64,
    created_at: Millis,
    updated_at: Millis,
    rev: u64,
}

#[derive(Deserialize)]
enum JobStateV1 {
    Pending,
    Queued {
        not_before: Millis,
    },
    Failed {
        retry_at: Millis,
    },
    Leased {
        lease: Lease,
    },
    Running {
        lease: Lease,
    },
    Preempting {
        lease: Lease,
        by: Option<JobId>,
        deadline: Millis,
    },
    Review,
    Succeeded,
    Shipped,
    Rejected,
    Dead,
    Cancelled,
}

impl From<JobStateV1> for JobState {
    fn from(s: JobStateV1) -> Self {
        match s {
            JobStateV1::Pending => JobState::Pending,
            JobStateV1::Queued { not_before } => JobState::Queued { not_before },
            JobStateV1::Failed { retry_at } => JobState::Failed { retry_at },
            JobStateV1::Leased { lease } => JobState::Leased { lease },
            JobStateV1::Running { lease } => JobState::Running { lease },
            JobStateV1::Preempting {
                lease,
                by,
                deadline,
            } => JobState::Preempting {
                lease,
                by,
                deadline,
            },
            JobStateV1::Review => JobState::Review,
            JobStateV1::Succeeded => JobState::Succeeded,
            JobStateV1::Shipped => JobState::Shipped,
            JobStateV1::Rejected => JobState::Rejected,
            JobStateV1::Dead => JobState::Dead,
            // Before schema 2 only operators cancelled.
            JobStateV1::Cancelled => JobState::Cancelled { by_parent: None },
        }
    }
}

impl<S: Into<JobState>> From<JobV1<S>> for Job {
    fn from(v1: JobV1<S>) -> Self {
        Job {
            id: v1.id,
            spec: v1.spec.into(),
            parents: v1.parents,
            state: v1.state.into(),
            stage: v1.stage,
            epoch: v1.epoch,
            attempts: v1.attempts,
            failures: v1.failures,
            checkpoint: v1.checkpoint,
            placement: v1.placement,
            last_error: v1.last_error,
            exit_code: v1.exit_code,
            run_ms: v1.run_ms,
            created_at: v1.created_at,
            updated_at: v1.updated_at,
            rev: v1.rev,
            cost: JobCost::default(),
            origin: None,
            limit_slots: Vec::new(),
            approvals: Vec::new(),
            review_feedback: None,
            question: None,
        }
    }
}

/// A job as schemas 3 and 4 stored it: no artifact globs in its spec, and in schema 3 no
/// origin (`O` is `()` then, which takes no bytes).
#[derive(Deserialize)]
struct JobV3<O, S = JobSpecV2> {
    id: JobId,
    spec: S,
    parents: Vec<JobId>,
    state: JobState,
    stage: Option<String>,
    epoch: u64,
    attempts: u32,
    failures: u32,
    checkpoint: Option<String>,
    placement: Option<ScoreBreakdown>,
    last_error: Option<String>,
    exit_code: Option<i32>,
    run_ms: u64,
    created_at: Millis,
    updated_at: Millis,
    rev: u64,
    cost: JobCost,
    origin: O,
}

impl JobV3<()> {
    fn without_origin(self) -> JobV3<Option<ItemRef>> {
        JobV3 {
            id: self.id,
            spec: self.spec,
            parents: self.parents,
            state: self.state,
            stage: self.stage,
            epoch: self.epoch,
            attempts: self.attempts,
            failures: self.failures,
            checkpoint: self.checkpoint,
            placement: self.placement,
            last_error: self.last_error,
            exit_code: self.exit_code,
            run_ms: self.run_ms,
            created_at: self.created_at,
            updated_at: self.updated_at,
            rev: self.rev,
            cost: self.cost,
            origin: None,
        }
    }
}

impl<S: Into<JobSpec>> From<JobV3<Option<ItemRef>, S>> for Job {
    fn from(v: JobV3<Option<ItemRef>, S>) -> Self {
        Job {
            id: v.id,
            spec: v.spec.into(),
            parents: v.parents,
            state: v.state,
            stage: v.stage,
            epoch: v.epoch,
            attempts: v.attempts,
            failures: v.failures,
            checkpoint: v.checkpoint,
            placement: v.placement,
            last_error: v.last_error,
            exit_code: v.exit_code,
            run_ms: v.run_ms,
            created_at: v.created_at,
            updated_at: v.updated_at,
            rev: v.rev,
            cost: v.cost,
            origin: v.origin,
            limit_slots: Vec::new(),
            approvals: Vec::new(),
            review_feedback: None,
            question: None,
        }
    }
}

/// A job as schemas 6 to 9 stored it: no repository in its spec; up to 8 no question (`Q` is
/// `()` then, which takes no bytes); up to 7 no sandbox in its spec (`S`); in schema 6 no
/// review feedback (`F` is `()` then).
#[derive(Deserialize)]
struct JobV6<F, S = JobSpecV7, Q = ()> {
    id: JobId,
    spec: S,
    parents: Vec<JobId>,
    state: JobState,
    stage: Option<String>,
    epoch: u64,
    attempts: u32,
    failures: u32,
    checkpoint: Option<String>,
    placement: Option<ScoreBreakdown>,
    last_error: Option<String>,
    exit_code: Option<i32>,
    run_ms: u64,
    created_at: Millis,
    updated_at: Millis,
    rev: u64,
    cost: JobCost,
    origin: Option<ItemRef>,
    limit_slots: Vec<String>,
    approvals: Vec<Approval>,
    review_feedback: F,
    question: Q,
}

/// A review feedback as an older job stored it: none in schema 6.
trait StoredFeedback {
    fn feedback(self) -> Option<String>;
}

impl StoredFeedback for () {
    fn feedback(self) -> Option<String> {
        None
    }
}

impl StoredFeedback for Option<String> {
    fn feedback(self) -> Option<String> {
        self
    }
}

/// A question as an older job stored it: none before schema 9.
trait StoredQuestion {
    fn question(self) -> Option<Question>;
}

impl StoredQuestion for () {
    fn question(self) -> Option<Question> {
        None
    }
}

impl StoredQuestion for Option<Question> {
    fn question(self) -> Option<Question> {
        self
    }
}

impl<F: StoredFeedback, S: Into<JobSpec>, Q: StoredQuestion> From<JobV6<F, S, Q>> for Job {
    fn from(v: JobV6<F, S, Q>) -> Self {
        Job {
            id: v.id,
            spec: v.spec.into(),
            parents: v.parents,
            state: v.state,
            stage: v.stage,
            epoch: v.epoch,
            attempts: v.attempts,
            failures: v.failures,
            checkpoint: v.checkpoint,
            placement: v.placement,
            last_error: v.last_error,
            exit_code: v.exit_code,
            run_ms: v.run_ms,
            created_at: v.created_at,
            updated_at: v.updated_at,
            rev: v.rev,
            cost: v.cost,
            origin: v.origin,
            limit_slots: v.limit_slots,
            approvals: v.approvals,
            review_feedback: v.review_feedback.feedback(),
            question: v.question.question(),
        }
    }
}

/// Reads a job stored with an older `schema`.
pub(super) fn job(schema: u16, payload: &[u8]) -> Result<Job> {
    match schema {
        1 => Ok(decode_payload::<JobV1<JobStateV1>>(payload)?.into()),
        2 => Ok(decode_payload::<JobV1<JobState>>(payload)?.into()),
        3 => Ok(decode_payload::<JobV3<()>>(payload)?
            .without_origin()
            .into()),
        4 => Ok(decode_payload::<JobV3<Option<ItemRef>>>(payload)?.into()),
        5 => Ok(decode_payload::<JobV3<Option<ItemRef>, JobSpecV3>>(payload)?.into()),
        6 => Ok(decode_payload::<JobV6<()>>(payload)?.into()),
        7 => Ok(decode_payload::<JobV6<Option<String>>>(payload)?.into()),
        8 => Ok(decode_payload::<JobV6<Option<String>, JobSpecV9>>(payload)?.into()),
        9 => Ok(
            decode_payload::<JobV6<Option<String>, JobSpecV9, Option<Question>>>(payload)?.into(),
        ),
        _ => Err(Error::Codec(format!(
            "job schema {schema} is not readable by this version"
        ))),
    }
}

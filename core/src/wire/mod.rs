//! The JSON bodies of the REST API (DESIGN §6), shared by the coordinator's routes, the
//! factory agent and the CLI so that all three agree on the contract. Field names are the
//! API's; changing one is a breaking change.

mod artifacts;
mod budgets;
mod errors;
mod next;
mod questions;
mod review;
mod schedules;
mod secrets;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use artifacts::{ArtifactUpload, ArtifactView};
pub use budgets::{
    BudgetBody, BudgetDetail, BudgetView, CostView, JobSpend, PauseBody, PauseView, UsageReport,
    UsageWrite,
};
pub use errors::{ErrorBody, ErrorCode};
pub use next::{ClaimNext, EndAnswer};
pub use questions::{AnswerBody, AskBody, QuestionView};
pub use review::ActionBody;
pub use schedules::{NextRun, RunView, ScheduleBody, ScheduleView, TriggerAnswer};
pub use secrets::{
    JobSecret, JobSecrets, SecretFetch, SecretListQuery, SecretProfileQuery, SecretSet,
};

use crate::event::{Author, EventKind};
use crate::job::{FactoryId, Job, JobId, JobState, Millis};
use crate::manifest::Payload;
use crate::scoring::ScoreBreakdown;

/// `s` percent-encoded as one URL path segment or query value (also RFC 5987's
/// `filename*`): unreserved characters stay, every other byte is `%XX`.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `bytes` as lower-case hex, two digits each: how digests and secrets are written.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

// ---- factories ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub name: String,
    pub os: String,
    pub arch: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub engine_classes: Vec<String>,
    pub slots: u32,
    #[serde(default)]
    pub cost_per_hour_usd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EnrollResponse {
    pub factory_id: FactoryId,
    /// The factory's own secret; shown once.
    pub token: String,
}

/// What a factory runs now, as it sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HeldLease {
    pub job_id: JobId,
    pub epoch: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    pub slots_busy: u32,
    #[serde(default)]
    pub running: Vec<HeldLease>,
    /// What the factory holds warm now (at most `fleet::WARM_KEYS_MAX`, each a `kind:value`
    /// key); absent: as the last heartbeat said.
    #[serde(default)]
    pub warm: Option<Vec<String>>,
    /// The factory claims nothing (it took a `Drain` and no `Undrain` since). A coordinator
    /// that has it online answers with `Undrain`: an undrain whose command was lost with a
    /// coordinator's restart still reaches it.
    #[serde(default)]
    pub draining: bool,
}

/// What the coordinator asks of a factory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FactoryCommand {
    /// Stop the job (SIGTERM, grace, SIGKILL) and report nothing more for this epoch.
    Cancel { job_id: JobId, epoch: u64 },
    /// Checkpoint and release the job by `deadline`.
    Preempt {
        job_id: JobId,
        epoch: u64,
        deadline: Millis,
    },
    /// Take no new work; finish what runs.
    Drain,
    /// Take work again after a drain (an operator undrained the factory).
    Undrain,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HeartbeatResponse {
    pub commands: Vec<FactoryCommand>,
    /// The lease TTL the coordinator grants; renew at a third of it.
    pub lease_ttl_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// Most jobs wanted now (the factory's free slots).
    pub max_jobs: u32,
    /// Long-poll: how long to wait for work before answering 204.
    #[serde(default)]
    pub wait_ms: u64,
}

/// A job handed to a factory with its lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClaimedJob {
    pub job_id: JobId,
    pub epoch: u64,
    pub attempt: u32,
    pub expires_at: Millis,
    pub lease_ttl_ms: u64,
    pub title: String,
    pub payload: Payload,
    pub allowed_scope: Vec<String>,
    /// Workspace globs whose files the agent uploads as artifacts when the attempt ends.
    #[serde(default)]
    pub artifacts: Vec<String>,
    pub wall_clock_ms: Option<u64>,
    pub checkpoint: Option<String>,
    /// What the job wants warm (a repository, a cache key): running it warms the factory.
    #[serde(default)]
    pub affinity: Option<String>,
    /// Why a reviewer last asked for changes, handed to the job as `GF_REVIEW_FEEDBACK`.
    #[serde(default)]
    pub review_feedback: Option<String>,
    /// The sandbox the factory runs the job in.
    #[serde(default)]
    pub sandbox: crate::sandbox::SandboxSpec,
    /// The repository the factory checks out as the job's working directory.
    #[serde(default)]
    pub repo: Option<crate::checkout::RepoSpec>,
}

impl ClaimedJob {
    /// The lease `job` (just claimed) hands its factory.
    pub fn of(job: &Job, lease_ttl_ms: u64) -> Self {
        ClaimedJob {
            job_id: job.id,
            epoch: job.epoch,
            attempt: job.attempts,
            expires_at: job.state.lease().map_or(0, |l| l.expires_at),
            lease_ttl_ms,
            title: job.spec.title.clone(),
            payload: job.spec.payload.clone(),
            allowed_scope: job.spec.allowed_scope.clone(),
            artifacts: job.spec.artifacts.clone(),
            wall_clock_ms: job.spec.wall_clock_ms,
            checkpoint: job.checkpoint.clone(),
            affinity: job.spec.affinity_key().map(str::to_owned),
            review_feedback: job.review_feedback.clone(),
            sandbox: job.spec.sandbox.clone(),
            repo: job.spec.repo.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClaimResponse {
    pub jobs: Vec<ClaimedJob>,
}

/// Every factory write carries the epoch it believes current and a request id: a retry with
/// the same id gets the same answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Fenced{T}")]
pub struct FencedWrite<T> {
    pub epoch: u64,
    pub request_id: String,
    #[serde(flatten)]
    pub body: T,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Renew {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Stage {
    pub stage: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LogChunk {
    /// Position of this chunk in the attempt's output, from 0.
    pub seq: u64,
    pub stream: LogStream,
    pub data: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One stored chunk of a job's output, as the logs route returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LogLine {
    pub attempt: u32,
    pub seq: u64,
    pub stream: LogStream,
    pub data: String,
    /// When the coordinator kept the chunk (absent for output kept before chunks had a time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Millis>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Complete {
    /// Workspace paths the job changed.
    #[serde(default)]
    pub changed_paths: Vec<String>,
    /// Usage reports not yet sent, applied in order before the end, in its transaction (at
    /// most [`crate::usage::CARRIED_REPORTS_MAX`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage: Vec<UsageWrite>,
    /// Lease the factory's next jobs in the same transaction, if this end applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_next: Option<ClaimNext>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Fail {
    pub error: String,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// `false` for failures a retry cannot fix.
    #[serde(default = "yes")]
    pub retryable: bool,
    #[serde(default)]
    pub changed_paths: Vec<String>,
    /// Usage reports not yet sent, applied in order before the end, in its transaction (at
    /// most [`crate::usage::CARRIED_REPORTS_MAX`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage: Vec<UsageWrite>,
    /// Lease the factory's next jobs in the same transaction, if this end applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_next: Option<ClaimNext>,
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

/// Longest checkpoint reference a release may carry (a path, a branch, an object URL): the
/// job's record keeps it, and must stay well within the store's value limit.
pub const CHECKPOINT_MAX_BYTES: usize = 4_096;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Release {
    /// Where the job saved its work, handed to the next attempt as `GF_CHECKPOINT`; at most
    /// [`CHECKPOINT_MAX_BYTES`].
    #[serde(default)]
    pub checkpoint: Option<String>,
    /// Usage reports not yet sent, applied in order before the end, in its transaction (at
    /// most [`crate::usage::CARRIED_REPORTS_MAX`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage: Vec<UsageWrite>,
    /// The model provider throttled the job until then (ms since the epoch): the job, and
    /// every job of its engine class, wait for it; the release costs no attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled_until: Option<Millis>,
}

/// The answer to a factory write: the lease as it stands, and whether to stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LeaseAnswer {
    pub job_id: JobId,
    pub epoch: u64,
    pub state: String,
    pub expires_at: Option<Millis>,
    /// Set when the holder must checkpoint and release by this time.
    pub preempt_deadline: Option<Millis>,
}

impl LeaseAnswer {
    /// The answer a factory gets for a write that was applied to `job`.
    pub fn of(job: &Job) -> Self {
        let (expires_at, preempt_deadline) = match &job.state {
            JobState::Preempting {
                lease, deadline, ..
            } => (Some(lease.expires_at), Some(*deadline)),
            s => (s.lease().map(|l| l.expires_at), None),
        };
        LeaseAnswer {
            job_id: job.id,
            epoch: job.epoch,
            state: job.state.name().into(),
            expires_at,
            preempt_deadline,
        }
    }
}

// ---- operators ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LeaseView {
    pub factory_id: FactoryId,
    pub epoch: u64,
    pub granted_at: Millis,
    pub expires_at: Millis,
}

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobView {
    pub id: JobId,
    pub key: String,
    pub title: String,
    pub product: String,
    pub state: String,
    pub stage: Option<String>,
    pub priority: u32,
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    pub engine_class: Option<String>,
    pub payload: Payload,
    pub parents: Vec<JobId>,
    pub epoch: u64,
    pub attempts: u32,
    pub failures: u32,
    pub max_attempts: u32,
    pub lease: Option<LeaseView>,
    /// When a queued or failed job may be placed.
    pub ready_at: Option<Millis>,
    pub preemptible: bool,
    pub review: bool,
    /// Approvals its review needs to ship.
    #[serde(default = "one")]
    pub approvals_required: u32,
    /// The approvals of its review, in order (kept once shipped or rejected).
    #[serde(default)]
    pub approvals: Vec<crate::job::Approval>,
    /// Token names allowed to decide its review; empty: any operator.
    #[serde(default)]
    pub reviewers: Vec<String>,
    /// Why a reviewer last asked for changes, until an attempt after it completes.
    #[serde(default)]
    pub review_feedback: Option<String>,
    pub last_error: Option<String>,
    pub exit_code: Option<i32>,
    pub checkpoint: Option<String>,
    pub placement: Option<ScoreBreakdown>,
    /// The job's own cost budget, if it has one.
    #[serde(default)]
    pub cost_budget_micros: Option<u64>,
    #[serde(default)]
    pub cost: CostView,
    /// Why a job waiting for placement is held (a paused or exhausted budget), when it is.
    #[serde(default)]
    pub held: Option<String>,
    /// Why a pending, queued or backing-off job is not running, in one line (in full:
    /// `GET /v1/jobs/{id}/explain`).
    #[serde(default)]
    pub waiting: Option<String>,
    /// The tracker item the job came from.
    #[serde(default)]
    pub origin: Option<crate::tracker::ItemRef>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// Path globs the job may change.
    #[serde(default)]
    pub allowed_scope: Vec<String>,
    /// The job's wall-clock budget, if it has one.
    #[serde(default)]
    pub wall_clock_ms: Option<u64>,
    /// What the job may reach and hold where it runs.
    #[serde(default)]
    pub sandbox: crate::sandbox::SandboxSpec,
    /// The git repository the job works in, and at which revision.
    #[serde(default)]
    pub repo: Option<crate::checkout::RepoSpec>,
    /// Wall-clock time spent in finished leases.
    #[serde(default)]
    pub run_ms: u64,
    /// The operator actions its state allows (`job::allowed_actions`): what `POST
    /// /v1/jobs/{id}/actions/{action}` may take. A review decision also needs a reviewer, and
    /// a new life parents that did not end badly.
    #[serde(default)]
    pub allowed_actions: Vec<crate::job::Action>,
    /// The question the job asked last (open: it waits for input), with its outcome.
    #[serde(default)]
    pub question: Option<QuestionView>,
    /// Whether the job waits for an operator's answer to its open question.
    #[serde(default)]
    pub waiting_for_input: bool,
    /// The key that makes its submission idempotent (a schedule's jobs:
    /// `schedule:NAME:TICK[:KEY]`).
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

impl From<&Job> for JobView {
    fn from(j: &Job) -> Self {
        let lease = j.state.lease().map(|l| LeaseView {
            factory_id: l.factory,
            epoch: l.epoch,
            granted_at: l.granted_at,
            expires_at: l.expires_at,
        });
        JobView {
            id: j.id,
            key: j.spec.key.clone(),
            title: j.spec.title.clone(),
            product: j.spec.product.clone(),
            state: j.state.name().into(),
            stage: j.stage.clone(),
            priority: j.spec.priority,
            capabilities: j.spec.capabilities.clone(),
            labels: j.spec.labels.clone(),
            engine_class: j.spec.engine_class.clone(),
            payload: j.spec.payload.clone(),
            parents: j.parents.clone(),
            epoch: j.epoch,
            attempts: j.attempts,
            failures: j.failures,
            max_attempts: j.spec.max_attempts,
            lease,
            ready_at: j.state.ready_at(),
            preemptible: j.spec.preemptible,
            review: j.spec.review,
            approvals_required: j.spec.approvals,
            approvals: j.approvals.clone(),
            reviewers: j.spec.reviewers.clone(),
            review_feedback: j.review_feedback.clone(),
            last_error: j.last_error.clone(),
            exit_code: j.exit_code,
            checkpoint: j.checkpoint.clone(),
            placement: j.placement.clone(),
            cost_budget_micros: j.spec.cost_budget_micros,
            cost: CostView::from(&j.cost),
            held: None,
            waiting: None,
            origin: j.origin.clone(),
            created_at: j.created_at,
            updated_at: j.updated_at,
            allowed_scope: j.spec.allowed_scope.clone(),
            wall_clock_ms: j.spec.wall_clock_ms,
            sandbox: j.spec.sandbox.clone(),
            repo: j.spec.repo.clone(),
            run_ms: j.run_ms,
            allowed_actions: crate::job::allowed_actions(j),
            question: j.question.as_ref().map(QuestionView::from),
            waiting_for_input: crate::job::question::open(j).is_some(),
            idempotency_key: j.spec.idempotency_key.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubmitResponse {
    pub id: JobId,
    /// False when an earlier submit with the same idempotency key already made this job.
    pub created: bool,
    pub job: JobView,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ManifestResponse {
    /// Manifest key → job id, in submission order.
    pub jobs: Vec<(String, JobId)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobPage {
    pub jobs: Vec<JobView>,
    /// Pass back as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// One job transition as the fleet stream (`GET /v1/events`) shows it. On a store several nodes
/// share, each node also appends the transitions it commits to a bounded feed in the store,
/// and every node relays the others' into its own stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FleetEvent {
    /// The event's position in the stream of the node serving it (in the store's feed: in the
    /// stream of the node that committed it). Increases by one per event.
    pub seq: u64,
    /// The coordinator node that committed the transition.
    pub node: uuid::Uuid,
    pub at: Millis,
    pub job_id: JobId,
    pub title: String,
    pub product: String,
    pub kind: EventKind,
    pub state: String,
    pub actor: Author,
    pub epoch: u64,
    /// What the event says beyond its kind (a budget's crossing, say).
    pub detail: Option<String>,
}

/// One entry of a job's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    pub seq: u64,
    pub at: Millis,
    pub kind: EventKind,
    /// Who caused it.
    pub actor: Author,
    pub epoch: u64,
    pub state: String,
    // Stored with the record codec (bincode, not self-describing): no skipped fields here.
    pub detail: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::urlencode;
    use crate::scoring::WeightsOverride;

    /// Found by fuzzing (`fuzz/`, target `requests`): serde_json's default float parser read
    /// `8.88888e33` one unit in the last place off, so the body written back from what was read
    /// read as another number.
    #[test]
    fn a_float_in_a_body_reads_back_exactly_as_it_was_written() {
        let read: WeightsOverride = serde_json::from_str(r#"{"priority": 8.88888e33}"#).unwrap();
        assert_eq!(read.priority, Some(8.88888e33));
        let again: WeightsOverride =
            serde_json::from_str(&serde_json::to_string(&read).unwrap()).unwrap();
        assert_eq!(again, read);
    }

    #[test]
    fn urlencode_keeps_unreserved_characters_and_escapes_every_other_byte() {
        assert_eq!(urlencode("fix-1_a.b~"), "fix-1_a.b~");
        assert_eq!(urlencode("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(urlencode("é"), "%C3%A9");
    }
}

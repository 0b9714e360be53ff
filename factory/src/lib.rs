//! Gigafactory's factory agent: the program every worker machine runs. It enrolls with a
//! coordinator once, then heartbeats, long-polls for jobs while it has free slots, runs each
//! job in a fresh workspace as its own process group, streams its output, renews its lease,
//! reports its stage, obeys cancel, preempt and drain, and reports how it ended: complete,
//! fail or release. Every report to the coordinator carries the lease's epoch; the moment the
//! coordinator answers `409 fenced` the job is killed and nothing more is said about it.
//!
//! The binary wires the CLI to [`run`]; a job's helper commands (`gigafactory job stage`,
//! `gigafactory job checkpoint`, `gigafactory job usage`) call [`write_stage`],
//! [`write_checkpoint`] and [`write_usage`].
//!
//! Architecture invariant: the agent talks to coordinators only over HTTP; it shares wire
//! types with `core` and nothing else.

mod agent;
mod backoff;
mod client;
mod context;
mod control;
mod error;
mod identity;
mod job;
mod journal;
mod logs;
mod mirror;
mod orphans;
mod process;
mod sandbox;
mod stop;
pub mod tls;
mod workspace;

pub use sandbox::Mode as SandboxMode;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use tracing::Instrument;

pub use control::{AnswerFile, read_answer, write_question};
pub use control::{
    ArtifactSource, PendingArtifact, write_artifact, write_artifact_in, write_checkpoint,
    write_stage, write_throttled, write_usage, write_usage_in,
};
pub use error::{AgentError, Result};

/// The agent command run for prompt jobs unless configured otherwise; the prompt goes to its
/// stdin.
pub const DEFAULT_AGENT_COMMAND: &str = "claude -p";
/// Heartbeat period: the coordinator declares a factory offline after missing several.
pub const HEARTBEAT_INTERVAL_MS: u64 = 2_000;
/// How long a claim long-polls for work before the coordinator answers `204`.
pub const CLAIM_WAIT_MS: u64 = 20_000;
/// How often a job's stage file is checked for a new stage, and its usage directory for new
/// reports.
pub const STAGE_POLL_MS: u64 = 250;
/// Between SIGTERM and SIGKILL when a job is stopped.
pub const GRACE_MS: u64 = 10_000;

/// Everything the agent needs to know, from the command line.
#[derive(Clone)]
pub struct AgentConfig {
    /// Coordinator base URLs (`http://host:port`). Requests go to one; a transport error moves
    /// them to the next. Jobs get the first one as `GF_COORDINATOR`.
    pub coordinators: Vec<String>,
    /// The one-time enrollment token; used only when no identity is stored yet.
    pub enroll_token: String,
    /// The factory's name; the host name when unset.
    pub name: Option<String>,
    /// How many jobs may run at once.
    pub slots: u32,
    pub capabilities: Vec<String>,
    pub engine_classes: Vec<String>,
    /// What the factory holds warm from the start (repositories, cache keys); the affinity
    /// keys of the jobs it runs join them.
    pub warm: Vec<String>,
    /// Where the identity and job workspaces live.
    pub workdir: PathBuf,
    pub cost_per_hour_usd: f64,
    /// Between SIGTERM and SIGKILL when a job is cancelled, fenced by its budget, or the agent
    /// shuts down.
    pub grace: Duration,
    /// The command that runs prompt jobs (split on whitespace; the prompt goes to its stdin).
    /// `None`: prompt jobs fail with a non-retryable error.
    pub agent_command: Option<String>,
    pub heartbeat_interval: Duration,
    /// The claim long-poll's `wait_ms`.
    pub claim_wait: Duration,
    /// How often a running job's stage file and usage reports are looked at.
    pub stage_poll_interval: Duration,
    /// How long the agent keeps trying to deliver the end of its jobs after a shutdown was
    /// asked for (beyond `grace`); what is not delivered by then is reported at the next start.
    pub shutdown_report_timeout: Duration,
    /// Finished workspaces kept on disk.
    pub workspaces_kept: usize,
    /// Where to record every request and answer (JSON lines); `None`: nowhere.
    pub journal: Option<PathBuf>,
    /// What `https://` coordinators are trusted with, and the client certificate to present.
    pub tls: tls::ClientTls,
    /// How strictly jobs are isolated (`--sandbox`).
    pub sandbox: SandboxMode,
}

impl AgentConfig {
    /// A configuration with the documented defaults: one slot, no capabilities, `claude -p` for
    /// prompts, 2 s heartbeats, 20 s claim long-polls, 10 s grace.
    pub fn new(
        coordinators: Vec<String>,
        enroll_token: impl Into<String>,
        workdir: impl Into<PathBuf>,
    ) -> Self {
        AgentConfig {
            coordinators,
            enroll_token: enroll_token.into(),
            name: None,
            slots: 1,
            capabilities: Vec::new(),
            engine_classes: Vec::new(),
            warm: Vec::new(),
            workdir: workdir.into(),
            cost_per_hour_usd: 0.0,
            grace: Duration::from_millis(GRACE_MS),
            agent_command: Some(DEFAULT_AGENT_COMMAND.into()),
            heartbeat_interval: Duration::from_millis(HEARTBEAT_INTERVAL_MS),
            claim_wait: Duration::from_millis(CLAIM_WAIT_MS),
            stage_poll_interval: Duration::from_millis(STAGE_POLL_MS),
            shutdown_report_timeout: Duration::from_millis(client::REQUEST_TIMEOUT_MS),
            workspaces_kept: workspace::WORKSPACES_KEPT,
            journal: None,
            tls: tls::ClientTls::default(),
            sandbox: SandboxMode::default(),
        }
    }

    fn validate(&self) -> Result<()> {
        let problem = if self.slots == 0 {
            "slots must be at least 1"
        } else if self.heartbeat_interval.is_zero() || self.stage_poll_interval.is_zero() {
            "intervals must be longer than zero"
        } else if !(self.cost_per_hour_usd.is_finite() && self.cost_per_hour_usd >= 0.0) {
            "cost per hour must be a non-negative number"
        } else {
            return Ok(());
        };
        Err(AgentError::Config(problem.into()))
    }
}

impl std::fmt::Debug for AgentConfig {
    // The enrollment token is a secret: it must not reach logs through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("coordinators", &self.coordinators)
            .field("name", &self.name)
            .field("slots", &self.slots)
            .field("capabilities", &self.capabilities)
            .field("engine_classes", &self.engine_classes)
            .field("workdir", &self.workdir)
            .field("cost_per_hour_usd", &self.cost_per_hour_usd)
            .field("grace", &self.grace)
            .field("agent_command", &self.agent_command)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("claim_wait", &self.claim_wait)
            .field("journal", &self.journal)
            .field("tls", &self.tls)
            .field("sandbox", &self.sandbox)
            .finish_non_exhaustive()
    }
}

/// Runs the factory agent until `shutdown` completes (then running jobs are stopped and
/// released, and `Ok` is returned) or something no retry can fix happens (the factory's token
/// was revoked, the work directory is unusable: `Err`).
pub async fn run(mut config: AgentConfig, shutdown: impl Future<Output = ()>) -> Result<()> {
    config.validate()?;
    // Jobs run in their own directories and find their control directory through
    // `GF_CONTROL_DIR`: a path relative to the agent's directory would point nowhere there.
    config.workdir = std::path::absolute(&config.workdir)
        .map_err(|e| AgentError::io(format!("resolving {}", config.workdir.display()), e))?;
    let jobs_dir = config.workdir.join(workspace::JOBS_DIR);
    std::fs::create_dir_all(&jobs_dir)
        .map_err(|e| AgentError::io(format!("creating {}", jobs_dir.display()), e))?;
    let sandboxing = sandbox::Sandboxing::detect(config.sandbox)?;
    let mut coordinator = client::Coordinator::new(&config.coordinators, &config.tls)?;
    if let Some(path) = &config.journal {
        coordinator = coordinator.with_journal(journal::Journal::open(path)?);
    }
    let mut shutdown = std::pin::pin!(shutdown);
    let identity = tokio::select! {
        identity = identity::load_or_enroll(&config, &coordinator) => identity?,
        _ = &mut shutdown => return Ok(()),
    };
    let span = tracing::info_span!("factory", factory_id = %identity.factory_id);
    agent::serve(config, sandboxing, coordinator, identity, shutdown)
        .instrument(span)
        .await
}

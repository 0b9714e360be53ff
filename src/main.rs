//! The `gigafactory` binary: wiring only. `serve` runs a coordinator node, `factory` the agent
//! of a worker machine, `demo` both on one machine; the other commands are a thin client of
//! the REST API.

#[cfg(feature = "etcd")]
mod chaos;
mod cli;
mod client;
mod demo;
mod network;
mod probe;
mod serve;

use std::path::PathBuf;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Every process of the binary (coordinator, factory agent, CLI) allocates through mimalloc:
/// its per-thread free lists cost the request path less than glibc's arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "gigafactory",
    version,
    about = "Run AI coding agents and other long jobs on a fleet of worker machines"
)]
struct Cli {
    /// How log lines are written to stderr: `text` (colour only on a terminal) or `json` (one
    /// object a line, for a log shipper). What is logged: `GIGAFACTORY_LOG` (default `info`;
    /// e.g. `warn,gigafactory_actors=debug`).
    #[arg(
        long,
        value_enum,
        env = "GIGAFACTORY_LOG_FORMAT",
        default_value_t = LogFormat::Text,
        global = true
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Cmd,
}

/// The shape of log lines.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Where the CLI's client commands find the coordinator.
#[derive(clap::Args, Clone)]
pub struct Remote {
    /// Coordinator URL.
    #[arg(
        long,
        env = "GIGAFACTORY_COORDINATOR",
        default_value = "http://127.0.0.1:7070",
        global = true
    )]
    pub coordinator: String,
    /// Bearer token (operator, viewer or admin).
    #[arg(long, env = "GIGAFACTORY_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// TLS towards an `https://` coordinator, for the CLI and the factory agent.
#[derive(clap::Args, Clone, Default)]
pub struct TlsArgs {
    /// A private CA's certificate (PEM) to trust besides the system's roots.
    #[arg(long, env = "GIGAFACTORY_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain (PEM) to present when the coordinator asks for one.
    #[arg(
        long,
        env = "GIGAFACTORY_TLS_CLIENT_CERT",
        requires = "tls_client_key",
        global = true
    )]
    pub tls_client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long,
        env = "GIGAFACTORY_TLS_CLIENT_KEY",
        requires = "tls_client_cert",
        global = true
    )]
    pub tls_client_key: Option<PathBuf>,
}

impl TlsArgs {
    pub fn client_tls(&self) -> gigafactory_factory::tls::ClientTls {
        gigafactory_factory::tls::ClientTls {
            ca_file: self.ca_file.clone(),
            identity: self
                .tls_client_cert
                .clone()
                .zip(self.tls_client_key.clone()),
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a coordinator node.
    Serve(serve::ServeArgs),
    /// Run the factory agent of this machine.
    Factory(FactoryArgs),
    /// Submit a manifest (TOML or JSON) of jobs; `--wait` waits for them to end.
    Submit {
        /// The manifest file.
        file: PathBuf,
        /// Wait until every job of the manifest has ended (or is in review), then exit 0 if
        /// each succeeded, shipped or is in review, non-zero if any ended dead, cancelled or
        /// rejected. Survives a coordinator restart.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        view: cli::output::View,
    },
    /// Look at and act on jobs.
    Jobs {
        #[command(subcommand)]
        cmd: cli::jobs::JobsCmd,
        #[command(flatten)]
        remote: Remote,
    },
    /// List and manage factories.
    Factories {
        #[command(subcommand)]
        cmd: cli::fleet::FactoriesCmd,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        view: cli::output::View,
    },
    /// List, mint and revoke tokens (admin).
    Tokens {
        #[command(subcommand)]
        cmd: cli::fleet::TokensCmd,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        view: cli::output::View,
    },
    /// The audit log: every operator and admin write, newest first (admin).
    Audit {
        #[command(flatten)]
        args: cli::fleet::AuditArgs,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        view: cli::output::View,
    },
    /// Secrets: set (from stdin), list (names only), remove; keygen makes a node's key.
    Secrets {
        #[command(subcommand)]
        cmd: cli::secrets::SecretsCmd,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        view: cli::output::View,
    },
    /// Budgets: spend per product (or label) and period, limits, pause and resume.
    Budgets {
        #[command(subcommand)]
        cmd: cli::budgets::BudgetsCmd,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        view: cli::output::View,
    },
    /// Cron schedules that submit a job or a manifest: set, pause, resume, trigger, history.
    Schedules {
        #[command(subcommand)]
        cmd: cli::schedules::SchedulesCmd,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        view: cli::output::View,
    },
    /// Products' fair shares and scoring weights.
    Products {
        #[command(subcommand)]
        cmd: cli::scheduling::ProductsCmd,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        view: cli::output::View,
    },
    /// Concurrency and rate limits by key.
    Limits {
        #[command(subcommand)]
        cmd: cli::scheduling::LimitsCmd,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        view: cli::output::View,
    },
    /// Trackers: what a payload would create, items, their deliveries, redelivery.
    Intake {
        #[command(subcommand)]
        cmd: cli::intake::IntakeCmd,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        view: cli::output::View,
    },
    /// A live view of the fleet in the terminal: nodes, factories, the queue, throughput and
    /// events; drain a factory or open a job's log from it (`?` lists the keys).
    Top {
        #[command(flatten)]
        remote: Remote,
    },
    /// Commands for a job to run from inside its workspace.
    Job {
        #[command(subcommand)]
        cmd: JobSelfCmd,
    },
    /// Scaling hints: per capability shape, queued and running jobs, factories online and
    /// how many the queue asks for.
    Autoscale {
        #[command(flatten)]
        args: cli::scale::AutoscaleArgs,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        view: cli::output::View,
    },
    /// Health check: exit 0 when a URL answers 200 (`/healthz`, `/readyz`), else non-zero
    /// saying what it got. For container and unit health checks without curl.
    Probe(probe::ProbeArgs),
    /// Start a coordinator, two factories and a sample manifest, and show progress.
    Demo(demo::DemoArgs),
    /// Load-test a coordinator over loopback with simulated factories: jobs/s, latencies, RSS.
    Bench(gigafactory_benches::harness::BenchArgs),
    /// Chaos suite: real etcd, nodes and factories under seeded faults; checks the invariants.
    #[cfg(feature = "etcd")]
    Chaos(chaos::ChaosArgs),
}

#[derive(clap::Args)]
struct FactoryArgs {
    /// Coordinator URLs, comma-separated; the agent fails over between them.
    #[arg(
        long,
        env = "GIGAFACTORY_COORDINATOR",
        value_delimiter = ',',
        required = true
    )]
    coordinator: Vec<String>,
    /// The enrollment token (used once; the factory keeps its own token in its workdir).
    #[arg(
        long,
        env = "GIGAFACTORY_ENROLL_TOKEN",
        hide_env_values = true,
        default_value = ""
    )]
    enroll_token: String,
    /// Jobs run at once.
    #[arg(long, default_value_t = 1)]
    slots: u32,
    /// Capabilities this machine offers (comma-separated).
    #[arg(long, value_delimiter = ',')]
    capabilities: Vec<String>,
    /// Engine classes (agent kinds) this machine runs.
    #[arg(long, value_delimiter = ',')]
    engine_classes: Vec<String>,
    /// What this factory holds warm (a repository or cache key, `repo:acme/api`; repeat the
    /// flag): jobs whose `affinity` names one prefer it. Keys of jobs it runs join them.
    #[arg(long = "warm", value_name = "KEY")]
    warm: Vec<String>,
    /// Where the identity and the job workspaces live.
    #[arg(long, default_value = "./gigafactory-factory")]
    workdir: PathBuf,
    /// The factory's name (default: the host name).
    #[arg(long)]
    name: Option<String>,
    /// What an hour of this machine costs, in USD (used in scoring).
    #[arg(long, default_value_t = 0.0)]
    cost_per_hour: f64,
    /// Seconds between SIGTERM and SIGKILL when a job is stopped.
    #[arg(long, default_value_t = 10)]
    grace_secs: u64,
    /// The command that runs prompt jobs (the prompt goes to its stdin).
    #[arg(long, default_value = "claude -p")]
    agent_command: String,
    /// Seconds between heartbeats.
    #[arg(long, default_value_t = 2)]
    heartbeat_secs: u64,
    /// Record every request to the coordinator and its answer in this file (JSON lines), as
    /// the chaos suite does to check leases from the factories' side.
    #[arg(long)]
    journal: Option<PathBuf>,
    /// How jobs are isolated (Linux): `auto` runs them in bubblewrap where the machine allows
    /// it and as plain processes (with a warning) where not; `bwrap` refuses to start without
    /// it; `off` never isolates.
    #[arg(long, env = "GIGAFACTORY_SANDBOX", default_value = "auto")]
    sandbox: gigafactory_factory::SandboxMode,
    #[command(flatten)]
    tls: TlsArgs,
}

#[derive(Subcommand)]
enum JobSelfCmd {
    /// Ask the operator a question and wait: the answer on stdout (exit 0); exit 3 when nobody
    /// answered by the timeout and there is no default; exit 1 when it was refused.
    Ask(cli::ask::AskArgs),
    /// Report the job's stage (planning, coding, testing...).
    Stage { name: String },
    /// Save a checkpoint reference the next attempt gets as GF_CHECKPOINT.
    Checkpoint { reference: String },
    /// Say the model provider throttles the job until its quota resets, then exit: the
    /// factory gives the job back without a failure, and no job of its engine class starts
    /// before then.
    Throttled {
        /// When the quota resets: a time (`2026-12-02T14:05:00Z`) or a wait from now (`90s`,
        /// `5m`).
        #[arg(long, value_parser = parse_until)]
        until: u64,
    },
    /// Report what the job spent on a model; the factory sends it to the coordinator, which
    /// counts it against the job's budgets once, however often it is sent.
    Usage {
        /// The model, as the coordinator's price table names it.
        #[arg(long)]
        model: String,
        #[arg(long, default_value_t = 0)]
        input_tokens: u64,
        #[arg(long, default_value_t = 0)]
        output_tokens: u64,
        /// What it cost in USD, exactly (0.0042); without it the coordinator prices the tokens.
        #[arg(long, value_parser = gigafactory_core::budget::parse_usd)]
        cost_usd: Option<gigafactory_core::budget::Micros>,
    },
    /// Save a file (copied as it is now) or a link with the job's attempt: the factory uploads
    /// it, and the job's page shows it beside the review.
    #[command(group = clap::ArgGroup::new("what").required(true).args(["path", "url"]))]
    Artifact {
        /// The file to save.
        path: Option<PathBuf>,
        /// A link to save instead (a pull request, a dashboard): http(s) only; needs --name.
        #[arg(long)]
        url: Option<String>,
        /// The name it is listed under (the file's name by default).
        #[arg(long)]
        name: Option<String>,
        /// file, patch, report or link (by the file's extension by default).
        #[arg(long, value_parser = gigafactory_core::artifact::ArtifactKind::parse)]
        kind: Option<gigafactory_core::artifact::ArtifactKind>,
    },
}

/// Logs go to stderr. Text carries colour codes only when stderr is a terminal, so a log file
/// or a journal gets plain lines.
fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("GIGAFACTORY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => fmt.json().init(),
    }
}

/// Errors are printed here, with their causes (`{:#}`) and never a backtrace: a refusal or a
/// typo is the user's to fix, not a crash to debug (anyhow would print a backtrace from `main`
/// with `RUST_BACKTRACE=1`).
fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // Started where it cannot work, as a usage error is: the caller's to fix.
            if e.is::<cli::top::NotATerminal>() {
                return ExitCode::from(2);
            }
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut cli = Cli::parse();
    // Before any thread starts: the key leaves the environment (see `take_secrets_key_env`).
    if let Cmd::Serve(args) = &mut cli.command {
        args.secrets_key_env = serve::take_secrets_key_env();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Cmd::Serve(args) => {
            init_tracing(cli.log_format);
            rt.block_on(serve::run(args))
        }
        Cmd::Factory(a) => {
            init_tracing(cli.log_format);
            let mut config =
                gigafactory_factory::AgentConfig::new(a.coordinator, a.enroll_token, a.workdir);
            config.name = a.name;
            config.slots = a.slots;
            config.capabilities = a.capabilities;
            config.engine_classes = a.engine_classes;
            config.warm = a.warm;
            config.cost_per_hour_usd = a.cost_per_hour;
            config.grace = std::time::Duration::from_secs(a.grace_secs);
            config.agent_command = Some(a.agent_command).filter(|c| !c.trim().is_empty());
            config.heartbeat_interval = std::time::Duration::from_secs(a.heartbeat_secs.max(1));
            config.journal = a.journal;
            config.sandbox = a.sandbox;
            config.tls = a.tls.client_tls();
            rt.block_on(gigafactory_factory::run(config, serve::shutdown_signal()))?;
            Ok(())
        }
        Cmd::Submit {
            file,
            wait,
            remote,
            view,
        } => rt.block_on(cli::jobs::submit(&remote, &view, &file, wait)),
        Cmd::Jobs { cmd, remote } => rt.block_on(cli::jobs::jobs(&remote, cmd)),
        Cmd::Factories { cmd, remote, view } => {
            rt.block_on(cli::fleet::factories(&remote, &view, cmd))
        }
        Cmd::Tokens { cmd, remote, view } => rt.block_on(cli::fleet::tokens(&remote, &view, cmd)),
        Cmd::Audit { args, remote, view } => rt.block_on(cli::fleet::audit(&remote, &view, args)),
        Cmd::Secrets { cmd, remote, view } => {
            rt.block_on(cli::secrets::secrets(&remote, &view, cmd))
        }
        Cmd::Budgets { cmd, remote, view } => {
            rt.block_on(cli::budgets::budgets(&remote, &view, cmd))
        }
        Cmd::Schedules { cmd, remote, view } => {
            rt.block_on(cli::schedules::schedules(&remote, &view, cmd))
        }
        Cmd::Intake { cmd, remote, view } => rt.block_on(cli::intake::intake(&remote, &view, cmd)),
        Cmd::Products { cmd, remote, view } => {
            rt.block_on(cli::scheduling::products(&remote, &view, cmd))
        }
        Cmd::Limits { cmd, remote, view } => {
            rt.block_on(cli::scheduling::limits(&remote, &view, cmd))
        }
        Cmd::Top { remote } => rt.block_on(cli::top::run(&remote)),
        Cmd::Autoscale { args, remote, view } => {
            rt.block_on(cli::scale::autoscale(&remote, &view, args))
        }
        Cmd::Probe(args) => rt.block_on(probe::run(args)),
        Cmd::Job { cmd } => {
            match cmd {
                JobSelfCmd::Ask(args) => cli::ask::run(args)?,
                JobSelfCmd::Stage { name } => gigafactory_factory::write_stage(&name)?,
                JobSelfCmd::Checkpoint { reference } => {
                    gigafactory_factory::write_checkpoint(&reference)?
                }
                JobSelfCmd::Throttled { until } => gigafactory_factory::write_throttled(until)?,
                JobSelfCmd::Usage {
                    model,
                    input_tokens,
                    output_tokens,
                    cost_usd,
                } => {
                    gigafactory_factory::write_usage(&gigafactory_core::wire::UsageReport {
                        model,
                        input_tokens,
                        output_tokens,
                        cost_micros: cost_usd,
                    })?;
                }
                JobSelfCmd::Artifact {
                    path,
                    url,
                    name,
                    kind,
                } => {
                    use gigafactory_factory::ArtifactSource;
                    let source = match (&path, &url) {
                        (Some(path), _) => ArtifactSource::File(path),
                        (None, Some(url)) => ArtifactSource::Link(url),
                        (None, None) => anyhow::bail!("give a file to save, or --url"),
                    };
                    let saved = gigafactory_factory::write_artifact(source, name.as_deref(), kind)?;
                    println!(
                        "saved {} ({}, {} bytes): the factory uploads it",
                        saved.name,
                        saved.kind.name(),
                        saved.size
                    );
                }
            }
            Ok(())
        }
        Cmd::Demo(args) => {
            init_tracing(cli.log_format);
            rt.block_on(demo::run(args))
        }
        Cmd::Bench(args) => {
            // The bench starts its coordinators as `serve` children of this very binary.
            let gigafactory = std::env::current_exe()?;
            let interrupt = serve::shutdown_signal();
            rt.block_on(gigafactory_benches::harness::run(
                args,
                gigafactory,
                interrupt,
            ))?;
            Ok(())
        }
        // Blocking (its HTTP client runs its own runtime), so outside `rt`.
        #[cfg(feature = "etcd")]
        Cmd::Chaos(args) => chaos::run(args),
    }
}

/// `--until`: a UTC time (RFC 3339) or a wait from now (`90s`, `5m`), as ms since the epoch.
pub(crate) fn parse_until(text: &str) -> Result<u64, String> {
    let since_epoch = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .map_err(|e| e.to_string())
    };
    if let Ok(at) = humantime::parse_rfc3339_weak(text) {
        return since_epoch(at);
    }
    let wait = humantime::parse_duration(text.trim_start_matches('+')).map_err(|_| {
        format!("expected a time (2026-12-02T14:05:00Z) or a wait (90s, 5m), got {text:?}")
    })?;
    let at = std::time::SystemTime::now()
        .checked_add(wait)
        .ok_or_else(|| format!("{text:?} is too far ahead"))?;
    since_epoch(at)
}

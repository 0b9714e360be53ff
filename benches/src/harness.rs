//! The load harness behind `gigafactory bench`: a load generator that drives a coordinator
//! over HTTP on loopback with simulated factories (submit → claim → renew → complete) and
//! prints jobs/s, latency percentiles, and the coordinator's memory and CPU.
//!
//! By default it starts the coordinator as a child process (`gigafactory serve`, from the
//! executable the caller names, on a fresh embedded store in a scratch directory under the
//! current directory, removed at the end). A separate process, so that its RSS and CPU time can
//! be read from `/proc/<pid>` without the client's mixed in. Guarantees:
//! - all traffic goes to a loopback address: `--coordinator` must name one, and the HTTP client
//!   ignores proxy settings;
//! - every phase stops after `--timeout-secs`, every retry loop is bounded, and every child is
//!   killed on every way out (success, error, Ctrl-C);
//! - the count is checked, never assumed: at the end the store must hold as `succeeded` every job
//!   the bench saw complete, and every job it submitted unless the run stopped early, or the
//!   command fails after printing what it measured.
//!
//! With `--usage`, each job reports one usage of a fixed cost, carried on its complete as the
//! factory agent carries the reports left at a job's end (`--usage separate`: as a write of its
//! own before the complete, as the agent sends a report while the job runs), and the budget the
//! bench sets on its product must have spent exactly what was reported
//! (`harness/load/spend.rs`).
//!
//! With `--queued-base Q`, Q jobs that no factory can take (they require capability `never`) are
//! loaded first through manifests, so claim latency with a deep queue can be compared with a
//! shallow one.
//!
//! With `--workload queue`, the workload job-queue benchmarks run instead of the closed loop:
//! `--jobs` jobs of about 200 bytes are queued first through manifests (not timed), then
//! `--workers` workers (factories of one slot) loop claim → complete as fast as they can, and
//! the bench prints jobs/s over that phase and each worker's gap between jobs, p50/p99
//! (`harness/queue.rs`). The closed loop's own flags are refused with it.
//!
//! With `--compare-cluster` (build feature `etcd`), one invocation runs the same workload on one
//! embedded node and on three nodes sharing a three-member local etcd, then once more on the
//! cluster while one node is SIGKILLed and restarted (see `harness/cluster.rs`).
//!
//! Reading the figures: claim latency runs from sending a claim to an answer that carries a
//! job, so while the claim loops outpace the submitters it includes waiting for work; raise
//! `--submitters` to keep the queue from running dry and see the claim's own cost. The child
//! logs to `coordinator.log` in the scratch directory at the level `GIGAFACTORY_LOG` gives it
//! (default `info`, as for `serve`); the CPU line says how much other processes took, since a
//! run that shared the machine is not a measurement of the coordinator.

mod child;
#[cfg(feature = "etcd")]
mod cluster;
mod error;
mod load;
mod metrics;
mod queue;
mod single;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use child::{Launcher, Target};
pub use error::{Error, Result};
use load::{UsageMode, Workload};

/// Bounds on the flags, so a typo cannot ask for a billion connections.
const JOBS_MAX: u64 = 100_000_000;
const QUEUED_BASE_MAX: u64 = 10_000_000;
const CLAIM_LOOPS_MAX: u32 = 4_096;
const SUBMITTERS_MAX: u32 = 1_024;
/// The closed workload's defaults.
const FACTORIES_DEFAULT: u32 = 8;
const SLOTS_DEFAULT: u32 = 4;
const SUBMITTERS_DEFAULT: u32 = 4;
/// The queue workload's default workers, as job-queue benchmarks run them.
const WORKERS_DEFAULT: u32 = 8;
/// Highest job priority the API takes.
const PRIORITY_MAX: u32 = 1_000;
/// The lease TTLs `serve` accepts.
const LEASE_TTL_MS_MIN: u64 = 1_000;
const LEASE_TTL_MS_MAX: u64 = 3_600_000;

/// The flags of `gigafactory bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// The workload: `closed`, submitters and claim loops running together (submit → claim →
    /// (renew →) complete); or `queue`, every job queued first, then `--workers` loops of
    /// claim → complete (`harness/queue.rs`).
    #[arg(long, value_enum, default_value_t = Mode::Closed)]
    workload: Mode,
    /// Jobs pushed through submit → claim → (renew →) complete, or queued then claimed and
    /// completed.
    #[arg(long, default_value_t = 20_000)]
    jobs: u64,
    /// Simulated factories (default 8; closed workload only).
    #[arg(long)]
    factories: Option<u32>,
    /// Concurrent claim loops of each simulated factory (default 4; closed workload only).
    #[arg(long)]
    slots: Option<u32>,
    /// Concurrent submitters (default 4; closed workload only).
    #[arg(long)]
    submitters: Option<u32>,
    /// Workers of the queue workload, each a factory of one slot (default 8).
    #[arg(long)]
    workers: Option<u32>,
    /// Jobs queued before measuring that no factory can take (they require capability `never`).
    #[arg(long, default_value_t = 0)]
    queued_base: u64,
    /// Priority of the pre-loaded jobs. Below the measured jobs' 50 by default, so they sit
    /// behind them in placement order: the scheduler examines at most 4,096 index entries per
    /// placement, and thousands of ineligible jobs ahead would hide the measured ones.
    #[arg(long, default_value_t = 0)]
    queued_priority: u32,
    /// Bench a coordinator already running at this loopback URL instead of starting one
    /// (needs `--token`; its RSS and CPU are then not reported).
    #[arg(long, conflicts_with = "store")]
    coordinator: Option<String>,
    /// Admin token of `--coordinator`.
    #[arg(long, env = "GIGAFACTORY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Store of the coordinator the bench starts (default: a fresh embedded store in a scratch
    /// directory under the current directory). It must be fresh: the admin token comes from
    /// its first start.
    #[arg(long)]
    store: Option<String>,
    /// Renew each lease once before completing it (default true; closed workload only).
    #[arg(long, action = clap::ArgAction::Set)]
    renew: Option<bool>,
    /// Each complete asks for the worker's next job in the same request and transaction
    /// (`claim_next`), as the factory agent does: one round trip per job while work is queued
    /// (default true; false: a claim of its own after each complete, the old protocol).
    #[arg(long, action = clap::ArgAction::Set, default_value_t = true)]
    claim_next: bool,
    /// Report one usage of a fixed cost from each job: carried on its complete (`--usage`, or
    /// `--usage carried`), or as a write of its own before it (`--usage separate`). A budget on
    /// the bench's product, set first with a limit it never reaches, must have spent exactly
    /// that cost times the reports accepted.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "carried")]
    usage: Option<UsageMode>,
    /// Scheduling policies: `on` sets a concurrency limit on the bench's product and one on a
    /// key every job carries (neither ever reached), with fair share on; `rate` also a rate
    /// limit on the product; `off` sets no limit and starts the coordinator with fair share
    /// off. Without it, the coordinator's defaults (fair share on, no limits).
    #[arg(long, value_enum, conflicts_with = "coordinator")]
    policies: Option<Policies>,
    /// Job lease TTL of the coordinators the bench starts (their own default otherwise). After
    /// a node kill, a lease granted by an answer the kill lost is requeued only when it expires.
    #[arg(long, conflicts_with = "coordinator")]
    lease_ttl_ms: Option<u64>,
    /// Run the workload on one embedded node, then on three nodes sharing a three-member local
    /// etcd (clients spread over the nodes), then on the cluster again while one node is
    /// SIGKILLed and restarted; print them side by side, the failover time and the throughput
    /// around the kill.
    #[cfg(feature = "etcd")]
    #[arg(long, conflicts_with_all = ["coordinator", "store", "queued_base", "usage"])]
    compare_cluster: bool,
    /// Also write the figures to this file as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Stop each phase (pre-load, measurement, verification) after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

impl BenchArgs {
    fn check(&self) -> Result<()> {
        usage(
            (1..=JOBS_MAX).contains(&self.jobs),
            format!("--jobs must be within 1..={JOBS_MAX}"),
        )?;
        usage(
            self.queued_base <= QUEUED_BASE_MAX,
            format!("--queued-base must be at most {QUEUED_BASE_MAX}"),
        )?;
        usage(
            self.queued_priority <= PRIORITY_MAX,
            format!("--queued-priority must be at most {PRIORITY_MAX}"),
        )?;
        match self.workload {
            Mode::Closed => usage(
                self.workers.is_none(),
                "--workers is for --workload queue (the closed workload has --factories and \
                 --slots)",
            )?,
            Mode::Queue => self.check_queue()?,
        }
        let w = self.workload();
        usage(
            w.factories >= 1 && w.slots >= 1,
            "--factories, --slots and --workers must be at least 1",
        )?;
        usage(
            w.factories.saturating_mul(w.slots) <= CLAIM_LOOPS_MAX,
            format!("--factories × --slots and --workers must be at most {CLAIM_LOOPS_MAX}"),
        )?;
        if self.workload == Mode::Closed {
            usage(
                (1..=SUBMITTERS_MAX).contains(&w.submitters),
                format!("--submitters must be within 1..={SUBMITTERS_MAX}"),
            )?;
        }
        usage(self.timeout_secs >= 1, "--timeout-secs must be at least 1")?;
        if let Some(ttl) = self.lease_ttl_ms {
            usage(
                (LEASE_TTL_MS_MIN..=LEASE_TTL_MS_MAX).contains(&ttl),
                format!("--lease-ttl-ms must be within {LEASE_TTL_MS_MIN}..={LEASE_TTL_MS_MAX}"),
            )?;
        }
        if let Some(url) = &self.coordinator {
            usage(
                self.token.is_some(),
                "--coordinator needs --token (an admin token)",
            )?;
            ensure_loopback(url)?;
        }
        Ok(())
    }

    /// Refuses, with `--workload queue`, the flags that shape the closed workload only: each
    /// would be taken and ignored.
    fn check_queue(&self) -> Result<()> {
        let closed_only = [
            ("--factories", self.factories.is_some()),
            ("--slots", self.slots.is_some()),
            ("--submitters", self.submitters.is_some()),
            ("--renew", self.renew.is_some()),
            ("--usage", self.usage.is_some()),
            ("--queued-base", self.queued_base > 0),
            ("--queued-priority", self.queued_priority > 0),
        ];
        for (flag, given) in closed_only {
            usage(
                !given,
                format!("{flag} is for the closed workload, not --workload queue"),
            )?;
        }
        #[cfg(feature = "etcd")]
        usage(
            !self.compare_cluster,
            "--compare-cluster runs the closed workload, not --workload queue",
        )?;
        Ok(())
    }

    /// The clients of the run: with `--workload queue`, `--workers` factories of one slot that
    /// never renew, and no submitters (the jobs are queued first).
    fn workload(&self) -> Workload {
        let queue = self.workload == Mode::Queue;
        Workload {
            jobs: self.jobs,
            factories: if queue {
                self.workers.unwrap_or(WORKERS_DEFAULT)
            } else {
                self.factories.unwrap_or(FACTORIES_DEFAULT)
            },
            slots: if queue {
                1
            } else {
                self.slots.unwrap_or(SLOTS_DEFAULT)
            },
            submitters: if queue {
                0
            } else {
                self.submitters.unwrap_or(SUBMITTERS_DEFAULT)
            },
            renew: !queue && self.renew.unwrap_or(true),
            claim_next: self.claim_next,
            usage: self.usage,
            keyed_submits: false,
            concurrency_key: matches!(self.policies, Some(Policies::On | Policies::Rate))
                .then(|| POLICY_KEY.to_owned()),
        }
    }
}

/// Which workload the bench runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Submitters and claim loops at once, as a fleet fed while it works.
    Closed,
    /// Every job queued first, then workers that claim and complete as fast as they can, as
    /// job-queue benchmarks measure.
    Queue,
}

/// Whether the bench turns the scheduling policies on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Policies {
    On,
    Rate,
    Off,
}

/// The concurrency key every job carries with `--policies on`.
pub(crate) const POLICY_KEY: &str = "repo:bench";

/// Writes the figures to `path` as pretty JSON (the `--json` file).
fn write_json(path: &std::path::Path, figures: &serde_json::Value) -> Result<()> {
    std::fs::write(path, format!("{figures:#}\n"))
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// `Ok` when `ok`, else a usage error saying `problem`.
fn usage(ok: bool, problem: impl Into<String>) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(problem.into()))
    }
}

/// Refuses a URL whose host is not a loopback address: a load generator must not be pointed at
/// a shared coordinator by a slip of the keyboard.
fn ensure_loopback(url: &str) -> Result<()> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| Error::Usage(format!("{url:?} is not a URL: {e}")))?;
    let host = parsed.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    usage(
        loopback && parsed.scheme() == "http",
        "--coordinator must be an http:// URL on a loopback address (127.0.0.1, ::1, localhost)",
    )
}

/// Runs the bench `args` ask for and prints its figures. `gigafactory` is the executable whose
/// `serve` subcommand starts the coordinator nodes (the caller's own, for the `gigafactory`
/// binary); `interrupt` (Ctrl-C) stops the run, and every node the bench started, at once.
pub async fn run(
    args: BenchArgs,
    gigafactory: PathBuf,
    interrupt: impl Future<Output = ()>,
) -> Result<()> {
    args.check()?;
    let w = args.workload();
    let loops = (w.factories * w.slots + w.submitters) as usize;
    let http = reqwest::Client::builder()
        // Everything goes to loopback; an HTTP_PROXY in the environment must not reroute it.
        .no_proxy()
        .tcp_nodelay(true)
        // One kept-alive connection per concurrent loop, plus a few for set-up and checks.
        .pool_max_idle_per_host(loops + 8)
        .timeout(Duration::from_secs(load::REQUEST_TIMEOUT_SECS))
        .build()
        .map_err(|e| Error::Setup(format!("cannot build the http client: {e}")))?;
    let launcher = Launcher {
        gigafactory,
        lease_ttl_ms: args.lease_ttl_ms,
        fair_share: args.policies.map(|p| p != Policies::Off),
    };
    tokio::pin!(interrupt);
    #[cfg(feature = "etcd")]
    if args.compare_cluster {
        // An interrupt drops the future that owns etcd and the nodes, which kills them.
        return tokio::select! {
            r = cluster::run(&args, &http, &launcher) => r,
            () = &mut interrupt => Err(Error::Interrupted),
        };
    }
    // An interrupt drops the future that owns the child, which kills it (`kill_on_drop`).
    let target = tokio::select! {
        t = Target::start(
            args.coordinator.as_deref(),
            args.token.as_deref(),
            args.store.as_deref(),
            &launcher,
            &http,
        ) => t?,
        () = &mut interrupt => return Err(Error::Interrupted),
    };
    let bench = async {
        match args.workload {
            Mode::Closed => single::bench(&args, &http, &target).await,
            Mode::Queue => queue::bench(&args, &http, &target).await,
        }
    };
    let outcome = tokio::select! {
        r = bench => r,
        () = &mut interrupt => Err(Error::Interrupted),
    };
    if outcome.is_err()
        && let Some(tail) = target.log_tail()
    {
        eprintln!("last lines of the coordinator's log:\n{tail}");
    }
    target.stop().await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_coordinator_off_loopback() {
        assert!(ensure_loopback("http://127.0.0.1:7070").is_ok());
        assert!(ensure_loopback("http://localhost:7070/").is_ok());
        assert!(ensure_loopback("http://[::1]:7070").is_ok());
        assert!(ensure_loopback("http://10.0.0.5:7070").is_err());
        assert!(ensure_loopback("http://example.com").is_err());
        assert!(ensure_loopback("https://127.0.0.1:7070").is_err());
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn usage_of(args: &[&str]) -> Option<UsageMode> {
        parse(args).usage
    }

    fn parse(args: &[&str]) -> BenchArgs {
        use clap::Parser as _;
        let argv = std::iter::once("bench").chain(args.iter().copied());
        Cli::try_parse_from(argv).unwrap().bench
    }

    /// The usage error `args` get from the check, or `None` if they pass it.
    fn refusal(args: &[&str]) -> Option<String> {
        match parse(args).check() {
            Ok(()) => None,
            Err(Error::Usage(why)) => Some(why),
            Err(e) => panic!("not a usage error: {e}"),
        }
    }

    #[test]
    fn the_closed_workload_stays_the_default_with_its_defaults() {
        let args = parse(&[]);
        assert_eq!(args.workload, Mode::Closed);
        let w = args.workload();
        assert_eq!((w.factories, w.slots, w.submitters), (8, 4, 4));
        assert!(w.renew);
        assert!(!parse(&["--renew", "false"]).workload().renew);
        assert_eq!(refusal(&[]), None);
    }

    #[test]
    fn the_queue_workload_runs_workers_of_one_slot_without_submitters_or_renew() {
        let w = parse(&["--workload", "queue"]).workload();
        assert_eq!((w.factories, w.slots, w.submitters), (8, 1, 0));
        assert!(!w.renew);
        assert_eq!(w.usage, None);
        let w = parse(&["--workload", "queue", "--workers", "32"]).workload();
        assert_eq!((w.factories, w.slots), (32, 1));
        assert_eq!(refusal(&["--workload", "queue", "--workers", "32"]), None);
    }

    #[test]
    fn workers_are_refused_outside_the_queue_workload_and_out_of_bounds() {
        let why = refusal(&["--workers", "8"]).expect("--workers without the queue workload");
        assert!(why.contains("--workers"), "{why}");
        assert!(refusal(&["--workload", "queue", "--workers", "0"]).is_some());
        let too_many = (CLAIM_LOOPS_MAX + 1).to_string();
        assert!(refusal(&["--workload", "queue", "--workers", &too_many]).is_some());
        let most = CLAIM_LOOPS_MAX.to_string();
        assert_eq!(refusal(&["--workload", "queue", "--workers", &most]), None);
    }

    #[test]
    fn the_queue_workload_refuses_the_closed_workloads_flags() {
        for flag in [
            &["--factories", "4"][..],
            &["--slots", "2"],
            &["--submitters", "2"],
            &["--renew", "true"],
            &["--renew", "false"],
            &["--usage"],
            &["--queued-base", "1000"],
            &["--queued-priority", "10"],
        ] {
            let args: Vec<&str> = ["--workload", "queue"]
                .iter()
                .chain(flag)
                .copied()
                .collect();
            let why = refusal(&args).unwrap_or_else(|| panic!("{flag:?} was taken"));
            assert!(why.contains(flag[0]), "{flag:?}: {why}");
        }
    }

    #[cfg(feature = "etcd")]
    #[test]
    fn the_queue_workload_refuses_the_cluster_comparison() {
        let why = refusal(&["--workload", "queue", "--compare-cluster"])
            .expect("--compare-cluster with the queue workload");
        assert!(why.contains("--compare-cluster"), "{why}");
    }

    #[test]
    fn usage_is_carried_on_the_complete_unless_asked_for_separately() {
        assert_eq!(usage_of(&[]), None);
        assert_eq!(usage_of(&["--usage"]), Some(UsageMode::Carried));
        assert_eq!(
            usage_of(&["--usage", "--jobs", "10"]),
            Some(UsageMode::Carried)
        );
        assert_eq!(
            usage_of(&["--usage", "separate"]),
            Some(UsageMode::Separate)
        );
        assert_eq!(usage_of(&["--usage=carried"]), Some(UsageMode::Carried));
    }
}

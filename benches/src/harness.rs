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
/// Highest job priority the API takes.
const PRIORITY_MAX: u32 = 1_000;
/// The lease TTLs `serve` accepts.
const LEASE_TTL_MS_MIN: u64 = 1_000;
const LEASE_TTL_MS_MAX: u64 = 3_600_000;

/// The flags of `gigafactory bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Jobs pushed through submit → claim → (renew →) complete.
    #[arg(long, default_value_t = 20_000)]
    jobs: u64,
    /// Simulated factories.
    #[arg(long, default_value_t = 8)]
    factories: u32,
    /// Concurrent claim loops of each simulated factory.
    #[arg(long, default_value_t = 4)]
    slots: u32,
    /// Concurrent submitters.
    #[arg(long, default_value_t = 4)]
    submitters: u32,
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
    /// Renew each lease once before completing it.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    renew: bool,
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
        usage(
            self.factories >= 1 && self.slots >= 1,
            "--factories and --slots must be at least 1",
        )?;
        usage(
            self.factories.saturating_mul(self.slots) <= CLAIM_LOOPS_MAX,
            format!("--factories × --slots must be at most {CLAIM_LOOPS_MAX}"),
        )?;
        usage(
            (1..=SUBMITTERS_MAX).contains(&self.submitters),
            format!("--submitters must be within 1..={SUBMITTERS_MAX}"),
        )?;
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

    fn workload(&self) -> Workload {
        Workload {
            jobs: self.jobs,
            factories: self.factories,
            slots: self.slots,
            submitters: self.submitters,
            renew: self.renew,
            usage: self.usage,
            keyed_submits: false,
            concurrency_key: matches!(self.policies, Some(Policies::On | Policies::Rate))
                .then(|| POLICY_KEY.to_owned()),
        }
    }
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
    let slots_total = (args.factories * args.slots) as usize;
    let http = reqwest::Client::builder()
        // Everything goes to loopback; an HTTP_PROXY in the environment must not reroute it.
        .no_proxy()
        .tcp_nodelay(true)
        // One kept-alive connection per concurrent loop, plus a few for set-up and checks.
        .pool_max_idle_per_host(slots_total + args.submitters as usize + 8)
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
    let outcome = tokio::select! {
        r = single::bench(&args, &http, &target) => r,
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
        use clap::Parser as _;
        let argv = std::iter::once("bench").chain(args.iter().copied());
        Cli::try_parse_from(argv).unwrap().bench.usage
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

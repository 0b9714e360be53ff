//! `gigafactory bench`: a load generator that drives a coordinator over HTTP on loopback with
//! simulated factories (submit → claim → renew → complete) and prints jobs/s, latency
//! percentiles, and the coordinator's memory and CPU.
//!
//! By default it starts the coordinator as a child process (`gigafactory serve` on a fresh
//! embedded store in a scratch directory under the current directory, removed at the end). A
//! separate process, so that its RSS and CPU time can be read from `/proc/<pid>` without the
//! client's mixed in. Guarantees:
//! - all traffic goes to a loopback address: `--coordinator` must name one, and the HTTP client
//!   ignores proxy settings;
//! - every phase stops after `--timeout-secs`, every retry loop is bounded, and the child is
//!   killed on every way out (success, error, Ctrl-C);
//! - the count is checked, never assumed: at the end the store must hold as `succeeded` every job
//!   the bench saw complete, and every job it submitted unless the run stopped early, or the
//!   command fails after printing what it measured.
//!
//! With `--queued-base Q`, Q jobs that no factory can take (they require capability `never`) are
//! loaded first through manifests, so claim latency with a deep queue can be compared with a
//! shallow one.
//!
//! Reading the figures: claim latency runs from sending a claim to an answer that carries a
//! job, so while the claim loops outpace the submitters it includes waiting for work; raise
//! `--submitters` to keep the queue from running dry and see the claim's own cost. The child
//! logs to `coordinator.log` in the scratch directory at the level `GIGAFACTORY_LOG` gives it
//! (default `info`, as for `serve`); the CPU line says how much other processes took, since a
//! run that shared the machine is not a measurement of the coordinator.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use gigafactory_core::wire::{
    ClaimRequest, Complete, EnrollRequest, EnrollResponse, FencedWrite, Renew,
};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

/// The product of the measured jobs; the verification lists it.
const BENCH_PRODUCT: &str = "bench";
/// The product of the pre-loaded jobs, kept apart so the verification never counts them.
const BASE_PRODUCT: &str = "bench-base";
/// The capability pre-loaded jobs require and no simulated factory offers.
const BASE_CAPABILITY: &str = "never";
/// Jobs per pre-load manifest: under the API's 10,000 and its 8 MiB body limit.
const MANIFEST_CHUNK_JOBS: u64 = 5_000;
/// Manifests in flight at once during the pre-load: two keep the coordinator busy while one
/// answer travels, more only queue behind the store's committer.
const PRELOAD_CONCURRENCY: u64 = 2;
/// Pre-loaded jobs between two progress lines.
const PRELOAD_PROGRESS_JOBS: u64 = 100_000;
/// A claim's long-poll.
const CLAIM_WAIT_MS: u64 = 1_000;
/// Longest wait for one answer; a claim long-polls for `CLAIM_WAIT_MS` of it.
const REQUEST_TIMEOUT_SECS: u64 = 30;
/// Longest wait for one pre-load manifest: 5,000 jobs in one transaction plus their reads.
const MANIFEST_TIMEOUT_SECS: u64 = 300;
/// Attempts of one request refused for load (429) or, when it is safe, lost on the way.
const SEND_ATTEMPTS_MAX: u32 = 50;
/// Pause between two attempts.
const RETRY_PAUSE_MS: u64 = 20;
/// How long the child coordinator has to answer `/readyz`.
const READY_DEADLINE_SECS: u64 = 60;
/// Pause between two start-up and index probes.
const PROBE_PAUSE_MS: u64 = 50;
/// After a pre-load, the coordinator counts as idle once it uses less than this much CPU over
/// one `SETTLE_WINDOW_MS` window: its store may still be flushing the pre-load, which would
/// otherwise be charged to the measurement.
const SETTLE_CPU_SHARE_MAX: f64 = 0.20;
const SETTLE_WINDOW_MS: u64 = 500;
/// Longest wait for the coordinator to become idle after a pre-load.
const SETTLE_MAX_SECS: u64 = 120;
/// Jobs per page of the final verification (the API's maximum).
const VERIFY_PAGE_JOBS: usize = 500;
/// Bounds on the flags, so a typo cannot ask for a billion connections.
const JOBS_MAX: u64 = 100_000_000;
const QUEUED_BASE_MAX: u64 = 10_000_000;
const CLAIM_LOOPS_MAX: u32 = 4_096;
const SUBMITTERS_MAX: u32 = 1_024;
/// Highest job priority the API takes.
const PRIORITY_MAX: u32 = 1_000;
/// Lines of the coordinator's log shown when the run fails.
const LOG_TAIL_LINES: usize = 30;
/// Clock ticks per second of `/proc/<pid>/stat`: `USER_HZ`, fixed at 100 by the kernel ABI on
/// every Linux architecture we run on (so no `sysconf`, which would need libc here).
const PROC_TICKS_PER_SEC: f64 = 100.0;

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
    /// Also write the figures to this file as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Stop each phase (pre-load, measurement, verification) after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

impl BenchArgs {
    fn check(&self) -> Result<()> {
        ensure!(
            (1..=JOBS_MAX).contains(&self.jobs),
            "--jobs must be within 1..={JOBS_MAX}"
        );
        ensure!(
            self.queued_base <= QUEUED_BASE_MAX,
            "--queued-base must be at most {QUEUED_BASE_MAX}"
        );
        ensure!(
            self.queued_priority <= PRIORITY_MAX,
            "--queued-priority must be at most {PRIORITY_MAX}"
        );
        ensure!(
            self.factories >= 1 && self.slots >= 1,
            "--factories and --slots must be at least 1"
        );
        ensure!(
            self.factories.saturating_mul(self.slots) <= CLAIM_LOOPS_MAX,
            "--factories × --slots must be at most {CLAIM_LOOPS_MAX}"
        );
        ensure!(
            (1..=SUBMITTERS_MAX).contains(&self.submitters),
            "--submitters must be within 1..={SUBMITTERS_MAX}"
        );
        ensure!(self.timeout_secs >= 1, "--timeout-secs must be at least 1");
        if let Some(url) = &self.coordinator {
            ensure!(
                self.token.is_some(),
                "--coordinator needs --token (an admin token)"
            );
            ensure_loopback(url)?;
        }
        Ok(())
    }
}

/// Refuses a URL whose host is not a loopback address: a load generator must not be pointed at
/// a shared coordinator by a slip of the keyboard.
fn ensure_loopback(url: &str) -> Result<()> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("{url:?} is not a URL"))?;
    let host = parsed.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    ensure!(
        loopback && parsed.scheme() == "http",
        "--coordinator must be an http:// URL on a loopback address (127.0.0.1, ::1, localhost)"
    );
    Ok(())
}

pub async fn run(args: BenchArgs) -> Result<()> {
    args.check()?;
    let slots_total = (args.factories * args.slots) as usize;
    let http = reqwest::Client::builder()
        // Everything goes to loopback; an HTTP_PROXY in the environment must not reroute it.
        .no_proxy()
        .tcp_nodelay(true)
        // One kept-alive connection per concurrent loop, plus a few for set-up and checks.
        .pool_max_idle_per_host(slots_total + args.submitters as usize + 8)
        .timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS))
        .build()?;
    let signal = crate::serve::shutdown_signal();
    tokio::pin!(signal);
    // A Ctrl-C drops the future that owns the child, which kills it (`kill_on_drop`).
    let target = tokio::select! {
        t = Target::start(&args, &http) => t?,
        () = &mut signal => bail!("interrupted"),
    };
    let outcome = tokio::select! {
        r = bench(&args, &http, &target) => r,
        () = &mut signal => Err(anyhow!("interrupted")),
    };
    if outcome.is_err()
        && let Some(tail) = target.log_tail()
    {
        eprintln!("last lines of the coordinator's log:\n{tail}");
    }
    target.stop().await;
    outcome
}

/// The coordinator under test.
struct Target {
    base: String,
    admin: String,
    /// Present when the bench started the coordinator.
    child: Option<ChildCoordinator>,
}

struct ChildCoordinator {
    /// Declared before `dir`: fields drop in order, so the process is killed before its
    /// directory is removed.
    process: tokio::process::Child,
    pid: u32,
    store: String,
    dir: ScratchDir,
}

/// A directory removed when dropped.
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("could not remove {}: {e}", self.0.display());
        }
    }
}

impl Target {
    async fn start(args: &BenchArgs, http: &reqwest::Client) -> Result<Target> {
        if let Some(url) = &args.coordinator {
            let base = url.trim_end_matches('/').to_string();
            let ready = http.get(format!("{base}/readyz")).send().await;
            ensure!(
                ready.is_ok_and(|r| r.status().is_success()),
                "the coordinator at {base} is not ready (GET /readyz)"
            );
            return Ok(Target {
                base,
                admin: args.token.clone().unwrap_or_default(),
                child: None,
            });
        }
        let dir = ScratchDir(std::path::absolute(format!(
            "gigafactory-bench-{}",
            Uuid::now_v7().simple()
        ))?);
        std::fs::create_dir_all(&dir.0).with_context(|| format!("creating {}", dir.0.display()))?;
        let store = args
            .store
            .clone()
            .unwrap_or_else(|| format!("embedded:{}", dir.0.join("store").display()));
        let token_file = dir.0.join("admin-token");
        // `serve` names its address only in a log line, so we choose the port: bind port 0,
        // read what the kernel gave, and free it for the child. Another process could take it
        // in between; the start-up would then fail and say so.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.0.join("coordinator.log"))?;
        let process = tokio::process::Command::new(std::env::current_exe()?)
            .arg("serve")
            .arg("--store")
            .arg(&store)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--admin-token-file")
            .arg(&token_file)
            // Settings must come from the flags above only.
            .env_remove("GIGAFACTORY_CONFIG")
            .env_remove("GIGAFACTORY_INSECURE_DEV")
            .env_remove("GIGAFACTORY_LEASE_TTL_MS")
            // A log file, not a terminal: no colour codes in it.
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting the coordinator")?;
        let pid = process.id().context("the coordinator exited at once")?;
        let mut child = ChildCoordinator {
            process,
            pid,
            store,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(READY_DEADLINE_SECS);
        loop {
            if let Some(status) = child.process.try_wait()? {
                bail!(
                    "the coordinator exited during start-up ({status}); its log:\n{}",
                    tail(&child.dir.0.join("coordinator.log"))
                );
            }
            let ready = http.get(format!("{base}/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == StatusCode::OK) {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "the coordinator did not become ready in {READY_DEADLINE_SECS} s; its log:\n{}",
                    tail(&child.dir.0.join("coordinator.log"))
                );
            }
            tokio::time::sleep(Duration::from_millis(PROBE_PAUSE_MS)).await;
        }
        let admin = std::fs::read_to_string(&token_file)
            .with_context(|| {
                format!(
                    "reading {} (is the store fresh? the admin token is written on its first \
                     start only)",
                    token_file.display()
                )
            })?
            .trim()
            .to_string();
        Ok(Target {
            base,
            admin,
            child: Some(child),
        })
    }

    fn describe(&self) -> String {
        match &self.child {
            Some(c) => format!("{} (child pid {}, store {})", self.base, c.pid, c.store),
            None => format!("{} (already running)", self.base),
        }
    }

    fn memory(&self) -> Option<Memory> {
        self.child.as_ref().and_then(|c| Memory::of(c.pid))
    }

    fn cpu_secs(&self) -> Option<f64> {
        self.child
            .as_ref()
            .and_then(|c| cpu_secs(&format!("/proc/{}/stat", c.pid)))
    }

    fn store_bytes(&self) -> Option<u64> {
        self.child
            .as_ref()
            .map(|c| dir_bytes(&c.dir.0.join("store")))
    }

    /// The end of the child's log, with the admin token (printed there on the first start)
    /// masked: the tail goes to the terminal.
    fn log_tail(&self) -> Option<String> {
        self.child
            .as_ref()
            .map(|c| tail(&c.dir.0.join("coordinator.log")).replace(&self.admin, "<admin token>"))
    }

    async fn stop(self) {
        if let Some(mut c) = self.child {
            // SIGKILL: the store is thrown away with the directory, nothing to shut down cleanly.
            let _ = c.process.kill().await;
        }
    }
}

/// The last `LOG_TAIL_LINES` lines of a file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// Bytes of all files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A process's resident memory, from `/proc/<pid>/status`.
#[derive(Clone, Copy)]
struct Memory {
    rss_kib: u64,
    /// The peak resident set since the process started.
    hwm_kib: u64,
}

impl Memory {
    fn of(pid: u32) -> Option<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| -> Option<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        Some(Memory {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
        })
    }

    fn show(m: Option<Memory>) -> String {
        match m {
            Some(m) => format!(
                "VmRSS {:.1} MiB, peak VmHWM {:.1} MiB",
                m.rss_kib as f64 / 1024.0,
                m.hwm_kib as f64 / 1024.0
            ),
            None => "n/a (the bench did not start the coordinator)".into(),
        }
    }
}

/// User plus system CPU seconds of a process, from its `/proc/.../stat`.
fn cpu_secs(stat_path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    // The command name (field 2) may hold spaces; the fields after its ')' do not.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / PROC_TICKS_PER_SEC)
}

/// The 1, 5 and 15 minute load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

/// Busy and total CPU seconds of the whole machine, summed over its cores, from `/proc/stat`.
/// Busy minus what the coordinator and the client used is what other processes took: a run
/// that shared the machine says so instead of passing for the coordinator's own figure.
fn machine_cpu_secs() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let field = |i: usize| ticks.get(i).copied().unwrap_or(0);
    let idle = field(3) + field(4);
    let busy = field(0) + field(1) + field(2) + field(5) + field(6) + field(7);
    Some((
        busy as f64 / PROC_TICKS_PER_SEC,
        (busy + idle) as f64 / PROC_TICKS_PER_SEC,
    ))
}

/// CPU counters at one moment: the coordinator's, the client's and the machine's.
#[derive(Clone, Copy)]
struct CpuSample {
    at: Instant,
    coordinator_secs: Option<f64>,
    client_secs: Option<f64>,
    /// Busy and total seconds, all cores.
    machine_secs: Option<(f64, f64)>,
}

impl CpuSample {
    fn take(coordinator_pid: Option<u32>) -> CpuSample {
        CpuSample {
            at: Instant::now(),
            coordinator_secs: coordinator_pid
                .and_then(|pid| cpu_secs(&format!("/proc/{pid}/stat"))),
            client_secs: cpu_secs("/proc/self/stat"),
            machine_secs: machine_cpu_secs(),
        }
    }
}

/// CPU use between two samples, in percent of one core.
struct CpuUse {
    coordinator: Option<f64>,
    client: Option<f64>,
    /// What other processes took: the machine's busy time minus the two above.
    others: Option<f64>,
    machine: Option<f64>,
    cores: usize,
}

impl CpuUse {
    fn between(a: &CpuSample, b: &CpuSample) -> CpuUse {
        let wall = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
        let pct = |x: Option<f64>, y: Option<f64>| x.zip(y).map(|(x, y)| 100.0 * (y - x) / wall);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let machine = a
            .machine_secs
            .zip(b.machine_secs)
            .map(|((b0, t0), (b1, t1))| 100.0 * cores as f64 * (b1 - b0) / (t1 - t0).max(1e-9));
        let coordinator = pct(a.coordinator_secs, b.coordinator_secs);
        let client = pct(a.client_secs, b.client_secs);
        let others =
            machine.map(|m| (m - coordinator.unwrap_or(0.0) - client.unwrap_or(0.0)).max(0.0));
        CpuUse {
            coordinator,
            client,
            others,
            machine,
            cores,
        }
    }
}

/// Waits, until `deadline` and at most `SETTLE_MAX_SECS`, for the coordinator to go idle.
/// True if it did; also true when there is no child to watch.
async fn wait_idle(target: &Target, deadline: Instant) -> bool {
    let deadline = deadline.min(Instant::now() + Duration::from_secs(SETTLE_MAX_SECS));
    let window = Duration::from_millis(SETTLE_WINDOW_MS);
    let Some(mut before) = target.cpu_secs() else {
        return true;
    };
    while Instant::now() < deadline {
        tokio::time::sleep(window).await;
        let Some(now) = target.cpu_secs() else {
            return true;
        };
        if now - before < SETTLE_CPU_SHARE_MAX * window.as_secs_f64() {
            return true;
        }
        before = now;
    }
    false
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    debug_assert!(sorted.is_sorted());
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Latencies of one kind of request, in microseconds.
#[derive(Default)]
struct Latencies(Vec<u64>);

impl Latencies {
    fn record(&mut self, since: Instant) {
        self.0.push(micros(since.elapsed()));
    }

    fn merge(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    fn sorted(mut self) -> Latencies {
        self.0.sort_unstable();
        self
    }

    fn ms(&self, p: f64) -> Option<f64> {
        percentile(&self.0, p).map(|us| us as f64 / 1000.0)
    }

    fn row(&self, name: &str) -> String {
        let cell = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.2}"));
        format!(
            "    {name:<10} {:>9} {:>9} {:>9} {:>9}",
            cell(self.ms(0.50)),
            cell(self.ms(0.99)),
            cell(self.ms(1.0)),
            self.0.len()
        )
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "count": self.0.len(),
            "p50_ms": self.ms(0.50),
            "p99_ms": self.ms(0.99),
            "max_ms": self.ms(1.0),
        })
    }
}

/// How a request may be sent again.
#[derive(Clone, Copy, PartialEq)]
enum Retry {
    /// Only when refused for load (429), which certainly changed nothing: submits, which carry
    /// no idempotency key, so a repeat after a 503 (the store's outcome may be unknown) or a
    /// lost answer could make a second job.
    Refused,
    /// Also on a 503: claims. A claim that leases jobs always answers with them (a failed
    /// lease commit answers empty), so a 503 granted nothing. Not after a lost answer, which
    /// could hold a lease nobody runs.
    Unanswered,
    /// Also when the answer was lost: fenced writes, whose request id makes a repeat get the
    /// first answer.
    Idempotent,
}

/// What every task of the measurement shares.
struct Shared {
    http: reqwest::Client,
    base: String,
    admin: String,
    /// Makes this run's job keys unique, so an already-running coordinator can be benched twice.
    run_id: String,
    renew: bool,
    jobs: u64,
    deadline: Instant,
    next_job: AtomicU64,
    completed: AtomicU64,
    retries: AtomicU64,
    stop: AtomicBool,
    /// The first error that stopped the run.
    fatal: Mutex<Option<String>>,
    /// The coordinator process, when the bench started it.
    coordinator_pid: Option<u32>,
    /// CPU counters taken by the task that completed the last job, so the CPU figures cover
    /// the same window as the throughput, not the claim long-polls that end the run.
    end_sample: Mutex<Option<CpuSample>>,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire) || Instant::now() >= self.deadline
    }

    fn fail(&self, why: String) {
        let mut fatal = self.fatal.lock().expect("fatal lock poisoned");
        fatal.get_or_insert(why);
        self.stop.store(true, Ordering::Release);
    }

    fn post(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
    }

    /// Sends until answered, retrying as `retry` allows, at most `SEND_ATTEMPTS_MAX` times and
    /// not past the deadline. `Ok(None)` is a 204.
    async fn send(
        &self,
        what: &str,
        retry: Retry,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Option<Vec<u8>>> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let why = match build().send().await {
                Ok(resp) => {
                    let status = resp.status();
                    if status == StatusCode::NO_CONTENT {
                        return Ok(None);
                    }
                    match resp.bytes().await {
                        Ok(body) if status.is_success() => return Ok(Some(body.to_vec())),
                        Ok(body)
                            if status == StatusCode::TOO_MANY_REQUESTS
                                || (status == StatusCode::SERVICE_UNAVAILABLE
                                    && retry != Retry::Refused) =>
                        {
                            format!("{status}: {}", String::from_utf8_lossy(&body))
                        }
                        Ok(body) => {
                            bail!("{what}: {status}: {}", String::from_utf8_lossy(&body))
                        }
                        Err(e) if retry == Retry::Idempotent => e.to_string(),
                        Err(e) => bail!("{what}: answer lost ({e}); not retried"),
                    }
                }
                Err(e) if retry == Retry::Idempotent => e.to_string(),
                Err(e) => bail!("{what}: {e}; not retried"),
            };
            if attempts >= SEND_ATTEMPTS_MAX || Instant::now() >= self.deadline {
                bail!("{what}: gave up after {attempts} attempts: {why}");
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await;
        }
    }
}

/// The part of a submit's answer the bench reads. Answers are parsed into small local structs
/// rather than the full wire types: the client shares the machine's two cores with the
/// coordinator, and every microsecond it spends is one the coordinator does not get.
#[derive(Deserialize)]
struct Submitted {
    id: Uuid,
    created: bool,
}

#[derive(Deserialize)]
struct Claimed {
    jobs: Vec<ClaimedLease>,
}

#[derive(Deserialize)]
struct ClaimedLease {
    job_id: Uuid,
    epoch: u64,
}

#[derive(Deserialize)]
struct LeaseState {
    state: String,
}

#[derive(Deserialize)]
struct Page {
    jobs: Vec<Listed>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct Listed {
    id: Uuid,
}

#[derive(Deserialize)]
struct Token {
    token: String,
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).with_context(|| {
        format!(
            "{what}: unexpected answer: {}",
            String::from_utf8_lossy(body)
        )
    })
}

/// What one claim loop measured.
#[derive(Default)]
struct SlotStats {
    claim: Latencies,
    renew: Latencies,
    complete: Latencies,
    empty_claims: u64,
    last_complete: Option<Instant>,
}

/// What one submitter measured.
#[derive(Default)]
struct SubmitStats {
    submit: Latencies,
    ids: Vec<Uuid>,
}

/// One slot of a simulated factory: claim one job, renew it, complete it, again.
async fn claim_loop(sh: Arc<Shared>, token: Arc<str>) -> SlotStats {
    let mut st = SlotStats::default();
    let claim = ClaimRequest {
        max_jobs: 1,
        wait_ms: CLAIM_WAIT_MS,
    };
    // A loop checks for the end only before claiming, so a job it holds is always completed.
    while !sh.stopping() {
        let sent = Instant::now();
        let answer = sh
            .send("claim", Retry::Unanswered, || {
                sh.post("/v1/claims", &token).json(&claim)
            })
            .await;
        let claimed: Claimed = match answer.and_then(|b| b.map(|b| parse("claim", &b)).transpose())
        {
            Ok(Some(c)) => c,
            Ok(None) => {
                st.empty_claims += 1;
                continue;
            }
            Err(e) => {
                sh.fail(format!("{e:#}"));
                break;
            }
        };
        st.claim.record(sent);
        for lease in claimed.jobs {
            if let Err(e) = run_job(&sh, &token, &lease, &mut st).await {
                sh.fail(format!("job {}: {e:#}", lease.job_id));
                return st;
            }
        }
    }
    st
}

async fn run_job(sh: &Shared, token: &str, lease: &ClaimedLease, st: &mut SlotStats) -> Result<()> {
    let id = lease.job_id;
    if sh.renew {
        let write = FencedWrite {
            epoch: lease.epoch,
            request_id: Uuid::now_v7().to_string(),
            body: Renew {},
        };
        let sent = Instant::now();
        sh.send("renew", Retry::Idempotent, || {
            sh.post(&format!("/v1/jobs/{id}/renew"), token).json(&write)
        })
        .await?;
        st.renew.record(sent);
    }
    let write = FencedWrite {
        epoch: lease.epoch,
        request_id: Uuid::now_v7().to_string(),
        body: Complete::default(),
    };
    let sent = Instant::now();
    let answer = sh
        .send("complete", Retry::Idempotent, || {
            sh.post(&format!("/v1/jobs/{id}/complete"), token)
                .json(&write)
        })
        .await?
        .context("complete: empty answer")?;
    st.complete.record(sent);
    let answer: LeaseState = parse("complete", &answer)?;
    ensure!(
        answer.state == "succeeded",
        "completed, but the job is {}",
        answer.state
    );
    st.last_complete = Some(Instant::now());
    if sh.completed.fetch_add(1, Ordering::AcqRel) + 1 == sh.jobs {
        let sample = CpuSample::take(sh.coordinator_pid);
        *sh.end_sample.lock().expect("sample lock poisoned") = Some(sample);
        sh.stop.store(true, Ordering::Release);
    }
    Ok(())
}

/// Submits jobs, one request at a time, until the run's jobs are all taken.
async fn submit_loop(sh: Arc<Shared>) -> SubmitStats {
    let mut st = SubmitStats::default();
    while !sh.stopping() {
        let i = sh.next_job.fetch_add(1, Ordering::AcqRel);
        if i >= sh.jobs {
            break;
        }
        let spec = json!({
            "key": format!("{}-{i}", sh.run_id),
            "title": "bench job",
            "product": BENCH_PRODUCT,
            "payload": { "command": "true" },
        });
        let sent = Instant::now();
        let answer = sh
            .send("submit", Retry::Refused, || {
                sh.post("/v1/jobs", &sh.admin).json(&spec)
            })
            .await
            .and_then(|b| parse::<Submitted>("submit", &b.unwrap_or_default()));
        match answer {
            Ok(made) if made.created => {
                st.submit.record(sent);
                st.ids.push(made.id);
            }
            Ok(made) => {
                sh.fail(format!(
                    "submit: job {} already existed (keys are unique per run)",
                    made.id
                ));
                break;
            }
            Err(e) => {
                sh.fail(format!("{e:#}"));
                break;
            }
        }
    }
    st
}

/// Enrolls `count` factories with `slots` slots and no capabilities; returns their tokens.
async fn enroll(sh: &Shared, count: u32, slots: u32) -> Result<Vec<Arc<str>>> {
    let mut tokens = Vec::with_capacity(count as usize);
    for i in 0..count {
        let body = sh
            .send("enrollment token", Retry::Refused, || {
                sh.post("/v1/enrollment-tokens", &sh.admin).json(&json!({}))
            })
            .await?
            .unwrap_or_default();
        let enrollment: Token = parse("enrollment token", &body)?;
        let req = EnrollRequest {
            name: format!("bench-{}-{i}", sh.run_id),
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
            capabilities: Vec::new(),
            engine_classes: Vec::new(),
            slots,
            cost_per_hour_usd: 0.0,
        };
        let body = sh
            .send("enroll", Retry::Refused, || {
                sh.post("/v1/factories/enroll", &enrollment.token)
                    .json(&req)
            })
            .await?
            .unwrap_or_default();
        let enrolled: EnrollResponse = parse("enroll", &body)?;
        tokens.push(Arc::from(enrolled.token));
    }
    Ok(tokens)
}

/// What the pre-load did.
struct Preload {
    loaded: u64,
    secs: f64,
    /// Whether the coordinator's scheduler had indexed every loaded job before measuring.
    indexed: bool,
    /// Whether the coordinator went idle (its store done with the pre-load) before measuring.
    idle: bool,
    memory: Option<Memory>,
}

/// Loads `count` jobs no factory can take, in manifests of `MANIFEST_CHUNK_JOBS`.
async fn preload(sh: &Arc<Shared>, count: u64, priority: u32) -> Result<(u64, f64)> {
    let next_chunk = Arc::new(AtomicU64::new(0));
    let loaded = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let chunks = count.div_ceil(MANIFEST_CHUNK_JOBS);
    let mut tasks = Vec::new();
    for _ in 0..PRELOAD_CONCURRENCY.min(chunks) {
        let (sh, next_chunk, loaded) = (sh.clone(), next_chunk.clone(), loaded.clone());
        tasks.push(tokio::spawn(async move {
            while !sh.stopping() {
                let chunk = next_chunk.fetch_add(1, Ordering::AcqRel);
                if chunk >= chunks {
                    break;
                }
                let first = chunk * MANIFEST_CHUNK_JOBS;
                let last = (first + MANIFEST_CHUNK_JOBS).min(count);
                let jobs: Vec<serde_json::Value> = (first..last)
                    .map(|i| {
                        json!({
                            "key": format!("{}-base-{i}", sh.run_id),
                            "title": "queued filler",
                            "command": "true",
                            "capabilities": [BASE_CAPABILITY],
                            "priority": priority,
                        })
                    })
                    .collect();
                let manifest = json!({ "product": BASE_PRODUCT, "jobs": jobs }).to_string();
                let body = sh
                    .send("manifest", Retry::Refused, || {
                        sh.post("/v1/manifests", &sh.admin)
                            .header("content-type", "application/json")
                            .timeout(Duration::from_secs(MANIFEST_TIMEOUT_SECS))
                            .body(manifest.clone())
                    })
                    .await?
                    .unwrap_or_default();
                #[derive(Deserialize)]
                struct Made {
                    jobs: Vec<(String, Uuid)>,
                }
                let made: Made = parse("manifest", &body)?;
                ensure!(
                    made.jobs.len() as u64 == last - first,
                    "manifest: {} jobs made of {}",
                    made.jobs.len(),
                    last - first
                );
                let before = loaded.fetch_add(last - first, Ordering::AcqRel);
                let after = before + (last - first);
                if after / PRELOAD_PROGRESS_JOBS > before / PRELOAD_PROGRESS_JOBS {
                    eprintln!(
                        "  pre-load: {after} of {count} jobs ({:.0} s)",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((
        loaded.load(Ordering::Acquire),
        started.elapsed().as_secs_f64(),
    ))
}

/// Waits, until `deadline`, for the scheduler's index to hold at least `count` jobs (the
/// `gigafactory_queued_jobs` gauge of `/metrics`): manifests are acknowledged before the
/// scheduler has indexed their jobs, and measuring while it still does would charge that work
/// to the first claims. False if the gauge never got there.
async fn wait_indexed(sh: &Shared, count: u64, deadline: Instant) -> bool {
    loop {
        let queued = async {
            let text = sh
                .http
                .get(format!("{}/metrics", sh.base))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            text.lines()
                .find_map(|l| l.strip_prefix("gigafactory_queued_jobs "))?
                .trim()
                .parse::<f64>()
                .ok()
        }
        .await;
        if queued.is_some_and(|q| q >= count as f64) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(PROBE_PAUSE_MS)).await;
    }
}

/// How many of `ids` the store holds as succeeded, listing `product=bench` from just before the
/// oldest id (ids are UUIDv7 and the list is in id order, so a pre-load is skipped, not paged).
async fn count_succeeded(sh: &Shared, ids: &HashSet<Uuid>, deadline: Instant) -> Result<u64> {
    let Some(oldest) = ids.iter().min() else {
        return Ok(0);
    };
    let mut cursor = Uuid::from_u128(oldest.as_u128().saturating_sub(1)).to_string();
    let mut found = 0;
    loop {
        ensure!(
            Instant::now() < deadline,
            "verification: not finished in time ({found} found so far)"
        );
        let path = format!(
            "{}/v1/jobs?state=succeeded&product={BENCH_PRODUCT}&limit={VERIFY_PAGE_JOBS}&cursor={cursor}",
            sh.base
        );
        let body = sh
            .send("list jobs", Retry::Idempotent, || {
                sh.http.get(&path).bearer_auth(&sh.admin)
            })
            .await?
            .unwrap_or_default();
        let page: Page = parse("list jobs", &body)?;
        found += page.jobs.iter().filter(|j| ids.contains(&j.id)).count() as u64;
        match page.next_cursor {
            Some(next) => cursor = next,
            None => return Ok(found),
        }
    }
}

async fn bench(args: &BenchArgs, http: &reqwest::Client, target: &Target) -> Result<()> {
    let load_before = loadavg();
    let run_id = Uuid::now_v7().simple().to_string();
    println!(
        "gigafactory bench: {} jobs, {} factories × {} slots, {} submitters, renew {}, \
         {} jobs queued before",
        args.jobs,
        args.factories,
        args.slots,
        args.submitters,
        if args.renew { "on" } else { "off" },
        args.queued_base
    );
    println!("coordinator: {}", target.describe());
    println!("load average before: {load_before}");

    let phase = Duration::from_secs(args.timeout_secs);
    let shared = |deadline: Instant| Shared {
        http: http.clone(),
        base: target.base.clone(),
        admin: target.admin.clone(),
        run_id: run_id.clone(),
        renew: args.renew,
        jobs: args.jobs,
        deadline,
        next_job: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        fatal: Mutex::new(None),
        coordinator_pid: target.child.as_ref().map(|c| c.pid),
        end_sample: Mutex::new(None),
    };

    let mut pre = None;
    if args.queued_base > 0 {
        let deadline = Instant::now() + phase;
        let sh = Arc::new(shared(deadline));
        let (loaded, secs) = preload(&sh, args.queued_base, args.queued_priority).await?;
        let indexed = wait_indexed(&sh, loaded, deadline).await;
        let settle_started = Instant::now();
        let idle = wait_idle(target, deadline).await;
        let settle_secs = settle_started.elapsed().as_secs_f64();
        let memory = target.memory();
        println!(
            "pre-load: {loaded} of {} queued jobs in {secs:.1} s ({:.0} jobs/s){}",
            args.queued_base,
            loaded as f64 / secs.max(1e-9),
            if indexed {
                ""
            } else {
                " — NOT all indexed by the scheduler in time"
            },
        );
        println!(
            "          coordinator {} {settle_secs:.1} s later; {}",
            if idle {
                "idle"
            } else {
                "STILL BUSY (it shares the machine with the measurement)"
            },
            Memory::show(memory)
        );
        pre = Some(Preload {
            loaded,
            secs,
            indexed,
            idle,
            memory,
        });
    }

    let sh = Arc::new(shared(Instant::now() + phase));
    let tokens = enroll(&sh, args.factories, args.slots).await?;
    let cpu_before = CpuSample::take(sh.coordinator_pid);
    let started = cpu_before.at;
    // Claim loops first, so they wait on long-polls and the first job is taken at once.
    let mut slots = Vec::new();
    for token in &tokens {
        for _ in 0..args.slots {
            slots.push(tokio::spawn(claim_loop(sh.clone(), token.clone())));
        }
    }
    let mut submitters = Vec::new();
    for _ in 0..args.submitters {
        submitters.push(tokio::spawn(submit_loop(sh.clone())));
    }
    let mut submit = Latencies::default();
    let mut ids = HashSet::with_capacity(args.jobs as usize);
    for t in submitters {
        let st = t.await?;
        submit.merge(st.submit);
        ids.extend(st.ids);
    }
    let mut claim = Latencies::default();
    let mut renew = Latencies::default();
    let mut complete = Latencies::default();
    let mut empty_claims = 0;
    let mut last_complete: Option<Instant> = None;
    for t in slots {
        let st = t.await?;
        claim.merge(st.claim);
        renew.merge(st.renew);
        complete.merge(st.complete);
        empty_claims += st.empty_claims;
        last_complete = last_complete.max(st.last_complete);
    }
    let ended = last_complete.unwrap_or_else(Instant::now);
    let elapsed = ended.duration_since(started).as_secs_f64();
    // Without a last job (timeout, error), the window runs to the end of the loops.
    let cpu_after = sh
        .end_sample
        .lock()
        .expect("sample lock poisoned")
        .unwrap_or_else(|| CpuSample::take(sh.coordinator_pid));
    let cpu = CpuUse::between(&cpu_before, &cpu_after);
    let memory = target.memory();
    let store_bytes = target.store_bytes();
    let load_after = loadavg();
    let (submit, claim, renew, complete) = (
        submit.sorted(),
        claim.sorted(),
        renew.sorted(),
        complete.sorted(),
    );
    let completed = sh.completed.load(Ordering::Acquire);
    let submitted = ids.len() as u64;
    let fatal = sh.fatal.lock().expect("fatal lock poisoned").clone();
    let timed_out = fatal.is_none() && completed < args.jobs;

    let verify_deadline = Instant::now() + phase;
    let stored = count_succeeded(&sh, &ids, verify_deadline).await;
    let jobs_per_sec = completed as f64 / elapsed.max(1e-9);

    println!();
    println!(
        "  jobs completed      {completed} of {submitted} submitted ({} asked)",
        args.jobs
    );
    println!("  wall time           {elapsed:.2} s (first submit to last complete)");
    println!("  throughput          {jobs_per_sec:.0} jobs/s end to end");
    println!("  latency (ms)             p50       p99       max     count");
    println!("{}", submit.row("submit"));
    println!("{}", claim.row("claim"));
    if args.renew {
        println!("{}", renew.row("renew"));
    }
    println!("{}", complete.row("complete"));
    println!("  empty claims        {empty_claims} (long-polls that ended with no job)");
    println!(
        "  retries             {}",
        sh.retries.load(Ordering::Relaxed)
    );
    println!("  coordinator memory  {}", Memory::show(memory));
    if let Some(bytes) = store_bytes {
        println!(
            "  store on disk       {:.1} MiB",
            bytes as f64 / (1024.0 * 1024.0)
        );
    }
    let show_pct = |p: Option<f64>| p.map_or_else(|| "n/a".into(), |p| format!("{p:.0} %"));
    println!(
        "  CPU (of one core)   coordinator {}, bench client {}, other processes {} \
         (machine: {cores} cores, {} busy)",
        show_pct(cpu.coordinator),
        show_pct(cpu.client),
        show_pct(cpu.others),
        show_pct(cpu.machine),
        cores = cpu.cores,
    );
    println!("  load average        before {load_before}, after {load_after}");
    let check = match &stored {
        Ok(n) if *n == completed && (timed_out || fatal.is_some() || *n == submitted) => {
            format!("OK: the store holds {n} succeeded bench jobs")
        }
        Ok(n) => format!(
            "MISMATCH: the store holds {n} succeeded of {submitted} submitted, the bench \
             counted {completed} completed"
        ),
        Err(e) => format!("FAILED: {e:#}"),
    };
    println!("  check               {check}");

    if let Some(path) = &args.json {
        let figures = json!({
            "jobs": args.jobs,
            "factories": args.factories,
            "slots": args.slots,
            "submitters": args.submitters,
            "renew": args.renew,
            "queued_base": pre.as_ref().map(|p| json!({
                "requested": args.queued_base,
                "loaded": p.loaded,
                "priority": args.queued_priority,
                "secs": p.secs,
                "jobs_per_s": p.loaded as f64 / p.secs.max(1e-9),
                "indexed": p.indexed,
                "went_idle": p.idle,
                "vm_rss_kib": p.memory.map(|m| m.rss_kib),
            })),
            "submitted": submitted,
            "completed": completed,
            "stored_succeeded": stored.as_ref().ok(),
            "elapsed_s": elapsed,
            "jobs_per_s": jobs_per_sec,
            "submit": submit.json(),
            "claim": claim.json(),
            "renew": renew.json(),
            "complete": complete.json(),
            "empty_claims": empty_claims,
            "retries": sh.retries.load(Ordering::Relaxed),
            "coordinator_vm_rss_kib": memory.map(|m| m.rss_kib),
            "coordinator_vm_hwm_kib": memory.map(|m| m.hwm_kib),
            "store_bytes": store_bytes,
            "coordinator_cpu_pct": cpu.coordinator,
            "client_cpu_pct": cpu.client,
            "others_cpu_pct": cpu.others,
            "machine_busy_pct": cpu.machine,
            "cores": cpu.cores,
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "timed_out": timed_out,
            "error": fatal,
        });
        std::fs::write(path, serde_json::to_string_pretty(&figures)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }

    if let Some(why) = fatal {
        bail!("the run stopped on an error: {why}");
    }
    ensure!(
        !timed_out,
        "timed out after {} s: {completed} of {} jobs completed",
        args.timeout_secs,
        args.jobs
    );
    let stored = stored?;
    ensure!(
        stored == completed && stored == submitted,
        "count mismatch: {submitted} submitted, {completed} completed, {stored} succeeded in \
         the store"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.50), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn refuses_a_coordinator_off_loopback() {
        assert!(ensure_loopback("http://127.0.0.1:7070").is_ok());
        assert!(ensure_loopback("http://localhost:7070/").is_ok());
        assert!(ensure_loopback("http://[::1]:7070").is_ok());
        assert!(ensure_loopback("http://10.0.0.5:7070").is_err());
        assert!(ensure_loopback("http://example.com").is_err());
        assert!(ensure_loopback("https://127.0.0.1:7070").is_err());
    }

    #[test]
    fn reads_cpu_time_past_a_command_name_with_spaces() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            file.path(),
            "42 (a b) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0 1 0 100 0 0\n",
        )
        .unwrap();
        assert_eq!(cpu_secs(file.path().to_str().unwrap()), Some(4.0));
    }
}

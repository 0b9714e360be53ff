//! The single-coordinator mode: an optional pre-load of jobs no factory can take, one measured
//! run, its figures (printed, and as JSON with `--json`), the store's count and, with
//! `--usage`, the spend of the run's budget.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use super::child::Target;
use super::error::{Error, Result};
use super::load::{self, Loaded, Measured, Queued, Shared, UsageMode, Workload};
use super::{BenchArgs, write_json};
use crate::procfs::{Memory, Watched, load_average, show_pct};

/// After a pre-load, the coordinator counts as idle once it uses less than this much CPU over
/// one `SETTLE_WINDOW_MS` window: its store may still be flushing the pre-load, which would
/// otherwise be charged to the measurement.
const SETTLE_CPU_SHARE_MAX: f64 = 0.20;
const SETTLE_WINDOW_MS: u64 = 500;
/// Longest wait for the coordinator to become idle after a pre-load.
const SETTLE_MAX_SECS: u64 = 120;

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

/// What the coordinator and the machine looked like at the end of a measured run: the tail of
/// the figures both single-coordinator workloads print.
pub(crate) struct Ended {
    load_before: String,
    load_after: String,
    memory: Option<Memory>,
    store_bytes: Option<u64>,
}

impl Ended {
    /// Reads them now, given the load average read before the run.
    pub fn take(target: &Target, load_before: String) -> Ended {
        Ended {
            load_before,
            load_after: load_average(),
            memory: target.memory(),
            store_bytes: target.store_bytes(),
        }
    }

    /// Prints the coordinator's memory, the store's size, the CPU the run `m` took, the load
    /// average and whether the store's count `stored` adds up.
    pub fn print(&self, m: &Measured, stored: &Result<u64>) {
        println!("  coordinator memory  {}", Memory::show(self.memory));
        if let Some(bytes) = self.store_bytes {
            println!(
                "  store on disk       {:.1} MiB",
                bytes as f64 / (1024.0 * 1024.0)
            );
        }
        println!(
            "  CPU (of one core)   coordinator {}, bench client {}, other processes {} \
             (machine: {cores} cores, {} busy)",
            show_pct(m.cpu.coordinator),
            show_pct(m.cpu.client),
            show_pct(m.cpu.others),
            show_pct(m.cpu.machine),
            cores = m.cpu.cores,
        );
        println!(
            "  load average        before {}, after {}",
            self.load_before, self.load_after
        );
        println!("  check               {}", load::check(m, stored));
    }

    /// The same figures for `--json`, added to `extra` (an object: what only the workload
    /// knows).
    pub fn json(&self, m: &Measured, mut extra: serde_json::Value) -> serde_json::Value {
        let ours = json!({
            "coordinator_vm_rss_kib": self.memory.map(|m| m.rss_kib),
            "coordinator_vm_hwm_kib": self.memory.map(|m| m.hwm_kib),
            "store_bytes": self.store_bytes,
            "coordinator_cpu_pct": m.cpu.coordinator,
            "cores": m.cpu.cores,
            "loadavg_before": self.load_before,
            "loadavg_after": self.load_after,
        });
        if let (serde_json::Value::Object(all), serde_json::Value::Object(ours)) =
            (&mut extra, ours)
        {
            all.extend(ours);
        }
        extra
    }
}

/// What the clients of a run on `target` share, until `deadline`.
pub(crate) fn shared_on(
    http: &reqwest::Client,
    target: &Target,
    run_id: &str,
    workload: &Workload,
    deadline: Instant,
) -> Arc<Shared> {
    let watched = Watched {
        coordinators: target.pid().into_iter().collect(),
        store: Vec::new(),
    };
    Arc::new(Shared::new(
        http,
        vec![target.base.clone()],
        &target.admin,
        run_id,
        workload,
        deadline,
        watched,
    ))
}

/// Waits, until `deadline` and at most `SETTLE_MAX_SECS`, for the coordinator to go idle.
/// True if it did; also true when there is no child to watch.
pub(crate) async fn wait_idle(target: &Target, deadline: Instant) -> bool {
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

pub(crate) async fn bench(args: &BenchArgs, http: &reqwest::Client, target: &Target) -> Result<()> {
    let load_before = load_average();
    let run_id = Uuid::now_v7().simple().to_string();
    let workload = Workload {
        keyed_submits: false,
        ..args.workload()
    };
    println!(
        "gigafactory bench: {} jobs, {} factories × {} slots, {} submitters, renew {}, \
         claim with complete {}, usage {}, policies {}, {} jobs queued before",
        args.jobs,
        workload.factories,
        workload.slots,
        workload.submitters,
        if workload.renew { "on" } else { "off" },
        if workload.claim_next { "on" } else { "off" },
        UsageMode::describe(args.usage),
        match args.policies {
            Some(p) => format!("{p:?}").to_lowercase(),
            None => "default".to_owned(),
        },
        args.queued_base
    );
    println!("coordinator: {}", target.describe());
    println!("load average before: {load_before}");

    let phase = Duration::from_secs(args.timeout_secs);
    let shared = |deadline: Instant| shared_on(http, target, &run_id, &workload, deadline);

    let mut pre = None;
    if args.queued_base > 0 {
        let deadline = Instant::now() + phase;
        let sh = shared(deadline);
        let filler = Queued::Filler {
            priority: args.queued_priority,
        };
        let Loaded {
            count: loaded,
            secs,
            ..
        } = load::preload(&sh, args.queued_base, filler).await?;
        let indexed = load::wait_indexed(&sh, loaded, deadline).await;
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

    let sh = shared(Instant::now() + phase);
    if workload.concurrency_key.is_some() {
        load::set_limits(&sh, args.policies == Some(crate::harness::Policies::Rate)).await?;
    }
    let budget = if args.usage.is_some() {
        Some(load::set_budget(&sh, &run_id).await?)
    } else {
        None
    };
    let m = load::measure(&sh, &workload, Vec::new()).await?;
    let ended = Ended::take(target, load_before);
    let stored = load::count_succeeded(&sh, &m.ids, Instant::now() + phase).await;
    let mut spend = None;
    if let Some(b) = &budget {
        let spent = load::spent(&sh, b, Instant::now() + phase).await;
        spend = Some(load::check_spend(b, &spent, m.usage_reported));
        load::remove_budget(&sh, b).await;
    }

    println!();
    println!(
        "  jobs completed      {} of {} submitted ({} asked)",
        m.completed,
        m.submitted(),
        args.jobs
    );
    println!(
        "  wall time           {:.2} s (first submit to last complete)",
        m.elapsed
    );
    println!(
        "  throughput          {:.0} jobs/s end to end",
        m.jobs_per_sec()
    );
    println!("  latency (ms)             p50       p99       max     count");
    println!("{}", m.submit.row("submit"));
    println!("{}", m.claim.row("claim"));
    if workload.renew {
        println!("{}", m.renew.row("renew"));
    }
    if args.usage == Some(UsageMode::Separate) {
        println!("{}", m.usage.row("usage"));
    }
    println!("{}", m.complete.row("complete"));
    println!(
        "  empty claims        {} (long-polls that ended with no job)",
        m.empty_claims
    );
    println!("  retries             {}", m.retries);
    ended.print(&m, &stored);
    if let Some(spend) = &spend {
        let line = spend.as_ref().unwrap_or_else(|why| why);
        println!("  budget spend        {line}");
    }

    if let Some(path) = &args.json {
        let extra = json!({
            "jobs": args.jobs,
            "factories": workload.factories,
            "slots": workload.slots,
            "submitters": workload.submitters,
            "renew": workload.renew,
            "usage_mode": UsageMode::describe(args.usage),
            "usage_reports": args.usage.map(|_| m.usage_reported),
            "budget_spend_check": spend.as_ref().map(|s| match s {
                Ok(line) | Err(line) => line,
            }),
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
            "empty_claims": m.empty_claims,
        });
        write_json(path, &m.json(&stored, ended.json(&m, extra)))?;
    }
    load::verdict(&m, stored, args.timeout_secs)?;
    match spend {
        Some(Err(why)) => Err(Error::Check(format!("budget spend: {why}"))),
        _ => Ok(()),
    }
}

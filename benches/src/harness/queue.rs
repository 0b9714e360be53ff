//! The queue workload (`--workload queue`), as job-queue benchmarks run it: every job (about
//! 200 bytes) is queued first through manifests, untimed; then `--workers` workers, each a
//! factory of one slot, loop claim → complete as fast as they can (one job a claim, no renew,
//! no usage; each complete takes the worker's next job with it unless `--claim-next false`).
//! It prints jobs/s over the claim/complete phase (first claim sent to last complete
//! answered), each worker's gap between jobs (from the end of a job to the answer that
//! carries its next: the complete's own, or a claim's), the claim's and the complete's
//! latency, and the
//! coordinator's CPU (also per job) and memory; the store must then hold every queued job as
//! succeeded, once.

use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use super::child::Target;
use super::error::{Error, Result};
use super::load::{self, Queued};
use super::single::{Ended, shared_on, wait_idle};
use super::{BenchArgs, write_json};
use crate::procfs::load_average;

pub(crate) async fn bench(args: &BenchArgs, http: &reqwest::Client, target: &Target) -> Result<()> {
    let load_before = load_average();
    let run_id = Uuid::now_v7().simple().to_string();
    let workload = args.workload();
    println!(
        "gigafactory bench --workload queue: {} jobs of ~200 bytes queued first, then {} \
         workers loop claim → complete (one job a claim, no renew; {})",
        workload.jobs,
        workload.factories,
        if workload.claim_next {
            "each complete takes the next job"
        } else {
            "a claim of its own after each complete"
        },
    );
    println!("coordinator: {}", target.describe());
    println!("load average before: {load_before}");

    let phase = Duration::from_secs(args.timeout_secs);
    let shared = |deadline: Instant| shared_on(http, target, &run_id, &workload, deadline);

    let deadline = Instant::now() + phase;
    let loaded = load::preload(&shared(deadline), workload.jobs, Queued::Work).await?;
    if loaded.count < workload.jobs {
        return Err(Error::Check(format!(
            "queued {} of {} jobs before the deadline",
            loaded.count, workload.jobs
        )));
    }
    let indexed = load::wait_indexed(&shared(deadline), loaded.count, deadline).await;
    // The store may still be flushing the manifests; that is not the workload's cost.
    let idle = wait_idle(target, deadline).await;
    println!(
        "queued: {} jobs in {:.1} s ({:.0} jobs/s, not timed){}{}",
        loaded.count,
        loaded.secs,
        loaded.count as f64 / loaded.secs.max(1e-9),
        if indexed {
            ""
        } else {
            " — NOT all indexed by the scheduler in time"
        },
        if idle {
            ""
        } else {
            " — coordinator STILL BUSY with them when the workers started"
        },
    );

    let sh = shared(Instant::now() + phase);
    let m = load::measure(&sh, &workload, loaded.ids).await?;
    let ended = Ended::take(target, load_before);
    let stored = load::count_succeeded(&sh, &m.ids, Instant::now() + phase).await;
    // Coordinator CPU seconds over the phase, per job completed in it.
    let cpu_per_job_us = m
        .cpu
        .coordinator
        .filter(|_| m.completed > 0)
        .map(|pct| pct / 100.0 * m.elapsed / m.completed as f64 * 1e6);

    println!();
    println!(
        "  jobs completed      {} of {} queued",
        m.completed,
        m.submitted()
    );
    println!(
        "  wall time           {:.2} s (first claim to last complete)",
        m.elapsed
    );
    println!("  throughput          {:.0} jobs/s", m.jobs_per_sec());
    println!("  latency (ms)             p50       p99       max     count");
    println!("{}", m.claim.row("claim"));
    println!("{}", m.complete.row("complete"));
    println!(
        "{}    (a worker's job ended → the answer carrying its next job)",
        m.gap.row("gap")
    );
    println!(
        "  empty claims        {} (long-polls that ended with no job)",
        m.empty_claims
    );
    println!("  retries             {}", m.retries);
    if let Some(us) = cpu_per_job_us {
        println!("  coordinator CPU     {us:.0} µs per job");
    }
    ended.print(&m, &stored);

    if let Some(path) = &args.json {
        let extra = json!({
            "workload": "queue",
            "jobs": args.jobs,
            "workers": workload.factories,
            "queued_secs": loaded.secs,
            "indexed": indexed,
            "went_idle": idle,
            "claim_next": workload.claim_next,
            "gap": m.gap.json(),
            "empty_claims": m.empty_claims,
            "coordinator_cpu_us_per_job": cpu_per_job_us,
        });
        write_json(path, &m.json(&stored, ended.json(&m, extra)))?;
    }
    load::verdict(&m, stored, args.timeout_secs)
}

//! The pre-load: jobs queued through manifests before a measured run. Either jobs no
//! simulated factory can take, so that claim latency with a deep queue can be compared with a
//! shallow one (`--queued-base`), or the queue workload's own jobs (`--workload queue`); and
//! the wait until the coordinator's scheduler has indexed them all.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{BENCH_PRODUCT, Retry, Route, Shared, parse};
use crate::harness::error::{Error, Result};
use crate::harness::metrics::queued_jobs;

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
/// Longest wait for one pre-load manifest: 5,000 jobs in one transaction plus their reads.
const MANIFEST_TIMEOUT_SECS: u64 = 300;
/// Pause between two index probes.
const PROBE_PAUSE_MS: u64 = 50;
/// The command of a queue workload job: long enough that the job, as its manifest carries it,
/// is about 200 bytes, the size job-queue benchmarks queue.
const WORK_COMMAND: &str = "printf '%s' 'one job of the queue workload, padded to the two hundred \
     bytes a job-queue benchmark queues' >/dev/null";

/// What a pre-load queues.
#[derive(Clone, Copy)]
pub(crate) enum Queued {
    /// Jobs no factory can take, at this priority, under a product of their own.
    Filler { priority: u32 },
    /// Jobs of the bench's product that every simulated factory can take.
    Work,
}

impl Queued {
    /// Job `i` of the run `run_id`, as its manifest carries it.
    fn job(self, run_id: &str, i: u64) -> serde_json::Value {
        match self {
            Queued::Filler { priority } => json!({
                "key": format!("{run_id}-base-{i}"),
                "title": "queued filler",
                "command": "true",
                "capabilities": [BASE_CAPABILITY],
                "priority": priority,
            }),
            Queued::Work => json!({
                "key": format!("{run_id}-{i}"),
                "title": "bench job",
                "command": WORK_COMMAND,
            }),
        }
    }

    fn product(self) -> &'static str {
        match self {
            Queued::Filler { .. } => BASE_PRODUCT,
            Queued::Work => BENCH_PRODUCT,
        }
    }
}

/// What a pre-load did.
pub(crate) struct Loaded {
    pub count: u64,
    pub secs: f64,
    /// The ids of the jobs made, kept for `Queued::Work` only (the store's count checks them).
    pub ids: Vec<Uuid>,
}

/// Queues `count` jobs of the kind `what`, in manifests of `MANIFEST_CHUNK_JOBS`, through the
/// first node.
pub(crate) async fn preload(sh: &Arc<Shared>, count: u64, what: Queued) -> Result<Loaded> {
    let next_chunk = Arc::new(AtomicU64::new(0));
    let loaded = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let chunks = count.div_ceil(MANIFEST_CHUNK_JOBS);
    let keep_ids = matches!(what, Queued::Work);
    let mut tasks = Vec::new();
    for _ in 0..PRELOAD_CONCURRENCY.min(chunks) {
        let (sh, next_chunk, loaded) = (sh.clone(), next_chunk.clone(), loaded.clone());
        tasks.push(tokio::spawn(async move {
            let route = Route::new(0, sh.nodes.len());
            let mut ids = Vec::new();
            while !sh.stopping() {
                let chunk = next_chunk.fetch_add(1, Ordering::AcqRel);
                if chunk >= chunks {
                    break;
                }
                let first = chunk * MANIFEST_CHUNK_JOBS;
                let last = (first + MANIFEST_CHUNK_JOBS).min(count);
                let jobs: Vec<serde_json::Value> =
                    (first..last).map(|i| what.job(&sh.run_id, i)).collect();
                let manifest = json!({ "product": what.product(), "jobs": jobs }).to_string();
                let body = sh
                    .send("manifest", Retry::Refused, &route, |base| {
                        sh.post(base, "/v1/manifests", &sh.admin)
                            .header("content-type", "application/json")
                            .timeout(Duration::from_secs(MANIFEST_TIMEOUT_SECS))
                            .body(manifest.clone())
                    })
                    .await?
                    .body
                    .unwrap_or_default();
                #[derive(Deserialize)]
                struct Made {
                    jobs: Vec<(String, Uuid)>,
                }
                let made: Made = parse("manifest", &body)?;
                if made.jobs.len() as u64 != last - first {
                    let why = format!("{} jobs made of {}", made.jobs.len(), last - first);
                    return Err(Error::request("manifest", why));
                }
                if keep_ids {
                    ids.extend(made.jobs.into_iter().map(|(_, id)| id));
                }
                let before = loaded.fetch_add(last - first, Ordering::AcqRel);
                let after = before + (last - first);
                if after / PRELOAD_PROGRESS_JOBS > before / PRELOAD_PROGRESS_JOBS {
                    eprintln!(
                        "  pre-load: {after} of {count} jobs ({:.0} s)",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            Ok::<_, Error>(ids)
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await??);
    }
    Ok(Loaded {
        count: loaded.load(Ordering::Acquire),
        secs: started.elapsed().as_secs_f64(),
        ids,
    })
}

/// Waits, until `deadline`, for the first node's scheduler index to hold at least `count` jobs
/// (the `gigafactory_queued_jobs` gauge of `/metrics`): manifests are acknowledged before the
/// scheduler has indexed their jobs, and measuring while it still does would charge that work
/// to the first claims. False if the gauge never got there.
pub(crate) async fn wait_indexed(sh: &Shared, count: u64, deadline: Instant) -> bool {
    loop {
        let queued = queued_jobs(&sh.http, &sh.nodes[0]).await;
        if queued.is_some_and(|q| q >= count as f64) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(PROBE_PAUSE_MS)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_workload_job_is_about_two_hundred_bytes() {
        let run_id = Uuid::now_v7().simple().to_string();
        for i in [0, 19_999, 9_999_999] {
            let size = Queued::Work.job(&run_id, i).to_string().len();
            assert!((180..=220).contains(&size), "job {i} is {size} bytes");
        }
    }
}

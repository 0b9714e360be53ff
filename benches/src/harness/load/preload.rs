//! The pre-load: jobs no simulated factory can take, queued before a measured run so that
//! claim latency with a deep queue can be compared with a shallow one, and the wait until the
//! coordinator's scheduler has indexed them all.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{Retry, Route, Shared, parse};
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

/// Loads `count` jobs no factory can take, in manifests of `MANIFEST_CHUNK_JOBS`, through the
/// first node. Returns the jobs loaded and the seconds it took.
pub(crate) async fn preload(sh: &Arc<Shared>, count: u64, priority: u32) -> Result<(u64, f64)> {
    let next_chunk = Arc::new(AtomicU64::new(0));
    let loaded = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let chunks = count.div_ceil(MANIFEST_CHUNK_JOBS);
    let mut tasks = Vec::new();
    for _ in 0..PRELOAD_CONCURRENCY.min(chunks) {
        let (sh, next_chunk, loaded) = (sh.clone(), next_chunk.clone(), loaded.clone());
        tasks.push(tokio::spawn(async move {
            let route = Route::new(0, sh.nodes.len());
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
                let before = loaded.fetch_add(last - first, Ordering::AcqRel);
                let after = before + (last - first);
                if after / PRELOAD_PROGRESS_JOBS > before / PRELOAD_PROGRESS_JOBS {
                    eprintln!(
                        "  pre-load: {after} of {count} jobs ({:.0} s)",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            Ok::<_, Error>(())
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

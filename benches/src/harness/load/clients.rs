//! The simulated clients of one measured run: the factories' claim loops (claim → renew →
//! (`--usage separate`: usage →) complete, which carries the usage with `--usage` and, as the
//! agent's does, asks for the loop's next job unless `--claim-next false`), the submitters and
//! the enrollment that precedes them; [`measure`] runs them until every job completed, an
//! error, or the deadline, and gathers what they measured, with each claim loop's gap between
//! jobs (what the queue workload, which queues its jobs first and runs no submitters,
//! reports).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use gigafactory_core::wire::{
    ClaimNext, ClaimRequest, Complete, EnrollRequest, EnrollResponse, FencedWrite, Renew,
    UsageReport, UsageWrite,
};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::spend::{USAGE_MICROS, USAGE_MODEL, UsageMode};
use super::{BENCH_PRODUCT, Retry, Route, Shared, Workload, parse};
use crate::harness::error::{Error, Result};
use crate::procfs::{CpuSample, CpuUse};
use crate::stats::{Latencies, micros};

/// A claim's long-poll (within the request timeout).
const CLAIM_WAIT_MS: u64 = 1_000;

/// The part of a submit's answer the bench reads. Answers are parsed into small local structs
/// rather than the full wire types: the client shares the machine's cores with the
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
    /// The next job, leased with the complete that asked for it.
    #[serde(default)]
    next: Vec<ClaimedLease>,
}

#[derive(Deserialize)]
struct Token {
    token: String,
}

/// What one claim loop measured.
#[derive(Default)]
struct SlotStats {
    claim: Latencies,
    renew: Latencies,
    usage: Latencies,
    complete: Latencies,
    /// A worker's time without a job: from the end of a job (its complete about to be sent)
    /// to holding the next one (the answer that carried it: the complete's own, or a
    /// claim's).
    gap: Latencies,
    /// When the last job ended, until the next one is held.
    idle_since: Option<Instant>,
    empty_claims: u64,
    /// When each of its jobs completed, and which.
    completions: Vec<(Instant, Uuid)>,
}

/// What one submitter measured.
#[derive(Default)]
struct SubmitStats {
    submit: Latencies,
    ids: Vec<Uuid>,
}

/// One slot of a simulated factory: claim one job, renew it, report its usage (alone, or on
/// its complete), complete it (taking the next job with the complete's answer), again.
async fn claim_loop(sh: Arc<Shared>, token: Arc<str>, route: Arc<Route>) -> SlotStats {
    let mut st = SlotStats::default();
    let claim = ClaimRequest {
        max_jobs: 1,
        wait_ms: CLAIM_WAIT_MS,
    };
    let mut next: Option<ClaimedLease> = None;
    // A loop checks for the end only before claiming, so a job it holds is always completed.
    loop {
        if let Some(lease) = next.take() {
            match run_job(&sh, &token, &route, &lease, &mut st).await {
                Ok(more) => next = more,
                Err(e) => {
                    sh.fail(format!("job {}: {e}", lease.job_id));
                    return st;
                }
            }
            continue;
        }
        if sh.stopping() {
            break;
        }
        let sent = Instant::now();
        let answer = sh
            .send("claim", Retry::Unanswered, &route, |base| {
                sh.post(base, "/v1/claims", &token).json(&claim)
            })
            .await;
        let claimed: Claimed =
            match answer.and_then(|r| r.body.map(|b| parse("claim", &b)).transpose()) {
                Ok(Some(c)) => c,
                Ok(None) => {
                    st.empty_claims += 1;
                    continue;
                }
                Err(e) => {
                    sh.fail(e.to_string());
                    break;
                }
            };
        st.claim.record(sent);
        // One slot: a claim of one job.
        next = claimed.jobs.into_iter().next();
        if next.is_some()
            && let Some(idle) = st.idle_since.take()
        {
            st.gap.record(idle);
        }
    }
    st
}

/// Sends the fenced write `action` of `lease` under a request id of its own (a retry of it is
/// answered as the first send was, and counted once), recording its latency in `latencies`;
/// the answer's body.
async fn write<T: serde::Serialize>(
    sh: &Shared,
    token: &str,
    route: &Route,
    lease: &ClaimedLease,
    action: &str,
    body: T,
    latencies: &mut Latencies,
) -> Result<Option<Vec<u8>>> {
    let write = FencedWrite {
        epoch: lease.epoch,
        request_id: Uuid::now_v7().to_string(),
        body,
    };
    let path = format!("/v1/jobs/{}/{action}", lease.job_id);
    let sent = Instant::now();
    let answer = sh
        .send(action, Retry::Idempotent, route, |base| {
            sh.post(base, &path, token).json(&write)
        })
        .await?;
    latencies.record(sent);
    Ok(answer.body)
}

/// Runs one leased job to its complete; the job leased with the complete's answer, if any.
async fn run_job(
    sh: &Shared,
    token: &str,
    route: &Route,
    lease: &ClaimedLease,
    st: &mut SlotStats,
) -> Result<Option<ClaimedLease>> {
    let id = lease.job_id;
    if sh.renew {
        write(sh, token, route, lease, "renew", Renew {}, &mut st.renew).await?;
    }
    let report = UsageReport {
        model: USAGE_MODEL.into(),
        input_tokens: 1_000,
        output_tokens: 100,
        cost_micros: Some(USAGE_MICROS),
    };
    let mut complete = Complete {
        claim_next: sh.claim_next.then_some(ClaimNext { max_jobs: 1 }),
        ..Complete::default()
    };
    match sh.usage {
        None => {}
        Some(UsageMode::Separate) => {
            write(sh, token, route, lease, "usage", report, &mut st.usage).await?;
            sh.usage_reported.fetch_add(1, Ordering::Relaxed);
        }
        Some(UsageMode::Carried) => complete.usage.push(UsageWrite {
            request_id: Uuid::now_v7().to_string(),
            report,
        }),
    }
    let carried = complete.usage.len() as u64;
    st.idle_since = Some(Instant::now());
    let answer = write(
        sh,
        token,
        route,
        lease,
        "complete",
        complete,
        &mut st.complete,
    )
    .await?
    .ok_or_else(|| Error::request("complete", "empty answer"))?;
    let answer: LeaseState = parse("complete", &answer)?;
    if answer.state != "succeeded" {
        let why = format!("completed, but the job is {}", answer.state);
        return Err(Error::request("complete", why));
    }
    sh.usage_reported.fetch_add(carried, Ordering::Relaxed);
    st.completions.push((Instant::now(), id));
    if sh.completed.fetch_add(1, Ordering::AcqRel) + 1 == sh.jobs {
        let sample = CpuSample::take(&sh.watched);
        *sh.end_sample.lock().expect("sample lock poisoned") = Some(sample);
        sh.stop.store(true, Ordering::Release);
    }
    let next = answer.next.into_iter().next();
    if next.is_some()
        && let Some(idle) = st.idle_since.take()
    {
        st.gap.record(idle);
    }
    Ok(next)
}

/// Submits jobs, one request at a time, until the run's jobs are all taken.
async fn submit_loop(sh: Arc<Shared>, route: Route) -> SubmitStats {
    let mut st = SubmitStats::default();
    let retry = if sh.keyed_submits {
        Retry::Idempotent
    } else {
        Retry::Refused
    };
    while !sh.stopping() {
        let i = sh.next_job.fetch_add(1, Ordering::AcqRel);
        if i >= sh.jobs {
            break;
        }
        let key = format!("{}-{i}", sh.run_id);
        let mut spec = json!({
            "key": key,
            "title": "bench job",
            "product": BENCH_PRODUCT,
            "payload": { "command": "true" },
        });
        if sh.keyed_submits {
            spec["idempotency_key"] = json!(key);
        }
        if let Some(k) = &sh.concurrency_key {
            spec["concurrency_key"] = json!(k);
        }
        let sent = Instant::now();
        let answer = sh
            .send("submit", retry, &route, |base| {
                sh.post(base, "/v1/jobs", &sh.admin).json(&spec)
            })
            .await
            .and_then(|r| {
                let made = parse::<Submitted>("submit", &r.body.unwrap_or_default())?;
                Ok((made, r.after_loss))
            });
        match answer {
            // An existing job is ours when an earlier attempt, whose answer was lost, made it.
            Ok((made, after_loss)) if made.created || after_loss => {
                st.submit.record(sent);
                st.ids.push(made.id);
            }
            Ok((made, _)) => {
                sh.fail(format!(
                    "submit: job {} already existed (keys are unique per run)",
                    made.id
                ));
                break;
            }
            Err(e) => {
                sh.fail(e.to_string());
                break;
            }
        }
    }
    st
}

/// Enrolls `count` factories with `slots` slots and no capabilities, factory `f` through the
/// node its route starts on; returns their tokens.
async fn enroll(sh: &Shared, count: u32, slots: u32) -> Result<Vec<Arc<str>>> {
    let mut tokens = Vec::with_capacity(count as usize);
    for i in 0..count {
        let route = Route::new(i as usize, sh.nodes.len());
        let body = sh
            .send("enrollment token", Retry::Refused, &route, |base| {
                sh.post(base, "/v1/enrollment-tokens", &sh.admin)
                    .json(&json!({}))
            })
            .await?
            .body
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
            .send("enroll", Retry::Refused, &route, |base| {
                sh.post(base, "/v1/factories/enroll", &enrollment.token)
                    .json(&req)
            })
            .await?
            .body
            .unwrap_or_default();
        let enrolled: EnrollResponse = parse("enroll", &body)?;
        tokens.push(Arc::from(enrolled.token));
    }
    Ok(tokens)
}

/// What one run measured.
pub(crate) struct Measured {
    /// Jobs the run was to push through.
    pub asked: u64,
    pub submit: Latencies,
    pub claim: Latencies,
    pub renew: Latencies,
    pub usage: Latencies,
    pub complete: Latencies,
    /// Each claim loop's gap between jobs (see `SlotStats::gap`).
    pub gap: Latencies,
    pub empty_claims: u64,
    /// Usage reports the coordinator took (`--usage`), alone or carried.
    pub usage_reported: u64,
    // Read by the cluster comparison only (feature `etcd`).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    /// When the first claim loop started: the origin of `completions_ms`.
    pub started: Instant,
    /// First submit to last complete, in seconds.
    pub elapsed: f64,
    pub completed: u64,
    pub ids: HashSet<Uuid>,
    /// Jobs the bench saw complete more than once (must be 0: a second complete is fenced).
    pub completed_twice: u64,
    // Read by the cluster comparison only (feature `etcd`).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    /// Milliseconds after `started` at which each job completed, in order.
    pub completions_ms: Vec<u64>,
    pub cpu: CpuUse,
    pub retries: u64,
    // Read by the cluster comparison only (feature `etcd`).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub failovers: u64,
    // Read by the cluster comparison only (feature `etcd`).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub lost_claims: u64,
    /// The error that stopped the run early.
    pub fatal: Option<String>,
    /// The deadline passed before every job completed.
    pub timed_out: bool,
}

impl Measured {
    pub fn submitted(&self) -> u64 {
        self.ids.len() as u64
    }

    pub fn jobs_per_sec(&self) -> f64 {
        self.completed as f64 / self.elapsed.max(1e-9)
    }

    /// The run's figures as every mode writes them with `--json`, given the store's count
    /// `stored`, with `extra` (an object: what only that mode knows) added.
    pub fn json(&self, stored: &Result<u64>, extra: serde_json::Value) -> serde_json::Value {
        let mut figures = json!({
            "submitted": self.submitted(),
            "completed": self.completed,
            "stored_succeeded": stored.as_ref().ok(),
            "elapsed_s": self.elapsed,
            "jobs_per_s": self.jobs_per_sec(),
            "submit": self.submit.json(),
            "claim": self.claim.json(),
            "renew": self.renew.json(),
            "usage": self.usage.json(),
            "complete": self.complete.json(),
            "retries": self.retries,
            "client_cpu_pct": self.cpu.client,
            "others_cpu_pct": self.cpu.others,
            "machine_busy_pct": self.cpu.machine,
            "timed_out": self.timed_out,
            "error": self.fatal,
        });
        debug_assert!(extra.is_object(), "extra figures are named");
        if let (serde_json::Value::Object(all), serde_json::Value::Object(extra)) =
            (&mut figures, extra)
        {
            all.extend(extra);
        }
        figures
    }
}

/// Enrolls the factories, then runs the submitters and claim loops until every job completed,
/// an error, or the deadline. `queued` are the ids of jobs queued before (`--workload queue`):
/// they count as submitted.
pub(crate) async fn measure(sh: &Arc<Shared>, w: &Workload, queued: Vec<Uuid>) -> Result<Measured> {
    let tokens = enroll(sh, w.factories, w.slots).await?;
    let cpu_before = CpuSample::take(&sh.watched);
    let started = cpu_before.at;
    // Claim loops first, so they wait on long-polls and the first job is taken at once.
    let mut slots = Vec::new();
    for (f, token) in tokens.iter().enumerate() {
        let route = Arc::new(Route::new(f, sh.nodes.len()));
        for _ in 0..w.slots {
            slots.push(tokio::spawn(claim_loop(
                sh.clone(),
                token.clone(),
                route.clone(),
            )));
        }
    }
    let mut submitters = Vec::new();
    for s in 0..w.submitters {
        let route = Route::new(s as usize, sh.nodes.len());
        submitters.push(tokio::spawn(submit_loop(sh.clone(), route)));
    }
    let mut submit = Latencies::default();
    let mut ids = HashSet::with_capacity(w.jobs as usize);
    ids.extend(queued);
    for t in submitters {
        let st = t.await?;
        submit.merge(st.submit);
        ids.extend(st.ids);
    }
    let mut claim = Latencies::default();
    let mut renew = Latencies::default();
    let mut usage = Latencies::default();
    let mut complete = Latencies::default();
    let mut gap = Latencies::default();
    let mut empty_claims = 0;
    let mut completions = Vec::with_capacity(w.jobs as usize);
    for t in slots {
        let st = t.await?;
        claim.merge(st.claim);
        renew.merge(st.renew);
        usage.merge(st.usage);
        complete.merge(st.complete);
        gap.merge(st.gap);
        empty_claims += st.empty_claims;
        completions.extend(st.completions);
    }
    completions.sort_unstable_by_key(|(at, _)| *at);
    let ended = completions.last().map_or_else(Instant::now, |(at, _)| *at);
    let completed_ids: HashSet<Uuid> = completions.iter().map(|(_, id)| *id).collect();
    // Without a last job (timeout, error), the window runs to the end of the loops.
    let cpu_after = sh
        .end_sample
        .lock()
        .expect("sample lock poisoned")
        .unwrap_or_else(|| CpuSample::take(&sh.watched));
    let completed = sh.completed.load(Ordering::Acquire);
    let fatal = sh.fatal.lock().expect("fatal lock poisoned").clone();
    Ok(Measured {
        asked: w.jobs,
        submit: submit.sorted(),
        claim: claim.sorted(),
        renew: renew.sorted(),
        usage: usage.sorted(),
        complete: complete.sorted(),
        gap: gap.sorted(),
        empty_claims,
        usage_reported: sh.usage_reported.load(Ordering::Acquire),
        started,
        elapsed: ended.duration_since(started).as_secs_f64(),
        completed,
        completed_twice: completions.len() as u64 - completed_ids.len() as u64,
        completions_ms: completions
            .iter()
            .map(|(at, _)| micros(at.duration_since(started)) / 1_000)
            .collect(),
        ids,
        cpu: CpuUse::between(&cpu_before, &cpu_after),
        retries: sh.retries.load(Ordering::Relaxed),
        failovers: sh.failovers.load(Ordering::Relaxed),
        lost_claims: sh.lost_claims.load(Ordering::Relaxed),
        timed_out: fatal.is_none() && completed < w.jobs,
        fatal,
    })
}

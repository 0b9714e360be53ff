//! The workload: simulated factories (claim → renew → complete) and submitters driving one
//! coordinator, or the nodes of a cluster, over HTTP; what they measured; and the count the
//! store must agree with.
//!
//! Clients are spread over the nodes: factory `f` and submitter `s` start on node `f mod n` and
//! `s mod n`. A request that loses its node (a transport error) moves its client to the next
//! node, as the factory agent does, and is sent again there only when that is safe (see
//! [`Retry`]); every retry loop is bounded in attempts and by the phase's deadline.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use gigafactory_core::wire::{
    ClaimRequest, Complete, EnrollRequest, EnrollResponse, FencedWrite, Renew,
};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::procfs::{CpuSample, CpuUse, Watched};

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
pub(super) const REQUEST_TIMEOUT_SECS: u64 = 30;
/// Longest wait for one pre-load manifest: 5,000 jobs in one transaction plus their reads.
const MANIFEST_TIMEOUT_SECS: u64 = 300;
/// Attempts of one request refused for load (429) or, when it is safe, lost on the way.
const SEND_ATTEMPTS_MAX: u32 = 50;
/// Pause between two attempts.
const RETRY_PAUSE_MS: u64 = 20;
/// Pause between two index probes.
const PROBE_PAUSE_MS: u64 = 50;
/// Jobs per page of the final verification (the API's maximum).
const VERIFY_PAGE_JOBS: usize = 500;

/// What one run pushes through the coordinator.
#[derive(Clone)]
pub(super) struct Workload {
    pub jobs: u64,
    pub factories: u32,
    pub slots: u32,
    pub submitters: u32,
    pub renew: bool,
    /// Submits carry an idempotency key, so one whose answer was lost with its node can be sent
    /// again to another node without making a second job. It costs the submit one more read
    /// and write, so the runs compared with each other either all have it or none.
    pub keyed_submits: bool,
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
pub(super) struct Latencies(Vec<u64>);

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

    pub fn ms(&self, p: f64) -> Option<f64> {
        percentile(&self.0, p).map(|us| us as f64 / 1000.0)
    }

    pub fn row(&self, name: &str) -> String {
        let cell = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.2}"));
        format!(
            "    {name:<10} {:>9} {:>9} {:>9} {:>9}",
            cell(self.ms(0.50)),
            cell(self.ms(0.99)),
            cell(self.ms(1.0)),
            self.0.len()
        )
    }

    pub fn json(&self) -> serde_json::Value {
        json!({
            "count": self.0.len(),
            "p50_ms": self.ms(0.50),
            "p99_ms": self.ms(0.99),
            "max_ms": self.ms(1.0),
        })
    }
}

/// The node a client talks to: an index into the nodes, moved on by a transport error.
pub(super) struct Route {
    current: AtomicUsize,
}

impl Route {
    /// A route that starts on node `start mod nodes`.
    pub fn new(start: usize, nodes: usize) -> Route {
        Route {
            current: AtomicUsize::new(start % nodes.max(1)),
        }
    }

    fn node(&self, nodes: usize) -> usize {
        self.current.load(Ordering::Acquire) % nodes
    }

    /// Moves on to the node after `failed`; true if this call moved it. Concurrent failures on
    /// the same node (the slots of one factory share a route) move it once, not once each.
    fn fail_over(&self, failed: usize, nodes: usize) -> bool {
        nodes > 1
            && self
                .current
                .compare_exchange(
                    failed,
                    (failed + 1) % nodes,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }
}

/// How a request may be sent again.
#[derive(Clone, Copy, PartialEq)]
enum Retry {
    /// Only when refused for load (429), which certainly changed nothing: enrollments,
    /// manifests, and submits without an idempotency key, which a repeat after a 503 (the
    /// store's outcome may be unknown) or a lost answer could make twice.
    Refused,
    /// Also on a 503: claims. A claim that leases jobs always answers with them (a failed
    /// lease commit answers empty), so a 503 granted nothing. After a lost answer only when
    /// another node can take the repeat: the lost answer may have held a lease nobody runs,
    /// which the reaper requeues when it expires (counted as `lost_claims`).
    Unanswered,
    /// Also when the answer was lost: fenced writes, whose request id makes a repeat get the
    /// first answer, and keyed submits.
    Idempotent,
}

/// An answer, and whether an earlier attempt may have taken effect (its answer was lost).
struct Reply {
    body: Option<Vec<u8>>,
    after_loss: bool,
}

/// What every task of one run shares.
pub(super) struct Shared {
    http: reqwest::Client,
    /// Base URLs of the nodes.
    nodes: Vec<String>,
    admin: String,
    /// Makes this run's job keys unique, so one store can be benched twice.
    run_id: String,
    renew: bool,
    keyed_submits: bool,
    jobs: u64,
    deadline: Instant,
    next_job: AtomicU64,
    pub completed: AtomicU64,
    retries: AtomicU64,
    /// Clients moved to another node by a transport error.
    failovers: AtomicU64,
    /// Claims whose answer was lost on the way and which were sent again to another node.
    lost_claims: AtomicU64,
    stop: AtomicBool,
    /// The first error that stopped the run.
    fatal: Mutex<Option<String>>,
    watched: Watched,
    /// CPU counters taken by the task that completed the last job, so the CPU figures cover
    /// the same window as the throughput, not the claim long-polls that end the run.
    end_sample: Mutex<Option<CpuSample>>,
}

impl Shared {
    pub fn new(
        http: &reqwest::Client,
        nodes: Vec<String>,
        admin: &str,
        run_id: &str,
        w: &Workload,
        deadline: Instant,
        watched: Watched,
    ) -> Shared {
        assert!(!nodes.is_empty(), "a run needs a node");
        Shared {
            http: http.clone(),
            nodes,
            admin: admin.to_string(),
            run_id: run_id.to_string(),
            renew: w.renew,
            keyed_submits: w.keyed_submits,
            jobs: w.jobs,
            deadline,
            next_job: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
            lost_claims: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            fatal: Mutex::new(None),
            watched,
            end_sample: Mutex::new(None),
        }
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire) || Instant::now() >= self.deadline
    }

    fn fail(&self, why: String) {
        let mut fatal = self.fatal.lock().expect("fatal lock poisoned");
        fatal.get_or_insert(why);
        self.stop.store(true, Ordering::Release);
    }

    fn post(&self, base: &str, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{base}{path}")).bearer_auth(token)
    }

    /// Sends until answered, retrying as `retry` allows, at most `SEND_ATTEMPTS_MAX` times and
    /// not past the deadline; `build` gets the base URL of the node `route` points at. A body
    /// of `None` is a 204.
    async fn send(
        &self,
        what: &str,
        retry: Retry,
        route: &Route,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<Reply> {
        let mut attempts = 0;
        let mut after_loss = false;
        loop {
            attempts += 1;
            let node = route.node(self.nodes.len());
            let why = match build(&self.nodes[node]).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    if status == StatusCode::NO_CONTENT {
                        return Ok(Reply {
                            body: None,
                            after_loss,
                        });
                    }
                    match resp.bytes().await {
                        Ok(body) if status.is_success() => {
                            return Ok(Reply {
                                body: Some(body.to_vec()),
                                after_loss,
                            });
                        }
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
                        Err(e) => self.lost(what, retry, route, node, &e, &mut after_loss)?,
                    }
                }
                Err(e) => self.lost(what, retry, route, node, &e, &mut after_loss)?,
            };
            if attempts >= SEND_ATTEMPTS_MAX || Instant::now() >= self.deadline {
                bail!("{what}: gave up after {attempts} attempts: {why}");
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await;
        }
    }

    /// A request that got no answer from `node`: moves the route on and says why, when the
    /// request may be sent again; fails otherwise.
    fn lost(
        &self,
        what: &str,
        retry: Retry,
        route: &Route,
        node: usize,
        e: &reqwest::Error,
        after_loss: &mut bool,
    ) -> Result<String> {
        let again = match retry {
            Retry::Idempotent => true,
            Retry::Unanswered => self.nodes.len() > 1,
            Retry::Refused => false,
        };
        ensure!(again, "{what}: no answer ({e}); not retried");
        // A refused connection never reached the node; anything else may have taken effect.
        if !e.is_connect() {
            *after_loss = true;
            if retry == Retry::Unanswered {
                self.lost_claims.fetch_add(1, Ordering::Relaxed);
            }
        }
        if route.fail_over(node, self.nodes.len()) {
            self.failovers.fetch_add(1, Ordering::Relaxed);
        }
        Ok(e.to_string())
    }
}

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
    /// When each of its jobs completed, and which.
    completions: Vec<(Instant, Uuid)>,
}

/// What one submitter measured.
#[derive(Default)]
struct SubmitStats {
    submit: Latencies,
    ids: Vec<Uuid>,
}

/// One slot of a simulated factory: claim one job, renew it, complete it, again.
async fn claim_loop(sh: Arc<Shared>, token: Arc<str>, route: Arc<Route>) -> SlotStats {
    let mut st = SlotStats::default();
    let claim = ClaimRequest {
        max_jobs: 1,
        wait_ms: CLAIM_WAIT_MS,
    };
    // A loop checks for the end only before claiming, so a job it holds is always completed.
    while !sh.stopping() {
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
                    sh.fail(format!("{e:#}"));
                    break;
                }
            };
        st.claim.record(sent);
        for lease in claimed.jobs {
            if let Err(e) = run_job(&sh, &token, &route, &lease, &mut st).await {
                sh.fail(format!("job {}: {e:#}", lease.job_id));
                return st;
            }
        }
    }
    st
}

async fn run_job(
    sh: &Shared,
    token: &str,
    route: &Route,
    lease: &ClaimedLease,
    st: &mut SlotStats,
) -> Result<()> {
    let id = lease.job_id;
    if sh.renew {
        let write = FencedWrite {
            epoch: lease.epoch,
            request_id: Uuid::now_v7().to_string(),
            body: Renew {},
        };
        let sent = Instant::now();
        sh.send("renew", Retry::Idempotent, route, |base| {
            sh.post(base, &format!("/v1/jobs/{id}/renew"), token)
                .json(&write)
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
        .send("complete", Retry::Idempotent, route, |base| {
            sh.post(base, &format!("/v1/jobs/{id}/complete"), token)
                .json(&write)
        })
        .await?
        .body
        .context("complete: empty answer")?;
    st.complete.record(sent);
    let answer: LeaseState = parse("complete", &answer)?;
    ensure!(
        answer.state == "succeeded",
        "completed, but the job is {}",
        answer.state
    );
    st.completions.push((Instant::now(), id));
    if sh.completed.fetch_add(1, Ordering::AcqRel) + 1 == sh.jobs {
        let sample = CpuSample::take(&sh.watched);
        *sh.end_sample.lock().expect("sample lock poisoned") = Some(sample);
        sh.stop.store(true, Ordering::Release);
    }
    Ok(())
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
                sh.fail(format!("{e:#}"));
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
pub(super) struct Measured {
    /// Jobs the run was to push through.
    pub asked: u64,
    pub submit: Latencies,
    pub claim: Latencies,
    pub renew: Latencies,
    pub complete: Latencies,
    pub empty_claims: u64,
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
}

/// Enrolls the factories, then runs the submitters and claim loops until every job completed,
/// an error, or the deadline.
pub(super) async fn measure(sh: &Arc<Shared>, w: &Workload) -> Result<Measured> {
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
    for t in submitters {
        let st = t.await?;
        submit.merge(st.submit);
        ids.extend(st.ids);
    }
    let mut claim = Latencies::default();
    let mut renew = Latencies::default();
    let mut complete = Latencies::default();
    let mut empty_claims = 0;
    let mut completions = Vec::with_capacity(w.jobs as usize);
    for t in slots {
        let st = t.await?;
        claim.merge(st.claim);
        renew.merge(st.renew);
        complete.merge(st.complete);
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
        complete: complete.sorted(),
        empty_claims,
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

/// Loads `count` jobs no factory can take, in manifests of `MANIFEST_CHUNK_JOBS`, through the
/// first node. Returns the jobs loaded and the seconds it took.
pub(super) async fn preload(sh: &Arc<Shared>, count: u64, priority: u32) -> Result<(u64, f64)> {
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

/// Waits, until `deadline`, for the first node's scheduler index to hold at least `count` jobs
/// (the `gigafactory_queued_jobs` gauge of `/metrics`): manifests are acknowledged before the
/// scheduler has indexed their jobs, and measuring while it still does would charge that work
/// to the first claims. False if the gauge never got there.
pub(super) async fn wait_indexed(sh: &Shared, count: u64, deadline: Instant) -> bool {
    loop {
        let queued = async {
            let text = sh
                .http
                .get(format!("{}/metrics", sh.nodes[0]))
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

/// How many of `ids` the store holds as succeeded, asking the first node and listing
/// `product=bench` from just before the oldest id (ids are UUIDv7 and the list is in id order,
/// so a pre-load or an earlier run is skipped, not paged).
pub(super) async fn count_succeeded(
    sh: &Shared,
    ids: &HashSet<Uuid>,
    deadline: Instant,
) -> Result<u64> {
    let Some(oldest) = ids.iter().min() else {
        return Ok(0);
    };
    let route = Route::new(0, sh.nodes.len());
    let mut cursor = Uuid::from_u128(oldest.as_u128().saturating_sub(1)).to_string();
    let mut found = 0;
    loop {
        ensure!(
            Instant::now() < deadline,
            "verification: not finished in time ({found} found so far)"
        );
        let path = format!(
            "/v1/jobs?state=succeeded&product={BENCH_PRODUCT}&limit={VERIFY_PAGE_JOBS}&cursor={cursor}"
        );
        let body = sh
            .send("list jobs", Retry::Idempotent, &route, |base| {
                sh.http.get(format!("{base}{path}")).bearer_auth(&sh.admin)
            })
            .await?
            .body
            .unwrap_or_default();
        let page: Page = parse("list jobs", &body)?;
        found += page.jobs.iter().filter(|j| ids.contains(&j.id)).count() as u64;
        match page.next_cursor {
            Some(next) => cursor = next,
            None => return Ok(found),
        }
    }
}

/// The verdict on a run: the store must hold as succeeded every job the bench saw complete
/// (each once), and every job it submitted unless the run stopped early.
pub(super) fn check(m: &Measured, stored: &Result<u64>) -> (bool, String) {
    let stopped_early = m.timed_out || m.fatal.is_some();
    match stored {
        Ok(_) if m.completed_twice > 0 => (
            false,
            format!(
                "MISMATCH: {} jobs completed more than once",
                m.completed_twice
            ),
        ),
        Ok(n) if *n == m.completed && (stopped_early || *n == m.submitted()) => (
            true,
            format!("OK: the store holds {n} succeeded bench jobs"),
        ),
        Ok(n) => (
            false,
            format!(
                "MISMATCH: the store holds {n} succeeded of {} submitted, the bench counted {} \
                 completed",
                m.submitted(),
                m.completed
            ),
        ),
        Err(e) => (false, format!("FAILED: {e:#}")),
    }
}

/// Fails the command for a run that stopped early or does not add up, after its figures were
/// printed.
pub(super) fn verdict(m: &Measured, stored: Result<u64>, timeout_secs: u64) -> Result<()> {
    if let Some(why) = &m.fatal {
        bail!("the run stopped on an error: {why}");
    }
    ensure!(
        !m.timed_out,
        "timed out after {timeout_secs} s: {} of {} jobs completed",
        m.completed,
        m.asked
    );
    let stored = stored?;
    ensure!(
        m.completed_twice == 0 && stored == m.completed && stored == m.submitted(),
        "count mismatch: {} submitted, {} completed ({} more than once), {stored} succeeded in \
         the store",
        m.submitted(),
        m.completed,
        m.completed_twice
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
    fn a_route_fails_over_once_per_failed_node() {
        let r = Route::new(3, 3);
        assert_eq!(r.node(3), 0);
        assert!(r.fail_over(0, 3));
        // A second slot that also failed on node 0 must not skip node 1.
        assert!(!r.fail_over(0, 3));
        assert_eq!(r.node(3), 1);
        assert!(r.fail_over(1, 3));
        assert!(r.fail_over(2, 3));
        assert_eq!(r.node(3), 0);
        assert!(
            !Route::new(0, 1).fail_over(0, 1),
            "one node has nowhere to go"
        );
    }
}

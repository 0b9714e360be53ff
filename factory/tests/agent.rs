//! The factory agent end to end: the real agent, real job processes, and a small in-memory fake
//! coordinator (axum) that implements the factory routes, hands out prepared jobs and records
//! every request, so each test can check what the coordinator was told and in which order.
//! Unix only: the tests inspect process groups.

#![cfg(unix)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use gigafactory_core::job::{FactoryId, JobId};
use gigafactory_core::manifest::Payload;
use gigafactory_core::wire::{
    ClaimRequest, ClaimResponse, ClaimedJob, Complete, EndAnswer, EnrollRequest, EnrollResponse,
    ErrorBody, FactoryCommand, Fail, FencedWrite, HeartbeatRequest, HeartbeatResponse, LeaseAnswer,
    LogChunk, LogStream, Release, Renew, SecretFetch, Stage, UsageReport, UsageWrite,
};
use gigafactory_factory::{
    AgentConfig, AgentError, ArtifactSource, run, write_artifact_in, write_usage_in,
};
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const ENROLL_TOKEN: &str = "enroll-secret";
const FACTORY_TOKEN: &str = "factory-secret";
/// Every wait in these tests gives up after this long.
const DEADLINE: Duration = Duration::from_secs(20);
/// Poll period while waiting for the fake coordinator or the OS to reach a state.
const POLL: Duration = Duration::from_millis(20);

/// One request the fake coordinator received.
#[derive(Debug, Clone)]
enum Seen {
    Enroll {
        token: String,
        request: EnrollRequest,
    },
    Heartbeat {
        token: String,
        factory: String,
        request: HeartbeatRequest,
    },
    Claim {
        token: String,
        request: ClaimRequest,
    },
    Write {
        token: String,
        job_id: JobId,
        action: String,
        body: serde_json::Value,
        answered: u16,
    },
}

/// The fake coordinator's state.
struct Fake {
    factory_id: FactoryId,
    lease_ttl_ms: u64,
    seen: Mutex<Vec<Seen>>,
    queue: Mutex<VecDeque<ClaimedJob>>,
    /// Answer `409 fenced` to every write from now on.
    fence: AtomicBool,
    /// Answer `401` to heartbeats and claims.
    revoked: AtomicBool,
    /// Send this command (a preemption, a cancel) with every heartbeat.
    command: Mutex<Option<FactoryCommand>>,
    /// Once this many log chunks of a job were taken, answer its next ones `413
    /// log_limit_exceeded`, as the coordinator does past its per-job log limit.
    log_chunks_max: AtomicUsize,
    /// Answer the next this many usage reports `503`, as a node whose store is unavailable does.
    usage_unavailable: AtomicUsize,
}

impl Fake {
    fn new(lease_ttl_ms: u64, jobs: Vec<ClaimedJob>) -> Arc<Fake> {
        Arc::new(Fake {
            factory_id: FactoryId(uuid::Uuid::new_v4()),
            lease_ttl_ms,
            seen: Mutex::new(Vec::new()),
            queue: Mutex::new(jobs.into()),
            fence: AtomicBool::new(false),
            revoked: AtomicBool::new(false),
            command: Mutex::new(None),
            log_chunks_max: AtomicUsize::new(usize::MAX),
            usage_unavailable: AtomicUsize::new(0),
        })
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn record(&self, seen: Seen) {
        self.seen.lock().unwrap().push(seen);
    }

    /// The writes for `job_id`, in order: (action, body, status answered).
    fn writes(&self, job_id: JobId) -> Vec<(String, serde_json::Value, u16)> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Write {
                    job_id: j,
                    action,
                    body,
                    answered,
                    ..
                } if j == job_id => Some((action, body, answered)),
                _ => None,
            })
            .collect()
    }

    /// The output sent for `job_id`, in order.
    fn output(&self, job_id: JobId) -> String {
        self.writes(job_id)
            .into_iter()
            .filter(|(a, _, _)| a == "logs")
            .map(|(_, body, _)| {
                serde_json::from_value::<FencedWrite<LogChunk>>(body)
                    .unwrap()
                    .body
                    .data
            })
            .collect()
    }

    fn write_of<T: DeserializeOwned>(&self, job_id: JobId, action: &str) -> Option<FencedWrite<T>> {
        self.writes(job_id)
            .into_iter()
            .find(|(a, _, _)| a == action)
            .map(|(_, body, _)| serde_json::from_value(body).expect("a recorded write parses"))
    }
}

fn bearer(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned()
}

fn error(status: StatusCode, code: &str, current_epoch: Option<u64>) -> Response {
    let body = ErrorBody {
        error: code.into(),
        message: code.into(),
        current_epoch,
        details: Vec::new(),
    };
    (status, Json(body)).into_response()
}

async fn enroll(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    Json(request): Json<EnrollRequest>,
) -> Response {
    let token = bearer(&headers);
    fake.record(Seen::Enroll {
        token: token.clone(),
        request,
    });
    if token != ENROLL_TOKEN {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", None);
    }
    Json(EnrollResponse {
        factory_id: fake.factory_id,
        token: FACTORY_TOKEN.into(),
    })
    .into_response()
}

async fn heartbeat(
    State(fake): State<Arc<Fake>>,
    UrlPath(factory): UrlPath<String>,
    headers: HeaderMap,
    Json(request): Json<HeartbeatRequest>,
) -> Response {
    let token = bearer(&headers);
    fake.record(Seen::Heartbeat {
        token: token.clone(),
        factory,
        request,
    });
    if token != FACTORY_TOKEN || fake.revoked.load(Ordering::SeqCst) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", None);
    }
    let commands = fake.command.lock().unwrap().iter().cloned().collect();
    Json(HeartbeatResponse {
        commands,
        lease_ttl_ms: fake.lease_ttl_ms,
    })
    .into_response()
}

async fn claim(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    Json(request): Json<ClaimRequest>,
) -> Response {
    let token = bearer(&headers);
    fake.record(Seen::Claim {
        token: token.clone(),
        request: request.clone(),
    });
    if token != FACTORY_TOKEN || fake.revoked.load(Ordering::SeqCst) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", None);
    }
    let job = fake.queue.lock().unwrap().pop_front();
    match job {
        Some(job) => Json(ClaimResponse { jobs: vec![job] }).into_response(),
        None => {
            // The long-poll, shortened: nothing more will come.
            tokio::time::sleep(Duration::from_millis(request.wait_ms.min(100))).await;
            StatusCode::NO_CONTENT.into_response()
        }
    }
}

async fn job_write(
    State(fake): State<Arc<Fake>>,
    UrlPath((job_id, action)): UrlPath<(JobId, String)>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> Response {
    // A job's secrets: this coordinator keeps none.
    if action == "secrets" {
        return match serde_json::from_value::<SecretFetch>(body) {
            Ok(_) => Json(serde_json::json!({ "secrets": [] })).into_response(),
            Err(_) => error(StatusCode::BAD_REQUEST, "bad_request", None),
        };
    }
    // Each body must have the shape the real coordinator will parse.
    let epoch = match action.as_str() {
        "renew" => parse::<Renew>(&body).map(|w| w.epoch),
        "stage" => parse::<Stage>(&body).map(|w| w.epoch),
        "logs" => parse::<LogChunk>(&body).map(|w| w.epoch),
        "complete" => parse::<Complete>(&body).map(|w| w.epoch),
        "fail" => parse::<Fail>(&body).map(|w| w.epoch),
        "release" => parse::<Release>(&body).map(|w| w.epoch),
        "usage" => parse::<UsageReport>(&body).map(|w| w.epoch),
        _ => None,
    };
    let unavailable = action == "usage"
        && fake
            .usage_unavailable
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    if unavailable {
        fake.record(Seen::Write {
            token: bearer(&headers),
            job_id,
            action,
            body,
            answered: 503,
        });
        return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", None);
    }
    // The fake's price table knows one model, as a coordinator's `[prices]` might; an end is
    // refused whole for a report it carries that cannot be priced.
    let priced = |report: &serde_json::Value| {
        !report["cost_micros"].is_null() || report["model"] == "sonnet"
    };
    let carried = body["usage"].as_array().cloned().unwrap_or_default();
    let model = match action.as_str() {
        "usage" => Some(&body),
        _ => carried.iter().find(|r| !priced(r)),
    }
    .map(|r| r["model"].clone());
    let unpriced = (action == "usage" && !priced(&body)) || (action != "usage" && model.is_some());
    let model = model.unwrap_or_default();
    let fenced = fake.fence.load(Ordering::SeqCst);
    let wanted = body["claim_next"]["max_jobs"].as_u64().unwrap_or(0) as usize;
    let over_log_limit = action == "logs"
        && fake
            .writes(job_id)
            .iter()
            .filter(|(a, _, status)| a == "logs" && *status == 200)
            .count()
            >= fake.log_chunks_max.load(Ordering::SeqCst);
    let answered = match (epoch, fenced) {
        (None, _) => 400,
        (Some(_), true) => 409,
        (Some(_), false) if over_log_limit => 413,
        (Some(_), false) if unpriced => 400,
        (Some(_), false) => 200,
    };
    fake.record(Seen::Write {
        token: bearer(&headers),
        job_id,
        action,
        body,
        answered,
    });
    match (epoch, fenced) {
        (None, _) => error(StatusCode::BAD_REQUEST, "bad_request", None),
        (Some(epoch), true) => error(StatusCode::CONFLICT, "fenced", Some(epoch + 1)),
        (Some(_), false) if over_log_limit => {
            error(StatusCode::PAYLOAD_TOO_LARGE, "log_limit_exceeded", None)
        }
        (Some(_), false) if unpriced => {
            let body = ErrorBody {
                error: "invalid_request".into(),
                message: format!("no price for model {model}: report the cost"),
                current_epoch: None,
                details: Vec::new(),
            };
            (StatusCode::BAD_REQUEST, Json(body)).into_response()
        }
        (Some(epoch), false) => {
            // An end asking for the next jobs gets them from the queue, as a claim would.
            let mut queue = fake.queue.lock().unwrap();
            let take = wanted.min(queue.len());
            let next = queue.drain(..take).collect();
            let lease = LeaseAnswer {
                job_id,
                epoch,
                state: "running".into(),
                expires_at: Some(0),
                preempt_deadline: None,
            };
            Json(EndAnswer { lease, next }).into_response()
        }
    }
}

fn parse<T: DeserializeOwned>(body: &serde_json::Value) -> Option<FencedWrite<T>> {
    let write: FencedWrite<T> = serde_json::from_value(body.clone()).ok()?;
    uuid::Uuid::parse_str(&write.request_id).ok()?;
    Some(write)
}

/// `PUT /v1/jobs/{id}/artifacts/{name}`: recorded as the write `artifact` with its query and
/// its bytes (as text); fenced like any write.
async fn artifact_put(
    State(fake): State<Arc<Fake>>,
    UrlPath((job_id, name)): UrlPath<(JobId, String)>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Response {
    let epoch: u64 = query["epoch"].parse().unwrap();
    let fenced = fake.fence.load(Ordering::SeqCst);
    let body = serde_json::json!({
        "name": name, "epoch": epoch, "request_id": query["request_id"], "kind": query["kind"],
        "sha256": query["sha256"], "length": headers["content-length"].to_str().unwrap(),
        "data": String::from_utf8_lossy(&bytes),
    });
    fake.record(Seen::Write {
        token: bearer(&headers),
        job_id,
        action: "artifact".into(),
        body,
        answered: if fenced { 409 } else { 200 },
    });
    if fenced {
        return error(StatusCode::CONFLICT, "fenced", Some(epoch + 1));
    }
    Json(LeaseAnswer {
        job_id,
        epoch,
        state: "running".into(),
        expires_at: Some(0),
        preempt_deadline: None,
    })
    .into_response()
}

/// Serves `fake` on a loopback port; returns its base URL.
async fn serve(fake: Arc<Fake>) -> String {
    let app = Router::new()
        .route("/v1/factories/enroll", post(enroll))
        .route("/v1/factories/{id}/heartbeat", post(heartbeat))
        .route("/v1/claims", post(claim))
        .route("/v1/jobs/{id}/{action}", post(job_write))
        .route("/v1/jobs/{id}/artifacts/{name}", put(artifact_put))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn claimed(command: &str, epoch: u64, wall_clock_ms: Option<u64>) -> ClaimedJob {
    ClaimedJob {
        job_id: JobId(uuid::Uuid::new_v4()),
        epoch,
        attempt: 1,
        expires_at: 0,
        lease_ttl_ms: 600,
        title: "test job".into(),
        payload: Payload::Command(command.into()),
        allowed_scope: Vec::new(),
        artifacts: Vec::new(),
        wall_clock_ms,
        checkpoint: None,
        affinity: None,
        review_feedback: None,
        sandbox: Default::default(),
        repo: None,
    }
}

fn config(url: &str, workdir: &Path) -> AgentConfig {
    let mut config = AgentConfig::new(vec![url.to_owned()], ENROLL_TOKEN, workdir);
    config.name = Some("test-factory".into());
    config.slots = 2;
    config.capabilities = vec!["rust".into()];
    config.heartbeat_interval = Duration::from_millis(100);
    config.claim_wait = Duration::from_millis(200);
    config.stage_poll_interval = Duration::from_millis(50);
    config.grace = Duration::from_millis(500);
    config.shutdown_report_timeout = Duration::from_secs(2);
    // These jobs write beside their workspace for the test to see; a sandbox would hide it.
    config.sandbox = gigafactory_factory::SandboxMode::Off;
    config
}

/// A running agent and the way to stop it.
struct Agent {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), AgentError>>,
}

impl Agent {
    fn start(config: AgentConfig) -> Agent {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(config, async move {
            let _ = stopped.await;
        }));
        Agent {
            stop: Some(stop),
            task,
        }
    }

    /// Asks the agent to shut down and returns how `run` ended.
    async fn shutdown(mut self) -> Result<(), AgentError> {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("the agent stops in time")
            .unwrap()
    }
}

/// Polls `check` until it gives a value; panics after [`DEADLINE`].
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Waits for a heartbeat, sent after this call, that lists no job: the agent is then done with
/// the jobs it held, and has sent whatever it would still send about them.
async fn done_with_its_jobs(fake: &Fake) {
    let from = fake.seen().len();
    eventually("a heartbeat without a job", || {
        fake.seen()[from..]
            .iter()
            .any(|s| matches!(s, Seen::Heartbeat { request, .. } if request.running.is_empty()))
            .then_some(())
    })
    .await;
}

fn control_dir(workdir: &Path, job: &ClaimedJob) -> PathBuf {
    workdir
        .join("jobs")
        .join(job.job_id.to_string())
        .join(job.attempt.to_string())
        .join("control")
}

fn marker_path(workdir: &Path, job: &ClaimedJob) -> PathBuf {
    control_dir(workdir, job).join("running.json")
}

/// The job's process group, once its running marker names it.
async fn running_pgid(workdir: &Path, job: &ClaimedJob) -> i32 {
    let marker = marker_path(workdir, job);
    eventually("the running marker", || {
        let value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&marker).ok()?).ok()?;
        value["pgid"].as_i64().map(|p| p as i32)
    })
    .await
}

/// Waits until a fenced job's process group died and the agent is done with it; checks that
/// nothing about the job was sent after the first `409` and that its end was never reported,
/// and returns the action of the write that met the fence.
async fn fenced_and_silent(fake: &Fake, job_id: JobId, pgid: i32) -> String {
    eventually("the job's process group to die", || {
        (!group_alive(pgid)).then_some(())
    })
    .await;
    done_with_its_jobs(fake).await;
    let writes = fake.writes(job_id);
    let first_409 = writes
        .iter()
        .position(|(_, _, s)| *s == 409)
        .expect("a write was fenced");
    assert_eq!(
        writes.len(),
        first_409 + 1,
        "nothing after the fenced answer: {writes:?}"
    );
    assert!(
        !writes
            .iter()
            .any(|(a, _, _)| ["complete", "fail", "release"].contains(&a.as_str()))
    );
    writes[first_409].0.clone()
}

/// A job that, once started, waits until the test lets it end ([`WaitingJob::complete`]): it
/// makes a FIFO in its control directory and blocks reading it.
const WAITS_FOR_THE_TEST: &str =
    r#"mkfifo "$GF_CONTROL_DIR/go" && read line < "$GF_CONTROL_DIR/go""#;

/// The usage reports sent for `job_id`, in order, with the status each was answered.
fn usage_writes(fake: &Fake, job_id: JobId) -> Vec<(FencedWrite<UsageReport>, u16)> {
    fake.writes(job_id)
        .into_iter()
        .filter(|(a, _, _)| a == "usage")
        .map(|(_, body, status)| (serde_json::from_value(body).unwrap(), status))
        .collect()
}

/// The artifact uploads for `job_id`, in order, with the status each was answered.
fn artifact_writes(fake: &Fake, job_id: JobId) -> Vec<(serde_json::Value, u16)> {
    fake.writes(job_id)
        .into_iter()
        .filter(|(a, _, _)| a == "artifact")
        .map(|(_, body, status)| (body, status))
        .collect()
}

fn usage(model: &str, input_tokens: u64, output_tokens: u64, cost: Option<u64>) -> UsageReport {
    UsageReport {
        model: model.into(),
        input_tokens,
        output_tokens,
        cost_micros: cost,
    }
}

/// Where in the writes for `job_id` the first `action` is.
fn position_of(fake: &Fake, job_id: JobId, action: &str) -> Option<usize> {
    fake.writes(job_id).iter().position(|(a, _, _)| a == action)
}

/// The control directory of attempt `attempt` of `job_id`, made as an agent would.
fn orphans_control_dir(workdir: &Path, job_id: JobId, attempt: u32) -> PathBuf {
    let control = workdir
        .join("jobs")
        .join(job_id.to_string())
        .join(attempt.to_string())
        .join("control");
    std::fs::create_dir_all(&control).unwrap();
    control
}

/// Leaves the running marker an agent that crashed while the job ran would leave.
fn left_running(control: &Path, job_id: JobId, epoch: u64, attempt: u32, pgid: i32) {
    let marker = serde_json::json!({
        "job_id": job_id, "epoch": epoch, "attempt": attempt, "pid": pgid, "pgid": pgid,
        "started_at_ms": 0
    });
    std::fs::write(control.join("running.json"), marker.to_string()).unwrap();
}

fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only probes for the group's existence.
    unsafe { libc::kill(-pgid, 0) == 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_output_in_order_and_reports_a_failing_exit_with_its_epoch() {
    let job = claimed("echo hello && echo oops 1>&2 && exit 3", 7, None);
    let fake = Fake::new(15_000, vec![job.clone()]);
    let url = serve(fake.clone()).await;
    let workdir = tempfile::tempdir().unwrap();
    let agent = Agent::start(config(&url, workdir.path()));

    let fail: FencedWrite<Fail> =
        eventually("the fail report", || fake.write_of(job.job_id, "fail")).await;
    assert_eq!(fail.epoch, 7);
    assert_eq!(fail.body.exit_code, Some(3));
    assert_eq!(fail.body.error, "exit status 3");
    assert!(fail.body.retryable);
    assert!(fail.body.changed_paths.is_empty());

    let seen = fake.seen();
    let enroll = seen.iter().find_map(|s| match s {
        Seen::Enroll { token, request } => Some((token, request)),
        _ => None,
    });
    let (token, request) = enroll.expect("the agent enrolled");
    assert_eq!(token, ENROLL_TOKEN);
    assert_eq!((request.name.as_str(), request.slots), ("test-factory", 2));
    assert_eq!(request.capabilities, ["rust"]);
    let heartbeat = seen.iter().find_map(|s| match s {
        Seen::Heartbeat { token, factory, .. } => Some((token, factory)),
        _ => None,
    });
    let (token, factory) = heartbeat.expect("the agent heartbeats");
    assert_eq!(
        (token.as_str(), factory.as_str()),
        (FACTORY_TOKEN, fake.factory_id.to_string().as_str())
    );
    let claim = seen.iter().find_map(|s| match s {
        Seen::Claim { token, request } => Some((token, request)),
        _ => None,
    });
    let (token, request) = claim.expect("the agent claims");
    assert_eq!(token, FACTORY_TOKEN);
    assert_eq!((request.max_jobs, request.wait_ms), (2, 200));

    let writes = fake.writes(job.job_id);
    for s in &seen {
        if let Seen::Write { token, .. } = s {
            assert_eq!(
                token, FACTORY_TOKEN,
                "writes use the factory token, never the enrollment one"
            );
        }
    }
    assert!(
        writes.iter().all(|(_, body, _)| body["epoch"] == 7),
        "every write carries the lease's epoch"
    );
    let fail_at = writes.iter().position(|(a, _, _)| a == "fail").unwrap();
    let chunks: Vec<LogChunk> = writes
        .iter()
        .filter(|(a, _, _)| a == "logs")
        .map(|(_, body, _)| {
            serde_json::from_value::<FencedWrite<LogChunk>>(body.clone())
                .unwrap()
                .body
        })
        .collect();
    assert!(
        writes.iter().rposition(|(a, _, _)| a == "logs").unwrap() < fail_at,
        "output goes before the end"
    );
    let seqs: Vec<u64> = chunks.iter().map(|c| c.seq).collect();
    assert_eq!(
        seqs,
        (0..chunks.len() as u64).collect::<Vec<_>>(),
        "sequence numbers count from 0"
    );
    let hello = chunks
        .iter()
        .position(|c| c.data.contains("hello"))
        .expect("stdout was sent");
    let oops = chunks
        .iter()
        .position(|c| c.data.contains("oops"))
        .expect("stderr was sent");
    assert!(
        hello < oops,
        "output in the order it was written: {chunks:?}"
    );
    assert_eq!(chunks[hello].stream, LogStream::Stdout);
    assert_eq!(chunks[oops].stream, LogStream::Stderr);

    let identity = workdir.path().join(".gigafactory/identity.json");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&identity)
            .expect("the identity is stored")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    eventually("the running marker to go", || {
        (!marker_path(workdir.path(), &job).exists()).then_some(())
    })
    .await;
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_renew_kills_the_job_group_and_nothing_more_is_reported() {
    let job = claimed("sleep 30", 3, None);
    // Renewals every 100 ms.
    let fake = Fake::new(300, vec![job.clone()]);
    let url = serve(fake.clone()).await;
    let workdir = tempfile::tempdir().unwrap();
    let agent = Agent::start(config(&url, workdir.path()));

    let marker = marker_path(workdir.path(), &job);
    let pgid = running_pgid(workdir.path(), &job).await;
    assert!(pgid > 1);
    assert!(group_alive(pgid), "the job runs");
    eventually("a first renewal", || {
        fake.writes(job.job_id)
            .iter()
            .any(|(a, _, s)| a == "renew" && *s == 200)
            .then_some(())
    })
    .await;

    fake.fence.store(true, Ordering::SeqCst);
    assert_eq!(fenced_and_silent(&fake, job.job_id, pgid).await, "renew");
    assert!(!marker.exists(), "a fenced job needs no orphan report");
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_over_its_wall_clock_budget_fails_for_good() {
    let job = claimed("sleep 30", 5, Some(300));
    let fake = Fake::new(15_000, vec![job.clone()]);
    let url = serve(fake.clone()).await;
    let workdir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let agent = Agent::start(config(&url, workdir.path()));

    let fail: FencedWrite<Fail> =
        eventually("the fail report", || fake.write_of(job.job_id, "fail")).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped long before the job would have ended"
    );
    assert_eq!(fail.epoch, 5);
    assert_eq!(fail.body.error, "wall-clock budget exceeded");
    assert!(!fail.body.retryable);
    assert!(fake.write_of::<Complete>(job.job_id, "complete").is_none());
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_stages_and_releases_a_preempted_job_with_its_checkpoint() {
    let script = r#"printf planning > "$GF_CONTROL_DIR/stage"
trap 'printf ref-42 > "$GF_CONTROL_DIR/checkpoint"; exit 0' TERM
sleep 30 &
wait"#;
    let job = claimed(script, 9, None);
    let fake = Fake::new(15_000, vec![job.clone()]);
    let url = serve(fake.clone()).await;
    let workdir = tempfile::tempdir().unwrap();
    let agent = Agent::start(config(&url, workdir.path()));

    let stage: FencedWrite<Stage> =
        eventually("the stage", || fake.write_of(job.job_id, "stage")).await;
    assert_eq!((stage.epoch, stage.body.stage.as_str()), (9, "planning"));
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 10_000;
    *fake.command.lock().unwrap() = Some(FactoryCommand::Preempt {
        job_id: job.job_id,
        epoch: 9,
        deadline,
    });

    let release: FencedWrite<Release> =
        eventually("the release", || fake.write_of(job.job_id, "release")).await;
    assert_eq!(release.epoch, 9);
    assert_eq!(release.body.checkpoint.as_deref(), Some("ref-42"));
    assert!(fake.write_of::<Fail>(job.job_id, "fail").is_none());
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuses_its_identity_after_a_restart() {
    let fake = Fake::new(15_000, Vec::new());
    let url = serve(fake.clone()).await;
    let workdir = tempfile::tempdir().unwrap();
    let heartbeats = |fake: &Fake| {
        fake.seen()
            .iter()
            .filter(|s| matches!(s, Seen::Heartbeat { .. }))
            .count()
    };

    let agent = Agent::start(config(&url, workdir.path()));
    eventually("a heartbeat", || (heartbeats(&fake) > 0).then_some(())).await;
    agent.shutdown().await.unwrap();
    let before = heartbeats(&fake);

    let agent = Agent::start(config(&url, workdir.path()));
    eventually("a heartbeat after the restart", || {
        (heartbeats(&fake) > before).then_some(())
    })
    .await;
    agent.shutdown().await.unwrap();
    let enrolls = fake
        .seen()
        .iter()
        .filter(|s| matches!(s, Seen::Enroll { .. }))
        .count();
    assert_eq!(enrolls, 1, "enrolled once, then reused the stored identity");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_with_a_clear_error_when_its_token_is_revoked() {
    let fake = Fake::new(15_000, Vec::new());
    fake.revoked.store(true, Ordering::SeqCst);
    let url = serve(fake.clone()).await;
    let workdir = tempfile::tempdir().unwrap();
    let agent = Agent::start(config(&url, workdir.path()));
    let ended = tokio::time::timeout(DEADLINE, agent.task)
        .await
        .expect("the agent stops by itself")
        .unwrap();
    let err = ended.unwrap_err();
    assert!(matches!(err, AgentError::Revoked { .. }), "{err}");
    assert!(
        err.to_string().contains("identity.json"),
        "says what to do: {err}"
    );
    let enrolls = fake
        .seen()
        .iter()
        .filter(|s| matches!(s, Seen::Enroll { .. }))
        .count();
    assert_eq!(enrolls, 1, "no silent re-enrollment");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_and_reports_a_job_orphaned_by_a_crash() {
    let fake = Fake::new(15_000, Vec::new());
    let url = serve(fake.clone()).await;
    let workdir = tempfile::tempdir().unwrap();
    // What a crashed agent leaves behind: a job process in its own group, and its marker.
    let job_id = JobId(uuid::Uuid::new_v4());
    let mut orphan = {
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("30").env("GF_JOB_ID", job_id.to_string());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        tokio::process::Command::from(cmd).spawn().unwrap()
    };
    let pgid = orphan.id().unwrap() as i32;
    let control = orphans_control_dir(workdir.path(), job_id, 2);
    left_running(&control, job_id, 11, 2, pgid);

    let agent = Agent::start(config(&url, workdir.path()));
    let fail: FencedWrite<Fail> =
        eventually("the orphan report", || fake.write_of(job_id, "fail")).await;
    assert_eq!(fail.epoch, 11);
    assert_eq!(fail.body.error, "orphaned by a factory restart");
    assert!(fail.body.retryable);
    let status = tokio::time::timeout(DEADLINE, orphan.wait())
        .await
        .expect("the orphan is killed")
        .unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    eventually("the marker to go", || {
        (!control.join("running.json").exists()).then_some(())
    })
    .await;
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_prompts_through_the_agent_command_and_refuses_a_missing_one() {
    let mut echoed = claimed("", 1, None);
    echoed.payload = Payload::Prompt("write the tests".into());
    let fake = Fake::new(15_000, vec![echoed.clone()]);
    let url = serve(fake.clone()).await;
    let workdir = tempfile::tempdir().unwrap();
    let mut cfg = config(&url, workdir.path());
    // `cat` stands in for the agent: it prints the prompt it reads on stdin.
    cfg.agent_command = Some("cat".into());
    let agent = Agent::start(cfg);
    let complete: FencedWrite<Complete> = eventually("the prompt job to complete", || {
        fake.write_of(echoed.job_id, "complete")
    })
    .await;
    assert_eq!(complete.epoch, 1);
    assert_eq!(fake.output(echoed.job_id), "write the tests");
    agent.shutdown().await.unwrap();

    let mut missing = claimed("", 2, None);
    missing.payload = Payload::Prompt("anything".into());
    fake.queue.lock().unwrap().push_back(missing.clone());
    let mut cfg = config(&url, workdir.path());
    cfg.agent_command = Some("gigafactory-test-no-such-agent -p".into());
    let agent = Agent::start(cfg);
    let fail: FencedWrite<Fail> = eventually("the missing agent's fail", || {
        fake.write_of(missing.job_id, "fail")
    })
    .await;
    assert!(
        !fail.body.retryable,
        "another attempt here would fail the same way"
    );
    assert!(
        fail.body.error.contains("gigafactory-test-no-such-agent"),
        "{}",
        fail.body.error
    );
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_to_the_next_coordinator_when_one_is_down() {
    let job = claimed("exit 0", 4, None);
    let fake = Fake::new(15_000, vec![job.clone()]);
    let url = serve(fake.clone()).await;
    // A port nobody listens on: connections are refused at once.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let workdir = tempfile::tempdir().unwrap();
    let mut cfg = config(&url, workdir.path());
    cfg.coordinators = vec![dead, url.clone()];
    let agent = Agent::start(cfg);
    let complete: FencedWrite<Complete> = eventually("the job to complete", || {
        fake.write_of(job.job_id, "complete")
    })
    .await;
    assert_eq!(complete.epoch, 4);
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_is_stopped_and_not_reported() {
    // A job that ignores SIGTERM: only the SIGKILL after the grace period ends it.
    let job = claimed("trap '' TERM; sleep 30 & wait; wait", 6, None);
    let fake = Fake::new(15_000, vec![job.clone()]);
    let url = serve(fake.clone()).await;
    let workdir = tempfile::tempdir().unwrap();
    let agent = Agent::start(config(&url, workdir.path()));
    let pgid = running_pgid(workdir.path(), &job).await;

    *fake.command.lock().unwrap() = Some(FactoryCommand::Cancel {
        job_id: job.job_id,
        epoch: 6,
    });
    eventually("the job's process group to die", || {
        (!group_alive(pgid)).then_some(())
    })
    .await;
    done_with_its_jobs(&fake).await;
    let writes = fake.writes(job.job_id);
    assert!(
        !writes
            .iter()
            .any(|(a, _, _)| ["complete", "fail", "release"].contains(&a.as_str())),
        "a cancelled job is not reported: {writes:?}"
    );
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_past_the_log_limit_is_dropped_and_the_job_still_completes() {
    // 200,000 bytes without a line break: a dozen chunks of at most 16 KiB, then more output.
    let job = claimed(
        "head -c 200000 /dev/zero | tr '\\000' x; echo; echo after the limit",
        8,
        None,
    );
    let fake = Fake::new(15_000, vec![job.clone()]);
    fake.log_chunks_max.store(2, Ordering::SeqCst);
    let url = serve(fake.clone()).await;
    let workdir = tempfile::tempdir().unwrap();
    let agent = Agent::start(config(&url, workdir.path()));

    let complete: FencedWrite<Complete> = eventually("the job to complete", || {
        fake.write_of(job.job_id, "complete")
    })
    .await;
    assert_eq!(complete.epoch, 8);
    done_with_its_jobs(&fake).await;
    let log_answers: Vec<u16> = fake
        .writes(job.job_id)
        .iter()
        .filter(|(a, _, _)| a == "logs")
        .map(|(_, _, status)| *status)
        .collect();
    assert_eq!(
        log_answers,
        [200, 200, 413],
        "the refused chunk is not sent again, and no later one is sent"
    );
    agent.shutdown().await.unwrap();
}

/// An agent running one [`WAITS_FOR_THE_TEST`] job, once the job waits for the test.
struct WaitingJob {
    fake: Arc<Fake>,
    agent: Agent,
    job: ClaimedJob,
    workdir: tempfile::TempDir,
    control: PathBuf,
}

impl WaitingJob {
    /// The job is leased at `epoch` by a fake with `lease_ttl_ms`; `adjust` tunes the fake and
    /// the agent's configuration before the agent starts.
    async fn start(
        epoch: u64,
        lease_ttl_ms: u64,
        adjust: impl FnOnce(&Fake, &mut AgentConfig),
    ) -> WaitingJob {
        let job = claimed(WAITS_FOR_THE_TEST, epoch, None);
        let fake = Fake::new(lease_ttl_ms, vec![job.clone()]);
        let url = serve(fake.clone()).await;
        let workdir = tempfile::tempdir().unwrap();
        let mut cfg = config(&url, workdir.path());
        adjust(&fake, &mut cfg);
        let agent = Agent::start(cfg);
        let control = control_dir(workdir.path(), &job);
        eventually("the job to wait for the test", || {
            control.join("go").exists().then_some(())
        })
        .await;
        WaitingJob {
            fake,
            agent,
            job,
            workdir,
            control,
        }
    }

    fn report(&self, report: &UsageReport) -> String {
        write_usage_in(&self.control, report).unwrap()
    }

    fn usage_writes(&self) -> Vec<(FencedWrite<UsageReport>, u16)> {
        usage_writes(&self.fake, self.job.job_id)
    }

    /// Lets the job end, with exit status 0, and waits until its completion is reported.
    async fn complete(&self) {
        let fifo = self.control.join("go");
        // Opening a FIFO for writing blocks until its reader has it open: off the runtime.
        let written = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            std::fs::OpenOptions::new()
                .write(true)
                .open(&fifo)?
                .write_all(b"go\n")
        });
        tokio::time::timeout(DEADLINE, written)
            .await
            .expect("the job reads its FIFO in time")
            .unwrap()
            .unwrap();
        eventually("the job to complete", || {
            self.fake.write_of::<Complete>(self.job.job_id, "complete")
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usage_report_reaches_the_coordinator_with_the_leases_epoch_and_its_id() {
    let journal_dir = tempfile::tempdir().unwrap();
    let journal = journal_dir.path().join("journal.jsonl");
    let t = WaitingJob::start(12, 15_000, |_, cfg| cfg.journal = Some(journal.clone())).await;
    let report = usage("sonnet", 1_200, 300, Some(4_200));
    let id = t.report(&report);
    let (sent, status) =
        eventually("the usage report", || t.usage_writes().into_iter().next()).await;
    assert_eq!(status, 200);
    assert_eq!((sent.epoch, sent.request_id.as_str()), (12, id.as_str()));
    assert_eq!(sent.body, report);

    t.complete().await;
    assert_eq!(t.usage_writes().len(), 1, "sent once");
    let left = std::fs::read_dir(t.control.join("usage")).unwrap().count();
    assert_eq!(left, 0, "a report the coordinator took is forgotten");
    let text = std::fs::read_to_string(&journal).unwrap();
    let journaled = text
        .lines()
        .filter_map(|l| serde_json::from_str::<gigafactory_core::journal::Exchange>(l).ok())
        .find(|e| e.write.as_ref().is_some_and(|w| w.action == "usage"))
        .expect("the usage write is in the journal");
    assert!(journaled.accepted());
    let tag = journaled.write.unwrap();
    assert_eq!((tag.epoch, tag.request_id), (12, id));
    t.agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usage_report_answered_503_is_sent_again_under_the_same_request_id() {
    let t = WaitingJob::start(13, 15_000, |fake, _| {
        fake.usage_unavailable.store(2, Ordering::SeqCst)
    })
    .await;
    let id = t.report(&usage("sonnet", 10, 20, None));
    let sends = eventually("the report to be taken", || {
        let sends = t.usage_writes();
        sends
            .iter()
            .any(|(_, status)| *status == 200)
            .then_some(sends)
    })
    .await;
    let answers: Vec<u16> = sends.iter().map(|(_, status)| *status).collect();
    assert_eq!(answers, [503, 503, 200]);
    assert!(
        sends
            .iter()
            .all(|(w, _)| w.request_id == id && w.epoch == 13),
        "every send is the same request: {sends:?}"
    );
    t.complete().await;
    assert_eq!(t.usage_writes().len(), 3, "taken once");
    t.agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_reports_left_at_the_jobs_end_ride_on_its_complete_in_the_order_written() {
    let journal_dir = tempfile::tempdir().unwrap();
    let journal = journal_dir.path().join("journal.jsonl");
    let t = WaitingJob::start(15, 15_000, |_, cfg| {
        // No look at the usage directory while the job runs: every report is left at its end.
        cfg.stage_poll_interval = Duration::from_secs(3_600);
        cfg.journal = Some(journal.clone());
    })
    .await;
    let models = ["opus", "sonnet", "haiku"];
    let ids: Vec<String> = models
        .iter()
        .map(|model| t.report(&usage(model, 1, 1, Some(10))))
        .collect();
    t.complete().await;
    assert_eq!(t.usage_writes().len(), 0, "no report went alone");
    let end: FencedWrite<Complete> = t.fake.write_of(t.job.job_id, "complete").unwrap();
    let carried: Vec<(String, String)> = end
        .body
        .usage
        .into_iter()
        .map(|u| (u.request_id, u.report.model))
        .collect();
    let expected: Vec<(String, String)> =
        ids.iter().cloned().zip(models.map(String::from)).collect();
    assert_eq!(
        carried, expected,
        "carried under their own ids, in the order written"
    );
    assert_eq!(end.epoch, 15);
    eventually("the carried reports' files to go", || {
        let left = std::fs::read_dir(t.control.join("usage")).ok()?.count();
        (left == 0).then_some(())
    })
    .await;
    let text = std::fs::read_to_string(&journal).unwrap();
    let tag = text
        .lines()
        .filter_map(|l| serde_json::from_str::<gigafactory_core::journal::Exchange>(l).ok())
        .find_map(|e| e.write.filter(|w| w.action == "complete"))
        .expect("the complete is in the journal");
    assert_eq!(
        tag.usage, ids,
        "the journal names the reports the complete carried"
    );
    t.agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_refused_for_a_report_it_carries_sends_the_reports_alone_then_itself_without() {
    let t = WaitingJob::start(17, 15_000, |_, cfg| {
        cfg.stage_poll_interval = Duration::from_secs(3_600);
    })
    .await;
    let mystery = t.report(&usage("mystery", 10, 10, None));
    let priced = t.report(&usage("sonnet", 10, 10, None));
    t.complete().await;
    let writes = eventually("a complete taken", || {
        let writes = t.fake.writes(t.job.job_id);
        writes
            .iter()
            .any(|(a, _, status)| a == "complete" && *status == 200)
            .then_some(writes)
    })
    .await;
    let ends: Vec<(&str, usize, u16)> = writes
        .iter()
        .filter(|(a, _, _)| a == "complete" || a == "usage")
        .map(|(a, body, status)| {
            let carried = body["usage"].as_array().map_or(0, Vec::len);
            (a.as_str(), carried, *status)
        })
        .collect();
    assert_eq!(
        ends,
        [
            ("complete", 2, 400),
            ("usage", 0, 400),
            ("usage", 0, 200),
            ("complete", 0, 200)
        ]
    );
    let alone: Vec<String> = t
        .usage_writes()
        .into_iter()
        .map(|(w, _)| w.request_id)
        .collect();
    assert_eq!(alone, [mystery, priced], "alone under the same ids");
    t.agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_usage_report_kills_the_job_and_nothing_more_is_sent() {
    // Renewals every 20 s: the usage report is the write that meets the fence.
    let t = WaitingJob::start(14, 60_000, |_, _| {}).await;
    let pgid = running_pgid(t.workdir.path(), &t.job).await;
    eventually("a first renewal", || {
        position_of(&t.fake, t.job.job_id, "renew").map(|_| ())
    })
    .await;

    t.fake.fence.store(true, Ordering::SeqCst);
    t.report(&usage("sonnet", 1, 1, Some(1)));
    t.report(&usage("sonnet", 2, 2, Some(2)));
    assert_eq!(
        fenced_and_silent(&t.fake, t.job.job_id, pgid).await,
        "usage"
    );
    assert_eq!(t.usage_writes().len(), 1, "the second report is never sent");
    t.agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphans_unsent_usage_rides_on_its_fail_under_its_id() {
    let fake = Fake::new(15_000, Vec::new());
    let url = serve(fake.clone()).await;
    let workdir = tempfile::tempdir().unwrap();
    // What a crashed agent leaves behind: a report its job wrote, and the job's marker. The
    // job's process is gone: its pid names no process of that job any more.
    let job_id = JobId(uuid::Uuid::new_v4());
    let control = orphans_control_dir(workdir.path(), job_id, 1);
    let report = usage("sonnet", 100, 50, None);
    let id = write_usage_in(&control, &report).unwrap();
    let pid = {
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        gone.wait().unwrap();
        gone.id() as i32
    };
    left_running(&control, job_id, 21, 1, pid);

    let agent = Agent::start(config(&url, workdir.path()));
    let fail: FencedWrite<Fail> = eventually("the orphan report", || {
        fake.write_of::<Fail>(job_id, "fail")
    })
    .await;
    assert_eq!(usage_writes(&fake, job_id).len(), 0, "no report went alone");
    assert_eq!(fail.epoch, 21);
    assert_eq!(
        fail.body.usage,
        [UsageWrite {
            request_id: id,
            report
        }]
    );
    eventually("the marker and the report to go", || {
        let gone = !control.join("running.json").exists()
            && std::fs::read_dir(control.join("usage")).ok()?.count() == 0;
        gone.then_some(())
    })
    .await;
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_workdir_still_gives_jobs_a_control_directory_they_reach() {
    let job = claimed(
        r#"printf planning > "$GF_CONTROL_DIR/stage" && sleep 30"#,
        2,
        None,
    );
    let fake = Fake::new(15_000, vec![job.clone()]);
    let url = serve(fake.clone()).await;
    let workdir = tempfile::tempdir().unwrap();
    // The same directory, named from this process's directory: `../../tmp/...`.
    let cwd = std::env::current_dir().unwrap();
    let mut relative = PathBuf::new();
    for _ in cwd.components().skip(1) {
        relative.push("..");
    }
    relative.push(workdir.path().strip_prefix("/").unwrap());
    assert!(relative.is_relative());
    let agent = Agent::start(config(&url, &relative));
    let stage: FencedWrite<Stage> =
        eventually("the stage", || fake.write_of(job.job_id, "stage")).await;
    assert_eq!(stage.body.stage, "planning");
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usage_report_refused_for_good_is_dropped_and_the_jobs_output_says_why() {
    let t = WaitingJob::start(16, 15_000, |_, _| {}).await;
    t.report(&usage("mystery", 10, 10, None));
    let after = t.report(&usage("sonnet", 10, 10, None));
    eventually("the next report to be taken", || {
        t.usage_writes()
            .iter()
            .any(|(w, status)| w.request_id == after && *status == 200)
            .then_some(())
    })
    .await;
    t.complete().await;
    let answers: Vec<u16> = t.usage_writes().iter().map(|(_, s)| *s).collect();
    assert_eq!(answers, [400, 200], "the refused report is not sent again");
    let output = t.fake.output(t.job.job_id);
    assert!(
        output.contains("refused: invalid_request: no price for model \"mystery\""),
        "{output:?}"
    );
    t.agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_artifact_goes_up_under_the_lease_before_the_end_and_is_forgotten() {
    let t = WaitingJob::start(14, 15_000, |_, _| {}).await;
    let saved = write_artifact_in(
        &t.control,
        ArtifactSource::Link("https://github.com/acme/app/pull/7"),
        Some("pull-request"),
        None,
    )
    .unwrap();
    t.complete().await;
    let writes = t.fake.writes(t.job.job_id);
    let upload = writes.iter().position(|(a, _, _)| a == "artifact").unwrap();
    let end = writes.iter().position(|(a, _, _)| a == "complete").unwrap();
    assert!(upload < end, "{writes:?}");
    let (body, status) = &artifact_writes(&t.fake, t.job.job_id)[0];
    assert_eq!(*status, 200);
    assert_eq!(body["name"], "pull-request");
    assert_eq!(body["kind"], "link");
    assert_eq!(body["epoch"], 14);
    assert_eq!(body["request_id"], saved.request_id.as_str());
    assert_eq!(body["sha256"], saved.sha256.as_str());
    assert_eq!(body["length"], "35");
    assert_eq!(body["data"], "https://github.com/acme/app/pull/7\n");
    assert!(!saved.data.exists(), "the entry is forgotten once taken");
    t.agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_upload_kills_the_job_group_and_nothing_more_is_reported() {
    let t = WaitingJob::start(15, 15_000, |_, _| {}).await;
    let pgid = running_pgid(t.workdir.path(), &t.job).await;
    t.fake.fence.store(true, Ordering::SeqCst);
    let src = t.workdir.path().join("notes.txt");
    std::fs::write(&src, "notes").unwrap();
    write_artifact_in(&t.control, ArtifactSource::File(&src), None, None).unwrap();
    assert_eq!(
        fenced_and_silent(&t.fake, t.job.job_id, pgid).await,
        "artifact"
    );
    t.agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphans_usage_then_its_saved_artifact_go_up_before_its_fail_under_their_ids() {
    let fake = Fake::new(15_000, Vec::new());
    let url = serve(fake.clone()).await;
    let workdir = tempfile::tempdir().unwrap();
    let job_id = JobId(uuid::Uuid::new_v4());
    let control = orphans_control_dir(workdir.path(), job_id, 1);
    let src = workdir.path().join("fix.patch");
    std::fs::write(&src, "+fixed\n").unwrap();
    let saved = write_artifact_in(&control, ArtifactSource::File(&src), None, None).unwrap();
    let report = usage("sonnet", 10, 5, None);
    let report_id = write_usage_in(&control, &report).unwrap();
    let pid = {
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        gone.wait().unwrap();
        gone.id() as i32
    };
    left_running(&control, job_id, 22, 1, pid);

    let agent = Agent::start(config(&url, workdir.path()));
    eventually("the orphan report", || {
        fake.write_of::<Fail>(job_id, "fail")
    })
    .await;
    let writes = fake.writes(job_id);
    let actions: Vec<&str> = writes.iter().map(|(a, _, _)| a.as_str()).collect();
    // Its money first, alone (nothing renews the lease while files upload), then its files.
    assert_eq!(actions, ["usage", "artifact", "fail"]);
    assert_eq!(writes[0].1["request_id"], report_id.as_str());
    let writes = &writes[1..];
    assert_eq!(writes[0].1["request_id"], saved.request_id.as_str());
    assert_eq!(writes[0].1["kind"], "patch");
    assert_eq!(writes[0].1["epoch"], 22);
    assert_eq!(writes[0].1["data"], "+fixed\n");
    eventually("the entry to go", || (!saved.data.exists()).then_some(())).await;
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_complete_brings_the_next_job_and_no_claim_is_sent_for_it() {
    let first = claimed("true", 1, None);
    let second = claimed("true", 1, None);
    let fake = Fake::new(15_000, vec![first.clone(), second.clone()]);
    let url = serve(fake.clone()).await;
    let workdir = tempfile::tempdir().unwrap();
    let mut config = config(&url, workdir.path());
    config.slots = 1;
    let agent = Agent::start(config);

    let done: FencedWrite<Complete> = eventually("the second job's complete", || {
        fake.write_of(second.job_id, "complete")
    })
    .await;
    assert_eq!(done.body.claim_next.map(|n| n.max_jobs), Some(1));
    let asked: FencedWrite<Complete> = fake.write_of(first.job_id, "complete").unwrap();
    assert_eq!(
        asked.body.claim_next.map(|n| n.max_jobs),
        Some(1),
        "an end asks for its own slot's next job"
    );
    let seen = fake.seen();
    let ended = |id: JobId| {
        seen.iter()
            .position(|s| matches!(s, Seen::Write { job_id, action, .. } if *job_id == id && action == "complete"))
            .unwrap()
    };
    let claims_between = seen[ended(first.job_id)..ended(second.job_id)]
        .iter()
        .filter(|s| matches!(s, Seen::Claim { .. }))
        .count();
    assert_eq!(
        claims_between, 0,
        "the second job came with the first's complete"
    );
    agent.shutdown().await.unwrap();
}

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
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use gigafactory_core::job::{FactoryId, JobId};
use gigafactory_core::manifest::Payload;
use gigafactory_core::wire::{
    ClaimRequest, ClaimResponse, ClaimedJob, Complete, EnrollRequest, EnrollResponse, ErrorBody,
    FactoryCommand, Fail, FencedWrite, HeartbeatRequest, HeartbeatResponse, LeaseAnswer, LogChunk,
    LogStream, Release, Renew, Stage,
};
use gigafactory_factory::{AgentConfig, AgentError, run};
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
    // Each body must have the shape the real coordinator will parse.
    let epoch = match action.as_str() {
        "renew" => parse::<Renew>(&body).map(|w| w.epoch),
        "stage" => parse::<Stage>(&body).map(|w| w.epoch),
        "logs" => parse::<LogChunk>(&body).map(|w| w.epoch),
        "complete" => parse::<Complete>(&body).map(|w| w.epoch),
        "fail" => parse::<Fail>(&body).map(|w| w.epoch),
        "release" => parse::<Release>(&body).map(|w| w.epoch),
        _ => None,
    };
    let fenced = fake.fence.load(Ordering::SeqCst);
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
        (Some(epoch), false) => Json(LeaseAnswer {
            job_id,
            epoch,
            state: "running".into(),
            expires_at: Some(0),
            preempt_deadline: None,
        })
        .into_response(),
    }
}

fn parse<T: DeserializeOwned>(body: &serde_json::Value) -> Option<FencedWrite<T>> {
    let write: FencedWrite<T> = serde_json::from_value(body.clone()).ok()?;
    uuid::Uuid::parse_str(&write.request_id).ok()?;
    Some(write)
}

/// Serves `fake` on a loopback port; returns its base URL.
async fn serve(fake: Arc<Fake>) -> String {
    let app = Router::new()
        .route("/v1/factories/enroll", post(enroll))
        .route("/v1/factories/{id}/heartbeat", post(heartbeat))
        .route("/v1/claims", post(claim))
        .route("/v1/jobs/{id}/{action}", post(job_write))
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
        wall_clock_ms,
        checkpoint: None,
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

fn marker_path(workdir: &Path, job: &ClaimedJob) -> PathBuf {
    workdir
        .join("jobs")
        .join(job.job_id.to_string())
        .join(job.attempt.to_string())
        .join("control/running.json")
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
    let pgid = eventually("the running marker", || {
        let bytes = std::fs::read(&marker).ok()?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        value["pgid"].as_i64().map(|p| p as i32)
    })
    .await;
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
    eventually("the job's process group to die", || {
        (!group_alive(pgid)).then_some(())
    })
    .await;
    done_with_its_jobs(&fake).await;

    let writes = fake.writes(job.job_id);
    let first_409 = writes
        .iter()
        .position(|(_, _, s)| *s == 409)
        .expect("a write was fenced");
    assert_eq!(writes[first_409].0, "renew");
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
    let control = workdir
        .path()
        .join("jobs")
        .join(job_id.to_string())
        .join("2/control");
    std::fs::create_dir_all(&control).unwrap();
    let marker = serde_json::json!({
        "job_id": job_id, "epoch": 11, "attempt": 2, "pid": pgid, "pgid": pgid, "started_at_ms": 0
    });
    std::fs::write(control.join("running.json"), marker.to_string()).unwrap();

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
    let output: String = fake
        .writes(echoed.job_id)
        .into_iter()
        .filter(|(a, _, _)| a == "logs")
        .map(|(_, body, _)| {
            serde_json::from_value::<FencedWrite<LogChunk>>(body)
                .unwrap()
                .body
                .data
        })
        .collect();
    assert_eq!(output, "write the tests");
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
    let marker = marker_path(workdir.path(), &job);
    let pgid = eventually("the running marker", || {
        let value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&marker).ok()?).ok()?;
        value["pgid"].as_i64().map(|p| p as i32)
    })
    .await;

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

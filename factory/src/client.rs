//! The agent's HTTP client for the coordinator's factory API. It owns the retry policy: transport
//! errors, `5xx` and `429` are retried with capped exponential backoff and jitter (honouring
//! `Retry-After`), transport errors move on to the next coordinator URL, and any other answer
//! (and the one `5xx` no retry mends, `secrets_unreadable`) goes back to the caller to
//! interpret. A fenced write is serialized once, so every retry of it
//! carries the same `request_id` and the coordinator answers the retry as it answered the first.
//! With a [`Journal`], every send and its answer is recorded.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gigafactory_core::job::JobId;
use gigafactory_core::journal::{Exchange, Grant, Seen, WriteTag};
use gigafactory_core::wire::{
    ArtifactUpload, ClaimResponse, EndAnswer, ErrorBody, ErrorCode, FencedWrite, LeaseAnswer,
    urlencode,
};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use crate::backoff::{parse_retry_after, retry_delay_after};
use crate::error::AgentError;
use crate::journal::{Journal, now_ms};
use crate::tls::ClientTls;

/// Any request but a claim gives up on one coordinator after this long.
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Opening a connection gives up after this long, so a dead node is skipped quickly.
pub const CONNECT_TIMEOUT_MS: u64 = 2_000;
/// A claim long-polls for its `wait_ms`; the coordinator gets this much more to answer.
pub const CLAIM_TIMEOUT_MARGIN_MS: u64 = 10_000;
/// Where factories ask for work; a journal records the leases its answers hand over.
pub const CLAIMS_PATH: &str = "/v1/claims";
/// An upload gets [`REQUEST_TIMEOUT_MS`] plus the time its size takes at this rate.
const UPLOAD_BYTES_PER_SEC_MIN: u64 = 256 << 10;
/// Idle connections kept per coordinator node: one per concurrent stream of writes is plenty.
const IDLE_CONNECTIONS_MAX: usize = 16;
/// An idle connection is dropped after this long: before the coordinator's own idle timeout
/// (60 s by default) closes it, so a request is not sent on a connection being closed.
const POOL_IDLE_MS: u64 = 30_000;

/// How many times a request is sent before the caller hears it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Once: the caller has its own schedule (heartbeats, claims).
    Once,
    /// At most this many sends in all.
    Attempts(u32),
    /// Until the coordinator answers: a running job's reports must get through. The caller
    /// stops it by dropping the future (on fencing or shutdown).
    Forever,
}

impl Retry {
    fn allows(self, sends_so_far: u32) -> bool {
        match self {
            Retry::Once => false,
            Retry::Attempts(max) => sends_so_far < max,
            Retry::Forever => true,
        }
    }
}

/// Server errors no retry mends: a node whose key does not open a job's secrets answers the
/// same to every retry, so the caller hears of it at once instead of retrying until the lease
/// is gone.
fn final_server_error(code: &str) -> bool {
    code == ErrorCode::SecretsUnreadable.as_str()
}

/// The error body of a refusal, or what stands for it when the answer is not one.
fn error_body(text: &[u8]) -> ErrorBody {
    serde_json::from_slice::<ErrorBody>(text).unwrap_or_else(|_| ErrorBody {
        error: "unknown".into(),
        message: String::from_utf8_lossy(text).chars().take(200).collect(),
        current_epoch: None,
        details: Vec::new(),
    })
}

/// Why a request did not get a successful answer.
#[derive(Debug)]
pub enum CallError {
    /// The coordinator answered with a status the caller must interpret (a `4xx` other than
    /// `429`), and the error body if it sent one.
    Status { status: u16, body: ErrorBody },
    /// No usable answer (transport errors, `5xx`, `429`) before the retry budget ran out.
    Unavailable(String),
    /// A successful answer whose body is not what the API promises: the two sides disagree on
    /// the contract.
    Decode(String),
    /// What the request was to send cannot be read (a file to upload went missing).
    Source(String),
}

impl CallError {
    /// Whether the coordinator refused our token.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, CallError::Status { status: 401, .. })
    }

    /// The agent error for a refusal nothing can fix.
    pub fn into_refused(self, what: &'static str) -> AgentError {
        match self {
            CallError::Status { status, body } => AgentError::Refused {
                what,
                status,
                code: body.error,
                message: body.message,
            },
            CallError::Unavailable(m) | CallError::Decode(m) | CallError::Source(m) => {
                AgentError::Refused {
                    what,
                    status: 0,
                    code: "unavailable".into(),
                    message: m,
                }
            }
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Status { status, body } => {
                write!(f, "http {status} {}: {}", body.error, body.message)
            }
            CallError::Unavailable(m) => write!(f, "coordinator unavailable: {m}"),
            CallError::Decode(m) => write!(f, "unexpected answer: {m}"),
            CallError::Source(m) => write!(f, "cannot read what to send: {m}"),
        }
    }
}

/// Opens a file to upload: a regular file of `size` bytes, never through a symbolic link, and
/// never blocking on a FIFO a job put in its place.
async fn open_upload(path: &Path, size: u64) -> Result<tokio::fs::File, CallError> {
    let source = |why: String| CallError::Source(format!("{}: {why}", path.display()));
    let mut options = tokio::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    let file = options
        .open(path)
        .await
        .map_err(|e| source(e.to_string()))?;
    let meta = file.metadata().await.map_err(|e| source(e.to_string()))?;
    if !meta.is_file() {
        return Err(source("not a regular file".into()));
    }
    if meta.len() != size {
        return Err(source(format!(
            "{} bytes, {size} when it was hashed",
            meta.len()
        )));
    }
    Ok(file)
}

/// What a request sends.
enum Outgoing<'a> {
    /// A JSON body, POSTed.
    Json(Vec<u8>),
    /// A file, PUT as the body: streamed, opened anew for each send.
    File { path: &'a Path, size: u64 },
    /// Nothing: a GET.
    Nothing,
}

/// How the coordinator took a fenced write.
#[derive(Debug)]
pub enum WriteOutcome {
    /// Applied (or applied before: a retry gets the first answer); an end's answer may carry
    /// the factory's next jobs.
    Accepted(EndAnswer),
    /// The lease is gone: `409` (fenced, or any other conflict with the job's state), `404`
    /// (no such job) or `403` (another factory holds it). Stop the job and report nothing more.
    Lost {
        status: u16,
        code: String,
        current_epoch: Option<u64>,
    },
}

/// The coordinator nodes, and the one we talk to now.
#[derive(Debug)]
pub struct Coordinator {
    http: reqwest::Client,
    /// Base URLs without a trailing `/`.
    urls: Vec<String>,
    /// Index into `urls` of the node in use; moved on by transport errors.
    current: AtomicUsize,
    journal: Option<Journal>,
}

impl Coordinator {
    /// A client for these base URLs (`http://host:port` or `https://host:port`, tried in
    /// order), trusting and presenting what `tls` says over `https`.
    pub fn new(urls: &[String], tls: &ClientTls) -> Result<Self, AgentError> {
        if urls.is_empty() {
            return Err(AgentError::Config("no coordinator URL given".into()));
        }
        let mut clean = Vec::with_capacity(urls.len());
        for url in urls {
            let url = url.trim().trim_end_matches('/');
            // Say so up front rather than failing every request later.
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(AgentError::Config(format!(
                    "coordinator URL {url:?} must start with http:// or https://"
                )));
            }
            clean.push(url.to_owned());
        }
        let builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .pool_max_idle_per_host(IDLE_CONNECTIONS_MAX)
            .pool_idle_timeout(Duration::from_millis(POOL_IDLE_MS));
        let http = tls.apply(builder)?.build().map_err(AgentError::Http)?;
        Ok(Coordinator {
            http,
            urls: clean,
            current: AtomicUsize::new(0),
            journal: None,
        })
    }

    /// Records every request and its answer in `journal` from now on.
    pub fn with_journal(mut self, journal: Journal) -> Self {
        self.journal = Some(journal);
        self
    }

    /// The first coordinator URL, as handed to jobs in `GF_COORDINATOR`.
    pub fn first_url(&self) -> &str {
        &self.urls[0]
    }

    /// Moves on to the next node after `failed` did not answer. Concurrent failures of the same
    /// node move on once, not once each.
    fn fail_over(&self, failed: usize) {
        let next = (failed + 1) % self.urls.len();
        let _ = self
            .current
            .compare_exchange(failed, next, Ordering::AcqRel, Ordering::Acquire);
    }

    /// POSTs `body` to `path` with `token`, retrying as `retry` allows. `Ok(None)` is a `204`.
    pub async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
        body: &B,
        timeout: Duration,
        retry: Retry,
    ) -> Result<Option<R>, CallError> {
        self.post_tagged(path, token, body, timeout, retry, None)
            .await
    }

    /// GETs `path` with `token`, retrying as `retry` allows.
    pub async fn get<R: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
        timeout: Duration,
        retry: Retry,
    ) -> Result<R, CallError> {
        let answer = self
            .send(path, token, Outgoing::Nothing, timeout, retry, None)
            .await?
            .unwrap_or_default();
        serde_json::from_slice(&answer).map_err(|e| CallError::Decode(format!("{path}: {e}")))
    }

    async fn post_tagged<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
        body: &B,
        timeout: Duration,
        retry: Retry,
        tag: Option<&WriteTag>,
    ) -> Result<Option<R>, CallError> {
        // Serialized once: a retry sends exactly the same bytes (and request id).
        let bytes = serde_json::to_vec(body).map_err(|e| CallError::Decode(e.to_string()))?;
        let Some(answer) = self
            .send(path, token, Outgoing::Json(bytes), timeout, retry, tag)
            .await?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&answer)
            .map(Some)
            .map_err(|e| CallError::Decode(format!("{path}: {e}")))
    }

    async fn send(
        &self,
        path: &str,
        token: &str,
        body: Outgoing<'_>,
        timeout: Duration,
        retry: Retry,
        tag: Option<&WriteTag>,
    ) -> Result<Option<Vec<u8>>, CallError> {
        let mut sends: u32 = 0;
        loop {
            let index = self.current.load(Ordering::Acquire) % self.urls.len();
            let url = format!("{}{path}", self.urls[index]);
            sends = sends.saturating_add(1);
            let sent_at = self.journal.as_ref().map(|_| now_ms());
            let record = |status: u16, error: Option<String>, answer: Option<&[u8]>| {
                if let (Some(journal), Some(sent_at)) = (&self.journal, sent_at) {
                    journal.record(&Exchange {
                        sent_at,
                        answered_at: now_ms(),
                        node: self.urls[index].clone(),
                        path: path.to_owned(),
                        write: tag.cloned(),
                        status,
                        error,
                        leases: answer.map(|a| leases_in(path, a)).unwrap_or_default(),
                        answer: answer.filter(|_| tag.is_some()).and_then(seen_in),
                    });
                }
            };
            let request = match &body {
                Outgoing::Json(bytes) => self
                    .http
                    .post(&url)
                    .header(CONTENT_TYPE, "application/json")
                    .body(bytes.clone()),
                Outgoing::Nothing => self.http.get(&url),
                Outgoing::File { path, size } => {
                    let file = open_upload(path, *size).await?;
                    self.http
                        .put(&url)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, *size)
                        .body(reqwest::Body::from(file))
                }
            };
            let sent = request.bearer_auth(token).timeout(timeout).send().await;
            let (why, retry_after) = match sent {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    if status == StatusCode::NO_CONTENT {
                        record(status.as_u16(), None, None);
                        return Ok(None);
                    }
                    if status.is_success() {
                        match response.bytes().await {
                            Ok(b) => {
                                record(status.as_u16(), None, Some(&b));
                                return Ok(Some(b.to_vec()));
                            }
                            // The answer was lost on the way: for a fenced write the retry
                            // (same request id) gets the same answer again.
                            Err(e) => {
                                self.fail_over(index);
                                let why = format!("reading the answer from {url}: {e}");
                                record(0, Some(why.clone()), None);
                                (why, None)
                            }
                        }
                    } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                        let text = response.bytes().await.unwrap_or_default();
                        let body = error_body(&text);
                        if final_server_error(&body.error) {
                            record(status.as_u16(), Some(body.error.clone()), None);
                            return Err(CallError::Status {
                                status: status.as_u16(),
                                body,
                            });
                        }
                        record(status.as_u16(), None, None);
                        (
                            format!("{url} answered http {}", status.as_u16()),
                            retry_after,
                        )
                    } else {
                        let text = response.bytes().await.unwrap_or_default();
                        let body = error_body(&text);
                        record(status.as_u16(), Some(body.error.clone()), None);
                        return Err(CallError::Status {
                            status: status.as_u16(),
                            body,
                        });
                    }
                }
                Err(e) => {
                    self.fail_over(index);
                    let why = format!("{url}: {}", crate::tls::explain(&e));
                    record(0, Some(why.clone()), None);
                    (why, None)
                }
            };
            if !retry.allows(sends) {
                return Err(CallError::Unavailable(why));
            }
            let delay = retry_delay_after(sends - 1, rand::random::<f64>(), retry_after);
            if sends == 1 {
                warn!(error = %why, retry_in_ms = delay.as_millis() as u64, "coordinator request failed, retrying");
            } else {
                debug!(error = %why, sends, retry_in_ms = delay.as_millis() as u64, "coordinator request failed again");
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// Sends one fenced write (`renew`, `stage`, `logs`, `usage`, `complete`, `fail`,
    /// `release`) for the lease `(job_id, write.epoch)` under the request id `write` carries:
    /// a new one, or one the caller keeps (a usage report's, given when the job wrote it), so
    /// that sending it again, even from another agent process, is answered as the first send
    /// was and counted once.
    pub async fn write_as<T: Serialize>(
        &self,
        token: &str,
        job_id: JobId,
        action: &'static str,
        write: FencedWrite<T>,
        retry: Retry,
    ) -> Result<WriteOutcome, CallError> {
        self.write_carrying(token, job_id, action, write, Vec::new(), retry)
            .await
    }

    /// [`Coordinator::write_as`] for an end whose body carries usage reports: `carried` are
    /// their request ids, which the journal records with the write.
    pub async fn write_carrying<T: Serialize>(
        &self,
        token: &str,
        job_id: JobId,
        action: &'static str,
        write: FencedWrite<T>,
        carried: Vec<String>,
        retry: Retry,
    ) -> Result<WriteOutcome, CallError> {
        let epoch = write.epoch;
        let path = format!("/v1/jobs/{job_id}/{action}");
        let timeout = Duration::from_millis(REQUEST_TIMEOUT_MS);
        let tag = self.journal.as_ref().map(|_| WriteTag {
            job: job_id,
            action: action.to_owned(),
            epoch,
            request_id: write.request_id.clone(),
            usage: carried,
        });
        let sent = self
            .post_tagged::<_, EndAnswer>(&path, token, &write, timeout, retry, tag.as_ref())
            .await
            .and_then(|answer| {
                answer.ok_or_else(|| {
                    CallError::Decode(format!("{path}: empty answer to a fenced write"))
                })
            });
        fenced(sent)
    }

    /// Uploads the file at `path` (`size` bytes, its digest in `upload`) as the artifact `name`
    /// of the lease `(job_id, upload.epoch)`: a fenced write like the others, streamed, under
    /// the request id `upload` carries, retried as `retry` allows.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_artifact(
        &self,
        token: &str,
        job_id: JobId,
        name: &str,
        upload: &ArtifactUpload,
        path: &Path,
        size: u64,
        retry: Retry,
    ) -> Result<WriteOutcome, CallError> {
        let url_path = format!(
            "/v1/jobs/{job_id}/artifacts/{}?epoch={}&request_id={}&kind={}&sha256={}",
            urlencode(name),
            upload.epoch,
            urlencode(&upload.request_id),
            upload.kind.name(),
            upload.sha256,
        );
        let timeout = Duration::from_millis(
            REQUEST_TIMEOUT_MS + size.saturating_mul(1_000) / UPLOAD_BYTES_PER_SEC_MIN,
        );
        let tag = self.journal.as_ref().map(|_| WriteTag {
            job: job_id,
            action: "artifact".to_owned(),
            epoch: upload.epoch,
            request_id: upload.request_id.clone(),
            usage: Vec::new(),
        });
        let body = Outgoing::File { path, size };
        let sent = self
            .send(&url_path, token, body, timeout, retry, tag.as_ref())
            .await
            .and_then(|answer| {
                let answer = answer.ok_or_else(|| {
                    CallError::Decode(format!("{url_path}: empty answer to an upload"))
                })?;
                serde_json::from_slice::<LeaseAnswer>(&answer)
                    .map(|lease| EndAnswer {
                        lease,
                        next: Vec::new(),
                    })
                    .map_err(|e| CallError::Decode(format!("{url_path}: {e}")))
            });
        fenced(sent)
    }
}

/// How a fenced write's answer reads for the job: a lost lease is an outcome, not an error.
fn fenced(sent: Result<EndAnswer, CallError>) -> Result<WriteOutcome, CallError> {
    match sent {
        Ok(answer) => Ok(WriteOutcome::Accepted(answer)),
        Err(CallError::Status {
            status: status @ (403 | 404 | 409),
            body,
        }) => Ok(WriteOutcome::Lost {
            status,
            code: body.error,
            current_epoch: body.current_epoch,
        }),
        Err(e) => Err(e),
    }
}

/// The job's epoch and state in a fenced write's answer.
fn seen_in(answer: &[u8]) -> Option<Seen> {
    serde_json::from_slice::<LeaseAnswer>(answer)
        .ok()
        .map(|a| Seen {
            epoch: a.epoch,
            state: a.state,
        })
}

/// The leases a successful answer hands over: a claim's, or an end's that asked for the next
/// jobs; nothing for any other request.
fn leases_in(path: &str, answer: &[u8]) -> Vec<Grant> {
    let jobs = if path == CLAIMS_PATH {
        serde_json::from_slice::<ClaimResponse>(answer).map(|r| r.jobs)
    } else if path.ends_with("/complete") || path.ends_with("/fail") {
        serde_json::from_slice::<EndAnswer>(answer).map(|r| r.next)
    } else {
        return Vec::new();
    };
    jobs.unwrap_or_default()
        .iter()
        .map(|j| Grant {
            job: j.job_id,
            epoch: j.epoch,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_budgets_count_every_send() {
        assert!(!Retry::Once.allows(1));
        assert!(Retry::Attempts(3).allows(2));
        assert!(!Retry::Attempts(3).allows(3));
        assert!(Retry::Forever.allows(u32::MAX));
    }

    #[test]
    fn refuses_urls_it_cannot_speak_to() {
        let tls = ClientTls::default();
        assert!(matches!(
            Coordinator::new(&[], &tls),
            Err(AgentError::Config(_))
        ));
        let ftp = Coordinator::new(&["ftp://coordinator:7070".into()], &tls);
        assert!(matches!(ftp, Err(AgentError::Config(_))));
        let ok = Coordinator::new(&["http://a:1/".into(), "https://b:2".into()], &tls).unwrap();
        assert_eq!(ok.first_url(), "http://a:1");
    }

    #[test]
    fn fail_over_moves_once_per_failed_node() {
        let c = Coordinator::new(
            &[
                "http://a:1".into(),
                "http://b:2".into(),
                "http://c:3".into(),
            ],
            &ClientTls::default(),
        )
        .unwrap();
        c.fail_over(0);
        c.fail_over(0); // a second request that also failed on node 0 must not skip node 1
        assert_eq!(c.current.load(Ordering::Acquire), 1);
        c.fail_over(1);
        c.fail_over(2);
        assert_eq!(c.current.load(Ordering::Acquire), 0, "wraps around");
    }
}

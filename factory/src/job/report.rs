//! What a running job tells the coordinator, and what the answers mean for it: every fenced
//! write goes through [`JobCtx::write_as`], which turns a lost lease into a stop (and silence)
//! and a revoked token into a fatal error; the helpers that report while the job runs (its
//! output, its lease renewals, its stage, its usage reports); and its end (`complete`, `fail`
//! or `release`), retried until the coordinator takes it. Output past the coordinator's per-job
//! log limit is refused for good: the rest of it is dropped, and the job runs on and reports
//! its end as usual. Usage reports go in the order the job wrote them, each under the request
//! id it got then, so a retry is counted once: alone while the job runs, and those still
//! waiting at its end carried on the end, in its transaction.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;

use gigafactory_core::wire::{
    ClaimNext, Complete, EndAnswer, ErrorCode, Fail, FencedWrite, LogStream, Release, Renew, Stage,
    UsageWrite,
};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{error, info, warn};

use super::JobCtx;
use crate::client::{CallError, Retry, WriteOutcome};
use crate::control::{self, PendingUsage};
use crate::journal::now_ms;
use crate::logs::LogQueue;
use crate::process;
use crate::stop::Stop;
use crate::workspace::Workspace;

/// The error reported when a job outlives its wall-clock budget.
const BUDGET_EXCEEDED_ERROR: &str = "wall-clock budget exceeded";

/// How a fenced write went, from the job's point of view.
pub(super) enum Written {
    /// With the jobs leased to the factory with it (an end that asked for them).
    Accepted(EndAnswer),
    /// The lease is gone or the agent can no longer report: a stop was requested already.
    Ended,
    /// The coordinator refused this one write for good; carry on.
    Refused(Refusal),
}

/// Why the coordinator refused a write for good.
pub(super) enum Refusal {
    /// `413 log_limit_exceeded`: the job's output reached the coordinator's per-job log limit,
    /// and no later chunk will be taken either. Part of the protocol, not a fault.
    LogLimit,
    /// `413 artifact_limit_exceeded`, with its message: the file, or the job's artifacts with
    /// it, pass a limit of the coordinator's.
    ArtifactLimit(String),
    /// `400 invalid_request`, with its message: the write breaks a rule, such as a usage
    /// report the coordinator cannot price (alone, or carried on an end).
    Invalid(String),
    /// Anything else, by its error code and message: a bug on one side (logged where it
    /// happened).
    Other(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::LogLimit => f.write_str(ErrorCode::LogLimitExceeded.as_str()),
            Refusal::ArtifactLimit(message) => {
                write!(
                    f,
                    "{}: {message}",
                    ErrorCode::ArtifactLimitExceeded.as_str()
                )
            }
            Refusal::Invalid(message) => {
                write!(f, "{}: {message}", ErrorCode::InvalidRequest.as_str())
            }
            Refusal::Other(code) => f.write_str(code),
        }
    }
}

impl JobCtx {
    /// Sends `body` as the fenced write `action` under a new request id.
    async fn write<T: Serialize>(&self, action: &'static str, body: T, retry: Retry) -> Written {
        let request_id = uuid::Uuid::new_v4().to_string();
        self.write_as(action, request_id, body, retry).await
    }

    /// Sends `body` as the fenced write `action` under `request_id`.
    async fn write_as<T: Serialize>(
        &self,
        action: &'static str,
        request_id: String,
        body: T,
        retry: Retry,
    ) -> Written {
        self.write_carrying(action, request_id, body, Vec::new(), retry)
            .await
    }

    /// [`Self::write_as`] for an end carrying the usage reports whose request ids are
    /// `carried`.
    async fn write_carrying<T: Serialize>(
        &self,
        action: &'static str,
        request_id: String,
        body: T,
        carried: Vec<String>,
        retry: Retry,
    ) -> Written {
        let shared = &self.shared;
        let write = self.fenced(request_id, &body);
        let sent = shared
            .coordinator
            .write_carrying(
                &shared.identity.token,
                self.job.job_id,
                action,
                write,
                carried,
                retry,
            )
            .await;
        self.written(action, sent)
    }

    /// The fenced write of `body` under the job's lease: the one place the job's writes are
    /// built. Whatever the job wrote that reaches the coordinator (its output, stage,
    /// checkpoint, question, its end's message) passes here, so the job's secrets are
    /// replaced in all of it.
    pub(super) fn fenced<T: Serialize>(&self, request_id: String, body: &T) -> FencedWrite<Value> {
        FencedWrite {
            epoch: self.job.epoch,
            request_id,
            body: super::secrets::redacted(&self.redactor, body),
        }
    }

    /// What the coordinator's answer to the fenced write `action` means for the job.
    pub(super) fn written(
        &self,
        action: &'static str,
        sent: Result<WriteOutcome, CallError>,
    ) -> Written {
        let shared = &self.shared;
        match sent {
            Ok(WriteOutcome::Accepted(answer)) => Written::Accepted(answer),
            Ok(WriteOutcome::Lost {
                status,
                code,
                current_epoch,
            }) => {
                warn!(
                    action,
                    status, code, current_epoch, "lease lost: killing the job"
                );
                self.request(Stop::Fenced);
                Written::Ended
            }
            Err(e) if e.is_unauthorized() => {
                shared.raise_fatal(shared.revoked());
                self.request(Stop::Cancel);
                Written::Ended
            }
            Err(CallError::Status { status: 413, body })
                if body.error == ErrorCode::LogLimitExceeded.as_str() =>
            {
                Written::Refused(Refusal::LogLimit)
            }
            Err(CallError::Status { status: 413, body })
                if body.error == ErrorCode::ArtifactLimitExceeded.as_str() =>
            {
                warn!(action, message = %body.message, "the coordinator refused an artifact past its limits");
                Written::Refused(Refusal::ArtifactLimit(body.message))
            }
            Err(CallError::Status { status: 400, body })
                if body.error == ErrorCode::InvalidRequest.as_str() =>
            {
                warn!(action, message = %body.message, "the coordinator refused a write as invalid");
                Written::Refused(Refusal::Invalid(body.message))
            }
            Err(CallError::Status { status, body }) => {
                error!(action, status, code = %body.error, message = %body.message, "the coordinator refused a write");
                Written::Refused(Refusal::Other(format!("{}: {}", body.error, body.message)))
            }
            Err(e) => {
                error!(action, error = %e, "a write failed");
                Written::Refused(Refusal::Other(e.to_string()))
            }
        }
    }
}

/// How the job ends, as reported.
pub(super) enum Report {
    Complete(Complete),
    Fail(Fail),
    Release(Release),
}

impl Report {
    /// Sends the end under a new request id, carrying `carried`, until the coordinator
    /// answers. A complete or fail asks for the factory's next job with it (its own slot),
    /// unless the agent drains or stops.
    async fn send(&mut self, ctx: &JobCtx, carried: &[PendingUsage]) -> (&'static str, Written) {
        let usage: Vec<UsageWrite> = carried.iter().map(PendingUsage::carried).collect();
        let claim_next = ctx
            .shared
            .claims_next()
            .then_some(ClaimNext { max_jobs: 1 });
        let ids = usage.iter().map(|u| u.request_id.clone()).collect();
        let request_id = uuid::Uuid::new_v4().to_string();
        let retry = Retry::Forever;
        match self {
            Report::Complete(body) => {
                body.usage = usage;
                body.claim_next = claim_next;
                let written = ctx.write_carrying("complete", request_id, &*body, ids, retry);
                ("complete", written.await)
            }
            Report::Fail(body) => {
                body.usage = usage;
                body.claim_next = claim_next;
                let written = ctx.write_carrying("fail", request_id, &*body, ids, retry);
                ("fail", written.await)
            }
            Report::Release(body) => {
                body.usage = usage;
                let written = ctx.write_carrying("release", request_id, &*body, ids, retry);
                ("release", written.await)
            }
        }
    }
}

/// The report for how the job ended.
pub(super) fn final_report(
    ws: &Workspace,
    status: io::Result<ExitStatus>,
    ended_by: Option<Stop>,
    changed_paths: Vec<String>,
    memory_exceeded: Option<String>,
) -> Report {
    let exit_code = status.as_ref().ok().and_then(ExitStatus::code);
    match ended_by {
        Some(Stop::Budget) => Report::Fail(Fail {
            error: BUDGET_EXCEEDED_ERROR.into(),
            exit_code,
            retryable: false,
            changed_paths,
            usage: Vec::new(),
            claim_next: None,
        }),
        Some(Stop::Preempt { .. } | Stop::Shutdown) => release(ws),
        // Throttled by its model provider and exited failing: given back to wait for the reset,
        // not failed. A job that exits 0 succeeded, whatever it reported before.
        None if throttle_ahead(ws).is_some() && !status.as_ref().is_ok_and(|s| s.success()) => {
            release(ws)
        }
        // Silenced jobs are not reported; kept exhaustive so a new stop must be thought about.
        Some(Stop::Cancel | Stop::Fenced) | None => match status {
            Ok(status) if status.success() => Report::Complete(Complete {
                changed_paths,
                usage: Vec::new(),
                claim_next: None,
            }),
            // Past its memory limit it would be ended again: say why once, not every attempt.
            Ok(status) if let Some(error) = memory_exceeded => Report::Fail(Fail {
                error,
                exit_code: process::describe_exit(status).1,
                retryable: false,
                changed_paths,
                usage: Vec::new(),
                claim_next: None,
            }),
            Ok(status) => {
                let (error, exit_code) = process::describe_exit(status);
                Report::Fail(Fail {
                    error,
                    exit_code,
                    retryable: true,
                    changed_paths,
                    usage: Vec::new(),
                    claim_next: None,
                })
            }
            Err(e) => Report::Fail(Fail {
                error: format!("cannot wait for the job's process: {e}"),
                exit_code: None,
                retryable: true,
                changed_paths,
                usage: Vec::new(),
                claim_next: None,
            }),
        },
    }
}

/// The provider's reset the job reported, when it lies ahead: clamped to the longest throttle
/// the coordinator takes, so a mistyped year costs a week, not the release.
fn throttle_ahead(ws: &Workspace) -> Option<u64> {
    let now = now_ms();
    control::read_throttled(&ws.control)
        .filter(|until| *until > now)
        .map(|until| until.min(now + gigafactory_core::limits::THROTTLE_MAX_MS))
}

/// Gives the job back with its checkpoint (and the throttle it reported, if one ahead).
fn release(ws: &Workspace) -> Report {
    let checkpoint = control::read_checkpoint(&ws.control);
    let throttled_until = throttle_ahead(ws);
    // The checkpoint is the job's own text: its length only, as it may hold a secret.
    let checkpoint_bytes = checkpoint.as_ref().map(String::len);
    info!(checkpoint_bytes = ?checkpoint_bytes, throttled_until = ?throttled_until, "releasing the job");
    Report::Release(Release {
        checkpoint,
        usage: Vec::new(),
        throttled_until,
    })
}

/// Sends the end of the job until the coordinator takes it, carrying the usage reports still
/// waiting (`pending`, oldest first): the newest an end may carry ride on it, any older go
/// alone first, and each file goes once its report was taken. Should the coordinator refuse
/// the end for a report it carries (one it cannot price), the reports go alone (one refused is
/// dropped, as it would have been while the job ran) and the end again without them.
pub(super) async fn send_report(ctx: &JobCtx, mut report: Report, pending: Vec<PendingUsage>) {
    if let Report::Fail(body) = &report {
        info!(error = %body.error, exit_code = ?body.exit_code, retryable = body.retryable, "job failed");
    }
    let (alone, carried) = control::split_for_end(pending);
    if !send_usage(ctx, alone, None).await {
        return;
    }
    let (action, mut written) = report.send(ctx, &carried).await;
    match &written {
        Written::Accepted(_) => carried.iter().for_each(PendingUsage::remove),
        Written::Refused(Refusal::Invalid(_)) if !carried.is_empty() => {
            warn!(
                reports = carried.len(),
                "the end was refused with the usage it carried: sending the reports alone, then the end"
            );
            if !send_usage(ctx, carried, None).await {
                return;
            }
            written = report.send(ctx, &[]).await.1;
        }
        _ => {}
    }
    match written {
        Written::Accepted(answer) => {
            info!(action, state = %answer.lease.state, next = answer.next.len(), "job end reported");
            for job in answer.next {
                super::start(&ctx.shared, job);
            }
        }
        Written::Ended => {}
        Written::Refused(why) => error!(
            action,
            %why, "the job's end was refused; its lease will expire"
        ),
    }
}

/// Reports a job that never started.
pub(super) async fn finish_early(ctx: &JobCtx, error: String, retryable: bool) {
    warn!(error, retryable, "the job cannot run");
    let fail = Report::Fail(Fail {
        error,
        exit_code: None,
        retryable,
        changed_paths: Vec::new(),
        usage: Vec::new(),
        claim_next: None,
    });
    tokio::select! {
        // The job never ran: it wrote no usage.
        _ = send_report(ctx, fail, Vec::new()) => {}
        _ = ctx.silenced() => {}
    }
}

/// Delivers the job's output in order, one chunk in flight. A chunk refused for good is
/// skipped (sent again it would be refused again); once the coordinator says the job's output
/// reached its log limit, the rest of the output is dropped and nothing more is sent.
pub(super) async fn send_logs(ctx: Arc<JobCtx>, queue: Arc<LogQueue>) {
    while let Some(chunk) = queue.next().await {
        let seq = chunk.seq;
        match ctx.write("logs", chunk, Retry::Forever).await {
            Written::Accepted(_) => {}
            Written::Ended => return,
            Written::Refused(Refusal::LogLimit) => {
                warn!(
                    seq,
                    "the job's output reached the coordinator's log limit; dropping the rest of it"
                );
                queue.discard();
                return;
            }
            Written::Refused(why) => warn!(seq, %why, "a log chunk was refused; skipping it"),
        }
    }
}

/// Renews the lease at once (which also tells the coordinator the job runs), then every third
/// of the lease TTL; learns of preemption from the answers.
pub(super) async fn renew_loop(ctx: Arc<JobCtx>) {
    loop {
        match ctx.write("renew", Renew {}, Retry::Forever).await {
            Written::Accepted(answer) => {
                if let Some(deadline) = answer.lease.preempt_deadline {
                    ctx.request(Stop::Preempt { deadline });
                }
            }
            Written::Ended => return,
            Written::Refused(_) => {}
        }
        tokio::time::sleep(ctx.shared.renew_interval()).await;
    }
}

/// Sends the job's stage whenever its stage file changes.
pub(super) async fn stage_loop(ctx: Arc<JobCtx>, control_dir: PathBuf) {
    let mut tick = tokio::time::interval(ctx.shared.config.stage_poll_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sent: Option<String> = None;
    loop {
        tick.tick().await;
        // A read of one small local file: cheaper than a trip to a blocking thread.
        // Redacted before it is compared, logged or sent: a stage is the job's own text.
        let Some(stage) = control::read_stage(&control_dir).map(|s| ctx.redactor.redact(&s)) else {
            continue;
        };
        if sent.as_ref() == Some(&stage) {
            continue;
        }
        match ctx
            .write(
                "stage",
                Stage {
                    stage: stage.clone(),
                },
                Retry::Forever,
            )
            .await
        {
            Written::Accepted(_) => info!(stage, "stage reported"),
            Written::Ended => return,
            // Not retried: the same stage would be refused again.
            Written::Refused(_) => {}
        }
        sent = Some(stage);
    }
}

/// Sends the job's usage reports as it writes them, oldest first, each under the request id it
/// got when written. Once `last_call` fires (the job's process ended) it returns, after the
/// pass under way if one is: the reports still waiting then ride on the job's end.
pub(super) async fn usage_loop(
    ctx: Arc<JobCtx>,
    control_dir: PathBuf,
    queue: Arc<LogQueue>,
    mut last_call: oneshot::Receiver<()>,
) {
    let period = ctx.shared.config.stage_poll_interval;
    // A job writes no report before it started: the first look can wait a period.
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut last_call => return,
        }
        // A look into one small local directory: cheaper than a trip to a blocking thread.
        let pending = control::pending_usage(&control_dir);
        if !send_usage(&ctx, pending, Some(&queue)).await {
            return;
        }
    }
}

/// Sends `pending` alone, oldest first, each retried until the coordinator answers; false once
/// the job must not be reported any more. A report refused for good (a model the coordinator
/// has no price for) is dropped, and the job's output says why while it is still open
/// (`queue`).
async fn send_usage(ctx: &JobCtx, pending: Vec<PendingUsage>, queue: Option<&LogQueue>) -> bool {
    for pending in pending {
        let request_id = &pending.request_id;
        match ctx
            .write_as("usage", request_id.clone(), &pending.report, Retry::Forever)
            .await
        {
            Written::Accepted(_) => {
                info!(request_id, model = %pending.report.model, "usage reported")
            }
            Written::Ended => return false,
            Written::Refused(why) => {
                warn!(request_id, %why, "a usage report was refused; dropping it");
                if let Some(queue) = queue {
                    queue.push(
                        LogStream::Stderr,
                        format!("[gigafactory: usage report {request_id} refused: {why}]\n"),
                    );
                }
            }
        }
        pending.remove();
    }
    true
}

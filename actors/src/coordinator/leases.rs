//! What factories do with leases: long-poll claims (placed by the scheduler), the fenced
//! writes on a lease they hold (renew, stage, complete, fail, release, the last with the usage
//! reports they carry), and their output.
//! Every write goes to the job's actor, which commits it after checking the epoch (J3).

use std::time::Duration;

use gigafactory_core::fleet::FactoryStatus;
use gigafactory_core::job::{Command, FactoryId, JobId};
use gigafactory_core::scope;
use gigafactory_core::scoring::FactoryView;
use gigafactory_core::usage::CARRIED_REPORTS_MAX;
use gigafactory_core::wire::{CHECKPOINT_MAX_BYTES, ClaimedJob, LeaseAnswer, LogChunk, UsageWrite};
use tokio::sync::oneshot;

use super::Coordinator;
use crate::error::{CoordError, Result};
use crate::job_actor::JobMsg;
use crate::scheduler::{ClaimAsk, SchedulerMsg};

/// Refuses a request id a factory write may not carry.
fn check_request_id(request_id: &str) -> Result<()> {
    if request_id.is_empty() || request_id.len() > REQUEST_ID_MAX_BYTES {
        return Err(CoordError::Invalid(format!(
            "request_id must be 1 to {REQUEST_ID_MAX_BYTES} characters"
        )));
    }
    Ok(())
}

/// Longest request id a factory write may carry.
const REQUEST_ID_MAX_BYTES: usize = 128;
/// Largest chunk of output one write may carry.
const LOG_CHUNK_MAX_BYTES: usize = 64 * 1024;
/// How long past its long-poll a claim waits for the scheduler before answering empty.
const CLAIM_ANSWER_GRACE_MS: u64 = 5_000;

impl Coordinator {
    /// Long-poll claim: up to `max` jobs for the factory, waiting up to `wait_ms` for work.
    pub async fn claim(&self, id: FactoryId, max: u32, wait_ms: u64) -> Result<Vec<ClaimedJob>> {
        let factory = self.factory(id).await?;
        match factory.status {
            FactoryStatus::Revoked => {
                return Err(CoordError::Unauthorized("factory revoked".into()));
            }
            FactoryStatus::Draining => return Ok(Vec::new()),
            FactoryStatus::Online | FactoryStatus::Offline => {}
        }
        let max = max.clamp(1, self.ctx.config.claim_batch_max);
        let wait_ms = wait_ms.min(self.ctx.config.claim_wait_max_ms);
        let (reply, answer) = oneshot::channel();
        // The claim says how many slots are free now (an agent asks for exactly that many);
        // the last heartbeat's count may predate the job that just ended, and a waiting
        // claim placed against it would wait out its long-poll with a slot free.
        let mut view = FactoryView::of(&factory);
        view.slots_busy = view.slots.saturating_sub(max.min(view.slots));
        let ask = ClaimAsk {
            factory_id: id,
            factory: view,
            max,
            deadline: self.now() + wait_ms,
            reply,
        };
        self.ctx.tell_scheduler(SchedulerMsg::Claim(ask));
        let started = std::time::Instant::now();
        let grace = Duration::from_millis(wait_ms + CLAIM_ANSWER_GRACE_MS);
        let out = match tokio::time::timeout(grace, answer).await {
            Ok(Ok(jobs)) => Ok(jobs),
            Ok(Err(_)) => Err(CoordError::Unavailable(
                "scheduler restarted; claim again".into(),
            )),
            Err(_) => Ok(Vec::new()),
        };
        metrics::histogram!("gigafactory_claim_latency_seconds")
            .record(started.elapsed().as_secs_f64());
        if let Ok(jobs) = &out {
            self.ctx.stats.claims_answered(jobs.len());
        }
        out
    }

    /// A fenced factory write (renew, stage, usage, complete, fail, release). `changed_paths`
    /// (with complete and fail) outside the job's scope become a warning event. `usage` (with
    /// an end) are the reports not sent yet: each is priced and applied before the end, in its
    /// transaction, once per its own request id; the end refused, none of them counts.
    pub async fn factory_write(
        &self,
        id: JobId,
        cmd: Command,
        request_id: String,
        changed_paths: Vec<String>,
        usage: Vec<UsageWrite>,
    ) -> Result<LeaseAnswer> {
        scope::check_changed_paths(&changed_paths).map_err(CoordError::Invalid)?;
        if let Command::Release {
            checkpoint: Some(c),
            ..
        } = &cmd
            && c.len() > CHECKPOINT_MAX_BYTES
        {
            return Err(CoordError::Invalid(format!(
                "a checkpoint reference is at most {CHECKPOINT_MAX_BYTES} bytes, so the job's \
                 record keeps it and the job can still be released"
            )));
        }
        if usage.len() > CARRIED_REPORTS_MAX {
            return Err(CoordError::Invalid(format!(
                "an end carries at most {CARRIED_REPORTS_MAX} usage reports; send the rest alone"
            )));
        }
        check_request_id(&request_id)?;
        let Some((factory, epoch)) = cmd.fence() else {
            return Err(CoordError::Internal("not a factory write".into()));
        };
        let mut carried = Vec::with_capacity(usage.len());
        for u in usage {
            check_request_id(&u.request_id)?;
            if u.request_id == request_id {
                return Err(CoordError::Invalid(format!(
                    "usage report {}: a carried report needs a request id of its own",
                    u.request_id
                )));
            }
            let report = self
                .usage_command(factory, epoch, u.report)
                .map_err(|e| CoordError::Invalid(format!("usage report {}: {e}", u.request_id)))?;
            carried.push((u.request_id, report));
        }
        self.ctx
            .ask_job(id, |reply| JobMsg::FactoryWrite {
                cmd: cmd.clone(),
                request_id: request_id.clone(),
                changed_paths: changed_paths.clone(),
                carried: carried.clone(),
                reply,
            })
            .await
    }

    /// Appends a chunk of the job's output, fenced like any factory write. Past the job's
    /// log bound it is refused with `LogLimitExceeded` (and the timeline says so).
    pub async fn append_log(
        &self,
        factory: FactoryId,
        id: JobId,
        epoch: u64,
        chunk: LogChunk,
    ) -> Result<LeaseAnswer> {
        if chunk.data.len() > LOG_CHUNK_MAX_BYTES {
            return Err(CoordError::Invalid(format!(
                "a log chunk holds at most {} KiB",
                LOG_CHUNK_MAX_BYTES / 1024
            )));
        }
        let job = self
            .ctx
            .ask_job(id, |reply| JobMsg::AppendLog {
                factory,
                epoch,
                chunk: chunk.clone(),
                reply,
            })
            .await?;
        Ok(LeaseAnswer::of(&job))
    }
}

//! What factories do with leases: long-poll claims (placed by the scheduler), the fenced
//! writes on a lease they hold (renew, stage, complete, fail, release, the last with the usage
//! reports they carry, and an end with the claims of the factory's next jobs), and their
//! output. Every write goes to the job's actor, which commits it after checking the epoch
//! (J3).

use std::time::{Duration, Instant};

use gigafactory_core::fleet::FactoryStatus;
use gigafactory_core::job::{Command, FactoryId, JobId};
use gigafactory_core::limits;
use gigafactory_core::metric_labels::FenceRoute;
use gigafactory_core::scope;
use gigafactory_core::scoring::FactoryView;
use gigafactory_core::usage::CARRIED_REPORTS_MAX;
use gigafactory_core::wire::{
    CHECKPOINT_MAX_BYTES, ClaimNext, ClaimedJob, EndAnswer, LeaseAnswer, LogChunk, UsageWrite,
};
use tokio::sync::oneshot;

use super::Coordinator;
use crate::error::{CoordError, Result};
use crate::job_actor::{JobMsg, Written};
use crate::scheduler::{
    ClaimAsk, PickAsk, Picked, SchedulerMsg, claim_commands, settle, unclaim, unsettled,
};

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
        let max = max.clamp(1, self.ctx.config.claim_batch_max);
        let Some(view) = self.claiming(id, max).await? else {
            return Ok(Vec::new());
        };
        let wait_ms = wait_ms.min(self.ctx.config.claim_wait_max_ms);
        let (reply, answer) = oneshot::channel();
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
        let leases = out.as_ref().ok().map(Vec::len);
        crate::metrics::long_poll(leases, started.elapsed());
        out
    }

    /// The factory as placement sees it while it claims `max` jobs; `None` while it drains.
    async fn claiming(&self, id: FactoryId, max: u32) -> Result<Option<FactoryView>> {
        let factory = self.factory(id).await?;
        match factory.status {
            FactoryStatus::Revoked => {
                return Err(CoordError::Unauthorized("factory revoked".into()));
            }
            FactoryStatus::Draining => return Ok(None),
            FactoryStatus::Online | FactoryStatus::Offline => {}
        }
        // The claim says how many slots are free now (an agent asks for exactly that many);
        // the last heartbeat's count may predate the job that just ended, and a waiting
        // claim placed against it would wait out its long-poll with a slot free.
        let mut view = FactoryView::of(&factory);
        view.slots_busy = view.slots.saturating_sub(max.min(view.slots));
        Ok(Some(view))
    }

    /// Places up to `max` queued jobs on the factory now, without waiting, for an end to
    /// claim in its transaction.
    async fn pick(&self, id: FactoryId, max: u32) -> Result<(Picked, u64)> {
        let max = max.clamp(1, self.ctx.config.claim_batch_max);
        let Some(view) = self.claiming(id, max).await? else {
            return Ok((Vec::new(), 0));
        };
        let rate = view.cost_per_hour_micros;
        let (reply, answer) = oneshot::channel();
        self.ctx.tell_scheduler(SchedulerMsg::Pick(PickAsk {
            factory_id: id,
            factory: view,
            max,
            reply,
        }));
        // A scheduler restarting meanwhile picked nothing.
        Ok((answer.await.unwrap_or_default(), rate))
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
        let end = self
            .factory_end(id, cmd, request_id, changed_paths, usage, None)
            .await?;
        Ok(end.lease)
    }

    /// [`Self::factory_write`] for an end (complete or fail) that may lease the factory its
    /// next jobs in its transaction (`claim_next`): the scheduler places them first, and
    /// they go back to the queue if the end is refused (a stale epoch, J3) or was a retry.
    pub async fn factory_end(
        &self,
        id: JobId,
        cmd: Command,
        request_id: String,
        changed_paths: Vec<String>,
        usage: Vec<UsageWrite>,
        claim_next: Option<ClaimNext>,
    ) -> Result<EndAnswer> {
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
        if let Command::Release {
            throttled_until: Some(until),
            ..
        } = &cmd
        {
            limits::check_throttle(*until, self.now())
                .map_err(|e| CoordError::Invalid(e.to_string()))?;
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
        if claim_next.is_some_and(|n| n.max_jobs == 0) {
            return Err(CoordError::Invalid(
                "claim_next.max_jobs must be at least 1".into(),
            ));
        }
        let (picked, rate) = match claim_next {
            Some(n) => self.pick(factory, n.max_jobs).await?,
            None => (Vec::new(), 0),
        };
        let then = claim_commands(&self.ctx, factory, rate, &picked);
        let route = FenceRoute::of(&cmd);
        let (now, started) = (self.now(), Instant::now());
        let written = self
            .ctx
            .ask_job(id, |reply| JobMsg::FactoryWrite {
                cmd: cmd.clone(),
                request_id: request_id.clone(),
                changed_paths: changed_paths.clone(),
                carried: carried.clone(),
                then: then.clone(),
                reply,
            })
            .await;
        crate::metrics::count_fenced(route, &written);
        match written {
            Ok(Written { answer, granted }) => {
                let next = match granted {
                    Some(granted) => settle(&self.ctx, factory, picked, granted, now, started),
                    None => {
                        unclaim(&self.ctx, picked);
                        Vec::new()
                    }
                };
                Ok(EndAnswer {
                    lease: answer,
                    next,
                })
            }
            Err(e) => {
                unsettled(&self.ctx, picked, &e);
                Err(e)
            }
        }
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
        let appended = self
            .ctx
            .ask_job(id, |reply| JobMsg::AppendLog {
                factory,
                epoch,
                chunk: chunk.clone(),
                reply,
            })
            .await;
        crate::metrics::count_fenced(FenceRoute::Logs, &appended);
        Ok(LeaseAnswer::of(&appended?))
    }
}

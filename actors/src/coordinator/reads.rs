//! Reading jobs: one job, filtered pages of them, a job's timeline, its output (with a watch
//! to follow it), and its place in the DAG (its parents and children, and its whole run). Reads are snapshot reads; they never conflict
//! with writers.

use gigafactory_core::job::{Job, JobId};
use gigafactory_core::query::JobFilter;
use gigafactory_core::wire::Event;
use gigafactory_storage::repo::{self, LogPage};
use gigafactory_storage::{Watch, transact};

use super::Coordinator;
use crate::error::{CoordError, Result};

/// Rows a filtered job listing examines per page before it returns what it found.
const LIST_SCAN_MAX_ROWS: usize = 10_000;
/// Rows one store read of a listing takes.
const LIST_READ_ROWS: usize = 500;
/// Most jobs one listing page returns.
pub(super) const LIST_PAGE_MAX: usize = 500;
/// Most events one timeline page returns.
const EVENTS_PAGE_MAX: usize = 1_000;
/// Most jobs the whole run of a job holds (its ancestors and descendants, nearest first).
const RUN_JOBS_MAX: usize = 300;
/// Most log chunks one page returns (its bytes are bounded too: `repo::LOG_PAGE_MAX_BYTES`).
const LOG_PAGE_MAX: usize = 10_000;

impl Coordinator {
    pub async fn job(&self, id: JobId) -> Result<Job> {
        transact!(self.ctx.store, |tx| repo::load_job(tx, id).await)?
            .ok_or_else(|| CoordError::NotFound(format!("job {id}")))
    }

    /// A page of jobs in creation order after `cursor`, filtered; the next cursor is set when
    /// more rows remain. A page examines at most `LIST_SCAN_MAX_ROWS` jobs, so a filter that
    /// matches few costs bounded work and returns what it found with a cursor to go on.
    pub async fn list_jobs(
        &self,
        filter: &JobFilter,
        cursor: Option<JobId>,
        limit: usize,
    ) -> Result<(Vec<Job>, Option<JobId>)> {
        let limit = limit.clamp(1, LIST_PAGE_MAX);
        if filter.waiting_for_input == Some(true) {
            // The open questions' own index holds exactly these jobs: read it, not every job.
            return self.list_waiting(filter, cursor, limit).await;
        }
        let mut after = cursor;
        let mut out = Vec::new();
        let mut scanned = 0;
        while out.len() < limit && scanned < LIST_SCAN_MAX_ROWS {
            let rows = transact!(self.ctx.store, |tx| repo::jobs_page(
                tx,
                after,
                LIST_READ_ROWS
            )
            .await)?;
            let exhausted = rows.len() < LIST_READ_ROWS;
            for job in rows {
                scanned += 1;
                after = Some(job.id);
                if filter.matches(&job) {
                    out.push(job);
                    if out.len() == limit {
                        break;
                    }
                }
            }
            if exhausted && (out.len() < limit || after.is_none()) {
                return Ok((out, None));
            }
        }
        Ok((out, after))
    }

    /// The job's timeline after event `after`.
    pub async fn events(&self, id: JobId, after: Option<u64>, limit: usize) -> Result<Vec<Event>> {
        self.job(id).await?;
        let limit = limit.clamp(1, EVENTS_PAGE_MAX);
        Ok(transact!(self.ctx.store, |tx| repo::events(
            tx, id, after, limit
        )
        .await)?)
    }

    /// Stored output after position `(attempt, seq)`, in order: at most `lines_max` chunks
    /// and `bytes_max` bytes (at most `repo::LOG_PAGE_MAX_BYTES`, and one chunk always).
    pub async fn logs(
        &self,
        id: JobId,
        after: Option<(u32, u64)>,
        lines_max: usize,
        bytes_max: usize,
    ) -> Result<LogPage> {
        let lines_max = lines_max.clamp(1, LOG_PAGE_MAX);
        Ok(transact!(self.ctx.store, |tx| repo::logs_after(
            tx, id, after, lines_max, bytes_max
        )
        .await)?)
    }

    /// Like [`Coordinator::logs`], with a watch armed in the same transaction that fires when
    /// the job gets more output (through any node): a follower reads, waits on the watch, and
    /// reads again, missing nothing in between.
    pub async fn logs_watch(
        &self,
        id: JobId,
        after: Option<(u32, u64)>,
        lines_max: usize,
        bytes_max: usize,
    ) -> Result<(LogPage, Watch)> {
        let lines_max = lines_max.clamp(1, LOG_PAGE_MAX);
        Ok(transact!(self.ctx.store, |tx| {
            let lines = repo::logs_after(tx, id, after, lines_max, bytes_max).await?;
            let watch = repo::watch_logs(tx, id).await?;
            Ok::<_, gigafactory_storage::Error>((lines, watch))
        })?)
    }

    /// A job with its parents and children.
    pub async fn dag(&self, id: JobId) -> Result<(Job, Vec<Job>, Vec<Job>)> {
        let job = self.job(id).await?;
        let child_ids = transact!(self.ctx.store, |tx| repo::children(tx, id).await)?;
        let mut children = Vec::with_capacity(child_ids.len());
        for c in child_ids {
            children.push(self.job(c).await?);
        }
        let mut parents = Vec::with_capacity(job.parents.len());
        for p in &job.parents {
            parents.push(self.job(*p).await?);
        }
        Ok((job, parents, children))
    }

    /// The whole run around job `id`: the job, then its ancestors and descendants, nearest
    /// first, at most `RUN_JOBS_MAX` in all; and whether some were left out.
    pub async fn run(&self, id: JobId) -> Result<(Vec<Job>, bool)> {
        let root = self.job(id).await?;
        let mut seen = std::collections::HashSet::from([id]);
        let mut run = vec![root.clone()];
        // Up through parents and down through children, never both in one walk: a sibling is
        // neither an ancestor nor a descendant.
        let mut queue: std::collections::VecDeque<(Job, bool)> =
            [(root.clone(), true), (root, false)].into();
        while let Some((job, up)) = queue.pop_front() {
            let next = if up {
                job.parents.clone()
            } else {
                transact!(self.ctx.store, |tx| repo::children(tx, job.id).await)?
            };
            for n in next {
                if !seen.insert(n) {
                    continue;
                }
                if run.len() == RUN_JOBS_MAX {
                    return Ok((run, true));
                }
                let found = self.job(n).await?;
                run.push(found.clone());
                queue.push_back((found, up));
            }
        }
        Ok((run, false))
    }
}

//! Questions to an operator: a job's ask (a fenced factory write, through the job's actor
//! like every other), the asking factory's poll for the outcome (a fenced snapshot read), an
//! operator's answer, and the timeouts the reaper ends with the coordinator's clock (Q2), so
//! a question whose job's agent died does not stay open.

use gigafactory_core::event::Author;
use gigafactory_core::job::question::{self, Ask};
use gigafactory_core::job::{self, Command, FactoryId, Job, JobId};
use gigafactory_core::wire::{AnswerBody, AskBody, LeaseAnswer, QuestionView};
use gigafactory_storage::{repo, transact};

use gigafactory_core::query::JobFilter;

use super::Coordinator;
use super::operate::reviewer;
use super::reads::LIST_PAGE_MAX;
use crate::commit::{self, JobWrite};
use crate::error::{CoordError, Result};
use crate::job_actor::JobMsg;

impl Coordinator {
    /// The job asks its operator a question; the write's request id is the question's id, so
    /// a retried ask opens it once.
    pub async fn ask(
        &self,
        id: JobId,
        factory: FactoryId,
        epoch: u64,
        request_id: String,
        body: AskBody,
    ) -> Result<LeaseAnswer> {
        let ask = Ask {
            id: request_id.clone(),
            text: body.text,
            choices: body.choices,
            default: body.default,
            timeout_ms: body.timeout_ms,
        };
        // Checked before the job's actor: a malformed question is refused whatever the lease.
        let ask = question::check(ask).map_err(|e| CoordError::Invalid(e.to_string()))?;
        let cmd = Command::Ask {
            factory,
            epoch,
            ask,
        };
        self.factory_write(id, cmd, request_id, Vec::new(), Vec::new())
            .await
    }

    /// The job's last question, for the factory holding its lease under `epoch` (J3: a stale
    /// epoch learns nothing, it is told it lost the lease).
    pub async fn question(
        &self,
        id: JobId,
        factory: FactoryId,
        epoch: u64,
    ) -> Result<Option<QuestionView>> {
        let job = self.job(id).await?;
        job::check_fence(&job, factory, epoch)?;
        Ok(job.question.as_ref().map(QuestionView::from))
    }

    /// An operator answers the job's open question.
    pub async fn answer(&self, id: JobId, body: AnswerBody, author: &Author) -> Result<Job> {
        let cmd = Command::Answer {
            question_id: body.question_id,
            by: reviewer(author)?,
            answer: body.answer,
            note: body.note,
        };
        self.ctx
            .ask_job(id, |reply| JobMsg::Apply {
                cmd: cmd.clone(),
                author: author.clone(),
                reply,
            })
            .await
    }
}

/// Open questions a listing of the jobs waiting for input reads at most: beyond them (more jobs
/// than this wait at once) the listing does not reach.
const WAITING_LIST_MAX: usize = 10_000;

impl Coordinator {
    /// A page of the jobs waiting for input (their question is open), in creation order after
    /// `cursor`, filtered by the rest of `filter`: read from the question-timeout index, which
    /// holds exactly them, so it costs the number of waiting jobs, not of all jobs.
    pub(super) async fn list_waiting(
        &self,
        filter: &JobFilter,
        cursor: Option<JobId>,
        limit: usize,
    ) -> Result<(Vec<Job>, Option<JobId>)> {
        let mut ids = Vec::new();
        let mut after = None;
        while ids.len() < WAITING_LIST_MAX {
            let page = transact!(self.ctx.store, |tx| repo::open_questions(
                tx,
                after,
                job::Millis::MAX,
                QUESTION_TIMEOUTS_READ
            )
            .await)?;
            after = page.last().copied();
            let exhausted = page.len() < QUESTION_TIMEOUTS_READ;
            ids.extend(page.into_iter().map(|(_, id)| id));
            if exhausted {
                break;
            }
        }
        // Creation order, as every listing: job ids are time-ordered (UUIDv7).
        ids.sort_unstable();
        ids.retain(|id| cursor.is_none_or(|c| *id > c));
        let mut out: Vec<Job> = Vec::new();
        for chunk in ids.chunks(LIST_PAGE_MAX) {
            let jobs = transact!(self.ctx.store, |tx| {
                let mut jobs = Vec::with_capacity(chunk.len());
                for id in chunk {
                    jobs.push(repo::load_job(tx, *id).await?);
                }
                Ok::<_, gigafactory_storage::Error>(jobs)
            })?;
            for job in jobs.into_iter().flatten() {
                if let Some(last) = out.get(limit.saturating_sub(1)) {
                    // A full page, and more waiting jobs after it.
                    let next = last.id;
                    return Ok((out, Some(next)));
                }
                if filter.matches(&job) {
                    out.push(job);
                }
            }
        }
        Ok((out, None))
    }
}

/// Questions of this node's shards one pass ends at most; the rest wait for the next pass.
const QUESTION_TIMEOUTS_MAX: usize = 1_000;
/// Due entries one pass reads at most, its own and other nodes' together: other nodes'
/// entries are read past (not counted against this node's), up to this bound.
const QUESTION_TIMEOUTS_SCAN_MAX: usize = 20_000;
/// Entries one store read of the pass takes.
const QUESTION_TIMEOUTS_READ: usize = 500;

/// Ends the questions past their timeout (read from the store's question-timeout index),
/// each with its default answer or as timed out, by the reaper, in the job's shard owner.
pub(crate) async fn time_out_questions(ctx: &std::sync::Arc<crate::context::Context>) {
    let now = ctx.now();
    for id in owned_due_questions(ctx, now).await {
        let write = JobWrite::batch(Author::Reaper, vec![(id, Command::QuestionTimeout)]);
        // A batch skips a refused command: a question answered since it was read is not
        // timed out, and the write commits nothing for it.
        match commit::commit(ctx, write).await {
            Ok(committed) => {
                for job in committed.jobs {
                    let how = job.question.as_ref().and_then(|q| q.outcome.as_ref());
                    let how = how.map_or("?", question::Outcome::name);
                    tracing::info!(job_id = %job.id, outcome = how, "question timed out");
                }
            }
            Err(e) => tracing::warn!(job_id = %id, error = %e, "cannot time out a question"),
        }
    }
}

/// Pages of the question-timeout index, after an entry.
trait DueIndex {
    fn page(
        &self,
        after: Option<repo::QuestionEntry>,
    ) -> impl Future<Output = std::result::Result<Vec<repo::QuestionEntry>, String>> + Send;
}

/// The store's index, due by `.1`.
struct StoreIndex<'a>(&'a crate::context::Context, job::Millis);

impl DueIndex for StoreIndex<'_> {
    async fn page(
        &self,
        after: Option<repo::QuestionEntry>,
    ) -> std::result::Result<Vec<repo::QuestionEntry>, String> {
        let (ctx, now) = (self.0, self.1);
        transact!(ctx.store, |tx| repo::open_questions(
            tx,
            after,
            now,
            QUESTION_TIMEOUTS_READ
        )
        .await)
        .map_err(|e: gigafactory_storage::Error| e.to_string())
    }
}

/// The jobs of this node's shards whose question is due at `now`, soonest first.
async fn owned_due_questions(ctx: &crate::context::Context, now: job::Millis) -> Vec<JobId> {
    owned_entries(&StoreIndex(ctx, now), |id| ctx.owns_shard(id)).await
}

/// The jobs `owns` keeps of `index`, read page by page past the others, so other nodes'
/// entries never crowd out this node's: at most [`QUESTION_TIMEOUTS_MAX`] of them, reading at
/// most [`QUESTION_TIMEOUTS_SCAN_MAX`] entries.
async fn owned_entries(index: &impl DueIndex, owns: impl Fn(JobId) -> bool) -> Vec<JobId> {
    let mut owned = Vec::new();
    let mut after = None;
    let mut scanned = 0;
    while owned.len() < QUESTION_TIMEOUTS_MAX && scanned < QUESTION_TIMEOUTS_SCAN_MAX {
        let page = match index.page(after).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the question-timeout index");
                break;
            }
        };
        scanned += page.len();
        after = page.last().copied();
        let exhausted = page.len() < QUESTION_TIMEOUTS_READ;
        owned.extend(page.into_iter().map(|(_, id)| id).filter(|id| owns(*id)));
        if exhausted {
            break;
        }
    }
    owned.truncate(QUESTION_TIMEOUTS_MAX);
    owned
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// An index of `n` due questions, in timeout order.
    fn index(n: u128) -> Vec<repo::QuestionEntry> {
        (0..n)
            .map(|i| (i as u64, JobId(uuid::Uuid::from_u128(i))))
            .collect()
    }

    /// The index, and how many entries it handed out.
    struct Listed(Vec<repo::QuestionEntry>, AtomicUsize);

    impl DueIndex for Listed {
        async fn page(
            &self,
            after: Option<repo::QuestionEntry>,
        ) -> std::result::Result<Vec<repo::QuestionEntry>, String> {
            let from = after.map_or(0, |(at, _)| at as usize + 1);
            let end = (from + QUESTION_TIMEOUTS_READ).min(self.0.len());
            let page = self.0[from.min(end)..end].to_vec();
            self.1.fetch_add(page.len(), Ordering::Relaxed);
            Ok(page)
        }
    }

    /// What a pass keeps of `index`, and how many entries it read.
    async fn collect(
        index: Vec<repo::QuestionEntry>,
        owns: impl Fn(JobId) -> bool,
    ) -> (Vec<JobId>, usize) {
        let listed = Listed(index, AtomicUsize::new(0));
        let owned = owned_entries(&listed, owns).await;
        (owned, listed.1.load(Ordering::Relaxed))
    }

    #[tokio::test]
    async fn other_nodes_due_questions_do_not_crowd_out_this_nodes() {
        // 3,000 due questions of other nodes first, then ten of ours.
        let all = index(3_010);
        let ours = |id: JobId| id.0.as_u128() >= 3_000;
        let (found, _) = collect(all, ours).await;
        assert_eq!(found.len(), 10, "ours are found behind the others'");
        assert!(found.iter().all(|id| ours(*id)));
    }

    #[tokio::test]
    async fn a_pass_ends_at_most_its_bound_and_reads_at_most_its_scan() {
        let all = index(5_000);
        assert_eq!(collect(all, |_| true).await.0.len(), QUESTION_TIMEOUTS_MAX);
        let never = index(QUESTION_TIMEOUTS_SCAN_MAX as u128 + 5_000);
        let (found, read) = collect(never, |_| false).await;
        assert!(found.is_empty());
        assert_eq!(
            read, QUESTION_TIMEOUTS_SCAN_MAX,
            "it stops at its scan bound"
        );
    }
}

//! Questions to an operator: a job's ask (a fenced factory write, through the job's actor
//! like every other), the asking factory's poll for the outcome (a fenced snapshot read), an
//! operator's answer, and the timeouts the reaper ends with the coordinator's clock (Q2), so
//! a question whose job's agent died does not stay open.

use gigafactory_core::event::Author;
use gigafactory_core::job::question::{self, Ask};
use gigafactory_core::job::{self, Command, FactoryId, Job, JobId};
use gigafactory_core::wire::{AnswerBody, AskBody, LeaseAnswer, QuestionView};
use gigafactory_storage::{repo, transact};

use super::Coordinator;
use super::operate::reviewer;
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

/// Questions one pass ends at most; the rest wait for the next pass.
const QUESTION_TIMEOUTS_MAX: usize = 1_000;

/// Ends the questions past their timeout (read from the store's question-timeout index),
/// each with its default answer or as timed out, by the reaper, in the job's shard owner.
pub(crate) async fn time_out_questions(ctx: &std::sync::Arc<crate::context::Context>) {
    let now = ctx.now();
    let due = transact!(ctx.store, |tx| repo::questions_due(
        tx,
        now,
        QUESTION_TIMEOUTS_MAX
    )
    .await);
    let Ok(due) = due else { return };
    for id in due.into_iter().filter(|id| ctx.owns_shard(*id)) {
        let write = JobWrite::batch(Author::Reaper, vec![(id, Command::QuestionTimeout)]);
        match commit::commit(ctx, write).await {
            Ok(_) => tracing::info!(job_id = %id, "question timed out"),
            Err(e) => tracing::warn!(job_id = %id, error = %e, "cannot time out a question"),
        }
    }
}

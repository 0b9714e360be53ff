//! The agent's side of a job's question (`gigafactory job ask`): it sends the question the
//! job wrote to its control directory as a fenced write (the question's id is its request id,
//! so a retry asks once), then, while the question is open, looks at its outcome with a
//! fenced read every [`QUESTION_POLL_MS`], and writes it back for the job. The lease stays
//! renewed meanwhile by the renew loop, as for any running job; the coordinator ends a
//! question at its timeout with its own clock, so the agent needs no clock of its own here.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gigafactory_core::wire::{ErrorCode, QuestionView};
use tokio::time::MissedTickBehavior;
use tracing::{info, warn};

use super::JobCtx;
use super::report::Written;
use crate::client::{CallError, REQUEST_TIMEOUT_MS, Retry, WriteOutcome};
use crate::control::{self, AnswerFile, QuestionFile};

/// How often the agent looks at an open question's outcome: an answer reaches the job within
/// about this long, for a read a second per waiting job.
pub const QUESTION_POLL_MS: u64 = 1_000;

/// Sends the job's questions and brings their outcomes back, until the job's task ends.
pub(super) async fn question_loop(ctx: Arc<JobCtx>, control_dir: PathBuf) {
    let mut tick = tokio::time::interval(ctx.shared.config.stage_poll_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The question sent and waiting for its outcome, with when it was last looked at.
    let mut open: Option<(String, tokio::time::Instant)> = None;
    let poll = Duration::from_millis(QUESTION_POLL_MS);
    loop {
        tick.tick().await;
        // A read of one small local file: cheaper than a trip to a blocking thread.
        let Some(question) = control::read_question(&control_dir) else {
            continue;
        };
        if control::read_answer(&control_dir).is_some_and(|a| a.id == question.id) {
            continue;
        }
        match &open {
            Some((id, looked)) if *id == question.id => {
                if looked.elapsed() < poll {
                    continue;
                }
                open = Some((id.clone(), tokio::time::Instant::now()));
                match look(&ctx, &question.id).await {
                    Looked::Ended(answer) => tell(&control_dir, &answer),
                    Looked::Open => {}
                    Looked::LeaseLost => return,
                }
            }
            _ => match ask(&ctx, &question).await {
                Asked::Open => {
                    info!(question = %question.id, "question asked");
                    open = Some((question.id.clone(), tokio::time::Instant::now()));
                }
                Asked::Refused(why) => {
                    warn!(question = %question.id, %why, "the question was refused");
                    tell(&control_dir, &AnswerFile::refused(&question.id, why));
                }
                Asked::LeaseLost => return,
            },
        }
    }
}

enum Asked {
    Open,
    Refused(String),
    LeaseLost,
}

/// Sends the question: a conflict about questions (one is open already) is the job's to hear
/// of, not a lost lease.
async fn ask(ctx: &JobCtx, question: &QuestionFile) -> Asked {
    let shared = &ctx.shared;
    // Built by the job's one builder of writes, so the question's text, choices and default
    // are redacted as every other report is.
    let write = ctx.fenced(question.id.clone(), &question.ask);
    let sent = shared
        .coordinator
        .write_as(
            &shared.identity.token,
            ctx.job.job_id,
            "question",
            write,
            Retry::Forever,
        )
        .await;
    if let Ok(WriteOutcome::Lost { code, .. }) = &sent
        && code == ErrorCode::QuestionConflict.as_str()
    {
        return Asked::Refused(format!("{code}: the job has an open question already"));
    }
    match ctx.written("question", sent) {
        Written::Accepted(_) => Asked::Open,
        Written::Ended => Asked::LeaseLost,
        Written::Refused(why) => Asked::Refused(why.to_string()),
    }
}

enum Looked {
    Open,
    Ended(AnswerFile),
    LeaseLost,
}

/// Reads the question's outcome under the job's lease; a lost lease stops the job as any
/// fenced write's would.
async fn look(ctx: &JobCtx, id: &str) -> Looked {
    let shared = &ctx.shared;
    let path = format!(
        "/v1/jobs/{}/question?epoch={}",
        ctx.job.job_id, ctx.job.epoch
    );
    let timeout = Duration::from_millis(REQUEST_TIMEOUT_MS);
    let read = shared
        .coordinator
        .get::<Option<QuestionView>>(&path, &shared.identity.token, timeout, Retry::Once)
        .await;
    match read {
        Ok(Some(view)) if view.id == id && view.status != "open" => {
            info!(question = id, status = %view.status, "question ended");
            Looked::Ended(AnswerFile::of(&view))
        }
        Ok(_) => Looked::Open,
        Err(CallError::Status {
            status: status @ (403 | 404 | 409),
            body,
        }) => {
            let lost = Ok(WriteOutcome::Lost {
                status,
                code: body.error,
                current_epoch: body.current_epoch,
            });
            match ctx.written("question", lost) {
                Written::Ended => Looked::LeaseLost,
                _ => Looked::Open,
            }
        }
        // Looked at again at the next poll.
        Err(e) => {
            warn!(question = id, error = %e, "cannot read the question's outcome");
            Looked::Open
        }
    }
}

fn tell(control_dir: &std::path::Path, answer: &AnswerFile) {
    if let Err(e) = control::write_answer(control_dir, answer) {
        warn!(error = %e, "cannot write the question's answer for the job");
    }
}

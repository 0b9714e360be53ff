//! `JobActor`: one per active job, a virtual actor — activated by the first command for its
//! job (a factory write or an operator action), passivated after `job_idle_ms` without one or
//! when the job is terminal. It serializes every command on its job and commits each through
//! `commit`, the one path every change of a job takes; log chunks, fenced like any factory
//! write, are appended here too. It holds no state the store does not: a crash loses
//! nothing, and the next command activates a fresh actor.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gigafactory_core::event::{Author, EventKind};
use gigafactory_core::job::{self, Command, FactoryId, Job, JobId};
use gigafactory_core::wire::{LeaseAnswer, LogChunk};
use gigafactory_storage::repo::{self, LOG_MAX_BYTES_PER_JOB, LogAppend, RepoError};
use gigafactory_storage::transact;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::commit::{self, Committed, JobWrite};
use crate::context::Context;
use crate::error::{CoordError, Result};
use crate::scheduler::Granted;

pub(crate) enum JobMsg {
    /// Apply a state-machine command of an operator or the scheduler.
    Apply {
        cmd: Command,
        author: Author,
        reply: RpcReplyPort<Result<Job>>,
    },
    /// Apply a factory's fenced write, idempotent by `request_id` (a retry by the same writer
    /// under the same lease gets the first answer again). `changed_paths`: what the job
    /// changed in its workspace (with complete or fail). `carried`: the factory writes an end
    /// brings along, each under its own request id (usage reports), applied before it in its
    /// transaction. `then`: claims leasing the factory its next jobs, following an end in
    /// its transaction.
    FactoryWrite {
        cmd: Command,
        request_id: String,
        changed_paths: Vec<String>,
        carried: Vec<(String, Command)>,
        then: Vec<(JobId, Command)>,
        reply: RpcReplyPort<Result<Written>>,
    },
    /// Append a chunk of output, fenced like any factory write.
    AppendLog {
        factory: FactoryId,
        epoch: u64,
        chunk: LogChunk,
        reply: RpcReplyPort<Result<Job>>,
    },
    /// Stop if nothing arrived since `seen` commands.
    IdleCheck(u64),
    /// Fault injection (admin route): fail; the next command re-activates the job.
    Crash,
}

/// What a factory write did.
pub(crate) struct Written {
    pub answer: LeaseAnswer,
    /// What became of the claims that followed it; `None` when none was applied (a retry
    /// answered from its first answer).
    pub granted: Option<Granted>,
}

pub(crate) struct JobActorArgs {
    pub ctx: Arc<Context>,
    pub id: JobId,
    pub queued: Arc<AtomicUsize>,
}

pub(crate) struct JobActor;

pub(crate) struct JobActorState {
    ctx: Arc<Context>,
    id: JobId,
    queued: Arc<AtomicUsize>,
    handled: u64,
}

impl Actor for JobActor {
    type Msg = JobMsg;
    type State = JobActorState;
    type Arguments = JobActorArgs;

    async fn pre_start(
        &self,
        _: ActorRef<JobMsg>,
        args: JobActorArgs,
    ) -> Result<JobActorState, ActorProcessingErr> {
        Ok(JobActorState {
            ctx: args.ctx,
            id: args.id,
            queued: args.queued,
            handled: 0,
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<JobMsg>,
        state: &mut JobActorState,
    ) -> Result<(), ActorProcessingErr> {
        state
            .ctx
            .actors
            .jobs
            .remove_if(&state.id, |_, slot| slot.actor.get_id() == myself.get_id());
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<JobMsg>,
        msg: JobMsg,
        state: &mut JobActorState,
    ) -> Result<(), ActorProcessingErr> {
        // No span is entered here: a guard held across the awaits below would leak into other
        // tasks (tracing's `Entered` is not for async code). Events carry job_id and epoch.
        match msg {
            JobMsg::Apply { cmd, author, reply } => {
                state.queued.fetch_sub(1, Ordering::Relaxed);
                let write = JobWrite::one(state.id, cmd, author);
                let outcome = commit::commit(&state.ctx, write).await.and_then(the_job);
                let terminal = matches!(&outcome, Ok(job) if job.state.is_terminal());
                let _ = reply.send(outcome);
                state.after_command(&myself, terminal);
            }
            JobMsg::FactoryWrite {
                cmd,
                request_id,
                changed_paths,
                carried,
                then,
                reply,
            } => {
                state.queued.fetch_sub(1, Ordering::Relaxed);
                let Some((factory, _)) = cmd.fence() else {
                    let _ = reply.send(Err(CoordError::Internal("not a factory write".into())));
                    return Ok(());
                };
                let write = JobWrite {
                    request_id: Some(request_id),
                    changed_paths,
                    carried,
                    then,
                    ..JobWrite::one(state.id, cmd, Author::Factory(factory))
                };
                // A replayed answer changed nothing: whether the job is terminal is not news.
                let outcome = match commit::commit(&state.ctx, write).await {
                    Ok(Committed {
                        replayed: Some(answer),
                        ..
                    }) => Ok((
                        Written {
                            answer,
                            granted: None,
                        },
                        false,
                    )),
                    Ok(mut c) => {
                        let granted = Granted {
                            claimed: std::mem::take(&mut c.claimed),
                            held: std::mem::take(&mut c.held),
                            limited: std::mem::take(&mut c.limited),
                        };
                        the_job(c).map(|job| {
                            let answer = LeaseAnswer::of(&job);
                            let granted = Some(granted);
                            (Written { answer, granted }, job.state.is_terminal())
                        })
                    }
                    Err(e) => Err(e),
                };
                let terminal = matches!(outcome, Ok((_, true)));
                let _ = reply.send(outcome.map(|(written, _)| written));
                state.after_command(&myself, terminal);
            }
            JobMsg::AppendLog {
                factory,
                epoch,
                chunk,
                reply,
            } => {
                state.queued.fetch_sub(1, Ordering::Relaxed);
                let outcome = state.append_log(factory, epoch, chunk).await;
                let _ = reply.send(outcome);
                state.after_command(&myself, false);
            }
            JobMsg::Crash => return Err("fault injected: job actor crash".into()),
            JobMsg::IdleCheck(seen) => {
                if seen == state.handled && state.queued.load(Ordering::Relaxed) == 0 {
                    myself.stop(Some("idle".into()));
                }
            }
        }
        Ok(())
    }
}

/// The one job a single write changed.
fn the_job(c: Committed) -> Result<Job> {
    c.jobs
        .into_iter()
        .next()
        .ok_or_else(|| CoordError::Internal("a write answered no job".into()))
}

impl JobActorState {
    fn after_command(&mut self, myself: &ActorRef<JobMsg>, terminal: bool) {
        self.handled += 1;
        if terminal && self.queued.load(Ordering::Relaxed) == 0 {
            myself.stop(Some("terminal".into()));
            return;
        }
        let seen = self.handled;
        myself.send_after(
            Duration::from_millis(self.ctx.config.job_idle_ms),
            move || JobMsg::IdleCheck(seen),
        );
    }

    /// Appends a chunk of the lease holder's output. Past the job's log bound the chunk is
    /// refused (`log_limit_exceeded`), and the first refusal of an attempt goes on the
    /// timeline.
    async fn append_log(&mut self, factory: FactoryId, epoch: u64, chunk: LogChunk) -> Result<Job> {
        let id = self.id;
        let now = self.ctx.now();
        let author = Author::Factory(factory);
        let (job, cut) = transact!(self.ctx.store, |tx| {
            let job = repo::load_job(tx, id)
                .await?
                .ok_or(RepoError::NotFound(id))?;
            job::check_fence(&job, factory, epoch)?;
            let cut = match repo::append_log(tx, &job, &chunk, now).await? {
                LogAppend::Kept => None,
                LogAppend::Refused { first: false } => Some(None),
                LogAppend::Refused { first: true } => {
                    let detail = format!(
                        "output past {} MiB is not kept; attempt {} was cut",
                        LOG_MAX_BYTES_PER_JOB >> 20,
                        job.attempts
                    );
                    let noted = repo::note(tx, &job, EventKind::OutputCut, &author, detail, now)?;
                    Some(Some(noted))
                }
            };
            Ok::<_, RepoError>((job, cut))
        })?;
        match cut {
            None => Ok(job),
            Some(noted) => {
                if let Some(t) = noted {
                    tracing::warn!(job_id = %id, epoch, "job output passed its bound; the rest is refused");
                    commit::adopt(&self.ctx, &[t]).await;
                }
                Err(CoordError::LogLimitExceeded {
                    limit_bytes: LOG_MAX_BYTES_PER_JOB as u64,
                })
            }
        }
    }
}

//! `JobActor`: one per active job, a virtual actor — activated by the first command for its
//! job (a factory write or an operator action), passivated after `job_idle_ms` without one or
//! when the job is terminal. It serializes every command on its job and applies each in one
//! store transaction, then runs the effects. It holds no state the store does not: a crash
//! loses nothing, and the next command activates a fresh actor.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gigafactory_core::job::{Command, Job, JobId};
use gigafactory_core::wire::{LeaseAnswer, LogChunk};
use gigafactory_storage::repo::{self, RepoError};
use gigafactory_storage::transact;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::coordinator::Shared;
use crate::effects;
use crate::error::{CoordError, Result};

pub(crate) enum JobMsg {
    /// Apply a state-machine command. `request_id` makes a factory write idempotent.
    /// `changed_paths`: what the job changed in its workspace (with complete or fail).
    Apply {
        cmd: Command,
        actor: String,
        request_id: Option<String>,
        changed_paths: Vec<String>,
        reply: RpcReplyPort<Result<Job>>,
    },
    /// Append a chunk of output, fenced like any factory write.
    AppendLog {
        factory: gigafactory_core::job::FactoryId,
        epoch: u64,
        chunk: LogChunk,
        reply: RpcReplyPort<Result<Job>>,
    },
    /// Stop if nothing arrived since `seen` commands.
    IdleCheck(u64),
    /// Fault injection (admin route): fail; the next command re-activates the job.
    Crash,
}

/// Paths a scope warning lists; the count says how many more there were.
const SCOPE_WARNING_PATHS_MAX: usize = 20;

pub(crate) struct JobActorArgs {
    pub shared: Arc<Shared>,
    pub id: JobId,
    pub queued: Arc<AtomicUsize>,
}

pub(crate) struct JobActor;

pub(crate) struct JobActorState {
    shared: Arc<Shared>,
    id: JobId,
    queued: Arc<AtomicUsize>,
    handled: u64,
}

/// The answer a factory gets for a write that was applied.
pub(crate) fn lease_answer(job: &Job) -> LeaseAnswer {
    let (expires_at, preempt_deadline) = match &job.state {
        gigafactory_core::job::JobState::Preempting {
            lease, deadline, ..
        } => (Some(lease.expires_at), Some(*deadline)),
        s => (s.lease().map(|l| l.expires_at), None),
    };
    LeaseAnswer {
        job_id: job.id,
        epoch: job.epoch,
        state: job.state.name().into(),
        expires_at,
        preempt_deadline,
    }
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
            shared: args.shared,
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
            .shared
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
            JobMsg::Apply {
                cmd,
                actor,
                request_id,
                changed_paths,
                reply,
            } => {
                state.queued.fetch_sub(1, Ordering::Relaxed);
                let outcome = state.apply(cmd, &actor, request_id, changed_paths).await;
                let terminal = matches!(&outcome, Ok(job) if job.state.is_terminal());
                let _ = reply.send(outcome);
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

impl JobActorState {
    fn after_command(&mut self, myself: &ActorRef<JobMsg>, terminal: bool) {
        self.handled += 1;
        if terminal && self.queued.load(Ordering::Relaxed) == 0 {
            myself.stop(Some("terminal".into()));
            return;
        }
        let seen = self.handled;
        myself.send_after(
            Duration::from_millis(self.shared.config.job_idle_ms),
            move || JobMsg::IdleCheck(seen),
        );
    }

    async fn apply(
        &mut self,
        cmd: Command,
        actor: &str,
        request_id: Option<String>,
        changed_paths: Vec<String>,
    ) -> Result<Job> {
        let id = self.id;
        let now = self.shared.now();
        let backoff = self.shared.config.backoff;
        enum Outcome {
            Remembered,
            Applied(Job, Vec<gigafactory_core::job::Effect>),
        }
        let outcome = transact!(self.shared.store, |tx| {
            if let Some(rid) = &request_id
                && repo::remembered_answer(tx, id, rid).await?.is_some()
            {
                return Ok::<_, RepoError>(Outcome::Remembered);
            }
            let (job, effects) =
                repo::transition(tx, id, cmd.clone(), actor, now, &backoff).await?;
            let (outside, _) =
                gigafactory_core::scope::out_of_scope(&job.spec.allowed_scope, &changed_paths);
            if !outside.is_empty() {
                let listed: Vec<&str> = outside
                    .iter()
                    .take(SCOPE_WARNING_PATHS_MAX)
                    .map(String::as_str)
                    .collect();
                let detail = format!(
                    "{} changed path(s) outside allowed_scope: {}",
                    outside.len(),
                    listed.join(", ")
                );
                repo::append_event_n(tx, &job, 1, "scope_warning", actor, Some(detail), now)?;
            }
            if let Some(rid) = &request_id {
                repo::remember_answer(tx, id, rid, &lease_answer(&job))?;
            }
            Ok(Outcome::Applied(job, effects))
        })?;
        match outcome {
            Outcome::Applied(job, effects) => {
                tracing::debug!(job_id = %job.id, epoch = job.epoch, state = job.state.name(), command = cmd.name(), "job command applied");
                // Renewals say nothing new; the timeline leaves them out too.
                if !matches!(cmd, Command::Renew { .. }) {
                    self.shared.publish_event(&job, cmd.name(), actor);
                }
                effects::dispatch(&self.shared, &job, effects).await;
                Ok(job)
            }
            // A retry of a write that was applied: answer with the job as it is now.
            Outcome::Remembered => transact!(self.shared.store, |tx| repo::load_job(tx, id).await)?
                .ok_or_else(|| CoordError::NotFound(format!("job {id}"))),
        }
    }

    async fn append_log(
        &mut self,
        factory: gigafactory_core::job::FactoryId,
        epoch: u64,
        chunk: LogChunk,
    ) -> Result<Job> {
        let id = self.id;
        let data = encode_chunk(&chunk);
        let job = transact!(self.shared.store, |tx| {
            let job = repo::load_job(tx, id)
                .await?
                .ok_or(RepoError::NotFound(id))?;
            if epoch != job.epoch {
                return Err(RepoError::Job(gigafactory_core::job::JobError::Fenced {
                    presented: epoch,
                    current: job.epoch,
                }));
            }
            match job.state.lease() {
                Some(l) if l.factory == factory => {}
                Some(_) => {
                    return Err(RepoError::Job(
                        gigafactory_core::job::JobError::NotLeaseHolder,
                    ));
                }
                None => {
                    return Err(RepoError::Job(gigafactory_core::job::JobError::Fenced {
                        presented: epoch,
                        current: job.epoch,
                    }));
                }
            }
            repo::append_log(tx, id, job.attempts, chunk.seq, &data).await?;
            Ok(job)
        })?;
        Ok(job)
    }
}

/// A stored log chunk: one byte naming the stream (`o` stdout, `e` stderr), then the text.
fn encode_chunk(chunk: &LogChunk) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunk.data.len() + 32);
    out.push(match chunk.stream {
        gigafactory_core::wire::LogStream::Stdout => b'o',
        gigafactory_core::wire::LogStream::Stderr => b'e',
    });
    out.extend_from_slice(chunk.data.as_bytes());
    out
}

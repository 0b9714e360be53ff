//! The one way a job changes. Whoever changes a job (a job actor for factory writes and
//! operator actions, the scheduler for claims, the reaper for expiries and budgets) describes
//! the change as a [`JobWrite`] and calls [`commit`]: one store transaction applies the
//! commands through `repo::transition` (which carries each change to the job's descendants),
//! and only after it committed are the changes announced on the fleet stream and their
//! effects carried out ([`adopt`], also used for new submissions). A factory's end may carry
//! writes of its own (usage reports): they are applied first, in the end's own transition
//! (`repo::transitions`: the job read, written and charged once), each counted once under its
//! own request id. An end may also lease the factory's next jobs: their claims follow it in
//! its transaction (`then`), each skipped when refused, as in a batch of claims.

use std::sync::Arc;

use gigafactory_core::budget::{Hold, Level};
use gigafactory_core::event::{Author, EventKind, Transition};
use gigafactory_core::job::{self, Command, Job, JobId};
use gigafactory_core::limits::LimitHold;
use gigafactory_core::scope::{out_of_scope, scope_warning};
use gigafactory_core::tracker;
use gigafactory_core::wire::LeaseAnswer;
use gigafactory_storage::repo::{self, RepoError};
use gigafactory_storage::{Transaction, transact};

use crate::context::Context;
use crate::effects;
use crate::error::Result;
use crate::scheduler::SchedulerMsg;

/// Commands for one transaction, and who gives them.
pub(crate) struct JobWrite {
    pub author: Author,
    /// Applied in order; each job's change is carried to its descendants.
    pub commands: Vec<(JobId, Command)>,
    /// Makes a single factory write idempotent: a retry with the same id, by the same writer
    /// under the same lease, is answered as the first was, and applies nothing again.
    pub request_id: Option<String>,
    /// What the job changed in its workspace (with complete or fail): paths outside its
    /// `allowed_scope` become a warning on its timeline.
    pub changed_paths: Vec<String>,
    /// A batch (claims, reaps) skips the commands the state machine refuses and commits the
    /// rest; otherwise a refusal fails the write and nothing changes.
    pub skip_refused: bool,
    /// Factory writes this one carries (the usage reports an end brings along), each with its
    /// own request id: applied in order before the single command, in its transition, each
    /// skipped when its id was answered before (it came alone first), and remembered under
    /// it while its lease lives (see [`remember_carried`]). A refused one refuses the whole
    /// write, and nothing is written; but one that ends the lease stays, as it would alone,
    /// and the rest is refused (see `repo::transitions`).
    pub carried: Vec<(String, Command)>,
    /// Claims that follow the single command in its transaction once it applied (an end
    /// leasing the factory's next jobs): each refused one is skipped, as in a batch.
    pub then: Vec<(JobId, Command)>,
}

impl JobWrite {
    /// One command that must apply.
    pub fn one(id: JobId, cmd: Command, author: Author) -> Self {
        JobWrite {
            author,
            commands: vec![(id, cmd)],
            request_id: None,
            changed_paths: Vec::new(),
            skip_refused: false,
            carried: Vec::new(),
            then: Vec::new(),
        }
    }

    /// Commands of which those the state machine refuses are skipped.
    pub fn batch(author: Author, commands: Vec<(JobId, Command)>) -> Self {
        JobWrite {
            author,
            commands,
            request_id: None,
            changed_paths: Vec::new(),
            skip_refused: true,
            carried: Vec::new(),
            then: Vec::new(),
        }
    }
}

/// What a write did.
pub(crate) struct Committed {
    /// Each commanded job as it is now (in a batch, the refused ones left out).
    pub jobs: Vec<Job>,
    /// The jobs the claims that followed (`then`) leased.
    pub claimed: Vec<Job>,
    /// In a batch, or of the claims that followed: the jobs a budget held, and why (claims
    /// of them were refused).
    pub held: Vec<(JobId, Hold)>,
    /// In a batch, or of the claims that followed: the jobs a concurrency or rate limit
    /// held, and which.
    pub limited: Vec<(JobId, LimitHold)>,
    /// A factory write retried under its request id: the answer it got the first time
    /// (`jobs` is empty; nothing was applied).
    pub replayed: Option<LeaseAnswer>,
}

/// What the transaction of a write decided.
enum Outcome {
    /// Applied: the jobs, every change, and the refusal of a command after others.
    Applied(Committed, Vec<Transition>, Option<job::JobError>),
    /// A retry of a write answered before: that answer.
    Replayed(LeaseAnswer),
}

/// Commits `write` and carries out what it changed.
pub(crate) async fn commit(ctx: &Arc<Context>, write: JobWrite) -> Result<Committed> {
    let now = ctx.now();
    let backoff = ctx.config.backoff;
    let single = match write.commands.as_slice() {
        [(id, _)] => Some(*id),
        _ => None,
    };
    debug_assert!(write.request_id.is_none() || single.is_some());
    debug_assert!(write.carried.is_empty() || single.is_some());
    debug_assert!(write.then.is_empty() || single.is_some());
    // The writer of a single factory write: its answers are remembered under it, so a
    // request id reused by another factory (or under another lease) finds nothing and meets
    // the fence (J3) like any new write.
    let writer = match write.commands.as_slice() {
        [(_, cmd)] => repo::Writer::of(cmd),
        _ => None,
    };
    debug_assert!(write.request_id.is_none() || writer.is_some());
    let outcome = transact!(ctx.store, |tx| {
        if let (Some(rid), Some(id), Some(writer)) = (&write.request_id, single, writer)
            && let Some(answer) = repo::remembered_answer(tx, id, writer, rid).await?
        {
            return Ok::<_, RepoError>(Outcome::Replayed(answer));
        }
        let mut jobs = Vec::with_capacity(write.commands.len());
        let mut claimed = Vec::with_capacity(write.then.len());
        let mut held = Vec::new();
        let mut limited = Vec::new();
        let mut changes = Vec::with_capacity(write.commands.len() + write.carried.len());
        let carried = match (single, writer) {
            (Some(id), Some(writer)) => uncounted(tx, id, writer, &write.carried).await?,
            _ => Vec::new(),
        };
        let commanded = write.commands.iter().map(|c| (c, false));
        for ((id, cmd), follows) in commanded.chain(write.then.iter().map(|c| (c, true))) {
            let skip = write.skip_refused || follows;
            // The carried writes go first, in the command's own transition.
            let before: &[&(String, Command)] = if follows { &[] } else { &carried };
            let cmds = before.iter().map(|(_, c)| c.clone());
            let cmds = cmds.chain([cmd.clone()]).collect();
            let book = &ctx.budget_book;
            match repo::transitions(tx, *id, cmds, &write.author, now, &backoff, book).await {
                Ok((mut cascade, None)) if follows => {
                    claimed.push(cascade[0].job.clone());
                    changes.append(&mut cascade);
                }
                Ok((mut cascade, None)) => {
                    jobs.push(cascade[carried.len()].job.clone());
                    remember_carried(tx, *id, writer, &carried, &cascade)?;
                    changes.append(&mut cascade);
                }
                // A carried report took the lease away (it passed the job's own cost budget):
                // what was applied up to it stays, as it would alone, and the rest of the
                // write is refused as it then would be, once this much committed.
                Ok((mut cascade, Some(refusal))) => {
                    changes.append(&mut cascade);
                    enqueue_echoes(tx, &ctx.config, &changes, now)?;
                    let committed = Committed {
                        jobs,
                        claimed,
                        held,
                        limited,
                        replayed: None,
                    };
                    return Ok(Outcome::Applied(committed, changes, Some(refusal)));
                }
                Err(RepoError::Held(hold)) if skip => held.push((*id, hold)),
                Err(RepoError::Limited(hold)) if skip => limited.push((*id, hold)),
                Err(RepoError::Job(_) | RepoError::NotFound(_)) if skip => {}
                Err(e) => return Err(e),
            }
        }
        enqueue_echoes(tx, &ctx.config, &changes, now)?;
        if let [job] = jobs.as_slice() {
            let (outside, _) = out_of_scope(&job.spec.allowed_scope, &write.changed_paths);
            if !outside.is_empty() {
                let detail = scope_warning(&outside);
                repo::append_event(
                    tx,
                    job,
                    1,
                    EventKind::ScopeWarning,
                    &write.author,
                    Some(detail),
                    now,
                )?;
            }
            if let (Some(rid), Some(writer)) = (&write.request_id, writer) {
                repo::remember_answer(tx, job.id, writer, rid, &LeaseAnswer::of(job))?;
            }
        }
        let committed = Committed {
            jobs,
            claimed,
            held,
            limited,
            replayed: None,
        };
        Ok(Outcome::Applied(committed, changes, None))
    })?;
    match outcome {
        Outcome::Applied(committed, changes, refusal) => {
            adopt(ctx, &changes).await;
            match refusal {
                Some(refusal) => Err(refusal.into()),
                None => Ok(committed),
            }
        }
        Outcome::Replayed(answer) => Ok(Committed {
            jobs: Vec::new(),
            claimed: Vec::new(),
            held: Vec::new(),
            limited: Vec::new(),
            replayed: Some(answer),
        }),
    }
}

/// The writes carried on a write to job `id` that were not counted yet, each request id once:
/// one whose request id has an answer came alone first (the agent carries again a report
/// whose answer it lost).
async fn uncounted<'w, T: Transaction>(
    tx: &mut T,
    id: JobId,
    writer: repo::Writer,
    carried: &'w [(String, Command)],
) -> std::result::Result<Vec<&'w (String, Command)>, RepoError> {
    let mut out: Vec<&(String, Command)> = Vec::with_capacity(carried.len());
    for write in carried {
        let (rid, _) = write;
        if out.iter().any(|(seen, _)| seen == rid) {
            continue;
        }
        if repo::remembered_answer(tx, id, writer, rid)
            .await?
            .is_none()
        {
            out.push(write);
        }
    }
    Ok(out)
}

/// Remembers the answer to each carried write (its change is `changes[i]`) while a resend of
/// it could still apply: only while the lease it was written under lives. An end takes its
/// lease away, so after it the fence refuses any resend of its carried reports, and a retry
/// of the end itself is answered from the end's own remembered answer; nothing is written
/// for them then (a write per report saved, in the common case).
fn remember_carried<T: Transaction>(
    tx: &mut T,
    id: JobId,
    writer: Option<repo::Writer>,
    carried: &[&(String, Command)],
    changes: &[Transition],
) -> std::result::Result<(), RepoError> {
    let Some(writer) = writer.filter(|_| !carried.is_empty()) else {
        return Ok(());
    };
    let Some(after) = changes.get(carried.len()) else {
        return Ok(());
    };
    if job::check_fence(&after.job, writer.factory, writer.epoch).is_err() {
        return Ok(());
    }
    for ((rid, _), change) in carried.iter().zip(changes) {
        repo::remember_answer(tx, id, writer, rid, &LeaseAnswer::of(&change.job))?;
    }
    Ok(())
}

/// Queues, in the change's own transaction, the echo of every change a tracker hears of (a
/// job from an item of a source with a callback).
fn enqueue_echoes<T: gigafactory_storage::Transaction>(
    tx: &mut T,
    config: &crate::config::Config,
    changes: &[Transition],
    now: u64,
) -> std::result::Result<(), gigafactory_storage::Error> {
    for t in changes {
        let Some(item) = &t.job.origin else { continue };
        let echoed = config
            .intake
            .get(&item.source)
            .is_some_and(|s| s.callback_url.is_some());
        if !echoed {
            continue;
        }
        if let Some(echo) = tracker::echo(t.before.as_ref(), &t.job, t.kind) {
            repo::enqueue_delivery(tx, &tracker::new_delivery(item, &t.job, echo, now))?;
        }
    }
    Ok(())
}

/// Carries out committed changes' effects and announces the changes on the fleet stream. Call
/// only after the transaction that made them committed. Effects go first, so whoever sees a
/// change announced can count on them being under way (a job made ready is in the
/// scheduler's mailbox before its event is on the stream).
pub(crate) async fn adopt(ctx: &Arc<Context>, changes: &[Transition]) {
    for t in changes {
        tracing::debug!(job_id = %t.job.id, epoch = t.job.epoch, state = t.job.state.name(), kind = %t.kind, author = %t.author, "job changed");
        effects::dispatch(ctx, t).await;
        if t.kind.on_timeline() {
            ctx.fleet.publish(&t.job, t.kind, &t.author, t.at, None);
        }
        for crossing in &t.crossings {
            tracing::warn!(budget = %crossing.budget, level = crossing.level.name(), job_id = %t.job.id, "{}", crossing.message());
            let kind = match crossing.level {
                Level::Alert => EventKind::BudgetAlert,
                Level::Exhausted => EventKind::BudgetReached,
            };
            ctx.fleet
                .publish(&t.job, kind, &t.author, t.at, Some(crossing.message()));
            if crossing.level == Level::Exhausted {
                ctx.tell_scheduler(SchedulerMsg::BudgetReached(crossing.clone()));
            }
        }
    }
}

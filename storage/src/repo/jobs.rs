//! Jobs in the store: their records with the indexes derived from them, their timelines, and
//! every change to them. A change is `core::job::apply` on the stored job, written with its
//! event, and then carried to the job's descendants in the same transaction
//! (`core::parents`): children run when every parent succeeded, are cancelled when one ends
//! badly, and come back when that parent starts a new life. Each change is returned as a
//! [`Transition`] for the caller to announce and carry out after the commit.

use std::collections::VecDeque;

use gigafactory_core::backoff::Backoff;
use gigafactory_core::budget::Level;
use gigafactory_core::event::{Author, EventKind, Transition};
use gigafactory_core::job::{
    self, Command, Effect, FactoryId, Job, JobError, JobId, JobState, Millis,
};
use gigafactory_core::parents::{self, Readiness};
use gigafactory_core::wire::{Event, LeaseAnswer};

use super::budgets::BudgetBook;
use super::{ReadyEntry, RepoError};
use crate::codec;
use crate::error::Error;
use crate::keys;
use crate::txn::{KeyRange, RangeOptions, Transaction};

/// Children of one job read per cascade step; a job's children beyond this are not reached.
pub const CHILDREN_MAX: usize = 10_000;

pub async fn load_job<T: Transaction>(tx: &mut T, id: JobId) -> Result<Option<Job>, Error> {
    match tx.get(&keys::job(id.0)).await? {
        Some(v) => Ok(Some(codec::decode(&v)?)),
        None => Ok(None),
    }
}

/// Writes `new` (whose previous version is `old`) and moves its index entries: the ready
/// index holds exactly the queued and failed jobs, the lease-expiry index exactly the leased
/// ones, the question-timeout index exactly the open questions. A job that became ready bumps
/// the `ready` signal that waiting claims watch.
pub fn save_job<T: Transaction>(tx: &mut T, old: Option<&Job>, new: &Job) -> Result<(), Error> {
    tx.set(&keys::job(new.id.0), &codec::encode(new)?)?;
    let ready_key = |j: &Job| {
        j.state
            .ready_at()
            .map(|_| keys::ready(j.spec.priority, j.created_at, j.id.0))
    };
    let lease_key = |j: &Job| {
        j.state
            .lease()
            .map(|l| keys::lease_expiry(l.expires_at, j.id.0))
    };
    let (old_ready, new_ready) = (old.and_then(ready_key), ready_key(new));
    let became_ready =
        new_ready.is_some() && old.and_then(|o| o.state.ready_at()) != new.state.ready_at();
    if old_ready != new_ready || became_ready {
        if let Some(k) = &old_ready {
            tx.clear(k)?;
        }
        if let (Some(k), Some(entry)) = (&new_ready, ReadyEntry::of(new)) {
            tx.set(k, &codec::encode(&entry)?)?;
            tx.atomic_add(&keys::signal("ready"), 1)?;
        }
    }
    let (old_lease, new_lease) = (old.and_then(lease_key), lease_key(new));
    move_entry(tx, old_lease, new_lease, &new.epoch.to_le_bytes())?;
    // The question-timeout index holds exactly the open questions.
    let due_key =
        |j: &Job| job::question::open(j).map(|q| keys::question_due(q.timeout_at, j.id.0));
    move_entry(tx, old.and_then(due_key), due_key(new), &[])
}

/// Moves an index entry from key `old` to key `new` (either may be none), with `value`.
fn move_entry<T: Transaction>(
    tx: &mut T,
    old: Option<Vec<u8>>,
    new: Option<Vec<u8>>,
    value: &[u8],
) -> Result<(), Error> {
    if old != new {
        if let Some(k) = &old {
            tx.clear(k)?;
        }
        if let Some(k) = &new {
            tx.set(k, value)?;
        }
    }
    Ok(())
}

/// Where a question sits in the question-timeout index: its timeout and its job.
pub type QuestionEntry = (Millis, JobId);

/// The open questions (exactly the jobs waiting for input) with a timeout at or before
/// `until` (`Millis::MAX`: all of them), soonest first, after `after`, at most `limit`.
pub async fn open_questions<T: Transaction>(
    tx: &mut T,
    after: Option<QuestionEntry>,
    until: Millis,
    limit: usize,
) -> Result<Vec<QuestionEntry>, Error> {
    let mut range = keys::questions_due_by(until);
    if let Some((at, id)) = after {
        range.begin = KeyRange::single(&keys::question_due(at, id.0)).end;
    }
    let rows = tx
        .get_range(&range, RangeOptions::limit(limit).snapshot())
        .await?;
    rows.iter()
        .map(|(k, _)| keys::question_due_parts(k).map(|(at, id)| (at, JobId(id))))
        .collect()
}

/// Appends the `n`th event of a write to the job's timeline (the transition's is 0, a warning
/// beside it 1). Its sequence is the job's `rev` at the write, which grows with every write,
/// so events of one job never collide.
pub fn append_event<T: Transaction>(
    tx: &mut T,
    job: &Job,
    n: u32,
    kind: EventKind,
    author: &Author,
    detail: Option<String>,
    now: Millis,
) -> Result<(), Error> {
    let event = Event {
        seq: job.rev,
        at: now,
        kind,
        actor: author.clone(),
        epoch: job.epoch,
        state: job.state.name().into(),
        detail,
    };
    tx.set(&keys::event(job.id.0, job.rev, n), &codec::encode(&event)?)
}

/// What a submission did.
#[derive(Debug)]
pub enum Submitted {
    /// A new job, and its change to announce.
    Made(Box<Transition>),
    /// The idempotency key was used before by the same submission ([`job::same_submission`]):
    /// the job made then. Nothing was written.
    Repeat(JobId),
    /// The idempotency key belongs to `existing`, submitted with another spec. Nothing was
    /// written.
    Conflict { key: String, existing: JobId },
}

/// Submits a new job: queued when its parents all succeeded (or it has none), pending while
/// some have not finished, refused when one ended badly. With an idempotency key that was
/// used before, writes nothing and says whether the job made then was the same submission.
pub async fn submit<T: Transaction>(
    tx: &mut T,
    job: &Job,
    author: &Author,
) -> Result<Submitted, RepoError> {
    if let Some(idem) = &job.spec.idempotency_key {
        let key = keys::idempotency(&job.spec.product, idem);
        if let Some(existing) = tx.get(&key).await? {
            let id = uuid::Uuid::from_slice(&existing).map_err(|e| Error::Codec(e.to_string()))?;
            let id = JobId(id);
            let first = load_job(tx, id).await?.ok_or(RepoError::NotFound(id))?;
            return Ok(if job::same_submission(&first, job) {
                Submitted::Repeat(id)
            } else {
                Submitted::Conflict {
                    key: idem.clone(),
                    existing: id,
                }
            });
        }
        tx.set(&key, job.id.0.as_bytes())?;
    }
    let mut job = job.clone();
    job.state = match readiness_of(tx, &job).await? {
        Readiness::Ready => JobState::Queued {
            not_before: job.created_at,
        },
        Readiness::Waiting => JobState::Pending,
        Readiness::Blocked { parent, state } => {
            return Err(job::JobError::ParentEnded { parent, state }.into());
        }
    };
    save_job(tx, None, &job)?;
    for parent in &job.parents {
        tx.set(&keys::child(parent.0, job.id.0), &[])?;
    }
    append_event(
        tx,
        &job,
        0,
        EventKind::Submitted,
        author,
        None,
        job.created_at,
    )?;
    let effects = job
        .state
        .ready_at()
        .map(|at| Effect::Ready { at })
        .into_iter()
        .collect();
    Ok(Submitted::Made(Box::new(Transition {
        before: None,
        kind: EventKind::Submitted,
        author: author.clone(),
        effects,
        at: job.created_at,
        crossings: Vec::new(),
        job,
    })))
}

/// Applies `cmd` to job `id`, writes it with its event, and carries the change to the job's
/// descendants. Returns every change, the job's own first. Nothing is written when the state
/// machine refuses.
pub async fn transition<T: Transaction>(
    tx: &mut T,
    id: JobId,
    cmd: Command,
    author: &Author,
    now: Millis,
    backoff: &Backoff,
    book: &BudgetBook,
) -> Result<Vec<Transition>, RepoError> {
    let (changes, refused) = transitions(tx, id, vec![cmd], author, now, backoff, book).await?;
    debug_assert!(refused.is_none(), "a first command's refusal is an error");
    Ok(changes)
}

/// Applies `cmds` to job `id` one after the other, each as it would apply alone (its own
/// event, its own [`Transition`]), but with the job read and written once and its budgets
/// charged once: an end with the usage reports it carries costs little more than the end.
/// Returns the changes, the job's own first (one per command applied, in order) and then its
/// descendants', with the refusal of a command that came after others: the first refused
/// ends the sequence, and what came before it stays, as it would have had each come alone
/// (the caller answers the refusal once this much committed). When the first command is
/// refused nothing is written and the refusal is the error.
pub async fn transitions<T: Transaction>(
    tx: &mut T,
    id: JobId,
    cmds: Vec<Command>,
    author: &Author,
    now: Millis,
    backoff: &Backoff,
    book: &BudgetBook,
) -> Result<(Vec<Transition>, Option<JobError>), RepoError> {
    if cmds.is_empty() {
        return Ok((Vec::new(), None));
    }
    let old = load_job(tx, id).await?.ok_or(RepoError::NotFound(id))?;
    let mut changes: Vec<Transition> = Vec::with_capacity(cmds.len());
    let mut refused = None;
    // The last change that spent: the one a budget's crossing is announced with.
    let mut spender = 0;
    for cmd in cmds {
        let job = changes.last().map_or(&old, |t| &t.job);
        let spent_before = job.cost.total();
        match step(tx, job, cmd, author, now, backoff, book).await {
            Ok(change) => {
                if change.job.cost.total() > spent_before {
                    spender = changes.len();
                }
                changes.push(change);
            }
            Err(RepoError::Job(e)) if !changes.is_empty() => {
                refused = Some(e);
                break;
            }
            Err(e) => return Err(e),
        }
    }
    let new = &changes[changes.len() - 1].job;
    save_job(tx, Some(&old), new)?;
    let spent = new.cost.total().saturating_sub(old.cost.total());
    let crossings = super::budgets::charge(tx, book, new, spent, now).await?;
    let concerns_children = parents::concerns_children(&old.state, &new.state);
    let spending = &mut changes[spender];
    for (n, crossing) in (3..).zip(&crossings) {
        let kind = match crossing.level {
            Level::Alert => EventKind::BudgetAlert,
            Level::Exhausted => EventKind::BudgetReached,
        };
        let detail = Some(crossing.message());
        append_event(tx, &spending.job, n, kind, author, detail, now)?;
    }
    spending.crossings = crossings;
    if concerns_children {
        cascade(tx, id, now, backoff, &mut changes).await?;
    }
    Ok((changes, refused))
}

/// Applies one command to `job` (as the store holds it, or as the commands before it in the
/// same write left it) and writes what the command writes besides the job: its events, the
/// end of the last lease's answers for a claim, the counts of the limits a claim passed, the
/// slots a lease's end gives back, the file of an artifact. The job itself is saved by the
/// caller. A claim a budget or a limit holds is refused first.
async fn step<T: Transaction>(
    tx: &mut T,
    job: &Job,
    cmd: Command,
    author: &Author,
    now: Millis,
    backoff: &Backoff,
    book: &BudgetBook,
) -> Result<Transition, RepoError> {
    let parents = if cmd.needs_parents() {
        readiness_of(tx, job).await?
    } else {
        Readiness::Ready
    };
    let mut cmd = cmd;
    let claim = matches!(cmd, Command::Claim { .. });
    // A paused or exhausted budget leases nothing new.
    if claim && let Some(hold) = super::budgets::hold_of(tx, book, job, now).await? {
        return Err(RepoError::Held(hold));
    }
    // Nor does a full concurrency limit or a rate not due yet.
    let mut admission = None;
    if let Command::Claim { limit_slots, .. } = &mut cmd {
        let passed = super::limits::check_claim(tx, job, now)
            .await?
            .map_err(RepoError::Limited)?;
        *limit_slots = passed.slots();
        admission = Some(passed);
    }
    let artifact = match &cmd {
        Command::Artifact { file, limits, .. } => Some((file.clone(), *limits)),
        _ => None,
    };
    let throttle = match (&cmd, &job.spec.engine_class) {
        (
            Command::Release {
                throttled_until: Some(until),
                ..
            },
            Some(engine),
        ) if *until > now => Some((gigafactory_core::limits::engine_key(engine), *until)),
        _ => None,
    };
    let change = apply_and_log(tx, job, cmd, parents, author, now, backoff)?;
    if let Some(admission) = &admission {
        // Granted: the lease counts under its limits (a refused claim counted nothing).
        super::limits::admit(tx, admission)?;
        // A new lease: answers remembered for the last one's writes are no use any more.
        forget_answers(tx, job.id)?;
    }
    give_back_if_ended(tx, job, &change.job).await?;
    if let Some((key, until)) = throttle {
        // In the release's transaction: a stale epoch's release (refused above) throttles
        // nothing, and every node's next claim under the key sees it.
        super::limits::throttle(tx, &key, until).await?;
    }
    if let Some((file, limits)) = artifact {
        let (attempt, epoch) = (change.job.attempts, change.job.epoch);
        super::artifacts::keep(tx, job.id, attempt, epoch, &file, &limits, now).await?;
    }
    Ok(change)
}

/// When `new` no longer holds the limit slots `old` held (its lease ended: `apply` clears
/// them), gives them back.
async fn give_back_if_ended<T: Transaction>(tx: &mut T, old: &Job, new: &Job) -> Result<(), Error> {
    if new.limit_slots.is_empty() && !old.limit_slots.is_empty() {
        super::limits::give_back(tx, &old.limit_slots).await?;
    }
    Ok(())
}

/// Applies one command to `old` and appends its events; the caller saves the job.
fn apply_and_log<T: Transaction>(
    tx: &mut T,
    old: &Job,
    cmd: Command,
    parents: Readiness,
    author: &Author,
    now: Millis,
    backoff: &Backoff,
) -> Result<Transition, RepoError> {
    let kind = cmd.event_kind();
    let reason = cmd.reason().map(str::to_owned);
    let detail = match &cmd {
        Command::Stage { stage, .. } => Some(stage.clone()),
        Command::Fail { error, .. } => Some(error.clone()),
        Command::Claim { factory, .. } => Some(format!("factory {factory}")),
        Command::Preempt { by: Some(by), .. } => Some(format!("for job {by}")),
        Command::ParentEnded { parent, state } => Some(format!("parent {parent} {state}")),
        Command::ParentRevived { parent } => Some(format!("parent {parent}")),
        Command::Artifact { file, .. } => Some(format!(
            "{} ({}, {} bytes)",
            file.name,
            file.kind.name(),
            file.size
        )),
        Command::Usage { model, micros, .. } => Some(format!(
            "{model}: {}",
            gigafactory_core::budget::format_usd(*micros)
        )),
        _ => None,
    };
    let (new, effects) = job::apply(old, cmd, now, backoff, parents)?;
    // Review decisions are told as the state machine took them: the approval with its count,
    // the request for changes with its reason as kept; an operator's reason follows.
    let detail = match kind {
        EventKind::Ship => job::review::approval_note(&new),
        EventKind::RequestChanges => new.review_feedback.clone(),
        EventKind::Ask | EventKind::Answer | EventKind::QuestionTimeout => {
            job::question::note(&new)
        }
        _ => detail,
    };
    let detail = match (detail, reason) {
        (Some(d), Some(r)) => Some(format!("{d}: {r}")),
        (d, r) => d.or(r),
    };
    if kind.on_timeline() {
        append_event(tx, &new, 0, kind, author, detail, now)?;
    }
    if job::crossed_cost_cap(old, &new) {
        let why = new.last_error.clone();
        append_event(tx, &new, 2, EventKind::CostCapReached, author, why, now)?;
    }
    Ok(Transition {
        before: Some(old.state.clone()),
        job: new,
        kind,
        author: author.clone(),
        effects,
        at: now,
        crossings: Vec::new(),
    })
}

/// Carries the change of `from` to its descendants, breadth first: each child whose parents'
/// standing now calls for it runs, is cancelled or comes back, and a child that changed that
/// way carries it on to its own children.
async fn cascade<T: Transaction>(
    tx: &mut T,
    from: JobId,
    now: Millis,
    backoff: &Backoff,
    changes: &mut Vec<Transition>,
) -> Result<(), RepoError> {
    let mut parents_changed = VecDeque::from([from]);
    while let Some(parent) = parents_changed.pop_front() {
        for child_id in children(tx, parent).await? {
            let Some(child) = load_job(tx, child_id).await? else {
                continue;
            };
            let readiness = readiness_of(tx, &child).await?;
            let Some(cmd) = parents::follow_up(&child, readiness) else {
                continue;
            };
            let author = Author::Scheduler;
            let change = apply_and_log(tx, &child, cmd, readiness, &author, now, backoff)?;
            save_job(tx, Some(&child), &change.job)?;
            give_back_if_ended(tx, &child, &change.job).await?;
            if parents::concerns_children(&child.state, &change.job.state) {
                parents_changed.push_back(child_id);
            }
            changes.push(change);
        }
    }
    Ok(())
}

/// Where `job`'s parents stand, read in this transaction (so a concurrent change to any of
/// them conflicts).
async fn readiness_of<T: Transaction>(tx: &mut T, job: &Job) -> Result<Readiness, Error> {
    let mut states = Vec::with_capacity(job.parents.len());
    for p in &job.parents {
        // A parent that is gone cannot succeed: the child waits, as it always did.
        let state = load_job(tx, *p)
            .await?
            .map_or(JobState::Pending, |pj| pj.state);
        states.push((*p, state));
    }
    Ok(parents::readiness(states.iter().map(|(p, s)| (*p, s))))
}

/// Records something that happened to `job` without changing its state (its output was cut,
/// say): the job's `rev` moves on so that readers following the timeline see the event.
pub fn note<T: Transaction>(
    tx: &mut T,
    job: &Job,
    kind: EventKind,
    author: &Author,
    detail: String,
    now: Millis,
) -> Result<Transition, Error> {
    let mut new = job.clone();
    new.rev += 1;
    new.updated_at = now;
    save_job(tx, Some(job), &new)?;
    append_event(tx, &new, 0, kind, author, Some(detail), now)?;
    Ok(Transition {
        before: Some(job.state.clone()),
        job: new,
        kind,
        author: author.clone(),
        effects: Vec::new(),
        at: now,
        crossings: Vec::new(),
    })
}

/// Leases that expired at or before `now`, oldest first: `(expires_at, job)`.
pub async fn expired_leases<T: Transaction>(
    tx: &mut T,
    now: Millis,
    limit: usize,
) -> Result<Vec<(Millis, JobId)>, Error> {
    let rows = tx
        .get_range(
            &keys::leases_expired_by(now),
            RangeOptions::limit(limit).snapshot(),
        )
        .await?;
    rows.iter()
        .map(|(k, _)| keys::lease_expiry_parts(k).map(|(at, id)| (at, JobId(id))))
        .collect()
}

/// Jobs that hold a lease, soonest expiry first, at most `limit`.
pub async fn leased_jobs<T: Transaction>(tx: &mut T, limit: usize) -> Result<Vec<JobId>, Error> {
    let rows = tx
        .get_range(
            &KeyRange::prefix(&keys::lease_expiry_prefix()),
            RangeOptions::limit(limit).snapshot(),
        )
        .await?;
    rows.iter()
        .map(|(k, _)| keys::lease_expiry_parts(k).map(|(_, id)| JobId(id)))
        .collect()
}

/// A page of the ready index after `after` (a key from a previous page), in placement order.
pub async fn ready_page<T: Transaction>(
    tx: &mut T,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<(Vec<u8>, ReadyEntry)>, Error> {
    let mut range = keys::ready_all();
    if let Some(a) = after {
        range.begin = KeyRange::single(a).end;
    }
    let rows = tx
        .get_range(&range, RangeOptions::limit(limit).snapshot())
        .await?;
    rows.into_iter()
        .map(|(k, v)| codec::decode(&v).map(|e| (k, e)))
        .collect()
}

/// A page of jobs in creation order (ids are UUIDv7) after `after`, at most `limit`; fewer
/// means the last page.
pub async fn jobs_page<T: Transaction>(
    tx: &mut T,
    after: Option<JobId>,
    limit: usize,
) -> Result<Vec<Job>, Error> {
    let mut range = KeyRange::prefix(&keys::job_prefix());
    if let Some(a) = after {
        range.begin = KeyRange::single(&keys::job(a.0)).end;
    }
    let rows = tx
        .get_range(&range, RangeOptions::limit(limit).snapshot())
        .await?;
    rows.iter().map(|(_, v)| codec::decode(v)).collect()
}

/// The job's timeline after event `after` (its `seq`), at most `limit` events.
pub async fn events<T: Transaction>(
    tx: &mut T,
    id: JobId,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<Event>, Error> {
    let mut range = keys::events_of(id.0);
    if let Some(a) = after {
        range.begin = keys::event(id.0, a.saturating_add(1), 0);
    }
    let rows = tx
        .get_range(&range, RangeOptions::limit(limit).snapshot())
        .await?;
    rows.iter().map(|(_, v)| codec::decode(v)).collect()
}

/// Ids of the jobs that depend on `parent` (at most [`CHILDREN_MAX`]).
pub async fn children<T: Transaction>(tx: &mut T, parent: JobId) -> Result<Vec<JobId>, Error> {
    let rows = tx
        .get_range(
            &keys::children_of(parent.0),
            RangeOptions::limit(CHILDREN_MAX),
        )
        .await?;
    rows.iter()
        .map(|(k, _)| keys::child_parts(k).map(|(_, c)| JobId(c)))
        .collect()
}

/// Who sent a factory write and under which lease: with its request id, what its remembered
/// answer is kept under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writer {
    pub factory: FactoryId,
    pub epoch: u64,
}

impl Writer {
    /// The writer a factory write names (its fence), or none for any other command.
    pub fn of(cmd: &Command) -> Option<Writer> {
        cmd.fence()
            .map(|(factory, epoch)| Writer { factory, epoch })
    }
}

/// The answer an earlier write with this id got, if `writer` sent it under that lease (a
/// retried factory write). Another writer's answer under the same id is never found.
pub async fn remembered_answer<T: Transaction>(
    tx: &mut T,
    job: JobId,
    writer: Writer,
    request_id: &str,
) -> Result<Option<LeaseAnswer>, Error> {
    let key = keys::request(job.0, writer.factory.0, writer.epoch, request_id);
    match tx.get(&key).await? {
        Some(v) => Ok(Some(codec::decode(&v)?)),
        None => Ok(None),
    }
}

/// Records the answer to a factory write so that a retry of it, by the same writer under the
/// same lease, gets it again. Answers of a job are dropped when it is next claimed.
pub fn remember_answer<T: Transaction>(
    tx: &mut T,
    job: JobId,
    writer: Writer,
    request_id: &str,
    answer: &LeaseAnswer,
) -> Result<(), Error> {
    let key = keys::request(job.0, writer.factory.0, writer.epoch, request_id);
    tx.set(&key, &codec::encode(answer)?)
}

fn forget_answers<T: Transaction>(tx: &mut T, job: JobId) -> Result<(), Error> {
    tx.clear_range(&keys::requests_of(job.0))
}

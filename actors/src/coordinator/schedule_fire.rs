//! A schedule's run: the ticks due (`core::schedule::due`) or an operator's trigger, carried
//! out. The previous run's unfinished jobs are cancelled first when the overlap policy says
//! so, through the operator's cancel path; then one transaction records the missed ticks,
//! submits the tick's jobs (or records it skipped), appends the runs to the history and moves
//! the schedule's cursor. It commits only while the schedule is exactly the record the run
//! was decided from (S1): a decision whose cursor another node moved is dropped, and one that
//! an operator's edit overtook (a new template or policy, the cursor kept) is made again from
//! the new record, so a run never submits a template that was already replaced. A trigger
//! with an idempotency key runs once per key: the same key again answers its run. A
//! submission the coordinator refuses is recorded as failed, in a transaction of its own
//! under the same rule.

use gigafactory_core::event::{Author, Transition};
use gigafactory_core::job::{Action, JobId, Millis};
use gigafactory_core::schedule::{
    self, Due, Outcome, Overlap, OverlapDecision, RUN_JOBS_MAX, Run, Schedule, ScheduleState,
    Trigger,
};
use gigafactory_storage::{Transaction, repo, transact};

use super::Coordinator;
use super::submit::{prepare, submit_in};
use crate::commit;
use crate::error::{CoordError, Result};

/// How many times one firing decides again because the schedule changed under it before it
/// gives up (`unavailable`: the caller retries; ticks are decided again at the next pass).
const FIRE_DECISIONS_MAX: u32 = 8;

/// What asks for a run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Firing {
    /// The schedule actor's pass at `at`, which found the schedule's cursor at `from`: the
    /// ticks due then, decided from the schedule the firing reads.
    Ticks { from: Millis, at: Millis },
    /// An operator's trigger at `at`, outside the cursor; with `key`, once per key, else
    /// under its own idempotency keys (`manual-AT`).
    Manual {
        at: Millis,
        by: Author,
        key: Option<String>,
    },
}

/// What a firing did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fired {
    /// The runs it recorded: none when another node decided these ticks first, nothing was
    /// due, or the schedule is gone (or, for ticks, paused).
    Recorded(Vec<Run>),
    /// A trigger whose key an earlier trigger used: that trigger's run; nothing submitted.
    Replayed(Run),
}

/// One decision's end: done, or overtaken by a change of the schedule (decide again).
enum Attempt {
    Done(Fired),
    Changed,
}

/// The schedule as a firing finds it before deciding.
enum Found {
    Gone,
    Replayed(Run),
    Decide(Schedule),
}

impl Coordinator {
    /// Carries out `firing` for schedule `name`, deciding again from the new record each
    /// time a change of the schedule overtakes the decision (S1).
    pub(crate) async fn fire_schedule(&self, name: &str, firing: Firing) -> Result<Fired> {
        // The previous run's jobs cancelled by every decision so far: a decision made again
        // finds them ended, and its run still names them.
        let mut cancelled = Vec::new();
        for _ in 0..FIRE_DECISIONS_MAX {
            if let Attempt::Done(fired) = self.fire_once(name, &firing, &mut cancelled).await? {
                return Ok(fired);
            }
        }
        Err(CoordError::Unavailable(format!(
            "schedule {name} changed {FIRE_DECISIONS_MAX} times while it fired; try again"
        )))
    }

    /// One decision from the schedule as it is now, and its transaction.
    async fn fire_once(
        &self,
        name: &str,
        firing: &Firing,
        cancelled: &mut Vec<JobId>,
    ) -> Result<Attempt> {
        let decided = match self.decide_from(name, firing).await? {
            Found::Gone => return Ok(Attempt::Done(Fired::Recorded(Vec::new()))),
            Found::Replayed(run) => return Ok(Attempt::Done(Fired::Replayed(run))),
            Found::Decide(s) => s,
        };
        let (due, tick) = match firing {
            Firing::Ticks { at, .. } => {
                let grace = self.ctx.config.schedule_grace_ms;
                match decided
                    .clock()
                    .map(|clock| decided.due_at(&clock, *at, grace))
                {
                    Ok(due) if due.fire.is_some() || due.missed.is_some() => (Some(due), due.fire),
                    // Nothing owed (an edit since the pass moved it), or a clock that no
                    // longer parses: nothing to write.
                    _ => return Ok(Attempt::Done(Fired::Recorded(Vec::new()))),
                }
            }
            Firing::Manual { at, .. } => (None, Some(*at)),
        };
        if tick.is_some() {
            // The same backpressure as any submission: a tick refused here is decided again
            // at the next pass (missed, if that is past the grace).
            self.admit_submission()?;
        }
        if let Some(tick) = tick
            && decided.overlap == Overlap::CancelPrevious
        {
            let now_cancelled = self.cancel_previous(&decided, tick).await?;
            cancelled.extend(now_cancelled);
        }
        let author = match firing {
            Firing::Ticks { .. } => Author::Scheduler,
            Firing::Manual { by, .. } => by.clone(),
        };
        let key_part = match firing {
            Firing::Ticks { .. } => tick.map(|t| t.to_string()),
            Firing::Manual { at, key, .. } => Some(schedule::manual_run(*at, key.as_deref())),
        };
        // Decided from `decided`: the transaction writes it only over that very record.
        let specs = key_part.map(|k| schedule::specs_for(name, &decided.target, &k));
        let jobs = match specs {
            Some(Ok(specs)) => Some(Ok(prepare(specs, None, self.now()))),
            Some(Err(why)) => Some(Err(why)),
            None => None,
        };
        let node = self.ctx.node_id;
        let now = self.now();
        let written = transact!(self.ctx.store, |tx| {
            let mut s = match self.still_decided(tx, &decided, firing).await? {
                Found::Decide(s) => s,
                Found::Replayed(run) => return Ok::<_, CoordError>(Written::Replayed(run)),
                Found::Gone => return Ok(Written::Changed),
            };
            let mut runs = missed_runs(&mut s, due.as_ref(), now, node);
            let mut created = Vec::new();
            if let (Some(tick), Some(jobs)) = (tick, &jobs) {
                let unfinished = unfinished(tx, &s.previous_jobs).await?;
                let outcome = match schedule::on_overlap(s.overlap, &unfinished) {
                    OverlapDecision::Skip { reason } => Outcome::Skipped { reason },
                    OverlapDecision::Submit | OverlapDecision::CancelThenSubmit { .. } => {
                        match jobs {
                            Err(why) => Outcome::Failed { error: why.clone() },
                            Ok(jobs) => {
                                let (made, new) = submit_in(tx, jobs, false, &author).await?;
                                created = new;
                                let ids: Vec<JobId> = made.iter().map(|(_, id)| *id).collect();
                                s.previous_jobs = ids.clone();
                                submitted(ids, cancelled)
                            }
                        }
                    }
                };
                runs.push(run(tick, now, node, trigger_of(firing), outcome));
            }
            record(tx, &mut s, &mut runs, firing)?;
            Ok(Written::Runs(runs, created))
        });
        match written {
            Ok(Written::Runs(runs, created)) => Ok(Attempt::Done(Fired::Recorded(
                self.adopt_runs(runs, &created).await,
            ))),
            Ok(Written::Replayed(run)) => Ok(Attempt::Done(Fired::Replayed(run))),
            Ok(Written::Changed) => Ok(Attempt::Changed),
            Err(refused @ (CoordError::IdempotencyConflict(_) | CoordError::Invalid(_))) => {
                let failed = Failed {
                    decided: &decided,
                    due: due.as_ref(),
                    tick: tick.unwrap_or(now),
                };
                self.record_failure(firing, failed, refused).await
            }
            Err(e) => Err(e),
        }
    }

    /// The schedule to decide from, read outside the run's transaction: a manual trigger
    /// finds it whatever its state (or finds the run its key already made); ticks only while
    /// it is active and at the cursor the pass found (S1).
    async fn decide_from(&self, name: &str, firing: &Firing) -> Result<Found> {
        Ok(transact!(self.ctx.store, |tx| {
            if let Some(run) = replayed(tx, name, firing).await? {
                return Ok::<_, CoordError>(Found::Replayed(run));
            }
            let s = match firing {
                Firing::Manual { .. } => repo::load_schedule(tx, name).await?,
                Firing::Ticks { from, .. } => repo::schedule_at_cursor(tx, name, *from)
                    .await?
                    .filter(|s| s.state == ScheduleState::Active),
            };
            Ok(s.map_or(Found::Gone, Found::Decide))
        })?)
    }

    /// In the run's transaction: the schedule, if it is still exactly `decided` (S1), else
    /// `Gone` (decide again); or the run a trigger's key made meanwhile.
    async fn still_decided<T: Transaction>(
        &self,
        tx: &mut T,
        decided: &Schedule,
        firing: &Firing,
    ) -> Result<Found> {
        if let Some(run) = replayed(tx, &decided.name, firing).await? {
            return Ok(Found::Replayed(run));
        }
        Ok(repo::schedule_as_decided(tx, decided)
            .await?
            .map_or(Found::Gone, Found::Decide))
    }

    /// Cancels the previous run's jobs that have not ended, as an operator would, naming the
    /// schedule and tick in the reason. Returns the ones cancelled.
    async fn cancel_previous(&self, s: &Schedule, tick: Millis) -> Result<Vec<JobId>> {
        let previous = s.previous_jobs.clone();
        let running = transact!(self.ctx.store, |tx| unfinished(tx, &previous).await)?;
        let mut cancelled = Vec::new();
        for id in running {
            let action = super::OperatorAction {
                action: Action::Cancel,
                reason: Some(format!("schedule {} fires its run of {tick}", s.name)),
            };
            match self.act(id, action, &Author::Scheduler).await {
                Ok(_) => cancelled.push(id),
                // It ended meanwhile: nothing to cancel.
                Err(CoordError::IllegalTransition { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(cancelled)
    }

    /// Records a submission the coordinator refused as a failed run (ticks: with the cursor
    /// moved), over the record it was decided from only (S1).
    async fn record_failure(
        &self,
        firing: &Firing,
        failed: Failed<'_>,
        refused: CoordError,
    ) -> Result<Attempt> {
        let now = self.now();
        let node = self.ctx.node_id;
        let outcome = Outcome::Failed {
            error: refused.to_string(),
        };
        let run_failed = run(failed.tick, now, node, trigger_of(firing), outcome);
        let written = transact!(self.ctx.store, |tx| {
            let mut s = match self.still_decided(tx, failed.decided, firing).await? {
                Found::Decide(s) => s,
                Found::Replayed(run) => return Ok::<_, CoordError>(Written::Replayed(run)),
                Found::Gone => return Ok(Written::Changed),
            };
            let mut runs = missed_runs(&mut s, failed.due, now, node);
            runs.push(run_failed.clone());
            record(tx, &mut s, &mut runs, firing)?;
            Ok(Written::Runs(runs, Vec::new()))
        })?;
        Ok(match written {
            Written::Runs(runs, _) => {
                Attempt::Done(Fired::Recorded(self.adopt_runs(runs, &[]).await))
            }
            Written::Replayed(run) => Attempt::Done(Fired::Replayed(run)),
            Written::Changed => Attempt::Changed,
        })
    }

    /// After the commit: the jobs announced and queued, the runs counted.
    async fn adopt_runs(&self, runs: Vec<Run>, created: &[Transition]) -> Vec<Run> {
        metrics::counter!(crate::metrics::JOBS_SUBMITTED_TOTAL).increment(created.len() as u64);
        commit::adopt(&self.ctx, created).await;
        for r in &runs {
            metrics::counter!(crate::metrics::SCHEDULE_RUNS_TOTAL, "outcome" => r.outcome.name())
                .increment(1);
        }
        runs
    }
}

/// What a run's transaction did.
enum Written {
    Runs(Vec<Run>, Vec<Transition>),
    Replayed(Run),
    /// The schedule is not the record the run was decided from (S1).
    Changed,
}

/// A refused submission to record: the decision it came from.
struct Failed<'a> {
    decided: &'a Schedule,
    due: Option<&'a Due>,
    tick: Millis,
}

/// The run a trigger's key already made, if `firing` is a trigger with a key.
async fn replayed<T: Transaction>(tx: &mut T, name: &str, firing: &Firing) -> Result<Option<Run>> {
    match firing {
        Firing::Manual { key: Some(key), .. } => Ok(repo::trigger_run(tx, name, key).await?),
        _ => Ok(None),
    }
}

/// The missed ticks of `due` as a run, with the cursor moved past every tick it decides.
fn missed_runs(s: &mut Schedule, due: Option<&Due>, now: Millis, node: uuid::Uuid) -> Vec<Run> {
    let Some(due) = due else {
        return Vec::new();
    };
    s.cursor = due.cursor;
    due.missed
        .into_iter()
        .map(|m| run(m.last, now, node, Trigger::Tick, Outcome::Missed(m)))
        .collect()
}

/// Appends `runs` to the history (each given its sequence number), keeps a trigger's run
/// under its key, and saves the schedule.
fn record<T: Transaction>(
    tx: &mut T,
    s: &mut Schedule,
    runs: &mut [Run],
    firing: &Firing,
) -> Result<()> {
    for r in runs.iter_mut() {
        repo::append_run(tx, s, r)?;
    }
    if let (Firing::Manual { key: Some(key), .. }, Some(run)) = (firing, runs.last()) {
        repo::save_trigger_run(tx, &s.name, key, run)?;
    }
    s.previous_jobs.truncate(RUN_JOBS_MAX);
    repo::save_schedule(tx, s)?;
    Ok(())
}

/// The jobs among `ids` that have not ended (read with conflict: a run that submits because
/// they ended conflicts with one that brings them back).
async fn unfinished<T: Transaction>(tx: &mut T, ids: &[JobId]) -> Result<Vec<JobId>> {
    let mut out = Vec::new();
    for id in ids {
        if let Some(j) = repo::load_job(tx, *id).await?
            && !j.state.is_terminal()
        {
            out.push(*id);
        }
    }
    Ok(out)
}

fn submitted(ids: Vec<JobId>, cancelled: &[JobId]) -> Outcome {
    let total = ids.len() as u32;
    let jobs: Vec<JobId> = ids.into_iter().take(RUN_JOBS_MAX).collect();
    if cancelled.is_empty() {
        Outcome::Submitted { jobs, total }
    } else {
        Outcome::CancelledPrevious {
            cancelled: cancelled.iter().copied().take(RUN_JOBS_MAX).collect(),
            jobs,
            total,
        }
    }
}

fn trigger_of(firing: &Firing) -> Trigger {
    match firing {
        Firing::Ticks { .. } => Trigger::Tick,
        Firing::Manual { by, .. } => Trigger::Manual(by.to_string()),
    }
}

fn run(tick: Millis, at: Millis, node: uuid::Uuid, trigger: Trigger, outcome: Outcome) -> Run {
    Run {
        seq: 0,
        tick,
        at,
        node,
        trigger,
        outcome,
    }
}

//! A schedule's run: the ticks a decision covers (`core::schedule::due`) or an operator's
//! trigger, carried out. The previous run's unfinished jobs are cancelled first when the
//! overlap policy says so, through the operator's cancel path; then one transaction records
//! the missed ticks, submits the tick's jobs (or records it skipped), appends the runs to the
//! history and moves the schedule's cursor, refusing a decision whose cursor another node
//! moved meanwhile (S1). A submission the coordinator refuses is recorded as failed, in a
//! transaction of its own under the same rule.

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

/// What asks for a run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Firing {
    /// The schedule actor's decision, made with the schedule's cursor at `from`.
    Ticks { from: Millis, due: Due },
    /// An operator's trigger at `at`: outside the cursor, under its own idempotency key.
    Manual { at: Millis, by: Author },
}

impl Coordinator {
    /// Carries out `firing` for schedule `name`: the runs it recorded, none when another
    /// node decided these ticks first (or the schedule is gone or, for ticks, paused).
    pub(crate) async fn fire_schedule(&self, name: &str, firing: Firing) -> Result<Vec<Run>> {
        let Some(s) = self.schedule_for(name, &firing).await? else {
            return Ok(Vec::new());
        };
        let tick = match &firing {
            Firing::Ticks { due, .. } => due.fire,
            Firing::Manual { at, .. } => Some(*at),
        };
        if tick.is_some() {
            // The same backpressure as any submission: a tick refused here is decided again
            // at the next pass (missed, if that is past the grace).
            self.admit_submission()?;
        }
        let mut cancelled = Vec::new();
        if tick.is_some() && s.overlap == Overlap::CancelPrevious {
            cancelled = self.cancel_previous(&s, tick.unwrap_or_default()).await?;
        }
        let author = match &firing {
            Firing::Ticks { .. } => Author::Scheduler,
            Firing::Manual { by, .. } => by.clone(),
        };
        let key_part = match &firing {
            Firing::Ticks { .. } => tick.map(|t| t.to_string()),
            Firing::Manual { at, .. } => Some(format!("manual-{at}")),
        };
        let specs = key_part.map(|k| schedule::specs_for(name, &s.target, &k));
        let jobs = match specs {
            Some(Ok(specs)) => Some(Ok(prepare(specs, None, self.now()))),
            Some(Err(why)) => Some(Err(why)),
            None => None,
        };
        let node = self.ctx.node_id;
        let now = self.now();
        let written = transact!(self.ctx.store, |tx| {
            let Some(mut s) = self.schedule_in(tx, name, &firing).await? else {
                return Ok::<_, CoordError>(None);
            };
            let mut runs = Vec::new();
            let mut created = Vec::new();
            if let Firing::Ticks { due, .. } = &firing {
                if let Some(m) = due.missed {
                    runs.push(run(m.last, now, node, Trigger::Tick, Outcome::Missed(m)));
                }
                s.cursor = due.cursor;
            }
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
                                submitted(ids, &cancelled)
                            }
                        }
                    }
                };
                runs.push(run(tick, now, node, trigger_of(&firing), outcome));
            }
            self.record(tx, &mut s, &runs)?;
            Ok(Some((runs, created)))
        });
        match written {
            Ok(Some((runs, created))) => Ok(self.adopt_runs(runs, &created).await),
            Ok(None) => Ok(Vec::new()),
            Err(refused @ (CoordError::IdempotencyConflict(_) | CoordError::Invalid(_))) => {
                self.record_failure(name, &firing, tick.unwrap_or(now), refused)
                    .await
            }
            Err(e) => Err(e),
        }
    }

    /// The schedule as the firing finds it, read outside the run's transaction.
    async fn schedule_for(&self, name: &str, firing: &Firing) -> Result<Option<Schedule>> {
        Ok(transact!(self.ctx.store, |tx| {
            self.schedule_in(tx, name, firing).await
        })?)
    }

    /// The schedule, if `firing` may still write to it: a manual trigger finds it whatever
    /// its state; ticks only while active and at the cursor they were decided from (S1).
    async fn schedule_in<T: Transaction>(
        &self,
        tx: &mut T,
        name: &str,
        firing: &Firing,
    ) -> Result<Option<Schedule>> {
        Ok(match firing {
            Firing::Manual { .. } => repo::load_schedule(tx, name).await?,
            Firing::Ticks { from, .. } => repo::schedule_at_cursor(tx, name, *from)
                .await?
                .filter(|s| s.state == ScheduleState::Active),
        })
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

    /// Appends `runs` to the history and saves the schedule.
    fn record<T: Transaction>(&self, tx: &mut T, s: &mut Schedule, runs: &[Run]) -> Result<()> {
        for r in runs {
            repo::append_run(tx, s, r.clone())?;
        }
        s.previous_jobs.truncate(RUN_JOBS_MAX);
        repo::save_schedule(tx, s)?;
        Ok(())
    }

    /// Records a submission the coordinator refused as a failed run (ticks: with the cursor
    /// moved, under S1).
    async fn record_failure(
        &self,
        name: &str,
        firing: &Firing,
        tick: Millis,
        refused: CoordError,
    ) -> Result<Vec<Run>> {
        let now = self.now();
        let node = self.ctx.node_id;
        let outcome = Outcome::Failed {
            error: refused.to_string(),
        };
        let failed = run(tick, now, node, trigger_of(firing), outcome);
        let written = transact!(self.ctx.store, |tx| {
            let Some(mut s) = self.schedule_in(tx, name, firing).await? else {
                return Ok::<_, CoordError>(None);
            };
            let mut runs = Vec::new();
            if let Firing::Ticks { due, .. } = firing {
                if let Some(m) = due.missed {
                    runs.push(run(m.last, now, node, Trigger::Tick, Outcome::Missed(m)));
                }
                s.cursor = due.cursor;
            }
            runs.push(failed.clone());
            self.record(tx, &mut s, &runs)?;
            Ok(Some(runs))
        })?;
        Ok(match written {
            Some(runs) => self.adopt_runs(runs, &[]).await,
            None => Vec::new(),
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

//! Schedules as operators see them: set (checked whole, every problem named, nothing changed
//! when one is wrong), listed, shown with their next ticks and history, paused, resumed,
//! removed, and triggered by hand. Firing is the schedule actor's, through
//! `schedule_fire.rs`; a change here reaches it at its next pass.

use gigafactory_core::event::Author;
use gigafactory_core::schedule::{self, Draft, HISTORY_MAX, Schedule, ScheduleState, Trigger};
use gigafactory_core::wire::{RunView, ScheduleBody, ScheduleView};
use gigafactory_storage::{repo, transact};

use super::Coordinator;
use super::schedule_fire::{Fired, Firing};
use crate::error::{CoordError, Result};

/// Ticks a schedule's own page shows, and runs the listing shows of each.
const NEXT_RUNS_SHOWN: usize = 5;
const LISTED_RUNS: usize = 5;

impl Coordinator {
    /// Every schedule, with its next tick and latest runs.
    pub async fn schedules(&self) -> Result<Vec<ScheduleView>> {
        let now = self.now();
        let all = transact!(self.ctx.store, |tx| {
            let mut out = Vec::new();
            for s in repo::schedules(tx).await? {
                let runs = repo::schedule_runs(tx, &s.name, LISTED_RUNS).await?;
                out.push((s, runs));
            }
            Ok::<_, gigafactory_storage::Error>(out)
        })?;
        Ok(all
            .iter()
            .map(|(s, runs)| ScheduleView::of(s, now, 1, runs))
            .collect())
    }

    /// One schedule with its next five ticks and its whole kept history.
    pub async fn schedule(&self, name: &str) -> Result<ScheduleView> {
        let now = self.now();
        let (s, runs) = transact!(self.ctx.store, |tx| {
            let Some(s) = repo::load_schedule(tx, name).await? else {
                return Err(CoordError::NotFound(format!("schedule {name}")));
            };
            let runs = repo::schedule_runs(tx, name, HISTORY_MAX as usize).await?;
            Ok((s, runs))
        })?;
        Ok(ScheduleView::of(&s, now, NEXT_RUNS_SHOWN, &runs))
    }

    /// Creates or replaces a schedule; refused whole, every problem named, when one is wrong.
    /// A replaced schedule keeps its state, cursor and history: the new cron fires from the
    /// ticks after the cursor. Returns it and whether it is new.
    pub async fn set_schedule(
        &self,
        name: &str,
        body: ScheduleBody,
        by: &Author,
    ) -> Result<(ScheduleView, bool)> {
        let now = self.now();
        let name_problem = schedule::check_name(name).err();
        let checked = schedule::check(&Draft::from(body), now);
        let checked = match (name_problem, checked) {
            (None, Ok(c)) => c,
            (n, c) => {
                let mut problems: Vec<String> =
                    n.map(|p| format!("name: {p}")).into_iter().collect();
                problems.extend(c.err().unwrap_or_default());
                return Err(CoordError::InvalidSchedule(problems));
            }
        };
        let total = transact!(self.ctx.store, |tx| {
            let old = repo::load_schedule(tx, name).await?;
            if old.is_none() && repo::schedules(tx).await?.len() >= schedule::SCHEDULES_MAX {
                return Err(CoordError::Invalid(format!(
                    "a store holds at most {} schedules",
                    schedule::SCHEDULES_MAX
                )));
            }
            let c = checked.clone();
            let cursor = old
                .as_ref()
                .map_or(now, |o| o.cursor_after_edit(&c.cron, &c.time_zone, now));
            let s = Schedule {
                name: name.to_owned(),
                cron: c.cron,
                time_zone: c.time_zone,
                overlap: c.overlap,
                missed: c.missed,
                catchup_window_s: c.catchup_window_s,
                target: c.target,
                state: old
                    .as_ref()
                    .map_or(ScheduleState::Active, |o| o.state.clone()),
                cursor,
                previous_jobs: old
                    .as_ref()
                    .map_or_else(Vec::new, |o| o.previous_jobs.clone()),
                runs: old.as_ref().map_or(0, |o| o.runs),
                created_at: old.as_ref().map_or(now, |o| o.created_at),
                updated_at: now,
                updated_by: by.to_string(),
            };
            repo::save_schedule(tx, &s)?;
            repo::schedules_changed(tx)?;
            let runs = repo::schedule_runs(tx, name, HISTORY_MAX as usize).await?;
            Ok::<_, CoordError>((s, runs, old.is_none()))
        })?;
        let (s, runs, created) = total;
        tracing::info!(schedule = name, cron = %s.cron, zone = %s.time_zone, "schedule set");
        Ok((ScheduleView::of(&s, now, NEXT_RUNS_SHOWN, &runs), created))
    }

    /// Removes a schedule and its history (its jobs stay).
    pub async fn delete_schedule(&self, name: &str) -> Result<()> {
        transact!(self.ctx.store, |tx| {
            if repo::load_schedule(tx, name).await?.is_none() {
                return Err(CoordError::NotFound(format!("schedule {name}")));
            }
            repo::delete_schedule(tx, name)?;
            Ok(())
        })
    }

    /// Pauses a schedule: no tick fires until it is resumed; the ticks that pass meanwhile
    /// follow its missed-run policy then.
    pub async fn pause_schedule(&self, name: &str, by: &Author) -> Result<ScheduleView> {
        let state = ScheduleState::Paused {
            since: self.now(),
            by: by.to_string(),
        };
        self.change_schedule_state(name, state).await
    }

    pub async fn resume_schedule(&self, name: &str) -> Result<ScheduleView> {
        self.change_schedule_state(name, ScheduleState::Active)
            .await
    }

    async fn change_schedule_state(
        &self,
        name: &str,
        state: ScheduleState,
    ) -> Result<ScheduleView> {
        let now = self.now();
        transact!(self.ctx.store, |tx| {
            let Some(mut s) = repo::load_schedule(tx, name).await? else {
                return Err(CoordError::NotFound(format!("schedule {name}")));
            };
            // Pausing a paused schedule keeps when and by whom it was paused.
            let same = matches!(
                (&s.state, &state),
                (ScheduleState::Active, ScheduleState::Active)
                    | (ScheduleState::Paused { .. }, ScheduleState::Paused { .. })
            );
            if !same {
                s.state = state.clone();
                s.updated_at = now;
                repo::save_schedule(tx, &s)?;
                repo::schedules_changed(tx)?;
            }
            let runs = repo::schedule_runs(tx, name, HISTORY_MAX as usize).await?;
            Ok(ScheduleView::of(&s, now, NEXT_RUNS_SHOWN, &runs))
        })
    }

    /// Runs a schedule now, whatever its state, with its overlap policy. With `key` (checked
    /// by `schedule::check_trigger_key`; a bad one is refused and changes nothing) it runs
    /// once per key: the same key again answers the same run and submits nothing, however
    /// late. Without, its jobs' keys are `schedule:NAME:manual-AT`. Returns the run and
    /// whether this call made it.
    pub async fn trigger_schedule(
        &self,
        name: &str,
        by: &Author,
        key: Option<String>,
    ) -> Result<(RunView, bool)> {
        if let Some(k) = &key {
            schedule::check_trigger_key(k).map_err(CoordError::Invalid)?;
        }
        let firing = Firing::Manual {
            at: self.now(),
            by: by.clone(),
            key,
        };
        match self.fire_schedule(name, firing).await? {
            Fired::Replayed(run) => Ok((RunView::from(&run), false)),
            Fired::Recorded(runs) => runs
                .iter()
                .find(|r| matches!(r.trigger, Trigger::Manual(_)))
                .map(|r| (RunView::from(r), true))
                .ok_or_else(|| CoordError::NotFound(format!("schedule {name}"))),
        }
    }
}

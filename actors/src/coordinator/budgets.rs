//! Money: usage a job reports (priced, fenced, counted once), budgets operators set, pause
//! and resume, and what they show (state, burndown, top jobs); and why a queued job is held
//! (by a budget or a limit).

use gigafactory_core::budget::{
    self, ALERT_PERCENT_DEFAULT, BudgetRecord, BudgetSpec, PAUSE_REASON_MAX_BYTES, Pause, Policy,
};
use gigafactory_core::event::Author;
use gigafactory_core::job::{Command, FactoryId, Job, JobId};
use gigafactory_core::usage::{self, UsageError};
use gigafactory_core::wire::{
    BudgetBody, BudgetDetail, BudgetView, JobSpend, LeaseAnswer, UsageReport,
};
use gigafactory_storage::{repo, transact};

use super::Coordinator;
use crate::error::{CoordError, Result};
use crate::scheduler::SchedulerMsg;

/// Jobs a budget's detail lists by spend.
const TOP_JOBS_SHOWN: usize = 10;

impl Coordinator {
    /// A job's usage, reported by the factory holding its lease: priced (from the report's
    /// dollars, or its tokens at the configured price), then applied as a fenced write and
    /// added to the job's cost and its budgets' spend in one transaction. A retry with the
    /// same request id is counted once.
    pub async fn report_usage(
        &self,
        factory: FactoryId,
        id: JobId,
        epoch: u64,
        request_id: String,
        report: UsageReport,
    ) -> Result<LeaseAnswer> {
        let cmd = self
            .usage_command(factory, epoch, report)
            .map_err(|e| CoordError::Invalid(e.to_string()))?;
        self.factory_write(id, cmd, request_id, Vec::new(), Vec::new())
            .await
    }

    /// The command that counts `report` for the lease `(factory, epoch)`: priced from its
    /// dollars, or its tokens at the configured price. Reports sent alone and reports an end
    /// carries are priced here alike.
    pub(super) fn usage_command(
        &self,
        factory: FactoryId,
        epoch: u64,
        report: UsageReport,
    ) -> Result<Command, UsageError> {
        let micros = usage::price(
            &report.model,
            report.input_tokens,
            report.output_tokens,
            report.cost_micros,
            &self.ctx.config.prices,
        )?;
        Ok(Command::Usage {
            factory,
            epoch,
            model: report.model,
            input_tokens: report.input_tokens,
            output_tokens: report.output_tokens,
            micros,
        })
    }

    /// Every budget, where it stands now.
    pub async fn budgets(&self) -> Result<Vec<BudgetView>> {
        let now = self.now();
        Ok(transact!(self.ctx.store, |tx| {
            let mut out = Vec::new();
            for record in repo::budgets(tx).await? {
                let spent = repo::spent(tx, &record, now).await?;
                out.push(BudgetView::of(&record, spent, now));
            }
            Ok::<_, gigafactory_storage::Error>(out)
        })?)
    }

    /// One budget with its burndown over the current period and its top jobs.
    pub async fn budget(&self, name: &str) -> Result<BudgetDetail> {
        let now = self.now();
        let (record, spent, daily, top) = transact!(self.ctx.store, |tx| {
            let Some(record) = repo::load_budget(tx, name).await? else {
                return Err(CoordError::NotFound(format!("budget {name}")));
            };
            let spent = repo::spent(tx, &record, now).await?;
            let start = record.spec.period.start(now);
            let daily = repo::daily_spend(tx, name, start).await?;
            let top = repo::top_jobs(tx, name, start, TOP_JOBS_SHOWN).await?;
            let mut top_jobs = Vec::with_capacity(top.len());
            for (job_id, spent_micros) in top {
                let title = repo::load_job(tx, job_id)
                    .await?
                    .map_or_else(String::new, |j| j.spec.title);
                top_jobs.push(JobSpend {
                    job_id,
                    title,
                    spent_micros,
                });
            }
            Ok((record, spent, daily, top_jobs))
        })?;
        Ok(BudgetDetail {
            budget: BudgetView::of(&record, spent, now),
            burndown: budget::burndown(&record.spec, &daily, now),
            top_jobs: top,
        })
    }

    /// Creates or changes a budget; refused whole, with every problem, when one is wrong.
    pub async fn set_budget(&self, name: &str, body: BudgetBody) -> Result<BudgetView> {
        let spec = BudgetSpec {
            name: name.to_owned(),
            product: body.product,
            label: body.label,
            period: body.period,
            limit_micros: body.limit_micros,
            alert_percent: body.alert_percent.unwrap_or(ALERT_PERCENT_DEFAULT),
            policy: body.policy.unwrap_or(Policy::Finish),
        };
        budget::validate(&spec).map_err(|problems| CoordError::Invalid(problems.join("; ")))?;
        let now = self.now();
        let view = transact!(self.ctx.store, |tx| {
            let old = repo::load_budget(tx, name).await?;
            let record = BudgetRecord {
                spec: spec.clone(),
                paused: old.as_ref().and_then(|o| o.paused.clone()),
                created_at: old.as_ref().map_or(now, |o| o.created_at),
                updated_at: now,
            };
            repo::save_budget(tx, old.as_ref(), &record)?;
            let spent = repo::spent(tx, &record, now).await?;
            Ok::<_, gigafactory_storage::Error>(BudgetView::of(&record, spent, now))
        })?;
        tracing::info!(budget = name, limit = %budget::format_usd(spec.limit_micros), "budget set");
        self.ctx.tell_scheduler(SchedulerMsg::BudgetsChanged);
        Ok(view)
    }

    /// Pauses a budget: its jobs get no new leases until it is resumed.
    pub async fn pause_budget(&self, name: &str, reason: &str, by: &Author) -> Result<BudgetView> {
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > PAUSE_REASON_MAX_BYTES {
            return Err(CoordError::Invalid(format!(
                "a pause needs a reason of 1 to {PAUSE_REASON_MAX_BYTES} bytes"
            )));
        }
        let pause = Pause {
            by: by.clone(),
            reason: reason.to_owned(),
            at: self.now(),
        };
        self.change_budget(name, Some(pause)).await
    }

    /// Resumes a paused budget: its waiting jobs may run at once (unless it is exhausted).
    pub async fn resume_budget(&self, name: &str) -> Result<BudgetView> {
        self.change_budget(name, None).await
    }

    async fn change_budget(&self, name: &str, paused: Option<Pause>) -> Result<BudgetView> {
        let now = self.now();
        let view = transact!(self.ctx.store, |tx| {
            let Some(old) = repo::load_budget(tx, name).await? else {
                return Err(CoordError::NotFound(format!("budget {name}")));
            };
            if old.paused.is_none() && paused.is_none() {
                return Err(CoordError::IllegalTransition {
                    subject: "budget",
                    command: "resume",
                    state: "active",
                });
            }
            let record = BudgetRecord {
                paused: paused.clone(),
                updated_at: now,
                ..old.clone()
            };
            repo::save_budget(tx, Some(&old), &record)?;
            let spent = repo::spent(tx, &record, now).await?;
            Ok(BudgetView::of(&record, spent, now))
        })?;
        tracing::info!(budget = name, state = %view.state, "budget {}", if paused.is_some() { "paused" } else { "resumed" });
        self.ctx.tell_scheduler(SchedulerMsg::BudgetsChanged);
        Ok(view)
    }

    /// Removes a budget and what it counted.
    pub async fn delete_budget(&self, name: &str) -> Result<()> {
        transact!(self.ctx.store, |tx| {
            let Some(old) = repo::load_budget(tx, name).await? else {
                return Err(CoordError::NotFound(format!("budget {name}")));
            };
            repo::delete_budget(tx, &old)?;
            Ok(())
        })?;
        self.ctx.tell_scheduler(SchedulerMsg::BudgetsChanged);
        Ok(())
    }

    /// Why a job waiting for placement is held now, if it is: by a budget, or by a
    /// concurrency or rate limit.
    pub async fn held_by(&self, job: &Job) -> Result<Option<String>> {
        if job.state.ready_at().is_none() {
            return Ok(None);
        }
        let now = self.now();
        let book = &self.ctx.budget_book;
        let hold = transact!(self.ctx.store, |tx| {
            Ok::<_, gigafactory_storage::Error>(match repo::hold_of(tx, book, job, now).await? {
                Some(budget) => Some(budget.message),
                None => repo::limit_hold(tx, job, now).await?.map(|l| l.message()),
            })
        })?;
        Ok(hold)
    }
}

//! Budget and limit holds in the scheduler: the queued jobs a paused or exhausted budget, a
//! full concurrency limit or a rate not due keeps from placement are skipped, not dropped, so
//! a resume, a raised limit, a new period, a lease's end or the rate's next start lets them
//! run at once. Limits are learnt only from claims the store refused (the claim transaction
//! checks them exactly); a concurrency hold is tried again after `LIMIT_RECHECK_MS`, or at
//! once when a lease ends through this node, since leases end through every node. The scheduler learns of holds three ways: a claim the store refused because
//! of a budget (the claim transaction checks budgets, so that is exact), a report that
//! exhausted a budget through this node, and a periodic re-read of every budget (other
//! nodes' reports, changes, periods that rolled over). With policy `stop`, reaching a budget
//! also preempts its running jobs.

use std::collections::HashMap;
use std::sync::Arc;

use gigafactory_core::budget::{self, Crossing, Hold, Policy};
use gigafactory_core::event::Author;
use gigafactory_core::job::{Command, JobId, Millis};
use gigafactory_core::limits::{self, LimitHold};
use gigafactory_storage::repo;
use gigafactory_storage::transact;
use ractor::ActorRef;

use super::{SchedulerMsg, SchedulerState};
use crate::context::Context;
use crate::job_actor::JobMsg;
use crate::ready_queue::Queued;

/// How long a full concurrency limit holds its jobs before a claim tries again.
const LIMIT_RECHECK_MS: Millis = 1_000;

/// The holds in force, by budget and by limit key.
#[derive(Default)]
pub(super) struct Holds {
    by_budget: HashMap<String, Hold>,
    /// Limit key → until when its jobs wait.
    by_limit: HashMap<String, Millis>,
}

impl Holds {
    pub fn holds(&self, e: &Queued, now: Millis) -> bool {
        self.by_budget
            .values()
            .any(|h| h.holds(e.product, e.labels, now))
            || (!self.by_limit.is_empty() && self.limited(e, now))
    }

    fn limited(&self, e: &Queued, now: Millis) -> bool {
        let product = limits::product_key(e.product);
        let engine = e.engine_class().map(limits::engine_key);
        std::iter::once(product.as_str())
            .chain(engine.as_deref())
            .chain(e.concurrency_key)
            .any(|k| self.by_limit.get(k).is_some_and(|until| now < *until))
    }

    /// A claim was refused by `hold` at `now`.
    pub fn limit(&mut self, hold: &LimitHold, now: Millis) {
        let until = hold.until().unwrap_or(now + LIMIT_RECHECK_MS);
        self.by_limit.insert(hold.key().to_owned(), until);
    }

    /// A lease ended through this node: a concurrency limit may have a free slot.
    pub fn lease_ended(&mut self) -> bool {
        let before = self.by_limit.len();
        self.by_limit.clear();
        before > 0
    }

    pub fn set(&mut self, hold: Hold) {
        self.by_budget.insert(hold.budget.clone(), hold);
    }

    /// Replaces every hold with what the store says now; true when one was lifted.
    pub fn replace(&mut self, holds: Vec<Hold>) -> bool {
        let lifted = self
            .by_budget
            .keys()
            .any(|k| !holds.iter().any(|h| &h.budget == k));
        self.by_budget = holds.into_iter().map(|h| (h.budget.clone(), h)).collect();
        lifted
    }

    /// Drops budget holds whose period has rolled over (true when one was: budgets are read
    /// again) and limit holds that are due.
    pub fn expire(&mut self, now: Millis) -> bool {
        self.by_limit.retain(|_, until| now < *until);
        let before = self.by_budget.len();
        self.by_budget
            .retain(|_, h| h.until.is_none_or(|until| now < until));
        self.by_budget.len() < before
    }

    pub fn len(&self) -> usize {
        self.by_budget.len()
    }

    /// Limit keys holding their jobs now.
    pub fn limits_len(&self) -> usize {
        self.by_limit.len()
    }
}

/// The budgets this process exports gauges for: one deleted or renamed is set to 0 (the
/// exporter cannot drop a series), so its alerts do not fire on after it is gone.
static BUDGET_GAUGES: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Sets the budget gauges to `budgets`' figures, and to 0 for budgets no longer there.
fn set_budget_gauges(budgets: &[(budget::BudgetRecord, u64)]) {
    let usd = |m: u64| m as f64 / budget::MICROS_PER_USD as f64;
    let set = |name: &str, spent: f64, limit: f64, ratio: f64| {
        let name = name.to_owned();
        metrics::gauge!(crate::metrics::BUDGET_SPEND_USD, "budget" => name.clone()).set(spent);
        metrics::gauge!(crate::metrics::BUDGET_LIMIT_USD, "budget" => name.clone()).set(limit);
        metrics::gauge!(crate::metrics::BUDGET_SPEND_RATIO, "budget" => name).set(ratio);
    };
    let mut exported = BUDGET_GAUGES.lock().unwrap_or_else(|e| e.into_inner());
    let now: std::collections::BTreeSet<String> =
        budgets.iter().map(|(r, _)| r.spec.name.clone()).collect();
    for gone in exported.difference(&now) {
        set(gone, 0.0, 0.0, 0.0);
    }
    for (record, spent) in budgets {
        let limit = record.spec.limit_micros;
        set(
            &record.spec.name,
            usd(*spent),
            usd(limit),
            *spent as f64 / limit.max(1) as f64,
        );
    }
    *exported = now;
}

/// Reads every budget with its spend, off the actor, and sends the holds in force (and sets
/// the budget gauges).
pub(super) fn load_holds(ctx: Arc<Context>, scheduler: ActorRef<SchedulerMsg>) {
    tokio::spawn(async move {
        let now = ctx.now();
        let read = transact!(ctx.store, |tx| {
            let mut out = Vec::new();
            for record in repo::budgets(tx).await? {
                let spent = repo::spent(tx, &record, now).await?;
                out.push((record, spent));
            }
            Ok::<_, gigafactory_storage::Error>(out)
        });
        match read {
            Ok(budgets) => {
                set_budget_gauges(&budgets);
                let mut holds = Vec::new();
                for (record, spent) in &budgets {
                    holds.extend(budget::hold(record, *spent, now));
                }
                let _ = scheduler.cast(SchedulerMsg::HoldsLoaded(holds));
            }
            Err(e) => tracing::warn!(error = %e, "cannot read budgets; holds stay as they were"),
        }
    });
}

impl SchedulerState {
    /// A budget was reached: hold its jobs and, with policy `stop`, preempt the running ones
    /// it covers (a job that is not preemptible runs to its end).
    pub(super) async fn budget_reached(&mut self, crossing: Crossing) {
        let Some(hold) = crossing.hold() else { return };
        self.holds.set(hold.clone());
        if crossing.policy != Policy::Stop {
            return;
        }
        let now = self.ctx.now();
        let victims: Vec<JobId> = self
            .running
            .iter()
            .filter(|(_, r)| hold.holds(&r.job.product, &r.job.labels, now))
            .map(|(id, _)| *id)
            .collect();
        for id in victims {
            let cmd = Command::Preempt {
                by: None,
                grace_ms: self.ctx.config.preempt_grace_ms,
            };
            let preempted = self
                .ctx
                .ask_job(id, |reply| JobMsg::Apply {
                    cmd: cmd.clone(),
                    author: Author::Scheduler,
                    reply,
                })
                .await;
            match preempted {
                Ok(_) => {
                    tracing::info!(job_id = %id, budget = %crossing.budget, "stopping for an exhausted budget");
                    self.running.remove(&mut self.standing, &id);
                }
                Err(e) => tracing::debug!(job_id = %id, error = %e, "not stopped for its budget"),
            }
        }
    }
}

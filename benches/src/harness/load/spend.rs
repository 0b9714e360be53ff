//! `--usage`: every simulated job reports one usage of a fixed cost, carried on its complete or
//! as a write of its own before it ([`UsageMode`]), and the money must add up. Before the run the bench sets a budget of its own on the bench's
//! product, with the largest limit a budget may have, so it never holds a job; after the run
//! the budget must have spent exactly the reports the bench saw accepted times that cost
//! (each report counted once, whatever was retried). The budget is removed at the end.

use std::time::Instant;

use gigafactory_core::budget::{LIMIT_MAX_MICROS, Micros, Period, format_usd};
use gigafactory_core::job::Millis;
use gigafactory_core::wire::BudgetBody;
use serde::Deserialize;

use super::{BENCH_PRODUCT, Retry, Route, Shared, parse};
use crate::harness::error::{Error, Result};

/// What each job's usage report costs: a tenth of a cent, so a 100-million-job run stays far
/// below the budget's limit.
pub(crate) const USAGE_MICROS: Micros = 1_000;
/// The model the reports name; they carry their cost, so no price table is needed.
pub(crate) const USAGE_MODEL: &str = "bench";

/// How each job of a `--usage` run reports its usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum UsageMode {
    /// On its complete, in the complete's transaction: what the factory agent does with the
    /// reports still waiting when a job ends.
    Carried,
    /// As a fenced write of its own before the complete: what the agent does with a report
    /// written while the job runs.
    Separate,
}

impl UsageMode {
    /// How the figures name the mode.
    pub fn describe(mode: Option<UsageMode>) -> &'static str {
        match mode {
            None => "off",
            Some(UsageMode::Carried) => "carried on the complete",
            Some(UsageMode::Separate) => "a separate write",
        }
    }
}

/// The budget of one run.
pub(crate) struct RunBudget {
    pub name: String,
    /// The start of its period when it was set: spend from an earlier period is not this run's.
    period_start: Millis,
}

/// The part of a budget's answers the bench reads.
#[derive(Deserialize)]
struct BudgetFigures {
    spent_micros: Micros,
    period_start: Millis,
}

#[derive(Deserialize)]
struct Detail {
    budget: BudgetFigures,
}

/// What the run's budget spent, as the store counted it.
pub(crate) struct Spent {
    micros: Micros,
    period_start: Millis,
}

fn budget_path(name: &str) -> String {
    format!("/v1/budgets/{name}")
}

/// Sets the budget of the run `run_id` on the bench's product, through the first node.
pub(crate) async fn set_budget(sh: &Shared, run_id: &str) -> Result<RunBudget> {
    let name = format!("bench-{run_id}");
    let body = BudgetBody {
        product: BENCH_PRODUCT.into(),
        label: None,
        // The longest period: a run is least likely to cross into the next one.
        period: Period::Month,
        limit_micros: LIMIT_MAX_MICROS,
        alert_percent: None,
        policy: None,
    };
    let route = Route::new(0, sh.nodes.len());
    let path = budget_path(&name);
    let answer = sh
        .send("set budget", Retry::Idempotent, &route, |base| {
            sh.http
                .put(format!("{base}{path}"))
                .bearer_auth(&sh.admin)
                .json(&body)
        })
        .await?
        .body
        .unwrap_or_default();
    let set: BudgetFigures = parse("set budget", &answer)?;
    Ok(RunBudget {
        name,
        period_start: set.period_start,
    })
}

/// What the run's budget spent, asking the first node.
pub(crate) async fn spent(sh: &Shared, budget: &RunBudget, deadline: Instant) -> Result<Spent> {
    if Instant::now() >= deadline {
        return Err(Error::Check("budget spend: no time left to read it".into()));
    }
    let detail: Detail = sh.read("read budget", &budget_path(&budget.name)).await?;
    Ok(Spent {
        micros: detail.budget.spent_micros,
        period_start: detail.budget.period_start,
    })
}

/// Removes the run's budget (and what it counted), so a coordinator benched again is left as
/// it was. A failure is reported, not fatal: the figures are taken.
pub(crate) async fn remove_budget(sh: &Shared, budget: &RunBudget) {
    let route = Route::new(0, sh.nodes.len());
    let path = budget_path(&budget.name);
    let removed = sh
        .send("remove budget", Retry::Refused, &route, |base| {
            sh.http
                .delete(format!("{base}{path}"))
                .bearer_auth(&sh.admin)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
        })
        .await;
    if let Err(e) = removed {
        eprintln!("could not remove the bench's budget {}: {e}", budget.name);
    }
}

/// Whether the budget spent exactly `reports` × [`USAGE_MICROS`]: the line that says so, or
/// why not.
pub(crate) fn check_spend(
    budget: &RunBudget,
    spent: &Result<Spent>,
    reports: u64,
) -> Result<String, String> {
    let expected = reports.saturating_mul(USAGE_MICROS);
    match spent {
        Err(e) => Err(format!("FAILED: {e}")),
        Ok(s) if s.period_start != budget.period_start => Err(format!(
            "NOT CHECKED: budget {}'s month ended during the run, which split its spend; run \
             again",
            budget.name
        )),
        Ok(s) if s.micros == expected => Ok(format!(
            "OK: budget {} spent {} = {reports} reports × {}",
            budget.name,
            format_usd(s.micros),
            format_usd(USAGE_MICROS)
        )),
        Ok(s) => Err(format!(
            "MISMATCH: budget {} spent {}, but {reports} reports × {} = {}",
            budget.name,
            format_usd(s.micros),
            format_usd(USAGE_MICROS),
            format_usd(expected)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> RunBudget {
        RunBudget {
            name: "bench-1".into(),
            period_start: 100,
        }
    }

    fn spent(micros: Micros, period_start: Millis) -> Result<Spent> {
        Ok(Spent {
            micros,
            period_start,
        })
    }

    #[test]
    fn the_budget_must_have_spent_each_accepted_report_once() {
        assert_eq!(
            check_spend(&budget(), &spent(2_000_000, 100), 2_000),
            Ok("OK: budget bench-1 spent $2.00 = 2000 reports × $0.001".into())
        );
        let doubled = check_spend(&budget(), &spent(2_001_000, 100), 2_000).unwrap_err();
        assert!(doubled.starts_with("MISMATCH"), "{doubled}");
        let lost = check_spend(&budget(), &spent(1_999_000, 100), 2_000).unwrap_err();
        assert!(lost.starts_with("MISMATCH"), "{lost}");
    }

    #[test]
    fn a_run_across_the_budgets_period_is_not_a_mismatch_but_unchecked() {
        let split = check_spend(&budget(), &spent(0, 200), 2_000).unwrap_err();
        assert!(split.starts_with("NOT CHECKED"), "{split}");
        let unread = check_spend(&budget(), &Err(Error::Check("gone".into())), 1).unwrap_err();
        assert!(unread.starts_with("FAILED"), "{unread}");
    }
}

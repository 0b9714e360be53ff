//! C8: money is counted exactly. A usage report the store accepts adds its amount to the
//! job's cost and a `usage` event (`"MODEL: $X"`) to its timeline in one transaction, and the
//! same amount to the budget (B1); a retried report adds nothing. A report carried on a job's
//! end is applied in the end's transaction just so, with an event of its own before the
//! end's. So each job's cost is the sum of its usage events, and the run's budget spent the
//! sum of its jobs' costs — unless the run crossed into a new budget period, which splits the
//! spend (then only the jobs are checked).

use gigafactory_core::budget::parse_usd;
use gigafactory_core::event::EventKind;

use super::{Invariant, Violation};
use crate::history::History;

/// C8 over every job fetched and the run's budget.
pub fn check_money(history: &History, out: &mut Vec<Violation>) {
    let mut total: u64 = 0;
    let mut all_known = true;
    for job in history.jobs.iter().filter(|j| j.found) {
        let Some(cost) = job.cost_micros else {
            all_known = false;
            continue;
        };
        total = total.saturating_add(cost);
        let usage: Vec<_> = job
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Usage)
            .collect();
        let reported: Option<u64> = usage
            .iter()
            .map(|e| {
                let detail = e.detail.as_deref()?;
                parse_usd(detail.rsplit_once(": ")?.1).ok()
            })
            .sum();
        match reported {
            Some(sum) if sum == cost => {}
            _ => out.push(Violation {
                invariant: Invariant::C8,
                job: Some(job.id.clone()),
                message: format!(
                    "cost {cost} micros, but its {} usage events add up to {reported:?}",
                    usage.len()
                ),
                events: usage.into_iter().cloned().collect(),
            }),
        }
    }
    let Some(budget) = &history.budget else {
        return;
    };
    let one_period =
        budget.period_start <= history.started_at && history.ended_at < budget.period_end;
    if all_known && one_period && budget.spent_micros != total {
        out.push(Violation {
            invariant: Invariant::C8,
            job: None,
            message: format!(
                "budget {} spent {} micros, but its jobs cost {total}",
                budget.name, budget.spent_micros
            ),
            events: Vec::new(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::fixtures::*;
    use crate::history::BudgetSnapshot;

    fn usage(seq: u64, amount: &str) -> gigafactory_core::wire::Event {
        let mut e = ev(seq, "usage", &by(F1), 1, "running");
        e.detail = Some(format!("chaos: {amount}"));
        e
    }

    fn run(cost: u64, events: Vec<gigafactory_core::wire::Event>, spent: u64) -> History {
        let mut h = one_job("succeeded", events);
        h.jobs[0].cost_micros = Some(cost);
        h.budget = Some(BudgetSnapshot {
            name: "chaos".into(),
            spent_micros: spent,
            period_start: 0,
            period_end: u64::MAX,
        });
        h.ended_at = 1;
        h
    }

    fn c8(h: &History) -> Vec<Violation> {
        let mut out = Vec::new();
        check_money(h, &mut out);
        out
    }

    #[test]
    fn costs_that_match_their_usage_and_the_budget_pass() {
        let h = run(20_000, vec![usage(2, "$0.01"), usage(3, "$0.01")], 20_000);
        assert_eq!(c8(&h), []);
    }

    #[test]
    fn a_usage_counted_twice_in_the_cost_breaks_c8() {
        let h = run(20_000, vec![usage(2, "$0.01")], 20_000);
        assert_eq!(c8(&h).len(), 1);
        assert_eq!(c8(&h)[0].invariant, Invariant::C8);
    }

    #[test]
    fn a_budget_that_spent_other_than_its_jobs_cost_breaks_c8() {
        let h = run(10_000, vec![usage(2, "$0.01")], 30_000);
        let v = c8(&h);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].message.contains("budget chaos spent 30000"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn a_run_across_two_budget_periods_checks_only_its_jobs() {
        let mut h = run(10_000, vec![usage(2, "$0.01")], 0);
        h.budget.as_mut().unwrap().period_end = 1;
        h.ended_at = 5;
        assert_eq!(c8(&h), []);
    }
}

//! A budget's burndown over its current period: spend per UTC day and cumulative, against the
//! limit, with a forecast to the period's end from the recent rate.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use super::{BudgetSpec, Micros, day_start};
use crate::job::Millis;

const MS_PER_DAY: u64 = 86_400_000;
/// How many recent days (at most, and no further back than the period's start) the forecast
/// takes its rate from.
pub const FORECAST_WINDOW_DAYS: u64 = 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct BurndownDay {
    /// The first moment of the UTC day.
    pub day: Millis,
    pub spent_micros: Micros,
    /// Spent from the period's start to the end of this day.
    pub cumulative_micros: Micros,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Burndown {
    pub period_start: Millis,
    pub period_end: Millis,
    pub limit_micros: Micros,
    /// Every day of the period up to today, oldest first.
    pub days: Vec<BurndownDay>,
    /// Spend at the period's end if the recent rate holds.
    pub forecast_micros: Micros,
}

/// The burndown of `spec` at `now`, from its spend per UTC day (`daily`, keyed by day start;
/// days outside the current period are ignored).
pub fn burndown(spec: &BudgetSpec, daily: &BTreeMap<Millis, Micros>, now: Millis) -> Burndown {
    let (start, end) = (spec.period.start(now), spec.period.end(now));
    let today = day_start(now);
    let mut days = Vec::new();
    let mut cumulative: Micros = 0;
    let mut day = start;
    while day <= today && day < end {
        let spent = daily.get(&day).copied().unwrap_or(0);
        cumulative = cumulative.saturating_add(spent);
        days.push(BurndownDay {
            day,
            spent_micros: spent,
            cumulative_micros: cumulative,
        });
        day += MS_PER_DAY;
    }
    // The rate: what the last few whole and partial days spent, over the time they lasted.
    let window_start = start.max(today.saturating_sub((FORECAST_WINDOW_DAYS - 1) * MS_PER_DAY));
    let recent: u128 = days
        .iter()
        .filter(|d| d.day >= window_start)
        .map(|d| u128::from(d.spent_micros))
        .sum();
    let elapsed = u128::from(now.saturating_sub(window_start).max(1));
    let remaining = u128::from(end.saturating_sub(now));
    let ahead = recent * remaining / elapsed;
    let forecast_micros = u64::try_from(u128::from(cumulative) + ahead).unwrap_or(u64::MAX);
    debug_assert!(forecast_micros >= cumulative);
    Burndown {
        period_start: start,
        period_end: end,
        limit_micros: spec.limit_micros,
        days,
        forecast_micros,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ALERT_PERCENT_DEFAULT, MICROS_PER_USD, Period, Policy};
    use super::*;

    fn weekly() -> BudgetSpec {
        BudgetSpec {
            name: "w".into(),
            product: "p".into(),
            label: None,
            period: Period::Week,
            limit_micros: 700 * MICROS_PER_USD,
            alert_percent: ALERT_PERCENT_DEFAULT,
            policy: Policy::Finish,
        }
    }

    /// Monday 2026-11-30 00:00 UTC.
    const MONDAY: Millis = 1_795_996_800_000;

    #[test]
    fn every_day_of_the_period_so_far_is_listed_with_its_running_total() {
        let now = MONDAY + 2 * MS_PER_DAY + MS_PER_DAY / 2; // Wednesday noon
        let daily = BTreeMap::from([
            (MONDAY - MS_PER_DAY, 999 * MICROS_PER_USD), // last week: not this period
            (MONDAY, 100 * MICROS_PER_USD),
            (MONDAY + 2 * MS_PER_DAY, 50 * MICROS_PER_USD),
        ]);
        let b = burndown(&weekly(), &daily, now);
        let spent: Vec<u64> = b
            .days
            .iter()
            .map(|d| d.spent_micros / MICROS_PER_USD)
            .collect();
        let total: Vec<u64> = b
            .days
            .iter()
            .map(|d| d.cumulative_micros / MICROS_PER_USD)
            .collect();
        assert_eq!(spent, [100, 0, 50]);
        assert_eq!(total, [100, 100, 150]);
        assert_eq!(
            (b.period_start, b.period_end),
            (MONDAY, MONDAY + 7 * MS_PER_DAY)
        );
        // $150 over the last 2.5 days is $60 a day; 4.5 days remain: $150 + $270.
        assert_eq!(b.forecast_micros, 420 * MICROS_PER_USD);
    }

    #[test]
    fn a_period_without_spend_forecasts_nothing() {
        let b = burndown(&weekly(), &BTreeMap::new(), MONDAY + 1);
        assert_eq!(b.days.len(), 1);
        assert_eq!(b.forecast_micros, 0);
    }
}

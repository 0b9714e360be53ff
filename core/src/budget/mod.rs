//! Budgets: how much a product (or one label's jobs within it) may spend per UTC period, and
//! what happens at the limit. Spend is recorded, never refused — money a job used is gone —
//! so a budget is a state derived from its record and its period's spend:
//!
//! - **active** while spend is below the limit;
//! - **paused** by an operator (who, why, when), whatever the spend;
//! - **exhausted** once spend reaches the limit, until the period resets.
//!
//! A paused or exhausted budget holds its jobs: no new leases (`hold`). Running jobs follow
//! the budget's policy: `finish` lets them end, `stop` preempts them with a checkpoint.
//! Crossing the alert threshold and the limit are each reported once per period
//! (`crossings`). The invariants, kept by `storage::repo` and the claim path:
//!
//! - **B1** spend is added in the transaction that accepts the usage (or settles factory
//!   time), so every budget's spend is exactly the sum of what its jobs were charged;
//! - **B2** a usage report counts once per request id, and only from the lease holder at
//!   the current epoch (J3);
//! - **B3** a claim checks its job's budgets in its own transaction: once a pause is
//!   acknowledged, no new lease of a covered job commits;
//! - **B4** each level (alert, limit) of a budget is announced once per period.
//!
//! Amounts are integer micro-dollars (`money.rs`); periods are UTC calendar days, weeks and
//! months (`period.rs`); the burndown series and its forecast are in `burndown.rs`.

mod burndown;
mod money;
mod period;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use burndown::{Burndown, BurndownDay, FORECAST_WINDOW_DAYS, burndown};
pub use money::{BadAmount, MICROS_PER_USD, Micros, cost_of, format_usd, parse_usd};
pub use period::{Period, day_start, format_utc, format_utc_seconds};

use crate::event::Author;
use crate::job::Millis;

/// Longest budget name, in characters.
pub const NAME_LEN_MAX: usize = 64;
/// Alert threshold of a budget that names none, in percent of its limit.
pub const ALERT_PERCENT_DEFAULT: u8 = 80;
/// Longest reason an operator may give for a pause, in bytes.
pub const PAUSE_REASON_MAX_BYTES: usize = 512;
/// Largest limit: one million dollars.
pub const LIMIT_MAX_MICROS: Micros = 1_000_000 * MICROS_PER_USD;

/// What running jobs of a product do when its budget is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Let them run to their end; hold only new leases.
    Finish,
    /// Preempt them (checkpoint and release), as preemption does.
    Stop,
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::Finish => "finish",
            Policy::Stop => "stop",
        }
    }
}

/// A budget as an operator sets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetSpec {
    /// Unique across products; names the budget in the API and in messages.
    pub name: String,
    pub product: String,
    /// When set, only the product's jobs with this label count and are held.
    pub label: Option<String>,
    pub period: Period,
    pub limit_micros: Micros,
    /// The spend (percent of the limit) at which the budget warns once per period.
    pub alert_percent: u8,
    pub policy: Policy,
}

/// Who paused a budget, why and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub by: Author,
    pub reason: String,
    pub at: Millis,
}

/// A budget as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetRecord {
    pub spec: BudgetSpec,
    pub paused: Option<Pause>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// Where a budget stands in its current period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetState {
    Active,
    Paused,
    Exhausted,
}

impl BudgetState {
    pub fn name(self) -> &'static str {
        match self {
            BudgetState::Active => "active",
            BudgetState::Paused => "paused",
            BudgetState::Exhausted => "exhausted",
        }
    }
}

/// Why a budget holds its jobs, and until when (`None`: until an operator resumes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub budget: String,
    /// The jobs it holds: the product's, or only those with the label.
    pub product: String,
    pub label: Option<String>,
    pub message: String,
    pub until: Option<Millis>,
}

impl Hold {
    /// Whether it holds a job of `product` with `labels` at `now`.
    pub fn holds(&self, product: &str, labels: &[String], now: Millis) -> bool {
        self.product == product
            && self.label.as_ref().is_none_or(|l| labels.contains(l))
            && self.until.is_none_or(|until| now < until)
    }
}

/// A level a budget's spend passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The alert threshold (`alert_percent` of the limit).
    Alert,
    /// The limit.
    Exhausted,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Alert => "alert",
            Level::Exhausted => "exhausted",
        }
    }
}

/// A budget passed a level for the first time in its period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crossing {
    pub budget: String,
    pub product: String,
    pub label: Option<String>,
    pub level: Level,
    pub policy: Policy,
    pub spent_micros: Micros,
    pub limit_micros: Micros,
    /// When the period resets.
    pub until: Millis,
}

impl Crossing {
    /// The hold a budget just exhausted puts on its jobs (`None` for an alert).
    pub fn hold(&self) -> Option<Hold> {
        (self.level == Level::Exhausted).then(|| Hold {
            budget: self.budget.clone(),
            product: self.product.clone(),
            label: self.label.clone(),
            message: self.message(),
            until: Some(self.until),
        })
    }

    /// How the timeline and the fleet stream say it.
    pub fn message(&self) -> String {
        match self.level {
            Level::Alert => format!(
                "budget {} passed its alert: {} of {}",
                self.budget,
                format_usd(self.spent_micros),
                format_usd(self.limit_micros)
            ),
            Level::Exhausted => format!(
                "budget {} exhausted: {} of {}, resets {}",
                self.budget,
                format_usd(self.spent_micros),
                format_usd(self.limit_micros),
                format_utc(self.until)
            ),
        }
    }
}

/// Every problem with a budget as set; nothing is stored while there is one.
pub fn validate(spec: &BudgetSpec) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let name_ok = |s: &str, max: usize| {
        !s.is_empty()
            && s.chars().count() <= max
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    if !name_ok(&spec.name, NAME_LEN_MAX) {
        problems.push(format!(
            "name: must be 1 to {NAME_LEN_MAX} characters from a-z A-Z 0-9 . _ -, got {:?}",
            spec.name
        ));
    }
    if !name_ok(&spec.product, crate::manifest::KEY_LEN_MAX) {
        problems.push(format!("product: {:?} is not a product name", spec.product));
    }
    if let Some(label) = &spec.label
        && !name_ok(label, crate::manifest::CAPABILITY_LEN_MAX)
    {
        problems.push(format!("label: {label:?} is not a label"));
    }
    if spec.limit_micros == 0 || spec.limit_micros > LIMIT_MAX_MICROS {
        problems.push(format!(
            "limit: must be more than $0 and at most {}, got {}",
            format_usd(LIMIT_MAX_MICROS),
            format_usd(spec.limit_micros)
        ));
    }
    if !(1..=100).contains(&spec.alert_percent) {
        problems.push(format!(
            "alert_percent: must be 1 to 100, got {}",
            spec.alert_percent
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

impl BudgetSpec {
    /// Whether a job of `product` with `labels` counts against this budget.
    pub fn covers(&self, product: &str, labels: &[String]) -> bool {
        self.product == product && self.label.as_ref().is_none_or(|l| labels.contains(l))
    }

    /// The spend at which the alert fires.
    pub fn alert_micros(&self) -> Micros {
        (u128::from(self.limit_micros) * u128::from(self.alert_percent) / 100) as Micros
    }
}

/// Where the budget stands with `spent` in its current period.
pub fn state(record: &BudgetRecord, spent: Micros) -> BudgetState {
    if record.paused.is_some() {
        BudgetState::Paused
    } else if spent >= record.spec.limit_micros {
        BudgetState::Exhausted
    } else {
        BudgetState::Active
    }
}

/// Why the budget holds its jobs at `now` with `spent` in the current period, if it does.
pub fn hold(record: &BudgetRecord, spent: Micros, now: Millis) -> Option<Hold> {
    let spec = &record.spec;
    match (state(record, spent), &record.paused) {
        (BudgetState::Paused, Some(p)) => Some(Hold {
            budget: spec.name.clone(),
            product: spec.product.clone(),
            label: spec.label.clone(),
            message: format!("budget {} paused by {}: {}", spec.name, p.by, p.reason),
            until: None,
        }),
        (BudgetState::Exhausted, _) => {
            let resets = spec.period.end(now);
            Some(Hold {
                budget: spec.name.clone(),
                product: spec.product.clone(),
                label: spec.label.clone(),
                message: format!(
                    "budget {} exhausted: {} of {}, resets {}",
                    spec.name,
                    format_usd(spent),
                    format_usd(spec.limit_micros),
                    format_utc(resets)
                ),
                until: Some(resets),
            })
        }
        _ => None,
    }
}

/// The levels spend passed going from `before` to `after` within one period.
pub fn crossings(spec: &BudgetSpec, before: Micros, after: Micros) -> Vec<Level> {
    let passed = |at: Micros| before < at && after >= at;
    let mut out = Vec::new();
    if passed(spec.alert_micros().max(1)) {
        out.push(Level::Alert);
    }
    if passed(spec.limit_micros) {
        out.push(Level::Exhausted);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(limit_usd: u64) -> BudgetSpec {
        BudgetSpec {
            name: "ops-daily".into(),
            product: "ops".into(),
            label: None,
            period: Period::Day,
            limit_micros: limit_usd * MICROS_PER_USD,
            alert_percent: ALERT_PERCENT_DEFAULT,
            policy: Policy::Finish,
        }
    }

    fn record(spec: BudgetSpec) -> BudgetRecord {
        BudgetRecord {
            spec,
            paused: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    /// 2026-12-02 15:30 UTC.
    const NOW: Millis = 1_796_225_400_000;

    #[test]
    fn an_exhausted_budget_holds_until_its_period_resets_and_says_so() {
        let r = record(spec(50));
        assert_eq!(hold(&r, 49_999_999, NOW), None);
        let h = hold(&r, 50_000_000, NOW).expect("spend reached the limit");
        assert_eq!(
            h.message,
            "budget ops-daily exhausted: $50.00 of $50.00, resets 2026-12-03 00:00 UTC"
        );
        assert_eq!(h.until, Some(Period::Day.end(NOW)));
        assert_eq!(state(&r, 60_000_000), BudgetState::Exhausted);
    }

    #[test]
    fn a_paused_budget_holds_whatever_its_spend_until_resumed() {
        let r = BudgetRecord {
            paused: Some(Pause {
                by: Author::Admin("alice".into()),
                reason: "runaway agent".into(),
                at: NOW,
            }),
            ..record(spec(50))
        };
        assert_eq!(state(&r, 0), BudgetState::Paused);
        let h = hold(&r, 0, NOW).unwrap();
        assert_eq!(
            h.message,
            "budget ops-daily paused by admin:alice: runaway agent"
        );
        assert_eq!(h.until, None);
    }

    #[test]
    fn a_label_budget_covers_only_its_labels_jobs() {
        let team = BudgetSpec {
            label: Some("team-a".into()),
            ..spec(10)
        };
        assert!(team.covers("ops", &["team-a".into(), "x".into()]));
        assert!(!team.covers("ops", &["team-b".into()]));
        assert!(!team.covers("other", &["team-a".into()]));
        assert!(spec(10).covers("ops", &[]));
    }

    #[test]
    fn bad_budgets_are_refused_with_every_problem() {
        let bad = BudgetSpec {
            name: "has space".into(),
            product: String::new(),
            label: Some("".into()),
            limit_micros: 0,
            alert_percent: 0,
            ..spec(1)
        };
        assert_eq!(validate(&bad).unwrap_err().len(), 5);
        assert_eq!(validate(&spec(1)), Ok(()));
    }

    #[test]
    fn the_alert_and_the_limit_are_each_crossed_once() {
        let s = spec(100);
        assert_eq!(crossings(&s, 0, 79_999_999), []);
        assert_eq!(crossings(&s, 79_999_999, 80_000_000), [Level::Alert]);
        assert_eq!(crossings(&s, 80_000_000, 99_000_000), []);
        assert_eq!(
            crossings(&s, 0, 120_000_000),
            [Level::Alert, Level::Exhausted]
        );
        assert_eq!(crossings(&s, 100_000_000, 130_000_000), []);
    }

    proptest! {
        /// However spend arrives, each level is crossed exactly once on the way past it.
        #[test]
        fn each_level_is_crossed_exactly_once_whatever_the_steps(
            steps in prop::collection::vec(0u64..30_000_000, 0..40),
            alert in 1u8..=100,
        ) {
            let s = BudgetSpec { alert_percent: alert, ..spec(100) };
            let mut spent = 0;
            let mut seen = Vec::new();
            for step in steps {
                seen.extend(crossings(&s, spent, spent + step));
                spent += step;
            }
            let alerts = seen.iter().filter(|l| **l == Level::Alert).count();
            let ends = seen.iter().filter(|l| **l == Level::Exhausted).count();
            prop_assert_eq!(alerts, usize::from(spent >= s.alert_micros()));
            prop_assert_eq!(ends, usize::from(spent >= s.limit_micros));
        }
    }
}

//! What a job spends: model usage it reports (priced from the coordinator's price table when
//! it gives tokens and no dollars) and its factory's time (the factory's hourly rate × lease
//! time, settled when the lease ends and at intervals while it lasts). All in integer
//! micro-dollars.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::budget::{Micros, cost_of};
use crate::job::Millis;

/// Longest model name, in characters.
pub const MODEL_LEN_MAX: usize = 128;
/// Most tokens one report may carry, in or out.
pub const TOKENS_MAX: u64 = 1_000_000_000_000;
/// Most one report may cost: $10,000.
pub const REPORT_MAX_MICROS: Micros = 10_000_000_000;
/// Most usage reports one end (`complete`, `fail`, `release`) may carry. Each carried report
/// rewrites the job's record in the end's transaction, and a record may take up to 100 KB:
/// 64 of them stay well within the 10 MB a transaction may write, whatever the job.
pub const CARRIED_REPORTS_MAX: usize = 64;
/// Distinct models a job's cost lists; reports of further models count under
/// [`OTHER_MODELS`], so the job's record stays bounded (and every write of it, its end
/// included, fits the store's value limit) while its spend stays exact.
pub const MODELS_PER_JOB_MAX: usize = 32;
/// The entry that reports past [`MODELS_PER_JOB_MAX`] distinct models count under.
pub const OTHER_MODELS: &str = "(other models)";
/// While a lease lasts, factory time is settled (and counted against budgets) at most this
/// often: at the renewal after this much unsettled time.
pub const FACTORY_TIME_SETTLE_MS: u64 = 60_000;

/// A model's price, per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    pub input_micros_per_mtok: Micros,
    pub output_micros_per_mtok: Micros,
}

/// Prices by model name.
pub type PriceTable = BTreeMap<String, Price>;

/// Why a usage report is refused; nothing was counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("model must be 1 to {MODEL_LEN_MAX} characters")]
    BadModel,
    #[error("tokens must be at most {TOKENS_MAX}")]
    TooManyTokens,
    #[error("one report may cost at most $10,000")]
    TooCostly,
    /// Tokens without dollars for a model the price table does not know.
    #[error("no price for model {0:?}: report the cost (--cost-usd) or add the model to [prices]")]
    UnknownModel(String),
}

/// The cost of a report: its dollars when it gives them, else its tokens at the model's price
/// (rounded up to the next micro).
pub fn price(
    model: &str,
    input_tokens: u64,
    output_tokens: u64,
    cost_micros: Option<Micros>,
    prices: &PriceTable,
) -> Result<Micros, UsageError> {
    if model.is_empty() || model.chars().count() > MODEL_LEN_MAX {
        return Err(UsageError::BadModel);
    }
    if input_tokens > TOKENS_MAX || output_tokens > TOKENS_MAX {
        return Err(UsageError::TooManyTokens);
    }
    let micros = match cost_micros {
        Some(m) => m,
        None => {
            let p = prices
                .get(model)
                .ok_or_else(|| UsageError::UnknownModel(model.to_owned()))?;
            let per = |tokens: u64, rate: Micros| {
                (u128::from(tokens) * u128::from(rate)).div_ceil(1_000_000)
            };
            let total = per(input_tokens, p.input_micros_per_mtok)
                + per(output_tokens, p.output_micros_per_mtok);
            u64::try_from(total).unwrap_or(u64::MAX)
        }
    };
    if micros > REPORT_MAX_MICROS {
        return Err(UsageError::TooCostly);
    }
    Ok(micros)
}

/// One model's usage by a job, over all its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ModelUsage {
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub micros: Micros,
}

/// What a job has cost so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCost {
    /// By model, in the order first reported.
    pub models: Vec<ModelUsage>,
    /// Factory time settled so far.
    pub factory_micros: Micros,
    /// The factory rate of the lease held now (0 without one).
    pub rate_micros_per_hour: Micros,
    /// Until when the current lease's time is settled.
    pub settled_at: Millis,
}

impl JobCost {
    pub fn total(&self) -> Micros {
        self.models
            .iter()
            .fold(self.factory_micros, |sum, m| sum.saturating_add(m.micros))
    }

    /// Adds a report: under its model, or under [`OTHER_MODELS`] once the job lists
    /// [`MODELS_PER_JOB_MAX`] models and this is another.
    pub fn add(&mut self, model: &str, input_tokens: u64, output_tokens: u64, micros: Micros) {
        let listed = self.models.iter().any(|m| m.model == model);
        let model = if listed || self.models.len() < MODELS_PER_JOB_MAX {
            model
        } else {
            OTHER_MODELS
        };
        let entry = match self.models.iter_mut().find(|m| m.model == model) {
            Some(e) => e,
            None => {
                self.models.push(ModelUsage {
                    model: model.to_owned(),
                    input_tokens: 0,
                    output_tokens: 0,
                    micros: 0,
                });
                self.models.last_mut().expect("just pushed")
            }
        };
        entry.input_tokens = entry.input_tokens.saturating_add(input_tokens);
        entry.output_tokens = entry.output_tokens.saturating_add(output_tokens);
        entry.micros = entry.micros.saturating_add(micros);
        debug_assert!(self.models.len() <= MODELS_PER_JOB_MAX + 1);
    }

    /// A lease at `rate` begins at `now`.
    pub fn start_lease(&mut self, rate_micros_per_hour: Micros, now: Millis) {
        self.rate_micros_per_hour = rate_micros_per_hour;
        self.settled_at = now;
    }

    /// Settles the current lease's time up to `now`; returns what it added.
    pub fn settle(&mut self, now: Millis) -> Micros {
        let added = cost_of(
            now.saturating_sub(self.settled_at),
            self.rate_micros_per_hour,
        );
        self.factory_micros = self.factory_micros.saturating_add(added);
        self.settled_at = self.settled_at.max(now);
        added
    }

    /// Settles and stops accruing: the lease ended at `now`.
    pub fn end_lease(&mut self, now: Millis) -> Micros {
        let added = self.settle(now);
        self.rate_micros_per_hour = 0;
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_lists_a_bounded_number_of_models_and_the_rest_count_as_other() {
        let mut cost = JobCost::default();
        let many = MODELS_PER_JOB_MAX + 10;
        for n in 0..many {
            cost.add(&format!("model-{n}"), 1, 1, 100);
        }
        cost.add("model-0", 1, 1, 5);
        assert_eq!(cost.models.len(), MODELS_PER_JOB_MAX + 1);
        assert_eq!(
            cost.models[0].micros, 105,
            "a listed model still counts as itself"
        );
        let other = cost.models.last().unwrap();
        assert_eq!((other.model.as_str(), other.micros), (OTHER_MODELS, 1_000));
        assert_eq!(cost.total(), many as u64 * 100 + 5, "spend stays exact");
    }
    use crate::budget::MICROS_PER_USD;

    fn table() -> PriceTable {
        PriceTable::from([(
            "sonnet".to_owned(),
            Price {
                input_micros_per_mtok: 3 * MICROS_PER_USD,
                output_micros_per_mtok: 15 * MICROS_PER_USD,
            },
        )])
    }

    #[test]
    fn tokens_are_priced_from_the_table_and_dollars_taken_as_given() {
        // 1M in at $3, 200k out at $15/M = $3 + $3.
        assert_eq!(
            price("sonnet", 1_000_000, 200_000, None, &table()),
            Ok(6_000_000)
        );
        assert_eq!(price("sonnet", 1, 0, None, &table()), Ok(3), "rounds up");
        assert_eq!(price("other", 10, 10, Some(42), &table()), Ok(42));
        assert_eq!(
            price("other", 10, 10, None, &table()),
            Err(UsageError::UnknownModel("other".into()))
        );
        assert_eq!(
            price("", 0, 0, Some(1), &table()),
            Err(UsageError::BadModel)
        );
        assert_eq!(
            price("sonnet", TOKENS_MAX + 1, 0, None, &table()),
            Err(UsageError::TooManyTokens)
        );
        assert_eq!(
            price("x", 0, 0, Some(REPORT_MAX_MICROS + 1), &table()),
            Err(UsageError::TooCostly)
        );
    }

    #[test]
    fn a_jobs_cost_adds_models_and_settled_factory_time() {
        let mut c = JobCost::default();
        c.add("sonnet", 10, 20, 100);
        c.add("haiku", 1, 1, 5);
        c.add("sonnet", 5, 5, 50);
        assert_eq!(c.models.len(), 2);
        assert_eq!((c.models[0].input_tokens, c.models[0].micros), (15, 150));
        c.start_lease(3_600_000, 1_000);
        assert_eq!(
            c.settle(1_000 + 1_800_000),
            1_800_000,
            "half an hour at $3.60"
        );
        assert_eq!(c.end_lease(1_000 + 3_600_000), 1_800_000);
        assert_eq!(c.end_lease(1_000 + 7_200_000), 0, "no lease, no accrual");
        assert_eq!(c.total(), 155 + 3_600_000);
    }
}

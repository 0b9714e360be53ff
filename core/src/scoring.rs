//! Placement scoring: which queued job a factory should run next, why, and which running job
//! to preempt when an important one cannot be placed.
//!
//! Guarantees:
//! - Eligibility is a hard filter ([`eligible`]): a free slot, every required capability, and
//!   the job's engine class. Scores only rank eligible pairs.
//! - Every score is explainable: [`score_candidate`] returns each factor's raw value (in
//!   0..=1), weight and contribution, and the total is exactly their sum.
//! - Everything is deterministic: the same input gives the same scores and the same choice,
//!   whatever order the candidates come in (ties are broken by priority, age, then id).
//! - Weights are finite and within `0..=WEIGHT_MAX` once resolved, so totals are finite.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Largest weight an operator may set.
pub const WEIGHT_MAX: f64 = 10.0;
/// Age at which the age factor reaches 1 - 1/e (~0.63); it keeps rising towards 1 after.
pub const AGE_SCALE_MINUTES: f64 = 30.0;
/// Cost per hour at or above which the cost factor is 0: 10 USD.
pub const COST_CEILING_MICROS_PER_HOUR: u64 = 10_000_000;

const PRIORITY_SCALE: f64 = 1_000.0;
const MS_PER_MINUTE: f64 = 60_000.0;

/// What an invalid weight set is; the operator should fix the named field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoringError {
    /// A weight is NaN, infinite, negative or above [`WEIGHT_MAX`].
    #[error("weight `{field}` must be a finite number between 0 and 10, got {value}")]
    WeightOutOfRange { field: &'static str, value: f64 },
}

/// How much each factor counts. A product may override some, and a request some more.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Weights {
    pub priority: f64,
    pub age: f64,
    pub affinity: f64,
    pub load: f64,
    pub cost: f64,
    pub success: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            priority: 1.0,
            age: 0.5,
            affinity: 0.8,
            load: 0.6,
            cost: 0.3,
            success: 0.4,
        }
    }
}

/// A partial weight set: `None` keeps the value from the level below.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightsOverride {
    #[serde(default)]
    pub priority: Option<f64>,
    #[serde(default)]
    pub age: Option<f64>,
    #[serde(default)]
    pub affinity: Option<f64>,
    #[serde(default)]
    pub load: Option<f64>,
    #[serde(default)]
    pub cost: Option<f64>,
    #[serde(default)]
    pub success: Option<f64>,
}

impl Weights {
    fn fields(&self) -> [(&'static str, f64); 6] {
        [
            ("priority", self.priority),
            ("age", self.age),
            ("affinity", self.affinity),
            ("load", self.load),
            ("cost", self.cost),
            ("success", self.success),
        ]
    }

    /// Checks every weight, naming the first bad one.
    pub fn validate(&self) -> Result<(), ScoringError> {
        self.fields()
            .into_iter()
            .try_for_each(|(field, value)| check_weight(field, value))
    }
}

impl WeightsOverride {
    /// Checks every weight that is set; use it before storing a product's override, so a
    /// bad value is refused when written rather than when a request happens to use it.
    pub fn validate(&self) -> Result<(), ScoringError> {
        [
            ("priority", self.priority),
            ("age", self.age),
            ("affinity", self.affinity),
            ("load", self.load),
            ("cost", self.cost),
            ("success", self.success),
        ]
        .into_iter()
        .filter_map(|(field, value)| value.map(|v| (field, v)))
        .try_for_each(|(field, value)| check_weight(field, value))
    }
}

fn check_weight(field: &'static str, value: f64) -> Result<(), ScoringError> {
    if value.is_finite() && (0.0..=WEIGHT_MAX).contains(&value) {
        Ok(())
    } else {
        Err(ScoringError::WeightOutOfRange { field, value })
    }
}

/// The weights for one placement: the request's overrides win over the product's, which win
/// over the defaults. The result is checked as a whole.
pub fn resolve_weights(
    defaults: &Weights,
    product: Option<&WeightsOverride>,
    request: Option<&WeightsOverride>,
) -> Result<Weights, ScoringError> {
    let none = WeightsOverride::default();
    let (product, request) = (product.unwrap_or(&none), request.unwrap_or(&none));
    let pick = |request: Option<f64>, product: Option<f64>, default: f64| {
        request.or(product).unwrap_or(default)
    };
    let weights = Weights {
        priority: pick(request.priority, product.priority, defaults.priority),
        age: pick(request.age, product.age, defaults.age),
        affinity: pick(request.affinity, product.affinity, defaults.affinity),
        load: pick(request.load, product.load, defaults.load),
        cost: pick(request.cost, product.cost, defaults.cost),
        success: pick(request.success, product.success, defaults.success),
    };
    weights.validate()?;
    Ok(weights)
}

/// What the scheduler knows of a queued job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    pub id: u128,
    pub priority: u32,
    pub queued_at_ms: u64,
    pub capabilities: Vec<String>,
    /// The job's labels (budgets may hold only a label's jobs).
    pub labels: Vec<String>,
    pub engine_class: Option<String>,
    pub product: String,
    /// The repository the job works in; a factory that has it checked out is "warm".
    pub repo_hint: Option<String>,
    pub preemptible: bool,
}

impl JobView {
    /// What placement knows of `job`, whatever its state.
    pub fn of(job: &crate::job::Job) -> Self {
        JobView {
            id: job.id.0.as_u128(),
            priority: job.spec.priority,
            queued_at_ms: job.created_at,
            capabilities: job.spec.capabilities.clone(),
            labels: job.spec.labels.clone(),
            engine_class: job.spec.engine_class.clone(),
            product: job.spec.product.clone(),
            repo_hint: job.spec.affinity_key().map(str::to_owned),
            preemptible: job.spec.preemptible,
        }
    }
}

/// What the scheduler knows of a factory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactoryView {
    pub id: u128,
    /// Sorted.
    pub capabilities: Vec<String>,
    pub engine_classes: Vec<String>,
    pub slots: u32,
    pub slots_busy: u32,
    pub cost_per_hour_micros: u64,
    /// What the factory holds warm (repositories, cache keys).
    pub warm_repos: Vec<String>,
    /// Its recent outcomes per product: (product, successes, attempts).
    pub success_by_product: Vec<(String, u32, u32)>,
}

impl FactoryView {
    /// What placement knows of `f` from its record; its recent outcomes are the scheduler's
    /// to add (`success_by_product`).
    pub fn of(f: &crate::fleet::Factory) -> Self {
        FactoryView {
            id: f.id.0.as_u128(),
            capabilities: f.capabilities.clone(),
            engine_classes: f.engine_classes.clone(),
            slots: f.slots,
            slots_busy: f.slots_busy,
            cost_per_hour_micros: f.cost_per_hour_micros,
            warm_repos: f.warm.clone(),
            success_by_product: Vec::new(),
        }
    }
}

/// One factor of a score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Factor {
    pub name: String,
    /// The factor's value, in 0..=1.
    pub raw: f64,
    pub weight: f64,
    /// `raw * weight`.
    pub contribution: f64,
}

/// A score and how it was made, shown by `GET /v1/jobs/{id}/explain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScoreBreakdown {
    /// The sum of the contributions.
    pub total: f64,
    pub factors: Vec<Factor>,
}

/// Whether `factory` may run `job` now: a free slot, every required capability, and the
/// job's engine class if it names one.
pub fn eligible(job: &JobView, factory: &FactoryView) -> bool {
    eligible_with_freed_slots(job, factory, 0)
}

/// Eligibility as if `freed` busy slots were released (for preemption).
fn eligible_with_freed_slots(job: &JobView, factory: &FactoryView, freed: u32) -> bool {
    // Linear scans rather than binary search: the lists are a few dozen entries at most, and
    // a list that is not sorted (a bug elsewhere) must not make a factory look ineligible.
    let free_slot = factory.slots_busy.saturating_sub(freed) < factory.slots;
    free_slot && fits(&job.capabilities, job.engine_class.as_ref(), factory)
}

/// Whether `factory` offers every required capability and the engine class, slots aside.
/// Callers holding a job's parts (an index entry) filter with it before building a [`JobView`].
pub fn fits(capabilities: &[String], engine_class: Option<&String>, factory: &FactoryView) -> bool {
    capabilities
        .iter()
        .all(|c| factory.capabilities.contains(c))
        && engine_class.is_none_or(|engine| factory.engine_classes.contains(engine))
}

/// Scores running `job` on `factory` at `now_ms`. It does not check eligibility; callers
/// filter with [`eligible`] first.
pub fn score_candidate(
    job: &JobView,
    factory: &FactoryView,
    weights: &Weights,
    now_ms: u64,
) -> ScoreBreakdown {
    // A clock behind `queued_at_ms` (another node's clock, say) means age 0, not a panic.
    let age_minutes = now_ms.saturating_sub(job.queued_at_ms) as f64 / MS_PER_MINUTE;
    let warm = job
        .repo_hint
        .as_ref()
        .is_some_and(|repo| factory.warm_repos.contains(repo));
    let load = if factory.slots == 0 {
        0.0
    } else {
        1.0 - f64::from(factory.slots_busy.min(factory.slots)) / f64::from(factory.slots)
    };
    let cost_per_hour = factory
        .cost_per_hour_micros
        .min(COST_CEILING_MICROS_PER_HOUR);
    let cost = 1.0 - cost_per_hour as f64 / COST_CEILING_MICROS_PER_HOUR as f64;

    let raws = [
        (
            "priority",
            f64::from(job.priority.min(PRIORITY_SCALE as u32)) / PRIORITY_SCALE,
            weights.priority,
        ),
        (
            "age",
            1.0 - (-age_minutes / AGE_SCALE_MINUTES).exp(),
            weights.age,
        ),
        ("affinity", if warm { 1.0 } else { 0.0 }, weights.affinity),
        ("load", load, weights.load),
        ("cost", cost, weights.cost),
        ("success", success_rate(job, factory), weights.success),
    ];
    let factors: Vec<Factor> = raws
        .into_iter()
        .map(|(name, raw, weight)| {
            debug_assert!(
                (0.0..=1.0).contains(&raw),
                "factor {name} raw {raw} outside 0..=1"
            );
            let contribution = raw * weight;
            debug_assert!(
                contribution.is_finite(),
                "factor {name} contribution {contribution}"
            );
            Factor {
                name: name.to_owned(),
                raw,
                weight,
                contribution,
            }
        })
        .collect();
    let total = factors.iter().map(|f| f.contribution).sum();
    ScoreBreakdown { total, factors }
}

/// Laplace-smoothed success rate of the factory on the job's product, (successes + 1) /
/// (attempts + 2): a factory with no record starts at 0.5 instead of 0 or 1.
fn success_rate(job: &JobView, factory: &FactoryView) -> f64 {
    let (mut successes, mut attempts) = (0u64, 0u64);
    for (product, s, a) in &factory.success_by_product {
        if *product == job.product {
            // Successes above attempts are bad data; clamp so the rate stays within 0..=1.
            successes += u64::from((*s).min(*a));
            attempts += u64::from(*a);
        }
    }
    (successes as f64 + 1.0) / (attempts as f64 + 2.0)
}

/// The best eligible job for `factory`, with its score; `None` if none is eligible.
/// Ties on the total go to the higher priority, then the older job, then the lower id.
pub fn select_job(
    jobs: &[JobView],
    factory: &FactoryView,
    weights: &Weights,
    now_ms: u64,
) -> Option<(usize, ScoreBreakdown)> {
    let mut best: Option<(usize, ScoreBreakdown)> = None;
    for (index, job) in jobs.iter().enumerate() {
        if !eligible(job, factory) {
            continue;
        }
        let score = score_candidate(job, factory, weights, now_ms);
        let better = match &best {
            None => true,
            Some((best_index, best_score)) => {
                let best_job = &jobs[*best_index];
                // `total_cmp` is a total order even on NaN, so the choice stays
                // deterministic whatever the weights.
                score
                    .total
                    .total_cmp(&best_score.total)
                    .then(job.priority.cmp(&best_job.priority))
                    .then(best_job.queued_at_ms.cmp(&job.queued_at_ms))
                    .then(best_job.id.cmp(&job.id))
                    .is_gt()
            }
        };
        if better {
            best = Some((index, score));
        }
    }
    best
}

/// A job that is running, as preemption sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningView {
    pub job: JobView,
    pub factory_id: u128,
    pub started_at_ms: u64,
    /// Work that preempting it would lose.
    pub progress_ms: u64,
}

/// The running job to preempt so that `job` can run, if any: preemptible, at least
/// `min_priority_gap` priority points below `job`, and on a factory where `job` would be
/// eligible once the victim's slot is freed. Among those, the lowest priority, then the least
/// work lost, then the lowest id. A gap of 0 lets equal priorities preempt each other, which
/// invites thrashing; callers should use a positive gap.
pub fn select_preemption_victim(
    job: &JobView,
    running: &[RunningView],
    factories: &[FactoryView],
    min_priority_gap: u32,
) -> Option<usize> {
    running
        .iter()
        .enumerate()
        .filter(|(_, victim)| may_preempt(job, victim, factories, min_priority_gap))
        .min_by_key(|(_, victim)| (victim.job.priority, victim.progress_ms, victim.job.id))
        .map(|(index, _)| index)
}

fn may_preempt(
    job: &JobView,
    victim: &RunningView,
    factories: &[FactoryView],
    min_priority_gap: u32,
) -> bool {
    // u64 so that priority + gap cannot overflow.
    let gap_ok =
        u64::from(victim.job.priority) + u64::from(min_priority_gap) <= u64::from(job.priority);
    gap_ok
        && victim.job.preemptible
        && victim.job.id != job.id
        && factories
            .iter()
            .find(|f| f.id == victim.factory_id)
            .is_some_and(|factory| eligible_with_freed_slots(job, factory, 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MINUTE_MS: u64 = 60_000;

    fn job(id: u128, priority: u32) -> JobView {
        JobView {
            id,
            priority,
            queued_at_ms: 0,
            capabilities: vec![],
            labels: Vec::new(),
            engine_class: None,
            product: "p".into(),
            repo_hint: None,
            preemptible: true,
        }
    }

    fn factory(id: u128) -> FactoryView {
        FactoryView {
            id,
            capabilities: vec!["linux".into(), "rust".into()],
            engine_classes: vec!["claude".into()],
            slots: 2,
            slots_busy: 0,
            cost_per_hour_micros: 0,
            warm_repos: vec![],
            success_by_product: vec![],
        }
    }

    fn raw(breakdown: &ScoreBreakdown, name: &str) -> f64 {
        breakdown
            .factors
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.raw)
            .expect("factor present")
    }

    #[test]
    fn default_weights_are_the_documented_ones() {
        let w = Weights::default();
        assert_eq!(
            (w.priority, w.age, w.affinity, w.load, w.cost, w.success),
            (1.0, 0.5, 0.8, 0.6, 0.3, 0.4)
        );
    }

    #[test]
    fn request_overrides_product_which_overrides_defaults() {
        let product = WeightsOverride {
            age: Some(2.0),
            cost: Some(3.0),
            ..Default::default()
        };
        let request = WeightsOverride {
            cost: Some(0.0),
            ..Default::default()
        };
        let w = resolve_weights(&Weights::default(), Some(&product), Some(&request))
            .expect("valid weights");
        assert_eq!(w.age, 2.0);
        assert_eq!(w.cost, 0.0);
        assert_eq!(w.priority, 1.0);
        assert_eq!(
            resolve_weights(&Weights::default(), None, None),
            Ok(Weights::default())
        );
    }

    #[test]
    fn refuses_a_weight_that_is_nan_negative_or_too_large_naming_it() {
        for bad in [f64::NAN, f64::INFINITY, -0.1, 10.01] {
            let request = WeightsOverride {
                load: Some(bad),
                ..Default::default()
            };
            let error =
                resolve_weights(&Weights::default(), None, Some(&request)).expect_err("bad weight");
            assert!(matches!(
                error,
                ScoringError::WeightOutOfRange { field: "load", .. }
            ));
            assert!(
                error.to_string().starts_with("weight `load` must be"),
                "{error}"
            );
            // Compared as text: NaN is not equal to itself.
            let stored = request
                .validate()
                .expect_err("an override is checked on its own too");
            assert_eq!(stored.to_string(), error.to_string());
        }
        let edge = WeightsOverride {
            success: Some(10.0),
            age: Some(0.0),
            ..Default::default()
        };
        assert!(resolve_weights(&Weights::default(), Some(&edge), None).is_ok());
    }

    #[test]
    fn weights_override_refuses_unknown_fields() {
        let parsed: Result<WeightsOverride, _> = serde_json::from_str(r#"{"priorty": 1}"#);
        assert!(parsed.is_err());
        let parsed: WeightsOverride = serde_json::from_str(r#"{"age": 1.5}"#).expect("valid");
        assert_eq!(parsed.age, Some(1.5));
    }

    #[test]
    fn eligibility_needs_a_free_slot_every_capability_and_the_engine() {
        let mut j = job(1, 50);
        let mut f = factory(1);
        assert!(eligible(&j, &f));
        j.capabilities = vec!["rust".into()];
        j.engine_class = Some("claude".into());
        assert!(eligible(&j, &f));
        f.slots_busy = 2;
        assert!(!eligible(&j, &f), "no free slot");
        f.slots_busy = 1;
        j.capabilities.push("gpu".into());
        assert!(!eligible(&j, &f), "missing capability");
        j.capabilities.pop();
        j.engine_class = Some("codex".into());
        assert!(!eligible(&j, &f), "unsupported engine class");
        f.slots = 0;
        f.slots_busy = 0;
        j.engine_class = None;
        assert!(!eligible(&j, &f), "a factory without slots runs nothing");
    }

    #[test]
    fn computes_each_factor_as_documented() {
        let mut j = job(1, 800);
        j.queued_at_ms = 0;
        j.engine_class = Some("claude".into());
        j.repo_hint = Some("org/repo".into());
        let mut f = factory(1);
        f.slots = 4;
        f.slots_busy = 1;
        f.cost_per_hour_micros = 2_500_000;
        f.warm_repos = vec!["org/repo".into()];
        f.success_by_product = vec![("p".into(), 7, 8), ("other".into(), 0, 50)];
        let s = score_candidate(&j, &f, &Weights::default(), 30 * MINUTE_MS);

        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(raw(&s, "priority"), 0.8));
        assert!(close(raw(&s, "age"), 1.0 - (-1.0f64).exp()));
        assert!(close(raw(&s, "affinity"), 1.0));
        assert!(close(raw(&s, "load"), 0.75));
        assert!(close(raw(&s, "cost"), 0.75));
        assert!(close(raw(&s, "success"), 8.0 / 10.0));
        let names: Vec<&str> = s.factors.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["priority", "age", "affinity", "load", "cost", "success"]
        );
        for factor in &s.factors {
            assert_eq!(factor.contribution, factor.raw * factor.weight);
        }
        assert_eq!(
            s.total,
            s.factors.iter().map(|f| f.contribution).sum::<f64>()
        );
    }

    #[test]
    fn clamps_factors_at_their_edges() {
        let mut j = job(1, 5_000);
        j.queued_at_ms = 10 * MINUTE_MS;
        let mut f = factory(1);
        f.slots_busy = 9;
        f.cost_per_hour_micros = u64::MAX;
        f.success_by_product = vec![("p".into(), 9, 3)];
        let s = score_candidate(&j, &f, &Weights::default(), 0);
        assert_eq!(raw(&s, "priority"), 1.0);
        assert_eq!(raw(&s, "age"), 0.0, "a job queued in the future has age 0");
        assert_eq!(raw(&s, "load"), 0.0);
        assert_eq!(raw(&s, "cost"), 0.0);
        assert_eq!(
            raw(&s, "success"),
            4.0 / 5.0,
            "successes are clamped to attempts"
        );
        let ancient = score_candidate(&j, &f, &Weights::default(), u64::MAX);
        assert!(raw(&ancient, "age") <= 1.0);
    }

    #[test]
    fn success_is_the_factorys_record_on_the_jobs_product() {
        let mut f = factory(1);
        f.success_by_product = vec![("p".into(), 3, 3), ("other".into(), 0, 5)];
        let mut j = job(1, 0);
        assert_eq!(
            raw(&score_candidate(&j, &f, &Weights::default(), 0), "success"),
            0.8
        );
        j.product = "other".into();
        assert_eq!(
            raw(&score_candidate(&j, &f, &Weights::default(), 0), "success"),
            1.0 / 7.0
        );
        j.product = "new".into();
        assert_eq!(
            raw(&score_candidate(&j, &f, &Weights::default(), 0), "success"),
            0.5,
            "no record: even odds"
        );
    }

    #[test]
    fn a_factory_holding_the_jobs_affinity_warm_scores_above_an_equal_cold_one() {
        let mut j = job(1, 50);
        j.repo_hint = Some("repo:acme/api".into());
        let cold = factory(1);
        let warm = FactoryView {
            id: 2,
            warm_repos: vec!["repo:acme/api".into()],
            ..factory(1)
        };
        let w = Weights::default();
        let gain =
            score_candidate(&j, &warm, &w, 0).total - score_candidate(&j, &cold, &w, 0).total;
        assert!(
            (gain - w.affinity).abs() < 1e-12,
            "the affinity weight, no more: {gain}"
        );
    }

    #[test]
    fn score_breakdown_round_trips_through_json() {
        let s = score_candidate(&job(1, 10), &factory(1), &Weights::default(), 5 * MINUTE_MS);
        let json = serde_json::to_string(&s).expect("serializes");
        assert_eq!(
            serde_json::from_str::<ScoreBreakdown>(&json).expect("parses"),
            s
        );
    }

    #[test]
    fn selects_the_highest_score_among_eligible_jobs() {
        let mut high_but_ineligible = job(1, 1_000);
        high_but_ineligible.capabilities = vec!["gpu".into()];
        let jobs = [job(2, 10), high_but_ineligible, job(3, 700)];
        let (index, _) = select_job(&jobs, &factory(1), &Weights::default(), 0).expect("a job");
        assert_eq!(index, 2);
        assert_eq!(
            select_job(&jobs[..2], &factory(9), &Weights::default(), 0).map(|c| c.0),
            Some(0)
        );
        assert_eq!(
            select_job(&jobs[1..2], &factory(1), &Weights::default(), 0),
            None
        );
    }

    #[test]
    fn breaks_ties_by_priority_then_age_then_id() {
        // With only the affinity weight set, every score ties at 0.
        let weights = Weights {
            priority: 0.0,
            age: 0.0,
            affinity: 1.0,
            load: 0.0,
            cost: 0.0,
            success: 0.0,
        };
        let f = factory(1);
        let pick =
            |jobs: &[JobView]| select_job(jobs, &f, &weights, 1_000).map(|(i, _)| jobs[i].id);

        assert_eq!(pick(&[job(1, 10), job(2, 20)]), Some(2), "higher priority");
        let (mut old, mut new) = (job(5, 10), job(4, 10));
        old.queued_at_ms = 100;
        new.queued_at_ms = 200;
        assert_eq!(pick(&[new.clone(), old.clone()]), Some(5), "older");
        assert_eq!(pick(&[old, new]), Some(5), "older, whatever the order");
        assert_eq!(pick(&[job(9, 10), job(7, 10)]), Some(7), "lower id");
    }

    fn running(id: u128, priority: u32, factory_id: u128, progress_ms: u64) -> RunningView {
        RunningView {
            job: job(id, priority),
            factory_id,
            started_at_ms: 0,
            progress_ms,
        }
    }

    #[test]
    fn preempts_the_lowest_priority_then_least_progress_then_lowest_id() {
        let mut full = factory(1);
        full.slots_busy = 2;
        let factories = [full];
        let urgent = job(100, 900);
        let runs = [
            running(1, 300, 1, 10),
            running(2, 100, 1, 50),
            running(3, 100, 1, 20),
        ];
        assert_eq!(
            select_preemption_victim(&urgent, &runs, &factories, 100),
            Some(2)
        );
        let runs = [running(4, 100, 1, 20), running(3, 100, 1, 20)];
        assert_eq!(
            select_preemption_victim(&urgent, &runs, &factories, 100),
            Some(1)
        );
    }

    #[test]
    fn never_preempts_without_the_gap_or_a_preemptible_victim_or_a_fitting_factory() {
        let mut full = factory(1);
        full.slots_busy = 2;
        let factories = [full];
        let mut urgent = job(100, 500);
        let close = running(1, 450, 1, 0);
        assert_eq!(
            select_preemption_victim(&urgent, &[close], &factories, 100),
            None
        );
        let mut pinned = running(2, 0, 1, 0);
        pinned.job.preemptible = false;
        assert_eq!(
            select_preemption_victim(&urgent, &[pinned], &factories, 100),
            None
        );
        let elsewhere = running(3, 0, 7, 0);
        assert_eq!(
            select_preemption_victim(&urgent, &[elsewhere], &factories, 100),
            None
        );
        urgent.capabilities = vec!["gpu".into()];
        let cheap = running(4, 0, 1, 0);
        assert_eq!(
            select_preemption_victim(&urgent, std::slice::from_ref(&cheap), &factories, 100),
            None
        );
        urgent.capabilities.clear();
        assert_eq!(
            select_preemption_victim(&urgent, &[cheap], &factories, u32::MAX),
            None
        );
    }

    fn arb_job() -> impl Strategy<Value = JobView> {
        (
            0u128..50,
            0u32..=1_000,
            0u64..100_000_000,
            prop::collection::vec(prop::sample::select(vec!["rust", "linux", "gpu"]), 0..3),
            prop::option::of(prop::sample::select(vec!["claude", "codex"])),
            prop::option::of(prop::sample::select(vec!["a", "b"])),
            any::<bool>(),
        )
            .prop_map(
                |(id, priority, queued_at_ms, caps, engine, repo, preemptible)| JobView {
                    id,
                    priority,
                    queued_at_ms,
                    capabilities: caps.into_iter().map(str::to_owned).collect(),
                    labels: Vec::new(),
                    engine_class: engine.map(str::to_owned),
                    product: "p".into(),
                    repo_hint: repo.map(str::to_owned),
                    preemptible,
                },
            )
    }

    fn arb_factory(id: u128) -> impl Strategy<Value = FactoryView> {
        (
            prop::sample::subsequence(vec!["gpu", "linux", "rust"], 0..=3),
            prop::sample::subsequence(vec!["claude", "codex"], 0..=2),
            0u32..4,
            0u32..5,
            0u64..20_000_000,
            prop::sample::subsequence(vec!["a", "b"], 0..=2),
            (0u32..20, 0u32..20),
        )
            .prop_map(move |(caps, engines, slots, busy, cost, warm, (s, a))| {
                FactoryView {
                    id,
                    capabilities: caps.into_iter().map(str::to_owned).collect(),
                    engine_classes: engines.iter().map(|e| e.to_string()).collect(),
                    slots,
                    slots_busy: busy,
                    cost_per_hour_micros: cost,
                    warm_repos: warm.into_iter().map(str::to_owned).collect(),
                    success_by_product: engines
                        .into_iter()
                        .map(|e| (e.to_owned(), s.min(a), a))
                        .collect(),
                }
            })
    }

    fn arb_weights() -> impl Strategy<Value = Weights> {
        let w = || 0.0f64..=WEIGHT_MAX;
        (w(), w(), w(), w(), w(), w()).prop_map(|(priority, age, affinity, load, cost, success)| {
            Weights {
                priority,
                age,
                affinity,
                load,
                cost,
                success,
            }
        })
    }

    proptest! {
        #[test]
        fn select_job_is_deterministic_eligible_and_maximal(
            jobs in prop::collection::vec(arb_job(), 0..12),
            factory in arb_factory(1),
            weights in arb_weights(),
            now_ms in 0u64..200_000_000,
        ) {
            let first = select_job(&jobs, &factory, &weights, now_ms);
            prop_assert_eq!(&first, &select_job(&jobs, &factory, &weights, now_ms));
            match first {
                None => prop_assert!(jobs.iter().all(|j| !eligible(j, &factory))),
                Some((index, score)) => {
                    prop_assert!(eligible(&jobs[index], &factory));
                    for job in jobs.iter().filter(|j| eligible(j, &factory)) {
                        let other = score_candidate(job, &factory, &weights, now_ms);
                        prop_assert!(other.total <= score.total);
                    }
                    // The same jobs in reverse order lead to the same job.
                    let mut reversed = jobs.clone();
                    reversed.reverse();
                    let (rev_index, _) = select_job(&reversed, &factory, &weights, now_ms)
                        .expect("an eligible job exists");
                    let (chosen, rev_chosen) = (&jobs[index], &reversed[rev_index]);
                    prop_assert_eq!(
                        (chosen.id, chosen.priority, chosen.queued_at_ms),
                        (rev_chosen.id, rev_chosen.priority, rev_chosen.queued_at_ms)
                    );
                }
            }
        }

        #[test]
        fn every_raw_factor_is_within_zero_and_one(
            job in arb_job(),
            factory in arb_factory(1),
            weights in arb_weights(),
            now_ms in any::<u64>(),
        ) {
            let score = score_candidate(&job, &factory, &weights, now_ms);
            prop_assert_eq!(score.factors.len(), 6);
            for factor in &score.factors {
                prop_assert!((0.0..=1.0).contains(&factor.raw));
                prop_assert!(factor.contribution.is_finite());
            }
        }

        #[test]
        fn a_preemption_victim_always_qualifies_and_is_found_when_one_does(
            urgent in arb_job(),
            victims in prop::collection::vec((arb_job(), 0u128..3, 0u64..1_000), 0..10),
            factories in (arb_factory(0), arb_factory(1), arb_factory(2)),
            gap in 0u32..500,
        ) {
            let factories = [factories.0, factories.1, factories.2];
            let running: Vec<RunningView> = victims
                .into_iter()
                .map(|(job, factory_id, progress_ms)| RunningView {
                    job, factory_id, started_at_ms: 0, progress_ms,
                })
                .collect();
            let qualifies = |r: &RunningView| {
                r.job.preemptible
                    && r.job.id != urgent.id
                    && u64::from(r.job.priority) + u64::from(gap) <= u64::from(urgent.priority)
                    && factories.iter().any(|f| {
                        f.id == r.factory_id
                            && eligible(&urgent, &FactoryView {
                                slots_busy: f.slots_busy.saturating_sub(1),
                                ..f.clone()
                            })
                    })
            };
            match select_preemption_victim(&urgent, &running, &factories, gap) {
                None => prop_assert!(running.iter().all(|r| !qualifies(r))),
                Some(index) => {
                    let victim = &running[index];
                    prop_assert!(qualifies(victim));
                    prop_assert!(victim.job.preemptible);
                    prop_assert!(victim.job.priority + gap <= urgent.priority);
                    let key = |r: &RunningView| (r.job.priority, r.progress_ms, r.job.id);
                    for other in running.iter().filter(|r| qualifies(r)) {
                        prop_assert!(key(victim) <= key(other));
                    }
                }
            }
        }
    }
}

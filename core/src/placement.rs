//! Placement policy: which of the queued jobs a factory takes next. One pure function over
//! the candidates the scheduler found for the factory (in any order), the factory's view,
//! each product's weights and the products' fair-share standing:
//!
//! 1. only jobs the factory can run now are considered ([`scoring::eligible`]);
//! 2. within a product, priority is strict: only its highest-priority eligible jobs compete,
//!    and among them the product's weights decide (age, warm repository, success rate);
//! 3. across products, the product furthest below its fair share goes first
//!    ([`fair_share`]); where products stand alike (or fair share is off) the best totals
//!    compete, each scored with its own product's weights;
//! 4. ties, anywhere, go to the higher priority, then the older job, then the lower id, so the
//!    choice never depends on the order the candidates came in.

use std::cmp::Ordering;

use crate::fair_share::Standing;
use crate::scoring::{self, FactoryView, JobView, ScoreBreakdown, Weights};

/// The job chosen, by its index in the candidates, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub index: usize,
    pub breakdown: ScoreBreakdown,
}

/// The job `factory` should take from `candidates`, or `None` when it can run none of them.
pub fn choose<'w>(
    candidates: &[JobView],
    factory: &FactoryView,
    weights_of: impl Fn(&str) -> &'w Weights,
    standing: &Standing,
    now_ms: u64,
) -> Option<Choice> {
    let eligible: Vec<usize> = (0..candidates.len())
        .filter(|&i| scoring::eligible(&candidates[i], factory))
        .collect();
    let mut best: Option<Choice> = None;
    for &i in &eligible {
        let job = &candidates[i];
        // Rule 2: a job below its product's top eligible priority never competes.
        let outranked = eligible.iter().any(|&j| {
            candidates[j].product == job.product && candidates[j].priority > job.priority
        });
        if outranked {
            continue;
        }
        let breakdown = scoring::score_candidate(job, factory, weights_of(&job.product), now_ms);
        let better = best.as_ref().is_none_or(|b| {
            let rival = &candidates[b.index];
            // Less: this job's product stands further below its share.
            standing
                .compare(&job.product, &rival.product)
                .reverse()
                .then_with(|| compare(job, &breakdown, rival, &b.breakdown))
                == Ordering::Greater
        });
        if better {
            best = Some(Choice {
                index: i,
                breakdown,
            });
        }
    }
    debug_assert_eq!(best.is_some(), !eligible.is_empty());
    best
}

/// Which of two scored jobs is better: the higher total (`total_cmp` is a total order even on
/// NaN), then the higher priority, then the older, then the lower id.
fn compare(a: &JobView, sa: &ScoreBreakdown, b: &JobView, sb: &ScoreBreakdown) -> Ordering {
    sa.total
        .total_cmp(&sb.total)
        .then(a.priority.cmp(&b.priority))
        .then(b.queued_at_ms.cmp(&a.queued_at_ms))
        .then(b.id.cmp(&a.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Far from 0, so every age in the tests is a valid time.
    const NOW: u64 = 1_000_000_000_000;

    fn job(id: u128, product: &str, priority: u32, age_ms: u64, caps: &[&str]) -> JobView {
        JobView {
            id,
            priority,
            queued_at_ms: NOW - age_ms,
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
            labels: Vec::new(),
            engine_class: None,
            product: product.into(),
            repo_hint: None,
            preemptible: true,
        }
    }

    fn factory(caps: &[&str]) -> FactoryView {
        FactoryView {
            id: 1,
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
            engine_classes: Vec::new(),
            slots: 4,
            slots_busy: 0,
            cost_per_hour_micros: 0,
            warm_repos: Vec::new(),
            success_by_product: Vec::new(),
        }
    }

    fn off() -> Standing {
        Standing::default()
    }

    fn defaults(_: &str) -> &'static Weights {
        static W: std::sync::OnceLock<Weights> = std::sync::OnceLock::new();
        W.get_or_init(Weights::default)
    }

    #[test]
    fn an_old_low_priority_job_never_passes_a_higher_priority_one_of_its_product() {
        let jobs = [
            job(1, "p", 10, 10 * 3_600_000, &[]),
            job(2, "p", 60, 0, &[]),
        ];
        let c = choose(&jobs, &factory(&[]), defaults, &off(), NOW).unwrap();
        assert_eq!(jobs[c.index].id, 2);
    }

    #[test]
    fn each_product_is_scored_with_its_own_weights() {
        let age_only = Weights {
            priority: 0.0,
            age: 5.0,
            ..Weights::default()
        };
        let weights = |p: &str| if p == "old" { &age_only } else { defaults(p) };
        let jobs = [job(1, "new", 900, 0, &[]), job(2, "old", 10, 600_000, &[])];
        let c = choose(&jobs, &factory(&[]), weights, &off(), NOW).unwrap();
        assert_eq!(
            jobs[c.index].id, 2,
            "the age-weighted product's old job wins"
        );
        let c = choose(&jobs, &factory(&[]), defaults, &off(), NOW).unwrap();
        assert_eq!(jobs[c.index].id, 1, "with the defaults priority wins");
    }

    #[test]
    fn nothing_is_chosen_when_the_factory_can_run_nothing() {
        let jobs = [job(1, "p", 50, 0, &["gpu"])];
        assert_eq!(
            choose(&jobs, &factory(&["linux"]), defaults, &off(), NOW),
            None
        );
        let mut full = factory(&["gpu"]);
        full.slots_busy = full.slots;
        assert_eq!(choose(&jobs, &full, defaults, &off(), NOW), None);
    }

    #[test]
    fn with_fair_share_the_product_below_its_share_wins_over_a_better_score() {
        let jobs = [job(1, "busy", 900, 0, &[]), job(2, "idle", 10, 0, &[])];
        let mut standing = Standing {
            enabled: true,
            ..Standing::default()
        };
        standing.add("busy");
        let c = choose(&jobs, &factory(&[]), defaults, &standing, NOW).unwrap();
        assert_eq!(jobs[c.index].id, 2, "busy holds a slot, idle none");
        standing.shares.insert("busy".into(), 3);
        let c = choose(&jobs, &factory(&[]), defaults, &standing, NOW).unwrap();
        assert_eq!(
            jobs[c.index].id, 1,
            "2/3 of busy's share before 1/1 of idle's"
        );
        let c = choose(&jobs, &factory(&[]), defaults, &off(), NOW).unwrap();
        assert_eq!(jobs[c.index].id, 1, "off: the better score wins");
    }

    fn arb_standing() -> impl Strategy<Value = Standing> {
        (any::<bool>(), prop::collection::vec((1u32..5, 0u32..6), 3)).prop_map(|(enabled, s)| {
            let names = ["a", "b", "c"];
            Standing {
                enabled,
                shares: names
                    .iter()
                    .zip(&s)
                    .map(|(n, (sh, _))| (n.to_string(), *sh))
                    .collect(),
                running: names
                    .iter()
                    .zip(&s)
                    .map(|(n, (_, r))| (n.to_string(), *r))
                    .collect(),
            }
        })
    }

    fn arb_jobs() -> impl Strategy<Value = Vec<JobView>> {
        prop::collection::vec((0usize..3, 0u32..4, 0u64..7_200_000, 0usize..3), 0..24).prop_map(
            |specs| {
                const PRODUCTS: [&str; 3] = ["a", "b", "c"];
                const CAPS: [&[&str]; 3] = [&[], &["linux"], &["gpu"]];
                specs
                    .into_iter()
                    .enumerate()
                    .map(|(n, (p, prio, age, caps))| {
                        job(n as u128 + 1, PRODUCTS[p], prio * 25, age, CAPS[caps])
                    })
                    .collect()
            },
        )
    }

    proptest! {
        /// With fair share on, the chosen job's product stands at least as far below its
        /// share as any other product with an eligible job.
        #[test]
        fn fair_share_picks_a_product_furthest_below_its_share(
            jobs in arb_jobs(),
            mut standing in arb_standing(),
        ) {
            standing.enabled = true;
            let f = factory(&["linux"]);
            if let Some(c) = choose(&jobs, &f, defaults, &standing, NOW) {
                let chosen = &jobs[c.index].product;
                for other in jobs.iter().filter(|j| scoring::eligible(j, &f)) {
                    prop_assert_ne!(
                        standing.compare(&other.product, chosen),
                        Ordering::Less,
                        "{} stands below {}", other.product, chosen
                    );
                }
            }
        }

        /// The same input gives the same pick, in whatever order the candidates come.
        #[test]
        fn the_choice_does_not_depend_on_candidate_order(jobs in arb_jobs(), seed in any::<u64>()) {
            let f = factory(&["linux"]);
            let pick = |js: &[JobView]| choose(js, &f, defaults, &off(), NOW).map(|c| js[c.index].id);
            let first = pick(&jobs);
            prop_assert_eq!(first, pick(&jobs));
            let mut shuffled = jobs.clone();
            // A deterministic permutation from the seed.
            let n = shuffled.len();
            for i in (1..n).rev() {
                let j = (seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64) % (i as u64 + 1)) as usize;
                shuffled.swap(i, j);
            }
            prop_assert_eq!(first, pick(&shuffled));
        }

        /// A job the factory can take is never passed over for one it cannot: something is
        /// chosen exactly when something is eligible, and it is eligible.
        #[test]
        fn an_eligible_job_is_never_skipped_for_an_ineligible_one(jobs in arb_jobs()) {
            let f = factory(&["linux"]);
            let any_eligible = jobs.iter().any(|j| scoring::eligible(j, &f));
            match choose(&jobs, &f, defaults, &off(), NOW) {
                Some(c) => prop_assert!(scoring::eligible(&jobs[c.index], &f)),
                None => prop_assert!(!any_eligible),
            }
        }

        /// Priority order holds within a product: the chosen job has the highest priority of
        /// its product's eligible jobs, whatever the weights and the fair-share standing.
        #[test]
        fn priority_order_holds_within_a_product(
            jobs in arb_jobs(),
            age in 0.0f64..10.0,
            priority in 0.0f64..10.0,
            standing in arb_standing(),
        ) {
            let w = Weights { age, priority, ..Weights::default() };
            let f = factory(&["linux"]);
            if let Some(c) = choose(&jobs, &f, |_| &w, &standing, NOW) {
                let chosen = &jobs[c.index];
                let top = jobs
                    .iter()
                    .filter(|j| j.product == chosen.product && scoring::eligible(j, &f))
                    .map(|j| j.priority)
                    .max();
                prop_assert_eq!(Some(chosen.priority), top);
            }
        }
    }
}

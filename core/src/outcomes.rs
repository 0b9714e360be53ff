//! Each factory's recent outcomes per product, for the success factor of the score: the last
//! [`OUTCOMES_KEPT`] leases that ended in a success or a failure (a release or a preemption
//! says nothing of the factory). Old outcomes fall out, so a factory that was fixed recovers.

use std::collections::{HashMap, VecDeque};

/// Outcomes kept per factory and product.
pub const OUTCOMES_KEPT: usize = 20;

/// Recent outcomes by factory, then product: true for a success.
#[derive(Debug, Clone, Default)]
pub struct Outcomes {
    by_factory: HashMap<u128, HashMap<String, VecDeque<bool>>>,
}

impl Outcomes {
    pub fn record(&mut self, factory: u128, product: &str, ok: bool) {
        let recent = self
            .by_factory
            .entry(factory)
            .or_default()
            .entry(product.to_owned())
            .or_default();
        recent.push_back(ok);
        if recent.len() > OUTCOMES_KEPT {
            recent.pop_front();
        }
    }

    /// `factory`'s record as scoring reads it: (product, successes, attempts), by product.
    pub fn of(&self, factory: u128) -> Vec<(String, u32, u32)> {
        let mut out: Vec<(String, u32, u32)> = self
            .by_factory
            .get(&factory)
            .into_iter()
            .flatten()
            .map(|(product, recent)| {
                let ok = recent.iter().filter(|o| **o).count() as u32;
                (product.clone(), ok, recent.len() as u32)
            })
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_latest_outcomes_count_per_factory_and_product() {
        let mut o = Outcomes::default();
        for _ in 0..OUTCOMES_KEPT {
            o.record(1, "a", false);
        }
        o.record(1, "b", true);
        assert_eq!(o.of(1), [("a".into(), 0, 20), ("b".into(), 1, 1)]);
        for _ in 0..5 {
            o.record(1, "a", true);
        }
        assert_eq!(
            o.of(1)[0],
            ("a".into(), 5, 20),
            "the five oldest failures fell out"
        );
        assert_eq!(o.of(2), [], "another factory has no record");
    }
}

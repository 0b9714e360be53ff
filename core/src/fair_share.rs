//! Fair share across products: each product has a share (a positive weight, 1 unless set),
//! and when products compete for the same factories the one that would hold the smallest
//! part of its share after taking the slot goes first: the lowest (running + 1) / share.
//! Counting slots held rather than placements made keeps the split right when one product's
//! jobs run longer than another's; a product with nothing queued competes for nothing, so its
//! share goes to the others; and nothing is owed for past idleness, so a product coming back
//! gets its share from then on, not a burst. Priority still orders jobs within a product
//! (`placement`); equal standings across products fall to the score.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A product's share when none is set.
pub const SHARE_DEFAULT: u32 = 1;
/// Largest share an operator may set: a 1,000 : 1 split is already all-or-nothing.
pub const SHARE_MAX: u32 = 1_000;

/// Why a share is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    #[error("share must be between 1 and {SHARE_MAX}, got {0}")]
    OutOfRange(u64),
}

/// Checks a share before it is stored.
pub fn check_share(share: u64) -> Result<u32, ShareError> {
    match u32::try_from(share) {
        Ok(s) if (1..=SHARE_MAX).contains(&s) => Ok(s),
        _ => Err(ShareError::OutOfRange(share)),
    }
}

/// The shares in force and the slots each product holds now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    /// Off: products compete on score alone.
    pub enabled: bool,
    /// Shares set per product; the rest have [`SHARE_DEFAULT`].
    pub shares: BTreeMap<String, u32>,
    /// Running jobs per product.
    pub running: BTreeMap<String, u32>,
}

impl Standing {
    pub fn share(&self, product: &str) -> u32 {
        self.shares
            .get(product)
            .copied()
            .unwrap_or(SHARE_DEFAULT)
            .max(1)
    }

    pub fn running(&self, product: &str) -> u32 {
        self.running.get(product).copied().unwrap_or(0)
    }

    /// Counts one more running job of `product` (a placement just made).
    pub fn add(&mut self, product: &str) {
        *self.running.entry(product.to_owned()).or_default() += 1;
    }

    /// Which product goes first: `Less` when `a` would hold the smaller part of its share
    /// after one more slot. `Equal` when fair share is off or both stand alike.
    pub fn compare(&self, a: &str, b: &str) -> Ordering {
        if !self.enabled || a == b {
            return Ordering::Equal;
        }
        // (ra + 1) / sa against (rb + 1) / sb, cross-multiplied in u64: exact, no overflow.
        let left = (u64::from(self.running(a)) + 1) * u64::from(self.share(b));
        let right = (u64::from(self.running(b)) + 1) * u64::from(self.share(a));
        left.cmp(&right)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn standing(shares: &[(&str, u32)]) -> Standing {
        Standing {
            enabled: true,
            shares: shares.iter().map(|(p, s)| (p.to_string(), *s)).collect(),
            running: BTreeMap::new(),
        }
    }

    #[test]
    fn the_product_furthest_below_its_share_goes_first() {
        let mut s = standing(&[("a", 3), ("b", 1)]);
        assert_eq!(s.compare("a", "b"), Ordering::Less, "1/3 before 1/1");
        s.add("a");
        s.add("a");
        assert_eq!(
            s.compare("a", "b"),
            Ordering::Equal,
            "3/3 and 1/1 stand alike"
        );
        s.add("b");
        assert_eq!(s.compare("a", "b"), Ordering::Less, "3/3 before 2/1");
        s.enabled = false;
        assert_eq!(s.compare("a", "b"), Ordering::Equal, "off: no order");
    }

    #[test]
    fn a_share_out_of_range_is_refused() {
        assert_eq!(check_share(1), Ok(1));
        assert_eq!(check_share(1_000), Ok(1_000));
        assert_eq!(check_share(0), Err(ShareError::OutOfRange(0)));
        assert_eq!(check_share(1_001), Err(ShareError::OutOfRange(1_001)));
        assert_eq!(
            check_share(u64::MAX).unwrap_err().to_string(),
            format!("share must be between 1 and 1000, got {}", u64::MAX)
        );
    }

    /// Products with endless work filling `slots` slots as they free up, each job lasting a
    /// random number of rounds; returns what each product runs after 200 rounds.
    fn simulate(shares: &[u32], slots: u32, lengths: &[u8]) -> Vec<u32> {
        let products: Vec<String> = (0..shares.len()).map(|i| format!("p{i}")).collect();
        let mut s = Standing {
            enabled: true,
            shares: products
                .iter()
                .cloned()
                .zip(shares.iter().copied())
                .collect(),
            running: BTreeMap::new(),
        };
        // (product, rounds left)
        let mut jobs: Vec<(usize, u8)> = Vec::new();
        let mut next_length = lengths.iter().cycle();
        for _round in 0..200 {
            jobs.retain_mut(|(p, left)| {
                *left = left.saturating_sub(1);
                if *left == 0 {
                    *s.running.get_mut(&products[*p]).expect("counted") -= 1;
                }
                *left > 0
            });
            while (jobs.len() as u32) < slots {
                let p = (0..products.len())
                    .min_by(|&x, &y| s.compare(&products[x], &products[y]).then(x.cmp(&y)))
                    .expect("products");
                s.add(&products[p]);
                jobs.push((p, *next_length.next().expect("lengths")));
            }
        }
        products.iter().map(|p| s.running(p)).collect()
    }

    proptest! {
        #[test]
        fn running_slots_converge_to_the_shares(
            shares in prop::collection::vec(1u32..6, 2..4),
            slots in 4u32..40,
            lengths in prop::collection::vec(1u8..6, 1..8),
        ) {
            let running = simulate(&shares, slots, &lengths);
            let total: u32 = shares.iter().sum();
            prop_assert_eq!(running.iter().sum::<u32>(), slots);
            for (r, s) in running.iter().zip(&shares) {
                let fair = f64::from(slots) * f64::from(*s) / f64::from(total);
                // The stated tolerance: within as many slots of its share of the slots as
                // there are products (whole slots split like seats by the D'Hondt rule),
                // whatever order the jobs end in.
                prop_assert!(
                    (f64::from(*r) - fair).abs() <= shares.len() as f64,
                    "running {:?} with shares {:?} on {} slots", running, shares, slots
                );
            }
        }
    }
}

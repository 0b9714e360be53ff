//! Budget arithmetic: what a run costs and whether a product may spend it.
//!
//! Amounts are integer micro-dollars (USD × 1,000,000) so sums are exact. Guarantees:
//! [`charge`] never lets spend exceed the limit and never charges a paused budget; neither it
//! nor [`cost_of`] can overflow; costs round up, so many short runs cannot add up to less
//! than they used.

use serde::{Deserialize, Serialize};

const MS_PER_HOUR: u128 = 3_600_000;

/// Why a charge was refused; nothing was spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// An operator paused the budget: hold the work until it is resumed.
    #[error("budget is paused")]
    Paused,
    /// The charge does not fit: hold the work until the limit is raised or the period rolls.
    #[error(
        "charge of {amount_micros} micros would exceed the budget: \
         {spent_micros} of {limit_micros} micros spent"
    )]
    WouldExceed {
        limit_micros: u64,
        spent_micros: u64,
        amount_micros: u64,
    },
}

/// One product's budget for one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub limit_micros: u64,
    pub spent_micros: u64,
    /// While paused, nothing may be charged.
    pub paused: bool,
}

impl Budget {
    /// What may still be spent; 0 if spend already reached (or, from older data, passed)
    /// the limit.
    pub fn remaining(&self) -> u64 {
        self.limit_micros.saturating_sub(self.spent_micros)
    }
}

/// The budget after charging `amount_micros`, or why it cannot be charged. Spending exactly
/// up to the limit is allowed.
pub fn charge(budget: &Budget, amount_micros: u64) -> Result<Budget, BudgetError> {
    if budget.paused {
        return Err(BudgetError::Paused);
    }
    let would_exceed = BudgetError::WouldExceed {
        limit_micros: budget.limit_micros,
        spent_micros: budget.spent_micros,
        amount_micros,
    };
    match budget.spent_micros.checked_add(amount_micros) {
        Some(spent_micros) if spent_micros <= budget.limit_micros => Ok(Budget {
            spent_micros,
            ..*budget
        }),
        _ => Err(would_exceed),
    }
}

/// The cost of running `runtime_ms` at `cost_per_hour_micros`, rounded up to the next micro
/// (saturating at `u64::MAX`, which no real budget reaches).
pub fn cost_of(runtime_ms: u64, cost_per_hour_micros: u64) -> u64 {
    // u64 × u64 always fits in u128.
    let product = u128::from(runtime_ms) * u128::from(cost_per_hour_micros);
    u64::try_from(product.div_ceil(MS_PER_HOUR)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn budget(limit_micros: u64, spent_micros: u64) -> Budget {
        Budget {
            limit_micros,
            spent_micros,
            paused: false,
        }
    }

    #[test]
    fn charges_up_to_exactly_the_limit() {
        let b = charge(&budget(100, 40), 60).expect("fits exactly");
        assert_eq!(b, budget(100, 100));
        assert_eq!(b.remaining(), 0);
    }

    #[test]
    fn refuses_a_charge_beyond_the_limit_with_the_numbers() {
        let error = charge(&budget(100, 40), 61).expect_err("too much");
        assert_eq!(
            error,
            BudgetError::WouldExceed {
                limit_micros: 100,
                spent_micros: 40,
                amount_micros: 61
            }
        );
        assert_eq!(
            error.to_string(),
            "charge of 61 micros would exceed the budget: 40 of 100 micros spent"
        );
    }

    #[test]
    fn refuses_any_charge_while_paused() {
        let paused = Budget {
            paused: true,
            ..budget(100, 0)
        };
        assert_eq!(charge(&paused, 0), Err(BudgetError::Paused));
        assert_eq!(charge(&paused, 1), Err(BudgetError::Paused));
    }

    #[test]
    fn refuses_a_charge_that_would_overflow() {
        let b = budget(u64::MAX, u64::MAX - 1);
        assert!(matches!(
            charge(&b, 2),
            Err(BudgetError::WouldExceed { .. })
        ));
        assert_eq!(charge(&b, 1).map(|b| b.spent_micros), Ok(u64::MAX));
    }

    #[test]
    fn remaining_never_underflows() {
        assert_eq!(budget(10, 25).remaining(), 0);
        assert_eq!(budget(10, 4).remaining(), 6);
    }

    #[test]
    fn costs_round_up_to_the_next_micro() {
        assert_eq!(
            cost_of(3_600_000, 2_000_000),
            2_000_000,
            "one hour at 2 USD"
        );
        assert_eq!(cost_of(1, 1), 1, "any use costs at least a micro");
        assert_eq!(cost_of(0, 5_000_000), 0);
        assert_eq!(cost_of(1_800_001, 2), 2);
        assert_eq!(cost_of(u64::MAX, u64::MAX), u64::MAX, "saturates");
    }

    proptest! {
        #[test]
        fn spend_never_exceeds_the_limit_through_any_sequence_of_charges(
            limit_micros in prop_oneof![0u64..1_000, any::<u64>()],
            amounts in prop::collection::vec(prop_oneof![0u64..300, any::<u64>()], 0..40),
            pauses in prop::collection::vec(any::<bool>(), 40),
        ) {
            let mut b = budget(limit_micros, 0);
            let mut charged: u128 = 0;
            for (amount, paused) in amounts.into_iter().zip(pauses) {
                b.paused = paused && amount % 5 == 0;
                match charge(&b, amount) {
                    Ok(next) => {
                        prop_assert!(!b.paused);
                        prop_assert_eq!(next.spent_micros, b.spent_micros + amount);
                        charged += u128::from(amount);
                        b = next;
                    }
                    Err(BudgetError::Paused) => prop_assert!(b.paused),
                    Err(BudgetError::WouldExceed { .. }) => {
                        prop_assert!(u128::from(b.spent_micros) + u128::from(amount) > u128::from(limit_micros));
                    }
                }
                prop_assert!(b.spent_micros <= b.limit_micros);
                prop_assert_eq!(u128::from(b.spent_micros), charged);
            }
        }

        #[test]
        fn cost_is_the_exact_cost_rounded_up(runtime_ms in any::<u64>(), per_hour in any::<u64>()) {
            let exact = u128::from(runtime_ms) * u128::from(per_hour);
            let cost = u128::from(cost_of(runtime_ms, per_hour));
            if cost < u128::from(u64::MAX) {
                prop_assert!(cost * MS_PER_HOUR >= exact);
                prop_assert!(cost * MS_PER_HOUR < exact + MS_PER_HOUR);
            } else {
                prop_assert!(exact.div_ceil(MS_PER_HOUR) >= cost);
            }
        }
    }
}

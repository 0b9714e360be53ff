//! Retry backoff: how long a failed job waits before it is queued again.
//!
//! Exponential with "equal jitter": after the n-th failure the ceiling is
//! `min(base * 2^(n-1), cap)`, and the delay is half the ceiling plus a jittered share of
//! the other half. Guarantees, for every input: the delay lies in `[ceiling/2, ceiling]`,
//! never exceeds `cap_ms`, the ceiling never decreases as failures grow, and nothing
//! overflows. The jitter is passed in, so the function stays pure and tests are exact.

use serde::{Deserialize, Serialize};

/// Backoff parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backoff {
    /// The ceiling after the first failure.
    pub base_ms: u64,
    /// The largest ceiling, whatever the number of failures.
    pub cap_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base_ms: 1_000,
            cap_ms: 300_000,
        }
    }
}

impl Backoff {
    /// `min(base * 2^(failures-1), cap)`; 0 for no failures, since there is nothing to back
    /// off from.
    pub fn ceiling_ms(&self, failures: u32) -> u64 {
        let Some(doublings) = failures.checked_sub(1) else {
            return 0;
        };
        // 2^64 overflows u64: past 63 doublings any non-zero base is beyond every cap.
        let exponential = match 1u64.checked_shl(doublings) {
            Some(factor) if doublings < u64::BITS => self.base_ms.saturating_mul(factor),
            _ if self.base_ms == 0 => 0,
            _ => u64::MAX,
        };
        exponential.min(self.cap_ms)
    }

    /// The delay after `failures` failures. `jitter` should be uniform in `[0, 1)`; values
    /// outside are clamped (NaN counts as 0) rather than trusted.
    pub fn delay_ms(&self, failures: u32, jitter: f64) -> u64 {
        let ceiling = self.ceiling_ms(failures);
        let fixed = ceiling / 2;
        let jittered_span = ceiling - fixed;
        let jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        // The float product may round above the span for spans near 2^64; `min` keeps the
        // delay within the ceiling. `as u64` saturates, it never wraps.
        let extra = ((jitter * jittered_span as f64) as u64).min(jittered_span);
        let delay = fixed + extra;
        debug_assert!(fixed <= delay && delay <= ceiling && delay <= self.cap_ms);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn defaults_to_one_second_doubling_up_to_five_minutes() {
        let backoff = Backoff::default();
        let ceilings: Vec<u64> = (0..=10).map(|n| backoff.ceiling_ms(n)).collect();
        assert_eq!(
            ceilings,
            [
                0, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000
            ]
        );
    }

    #[test]
    fn keeps_half_the_ceiling_fixed_and_jitters_the_other_half() {
        let backoff = Backoff::default();
        assert_eq!(backoff.delay_ms(3, 0.0), 2_000);
        assert_eq!(backoff.delay_ms(3, 0.5), 3_000);
        assert_eq!(backoff.delay_ms(3, 0.999_999), 3_999);
        assert_eq!(backoff.delay_ms(0, 0.7), 0, "no failure, no wait");
    }

    #[test]
    fn clamps_jitter_outside_its_range() {
        let backoff = Backoff::default();
        assert_eq!(backoff.delay_ms(2, f64::NAN), 1_000);
        assert_eq!(backoff.delay_ms(2, -3.0), 1_000);
        assert_eq!(backoff.delay_ms(2, 7.0), 2_000);
        assert_eq!(backoff.delay_ms(2, f64::INFINITY), 2_000);
    }

    #[test]
    fn survives_extreme_parameters() {
        let huge = Backoff {
            base_ms: u64::MAX,
            cap_ms: u64::MAX,
        };
        assert_eq!(huge.ceiling_ms(u32::MAX), u64::MAX);
        assert!(huge.delay_ms(u32::MAX, 0.999) >= u64::MAX / 2);
        let zero = Backoff {
            base_ms: 0,
            cap_ms: u64::MAX,
        };
        assert_eq!(zero.delay_ms(u32::MAX, 0.5), 0);
        let base_above_cap = Backoff {
            base_ms: 10_000,
            cap_ms: 500,
        };
        assert_eq!(base_above_cap.ceiling_ms(1), 500);
    }

    proptest! {
        #[test]
        fn delay_stays_within_half_the_ceiling_and_the_ceiling(
            base_ms in prop_oneof![0u64..10_000, any::<u64>()],
            cap_ms in prop_oneof![0u64..1_000_000, any::<u64>()],
            failures in prop_oneof![0u32..80, any::<u32>()],
            jitter in 0.0f64..1.0,
        ) {
            let backoff = Backoff { base_ms, cap_ms };
            let ceiling = backoff.ceiling_ms(failures);
            let delay = backoff.delay_ms(failures, jitter);
            prop_assert!(delay <= cap_ms);
            prop_assert!(delay <= ceiling);
            prop_assert!(delay >= ceiling / 2);
            if failures >= 1 {
                let exact = u128::from(base_ms) << failures.saturating_sub(1).min(64);
                prop_assert_eq!(u128::from(ceiling), exact.min(u128::from(cap_ms)));
            }
        }

        #[test]
        fn ceiling_and_delay_never_decrease_with_failures(
            base_ms in 0u64..100_000,
            cap_ms in 0u64..10_000_000,
            failures in prop_oneof![0u32..80, any::<u32>()],
            jitter in 0.0f64..1.0,
        ) {
            let backoff = Backoff { base_ms, cap_ms };
            let next = failures.saturating_add(1);
            prop_assert!(backoff.ceiling_ms(failures) <= backoff.ceiling_ms(next));
            prop_assert!(backoff.delay_ms(failures, jitter) <= backoff.delay_ms(next, jitter));
        }
    }
}

//! How long to wait before retrying a request to the coordinator: capped exponential backoff
//! with jitter, and the `Retry-After` an overloaded coordinator asks for. Pure: the jitter is
//! passed in, so the bounds are testable exactly.

use std::time::Duration;

/// The first retry waits about this long.
pub const RETRY_BASE_MS: u64 = 100;
/// No retry waits longer than this (unless the coordinator's `Retry-After` says so).
pub const RETRY_CAP_MS: u64 = 5_000;
/// A `Retry-After` longer than this is treated as this: a confused coordinator must not park a
/// factory for hours.
pub const RETRY_AFTER_MAX_MS: u64 = 60_000;

/// The wait before retry number `attempt` (0 for the first retry), with `jitter` in `[0, 1)`.
///
/// "Equal jitter": half the exponential step is fixed and half is random, so retries from many
/// factories spread out but none retries in a tight loop.
pub fn retry_delay(attempt: u32, jitter: f64) -> Duration {
    debug_assert!((0.0..1.0).contains(&jitter), "jitter is a fraction");
    let step_ms = RETRY_BASE_MS
        .saturating_mul(1u64 << attempt.min(32))
        .min(RETRY_CAP_MS);
    let half = step_ms / 2;
    let delay_ms = half + (half as f64 * jitter.clamp(0.0, 1.0)) as u64;
    debug_assert!(delay_ms <= RETRY_CAP_MS);
    Duration::from_millis(delay_ms)
}

/// The wait before retrying a request the coordinator answered with `Retry-After`: at least
/// what it asked for (bounded), and never less than our own backoff.
pub fn retry_delay_after(attempt: u32, jitter: f64, retry_after: Option<Duration>) -> Duration {
    let own = retry_delay(attempt, jitter);
    match retry_after {
        Some(asked) => asked
            .min(Duration::from_millis(RETRY_AFTER_MAX_MS))
            .max(own),
        None => own,
    }
}

/// Parses a `Retry-After` header given in seconds (the HTTP-date form is not used by our
/// coordinator and is ignored).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_retry_waits_between_half_and_all_of_the_base() {
        assert_eq!(
            retry_delay(0, 0.0),
            Duration::from_millis(RETRY_BASE_MS / 2)
        );
        assert!(retry_delay(0, 0.999) <= Duration::from_millis(RETRY_BASE_MS));
    }

    #[test]
    fn delay_doubles_then_stays_under_the_cap() {
        let mut previous = Duration::ZERO;
        for attempt in 0..100 {
            for jitter in [0.0, 0.5, 0.999_999] {
                let d = retry_delay(attempt, jitter);
                assert!(
                    d <= Duration::from_millis(RETRY_CAP_MS),
                    "attempt {attempt}: {d:?}"
                );
                assert!(
                    d >= Duration::from_millis(RETRY_BASE_MS / 2),
                    "attempt {attempt}: {d:?}"
                );
            }
            let floor = retry_delay(attempt, 0.0);
            assert!(floor >= previous, "the floor never goes down");
            previous = floor;
        }
        assert_eq!(retry_delay(3, 0.0), Duration::from_millis(400));
        assert_eq!(
            retry_delay(99, 0.0),
            Duration::from_millis(RETRY_CAP_MS / 2)
        );
    }

    #[test]
    fn retry_after_is_honoured_but_bounded() {
        let asked = Some(Duration::from_secs(3));
        assert_eq!(retry_delay_after(0, 0.0, asked), Duration::from_secs(3));
        let huge = Some(Duration::from_secs(86_400));
        assert_eq!(
            retry_delay_after(0, 0.0, huge),
            Duration::from_millis(RETRY_AFTER_MAX_MS)
        );
        // A Retry-After shorter than our own backoff does not make us retry faster.
        let tiny = Some(Duration::ZERO);
        assert_eq!(retry_delay_after(10, 0.0, tiny), retry_delay(10, 0.0));
    }

    #[test]
    fn parses_retry_after_seconds_only() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}

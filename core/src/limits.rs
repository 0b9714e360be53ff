//! Concurrency and rate limits by key. A key is a product (`product:NAME`, every job of it) or
//! a job's own `concurrency_key` (`repo:acme/api`). A limit caps the jobs holding a lease
//! under its key (`max_running`) and the leases granted per minute (`per_minute`): no window
//! of a minute ever sees more. Up to `RATE_SPACED_MAX` a minute, starts are evenly spaced
//! (10 a minute: one every 6 s; each start moves the key's next start, so its claims are
//! ordered, which costs little at one start every 20 ms or more); faster rates count starts
//! per second, at most a 61st of the rate each second (a minute touches 61 seconds at most),
//! so starts under one key need not wait for each other. The claim transaction checks and
//! counts both (storage), so they hold across nodes; this file is the arithmetic and the
//! words.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::job::Millis;
use crate::manifest::JobSpec;

/// Longest limit key, in bytes.
pub const LIMIT_KEY_MAX_BYTES: usize = 128;
/// Largest `max_running` or `per_minute`.
pub const LIMIT_VALUE_MAX: u32 = 1_000_000;
const MS_PER_MINUTE: u64 = 60_000;
/// Rate arithmetic is in microseconds, so 7 a minute spaces starts exactly, not by 8.57 ms
/// rounded.
const US_PER_MINUTE: u64 = MS_PER_MINUTE * 1_000;
/// The fastest rate whose starts are evenly spaced; faster ones count starts per second.
pub const RATE_SPACED_MAX: u32 = 3_000;
/// The second a counted rate's starts are counted in.
pub const RATE_BUCKET_MS: u64 = 1_000;
/// Seconds a window of a minute can touch: the quota of each is a 61st of the rate.
const BUCKETS_PER_WINDOW: u32 = 61;

/// What is wrong with a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error(
        "limit key must be 1 to {LIMIT_KEY_MAX_BYTES} characters from [A-Za-z0-9._:/@-] with a kind before a colon (product:NAME, repo:acme/api), got {0:?}"
    )]
    BadKey(String),
    #[error("{field} must be between 1 and {LIMIT_VALUE_MAX}, got {value}")]
    OutOfRange { field: &'static str, value: u64 },
    #[error("a limit needs max_running, per_minute or both")]
    Empty,
}

/// Checks a key as limits and `concurrency_key` take it.
pub fn check_key(key: &str) -> Result<(), LimitError> {
    let charset = key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._:/@-".contains(c));
    let kinded = key
        .split_once(':')
        .is_some_and(|(kind, rest)| !kind.is_empty() && !rest.is_empty());
    if charset && kinded && key.len() <= LIMIT_KEY_MAX_BYTES {
        Ok(())
    } else {
        Err(LimitError::BadKey(key.to_owned()))
    }
}

/// A limit as an operator sets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitSpec {
    #[serde(default)]
    pub max_running: Option<u32>,
    #[serde(default)]
    pub per_minute: Option<u32>,
}

impl LimitSpec {
    pub fn validate(&self) -> Result<(), LimitError> {
        if self.max_running.is_none() && self.per_minute.is_none() {
            return Err(LimitError::Empty);
        }
        for (field, value) in [
            ("max_running", self.max_running),
            ("per_minute", self.per_minute),
        ] {
            if let Some(v) = value
                && !(1..=LIMIT_VALUE_MAX).contains(&v)
            {
                return Err(LimitError::OutOfRange {
                    field,
                    value: v.into(),
                });
            }
        }
        Ok(())
    }
}

/// The limit keys a job counts under: its product's, then its own concurrency key.
pub fn keys_of(spec: &JobSpec) -> Vec<String> {
    let mut keys = vec![product_key(&spec.product)];
    keys.extend(spec.concurrency_key.iter().cloned());
    keys
}

pub fn product_key(product: &str) -> String {
    format!("product:{product}")
}

/// Why a limit keeps a job from a lease now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LimitHold {
    Concurrency {
        key: String,
        running: u32,
        max: u32,
    },
    Rate {
        key: String,
        per_minute: u32,
        until: Millis,
    },
}

impl LimitHold {
    pub fn key(&self) -> &str {
        match self {
            LimitHold::Concurrency { key, .. } | LimitHold::Rate { key, .. } => key,
        }
    }

    /// When the hold lifts by itself (a rate's next start); a concurrency hold lifts when a
    /// job under its key ends.
    pub fn until(&self) -> Option<Millis> {
        match self {
            LimitHold::Rate { until, .. } => Some(*until),
            LimitHold::Concurrency { .. } => None,
        }
    }

    pub fn message(&self) -> String {
        match self {
            LimitHold::Concurrency { key, running, max } => {
                format!("concurrency limit {key}: {running} of {max} running")
            }
            LimitHold::Rate {
                key,
                per_minute,
                until,
            } => format!(
                "rate limit {key}: {per_minute} a minute, next start at {}",
                crate::budget::format_utc_seconds(*until)
            ),
        }
    }
}

/// The concurrency check: a job may take a slot while fewer than `max` run.
pub fn concurrency(key: &str, running: u32, max: u32) -> Result<(), LimitHold> {
    if running < max {
        Ok(())
    } else {
        Err(LimitHold::Concurrency {
            key: key.to_owned(),
            running,
            max,
        })
    }
}

/// Whether `per_minute` counts starts per second rather than spacing them.
pub fn rate_is_counted(per_minute: u32) -> bool {
    per_minute > RATE_SPACED_MAX
}

/// The second holding `now`, for a counted rate.
pub fn rate_bucket(now: Millis) -> u64 {
    now / RATE_BUCKET_MS
}

/// Starts a counted rate admits in one second: any minute touches at most 61 seconds, so
/// 61 of them stay within the rate.
pub fn rate_quota(per_minute: u32) -> u32 {
    per_minute / BUCKETS_PER_WINDOW
}

/// The check of a counted rate: `started` leases began in `now`'s second so far.
pub fn counted_rate(
    key: &str,
    started: u32,
    per_minute: u32,
    now: Millis,
) -> Result<(), LimitHold> {
    if started < rate_quota(per_minute) {
        Ok(())
    } else {
        Err(LimitHold::Rate {
            key: key.to_owned(),
            per_minute,
            until: (rate_bucket(now) + 1) * RATE_BUCKET_MS,
        })
    }
}

/// The check of a spaced rate (a GCRA with no burst): `next_us` is the earliest time, in microseconds,
/// the key may start a job (0: never started). Admits at `now` when it has come, and returns
/// the next one, one interval on; else the hold, with when it lifts.
pub fn rate(key: &str, next_us: u64, per_minute: u32, now: Millis) -> Result<u64, LimitHold> {
    let now_us = now.saturating_mul(1_000);
    // Rounded up, so `per_minute` intervals always span a whole minute.
    let interval_us = US_PER_MINUTE.div_ceil(u64::from(per_minute.max(1)));
    if next_us <= now_us {
        Ok(now_us.max(next_us).saturating_add(interval_us))
    } else {
        Err(LimitHold::Rate {
            key: key.to_owned(),
            per_minute,
            until: next_us.div_ceil(1_000),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_need_a_kind_and_a_plain_charset() {
        for good in ["product:ops", "repo:acme/api", "team:a.b_c-d@x"] {
            assert_eq!(check_key(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "ops",
            ":x",
            "repo:",
            "repo:a b",
            &format!("k:{}", "x".repeat(200)),
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert!(
            check_key("ops")
                .unwrap_err()
                .to_string()
                .contains("product:NAME"),
            "the message shows the form"
        );
    }

    #[test]
    fn a_limit_needs_a_value_in_range() {
        let spec = |max_running, per_minute| LimitSpec {
            max_running,
            per_minute,
        };
        assert_eq!(spec(None, None).validate(), Err(LimitError::Empty));
        assert_eq!(
            spec(Some(0), None).validate(),
            Err(LimitError::OutOfRange {
                field: "max_running",
                value: 0
            })
        );
        assert!(spec(None, Some(LIMIT_VALUE_MAX + 1)).validate().is_err());
        assert_eq!(spec(Some(2), Some(60)).validate(), Ok(()));
    }

    #[test]
    fn concurrency_admits_below_the_max_and_says_how_many_run() {
        assert_eq!(concurrency("repo:a", 1, 2), Ok(()));
        let hold = concurrency("repo:a", 2, 2).unwrap_err();
        assert_eq!(hold.message(), "concurrency limit repo:a: 2 of 2 running");
        assert_eq!(hold.until(), None);
    }

    #[test]
    fn a_rate_spaces_starts_evenly_and_says_when_the_next_may_start() {
        let now = 1_000_000;
        let next = rate("product:p", 0, 10, now).expect("first start");
        assert_eq!(next, (now + 6_000) * 1_000, "10 a minute: one every 6 s");
        let hold = rate("product:p", 1_000_006_123_456, 10, 0).unwrap_err();
        assert_eq!(
            hold.message(),
            "rate limit product:p: 10 a minute, next start at 1970-01-12 13:46:46 UTC"
        );
        let hold = rate("product:p", next, 10, now + 5_999).unwrap_err();
        assert_eq!(hold.until(), Some(now + 6_000));
        assert!(
            hold.message()
                .starts_with("rate limit product:p: 10 a minute, next start at ")
        );
        assert!(rate("product:p", next, 10, now + 6_000).is_ok());
    }

    proptest! {
        /// A counted rate, whatever the pattern of tries: no window of a minute admits more
        /// than `per_minute`, and a busy key still starts 96 % of it (a 61st a second,
        /// rounded down).
        #[test]
        fn a_counted_rate_admits_no_more_than_the_rate_in_any_minute(
            per_minute in (RATE_SPACED_MAX + 1)..40_000u32,
            gaps in prop::collection::vec(0u64..40, 1..3_000),
        ) {
            let mut now = 1_000_000u64;
            let mut per_bucket: std::collections::HashMap<u64, u32> = Default::default();
            let mut admitted = Vec::new();
            for gap in gaps {
                now += gap;
                let started = per_bucket.get(&rate_bucket(now)).copied().unwrap_or(0);
                if counted_rate("k", started, per_minute, now).is_ok() {
                    *per_bucket.entry(rate_bucket(now)).or_default() += 1;
                    admitted.push(now);
                }
            }
            for (i, start) in admitted.iter().enumerate() {
                let within = admitted[i..].iter().take_while(|t| **t < start + MS_PER_MINUTE).count();
                prop_assert!(within <= per_minute as usize, "{} in a minute at {}/min", within, per_minute);
            }
            prop_assert!(u64::from(rate_quota(per_minute)) * 60 * 100 >= u64::from(per_minute) * 96);
        }

        /// However often starts are tried, no window of a minute admits more than
        /// `per_minute` of them.
        #[test]
        fn no_minute_admits_more_than_the_rate(
            per_minute in 1u32..50,
            gaps in prop::collection::vec(0u64..5_000, 1..300),
        ) {
            let mut now = 1_000_000u64;
            let mut next = 0u64;
            let mut admitted = Vec::new();
            for gap in gaps {
                now += gap;
                if let Ok(n) = rate("k", next, per_minute, now) {
                    next = n;
                    admitted.push(now);
                }
            }
            for (i, start) in admitted.iter().enumerate() {
                let within = admitted[i..].iter().take_while(|t| **t < start + MS_PER_MINUTE).count();
                prop_assert!(within <= per_minute as usize, "{} in a minute at {}/min", within, per_minute);
            }
        }
    }
}

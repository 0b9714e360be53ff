//! Concurrency and rate limits by key. A key is a product (`product:NAME`, every job of it),
//! an engine class (`engine:claude`, every job that needs it) or a job's own
//! `concurrency_key` (`repo:acme/api`). A key may also be throttled until a time: a job the
//! model provider throttled reports when its quota resets, and no job under the key is leased
//! before then (`throttled_until`, which an operator may set too). A limit caps the jobs holding a lease
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
    #[error("a limit needs max_running, per_minute or throttled_until")]
    Empty,
    #[error("throttled_until must lie within {THROTTLE_MAX_MS} ms from now, got {0}")]
    ThrottleTooFar(Millis),
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
    /// No lease under the key before this time (ms since the epoch): a provider's quota
    /// window, reported by a throttled job or set by an operator.
    #[serde(default)]
    pub throttled_until: Option<Millis>,
}

impl LimitSpec {
    pub fn validate(&self) -> Result<(), LimitError> {
        if self.max_running.is_none() && self.per_minute.is_none() && self.throttled_until.is_none()
        {
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

/// Longest throttle from now: a provider's window is hours at most, and a mistyped year must
/// not park an engine's queue for good.
pub const THROTTLE_MAX_MS: Millis = 7 * 24 * 3_600_000;

/// Checks a throttle's end, at `now`.
pub fn check_throttle(until: Millis, now: Millis) -> Result<(), LimitError> {
    if until > now.saturating_add(THROTTLE_MAX_MS) {
        Err(LimitError::ThrottleTooFar(until))
    } else {
        Ok(())
    }
}

/// The limit keys a job counts under: its product's, its engine class's, then its own
/// concurrency key.
pub fn keys_of(spec: &JobSpec) -> Vec<String> {
    let mut keys = vec![product_key(&spec.product)];
    keys.extend(spec.engine_class.as_deref().map(engine_key));
    keys.extend(spec.concurrency_key.iter().cloned());
    keys
}

pub fn engine_key(engine_class: &str) -> String {
    format!("engine:{engine_class}")
}

/// A throttle reported at `now` on a key that held `old` (or nothing): the later of the two
/// ends wins, and the key's limits stay.
pub fn throttled(old: Option<LimitSpec>, until: Millis) -> LimitSpec {
    let mut spec = old.unwrap_or(LimitSpec {
        max_running: None,
        per_minute: None,
        throttled_until: None,
    });
    spec.throttled_until = Some(spec.throttled_until.map_or(until, |t| t.max(until)));
    spec
}

/// The throttle check: nothing under `key` starts before `until`.
pub fn throttle(key: &str, until: Option<Millis>, now: Millis) -> Result<(), LimitHold> {
    match until {
        Some(until) if now < until => Err(LimitHold::Throttled {
            key: key.to_owned(),
            until,
        }),
        _ => Ok(()),
    }
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
    Throttled {
        key: String,
        until: Millis,
    },
}

impl LimitHold {
    pub fn key(&self) -> &str {
        match self {
            LimitHold::Concurrency { key, .. }
            | LimitHold::Rate { key, .. }
            | LimitHold::Throttled { key, .. } => key,
        }
    }

    /// When the hold lifts by itself (a rate's next start); a concurrency hold lifts when a
    /// job under its key ends.
    pub fn until(&self) -> Option<Millis> {
        match self {
            LimitHold::Rate { until, .. } | LimitHold::Throttled { until, .. } => Some(*until),
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
            LimitHold::Throttled { key, until } => {
                let at = crate::budget::format_utc_seconds(*until);
                match key.strip_prefix("engine:") {
                    Some(engine) => format!("{engine} throttled until {at} ({key})"),
                    None => format!("{key} throttled until {at}"),
                }
            }
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
    fn a_throttle_holds_its_key_until_the_reset_and_names_the_engine() {
        assert_eq!(throttle("engine:claude", None, 5), Ok(()));
        assert_eq!(
            throttle("engine:claude", Some(5), 5),
            Ok(()),
            "lifted at the reset"
        );
        let hold = throttle("engine:claude", Some(1_796_220_300_000), 0).unwrap_err();
        assert_eq!(hold.until(), Some(1_796_220_300_000));
        assert!(
            hold.message().starts_with("claude throttled until 2026-"),
            "{}",
            hold.message()
        );
        let other = throttle("repo:a", Some(10), 0).unwrap_err().message();
        assert!(other.starts_with("repo:a throttled until"), "{other}");
    }

    #[test]
    fn a_reported_throttle_keeps_the_keys_limits_and_the_later_reset() {
        let old = LimitSpec {
            max_running: Some(3),
            per_minute: None,
            throttled_until: Some(500),
        };
        let merged = throttled(Some(old.clone()), 400);
        assert_eq!(
            merged.throttled_until,
            Some(500),
            "an earlier reset does not shorten it"
        );
        assert_eq!(merged.max_running, Some(3));
        assert_eq!(throttled(Some(old), 900).throttled_until, Some(900));
        let fresh = throttled(None, 700);
        assert_eq!(
            (fresh.max_running, fresh.throttled_until),
            (None, Some(700))
        );
        assert_eq!(fresh.validate(), Ok(()), "a throttle alone is a limit");
    }

    #[test]
    fn a_throttle_further_than_a_week_is_refused() {
        assert_eq!(check_throttle(THROTTLE_MAX_MS, 0), Ok(()));
        assert!(check_throttle(THROTTLE_MAX_MS + 1, 0).is_err());
    }

    #[test]
    fn a_job_counts_under_its_product_its_engine_and_its_key() {
        let mut spec = JobSpec::new(
            "k",
            "t",
            "ops",
            crate::manifest::Payload::Command("x".into()),
        );
        assert_eq!(keys_of(&spec), ["product:ops"]);
        spec.engine_class = Some("claude".into());
        spec.concurrency_key = Some("repo:a".into());
        assert_eq!(keys_of(&spec), ["product:ops", "engine:claude", "repo:a"]);
    }

    #[test]
    fn a_limit_needs_a_value_in_range() {
        let spec = |max_running, per_minute| LimitSpec {
            max_running,
            per_minute,
            throttled_until: None,
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

//! Cron expressions and their ticks in an IANA time zone. Five fields (minute, hour, day of
//! month, month, day of week) or six with seconds first; each field a comma list of `*`,
//! `N`, `A-B`, with an optional `/STEP`; months and weekdays also by name (`JAN`, `MON`),
//! Sunday as 0 or 7; `@yearly`, `@monthly`, `@weekly`, `@daily` and `@hourly`. When both
//! day fields are restricted a day matching either fires (as Vixie cron does).
//!
//! Ticks are local wall-clock times that match, each firing once (the DST rule):
//! - a local time that a change to summer time skips fires at the first instant after the
//!   gap (so `30 2 * * *` fires at 03:00 that day, and every skipped time of a `*/15` cron
//!   fires once, together, at 03:00);
//! - a local time that a change back to winter time repeats fires at its first occurrence
//!   only (so `30 2 * * *` fires once, and an hourly cron does not fire in the repeated hour).
//!
//! Both rules keep the instant of a local time non-decreasing in the local time, so the next
//! tick is the first matching local time whose instant is strictly after the given one.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike};
use chrono_tz::Tz;

use crate::job::Millis;

/// How many years ahead a search looks for a matching day: 29 Feb on a given weekday recurs
/// within 28 years, so anything that never matches in that span never matches at all.
const SEARCH_YEARS_MAX: i32 = 29;

/// How many matching local times the next-tick search walks past before giving up (a
/// per-second cron in a repeated hour skips at most 3,600 of them).
const CANDIDATES_MAX: u32 = 20_000;

/// A parsed cron expression: the set of values each field matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    seconds: u64,
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    days: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday 0.
    weekdays: u8,
    /// Whether the day-of-month field is `*` (then a day matches by weekday alone).
    days_any: bool,
    /// Whether the day-of-week field is `*` (then a day matches by day of month alone).
    weekdays_any: bool,
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const SECOND: Field = Field {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};
const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY: Field = Field {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
// 7 is Sunday too; folded onto 0 after parsing.
const WEEKDAY: Field = Field {
    name: "day of week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

impl Cron {
    /// Parses `expr`; the error names the field and what is wrong with it.
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let expanded = match expr.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => return Err(format!("unknown macro {other:?}")),
            other => other,
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        let (sec, rest) = match parts.len() {
            5 => ("0", &parts[..]),
            6 => (parts[0], &parts[1..]),
            n => {
                return Err(format!(
                    "a cron needs 5 fields (minute hour day month weekday) or 6 with seconds first, not {n}"
                ));
            }
        };
        let weekdays = parse_field(rest[4], &WEEKDAY)?;
        Ok(Cron {
            seconds: parse_field(sec, &SECOND)?,
            minutes: parse_field(rest[0], &MINUTE)?,
            hours: parse_field(rest[1], &HOUR)? as u32,
            days: parse_field(rest[2], &DAY)? as u32,
            months: parse_field(rest[3], &MONTH)? as u16,
            // Sunday as 7 is Sunday as 0.
            weekdays: ((weekdays & 0x7f) | (weekdays >> 7)) as u8,
            // As Vixie cron: a field starting with `*` (`*/2` too) is a star, so it narrows
            // the other day field instead of adding days to it.
            days_any: rest[2].starts_with('*') || rest[2] == "?",
            weekdays_any: rest[4].starts_with('*') || rest[4] == "?",
        })
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        let by_day = self.days & (1 << d.day()) != 0;
        let by_weekday = self.weekdays & (1 << d.weekday().num_days_from_sunday()) != 0;
        match (self.days_any, self.weekdays_any) {
            (true, true) => true,
            (true, false) => by_weekday,
            (false, true) => by_day,
            (false, false) => by_day || by_weekday,
        }
    }

    /// Whether the local time `t` matches every field.
    pub fn matches(&self, t: NaiveDateTime) -> bool {
        self.months & (1 << t.month()) != 0
            && self.day_matches(t.date())
            && self.hours & (1 << t.hour()) != 0
            && self.minutes & (1 << t.minute()) != 0
            && self.seconds & (1 << t.second()) != 0
    }

    /// The first local time at or after `from` (whole seconds) that matches.
    fn next_local(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        let limit = from.year() + SEARCH_YEARS_MAX;
        let mut t = from;
        while t.year() <= limit {
            let date = t.date();
            if self.months & (1 << date.month()) == 0 {
                let (y, m) = if date.month() == 12 {
                    (date.year() + 1, 1)
                } else {
                    (date.year(), date.month() + 1)
                };
                t = NaiveDate::from_ymd_opt(y, m, 1)?.and_hms_opt(0, 0, 0)?;
            } else if !self.day_matches(date) {
                t = date.succ_opt()?.and_hms_opt(0, 0, 0)?;
            } else if self.hours & (1 << t.hour()) == 0 {
                t = date.and_hms_opt(t.hour(), 0, 0)? + Duration::hours(1);
            } else if self.minutes & (1 << t.minute()) == 0 {
                t = date.and_hms_opt(t.hour(), t.minute(), 0)? + Duration::minutes(1);
            } else if self.seconds & (1 << t.second()) == 0 {
                t += Duration::seconds(1);
            } else {
                return Some(t);
            }
        }
        None
    }

    /// The first tick strictly after `after` (ms since the epoch) in `zone`, by the DST rule
    /// of the module doc; `None` if the expression never matches (`0 0 30 2 *`).
    pub fn next_tick(&self, zone: Tz, after: Millis) -> Option<Millis> {
        let after_at = DateTime::from_timestamp_millis(i64::try_from(after).ok()?)?;
        let local = after_at.with_timezone(&zone).naive_local();
        // Every local time before `local` maps at or before `after` (the mapping never
        // decreases), so the search starts there, at the whole second.
        let mut from = local.with_nanosecond(0)?;
        for _ in 0..CANDIDATES_MAX {
            let candidate = self.next_local(from)?;
            let at = instant_of(zone, candidate)?;
            if at > after {
                debug_assert!(at > after);
                return Some(at);
            }
            from = candidate + Duration::seconds(1);
        }
        None
    }
}

/// The instant a local time fires at, by the DST rule: its only instant, the first of two,
/// or, for a time in a gap, the first instant after the gap.
fn instant_of(zone: Tz, local: NaiveDateTime) -> Option<Millis> {
    use chrono::LocalResult;
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => u64::try_from(t.timestamp_millis()).ok(),
        LocalResult::Ambiguous(first, _) => u64::try_from(first.timestamp_millis()).ok(),
        LocalResult::None => {
            // Gaps start and end on whole minutes in every zone since 1970; walking minutes
            // from the skipped one finds the gap's end (at most a few hours on).
            let mut m = local.with_second(0)?;
            for _ in 0..(24 * 60) {
                m += Duration::minutes(1);
                if let Some(t) = zone.from_local_datetime(&m).earliest() {
                    return u64::try_from(t.timestamp_millis()).ok();
                }
            }
            None
        }
    }
}

/// Parses an IANA zone name (`Europe/Paris`, `UTC`).
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|_| format!("{name:?} is not an IANA time zone (such as UTC or Europe/Paris)"))
}

/// `at` as RFC 3339 in `zone` with its offset (`2026-03-29T03:00:00+02:00`), to the second.
pub fn format_in(zone: Tz, at: Millis) -> String {
    match DateTime::from_timestamp_millis(at as i64) {
        Some(t) => t
            .with_timezone(&zone)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        None => at.to_string(),
    }
}

fn parse_field(text: &str, f: &Field) -> Result<u64, String> {
    let mut bits = 0u64;
    for item in text.split(',') {
        bits |= parse_item(item, f).map_err(|why| format!("{} field {text:?}: {why}", f.name))?;
    }
    Ok(bits)
}

fn parse_item(item: &str, f: &Field) -> Result<u64, String> {
    let (range, step) = match item.split_once('/') {
        Some((r, s)) => {
            let step: u32 = s
                .parse()
                .map_err(|_| format!("step {s:?} is not a number"))?;
            if step == 0 || step > f.max {
                return Err(format!("step {step} is not between 1 and {}", f.max));
            }
            (r, step)
        }
        None => (item, 1),
    };
    let (lo, hi) = if range == "*" || range == "?" {
        (f.min, f.max)
    } else if let Some((a, b)) = range.split_once('-') {
        (value(a, f)?, value(b, f)?)
    } else {
        let v = value(range, f)?;
        // `N/STEP` runs from N to the end of the field.
        (v, if item.contains('/') { f.max } else { v })
    };
    if lo > hi {
        return Err(format!("range {lo}-{hi} runs backwards"));
    }
    Ok((lo..=hi)
        .step_by(step as usize)
        .fold(0, |b, v| b | (1 << v)))
}

fn value(text: &str, f: &Field) -> Result<u32, String> {
    let upper = text.to_ascii_uppercase();
    if let Some(i) = f.names.iter().position(|n| *n == upper) {
        return Ok(i as u32 + f.min);
    }
    let v: u32 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if v < f.min || v > f.max {
        return Err(format!("{v} is not between {} and {}", f.min, f.max));
    }
    Ok(v)
}

//! Budget periods on the UTC calendar: where the period holding a moment starts and ends
//! (days from 00:00, weeks from Monday 00:00, months from the 1st 00:00), and how a moment
//! reads (`2026-12-03 00:00 UTC`). Civil-date arithmetic from day counts, so no calendar
//! crate and no time zone database.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::job::Millis;

const MS_PER_DAY: u64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    pub fn name(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "day" => Some(Period::Day),
            "week" => Some(Period::Week),
            "month" => Some(Period::Month),
            _ => None,
        }
    }

    /// The first moment of the period that holds `at`.
    pub fn start(self, at: Millis) -> Millis {
        let day = at / MS_PER_DAY;
        let first = match self {
            Period::Day => day,
            // Day 0 (1970-01-01) was a Thursday: Monday is 3 days before it.
            Period::Week => (day + 3) / 7 * 7 - 3,
            Period::Month => {
                let (y, m, _) = civil_from_days(day as i64);
                days_from_civil(y, m, 1) as u64
            }
        };
        first * MS_PER_DAY
    }

    /// The first moment of the next period: when the one holding `at` resets.
    pub fn end(self, at: Millis) -> Millis {
        let start = self.start(at);
        match self {
            Period::Day => start + MS_PER_DAY,
            Period::Week => start + 7 * MS_PER_DAY,
            Period::Month => {
                let (y, m, _) = civil_from_days((start / MS_PER_DAY) as i64);
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                days_from_civil(y, m, 1) as u64 * MS_PER_DAY
            }
        }
    }
}

/// The first moment of the UTC day holding `at`.
pub fn day_start(at: Millis) -> Millis {
    at / MS_PER_DAY * MS_PER_DAY
}

/// `at` as people read it: `2026-12-03 00:00 UTC`.
pub fn format_utc(at: Millis) -> String {
    let (y, m, d) = civil_from_days((at / MS_PER_DAY) as i64);
    let minutes = at % MS_PER_DAY / 60_000;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        minutes / 60,
        minutes % 60
    )
}

/// `at` to the second: `2026-12-03 00:00:06 UTC`.
pub fn format_utc_seconds(at: Millis) -> String {
    let minute = format_utc(at);
    let seconds = at % 60_000 / 1_000;
    format!("{}:{seconds:02} UTC", minute.trim_end_matches(" UTC"))
}

/// Year, month (1–12) and day (1–31) of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The day count since 1970-01-01 of a civil date (the inverse of [`civil_from_days`]).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 2026-12-02 15:30 UTC, a Wednesday.
    const WED: Millis = 1_796_225_400_000;

    #[test]
    fn periods_start_and_end_on_the_utc_calendar() {
        assert_eq!(format_utc(WED), "2026-12-02 15:30 UTC");
        assert_eq!(format_utc(Period::Day.start(WED)), "2026-12-02 00:00 UTC");
        assert_eq!(format_utc(Period::Day.end(WED)), "2026-12-03 00:00 UTC");
        assert_eq!(
            format_utc(Period::Week.start(WED)),
            "2026-11-30 00:00 UTC",
            "a Monday"
        );
        assert_eq!(format_utc(Period::Week.end(WED)), "2026-12-07 00:00 UTC");
        assert_eq!(format_utc(Period::Month.start(WED)), "2026-12-01 00:00 UTC");
        assert_eq!(format_utc(Period::Month.end(WED)), "2027-01-01 00:00 UTC");
        let feb = Period::Month.start(days_from_civil(2028, 2, 20) as u64 * MS_PER_DAY);
        assert_eq!(
            format_utc(Period::Month.end(feb)),
            "2028-03-01 00:00 UTC",
            "leap year"
        );
    }

    proptest! {
        #[test]
        fn a_moment_lies_in_its_period_and_the_next_starts_where_it_ends(
            at in 0u64..4_102_444_800_000,
            p in prop_oneof![Just(Period::Day), Just(Period::Week), Just(Period::Month)],
        ) {
            let (start, end) = (p.start(at), p.end(at));
            prop_assert!(start <= at && at < end);
            prop_assert_eq!(p.start(end), end);
            prop_assert_eq!(p.start(end - 1), start);
            prop_assert!(end - start >= 28 * MS_PER_DAY || p != Period::Month);
        }

        #[test]
        fn civil_dates_round_trip(day in -1_000_000i64..1_000_000) {
            let (y, m, d) = civil_from_days(day);
            prop_assert_eq!(days_from_civil(y, m, d), day);
        }
    }
}

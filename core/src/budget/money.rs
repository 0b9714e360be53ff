//! Money as integer micro-dollars (USD × 1,000,000), so sums are exact: parsing a dollar
//! amount written by a person (exactly, never through a float), showing one, and the cost of
//! machine time. Nothing here can overflow; costs round up, so many short runs cannot add up
//! to less than they used.

/// An amount of money in micro-dollars.
pub type Micros = u64;

pub const MICROS_PER_USD: u64 = 1_000_000;
const MS_PER_HOUR: u128 = 3_600_000;

/// Why a dollar amount could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an amount of dollars (like 12.50, at most 6 decimals, not negative)")]
pub struct BadAmount(pub String);

/// Reads a non-negative dollar amount (`12`, `12.5`, `0.000001`, `$3.20`) as micro-dollars,
/// exactly: at most six decimals, no exponent, no sign.
pub fn parse_usd(text: &str) -> Result<Micros, BadAmount> {
    let bad = || BadAmount(text.to_owned());
    let t = text.trim();
    let t = t.strip_prefix('$').unwrap_or(t);
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && frac.is_empty() || !digits(whole) || !digits(frac) || frac.len() > 6 {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let frac_micros: u64 = format!("{frac:0<6}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(MICROS_PER_USD)
        .and_then(|w| w.checked_add(frac_micros))
        .ok_or_else(bad)
}

/// Shows micro-dollars as dollars with cents (`$50.00`), or with as many decimals as it takes
/// below a cent (`$0.0042`), so a small cost never reads as zero.
pub fn format_usd(micros: Micros) -> String {
    let whole = micros / MICROS_PER_USD;
    let frac = micros % MICROS_PER_USD;
    let mut decimals = format!("{frac:06}");
    while decimals.len() > 2 && decimals.ends_with('0') {
        decimals.pop();
    }
    format!("${}.{decimals}", group_thousands(whole))
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The cost of running `runtime_ms` at `per_hour` micro-dollars an hour, rounded up to the
/// next micro (saturating at `u64::MAX`, which no real budget reaches).
pub fn cost_of(runtime_ms: u64, per_hour: Micros) -> Micros {
    // u64 × u64 always fits in u128.
    let product = u128::from(runtime_ms) * u128::from(per_hour);
    u64::try_from(product.div_ceil(MS_PER_HOUR)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dollars_read_exactly() {
        assert_eq!(parse_usd("50"), Ok(50_000_000));
        assert_eq!(parse_usd("$12.5"), Ok(12_500_000));
        assert_eq!(parse_usd("0.000001"), Ok(1));
        assert_eq!(parse_usd(".25"), Ok(250_000));
        assert_eq!(parse_usd(" 3. "), Ok(3_000_000));
        for bad in [
            "",
            ".",
            "-1",
            "1e3",
            "0.0000001",
            "12,50",
            "NaN",
            "99999999999999999999",
        ] {
            assert!(parse_usd(bad).is_err(), "{bad:?} read");
        }
    }

    #[test]
    fn amounts_show_as_dollars_without_hiding_small_costs() {
        assert_eq!(format_usd(50_000_000), "$50.00");
        assert_eq!(format_usd(1_234_567_890_000), "$1,234,567.89");
        assert_eq!(format_usd(4_200), "$0.0042");
        assert_eq!(format_usd(0), "$0.00");
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
        fn an_amount_shown_reads_back(micros in 0u64..=u64::MAX / 2) {
            let shown = format_usd(micros).replace(',', "");
            prop_assert_eq!(parse_usd(&shown), Ok(micros));
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

//! Latency figures both benchmarks print, with one definition of a percentile: the
//! nearest rank (the smallest sample at or above the share asked for), so the store benchmark
//! and `gigafactory bench` read the same p99 off the same samples.

use std::time::{Duration, Instant};

use serde_json::json;

/// Latency percentiles of one run.
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Percentiles {
    /// Sorts `samples` and reads the percentiles off them (zero for an empty run).
    pub fn of(samples: &mut [Duration]) -> Self {
        samples.sort_unstable();
        let at = |q: f64| nearest_rank(samples, q).unwrap_or(Duration::ZERO);
        Percentiles {
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// The nearest-rank `q` quantile (`0.0..=1.0`) of sorted values; `None` without values.
pub(crate) fn nearest_rank<T: Copy + Ord>(sorted: &[T], q: f64) -> Option<T> {
    debug_assert!(sorted.is_sorted());
    debug_assert!((0.0..=1.0).contains(&q));
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Whole microseconds, saturating (a duration that does not fit is not a latency anyway).
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A figure with two decimals, or "-" when there is none.
pub(crate) fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

/// Latencies of one kind of request, in microseconds. Percentiles are read with
/// [`Latencies::ms`] once the samples are [`Latencies::sorted`].
#[derive(Default)]
pub(crate) struct Latencies(Vec<u64>);

impl Latencies {
    pub fn record(&mut self, since: Instant) {
        self.0.push(micros(since.elapsed()));
    }

    pub fn merge(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    pub fn sorted(mut self) -> Latencies {
        self.0.sort_unstable();
        self
    }

    /// The `q` quantile in milliseconds.
    pub fn ms(&self, q: f64) -> Option<f64> {
        nearest_rank(&self.0, q).map(|us| us as f64 / 1000.0)
    }

    /// One row of the latency table: p50, p99, max and the count.
    pub fn row(&self, name: &str) -> String {
        format!(
            "    {name:<10} {:>9} {:>9} {:>9} {:>9}",
            cell(self.ms(0.50)),
            cell(self.ms(0.99)),
            cell(self.ms(1.0)),
            self.0.len()
        )
    }

    pub fn json(&self) -> serde_json::Value {
        json!({
            "count": self.0.len(),
            "p50_ms": self.ms(0.50),
            "p99_ms": self.ms(0.99),
            "max_ms": self.ms(1.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_percentile_is_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(nearest_rank(&v, 0.50), Some(50));
        assert_eq!(nearest_rank(&v, 0.99), Some(99));
        assert_eq!(nearest_rank(&v, 1.0), Some(100));
        assert_eq!(nearest_rank(&v, 0.0), Some(1));
        assert_eq!(nearest_rank(&[7], 0.99), Some(7));
        assert_eq!(nearest_rank::<u64>(&[], 0.5), None);
    }

    #[test]
    fn percentiles_sort_their_samples_and_are_zero_for_an_empty_run() {
        let mut s: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let p = Percentiles::of(&mut s);
        assert_eq!(p.p50, Duration::from_millis(50));
        assert_eq!(p.p99, Duration::from_millis(99));
        assert_eq!(p.max, Duration::from_millis(100));
        assert_eq!(Percentiles::of(&mut []).p99, Duration::ZERO);
    }

    #[test]
    fn latencies_read_in_milliseconds() {
        let mut l = Latencies::default();
        l.merge(Latencies(vec![3_000, 1_000, 2_000]));
        let l = l.sorted();
        assert_eq!(l.ms(0.5), Some(2.0));
        assert_eq!(l.ms(1.0), Some(3.0));
        assert_eq!(Latencies::default().ms(0.5), None);
        assert_eq!(cell(None), "-");
        assert_eq!(cell(Some(1.234)), "1.23");
    }
}

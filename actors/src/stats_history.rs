//! The overview's figures over time, kept by the node so a page opened now shows the last hour
//! and not only what it sampled itself: the node's counters (`NodeStats`), claim latencies of
//! the latest placements (`ClaimLatencies`) and a bounded ring of periodic samples
//! (`StatsHistory`) of throughput and placement latency, each sample covering the interval
//! since the one before.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gigafactory_core::job::Millis;
use schemars::JsonSchema;
use serde::Serialize;

/// Claim latencies kept for the control plane's percentiles.
pub(crate) const CLAIM_LATENCIES_KEPT: usize = 1024;

/// The latest placements' latencies (µs), and how many were ever recorded, so a sampler can
/// take the percentiles of only those recorded since its last sample.
#[derive(Debug, Default)]
pub(crate) struct ClaimLatencies {
    recent_us: VecDeque<u64>,
    recorded_total: u64,
}

impl ClaimLatencies {
    pub fn record(&mut self, us: u64) {
        if self.recent_us.len() == CLAIM_LATENCIES_KEPT {
            self.recent_us.pop_front();
        }
        self.recent_us.push_back(us);
        self.recorded_total += 1;
    }

    pub fn recorded_total(&self) -> u64 {
        self.recorded_total
    }

    /// p50 and p99 (ms) of the latest `last` placements (at most those kept); `None` when
    /// there are none.
    pub fn percentiles_ms(&self, last: usize) -> (Option<f64>, Option<f64>) {
        let take = last.min(self.recent_us.len());
        let mut lat: Vec<u64> = self
            .recent_us
            .iter()
            .skip(self.recent_us.len() - take)
            .copied()
            .collect();
        lat.sort_unstable();
        let pct = |q: f64| {
            lat.get(((lat.len().saturating_sub(1)) as f64 * q).round() as usize)
                .map(|us| *us as f64 / 1000.0)
        };
        (pct(0.5), pct(0.99))
    }
}

/// One sample of the overview's charts: what happened on this node since the sample before.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct StatsSample {
    pub at: Millis,
    /// Counters since the node started (as in `/v1/stats`), so a client that polls
    /// `/v1/stats` can continue the series from the last sample.
    pub finished_total: u64,
    pub claims_total: u64,
    /// Rates over the interval since the previous sample; `None` for the first one.
    pub finished_per_s: Option<f64>,
    pub claims_per_s: Option<f64>,
    /// Placement latency percentiles of the placements in that interval; `None` when there
    /// were none.
    pub claim_latency_p50_ms: Option<f64>,
    pub claim_latency_p99_ms: Option<f64>,
}

/// The counters a sample is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counters {
    pub finished_total: u64,
    pub claims_total: u64,
    pub latencies_recorded: u64,
}

/// The latest `capacity` samples, oldest first.
#[derive(Debug)]
pub(crate) struct StatsHistory {
    samples: VecDeque<StatsSample>,
    capacity: usize,
    /// The counters at the last sample, for the next one's rates.
    last: Option<(Millis, Counters)>,
}

impl StatsHistory {
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "a history holds at least one sample");
        StatsHistory {
            samples: VecDeque::with_capacity(capacity),
            capacity,
            last: None,
        }
    }

    /// Takes a sample at `at` from `counters`; `latencies` gives the percentiles of the
    /// placements recorded since the previous sample.
    pub fn sample(&mut self, at: Millis, counters: Counters, latencies: &ClaimLatencies) {
        let (rate, placed) = match self.last {
            Some((t, before)) if at > t => {
                let secs = (at - t) as f64 / 1000.0;
                // A counter below the last sample's cannot happen within one node's life;
                // count it as no progress rather than a negative rate.
                let per_s = |now: u64, then: u64| Some(now.saturating_sub(then) as f64 / secs);
                (
                    (
                        per_s(counters.finished_total, before.finished_total),
                        per_s(counters.claims_total, before.claims_total),
                    ),
                    counters
                        .latencies_recorded
                        .saturating_sub(before.latencies_recorded),
                )
            }
            _ => ((None, None), counters.latencies_recorded),
        };
        let (p50, p99) = latencies.percentiles_ms(usize::try_from(placed).unwrap_or(usize::MAX));
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(StatsSample {
            at,
            finished_total: counters.finished_total,
            claims_total: counters.claims_total,
            finished_per_s: rate.0,
            claims_per_s: rate.1,
            claim_latency_p50_ms: p50,
            claim_latency_p99_ms: p99,
        });
        self.last = Some((at, counters));
        debug_assert!(self.samples.len() <= self.capacity);
    }

    /// Samples taken after `after` (all kept when `None`), oldest first.
    pub fn since(&self, after: Option<Millis>) -> Vec<StatsSample> {
        self.samples
            .iter()
            .filter(|s| after.is_none_or(|a| s.at > a))
            .cloned()
            .collect()
    }
}

/// The node's own counters since it started and their history: what the overview shows.
#[derive(Debug)]
pub(crate) struct NodeStats {
    finished_total: AtomicU64,
    claims_total: AtomicU64,
    /// Latencies of the latest placements, from the scheduler choosing a job to the lease
    /// being committed (long-poll waiting excluded).
    latencies: Mutex<ClaimLatencies>,
    history: Mutex<StatsHistory>,
}

impl NodeStats {
    pub fn new(history_samples: usize) -> Self {
        NodeStats {
            finished_total: AtomicU64::new(0),
            claims_total: AtomicU64::new(0),
            latencies: Mutex::default(),
            history: Mutex::new(StatsHistory::new(history_samples.max(1))),
        }
    }

    pub fn job_finished(&self) {
        self.finished_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn claims_answered(&self, jobs: usize) {
        self.claims_total.fetch_add(jobs as u64, Ordering::Relaxed);
    }

    /// Records how long one placement took to commit.
    pub fn record_claim_latency(&self, elapsed: Duration) {
        self.latencies
            .lock()
            .expect("latency lock poisoned")
            .record(elapsed.as_micros() as u64);
    }

    /// `(finished, claims)` since the node started.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.finished_total.load(Ordering::Relaxed),
            self.claims_total.load(Ordering::Relaxed),
        )
    }

    /// p50 and p99 (ms) of the latest placements kept.
    pub fn claim_latency_ms(&self) -> (Option<f64>, Option<f64>) {
        self.latencies
            .lock()
            .expect("latency lock poisoned")
            .percentiles_ms(usize::MAX)
    }

    /// Adds a sample of the counters, taken at `now`, to the history.
    pub fn sample(&self, now: Millis) {
        let latencies = self.latencies.lock().expect("latency lock poisoned");
        let (finished_total, claims_total) = self.totals();
        let counters = Counters {
            finished_total,
            claims_total,
            latencies_recorded: latencies.recorded_total(),
        };
        self.history
            .lock()
            .expect("stats history lock poisoned")
            .sample(now, counters, &latencies);
    }

    /// Samples taken after `after` (all kept when `None`), oldest first.
    pub fn since(&self, after: Option<Millis>) -> Vec<StatsSample> {
        self.history
            .lock()
            .expect("stats history lock poisoned")
            .since(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(finished_total: u64, claims_total: u64, latencies_recorded: u64) -> Counters {
        Counters {
            finished_total,
            claims_total,
            latencies_recorded,
        }
    }

    #[test]
    fn the_ring_keeps_only_the_latest_samples() {
        let mut h = StatsHistory::new(3);
        let lat = ClaimLatencies::default();
        for n in 0..5 {
            h.sample(n * 1000, counters(n, n, 0), &lat);
        }
        let kept: Vec<Millis> = h.since(None).iter().map(|s| s.at).collect();
        assert_eq!(kept, [2000, 3000, 4000]);
    }

    #[test]
    fn rates_cover_the_interval_since_the_previous_sample() {
        let mut h = StatsHistory::new(10);
        let lat = ClaimLatencies::default();
        h.sample(10_000, counters(4, 6, 0), &lat);
        h.sample(15_000, counters(14, 11, 0), &lat);
        let s = h.since(None);
        assert_eq!((s[0].finished_per_s, s[0].claims_per_s), (None, None));
        assert_eq!(
            (s[1].finished_per_s, s[1].claims_per_s),
            (Some(2.0), Some(1.0))
        );
        assert_eq!((s[1].finished_total, s[1].claims_total), (14, 11));
    }

    #[test]
    fn latency_percentiles_cover_only_the_placements_of_the_interval() {
        let mut h = StatsHistory::new(10);
        let mut lat = ClaimLatencies::default();
        for us in [90_000, 90_000] {
            lat.record(us);
        }
        h.sample(1_000, counters(0, 2, lat.recorded_total()), &lat);
        for us in [1_000, 2_000, 3_000] {
            lat.record(us);
        }
        h.sample(2_000, counters(0, 5, lat.recorded_total()), &lat);
        h.sample(3_000, counters(0, 5, lat.recorded_total()), &lat);
        let s = h.since(None);
        assert_eq!(s[0].claim_latency_p50_ms, Some(90.0));
        assert_eq!(
            (s[1].claim_latency_p50_ms, s[1].claim_latency_p99_ms),
            (Some(2.0), Some(3.0)),
            "the earlier slow placements are not in this interval"
        );
        assert_eq!(s[2].claim_latency_p50_ms, None, "no placement, no latency");
    }

    #[test]
    fn since_returns_only_newer_samples() {
        let mut h = StatsHistory::new(10);
        let lat = ClaimLatencies::default();
        for at in [1_000, 2_000, 3_000] {
            h.sample(at, counters(0, 0, 0), &lat);
        }
        let newer: Vec<Millis> = h.since(Some(2_000)).iter().map(|s| s.at).collect();
        assert_eq!(newer, [3_000]);
        assert!(h.since(Some(3_000)).is_empty());
    }

    #[test]
    fn a_counter_that_went_back_counts_as_no_progress() {
        let mut h = StatsHistory::new(10);
        let lat = ClaimLatencies::default();
        h.sample(1_000, counters(10, 10, 0), &lat);
        h.sample(2_000, counters(3, 3, 0), &lat);
        assert_eq!(h.since(Some(1_000))[0].finished_per_s, Some(0.0));
    }

    #[test]
    fn claim_latencies_keep_a_bounded_window() {
        let mut lat = ClaimLatencies::default();
        for us in 0..(CLAIM_LATENCIES_KEPT as u64 + 100) {
            lat.record(us * 1000);
        }
        assert_eq!(lat.recorded_total(), CLAIM_LATENCIES_KEPT as u64 + 100);
        // Kept: 100 ms to 1,123 ms; the median's index, 511.5, rounds up to 512.
        assert_eq!(lat.percentiles_ms(usize::MAX).0, Some(612.0));
    }
}

//! Pure helpers of the cluster comparison: histograms in Prometheus text (etcd's `/metrics` and
//! the coordinators'), histogram quantiles from bucket counts, and the
//! per-second throughput series around a node kill. No I/O here, so every figure the
//! comparison prints is unit-tested.

use crate::harness::metrics::{samples, sum_of};

/// A Prometheus histogram: cumulative bucket counts by upper bound, summed over label sets.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Histogram {
    /// `(le, cumulative count)`, by increasing `le`; `+Inf` last.
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

impl Histogram {
    /// The histogram `name` in `text`, buckets of every label set added up.
    pub fn parse(text: &str, name: &str) -> Histogram {
        let bucket = format!("{name}_bucket");
        let mut buckets: Vec<(f64, f64)> = Vec::new();
        for s in samples(text).filter(|s| s.name == bucket) {
            let Some(le) = s
                .labels
                .split(',')
                .find_map(|l| l.trim().strip_prefix("le=\""))
                .and_then(|v| v.strip_suffix('"'))
                .and_then(|v| v.parse::<f64>().ok())
            else {
                continue;
            };
            match buckets.iter_mut().find(|(b, _)| *b == le) {
                Some((_, c)) => *c += s.value,
                None => buckets.push((le, s.value)),
            }
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Histogram {
            buckets,
            sum: sum_of(text, &format!("{name}_sum"), "").unwrap_or(0.0),
            count: sum_of(text, &format!("{name}_count"), "").unwrap_or(0.0),
        }
    }

    /// What was observed after `before` was read (counters only grow, so this is a difference
    /// of every field).
    pub fn since(&self, before: &Histogram) -> Histogram {
        let was = |le: f64| {
            before
                .buckets
                .iter()
                .find(|(b, _)| *b == le)
                .map_or(0.0, |(_, c)| *c)
        };
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|(le, c)| (*le, c - was(*le)))
                .collect(),
            sum: self.sum - before.sum,
            count: self.count - before.count,
        }
    }

    /// Adds another histogram with the same buckets (another member's).
    pub fn add(&mut self, other: &Histogram) {
        for (le, c) in &other.buckets {
            match self.buckets.iter_mut().find(|(b, _)| b == le) {
                Some((_, mine)) => *mine += c,
                None => self.buckets.push((*le, *c)),
            }
        }
        self.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        self.sum += other.sum;
        self.count += other.count;
    }

    pub fn count(&self) -> f64 {
        self.count
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// An upper bound of the `q` quantile: the smallest bucket bound holding at least that share
    /// of the observations (`+Inf` when only the last bucket does). `None` without observations.
    pub fn quantile_at_most(&self, q: f64) -> Option<f64> {
        debug_assert!((0.0..=1.0).contains(&q));
        if self.count <= 0.0 {
            return None;
        }
        let want = q * self.count;
        self.buckets
            .iter()
            .find(|(_, c)| *c >= want)
            .map(|(le, _)| *le)
    }
}

/// Events per bucket of `bucket_ms`, from the event times in milliseconds (in any order) up to
/// the last one.
pub(crate) fn per_bucket(times_ms: &[u64], bucket_ms: u64) -> Vec<u64> {
    assert!(bucket_ms > 0, "a bucket must last");
    let Some(last) = times_ms.iter().max() else {
        return Vec::new();
    };
    let mut buckets = vec![0; (last / bucket_ms) as usize + 1];
    for t in times_ms {
        buckets[(t / bucket_ms) as usize] += 1;
    }
    debug_assert_eq!(buckets.iter().sum::<u64>(), times_ms.len() as u64);
    buckets
}

/// Events per second in `[from_ms, to_ms)`; `None` for an empty window.
pub(crate) fn rate_between(times_ms: &[u64], from_ms: u64, to_ms: u64) -> Option<f64> {
    (to_ms > from_ms).then(|| {
        let n = times_ms
            .iter()
            .filter(|t| (from_ms..to_ms).contains(t))
            .count();
        n as f64 * 1000.0 / (to_ms - from_ms) as f64
    })
}

/// The buckets of a series worth printing one by one: `margin_before` buckets ahead of the
/// first event to `margin_after` past the last, clipped to the `len` buckets there are; all of
/// them without events.
pub(crate) fn window(
    len: usize,
    events: &[usize],
    margin_before: usize,
    margin_after: usize,
) -> std::ops::Range<usize> {
    let (Some(first), Some(last)) = (events.iter().min(), events.iter().max()) else {
        return 0..len;
    };
    let start = first.saturating_sub(margin_before).min(len);
    let end = last.saturating_add(margin_after + 1).min(len);
    start..end.max(start)
}

/// A bar of `width` characters at most, `value` scaled against `max`.
pub(crate) fn bar(value: u64, max: u64, width: usize) -> String {
    let n = if max == 0 {
        0
    } else {
        ((value as f64 / max as f64) * width as f64).round() as usize
    };
    "#".repeat(n.min(width))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FSYNC: &str = "\
# HELP etcd_disk_wal_fsync_duration_seconds The latency distributions of fsync called by WAL.
# TYPE etcd_disk_wal_fsync_duration_seconds histogram
etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.001\"} 10
etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.002\"} 60
etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.004\"} 99
etcd_disk_wal_fsync_duration_seconds_bucket{le=\"+Inf\"} 100
etcd_disk_wal_fsync_duration_seconds_sum 0.2
etcd_disk_wal_fsync_duration_seconds_count 100
grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Txn\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 7
grpc_server_handled_total{grpc_code=\"Aborted\",grpc_method=\"Txn\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 2
grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 5
";

    #[test]
    fn reads_a_histogram_and_bounds_its_quantiles() {
        let h = Histogram::parse(FSYNC, "etcd_disk_wal_fsync_duration_seconds");
        assert_eq!(h.count(), 100.0);
        assert_eq!(h.mean(), Some(0.002));
        assert_eq!(h.quantile_at_most(0.05), Some(0.001));
        assert_eq!(h.quantile_at_most(0.50), Some(0.002));
        assert_eq!(h.quantile_at_most(0.99), Some(0.004));
        assert_eq!(h.quantile_at_most(1.0), Some(f64::INFINITY));
        assert_eq!(Histogram::default().quantile_at_most(0.5), None);
    }

    #[test]
    fn a_histogram_difference_keeps_only_what_came_after() {
        let before = Histogram::parse(FSYNC, "etcd_disk_wal_fsync_duration_seconds");
        let later = FSYNC
            .replace("} 10\n", "} 110\n")
            .replace("} 60\n", "} 160\n")
            .replace("} 99\n", "} 199\n")
            .replace("} 100\n", "} 200\n")
            .replace("_sum 0.2", "_sum 0.3")
            .replace("_count 100", "_count 200");
        let after = Histogram::parse(&later, "etcd_disk_wal_fsync_duration_seconds");
        let d = after.since(&before);
        assert_eq!(d.count(), 100.0);
        assert!((d.mean().unwrap() - 0.001).abs() < 1e-12);
        assert_eq!(d.quantile_at_most(0.5), Some(0.001));
        let mut two = d.clone();
        two.add(&d);
        assert_eq!(two.count(), 200.0);
        assert_eq!(two.quantile_at_most(0.5), Some(0.001));
    }

    #[test]
    fn buckets_events_by_second() {
        assert_eq!(per_bucket(&[], 1_000), Vec::<u64>::new());
        assert_eq!(per_bucket(&[2_500, 0, 999, 1_000], 1_000), vec![2, 1, 1]);
        assert_eq!(per_bucket(&[0, 4_000], 1_000), vec![1, 0, 0, 0, 1]);
    }

    #[test]
    fn rates_count_a_half_open_window() {
        let t = [0, 100, 500, 1_000, 1_999, 2_000];
        assert_eq!(rate_between(&t, 0, 1_000), Some(3.0));
        assert_eq!(rate_between(&t, 1_000, 2_000), Some(2.0));
        assert_eq!(rate_between(&t, 0, 500), Some(4.0));
        assert_eq!(rate_between(&t, 5, 5), None);
    }

    #[test]
    fn a_window_frames_the_events_within_the_run() {
        assert_eq!(window(100, &[], 10, 20), 0..100);
        assert_eq!(window(100, &[40, 45], 10, 20), 30..66);
        assert_eq!(window(100, &[5], 10, 20), 0..26);
        assert_eq!(window(30, &[25, 12], 10, 20), 2..30);
        assert_eq!(window(30, &[90], 10, 20), 30..30);
    }

    #[test]
    fn bars_scale_to_the_largest_value() {
        assert_eq!(bar(10, 10, 4), "####");
        assert_eq!(bar(5, 10, 4), "##");
        assert_eq!(bar(0, 10, 4), "");
        assert_eq!(bar(3, 0, 4), "");
    }
}

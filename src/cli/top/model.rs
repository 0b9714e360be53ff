//! What `top` shows, as plain data: the readings of the coordinator's API (nodes, factories,
//! the overview's figures, the jobs holding leases) and the pure rules the panes apply to
//! them: the factories' order and filter, throughput from readings of the counters, ages,
//! and text from the API made safe to put on a terminal. No I/O and no terminal here.

use std::collections::{BTreeMap, VecDeque};

use gigafactory_core::cluster::{NodeRecord, ShardLease};
use gigafactory_core::job::Millis;
use gigafactory_core::wire::JobView;
use serde::Deserialize;

use crate::cli::output::span;

/// Throughput is the average over about this long: per-second deltas of counters that move
/// by a few jobs at a time would jump between 0 and a burst.
pub const RATE_WINDOW_MS: u64 = 10_000;

/// `GET /v1/cluster`: the nodes (with liveness) and who owns each shard.
#[derive(Debug, Clone, Deserialize)]
pub struct Cluster {
    /// The node that answered.
    pub this_node: String,
    /// `(alive, record)`.
    pub nodes: Vec<(bool, NodeRecord)>,
    /// `(shard, live lease)`.
    pub shards: Vec<(u32, Option<ShardLease>)>,
}

impl Cluster {
    /// How many shards `node` holds a live lease on.
    pub fn shards_owned(&self, node: &NodeRecord) -> usize {
        self.shards
            .iter()
            .filter(|(_, lease)| lease.is_some_and(|l| l.owner == node.id))
            .count()
    }
}

/// A factory of `GET /v1/factories`, with the fields `top` shows.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FactoryRow {
    pub id: String,
    pub name: String,
    pub status: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
    pub slots: u32,
    pub slots_busy: u32,
    pub last_heartbeat: Millis,
}

/// The figures of `GET /v1/stats` that `top` shows.
#[derive(Debug, Clone, Deserialize)]
pub struct Stats {
    /// The coordinator's clock: ages are measured against it, not this machine's.
    pub now: Millis,
    pub slots: u32,
    pub slots_busy: u32,
    pub queued: usize,
    #[serde(default)]
    pub queued_by_product: BTreeMap<String, usize>,
    pub running: usize,
    pub finished_total: u64,
    pub claims_total: u64,
    pub claim_latency_p50_ms: Option<f64>,
    pub claim_latency_p99_ms: Option<f64>,
}

impl Stats {
    pub fn counters(&self) -> Counters {
        Counters {
            at: self.now,
            finished: self.finished_total,
            claims: self.claims_total,
        }
    }

    /// Products with queued jobs, the longest queue first.
    pub fn queue_by_product(&self) -> Vec<(&str, usize)> {
        let mut q: Vec<(&str, usize)> = self
            .queued_by_product
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(p, n)| (p.as_str(), *n))
            .collect();
        q.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        q
    }
}

/// One refresh: everything the panes show but the events, read together.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub cluster: Cluster,
    pub factories: Vec<FactoryRow>,
    pub stats: Stats,
    /// The jobs holding a lease (leased, running, preempting).
    pub jobs: Vec<JobView>,
    /// Whether `jobs` came from the whole store (see `fetch::LEASED_PAGES_MAX`).
    pub jobs_complete: bool,
}

impl Fleet {
    /// The name of the factory with `id`, if it is listed.
    pub fn factory_name(&self, id: &str) -> Option<&str> {
        self.factories
            .iter()
            .find(|f| f.id == id)
            .map(|f| f.name.as_str())
    }

    /// The jobs whose lease `factory` holds, the longest held first.
    pub fn jobs_of(&self, factory: &FactoryRow) -> Vec<&JobView> {
        let mut jobs: Vec<&JobView> = self
            .jobs
            .iter()
            .filter(|j| {
                j.lease
                    .as_ref()
                    .is_some_and(|l| l.factory_id.to_string() == factory.id)
            })
            .collect();
        jobs.sort_by_key(|j| j.lease.as_ref().map(|l| l.granted_at));
        jobs
    }
}

/// The column the factories pane is ordered by; `s` moves to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    #[default]
    Name,
    /// Online, draining, offline, revoked.
    Status,
    /// The most busy slots first.
    Busy,
    /// The longest silent first.
    Heartbeat,
}

impl SortBy {
    pub fn next(self) -> Self {
        match self {
            SortBy::Name => SortBy::Status,
            SortBy::Status => SortBy::Busy,
            SortBy::Busy => SortBy::Heartbeat,
            SortBy::Heartbeat => SortBy::Name,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SortBy::Name => "name",
            SortBy::Status => "status",
            SortBy::Busy => "busy slots",
            SortBy::Heartbeat => "heartbeat age",
        }
    }
}

/// Where a status sorts: those at work first, those shut out last.
fn status_rank(status: &str) -> u8 {
    match status {
        "online" => 0,
        "draining" => 1,
        "offline" => 2,
        "revoked" => 3,
        _ => 4,
    }
}

/// Whether `f` matches what was typed after `/`: a case-insensitive part of its name or of
/// one of its capabilities; an empty filter matches every factory.
pub fn matches_filter(f: &FactoryRow, filter: &str) -> bool {
    let filter = filter.trim().to_lowercase();
    filter.is_empty()
        || f.name.to_lowercase().contains(&filter)
        || f.capabilities
            .iter()
            .any(|c| c.to_lowercase().contains(&filter))
}

/// The factories the pane lists: those matching `filter`, in the order of `sort`, ties by
/// name then id so that the rows stay put between refreshes.
pub fn visible_factories<'a>(
    factories: &'a [FactoryRow],
    sort: SortBy,
    filter: &str,
) -> Vec<&'a FactoryRow> {
    let mut rows: Vec<&FactoryRow> = factories
        .iter()
        .filter(|f| matches_filter(f, filter))
        .collect();
    rows.sort_by(|a, b| {
        let by = match sort {
            SortBy::Name => std::cmp::Ordering::Equal,
            SortBy::Status => status_rank(&a.status).cmp(&status_rank(&b.status)),
            SortBy::Busy => b.slots_busy.cmp(&a.slots_busy),
            SortBy::Heartbeat => a.last_heartbeat.cmp(&b.last_heartbeat),
        };
        by.then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.id.cmp(&b.id))
    });
    rows
}

/// One reading of the counters behind throughput, at the coordinator's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub at: Millis,
    pub finished: u64,
    pub claims: u64,
}

/// Jobs finished and claims made per second between two readings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub finished_per_s: f64,
    pub claims_per_s: f64,
    /// How long the rates are averaged over.
    pub over_ms: u64,
}

/// The rates between `earlier` and `later`; none when time did not advance or a counter went
/// back (the node restarted, or another node behind a load balancer answered: its counters
/// are its own).
pub fn rates(earlier: Counters, later: Counters) -> Option<Rates> {
    if later.at <= earlier.at || later.finished < earlier.finished || later.claims < earlier.claims
    {
        return None;
    }
    let over_ms = later.at - earlier.at;
    let secs = over_ms as f64 / 1_000.0;
    Some(Rates {
        finished_per_s: (later.finished - earlier.finished) as f64 / secs,
        claims_per_s: (later.claims - earlier.claims) as f64 / secs,
        over_ms,
    })
}

/// The readings throughput is averaged over: the newest, and the oldest within
/// [`RATE_WINDOW_MS`] of it (or the one just before, when readings are sparse).
#[derive(Debug, Default)]
pub struct Throughput {
    readings: VecDeque<Counters>,
}

impl Throughput {
    pub fn push(&mut self, c: Counters) {
        if let Some(last) = self.readings.back() {
            if c.at == last.at {
                return;
            }
            if rates(*last, c).is_none() {
                // The counters started again: readings from before say nothing about now.
                self.readings.clear();
            }
        }
        self.readings.push_back(c);
        let start = c.at.saturating_sub(RATE_WINDOW_MS);
        while self.readings.len() > 2 && self.readings[1].at <= start {
            self.readings.pop_front();
        }
    }

    pub fn rates(&self) -> Option<Rates> {
        rates(*self.readings.front()?, *self.readings.back()?)
    }
}

/// A rate for a narrow column: "0/s", "0.4/s", "12/s", "1.3k/s".
pub fn per_second(rate: f64) -> String {
    if rate <= 0.0 {
        "0/s".into()
    } else if rate < 10.0 {
        format!("{rate:.1}/s")
    } else if rate < 1_000.0 {
        format!("{rate:.0}/s")
    } else {
        format!("{:.1}k/s", rate / 1_000.0)
    }
}

/// How long before `now` the moment `at` was, in its two largest units ("4s", "2m 10s");
/// under a second, or ahead of `now` (clocks of two nodes apart), "<1s".
pub fn age(now: Millis, at: Millis) -> String {
    match now.checked_sub(at) {
        Some(ago) if ago >= 1_000 => span(ago),
        _ => "<1s".into(),
    }
}

/// The last eight characters of an id, as the panes show ids: a UUIDv7 begins with its time,
/// so ids made together share their first characters and differ in their last.
pub fn short(id: &str) -> &str {
    id.get(id.len().saturating_sub(8)..).unwrap_or(id)
}

/// `text` from the API or a job's output made safe to draw: escape sequences (colours, cursor
/// moves) and other control characters removed, tabs as spaces. A job's own colour codes
/// would otherwise move the cursor of the terminal `top` draws on.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                // CSI (`ESC [ ... final`) runs to its final byte; other escapes are two chars.
                if chars.next_if_eq(&'[').is_some() {
                    while chars.next().is_some_and(|c| !('@'..='~').contains(&c)) {}
                } else {
                    chars.next();
                }
            }
            '\t' => out.push_str("    "),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn factory(
        name: &str,
        status: &str,
        busy: u32,
        heartbeat: Millis,
        caps: &[&str],
    ) -> FactoryRow {
        FactoryRow {
            id: format!("id-{name}"),
            name: name.into(),
            status: status.into(),
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
            slots: 4,
            slots_busy: busy,
            last_heartbeat: heartbeat,
        }
    }

    fn names(rows: &[&FactoryRow]) -> Vec<String> {
        rows.iter().map(|f| f.name.clone()).collect()
    }

    #[test]
    fn each_sort_column_orders_the_factories_and_ties_go_by_name() {
        let fs = vec![
            factory("c", "offline", 0, 100, &[]),
            factory("a", "draining", 2, 300, &[]),
            factory("d", "online", 2, 200, &[]),
            factory("b", "online", 1, 400, &[]),
        ];
        let by = |s| names(&visible_factories(&fs, s, ""));
        assert_eq!(by(SortBy::Name), ["a", "b", "c", "d"]);
        assert_eq!(by(SortBy::Status), ["b", "d", "a", "c"]);
        assert_eq!(by(SortBy::Busy), ["a", "d", "b", "c"]);
        assert_eq!(by(SortBy::Heartbeat), ["c", "d", "a", "b"]);
    }

    #[test]
    fn the_sort_column_cycles_through_all_four() {
        let mut s = SortBy::default();
        let mut seen = vec![s];
        for _ in 0..3 {
            s = s.next();
            seen.push(s);
        }
        assert_eq!(
            seen,
            [
                SortBy::Name,
                SortBy::Status,
                SortBy::Busy,
                SortBy::Heartbeat
            ]
        );
        assert_eq!(s.next(), SortBy::Name);
    }

    #[test]
    fn the_filter_matches_a_part_of_the_name_or_a_capability_ignoring_case() {
        let fs = vec![
            factory("gpu-box", "online", 0, 0, &["linux"]),
            factory("mac-1", "online", 0, 0, &["macos", "Xcode"]),
            factory("plain", "online", 0, 0, &["linux"]),
        ];
        let only = |f| names(&visible_factories(&fs, SortBy::Name, f));
        assert_eq!(only("GPU"), ["gpu-box"]);
        assert_eq!(only("xcode"), ["mac-1"]);
        assert_eq!(only("linux"), ["gpu-box", "plain"]);
        assert_eq!(only("  "), ["gpu-box", "mac-1", "plain"]);
        assert!(only("windows").is_empty());
    }

    #[test]
    fn rates_are_deltas_over_the_time_between_readings() {
        let a = Counters {
            at: 10_000,
            finished: 5,
            claims: 8,
        };
        let b = Counters {
            at: 12_000,
            finished: 9,
            claims: 9,
        };
        assert_eq!(
            rates(a, b),
            Some(Rates {
                finished_per_s: 2.0,
                claims_per_s: 0.5,
                over_ms: 2_000
            })
        );
    }

    #[test]
    fn no_rate_when_time_stands_still_or_a_counter_goes_back() {
        let a = Counters {
            at: 10_000,
            finished: 5,
            claims: 8,
        };
        assert_eq!(rates(a, a), None);
        let restarted = Counters {
            at: 11_000,
            finished: 0,
            claims: 9,
        };
        assert_eq!(rates(a, restarted), None);
    }

    #[test]
    fn throughput_averages_over_the_window_and_starts_again_after_a_reset() {
        let mut t = Throughput::default();
        assert_eq!(t.rates(), None);
        for s in 0..=20u64 {
            t.push(Counters {
                at: s * 1_000,
                finished: s * 3,
                claims: s,
            });
        }
        let r = t.rates().unwrap();
        assert_eq!(r.over_ms, RATE_WINDOW_MS);
        assert_eq!((r.finished_per_s, r.claims_per_s), (3.0, 1.0));
        t.push(Counters {
            at: 21_000,
            finished: 1,
            claims: 1,
        });
        assert_eq!(t.rates(), None, "one reading since the reset");
        t.push(Counters {
            at: 22_000,
            finished: 3,
            claims: 1,
        });
        assert_eq!(t.rates().unwrap().finished_per_s, 2.0);
    }

    #[test]
    fn throughput_spans_a_gap_longer_than_the_window() {
        let mut t = Throughput::default();
        for (at, finished) in [(0, 0), (60_000, 120)] {
            t.push(Counters {
                at,
                finished,
                claims: 0,
            });
        }
        let r = t.rates().unwrap();
        assert_eq!((r.over_ms, r.finished_per_s), (60_000, 2.0));
    }

    #[test]
    fn rates_read_in_a_narrow_column() {
        assert_eq!(per_second(0.0), "0/s");
        assert_eq!(per_second(0.44), "0.4/s");
        assert_eq!(per_second(12.4), "12/s");
        assert_eq!(per_second(1_250.0), "1.2k/s");
    }

    #[test]
    fn ages_read_in_two_units_and_a_clock_ahead_reads_as_under_a_second() {
        assert_eq!(age(10_000, 9_500), "<1s");
        assert_eq!(age(10_000, 12_000), "<1s");
        assert_eq!(age(10_000, 6_000), "4s");
        assert_eq!(age(200_000, 70_000), "2m 10s");
    }

    #[test]
    fn ids_made_together_read_apart_by_their_last_characters() {
        assert_eq!(short("01a2387a-946e-76f8-ba4a-093bc6fe2c28"), "c6fe2c28");
        assert_eq!(short("01a2387a-946e-76f8-ba4a-093c29cb6715"), "29cb6715");
        assert_eq!(short("abc"), "abc");
    }

    #[test]
    fn escape_sequences_and_control_characters_are_not_drawn() {
        assert_eq!(printable("\x1b[31mred\x1b[0m ok"), "red ok");
        assert_eq!(printable("a\tb\r\x07c"), "a    bc");
        assert_eq!(printable("\x1b7saved"), "saved");
        assert_eq!(printable("ünïcode ✓"), "ünïcode ✓");
    }

    #[test]
    fn the_queue_lists_products_with_queued_jobs_longest_first() {
        let stats = Stats {
            now: 0,
            slots: 0,
            slots_busy: 0,
            queued: 7,
            queued_by_product: [("a", 2), ("b", 5), ("c", 0), ("d", 2)]
                .into_iter()
                .map(|(p, n)| (p.to_string(), n))
                .collect(),
            running: 0,
            finished_total: 0,
            claims_total: 0,
            claim_latency_p50_ms: None,
            claim_latency_p99_ms: None,
        };
        assert_eq!(stats.queue_by_product(), [("b", 5), ("a", 2), ("d", 2)]);
    }
}

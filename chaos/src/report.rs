//! The figures of a run, computed from its history and the checker's verdict: faults by kind,
//! jobs, throughput during and outside faults, recovery times and violations.

use gigafactory_core::event::EventKind;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::checker::{Invariant, Verdict, Violation};
use crate::history::{History, Millis};

/// How long a fault's effects are counted after it ends, for throughput during faults: a
/// stopped or killed holder's leases run out up to one lease TTL later, and an actor panic
/// lasts only milliseconds but its restart does not.
pub const FAULT_AFTERMATH_MS: u64 = 3_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub seed: u64,
    pub command: String,
    /// How long the workload submitted jobs, in seconds.
    pub duration_secs: f64,
    pub faults_total: usize,
    pub faults_by_kind: BTreeMap<String, usize>,
    pub jobs: Jobs,
    pub throughput: Throughput,
    pub recovery: Recovery,
    /// Stale factory writes the coordinator refused (`409 fenced`).
    pub fenced_refusals: usize,
    /// Requests recorded in the factories' journals, and those about a job whose stored
    /// timeline they were checked against (heartbeats and empty claims concern none).
    #[serde(default)]
    pub factory_requests: usize,
    #[serde(default)]
    pub factory_requests_matched: usize,
    /// `C1`.. → number of violations.
    pub invariants: BTreeMap<String, usize>,
    pub violation_count: usize,
    pub violations: Vec<Violation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Jobs {
    pub submitted: usize,
    pub acknowledged: usize,
    pub unacknowledged: usize,
    pub succeeded: usize,
    pub dead: usize,
    pub other_terminal: usize,
    pub still_queued: usize,
    pub still_running: usize,
    pub other_open: usize,
}

/// Succeeded jobs per second, by the time of their `complete` event within the workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Over the whole run, settling included.
    pub overall_per_sec: f64,
    /// Inside fault windows (each extended by [`FAULT_AFTERMATH_MS`]) during the workload.
    pub during_faults_per_sec: f64,
    /// During the workload, outside those windows.
    pub outside_faults_per_sec: f64,
    pub fault_time_secs: f64,
    pub clear_time_secs: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// Node kill → the live nodes show no shard owned by the dead node.
    pub node_kill_to_shards_reowned_ms: Stats,
    /// A partition that outlasts the node lease → no shard owned by the cut-off node.
    #[serde(default)]
    pub partition_to_shards_reowned_ms: Stats,
    /// For each `expire` event: its time minus the previous claim's.
    pub claim_to_expiry_ms: Stats,
    /// For each `expire` event followed by a claim: the time until that claim.
    pub expiry_to_reclaim_ms: Stats,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub count: usize,
    pub min: Option<u64>,
    pub median: Option<u64>,
    pub max: Option<u64>,
}

impl Stats {
    fn of(mut xs: Vec<u64>) -> Stats {
        xs.sort_unstable();
        Stats {
            count: xs.len(),
            min: xs.first().copied(),
            median: xs.get(xs.len() / 2).copied(),
            max: xs.last().copied(),
        }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.min, self.median, self.max) {
            (Some(a), Some(m), Some(b)) => write!(
                f,
                "{} samples, min {a} ms, median {m} ms, max {b} ms",
                self.count
            ),
            _ => write!(f, "no samples"),
        }
    }
}

/// Builds the report of `history` as judged by `verdict`.
pub fn build(history: &History, verdict: &Verdict) -> Report {
    let mut faults_by_kind = BTreeMap::new();
    for f in &history.faults {
        *faults_by_kind.entry(f.kind.clone()).or_insert(0) += 1;
    }
    let acked = history
        .submits
        .iter()
        .filter(|s| s.acked_id().is_some())
        .count();
    let invariants = Invariant::ALL
        .iter()
        .map(|i| (i.to_string(), verdict.violations_of(*i)))
        .collect();
    Report {
        seed: history.seed,
        command: history.command.clone(),
        duration_secs: secs(history.workload_ended_at.saturating_sub(history.started_at)),
        faults_total: history.faults.len(),
        faults_by_kind,
        jobs: Jobs {
            submitted: verdict.submitted,
            acknowledged: verdict.acknowledged,
            unacknowledged: history.submits.len() - acked,
            succeeded: verdict.succeeded,
            dead: verdict.dead,
            other_terminal: verdict.other_terminal,
            still_queued: verdict.still_queued,
            still_running: verdict.still_running,
            other_open: verdict.other_open,
        },
        throughput: throughput(history),
        recovery: recovery(history),
        fenced_refusals: history.fenced_refusals(),
        factory_requests: verdict.factory_requests,
        factory_requests_matched: verdict.factory_requests_matched,
        invariants,
        violation_count: verdict.violations.len(),
        violations: verdict.violations.clone(),
    }
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1_000.0
}

fn per_sec(n: usize, ms: u64) -> f64 {
    if ms == 0 { 0.0 } else { n as f64 / secs(ms) }
}

fn throughput(h: &History) -> Throughput {
    let (from, to) = (h.started_at, h.workload_ended_at.max(h.started_at));
    // Fault windows clipped to the workload and merged, so overlapping faults count once.
    let mut windows: Vec<(Millis, Millis)> = h
        .faults
        .iter()
        .map(|f| {
            (
                f.start.clamp(from, to),
                (f.end + FAULT_AFTERMATH_MS).clamp(from, to),
            )
        })
        .filter(|(a, b)| b > a)
        .collect();
    windows.sort_unstable();
    let mut merged: Vec<(Millis, Millis)> = Vec::new();
    for (a, b) in windows {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    let fault_ms: u64 = merged.iter().map(|(a, b)| b - a).sum();
    let clear_ms = (to - from).saturating_sub(fault_ms);
    let completions: Vec<Millis> = h
        .jobs
        .iter()
        .filter(|j| j.state.as_deref() == Some("succeeded"))
        .filter_map(|j| {
            j.events
                .iter()
                .find(|e| e.kind == EventKind::Complete)
                .map(|e| e.at)
        })
        .collect();
    let in_workload: Vec<Millis> = completions
        .iter()
        .copied()
        .filter(|t| (from..to).contains(t))
        .collect();
    let during = in_workload
        .iter()
        .filter(|t| merged.iter().any(|(a, b)| (*a..*b).contains(*t)))
        .count();
    Throughput {
        overall_per_sec: per_sec(
            completions.len(),
            h.ended_at.max(h.workload_ended_at) - from,
        ),
        during_faults_per_sec: per_sec(during, fault_ms),
        outside_faults_per_sec: per_sec(in_workload.len() - during, clear_ms),
        fault_time_secs: secs(fault_ms),
        clear_time_secs: secs(clear_ms),
    }
}

fn recovery(h: &History) -> Recovery {
    let reowned = |kind: &str| {
        h.faults
            .iter()
            .filter(|f| f.kind == kind)
            .filter_map(|f| f.recovered_after_ms)
            .collect()
    };
    let mut to_expiry = Vec::new();
    let mut to_reclaim = Vec::new();
    for job in &h.jobs {
        let mut events: Vec<_> = job.events.iter().collect();
        events.sort_by_key(|e| e.seq);
        let mut last_claim = None;
        let mut pending_expiry = None;
        for e in events {
            match e.kind {
                EventKind::Claim => {
                    if let Some(x) = pending_expiry.take() {
                        to_reclaim.push(e.at.saturating_sub(x));
                    }
                    last_claim = Some(e.at);
                }
                EventKind::Expire => {
                    if let Some(c) = last_claim {
                        to_expiry.push(e.at.saturating_sub(c));
                    }
                    pending_expiry = Some(e.at);
                }
                _ => {}
            }
        }
    }
    Recovery {
        node_kill_to_shards_reowned_ms: Stats::of(reowned("node_kill")),
        partition_to_shards_reowned_ms: Stats::of(reowned("net_partition")),
        claim_to_expiry_ms: Stats::of(to_expiry),
        expiry_to_reclaim_ms: Stats::of(to_reclaim),
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "chaos run, seed {}", self.seed)?;
        writeln!(f, "  reproduce: {}", self.command)?;
        writeln!(f, "  workload: {:.1} s", self.duration_secs)?;
        let kinds: Vec<String> = self
            .faults_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        writeln!(f, "  faults: {} ({})", self.faults_total, kinds.join(", "))?;
        let j = &self.jobs;
        writeln!(
            f,
            "  jobs: {} submitted, {} acknowledged ({} not), {} succeeded, {} dead, {} other \
             terminal, {} still queued, {} still running, {} other open",
            j.submitted,
            j.acknowledged,
            j.unacknowledged,
            j.succeeded,
            j.dead,
            j.other_terminal,
            j.still_queued,
            j.still_running,
            j.other_open
        )?;
        let t = &self.throughput;
        writeln!(
            f,
            "  throughput: {:.2} jobs/s overall; {:.2} jobs/s during faults ({:.1} s), {:.2} \
             jobs/s outside ({:.1} s)",
            t.overall_per_sec,
            t.during_faults_per_sec,
            t.fault_time_secs,
            t.outside_faults_per_sec,
            t.clear_time_secs
        )?;
        let r = &self.recovery;
        writeln!(
            f,
            "  node kill -> shards re-owned: {}",
            r.node_kill_to_shards_reowned_ms
        )?;
        if r.partition_to_shards_reowned_ms.count > 0 {
            writeln!(
                f,
                "  partition -> shards re-owned: {}",
                r.partition_to_shards_reowned_ms
            )?;
        }
        writeln!(f, "  claim -> lease expired: {}", r.claim_to_expiry_ms)?;
        writeln!(f, "  expired -> claimed again: {}", r.expiry_to_reclaim_ms)?;
        writeln!(
            f,
            "  stale factory writes refused (409 fenced): {}",
            self.fenced_refusals
        )?;
        writeln!(
            f,
            "  factory requests recorded: {} ({} checked against a job's stored timeline)",
            self.factory_requests, self.factory_requests_matched
        )?;
        for inv in Invariant::ALL {
            writeln!(
                f,
                "  {inv} {}: {} violations",
                inv.statement(),
                self.invariants.get(&inv.to_string()).copied().unwrap_or(0)
            )?;
        }
        for v in &self.violations {
            writeln!(f, "  VIOLATION {v}")?;
        }
        write!(f, "  violations: {}", self.violation_count)
    }
}

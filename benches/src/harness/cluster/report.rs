//! What the cluster comparison prints and writes: (a) and (b) side by side, etcd's figures for
//! (b) and (c), the failover timeline of (c) with its per-second throughput series, and the
//! same figures as JSON for `--json`.

use std::time::Instant;

use serde_json::json;

use super::etcd::EtcdFigures;
use super::figures::{bar, per_bucket, rate_between, window};
use super::{ETCD_MEMBERS, KILL_AT_SHARE, KillTimeline, NODES, Phase, VICTIM};
use crate::harness::load::{self, Workload};
use crate::stats::cell;

/// Width of one bucket of the throughput series around the kill.
const BUCKET_MS: u64 = 1_000;
/// Seconds of the series printed one by one before the kill and after the restarted node owns
/// shards again; the rest is summed up in one line each.
const SERIES_BEFORE_SECS: usize = 10;
const SERIES_AFTER_SECS: usize = 20;
/// Width of the series' bars.
const BAR_WIDTH: usize = 40;

/// Milliseconds from `from` to `to`, when both happened in that order.
fn ms_between(from: Option<Instant>, to: Option<Instant>) -> Option<u64> {
    let (from, to) = (from?, to?);
    Some(to.checked_duration_since(from)?.as_millis() as u64)
}

/// The figures of (a), (b) and (c) and the kill's timeline, for `--json`.
pub(super) fn json(
    w: &Workload,
    lease_ttl_ms: Option<u64>,
    [embedded, clustered, killed]: [&Phase; 3],
    timeline: &KillTimeline,
) -> serde_json::Value {
    json!({
        "jobs": w.jobs,
        "factories": w.factories,
        "slots": w.slots,
        "submitters": w.submitters,
        "renew": w.renew,
        "lease_ttl_ms": lease_ttl_ms,
        "node_lease_ttl_ms": timeline.node_lease_ttl_ms,
        "embedded": phase_json(embedded),
        "cluster": phase_json(clustered),
        "kill": {
            "phase": phase_json(killed),
            "failover_ms": ms_between(timeline.killed, timeline.reowned),
            "declared_dead_ms": ms_between(timeline.killed, timeline.declared_dead),
            "restart_ready_ms": ms_between(timeline.killed, timeline.restarted),
            "rejoined_ms": ms_between(timeline.killed, timeline.rejoined),
            "jobs_per_s_by_second": per_bucket(&killed.m.completions_ms, BUCKET_MS),
            "killed_at_ms": ms_between(Some(killed.m.started), timeline.killed),
            "note": timeline.note,
        },
    })
}

fn phase_json(p: &Phase) -> serde_json::Value {
    let m = &p.m;
    let extra = json!({
        "claim_commit_p50_ms": p.claim_commit.0.map(|s| s * 1e3),
        "claim_commit_p99_ms": p.claim_commit.1.map(|s| s * 1e3),
        "queued_mean": p.queued.0,
        "queued_max": p.queued.1,
        "etcd": p.etcd.as_ref().map(|e| {
            let jobs = m.completed.max(1) as f64;
            json!({
                "range_rpcs_per_job": e.range_rpcs / jobs,
                "txn_rpcs_per_job": e.txn_rpcs / jobs,
                "sent_bytes_per_job": e.sent_bytes / jobs,
                "proposals_per_job": e.proposals / jobs,
                "wal_fsyncs": e.fsync.count(),
                "wal_fsync_mean_ms": e.fsync.mean().map(|s| s * 1e3),
                "backend_commit_mean_ms": e.backend_commit.mean().map(|s| s * 1e3),
                "peer_rtt_mean_ms": e.peer_rtt.mean().map(|s| s * 1e3),
                "db_bytes": e.db_bytes,
            })
        }),
        "failovers": m.failovers,
        "lost_claims": m.lost_claims,
        "coordinators_cpu_pct": m.cpu.coordinator,
        "etcd_cpu_pct": m.cpu.store,
    });
    m.json(&p.stored, extra)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a > 0.0 => format!("{:.2}", b / a),
        _ => "-".into(),
    }
}

pub(super) fn print_comparison(w: &Workload, a: &Phase, b: &Phase) {
    println!();
    println!(
        "  same workload: {} jobs, {} factories × {} slots, {} submitters",
        w.jobs, w.factories, w.slots, w.submitters
    );
    println!(
        "  {:<34} {:>11} {:>11} {:>11}",
        "", "embedded", "cluster", "cluster/emb"
    );
    let row = |name: &str, x: Option<f64>, y: Option<f64>| {
        println!(
            "  {name:<34} {:>11} {:>11} {:>11}",
            cell(x),
            cell(y),
            ratio(x, y)
        );
    };
    row(
        "throughput (jobs/s)",
        Some(a.m.jobs_per_sec()),
        Some(b.m.jobs_per_sec()),
    );
    row("wall time (s)", Some(a.m.elapsed), Some(b.m.elapsed));
    for (name, la, lb) in [
        ("submit", &a.m.submit, &b.m.submit),
        ("claim", &a.m.claim, &b.m.claim),
        ("renew", &a.m.renew, &b.m.renew),
        ("complete", &a.m.complete, &b.m.complete),
    ] {
        row(&format!("{name} p50 (ms)"), la.ms(0.50), lb.ms(0.50));
        row(&format!("{name} p99 (ms)"), la.ms(0.99), lb.ms(0.99));
    }
    let ms = |s: Option<f64>| s.map(|s| s * 1e3);
    row(
        "claim commit p50 (ms, node 0)",
        ms(a.claim_commit.0),
        ms(b.claim_commit.0),
    );
    row(
        "claim commit p99 (ms, node 0)",
        ms(a.claim_commit.1),
        ms(b.claim_commit.1),
    );
    row(
        "CPU coordinator node(s) (%)",
        a.m.cpu.coordinator,
        b.m.cpu.coordinator,
    );
    row("CPU etcd members (%)", a.m.cpu.store, b.m.cpu.store);
    row("CPU bench client (%)", a.m.cpu.client, b.m.cpu.client);
    row("CPU other processes (%)", a.m.cpu.others, b.m.cpu.others);
    row("CPU machine busy (%)", a.m.cpu.machine, b.m.cpu.machine);
    row("queued jobs, mean (node 0)", a.queued.0, b.queued.0);
    row("queued jobs, max (node 0)", a.queued.1, b.queued.1);
    row(
        "retries",
        Some(a.m.retries as f64),
        Some(b.m.retries as f64),
    );
    println!(
        "  (CPU in % of one core; the machine has {} cores)",
        b.m.cpu.cores
    );
}

/// etcd's own counters during (b) and (c), all members together.
pub(super) fn print_etcd(b: &Phase, c: &Phase) {
    let (Some(eb), Some(ec)) = (&b.etcd, &c.etcd) else {
        return;
    };
    println!();
    println!(
        "  etcd, all {ETCD_MEMBERS} members          {:>12} {:>12}",
        "(b) cluster", "(c) kill"
    );
    let row = |name: &str, f: &dyn Fn(&Phase, &EtcdFigures) -> Option<f64>| {
        println!(
            "    {name:<28} {:>12} {:>12}",
            cell(f(b, eb)),
            cell(f(c, ec))
        );
    };
    let per_job = |p: &Phase, v: f64| Some(v / p.m.completed.max(1) as f64);
    let per_sec = |p: &Phase, v: f64| Some(v / p.m.elapsed.max(1e-9));
    let ms = |s: Option<f64>| s.map(|s| s * 1e3);
    row("Range RPCs per job", &|p, e| per_job(p, e.range_rpcs));
    row("Txn RPCs per job", &|p, e| per_job(p, e.txn_rpcs));
    row("KiB sent to clients per job", &|p, e| {
        per_job(p, e.sent_bytes / 1024.0)
    });
    row("raft proposals per job", &|p, e| per_job(p, e.proposals));
    row("raft proposals per s", &|p, e| per_sec(p, e.proposals));
    row("WAL fsyncs per s", &|p, e| per_sec(p, e.fsync.count()));
    row("WAL fsync mean (ms)", &|_, e| ms(e.fsync.mean()));
    row("WAL fsync p50 at most (ms)", &|_, e| {
        ms(e.fsync.quantile_at_most(0.50))
    });
    row("WAL fsync p99 at most (ms)", &|_, e| {
        ms(e.fsync.quantile_at_most(0.99))
    });
    row("backend commit mean (ms)", &|_, e| {
        ms(e.backend_commit.mean())
    });
    row("peer round trip mean (ms)", &|_, e| ms(e.peer_rtt.mean()));
    row("database at the end (MiB)", &|_, e| {
        Some(e.db_bytes / (1024.0 * 1024.0))
    });
    row("CPU of the members (%)", &|p, _| p.m.cpu.store);
    println!();
}

pub(super) fn print_kill(p: &Phase, t: &KillTimeline, lease_ttl_ms: Option<u64>) {
    let m = &p.m;
    let at = |i: Option<Instant>| ms_between(Some(m.started), i);
    let secs =
        |ms: Option<u64>| ms.map_or_else(|| "-".into(), |ms| format!("{:.2} s", ms as f64 / 1e3));
    println!();
    println!(
        "  (c) node {VICTIM} of {NODES} SIGKILLed after {:.0} % of the jobs, restarted once its \
         shards were re-owned",
        KILL_AT_SHARE * 100.0
    );
    println!(
        "    throughput           {:.0} jobs/s over the whole run ({} jobs in {:.2} s)",
        m.jobs_per_sec(),
        m.completed,
        m.elapsed
    );
    println!(
        "    failover             {} from the kill to every shard owned by a live node \
         (target ≤ {}: twice the node lease TTL); declared dead after {}",
        secs(ms_between(t.killed, t.reowned)),
        secs(t.node_lease_ttl_ms.map(|ttl| 2 * ttl)),
        secs(ms_between(t.killed, t.declared_dead)),
    );
    println!(
        "    restart              ready {} after the kill, owning shards again after {}",
        secs(ms_between(t.killed, t.restarted)),
        secs(ms_between(t.killed, t.rejoined)),
    );
    println!(
        "    clients              {} moved to another node, {} claims lost with the node \
         (a lease they got waits out the lease TTL, {}), {} retries",
        m.failovers,
        m.lost_claims,
        lease_ttl_ms.map_or_else(|| "the coordinators' default".into(), |t| format!("{t} ms")),
        m.retries
    );
    if let Some(note) = &t.note {
        println!("    note                 {note}");
    }
    let end = m.completions_ms.last().copied().unwrap_or(0) + 1;
    let windows = [
        ("before the kill", Some(0), at(t.killed)),
        ("kill → re-owned", at(t.killed), at(t.reowned)),
        ("re-owned → restarted", at(t.reowned), at(t.restarted)),
        ("restarted → end", at(t.restarted), Some(end)),
    ];
    for (name, from, to) in windows {
        if let (Some(from), Some(to)) = (from, to) {
            println!(
                "    {name:<20} {} jobs/s ({:.2} s)",
                cell(rate_between(&m.completions_ms, from, to)),
                to.saturating_sub(from) as f64 / 1e3
            );
        }
    }
    let buckets = per_bucket(&m.completions_ms, BUCKET_MS);
    let max = buckets.iter().copied().max().unwrap_or(0);
    let events = [
        ("killed", at(t.killed)),
        ("declared dead", at(t.declared_dead)),
        ("re-owned", at(t.reowned)),
        ("restarted", at(t.restarted)),
        ("owns shards", at(t.rejoined)),
    ];
    let event_buckets: Vec<usize> = events
        .iter()
        .filter_map(|(_, at)| at.map(|at| (at / BUCKET_MS) as usize))
        .collect();
    let shown = window(
        buckets.len(),
        &event_buckets,
        SERIES_BEFORE_SECS * 1000 / BUCKET_MS as usize,
        SERIES_AFTER_SECS * 1000 / BUCKET_MS as usize,
    );
    let secs_of = |bucket: usize| bucket as u64 * BUCKET_MS / 1000;
    let summed = |range: std::ops::Range<usize>| {
        if !range.is_empty() {
            let (from, to) = (range.start as u64 * BUCKET_MS, range.end as u64 * BUCKET_MS);
            println!(
                "    {:>3}-{:<3}  {:>6}  (mean, not shown per second)",
                secs_of(range.start),
                secs_of(range.end),
                rate_between(&m.completions_ms, from, to)
                    .map_or_else(|| "-".into(), |r| format!("{r:.0}")),
            );
        }
    };
    println!("    t (s)    jobs/s");
    summed(0..shown.start);
    for i in shown.clone() {
        let span = i as u64 * BUCKET_MS..(i as u64 + 1) * BUCKET_MS;
        let marks: Vec<&str> = events
            .iter()
            .filter(|(_, at)| at.is_some_and(|at| span.contains(&at)))
            .map(|(name, _)| *name)
            .collect();
        let n = buckets[i];
        let rate = n as f64 * 1000.0 / BUCKET_MS as f64;
        println!(
            "    {:>7}  {rate:>6.0}  {:<BAR_WIDTH$} {}",
            secs_of(i),
            bar(n, max, BAR_WIDTH),
            if marks.is_empty() {
                String::new()
            } else {
                format!("← {}", marks.join(", "))
            }
        );
    }
    summed(shown.end..buckets.len());
    println!("  check (c) node kill  {}", load::check(m, &p.stored));
}

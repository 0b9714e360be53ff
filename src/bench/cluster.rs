//! `gigafactory bench --compare-cluster`: the same workload, in one invocation,
//! (a) on one node with an embedded store, (b) on three nodes sharing a three-member local etcd
//! with the simulated factories and submitters spread over the nodes, and (c) on that cluster
//! again while one node is SIGKILLed once a third of the jobs completed and restarted once its
//! shards are re-owned. Prints (a) and (b) side by side with etcd's own figures (RPCs per job,
//! raft proposals, WAL fsync and backend commit latency), then for (c) the failover time (kill
//! to every shard owned by a live node, as a live node's `/v1/cluster` shows it) and the
//! throughput per second around the kill.
//!
//! Every phase keeps the single mode's guarantees: loopback only, bounded waits, the store's
//! count checked (each job succeeded once). The etcd members die with this process
//! (`PR_SET_PDEATHSIG`), the nodes when their handles drop, so no way out leaves one behind.
//! Submits carry an idempotency key in all three phases, so that one whose node died can be
//! sent again elsewhere; that makes each submit one read and one write dearer than in the
//! single mode.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use gigafactory_core::cluster::{NodeRecord, SHARDS, ShardLease};
use gigafactory_storage::LocalEtcdCluster;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::BenchArgs;
use super::child::{ChildNode, ScratchDir};
use super::figures::{Histogram, bar, per_bucket, rate_between, sum_of, summary_quantile, window};
use super::load::{self, Measured, Shared, Workload};
use super::procfs::{Watched, children_named, loadavg};

/// Coordinator nodes and etcd members of the cluster.
const NODES: usize = 3;
const ETCD_MEMBERS: usize = 3;
/// Key prefix of the cluster's store in etcd.
const NAMESPACE: &str = "bench/";
/// The node phase (c) kills; node 0 is never killed, as the bench asks it for the cluster view
/// and the verification.
const VICTIM: usize = 2;
const OBSERVER: usize = 0;
/// Share of the jobs completed when the node is killed.
const KILL_AT_SHARE: f64 = 1.0 / 3.0;
/// Pause between two looks at the completed count or the cluster view.
const WATCH_PAUSE_MS: u64 = 20;
/// How long the nodes have to join and share the shards before (b) starts.
const SETTLE_DEADLINE_SECS: u64 = 60;
/// How long a killed node's shards may take to be re-owned, and a restarted node to own
/// shards again, before the bench stops waiting (and says so).
const REOWN_DEADLINE_SECS: u64 = 30;
/// Width of one bucket of the throughput series around the kill.
const BUCKET_MS: u64 = 1_000;
/// Seconds of the series printed one by one before the kill and after the restarted node owns
/// shards again; the rest is summed up in one line each.
const SERIES_BEFORE_SECS: usize = 10;
const SERIES_AFTER_SECS: usize = 20;
/// Pause between two samples of the scheduler index's depth.
const QUEUE_SAMPLE_MS: u64 = 500;
/// Width of the series' bars.
const BAR_WIDTH: usize = 40;

/// The part of `/v1/cluster` the bench reads.
#[derive(Deserialize)]
struct ClusterView {
    this_node: Uuid,
    /// `(alive, record)`.
    nodes: Vec<(bool, NodeRecord)>,
    /// `(shard, live lease)`.
    shards: Vec<(u32, Option<ShardLease>)>,
}

impl ClusterView {
    /// Every shard has a live owner, and none is `dead`.
    fn owned_without(&self, dead: Uuid) -> bool {
        let owners: Vec<Uuid> = self
            .shards
            .iter()
            .filter_map(|(_, l)| l.map(|l| l.owner))
            .collect();
        owners.len() == SHARDS as usize && !owners.contains(&dead)
    }

    fn owns_any(&self, node: Uuid) -> bool {
        self.shards
            .iter()
            .any(|(_, l)| l.is_some_and(|l| l.owner == node))
    }

    fn alive(&self, node: Uuid) -> Option<bool> {
        self.nodes
            .iter()
            .find(|(_, r)| r.id == node)
            .map(|(alive, _)| *alive)
    }

    /// `count` nodes are alive, every shard is owned, and each live node owns some.
    fn settled(&self, count: usize) -> bool {
        let live: Vec<Uuid> = self
            .nodes
            .iter()
            .filter(|(alive, _)| *alive)
            .map(|(_, r)| r.id)
            .collect();
        live.len() == count
            && self.shards.iter().all(|(_, l)| l.is_some())
            && live.iter().all(|n| self.owns_any(*n))
    }
}

async fn cluster_view(http: &reqwest::Client, url: &str, admin: &str) -> Result<ClusterView> {
    let resp = http
        .get(format!("{url}/v1/cluster"))
        .bearer_auth(admin)
        .timeout(Duration::from_secs(2))
        .send()
        .await?
        .error_for_status()?;
    Ok(resp.json().await?)
}

/// Polls `url`'s cluster view until `done` holds or `within` passes; when it held.
async fn poll_view(
    http: &reqwest::Client,
    url: &str,
    admin: &str,
    within: Duration,
    mut done: impl FnMut(&ClusterView) -> bool,
) -> Option<Instant> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(v) = cluster_view(http, url, admin).await
            && done(&v)
        {
            return Some(Instant::now());
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(WATCH_PAUSE_MS)).await;
    }
}

/// One member's etcd counters at one moment.
#[derive(Clone, Default)]
struct EtcdSample {
    range_rpcs: f64,
    txn_rpcs: f64,
    /// Bytes sent to clients (answers: mostly range reads).
    sent_bytes: f64,
    proposals_committed: f64,
    fsync: Histogram,
    backend_commit: Histogram,
    peer_rtt: Histogram,
    /// Size of the member's database file: it grows with every revision kept (nothing compacts
    /// during the bench).
    db_bytes: f64,
    is_leader: bool,
}

impl EtcdSample {
    fn parse(text: &str) -> EtcdSample {
        let rpcs = |method: &str| {
            sum_of(
                text,
                "grpc_server_handled_total",
                &format!("grpc_method=\"{method}\""),
            )
            .unwrap_or(0.0)
        };
        EtcdSample {
            range_rpcs: rpcs("Range"),
            txn_rpcs: rpcs("Txn"),
            sent_bytes: sum_of(text, "etcd_network_client_grpc_sent_bytes_total", "")
                .unwrap_or(0.0),
            proposals_committed: sum_of(text, "etcd_server_proposals_committed_total", "")
                .unwrap_or(0.0),
            fsync: Histogram::parse(text, "etcd_disk_wal_fsync_duration_seconds"),
            backend_commit: Histogram::parse(text, "etcd_disk_backend_commit_duration_seconds"),
            peer_rtt: Histogram::parse(text, "etcd_network_peer_round_trip_time_seconds"),
            db_bytes: sum_of(text, "etcd_mvcc_db_total_size_in_bytes", "").unwrap_or(0.0),
            is_leader: sum_of(text, "etcd_server_is_leader", "") == Some(1.0),
        }
    }
}

/// Every member's counters; a member that does not answer counts as zeros (and the figures
/// then say less than happened, never more).
async fn scrape_etcd(http: &reqwest::Client, endpoints: &[String]) -> Vec<EtcdSample> {
    let mut out = Vec::with_capacity(endpoints.len());
    for e in endpoints {
        let text = get_text(http, &format!("http://{e}/metrics")).await;
        out.push(EtcdSample::parse(&text));
    }
    out
}

/// What etcd did during a phase, all members together.
struct EtcdFigures {
    range_rpcs: f64,
    txn_rpcs: f64,
    sent_bytes: f64,
    /// Raft entries the leader committed.
    proposals: f64,
    fsync: Histogram,
    backend_commit: Histogram,
    peer_rtt: Histogram,
    /// The largest member's database at the end.
    db_bytes: f64,
}

impl EtcdFigures {
    fn between(before: &[EtcdSample], after: &[EtcdSample]) -> EtcdFigures {
        let mut f = EtcdFigures {
            range_rpcs: 0.0,
            txn_rpcs: 0.0,
            sent_bytes: 0.0,
            proposals: 0.0,
            fsync: Histogram::default(),
            backend_commit: Histogram::default(),
            peer_rtt: Histogram::default(),
            db_bytes: 0.0,
        };
        for (b, a) in before.iter().zip(after) {
            f.range_rpcs += a.range_rpcs - b.range_rpcs;
            f.txn_rpcs += a.txn_rpcs - b.txn_rpcs;
            f.sent_bytes += a.sent_bytes - b.sent_bytes;
            if a.is_leader {
                f.proposals = a.proposals_committed - b.proposals_committed;
            }
            f.fsync.add(&a.fsync.since(&b.fsync));
            f.backend_commit
                .add(&a.backend_commit.since(&b.backend_commit));
            f.peer_rtt.add(&a.peer_rtt.since(&b.peer_rtt));
            f.db_bytes = f.db_bytes.max(a.db_bytes);
        }
        f
    }
}

/// One phase's figures.
struct Phase {
    m: Measured,
    stored: Result<u64>,
    /// p50 and p99 of the claim's commit (`gigafactory_claim_commit_seconds`) on the first
    /// node, in seconds: the store's share of a claim, seen by the coordinator.
    claim_commit: (Option<f64>, Option<f64>),
    /// Mean and largest depth of the first node's scheduler index during the run.
    queued: (Option<f64>, Option<f64>),
    /// What etcd did during the run, on a cluster.
    etcd: Option<EtcdFigures>,
}

/// What happened around the kill of phase (c); instants are `None` when they did not happen
/// in time (or at all, when the run ended before the kill).
#[derive(Default)]
struct KillTimeline {
    killed: Option<Instant>,
    /// The observer's view first shows the killed node as not alive.
    declared_dead: Option<Instant>,
    /// Every shard owned by a live node.
    reowned: Option<Instant>,
    /// The restarted node answers `/readyz`.
    restarted: Option<Instant>,
    /// The restarted node owns shards again.
    rejoined: Option<Instant>,
    /// Why a step was not measured.
    note: Option<String>,
}

/// The nodes of the cluster and the admin token they share.
struct Cluster {
    nodes: Vec<ChildNode>,
    admin: String,
}

impl Cluster {
    fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url.clone()).collect()
    }

    fn log_tails(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("--- node {i} ---\n{}", n.log_tail(&self.admin)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

pub(super) async fn run(args: &BenchArgs, http: &reqwest::Client) -> Result<()> {
    let scratch = ScratchDir::create()?;
    let w = Workload {
        keyed_submits: true,
        ..args.workload()
    };
    let timeout = Duration::from_secs(args.timeout_secs);
    println!(
        "gigafactory bench --compare-cluster: {} jobs, {} factories × {} slots, {} submitters, \
         renew {}, keyed submits, lease TTL {}",
        w.jobs,
        w.factories,
        w.slots,
        w.submitters,
        if w.renew { "on" } else { "off" },
        args.lease_ttl_ms
            .map_or_else(|| "the coordinators' default".into(), |t| format!("{t} ms")),
    );
    println!("load average before: {}", loadavg());

    println!("(a) one node, embedded store ...");
    let embedded = {
        let dir = scratch.0.join("embedded");
        let store = format!("embedded:{}", dir.join("store").display());
        let mut node = ChildNode::start(http, &dir, &store, None, args.lease_ttl_ms).await?;
        let admin = node.admin_token()?;
        let watched = Watched {
            coordinators: node.pid().into_iter().collect(),
            store: Vec::new(),
        };
        let urls = [node.url.clone()];
        let site = Site {
            urls: &urls,
            etcd: &[],
            admin: &admin,
        };
        let outcome = phase(http, site, &w, watched, timeout, |_| async {}).await;
        if outcome.is_err() {
            eprintln!("last lines of the node's log:\n{}", node.log_tail(&admin));
        }
        node.kill().await;
        outcome?.0
    };
    println!("    {:.0} jobs/s", embedded.m.jobs_per_sec());

    println!("(b) {NODES} nodes on a {ETCD_MEMBERS}-member etcd ...");
    let etcd = tokio::task::spawn_blocking(|| LocalEtcdCluster::start(ETCD_MEMBERS))
        .await?
        .context("starting a local etcd cluster (Debian package etcd-server)")?;
    let endpoints = etcd.endpoints();
    let mut cluster = start_cluster(http, &scratch, &etcd.store_url(NAMESPACE), args).await?;
    let outcome = measure_cluster(http, &mut cluster, &endpoints, &w, timeout).await;
    if outcome.is_err() {
        eprintln!("last lines of the nodes' logs:\n{}", cluster.log_tails());
    }
    let (clustered, killed, timeline) = outcome?;
    drop(cluster);
    drop(etcd);

    print_comparison(&w, &embedded, &clustered);
    print_etcd(&clustered, &killed);
    for (name, p) in [("(a) embedded", &embedded), ("(b) cluster", &clustered)] {
        println!("  check {name:<13} {}", load::check(&p.m, &p.stored).1);
    }
    print_kill(&killed, &timeline, args.lease_ttl_ms);
    if let Some(path) = &args.json {
        let figures = json!({
            "jobs": w.jobs,
            "factories": w.factories,
            "slots": w.slots,
            "submitters": w.submitters,
            "renew": w.renew,
            "lease_ttl_ms": args.lease_ttl_ms,
            "embedded": phase_json(&embedded),
            "cluster": phase_json(&clustered),
            "kill": {
                "phase": phase_json(&killed),
                "failover_ms": ms_between(timeline.killed, timeline.reowned),
                "declared_dead_ms": ms_between(timeline.killed, timeline.declared_dead),
                "restart_ready_ms": ms_between(timeline.killed, timeline.restarted),
                "rejoined_ms": ms_between(timeline.killed, timeline.rejoined),
                "jobs_per_s_by_second": per_bucket(&killed.m.completions_ms, BUCKET_MS),
                "killed_at_ms": ms_between(Some(killed.m.started), timeline.killed),
                "note": timeline.note,
            },
        });
        std::fs::write(path, serde_json::to_string_pretty(&figures)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    for (name, p) in [
        ("(a) embedded", embedded),
        ("(b) cluster", clustered),
        ("(c) cluster with a node kill", killed),
    ] {
        load::verdict(&p.m, p.stored, args.timeout_secs).with_context(|| name.to_string())?;
    }
    ensure!(
        timeline.reowned.is_some(),
        "the killed node's shards were not re-owned: {}",
        timeline.note.as_deref().unwrap_or("no kill")
    );
    Ok(())
}

/// Starts the nodes one after another (the first mints the admin token the others are given)
/// and waits until they all live and share the shards.
async fn start_cluster(
    http: &reqwest::Client,
    scratch: &ScratchDir,
    store: &str,
    args: &BenchArgs,
) -> Result<Cluster> {
    let mut nodes: Vec<ChildNode> = Vec::with_capacity(NODES);
    let mut admin = String::new();
    for i in 0..NODES {
        let dir = scratch.0.join(format!("node{i}"));
        let given = (i > 0).then_some(admin.as_str());
        let node = ChildNode::start(http, &dir, store, given, args.lease_ttl_ms).await?;
        if i == 0 {
            admin = node.admin_token()?;
        }
        nodes.push(node);
    }
    let cluster = Cluster { nodes, admin };
    let settled = poll_view(
        http,
        &cluster.nodes[OBSERVER].url,
        &cluster.admin,
        Duration::from_secs(SETTLE_DEADLINE_SECS),
        |v| v.settled(NODES),
    )
    .await;
    if settled.is_none() {
        eprintln!("last lines of the nodes' logs:\n{}", cluster.log_tails());
        anyhow::bail!(
            "the {NODES} nodes did not all join and share the shards in {SETTLE_DEADLINE_SECS} s"
        );
    }
    Ok(cluster)
}

/// Phases (b) and (c) on the running cluster.
async fn measure_cluster(
    http: &reqwest::Client,
    cluster: &mut Cluster,
    endpoints: &[String],
    w: &Workload,
    timeout: Duration,
) -> Result<(Phase, Phase, KillTimeline)> {
    let urls = cluster.urls();
    let admin = cluster.admin.clone();
    let etcd_pids = children_named("etcd");
    let watched = Watched {
        coordinators: cluster.nodes.iter().filter_map(ChildNode::pid).collect(),
        store: etcd_pids.clone(),
    };
    let site = Site {
        urls: &urls,
        etcd: endpoints,
        admin: &admin,
    };
    let (clustered, ()) = phase(http, site, w, watched, timeout, |_| async {}).await?;
    println!("    {:.0} jobs/s", clustered.m.jobs_per_sec());

    println!("(c) {NODES} nodes, node {VICTIM} SIGKILLed and restarted mid-run ...");
    let victim_id = cluster_view(http, &urls[VICTIM], &admin).await?.this_node;
    let kill_after = ((w.jobs as f64 * KILL_AT_SHARE).ceil() as u64).max(1);
    // The nodes' CPU is not summed: the killed one takes its counters with it.
    let watched = Watched {
        coordinators: Vec::new(),
        store: etcd_pids,
    };
    let victim = &mut cluster.nodes[VICTIM];
    let (observer, token) = (&urls[OBSERVER], admin.as_str());
    let (killed, timeline) = phase(http, site, w, watched, timeout, |sh| async move {
        kill_and_restart(http, &sh, victim, victim_id, observer, token, kill_after).await
    })
    .await?;
    Ok((clustered, killed, timeline))
}

/// Where a phase runs.
#[derive(Clone, Copy)]
struct Site<'a> {
    /// The nodes' base URLs; the first is asked for metrics and the verification.
    urls: &'a [String],
    /// etcd's client endpoints (none for an embedded store).
    etcd: &'a [String],
    admin: &'a str,
}

/// Runs the workload on `site`'s nodes once, with `beside` (given the run's shared state) running
/// alongside, and checks the store's count.
async fn phase<T, F: Future<Output = T>>(
    http: &reqwest::Client,
    site: Site<'_>,
    w: &Workload,
    watched: Watched,
    timeout: Duration,
    beside: impl FnOnce(Arc<Shared>) -> F,
) -> Result<(Phase, T)> {
    let run_id = Uuid::now_v7().simple().to_string();
    let sh = Arc::new(Shared::new(
        http,
        site.urls.to_vec(),
        site.admin,
        &run_id,
        w,
        Instant::now() + timeout,
        watched,
    ));
    let before = scrape_etcd(http, site.etcd).await;
    let (m, queued, t) = tokio::join!(
        load::measure(&sh, w),
        sample_queue(http, &sh, &site.urls[0]),
        beside(sh.clone()),
    );
    let m = m?;
    let etcd = (!site.etcd.is_empty()).then_some(EtcdFigures::between(
        &before,
        &scrape_etcd(http, site.etcd).await,
    ));
    let metrics = get_text(http, &format!("{}/metrics", site.urls[0])).await;
    let q = |q| summary_quantile(&metrics, "gigafactory_claim_commit_seconds", q);
    let claim_commit = (q("0.5"), q("0.99"));
    let stored = load::count_succeeded(&sh, &m.ids, Instant::now() + timeout).await;
    let phase = Phase {
        m,
        stored,
        claim_commit,
        queued,
        etcd,
    };
    Ok((phase, t))
}

/// A page's text, or empty when it cannot be had.
async fn get_text(http: &reqwest::Client, url: &str) -> String {
    async {
        http.get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()
    }
    .await
    .unwrap_or_default()
}

/// Samples the first node's scheduler index (`gigafactory_queued_jobs`) every
/// `QUEUE_SAMPLE_MS` until the run stops: the mean and the largest depth seen. On a shared store
/// every node re-reads the head of the ready index when another one makes work ready, so a deep
/// queue makes each of those reads dearer.
async fn sample_queue(
    http: &reqwest::Client,
    sh: &Shared,
    first: &str,
) -> (Option<f64>, Option<f64>) {
    let mut seen = Vec::new();
    while !sh.stopping() {
        let text = get_text(http, &format!("{first}/metrics")).await;
        if let Some(q) = sum_of(&text, "gigafactory_queued_jobs", "") {
            seen.push(q);
        }
        tokio::time::sleep(Duration::from_millis(QUEUE_SAMPLE_MS)).await;
    }
    let mean = (!seen.is_empty()).then(|| seen.iter().sum::<f64>() / seen.len() as f64);
    (mean, seen.into_iter().reduce(f64::max))
}

/// Phase (c)'s fault: once `kill_after` jobs completed, SIGKILLs `victim`, watches `observer`'s
/// cluster view until the victim is declared dead and its shards re-owned, then restarts it
/// and waits until it owns shards again. Every wait is bounded.
async fn kill_and_restart(
    http: &reqwest::Client,
    sh: &Shared,
    victim: &mut ChildNode,
    victim_id: Uuid,
    observer: &str,
    admin: &str,
    kill_after: u64,
) -> KillTimeline {
    let mut t = KillTimeline::default();
    while sh.completed.load(Ordering::Acquire) < kill_after {
        if sh.stopping() {
            t.note = Some("the run ended before the kill".into());
            return t;
        }
        tokio::time::sleep(Duration::from_millis(WATCH_PAUSE_MS)).await;
    }
    let killed = Instant::now();
    t.killed = Some(killed);
    victim.kill().await;
    let within = Duration::from_secs(REOWN_DEADLINE_SECS);
    t.reowned = poll_view(http, observer, admin, within, |v| {
        if t.declared_dead.is_none() && v.alive(victim_id) == Some(false) {
            t.declared_dead = Some(Instant::now());
        }
        v.owned_without(victim_id)
    })
    .await;
    if t.reowned.is_none() {
        t.note = Some(format!(
            "shards not re-owned within {REOWN_DEADLINE_SECS} s"
        ));
        return t;
    }
    if let Err(e) = victim.spawn(http).await {
        t.note = Some(format!("restart failed: {e:#}"));
        return t;
    }
    t.restarted = Some(Instant::now());
    let new_id = match cluster_view(http, &victim.url, admin).await {
        Ok(v) => v.this_node,
        Err(e) => {
            t.note = Some(format!("the restarted node's cluster view: {e:#}"));
            return t;
        }
    };
    t.rejoined = poll_view(http, observer, admin, within, |v| v.owns_any(new_id)).await;
    if t.rejoined.is_none() {
        t.note = Some(format!(
            "the restarted node owned no shard within {REOWN_DEADLINE_SECS} s"
        ));
    }
    t
}

fn ms_between(from: Option<Instant>, to: Option<Instant>) -> Option<u64> {
    let (from, to) = (from?, to?);
    Some(to.checked_duration_since(from)?.as_millis() as u64)
}

fn phase_json(p: &Phase) -> serde_json::Value {
    let m = &p.m;
    json!({
        "submitted": m.submitted(),
        "completed": m.completed,
        "stored_succeeded": p.stored.as_ref().ok(),
        "elapsed_s": m.elapsed,
        "jobs_per_s": m.jobs_per_sec(),
        "submit": m.submit.json(),
        "claim": m.claim.json(),
        "renew": m.renew.json(),
        "complete": m.complete.json(),
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
        "retries": m.retries,
        "failovers": m.failovers,
        "lost_claims": m.lost_claims,
        "coordinators_cpu_pct": m.cpu.coordinator,
        "etcd_cpu_pct": m.cpu.store,
        "client_cpu_pct": m.cpu.client,
        "others_cpu_pct": m.cpu.others,
        "machine_busy_pct": m.cpu.machine,
        "timed_out": m.timed_out,
        "error": m.fatal,
    })
}

/// A figure with two decimals, or "-".
fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a > 0.0 => format!("{:.2}", b / a),
        _ => "-".into(),
    }
}

fn print_comparison(w: &Workload, a: &Phase, b: &Phase) {
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
fn print_etcd(b: &Phase, c: &Phase) {
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

fn print_kill(p: &Phase, t: &KillTimeline, lease_ttl_ms: Option<u64>) {
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
         (target ≤ {:.0} s: twice the node lease TTL); declared dead after {}",
        secs(ms_between(t.killed, t.reowned)),
        // `serve` keeps the default node lease TTL; the failover target is twice it.
        2.0 * gigafactory_actors::Config::default().node_lease_ttl_ms as f64 / 1e3,
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
    println!("  check (c) node kill  {}", load::check(m, &p.stored).1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn view(alive: &[(u128, bool)], owners: &[Option<u128>]) -> ClusterView {
        ClusterView {
            this_node: id(1),
            nodes: alive
                .iter()
                .map(|(n, a)| {
                    (
                        *a,
                        NodeRecord {
                            id: id(*n),
                            addr: String::new(),
                            started_at: 0,
                            heartbeat_at: 0,
                            expires_at: 0,
                        },
                    )
                })
                .collect(),
            shards: owners
                .iter()
                .enumerate()
                .map(|(s, o)| {
                    (
                        s as u32,
                        o.map(|o| ShardLease {
                            owner: id(o),
                            epoch: 1,
                            expires_at: 0,
                        }),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn shards_count_as_reowned_only_when_all_have_a_live_owner() {
        let all = |o: u128| vec![Some(o); SHARDS as usize];
        let v = view(&[(1, true), (3, false)], &all(1));
        assert!(v.owned_without(id(3)));
        assert!(!v.owned_without(id(1)));
        let mut gap = all(1);
        gap[0] = None;
        assert!(!view(&[(1, true)], &gap).owned_without(id(3)));
        let mut one_left = all(1);
        one_left[5] = Some(3);
        assert!(!view(&[(1, true)], &one_left).owned_without(id(3)));
        assert_eq!(v.alive(id(3)), Some(false));
        assert_eq!(v.alive(id(9)), None);
    }

    #[test]
    fn a_cluster_is_settled_when_every_live_node_owns_shards() {
        let mut owners: Vec<Option<u128>> = vec![Some(1); SHARDS as usize];
        let nodes = [(1, true), (2, true)];
        assert!(!view(&nodes, &owners).settled(2), "node 2 owns nothing");
        owners[3] = Some(2);
        assert!(view(&nodes, &owners).settled(2));
        assert!(!view(&nodes, &owners).settled(3), "a node is missing");
        owners[4] = None;
        assert!(!view(&nodes, &owners).settled(2), "a shard is free");
    }

    #[test]
    fn reads_an_etcd_members_counters() {
        let text = "\
etcd_server_is_leader 1
etcd_server_proposals_committed_total 42
grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 30
grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Txn\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 12
etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.001\"} 3
etcd_disk_wal_fsync_duration_seconds_bucket{le=\"+Inf\"} 4
etcd_disk_wal_fsync_duration_seconds_sum 0.01
etcd_disk_wal_fsync_duration_seconds_count 4
";
        let s = EtcdSample::parse(text);
        assert!(s.is_leader);
        assert_eq!((s.range_rpcs, s.txn_rpcs), (30.0, 12.0));
        assert_eq!(s.proposals_committed, 42.0);
        assert_eq!(s.fsync.count(), 4.0);
        let f = EtcdFigures::between(&[EtcdSample::default()], &[s]);
        assert_eq!((f.range_rpcs, f.txn_rpcs, f.proposals), (30.0, 12.0, 42.0));
        assert_eq!(f.fsync.quantile_at_most(0.5), Some(0.001));
    }
}

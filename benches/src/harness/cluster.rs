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

mod etcd;
mod figures;
mod report;
mod view;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gigafactory_storage::LocalEtcdCluster;
use uuid::Uuid;

use super::child::{ChildNode, Launcher, ScratchDir};
use super::error::{Error, Result};
use super::load::{self, Measured, Shared, Workload};
use super::metrics::{get_text, queued_jobs};
use super::{BenchArgs, write_json};
use crate::procfs::{Watched, children_named, load_average};
use etcd::{EtcdFigures, scrape_etcd};
use figures::Histogram;
use view::{cluster_view, poll_view};

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
/// Pause between two samples of the scheduler index's depth.
const QUEUE_SAMPLE_MS: u64 = 500;
/// The coordinator's histogram of a claim's commit.
const CLAIM_COMMIT: &str = "gigafactory_claim_commit_seconds";

/// One phase's figures.
struct Phase {
    m: Measured,
    stored: Result<u64>,
    /// p50 and p99 of the claim's commit (`gigafactory_claim_commit_seconds`) on the first
    /// node during the run, in seconds, as the upper bounds of the histogram's buckets that
    /// hold them: the store's share of a claim, seen by the coordinator.
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
    /// The nodes' lease TTL, as the victim's own record showed it before the kill: a failover
    /// should take at most twice it.
    node_lease_ttl_ms: Option<u64>,
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

pub(crate) async fn run(
    args: &BenchArgs,
    http: &reqwest::Client,
    launcher: &Launcher,
) -> Result<()> {
    let scratch = ScratchDir::create()?;
    let w = Workload {
        keyed_submits: true,
        ..args.workload()
    };
    let timeout = Duration::from_secs(args.timeout_secs);
    println!(
        "gigafactory bench --compare-cluster: {} jobs, {} factories × {} slots, {} submitters, \
         renew {}, claim with complete {}, keyed submits, lease TTL {}",
        w.jobs,
        w.factories,
        w.slots,
        w.submitters,
        if w.renew { "on" } else { "off" },
        if w.claim_next { "on" } else { "off" },
        args.lease_ttl_ms
            .map_or_else(|| "the coordinators' default".into(), |t| format!("{t} ms")),
    );
    println!("load average before: {}", load_average());

    println!("(a) one node, embedded store ...");
    let embedded = {
        let dir = scratch.0.join("embedded");
        let store = format!("embedded:{}", dir.join("store").display());
        let mut node = ChildNode::start(http, launcher, &dir, &store, None).await?;
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
        .map_err(|e| {
            Error::Setup(format!(
                "starting a local etcd cluster (Debian package etcd-server): {e}"
            ))
        })?;
    let endpoints = etcd.endpoints();
    let store = etcd.store_url(NAMESPACE);
    let mut cluster = start_cluster(http, launcher, &scratch, &store).await?;
    let outcome = measure_cluster(http, &mut cluster, &endpoints, &w, timeout).await;
    if outcome.is_err() {
        eprintln!("last lines of the nodes' logs:\n{}", cluster.log_tails());
    }
    let (clustered, killed, timeline) = outcome?;
    drop(cluster);
    drop(etcd);

    report::print_comparison(&w, &embedded, &clustered);
    report::print_etcd(&clustered, &killed);
    for (name, p) in [("(a) embedded", &embedded), ("(b) cluster", &clustered)] {
        println!("  check {name:<13} {}", load::check(&p.m, &p.stored));
    }
    report::print_kill(&killed, &timeline, args.lease_ttl_ms);
    if let Some(path) = &args.json {
        let figures = report::json(
            &w,
            args.lease_ttl_ms,
            [&embedded, &clustered, &killed],
            &timeline,
        );
        write_json(path, &figures)?;
    }
    for (name, p) in [
        ("(a) embedded", embedded),
        ("(b) cluster", clustered),
        ("(c) cluster with a node kill", killed),
    ] {
        load::verdict(&p.m, p.stored, args.timeout_secs).map_err(|e| Error::Phase {
            phase: name,
            source: Box::new(e),
        })?;
    }
    if timeline.reowned.is_none() {
        return Err(Error::Check(format!(
            "the killed node's shards were not re-owned: {}",
            timeline.note.as_deref().unwrap_or("no kill")
        )));
    }
    Ok(())
}

/// Starts the nodes one after another (the first mints the admin token the others are given)
/// and waits until they all live and share the shards.
async fn start_cluster(
    http: &reqwest::Client,
    launcher: &Launcher,
    scratch: &ScratchDir,
    store: &str,
) -> Result<Cluster> {
    let mut nodes: Vec<ChildNode> = Vec::with_capacity(NODES);
    let mut admin = String::new();
    for i in 0..NODES {
        let dir = scratch.0.join(format!("node{i}"));
        let given = (i > 0).then_some(admin.as_str());
        let node = ChildNode::start(http, launcher, &dir, store, given).await?;
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
        return Err(Error::Setup(format!(
            "the {NODES} nodes did not all join and share the shards in {SETTLE_DEADLINE_SECS} s"
        )));
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
    let victim_view = cluster_view(http, &urls[VICTIM], &admin).await?;
    let victim_id = victim_view.this_node;
    let kill_after = ((w.jobs as f64 * KILL_AT_SHARE).ceil() as u64).max(1);
    // The nodes' CPU is not summed: the killed one takes its counters with it.
    let watched = Watched {
        coordinators: Vec::new(),
        store: etcd_pids,
    };
    let victim = &mut cluster.nodes[VICTIM];
    let (observer, token) = (&urls[OBSERVER], admin.as_str());
    let (killed, mut timeline) = phase(http, site, w, watched, timeout, |sh| async move {
        kill_and_restart(http, &sh, victim, victim_id, observer, token, kill_after).await
    })
    .await?;
    timeline.node_lease_ttl_ms = victim_view.node_lease_ttl_ms();
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
    let metrics_url = format!("{}/metrics", site.urls[0]);
    let commits_before = Histogram::parse(&get_text(http, &metrics_url).await, CLAIM_COMMIT);
    let (m, queued, t) = tokio::join!(
        load::measure(&sh, w, Vec::new()),
        sample_queue(http, &sh, &site.urls[0]),
        beside(sh.clone()),
    );
    let m = m?;
    let etcd = (!site.etcd.is_empty()).then_some(EtcdFigures::between(
        &before,
        &scrape_etcd(http, site.etcd).await,
    ));
    let commits =
        Histogram::parse(&get_text(http, &metrics_url).await, CLAIM_COMMIT).since(&commits_before);
    let claim_commit = (
        commits.quantile_at_most(0.5),
        commits.quantile_at_most(0.99),
    );
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
        if let Some(q) = queued_jobs(http, first).await {
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
        t.note = Some(format!("restart failed: {e}"));
        return t;
    }
    t.restarted = Some(Instant::now());
    let new_id = match cluster_view(http, &victim.url, admin).await {
        Ok(v) => v.this_node,
        Err(e) => {
            t.note = Some(format!("the restarted node's cluster view: {e}"));
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

//! The runner: starts the cluster, runs the workload and the seeded fault schedule, settles,
//! fetches every acknowledged job and hands the history to the checker.
//!
//! Faults run one after another on the calling thread, each undone (process restarted or
//! continued, link restored) before the next starts, so at most one etcd member and at most
//! one coordinator node are ever down, stopped or cut off: with three of each, etcd keeps its
//! quorum and two nodes stay up. The workload submits from its own threads meanwhile. With
//! `netns`, nodes run in network namespaces and partitions and flapping links join the schedule.
//!
//! The rooms: this file configures and orchestrates a run (cluster up, workload, faults, settle,
//! check); `schedule` draws the faults from the seed, `faults` injects and undoes one,
//! `workload` submits jobs, and `collect` gathers the history once the workload stops.

mod collect;
mod faults;
mod schedule;
mod workload;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gigafactory_storage::LocalEtcdCluster;
use serde_json::json;

use self::schedule::plan;
use self::workload::workload;
use crate::ChaosError;
use crate::checker::check;
use crate::history::{History, Millis, Submit};
use crate::netns::Network;
use crate::procs::{Agent, Api, Node, Site, poll};
use crate::report::{self, Report};

/// Job lease TTL of every node; SIGSTOPs last longer than this so the stopped holder is fenced.
const LEASE_TTL_MS: u64 = 3_000;
/// Members of the etcd cluster: three keep a quorum while one is restarted.
const ETCD_MEMBERS: usize = 3;
/// Where the run's keys live in etcd.
const STORE_NAMESPACE: &str = "chaos/";
/// The product of every job of a run, and the budget they all count against (C8).
pub(super) const PRODUCT: &str = "chaos";
const BUDGET: &str = "chaos-spend";
/// $1M: the largest a budget may be; a run never reaches it.
const BUDGET_LIMIT_MICROS: u64 = 1_000_000_000_000;
/// How long the agents may take to enroll.
const ENROLL_DEADLINE: Duration = Duration::from_secs(30);

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    pub duration_secs: u64,
    pub faults: usize,
    pub nodes: usize,
    pub factories: usize,
    pub jobs_per_sec: f64,
    /// Where the history, report and logs go; a fresh temporary directory when `None`.
    pub out: Option<PathBuf>,
    /// The `gigafactory` binary that runs nodes and agents.
    pub exe: PathBuf,
    /// Run each node in a network namespace and add network faults (needs root, iproute2).
    pub netns: bool,
}

impl Config {
    /// The command line that reproduces this run.
    pub fn command_line(&self) -> String {
        format!(
            "{} chaos --seed {} --duration-secs {} --faults {} --nodes {} --factories {} \
             --jobs-per-sec {}{}",
            self.exe.display(),
            self.seed,
            self.duration_secs,
            self.faults,
            self.nodes,
            self.factories,
            self.jobs_per_sec,
            if self.netns { " --netns" } else { "" }
        )
    }

    fn validate(&self) -> Result<(), ChaosError> {
        // Checked first, so a probe with otherwise invalid settings learns only this.
        if self.netns
            && let Err(e) = Network::available()
        {
            return Err(ChaosError::Config(format!(
                "--netns needs root, iproute2, veth and bridge links: {e}"
            )));
        }
        if self.nodes < 3 {
            return Err(ChaosError::Config(
                "--nodes must be at least 3: two stay up while one is faulted".into(),
            ));
        }
        if self.factories == 0 || self.duration_secs == 0 {
            return Err(ChaosError::Config(
                "--factories and --duration-secs must be positive".into(),
            ));
        }
        if !(self.jobs_per_sec > 0.0 && self.jobs_per_sec <= 1_000.0) {
            return Err(ChaosError::Config(
                "--jobs-per-sec must be in (0, 1000]".into(),
            ));
        }
        Ok(())
    }
}

/// A finished run: its history, its report and the directory holding both.
pub struct Outcome {
    pub history: History,
    pub report: Report,
    pub dir: PathBuf,
}

/// Wall-clock milliseconds, the unit every time in the history is recorded in.
fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// Runs a chaos run end to end. A run that finds violations still returns `Ok`: the report
/// holds them.
pub fn run(cfg: &Config) -> Result<Outcome, ChaosError> {
    cfg.validate()?;
    let dir = match &cfg.out {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!(
            "gigafactory-chaos-{}-{}",
            cfg.seed,
            std::process::id()
        )),
    };
    std::fs::create_dir_all(&dir).map_err(ChaosError::io(dir.display().to_string()))?;
    let command = cfg.command_line();
    eprintln!("chaos: seed {} — reproduce with:\n  {command}", cfg.seed);
    eprintln!("chaos: output in {}", dir.display());

    let net = cfg.netns.then(|| Network::create(cfg.nodes)).transpose()?;
    let bridge: Vec<String> = net.iter().map(Network::host_ip).collect();
    let bridge: Vec<&str> = bridge.iter().map(String::as_str).collect();
    let etcd = LocalEtcdCluster::start_also_on(ETCD_MEMBERS, &bridge)
        .map_err(|e| ChaosError::Setup(format!("etcd cluster: {e}")))?;
    let site = |i: usize| match &net {
        Some(n) => Site {
            host: n.node_ip(i),
            netns: Some(n.netns(i)),
            store: etcd.store_url_on(&n.host_ip(), STORE_NAMESPACE),
        },
        None => Site {
            host: "127.0.0.1".into(),
            netns: None,
            store: etcd.store_url(STORE_NAMESPACE),
        },
    };
    let mut api = Api::new()?;
    let mut nodes = Vec::with_capacity(cfg.nodes);
    for i in 0..cfg.nodes {
        // The first node mints the admin token; the others are handed it.
        let admin = (i > 0).then_some(api.admin.as_str());
        let dir = dir.join(format!("node{i}"));
        let node = Node::start(&cfg.exe, i, &dir, site(i), LEASE_TTL_MS, admin, &api)?;
        if i == 0 {
            api.admin = node.admin_token()?;
        }
        nodes.push(node);
    }
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    let mut agents = Vec::with_capacity(cfg.factories);
    for i in 0..cfg.factories {
        let (status, v) = api
            .call(
                "POST",
                &format!("{}/v1/enrollment-tokens", urls[0]),
                Some(&json!({})),
            )
            .map_err(|e| ChaosError::Setup(format!("enrollment token: {e}")))?;
        let token = v["token"]
            .as_str()
            .ok_or_else(|| ChaosError::Setup(format!("enrollment token: {status} {v}")))?;
        agents.push(Agent::start(
            &cfg.exe,
            i,
            &dir.join(format!("factory{i}")),
            &urls.join(","),
            token,
        )?);
    }
    if !poll(ENROLL_DEADLINE, || {
        agents.iter().all(|a| a.factory_id().is_some())
    }) {
        return Err(ChaosError::Setup("factories did not enroll in time".into()));
    }
    let all_live = poll(Duration::from_secs(30), || {
        api.get_ok(&format!("{}/v1/cluster", urls[0]))
            .is_ok_and(|v| {
                v["nodes"]
                    .as_array()
                    .is_some_and(|ns| ns.iter().filter(|n| n[0] == true).count() == cfg.nodes)
            })
    });
    if !all_live {
        return Err(ChaosError::Setup(
            "the nodes never all joined the cluster".into(),
        ));
    }
    // Every job of the run counts against one budget, too large to hold any (C8).
    let budget =
        json!({"product": PRODUCT, "period": "month", "limit_micros": BUDGET_LIMIT_MICROS});
    match api.call(
        "PUT",
        &format!("{}/v1/budgets/{BUDGET}", urls[0]),
        Some(&budget),
    ) {
        Ok((200, _)) => {}
        other => return Err(ChaosError::Setup(format!("budget: {other:?}"))),
    }

    let started = Instant::now();
    let started_at = now_ms();
    let submits: Arc<Mutex<Vec<Submit>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let workload = {
        let (api, urls, submits, stop) = (api.clone(), urls.clone(), submits.clone(), stop.clone());
        let (seed, rate) = (cfg.seed, cfg.jobs_per_sec);
        std::thread::spawn(move || workload(api, urls, seed, rate, submits, stop))
    };

    let mut world = World {
        etcd,
        net,
        nodes,
        agents,
        api: api.clone(),
        submits: submits.clone(),
    };
    let mut faults = Vec::new();
    let mut failure = None;
    for p in plan(cfg) {
        let due = started + Duration::from_millis(p.at_ms);
        // Sleeping here only paces the schedule; no state is awaited.
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let f = match world.inject(&p) {
            Ok(f) => f,
            Err(e) => {
                // Stop injecting but finish the run, so the history up to here is kept.
                eprintln!("chaos: fault injection failed, stopping faults: {e}");
                failure = Some(e);
                break;
            }
        };
        eprintln!(
            "chaos: {} {} for {} ms{}",
            f.kind,
            f.target,
            f.end - f.start,
            f.note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        );
        faults.push(f);
    }
    let end = started + Duration::from_secs(cfg.duration_secs);
    std::thread::sleep(end.saturating_duration_since(Instant::now()));
    stop.store(true, Ordering::SeqCst);
    if workload.join().is_err() {
        return Err(ChaosError::Setup("the workload thread panicked".into()));
    }
    let workload_ended_at = now_ms();
    let submits = std::mem::take(&mut *submits.lock().unwrap_or_else(|p| p.into_inner()));
    let ids: Vec<String> = submits
        .iter()
        .filter_map(|s| s.acked_id().map(str::to_string))
        .collect();
    eprintln!(
        "chaos: workload done ({} submits, {} acknowledged); settling",
        submits.len(),
        ids.len()
    );
    world.settle(&ids);
    // The agents stop before anything is fetched, so every answer their journals hold was
    // committed before the timelines were read.
    world.stop_agents();
    let factories = world.journals();
    let jobs = ids.iter().map(|id| world.fetch(id)).collect();
    let budget = world.budget(BUDGET);
    let history = History {
        seed: cfg.seed,
        command,
        started_at,
        workload_ended_at,
        ended_at: now_ms(),
        submits,
        faults,
        jobs,
        factories,
        budget,
    };
    drop(world);
    let verdict = check(&history);
    let report = report::build(&history, &verdict);
    crate::write_outputs(&dir, &history, &report)?;
    if let Some(e) = failure {
        return Err(ChaosError::Setup(format!(
            "{e}; the partial history is in {}",
            dir.display()
        )));
    }
    Ok(Outcome {
        history,
        report,
        dir,
    })
}

/// The processes under fault. Dropped agents first, then nodes, then etcd, then the network.
/// `faults` injects into it, `collect` reads the history out of it.
struct World {
    agents: Vec<Agent>,
    nodes: Vec<Node>,
    etcd: LocalEtcdCluster,
    /// Removed after every process is gone.
    net: Option<Network>,
    api: Api,
    submits: Arc<Mutex<Vec<Submit>>>,
}

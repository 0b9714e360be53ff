//! The runner: starts the cluster, runs the workload and the seeded fault schedule, settles,
//! fetches every acknowledged job and hands the history to the checker.
//!
//! Faults run one after another on the calling thread, each undone (process restarted or
//! continued, link restored) before the next starts, so at most one etcd member and at most
//! one coordinator node are ever down, stopped or cut off: with three of each, etcd keeps its
//! quorum and two nodes stay up. The workload submits from its own threads meanwhile. With
//! `netns`, nodes run in network namespaces and partitions and flapping links join the schedule.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gigafactory_core::wire::Event;
use gigafactory_storage::LocalEtcdCluster;
use serde_json::{Value, json};

use crate::ChaosError;
use crate::checker::check;
use crate::history::{
    Attempt, FactoryJournal, Fault, History, JobRecord, Millis, Outcome as SubmitOutcome, Submit,
    is_terminal,
};
use crate::netns::Network;
use crate::procs::{Agent, Api, Node, Site, poll};
use crate::report::{self, Report};
use crate::rng::Rng;

/// Job lease TTL of every node; SIGSTOPs last longer than this so the stopped holder is fenced.
pub const LEASE_TTL_MS: u64 = 3_000;
const ETCD_MEMBERS: usize = 3;
/// Where the run's keys live in etcd.
const STORE_NAMESPACE: &str = "chaos/";
/// Quiet time before the first fault, so the cluster has settled its shards and factories.
const WARMUP_MS: u64 = 3_000;
/// After the workload: how long jobs may take to become terminal before the run stops.
const SETTLE_DEADLINE: Duration = Duration::from_secs(60);
/// How long a node kill may take to have its shards re-owned before we stop measuring.
const REOWN_DEADLINE: Duration = Duration::from_secs(30);
/// How long a factory crash waits for the factory to be mid-job before killing it anyway.
const MID_JOB_DEADLINE: Duration = Duration::from_secs(5);
/// How long the agents may take to enroll.
const ENROLL_DEADLINE: Duration = Duration::from_secs(30);
/// Shards every cluster is split into (`core::cluster::SHARDS`).
const SHARDS: usize = 16;
/// What every job runs: short, and it names itself in its log.
const JOB_COMMAND: &str = "sleep 0.2; echo $GF_JOB_ID";
/// High enough that repeated lease expiries rarely kill a job; dead is still legal.
const MAX_ATTEMPTS: u32 = 20;
/// How long a flapping link stays in each state: from the minimum, plus up to the spread.
const FLAP_MIN_MS: u64 = 100;
const FLAP_SPREAD_MS: u64 = 400;
/// Mixed into the seed for the workload's choices, so they do not shift the fault schedule.
const WORKLOAD_SALT: u64 = 0x5EED_F10A_D5EE_D000;

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

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    NodeKill,
    NodeStop,
    FactoryStop,
    FactoryCrash,
    EtcdRestart,
    PanicScheduler,
    PanicReaper,
    PanicJob,
    PanicFactory,
    NetPartition,
    NetFlap,
}

impl Kind {
    /// Relative weights in the schedule.
    const TABLE: [(Kind, u64); 9] = [
        (Kind::NodeKill, 2),
        (Kind::NodeStop, 2),
        (Kind::FactoryStop, 2),
        (Kind::FactoryCrash, 2),
        (Kind::EtcdRestart, 2),
        (Kind::PanicScheduler, 1),
        (Kind::PanicReaper, 1),
        (Kind::PanicJob, 1),
        (Kind::PanicFactory, 1),
    ];
    /// Added with `netns`. Without it the table, and so every seed's schedule, is unchanged.
    const NETWORK: [(Kind, u64); 2] = [(Kind::NetPartition, 2), (Kind::NetFlap, 2)];

    fn table(netns: bool) -> Vec<(Kind, u64)> {
        let network: &[(Kind, u64)] = if netns { &Self::NETWORK } else { &[] };
        Self::TABLE.iter().chain(network).copied().collect()
    }

    fn name(self) -> &'static str {
        match self {
            Kind::NodeKill => "node_kill",
            Kind::NodeStop => "node_stop",
            Kind::FactoryStop => "factory_stop",
            Kind::FactoryCrash => "factory_crash",
            Kind::EtcdRestart => "etcd_restart",
            Kind::PanicScheduler => "panic_scheduler",
            Kind::PanicReaper => "panic_reaper",
            Kind::PanicJob => "panic_job",
            Kind::PanicFactory => "panic_factory",
            Kind::NetPartition => "net_partition",
            Kind::NetFlap => "net_flap",
        }
    }
}

/// One fault of the schedule, fixed by the seed.
#[derive(Debug, Clone, PartialEq)]
struct Planned {
    /// Milliseconds after the run's start.
    at_ms: u64,
    kind: Kind,
    /// The node, factory or etcd member it hits (for panics: the node asked to inject it).
    target: usize,
    /// How long the fault lasts, in milliseconds.
    hold_ms: u64,
    /// Picks the job or factory a panic hits among those known then.
    pick: u64,
}

fn plan(cfg: &Config) -> Vec<Planned> {
    let mut rng = Rng::new(cfg.seed);
    let span = (cfg.duration_secs * 1_000).saturating_sub(WARMUP_MS).max(1);
    let spacing = span / cfg.faults.max(1) as u64;
    let table = Kind::table(cfg.netns);
    let total: u64 = table.iter().map(|(_, w)| w).sum();
    (0..cfg.faults)
        .map(|i| {
            let at_ms = WARMUP_MS + i as u64 * spacing + rng.below(spacing / 2 + 1);
            let mut roll = rng.below(total);
            let kind = table
                .iter()
                .find(|(_, w)| {
                    let hit = roll < *w;
                    roll = roll.saturating_sub(*w);
                    hit
                })
                .map_or(Kind::NodeKill, |(k, _)| *k);
            let target = match kind {
                Kind::FactoryStop | Kind::FactoryCrash => rng.below(cfg.factories as u64),
                Kind::EtcdRestart => rng.below(ETCD_MEMBERS as u64),
                _ => rng.below(cfg.nodes as u64),
            } as usize;
            let hold_ms = match kind {
                Kind::NodeKill => rng.between(2_000, 5_000),
                Kind::NodeStop | Kind::FactoryStop => {
                    rng.between(LEASE_TTL_MS + 1_000, LEASE_TTL_MS + 3_000)
                }
                Kind::FactoryCrash => rng.between(500, 2_000),
                Kind::EtcdRestart => rng.between(1_000, 4_000),
                // Some partitions end within the lease TTL, some outlast it.
                Kind::NetPartition => rng.between(1_000, 2 * LEASE_TTL_MS + 2_000),
                Kind::NetFlap => rng.between(2_000, 6_000),
                _ => 0,
            };
            Planned {
                at_ms,
                kind,
                target,
                hold_ms,
                pick: rng.next_u64(),
            }
        })
        .collect()
}

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

/// Submits jobs at `rate` per second through random nodes until `stop`.
fn workload(
    api: Api,
    urls: Vec<String>,
    seed: u64,
    rate: f64,
    submits: Arc<Mutex<Vec<Submit>>>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = Rng::new(seed ^ WORKLOAD_SALT);
    let start = Instant::now();
    let mut inflight = Vec::new();
    let mut i: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        // Pacing the workload, not waiting for state.
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let first = rng.below(urls.len() as u64) as usize;
        let (api, urls, submits) = (api.clone(), urls.clone(), submits.clone());
        let key = format!("chaos-{seed}-{i}");
        // One thread per submit, so a stopped node delays only its own requests.
        inflight.push(std::thread::spawn(move || {
            let s = submit(&api, &urls, first, &key);
            submits.lock().unwrap_or_else(|p| p.into_inner()).push(s);
        }));
        i += 1;
        // Joining finished submits as we go: an unjoined thread keeps its stack until joined.
        let (done, running): (Vec<_>, Vec<_>) = inflight.into_iter().partition(|t| t.is_finished());
        for t in done {
            let _ = t.join();
        }
        inflight = running;
    }
    for t in inflight {
        let _ = t.join();
    }
}

/// One submit: tried on `first`, then once on the next node with the same idempotency key.
fn submit(api: &Api, urls: &[String], first: usize, key: &str) -> Submit {
    let body = json!({
        "key": key,
        "title": key,
        "product": "chaos",
        "payload": {"command": JOB_COMMAND},
        "idempotency_key": key,
        "max_attempts": MAX_ATTEMPTS,
    });
    let mut attempts = Vec::new();
    for node in [first, (first + 1) % urls.len()] {
        let sent_at = now_ms();
        let outcome = match api.call("POST", &format!("{}/v1/jobs", urls[node]), Some(&body)) {
            Ok((200 | 201, v)) => match v["id"].as_str() {
                Some(id) => SubmitOutcome::Acked {
                    id: id.to_string(),
                    created: v["created"] == true,
                },
                None => SubmitOutcome::Unacked {
                    error: format!("no id in {v}"),
                },
            },
            Ok((status, v)) => SubmitOutcome::Unacked {
                error: format!("{status} {v}"),
            },
            Err(e) => SubmitOutcome::Unacked { error: e },
        };
        let acked = matches!(outcome, SubmitOutcome::Acked { .. });
        attempts.push(Attempt {
            node,
            sent_at,
            answered_at: now_ms(),
            outcome,
        });
        if acked {
            break;
        }
    }
    Submit {
        key: key.to_string(),
        attempts,
    }
}

/// The processes under fault. Dropped agents first, then nodes, then etcd, then the network.
struct World {
    agents: Vec<Agent>,
    nodes: Vec<Node>,
    etcd: LocalEtcdCluster,
    /// Removed after every process is gone.
    net: Option<Network>,
    api: Api,
    submits: Arc<Mutex<Vec<Submit>>>,
}

impl World {
    fn inject(&mut self, p: &Planned) -> Result<Fault, ChaosError> {
        let t = p.target;
        let hold = Duration::from_millis(p.hold_ms);
        let mut fault = Fault {
            kind: p.kind.name().to_string(),
            target: String::new(),
            start: now_ms(),
            end: 0,
            recovered_after_ms: None,
            note: None,
        };
        match p.kind {
            Kind::NodeKill => {
                fault.target = format!("node {t}");
                let me = self.node_id(t);
                let killed = Instant::now();
                fault.start = now_ms();
                self.nodes[t].kill();
                let observer = &self.nodes[(t + 1) % self.nodes.len()].url;
                match me {
                    Some(me) => {
                        let reowned = poll(REOWN_DEADLINE, || {
                            shards_owned_without(&self.api, observer, &me)
                        });
                        if reowned {
                            fault.recovered_after_ms = Some(killed.elapsed().as_millis() as u64);
                        } else {
                            fault.note = Some(format!("shards not re-owned in {REOWN_DEADLINE:?}"));
                        }
                    }
                    None => fault.note = Some("node id unknown; recovery not measured".into()),
                }
                // Keeping the node down for its planned time.
                std::thread::sleep(hold.saturating_sub(killed.elapsed()));
                self.nodes[t].restart(&self.api)?;
            }
            Kind::NetPartition => {
                fault.target = format!("node {t}");
                let net = self.network()?;
                let me = self.node_id(t);
                let cut = Instant::now();
                fault.start = now_ms();
                net.partition(t, true)?;
                // Only a partition that outlasts the node lease moves shards.
                if let Some(me) = me.filter(|_| p.hold_ms > LEASE_TTL_MS) {
                    let observer = &self.nodes[(t + 1) % self.nodes.len()].url;
                    if poll(hold, || shards_owned_without(&self.api, observer, &me)) {
                        fault.recovered_after_ms = Some(cut.elapsed().as_millis() as u64);
                    }
                }
                std::thread::sleep(hold.saturating_sub(cut.elapsed()));
                net.partition(t, false)?;
            }
            Kind::NetFlap => {
                fault.target = format!("node {t}");
                let net = self.network()?;
                let period = FLAP_MIN_MS + p.pick % FLAP_SPREAD_MS;
                fault.note = Some(format!("down and up every {period} ms"));
                fault.start = now_ms();
                net.flap(t, Duration::from_millis(period), hold)?;
            }
            Kind::NodeStop => {
                fault.target = format!("node {t}");
                self.nodes[t].stop();
                std::thread::sleep(hold);
                self.nodes[t].resume();
            }
            Kind::FactoryStop => {
                fault.target = format!("factory {t}");
                self.agents[t].stop();
                std::thread::sleep(hold);
                self.agents[t].resume();
            }
            Kind::FactoryCrash => {
                fault.target = format!("factory {t}");
                let id = self.agents[t].factory_id().unwrap_or_default();
                let url = format!(
                    "{}/v1/jobs?state=running&factory={id}&limit=1",
                    self.nodes[0].url
                );
                let mid_job = poll(MID_JOB_DEADLINE, || {
                    self.api
                        .get_ok(&url)
                        .is_ok_and(|v| v["jobs"].as_array().is_some_and(|j| !j.is_empty()))
                });
                if !mid_job {
                    fault.note = Some("no running job seen; killed anyway".into());
                }
                fault.start = now_ms();
                self.agents[t].kill();
                std::thread::sleep(hold);
                self.agents[t].restart()?;
            }
            Kind::EtcdRestart => {
                fault.target = format!("etcd m{t}");
                self.etcd
                    .kill(t)
                    .map_err(|e| ChaosError::Setup(format!("kill etcd m{t}: {e}")))?;
                std::thread::sleep(hold);
                self.etcd
                    .restart(t)
                    .map_err(|e| ChaosError::Setup(format!("restart etcd m{t}: {e}")))?;
            }
            Kind::PanicScheduler | Kind::PanicReaper | Kind::PanicJob | Kind::PanicFactory => {
                let body = match p.kind {
                    Kind::PanicScheduler => Some(json!({"target": "scheduler"})),
                    Kind::PanicReaper => Some(json!({"target": "reaper"})),
                    Kind::PanicJob => self
                        .recent_job(p.pick)
                        .map(|id| json!({"target": "job", "id": id})),
                    _ => {
                        let a = &self.agents[(p.pick % self.agents.len() as u64) as usize];
                        a.factory_id()
                            .map(|id| json!({"target": "factory", "id": id}))
                    }
                };
                fault.target = match &body {
                    Some(b) => format!("node {t} {}", b["id"].as_str().unwrap_or("")),
                    None => format!("node {t}"),
                }
                .trim_end()
                .to_string();
                fault.start = now_ms();
                fault.note = match body {
                    None => Some("nothing to hit yet".into()),
                    Some(b) => {
                        let url = format!("{}/v1/admin/faults", self.nodes[t].url);
                        match self.api.call("POST", &url, Some(&b)) {
                            Ok((202, _)) => None,
                            Ok((s, v)) => Some(format!("refused: {s} {v}")),
                            Err(e) => Some(format!("refused: {e}")),
                        }
                    }
                };
            }
        }
        fault.end = now_ms();
        Ok(fault)
    }

    /// Node `t`'s id in the cluster view, if it answers.
    fn node_id(&self, t: usize) -> Option<String> {
        self.api
            .get_ok(&format!("{}/v1/cluster", self.nodes[t].url))
            .ok()
            .and_then(|v| v["this_node"].as_str().map(str::to_string))
    }

    fn network(&self) -> Result<&Network, ChaosError> {
        self.net
            .as_ref()
            .ok_or_else(|| ChaosError::Config("a network fault needs --netns".into()))
    }

    /// One of the last acknowledged jobs, likely still active.
    fn recent_job(&self, pick: u64) -> Option<String> {
        const RECENT: usize = 20;
        let submits = self.submits.lock().unwrap_or_else(|p| p.into_inner());
        let ids: Vec<&str> = submits
            .iter()
            .rev()
            .filter_map(|s| s.acked_id())
            .take(RECENT)
            .collect();
        (!ids.is_empty()).then(|| ids[(pick % ids.len() as u64) as usize].to_string())
    }

    /// GET from the first node that answers 200 or 404.
    fn get_any(&self, path: &str) -> Option<(u16, Value)> {
        self.nodes.iter().find_map(|n| {
            match self.api.call("GET", &format!("{}{path}", n.url), None) {
                Ok((s, v)) if s == 200 || s == 404 => Some((s, v)),
                _ => None,
            }
        })
    }

    fn stop_agents(&mut self) {
        for a in &mut self.agents {
            a.kill();
        }
    }

    /// Every agent's journal, read once the run has settled.
    fn journals(&self) -> Vec<FactoryJournal> {
        self.agents
            .iter()
            .map(|a| FactoryJournal {
                index: a.index,
                factory_id: a.factory_id().unwrap_or_default(),
                exchanges: a.journal(),
            })
            .collect()
    }

    /// Waits, bounded, until every job in `ids` is terminal.
    fn settle(&self, ids: &[String]) {
        let mut open: Vec<&String> = ids.iter().collect();
        let done = poll(SETTLE_DEADLINE, || {
            open.retain(|id| {
                !matches!(self.get_any(&format!("/v1/jobs/{id}")),
                    Some((200, v)) if v["state"].as_str().is_some_and(is_terminal))
            });
            open.is_empty()
        });
        if !done {
            eprintln!(
                "chaos: {} jobs still open after {SETTLE_DEADLINE:?}",
                open.len()
            );
        }
    }

    /// A job and its whole timeline, from any live node.
    fn fetch(&self, id: &String) -> JobRecord {
        let mut rec = JobRecord {
            id: id.clone(),
            found: false,
            state: None,
            events: Vec::new(),
        };
        match self.get_any(&format!("/v1/jobs/{id}")) {
            Some((200, v)) => {
                rec.found = true;
                rec.state = v["state"].as_str().map(str::to_string);
            }
            _ => return rec,
        }
        const PAGE: usize = 200;
        let mut after: Option<u64> = None;
        loop {
            let path = match after {
                Some(a) => format!("/v1/jobs/{id}/events?after={a}&limit={PAGE}"),
                None => format!("/v1/jobs/{id}/events?limit={PAGE}"),
            };
            let Some((200, v)) = self.get_any(&path) else {
                break;
            };
            let page: Vec<Event> = serde_json::from_value(v).unwrap_or_default();
            let full = page.len() == PAGE;
            after = page.last().map(|e| e.seq);
            rec.events.extend(page);
            if !full {
                break;
            }
        }
        rec
    }
}

/// Whether `observer` shows every shard owned, none by `dead`.
fn shards_owned_without(api: &Api, observer: &str, dead: &str) -> bool {
    let Ok(v) = api.get_ok(&format!("{observer}/v1/cluster")) else {
        return false;
    };
    let Some(shards) = v["shards"].as_array() else {
        return false;
    };
    let owners: Vec<&str> = shards
        .iter()
        .filter_map(|s| s[1]["owner"].as_str())
        .collect();
    owners.len() == SHARDS.min(shards.len()) && !owners.contains(&dead)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(seed: u64) -> Config {
        Config {
            seed,
            duration_secs: 60,
            faults: 10,
            nodes: 3,
            factories: 3,
            jobs_per_sec: 3.0,
            out: None,
            exe: PathBuf::from("gigafactory"),
            netns: false,
        }
    }

    #[test]
    fn a_seed_fixes_the_schedule() {
        assert_eq!(plan(&cfg(1)), plan(&cfg(1)));
        assert_ne!(plan(&cfg(1)), plan(&cfg(2)));
        let p = plan(&cfg(1));
        assert_eq!(p.len(), 10);
        assert!(p.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        assert!(p.iter().all(|f| f.at_ms >= WARMUP_MS && f.at_ms < 60_000));
    }

    #[test]
    fn network_faults_join_the_schedule_only_with_netns() {
        let kinds = |netns| {
            plan(&Config {
                faults: 300,
                netns,
                ..cfg(4)
            })
            .into_iter()
            .map(|f| f.kind)
            .collect::<Vec<_>>()
        };
        let with = kinds(true);
        assert!(with.contains(&Kind::NetPartition) && with.contains(&Kind::NetFlap));
        let without = kinds(false);
        assert!(!without.contains(&Kind::NetPartition) && !without.contains(&Kind::NetFlap));
        // The seed tests/e2e_chaos.rs runs with --netns: both network faults, and others.
        let e2e = plan(&Config {
            duration_secs: 45,
            faults: 8,
            netns: true,
            ..cfg(19)
        });
        assert!(e2e.iter().any(|f| f.kind == Kind::NetPartition));
        assert!(e2e.iter().any(|f| f.kind == Kind::NetFlap));
    }

    #[test]
    fn stops_outlast_the_lease_ttl() {
        for f in plan(&Config {
            faults: 200,
            ..cfg(3)
        }) {
            if matches!(f.kind, Kind::NodeStop | Kind::FactoryStop) {
                assert!(f.hold_ms > LEASE_TTL_MS);
            }
        }
    }
}

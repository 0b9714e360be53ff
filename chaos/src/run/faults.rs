//! Injecting one planned fault into the running processes and undoing it before returning: a
//! killed node or factory is restarted, a stopped process continued, an etcd member restarted,
//! a cut or flapping link restored (an injected actor panic is the node's own to recover from).
//! Returning only once the fault is undone is what keeps at most one etcd member and one node
//! down at a time. Each fault is recorded with its real start and end and, for a node kill or a
//! partition that outlasts the lease, how long the cluster took to re-own the node's shards.

use std::time::{Duration, Instant};

use serde_json::json;

use super::schedule::{Kind, Planned};
use super::{LEASE_TTL_MS, World, now_ms};
use crate::ChaosError;
use crate::history::Fault;
use crate::netns::Network;
use crate::procs::{Api, poll};

/// How long a node kill may take to have its shards re-owned before we stop measuring.
const REOWN_DEADLINE: Duration = Duration::from_secs(30);
/// How long a factory crash waits for the factory to be mid-job before killing it anyway.
const MID_JOB_DEADLINE: Duration = Duration::from_secs(5);
/// Shards every cluster is split into (`core::cluster::SHARDS`).
const SHARDS: usize = 16;
/// How long a flapping link stays in each state: from the minimum, plus up to the spread.
const FLAP_MIN_MS: u64 = 100;
const FLAP_SPREAD_MS: u64 = 400;

impl World {
    /// Injects `p`, holds it for its planned time and undoes it.
    pub(super) fn inject(&mut self, p: &Planned) -> Result<Fault, ChaosError> {
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

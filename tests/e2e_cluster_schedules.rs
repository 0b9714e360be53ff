//! A schedule on three coordinator nodes sharing a three-member etcd cluster (real
//! processes), its shard's owner killed mid-run: every tick in the window submits at most
//! once (S1: read back through the jobs' idempotency keys and the history), and ticks after
//! the shard moved (within the node lease TTL) fire again, from another node.

#![cfg(feature = "etcd")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use gigafactory_storage::LocalEtcdCluster;
use serde_json::{Value, json};

fn shard_owner(node: &Coordinator, shard: u64) -> Option<String> {
    let v = get(node, "/v1/cluster");
    v["shards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s[0] == shard)
        .and_then(|s| s[1]["owner"].as_str().map(str::to_owned))
}

fn history(node: &Coordinator) -> Vec<Value> {
    get(node, "/v1/schedules/every-second")["history"]
        .as_array()
        .unwrap()
        .clone()
}

fn submitted(runs: &[Value]) -> Vec<&Value> {
    runs.iter()
        .filter(|r| r["outcome"] == "submitted")
        .collect()
}

#[test]
fn a_schedule_fires_once_per_tick_on_three_nodes_while_its_shards_owner_is_killed() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let etcd = LocalEtcdCluster::start(3).expect("etcd cluster");
    let store = etcd.store_url("e2e-schedules/");
    let a = Coordinator::start_on(&dir.path().join("a"), &store, 3_000, None);
    let b = Coordinator::start_on(&dir.path().join("b"), &store, 3_000, Some(&a.admin));
    let c = Coordinator::start_on(&dir.path().join("c"), &store, 3_000, Some(&a.admin));
    let mut nodes: BTreeMap<String, Coordinator> = [a, b, c]
        .into_iter()
        .map(|n| {
            let id = get(&n, "/v1/cluster")["this_node"]
                .as_str()
                .unwrap()
                .to_owned();
            (id, n)
        })
        .collect();
    let any = nodes.values().next().unwrap();
    wait_for(
        Duration::from_secs(30),
        "three nodes sharing every shard",
        || {
            let v = get(any, "/v1/cluster");
            let mut owners: BTreeMap<&str, usize> = BTreeMap::new();
            for s in v["shards"].as_array().unwrap() {
                if let Some(o) = s[1]["owner"].as_str() {
                    *owners.entry(o).or_default() += 1;
                }
            }
            // Settled: every shard owned, none past a fair share, so none moves meanwhile.
            owners.len() == 3
                && owners.values().sum::<usize>() == 16
                && owners.values().all(|n| *n <= 6)
        },
    );
    let body = json!({
        "cron": "* * * * * *",
        "overlap": "queue",
        "job": {"key": "tick", "title": "every second", "product": "cron", "payload": {"command": "true"}},
    });
    let (status, v) = call(
        "PUT",
        &format!("{}/v1/schedules/every-second", any.url),
        Some(&any.admin),
        Some(&body.to_string()),
    );
    assert_eq!(status, 201, "{v}");
    let shard = v["shard"].as_u64().unwrap();
    wait_for(
        Duration::from_secs(30),
        "three runs before the kill",
        || submitted(&history(any)).len() >= 3,
    );

    // Kill the node that owns the schedule's shard, mid-run.
    let owner = shard_owner(any, shard).expect("the shard has an owner");
    let mut killed = nodes.remove(&owner).unwrap();
    let before = history(nodes.values().next().unwrap());
    let fired_by_owner = submitted(&before)
        .iter()
        .all(|r| r["node"].as_str() == Some(owner.as_str()));
    assert!(fired_by_owner, "only the shard's owner fires: {before:?}");
    killed.kill();
    let killed_at = before[0]["tick"].as_u64().unwrap();
    let survivor = nodes.values().next().unwrap();
    wait_for(
        Duration::from_secs(40),
        "three runs fired by another node",
        || {
            submitted(&history(survivor))
                .iter()
                .filter(|r| r["node"].as_str() != Some(owner.as_str()))
                .count()
                >= 3
        },
    );

    // At most one submission per tick, read back from the history and from the jobs.
    let runs = history(survivor);
    let ticks: Vec<u64> = runs
        .iter()
        .filter(|r| r["outcome"] != "missed")
        .map(|r| r["tick"].as_u64().unwrap())
        .collect();
    let distinct: BTreeSet<u64> = ticks.iter().copied().collect();
    assert_eq!(distinct.len(), ticks.len(), "a tick ran twice: {runs:?}");
    let listed = get(survivor, "/v1/jobs?product=cron&limit=1000");
    let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
    for j in listed["jobs"].as_array().unwrap() {
        *by_key
            .entry(j["idempotency_key"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(by_key.values().all(|n| *n == 1), "{by_key:?}");
    let from_runs: BTreeSet<String> = submitted(&runs)
        .iter()
        .map(|r| format!("schedule:every-second:{}", r["tick"]))
        .collect();
    let from_jobs: BTreeSet<String> = by_key.keys().cloned().collect();
    // Every run's job is there, and every job up to the history's latest tick is a run's
    // (jobs listed after the history was read may be newer).
    assert!(
        from_runs.is_subset(&from_jobs),
        "{from_runs:?} vs {from_jobs:?}"
    );
    let latest = runs[0]["tick"].as_u64().unwrap();
    for key in &from_jobs {
        let tick: u64 = key.rsplit(':').next().unwrap().parse().unwrap();
        assert!(
            tick > latest || from_runs.contains(key),
            "{key} is no run's: {runs:?}"
        );
    }
    assert!(
        submitted(&runs)
            .iter()
            .any(|r| r["tick"].as_u64().unwrap() > killed_at + 3_000),
        "ticks after failover fire again: {runs:?}"
    );
}

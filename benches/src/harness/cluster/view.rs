//! The cluster as a node sees it (`GET /v1/cluster`): which nodes live, who owns each shard,
//! and the waits the comparison builds on it (the nodes settled, a killed node's shards
//! re-owned, a restarted node owning shards again).

use std::time::{Duration, Instant};

use gigafactory_core::cluster::{NodeRecord, SHARDS, ShardLease};
use serde::Deserialize;
use uuid::Uuid;

use super::WATCH_PAUSE_MS;
use crate::harness::error::{Error, Result};

/// Longest wait for one cluster view.
const VIEW_TIMEOUT_SECS: u64 = 2;

/// The part of `/v1/cluster` the bench reads.
#[derive(Deserialize)]
pub(crate) struct ClusterView {
    pub this_node: Uuid,
    /// `(alive, record)`.
    nodes: Vec<(bool, NodeRecord)>,
    /// `(shard, live lease)`.
    shards: Vec<(u32, Option<ShardLease>)>,
}

impl ClusterView {
    /// Every shard has a live owner, and none is `dead`.
    pub fn owned_without(&self, dead: Uuid) -> bool {
        let owners: Vec<Uuid> = self
            .shards
            .iter()
            .filter_map(|(_, l)| l.map(|l| l.owner))
            .collect();
        owners.len() == SHARDS as usize && !owners.contains(&dead)
    }

    pub fn owns_any(&self, node: Uuid) -> bool {
        self.shards
            .iter()
            .any(|(_, l)| l.is_some_and(|l| l.owner == node))
    }

    pub fn alive(&self, node: Uuid) -> Option<bool> {
        self.nodes
            .iter()
            .find(|(_, r)| r.id == node)
            .map(|(alive, _)| *alive)
    }

    /// `count` nodes are alive, every shard is owned, and each live node owns some.
    pub fn settled(&self, count: usize) -> bool {
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

    /// The lease TTL of the node that answered, from its own record (its expiry minus its
    /// last heartbeat).
    pub fn node_lease_ttl_ms(&self) -> Option<u64> {
        self.nodes
            .iter()
            .find(|(_, r)| r.id == self.this_node)
            .map(|(_, r)| r.expires_at.saturating_sub(r.heartbeat_at))
    }
}

/// The cluster as the node at `url` sees it.
pub(crate) async fn cluster_view(
    http: &reqwest::Client,
    url: &str,
    admin: &str,
) -> Result<ClusterView> {
    let what = format!("GET {url}/v1/cluster");
    let failed = |e: reqwest::Error| Error::request(what.as_str(), e.to_string());
    http.get(format!("{url}/v1/cluster"))
        .bearer_auth(admin)
        .timeout(Duration::from_secs(VIEW_TIMEOUT_SECS))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(failed)?
        .json()
        .await
        .map_err(failed)
}

/// Polls `url`'s cluster view until `done` holds or `within` passes; when it held.
pub(crate) async fn poll_view(
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
    fn the_node_lease_ttl_is_read_off_the_answering_nodes_record() {
        let mut v = view(&[(1, true), (2, true)], &[]);
        v.nodes[0].1.heartbeat_at = 10_000;
        v.nodes[0].1.expires_at = 13_000;
        assert_eq!(v.node_lease_ttl_ms(), Some(3_000));
        v.this_node = id(9);
        assert_eq!(
            v.node_lease_ttl_ms(),
            None,
            "a node missing from its own view"
        );
    }
}

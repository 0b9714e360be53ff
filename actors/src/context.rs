//! What every part of one coordinator node shares: the store, the configuration, the clock,
//! the registry of its actors (`registry.rs`: how an actor reaches another), the shards it
//! holds, its fleet stream, its counters and its courier (how it reaches trackers). Actors and the coordinator's handle get an
//! `Arc<Context>`; they reach each other only through it, never by importing each other's
//! state.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

use gigafactory_core::cluster::shard_of;
use gigafactory_core::job::{JobId, Millis};
use gigafactory_storage::repo::BudgetBook;
use gigafactory_storage::{AnyStore, BlobStore};
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::Config;
use crate::courier::Courier;
use crate::fleet::FleetHub;
use crate::registry::Registry;
use crate::sealing::SecretsKey;
use crate::stats_history::NodeStats;

/// What a node reaches outside the store, given by whoever starts it: the clock, how it
/// calls trackers, where artifacts' bytes go.
pub struct Edges {
    pub clock: Arc<dyn Clock>,
    pub courier: Arc<dyn Courier>,
    pub blobs: BlobStore,
    /// Seals and opens secrets' values; without one, secrets cannot be set or fetched.
    pub secrets_key: Option<Arc<SecretsKey>>,
}

impl Edges {
    /// `clock`, no tracker callbacks, and artifacts in memory: for tests and tools.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Edges {
            clock,
            courier: Arc::new(crate::courier::NoCourier),
            blobs: BlobStore::in_memory(),
            secrets_key: None,
        }
    }
}

pub(crate) struct Context {
    pub store: AnyStore,
    pub config: Config,
    clock: Arc<dyn Clock>,
    /// This node's id in the cluster; it also names its fleet stream.
    pub node_id: Uuid,
    pub started_at: Millis,
    pub actors: Registry,
    /// Shards this node holds, and until when its leases on them run (`MembershipActor`).
    shards: RwLock<(BTreeSet<u32>, Millis)>,
    pub fleet: FleetHub,
    pub stats: NodeStats,
    /// Until when (ms) the node reports itself unhealthy on `/readyz`: a crash loop sets it
    /// one restart window past its latest restart, so it clears once a whole window passes
    /// without one (0: healthy).
    pub unhealthy_until: AtomicU64,
    /// Sends trackers their callbacks (the binary's HTTP client).
    pub courier: Arc<dyn Courier>,
    /// Artifacts' bytes (every node of a cluster must reach the same one).
    pub blobs: BlobStore,
    /// Budget definitions kept between transactions for claims and charges (B3 in
    /// `storage`'s `repo::budgets` says why that is exact).
    pub budget_book: BudgetBook,
    /// The operator's secrets key (`sealing.rs`), when one was given.
    pub secrets_key: Option<Arc<SecretsKey>>,
}

impl Context {
    pub fn new(store: AnyStore, config: Config, edges: Edges) -> Self {
        let Edges {
            clock,
            courier,
            blobs,
            secrets_key,
        } = edges;
        let started_at = clock.now_ms();
        let node_id = Uuid::now_v7();
        // Only nodes sharing a store share fleet events; a store of its own needs no feed.
        let feed = config
            .shared_store
            .then(|| crate::fleet_relay::spawn_feed_writer(store.clone(), node_id));
        let stats = NodeStats::new(config.stats_history_samples);
        Context {
            store,
            config,
            clock,
            node_id,
            started_at,
            actors: Registry::default(),
            shards: RwLock::new((BTreeSet::new(), 0)),
            fleet: FleetHub::new(node_id, feed),
            stats,
            unhealthy_until: AtomicU64::new(0),
            courier,
            blobs,
            budget_book: BudgetBook::default(),
            secrets_key,
        }
    }

    pub fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    /// Adopts the shards the membership transaction just committed, held until `until`.
    pub fn hold_shards(&self, owned: BTreeSet<u32>, until: Millis) {
        *self.shards.write().expect("shards lock poisoned") = (owned, until);
    }

    /// The shards this node holds an unexpired lease on, or `None` on a store of its own
    /// (where it does all the work).
    pub fn owned_shards(&self) -> Option<BTreeSet<u32>> {
        if !self.config.shared_store {
            return None;
        }
        let (owned, until) = &*self.shards.read().expect("shards lock poisoned");
        Some(if self.now() < *until {
            owned.clone()
        } else {
            BTreeSet::new()
        })
    }

    /// Whether this node should do one-owner work for `job` now: always on a store of its
    /// own; on a shared store only for the shards it holds an unexpired lease on.
    pub fn owns_shard(&self, job: JobId) -> bool {
        if !self.config.shared_store {
            return true;
        }
        let (owned, until) = &*self.shards.read().expect("shards lock poisoned");
        self.now() < *until && owned.contains(&shard_of(job.0))
    }
}

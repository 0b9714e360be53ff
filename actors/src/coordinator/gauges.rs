//! The node's state on `/metrics`, computed at scrape time in this one place from what the
//! node already holds: the factories (one read of their records, as the overview makes), the
//! scheduler's snapshot (its queue by product and shape, the fleet's running jobs) and, on a
//! shared store, the nodes and shard leases. No job is read: a scrape costs the same with a
//! deep queue as with an empty one. Events (leases, fenced writes, commits) are counted where
//! they happen instead (`crate::metrics`).

use gigafactory_core::fleet::{Factory, FactoryStatus};
use gigafactory_core::job::Millis;
use gigafactory_core::load::{self, FleetCount, SHAPES_EXPORTED_MAX, Shape, ShapeQueue};

use super::{ClusterView, Coordinator};
use crate::error::Result;
use crate::scheduler::SchedulerSnapshot;

/// One gauge and its samples now.
#[derive(Debug, Clone, PartialEq)]
pub struct GaugeFamily {
    pub name: &'static str,
    pub help: &'static str,
    pub samples: Vec<GaugeSample>,
}

/// One labelled value of a gauge. Label values come from bounded sets (statuses, states,
/// products, capability shapes), never an id.
#[derive(Debug, Clone, PartialEq)]
pub struct GaugeSample {
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Coordinator {
    /// Describes this node's event series and exports each at 0 with every label value it can
    /// take (call once the process's recorder is installed).
    pub fn describe_metrics(&self) {
        crate::metrics::describe(self.store_engine());
    }

    /// The state gauges as of now (see `state_gauges`).
    pub async fn gauges(&self) -> Result<Vec<GaugeFamily>> {
        let factories = self.factories().await?;
        let scheduler = self.scheduler_snapshot().await?;
        let cluster = if self.ctx.config.shared_store {
            Some(self.cluster().await?)
        } else {
            None
        };
        Ok(state_gauges(
            &factories,
            &scheduler,
            cluster.as_ref(),
            self.now(),
        ))
    }
}

/// Every state gauge from what the node holds at `now`; `cluster` is `None` on a store of the
/// node's own, where it is the one node alive and owns every shard.
///
/// A product or shape is exported only while the scheduler holds a job of it: one that
/// empties leaves the page, so Prometheus marks its series stale at the next scrape and no
/// alert or panel keeps a value that is no longer true (zeros kept instead would grow the
/// page with every product and shape ever seen). The shape that requires nothing (`any`) is
/// always exported, so the queue's series exist on a fresh node.
fn state_gauges(
    factories: &[Factory],
    scheduler: &SchedulerSnapshot,
    cluster: Option<&ClusterView>,
    now: Millis,
) -> Vec<GaugeFamily> {
    let mut families = vec![jobs(scheduler)];
    families.extend(queues(factories, scheduler, now));
    families.extend(fleet(factories));
    families.extend(cluster_gauges(cluster));
    families
}

fn sample(labels: &[(&'static str, &str)], value: f64) -> GaugeSample {
    GaugeSample {
        labels: labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        value,
    }
}

/// Jobs by state and product: queued (the scheduler's index) and running (every lease it
/// knows of). A product is exported in both states while it has a job in either.
fn jobs(scheduler: &SchedulerSnapshot) -> GaugeFamily {
    let mut products: Vec<&String> = scheduler
        .queued_by_product
        .keys()
        .chain(scheduler.running_by_product.keys())
        .collect();
    products.sort_unstable();
    products.dedup();
    let mut samples = Vec::with_capacity(products.len() * 2);
    for product in products {
        let queued = scheduler.queued_by_product.get(product).copied();
        let running = scheduler.running_by_product.get(product).copied();
        samples.push(sample(
            &[("state", "queued"), ("product", product)],
            queued.unwrap_or(0) as f64,
        ));
        samples.push(sample(
            &[("state", "running"), ("product", product)],
            f64::from(running.unwrap_or(0)),
        ));
    }
    GaugeFamily {
        name: "gigafactory_jobs",
        help: "Jobs this node's scheduler knows, by state (queued, running) and product.",
        samples,
    }
}

/// Per capability shape: depth, the oldest queued job's age, and the online factories that
/// fit it.
fn queues(factories: &[Factory], scheduler: &SchedulerSnapshot, now: Millis) -> [GaugeFamily; 4] {
    let mut shapes = scheduler.shapes.clone();
    let any = Shape::new(&[], None);
    if !shapes.iter().any(|q| q.shape == any) {
        shapes.push(ShapeQueue::empty(any));
    }
    let (loads, omitted) = load::most_telling(
        load::shape_loads(&shapes, factories, now),
        SHAPES_EXPORTED_MAX,
    );
    let per_shape = |value: &dyn Fn(&load::ShapeLoad) -> f64| -> Vec<GaugeSample> {
        loads
            .iter()
            .map(|l| {
                let caps = l.shape.capabilities_label();
                let engine = l.shape.engine_class.as_deref().unwrap_or("");
                sample(
                    &[("capabilities", &caps), ("engine_class", engine)],
                    value(l),
                )
            })
            .collect()
    };
    [
        GaugeFamily {
            name: "gigafactory_queue_depth_jobs",
            help: "Queued jobs by the capabilities and engine class they require.",
            samples: per_shape(&|l| l.queued as f64),
        },
        GaugeFamily {
            name: "gigafactory_queue_oldest_age_seconds",
            help: "How long the oldest queued job of a shape that could run has waited since it could (its creation or the end of its backoff; 0 when none).",
            samples: per_shape(&|l| l.oldest_queued_age_ms as f64 / 1_000.0),
        },
        GaugeFamily {
            name: "gigafactory_queue_factories_online",
            help: "Online factories that fit a shape (0 with jobs queued: nobody can run them).",
            samples: per_shape(&|l| l.factories_online as f64),
        },
        GaugeFamily {
            name: "gigafactory_queue_shapes_omitted",
            help: "Shapes with work left out of the per-shape series (at most 100 are exported: those no factory fits first, then the deepest).",
            samples: vec![sample(&[], omitted as f64)],
        },
    ]
}

/// Factories by status, and the slots of those that hold work.
fn fleet(factories: &[Factory]) -> [GaugeFamily; 2] {
    let count = FleetCount::of(factories);
    [
        GaugeFamily {
            name: "gigafactory_factories",
            help: "Enrolled factories by status.",
            samples: FactoryStatus::ALL
                .iter()
                .map(|s| sample(&[("status", s.name())], count.with_status(*s) as f64))
                .collect(),
        },
        GaugeFamily {
            name: "gigafactory_factory_slots",
            help: "Slots of online and draining factories: busy, and total.",
            samples: vec![
                sample(&[("state", "busy")], f64::from(count.slots_busy)),
                sample(&[("state", "total")], f64::from(count.slots)),
            ],
        },
    ]
}

/// Nodes alive and down (a dead node's record is kept a minute after its lease ran out), and
/// shards without a live lease.
fn cluster_gauges(cluster: Option<&ClusterView>) -> [GaugeFamily; 2] {
    let (alive, down, unowned) = match cluster {
        Some(c) => {
            let alive = c.nodes.iter().filter(|(alive, _)| *alive).count();
            let unowned = c.shards.iter().filter(|(_, l)| l.is_none()).count();
            (alive, c.nodes.len() - alive, unowned)
        }
        None => (1, 0, 0),
    };
    [
        GaugeFamily {
            name: "gigafactory_cluster_nodes",
            help: "Coordinator nodes on this store, alive or down.",
            samples: vec![
                sample(&[("state", "alive")], alive as f64),
                sample(&[("state", "down")], down as f64),
            ],
        },
        GaugeFamily {
            name: "gigafactory_shards_unowned",
            help: "Shards no live node holds a lease on (their expiries and echoes wait).",
            samples: vec![sample(&[], unowned as f64)],
        },
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use gigafactory_core::cluster::{NodeRecord, ShardLease};
    use gigafactory_core::job::FactoryId;

    use super::*;

    fn factory(caps: &[&str], slots: u32, busy: u32, status: FactoryStatus) -> Factory {
        Factory {
            id: FactoryId(uuid::Uuid::now_v7()),
            name: "f".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
            engine_classes: Vec::new(),
            slots,
            cost_per_hour_micros: 0,
            status,
            enrolled_at: 0,
            last_heartbeat: 0,
            slots_busy: busy,
            token_hash: [0; 32],
            warm: Vec::new(),
        }
    }

    fn snapshot(shapes: Vec<ShapeQueue>) -> SchedulerSnapshot {
        SchedulerSnapshot {
            queued: shapes.iter().map(|s| s.queued).sum(),
            queued_by_product: BTreeMap::from([("web".to_string(), 2)]),
            queued_by_capability: BTreeMap::new(),
            waiting_claims: 0,
            running: 1,
            running_by_product: BTreeMap::from([("api".to_string(), 1)]),
            preemptions_pending: 0,
            budget_holds: 0,
            limit_holds: 0,
            shapes,
        }
    }

    fn value(families: &[GaugeFamily], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let family = families.iter().find(|f| f.name == name)?;
        let s = family.samples.iter().find(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })?;
        Some(s.value)
    }

    #[test]
    fn a_queued_shape_nobody_fits_shows_zero_factories_and_its_oldest_age() {
        let gpu = ShapeQueue {
            shape: Shape::new(&["gpu".to_string()], Some("claude")),
            queued: 2,
            runnable: 2,
            oldest_ready_at: Some(1_000),
            running: 0,
        };
        let factories = [factory(&["linux"], 4, 1, FactoryStatus::Online)];
        let g = state_gauges(&factories, &snapshot(vec![gpu]), None, 31_000);
        let gpu = [("capabilities", "gpu"), ("engine_class", "claude")];
        assert_eq!(value(&g, "gigafactory_queue_depth_jobs", &gpu), Some(2.0));
        assert_eq!(
            value(&g, "gigafactory_queue_factories_online", &gpu),
            Some(0.0)
        );
        assert_eq!(
            value(&g, "gigafactory_queue_oldest_age_seconds", &gpu),
            Some(30.0)
        );
        let any = [("capabilities", "any"), ("engine_class", "")];
        assert_eq!(value(&g, "gigafactory_queue_depth_jobs", &any), Some(0.0));
        assert_eq!(
            value(&g, "gigafactory_queue_factories_online", &any),
            Some(1.0)
        );
    }

    #[test]
    fn a_fresh_node_exports_every_family_with_the_any_shape_and_fixed_label_values() {
        let g = state_gauges(&[], &snapshot(Vec::new()), None, 5);
        let names: Vec<&str> = g.iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            [
                "gigafactory_jobs",
                "gigafactory_queue_depth_jobs",
                "gigafactory_queue_oldest_age_seconds",
                "gigafactory_queue_factories_online",
                "gigafactory_queue_shapes_omitted",
                "gigafactory_factories",
                "gigafactory_factory_slots",
                "gigafactory_cluster_nodes",
                "gigafactory_shards_unowned",
            ]
        );
        for f in &g[1..] {
            assert!(!f.samples.is_empty(), "{} has no sample", f.name);
        }
        assert_eq!(g[5].samples.len(), 4, "one sample per factory status");
        // A node on a store of its own is the cluster, and owns every shard.
        assert_eq!(
            value(&g, "gigafactory_cluster_nodes", &[("state", "alive")]),
            Some(1.0)
        );
        assert_eq!(value(&g, "gigafactory_shards_unowned", &[]), Some(0.0));
    }

    #[test]
    fn jobs_are_exported_per_product_in_both_states_while_either_has_one() {
        let g = state_gauges(&[], &snapshot(Vec::new()), None, 5);
        let at = |state, product| {
            value(
                &g,
                "gigafactory_jobs",
                &[("state", state), ("product", product)],
            )
        };
        assert_eq!(at("queued", "web"), Some(2.0));
        assert_eq!(at("running", "web"), Some(0.0));
        assert_eq!(at("running", "api"), Some(1.0));
        assert_eq!(at("queued", "api"), Some(0.0));
        assert_eq!(
            g[0].samples.len(),
            4,
            "a product no job has is not exported"
        );
    }

    #[test]
    fn factories_count_by_status_and_slots_count_online_and_draining_ones() {
        let factories = [
            factory(&[], 4, 3, FactoryStatus::Online),
            factory(&[], 2, 1, FactoryStatus::Draining),
            factory(&[], 8, 0, FactoryStatus::Offline),
        ];
        let g = state_gauges(&factories, &snapshot(Vec::new()), None, 5);
        let status = |s| value(&g, "gigafactory_factories", &[("status", s)]);
        assert_eq!(
            ["online", "draining", "offline", "revoked"].map(status),
            [Some(1.0), Some(1.0), Some(1.0), Some(0.0)]
        );
        let slots = |s| value(&g, "gigafactory_factory_slots", &[("state", s)]);
        assert_eq!((slots("busy"), slots("total")), (Some(4.0), Some(6.0)));
    }

    #[test]
    fn a_shared_store_counts_nodes_alive_and_down_and_shards_without_a_live_lease() {
        let node = |alive| {
            let record = NodeRecord {
                id: uuid::Uuid::now_v7(),
                addr: String::new(),
                started_at: 0,
                heartbeat_at: 0,
                expires_at: 0,
            };
            (alive, record)
        };
        let lease = ShardLease {
            owner: uuid::Uuid::nil(),
            epoch: 1,
            expires_at: 10,
        };
        let cluster = ClusterView {
            this_node: uuid::Uuid::nil(),
            now: 5,
            nodes: vec![node(true), node(true), node(false)],
            shards: vec![(0, Some(lease)), (1, None), (2, None)],
        };
        let g = state_gauges(&[], &snapshot(Vec::new()), Some(&cluster), 5);
        let nodes = |s| value(&g, "gigafactory_cluster_nodes", &[("state", s)]);
        assert_eq!((nodes("alive"), nodes("down")), (Some(2.0), Some(1.0)));
        assert_eq!(value(&g, "gigafactory_shards_unowned", &[]), Some(2.0));
    }
}

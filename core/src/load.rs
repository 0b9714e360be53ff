//! What the queue asks of the fleet, shape by shape: for each set of requirements jobs carry
//! (capabilities and engine class), how many wait and since when, how many run, and which
//! online factories could take them. Metrics, alerts and scaling hints all read this one
//! picture, so they cannot disagree.

use serde::Serialize;

use crate::fleet::{Factory, FactoryStatus};
use crate::job::Millis;

/// What a job requires of a factory: capabilities sorted and without repeats.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema)]
pub struct Shape {
    pub capabilities: Vec<String>,
    pub engine_class: Option<String>,
}

impl Shape {
    pub fn new(capabilities: &[String], engine_class: Option<&str>) -> Self {
        let mut capabilities = capabilities.to_vec();
        capabilities.sort_unstable();
        capabilities.dedup();
        Shape {
            capabilities,
            engine_class: engine_class.map(str::to_owned),
        }
    }

    /// The capabilities as one label value: `gpu,linux`, or `any` when none are required.
    pub fn capabilities_label(&self) -> String {
        if self.capabilities.is_empty() {
            "any".into()
        } else {
            self.capabilities.join(",")
        }
    }

    /// Whether `f` offers everything the shape requires.
    pub fn fits(&self, f: &Factory) -> bool {
        self.capabilities.iter().all(|c| f.capabilities.contains(c))
            && self
                .engine_class
                .as_ref()
                .is_none_or(|e| f.engine_classes.contains(e))
    }
}

/// What the scheduler holds of one shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeQueue {
    pub shape: Shape,
    /// Every queued job of the shape, those waiting out a backoff or held included.
    pub queued: usize,
    /// Those that could be placed now: due (past their backoff or a provider's reset) and not
    /// held by a budget or a limit.
    pub runnable: usize,
    /// Since when the oldest runnable job could run: its creation, or the end of its backoff
    /// (`None` with none runnable).
    pub oldest_ready_at: Option<Millis>,
    pub running: usize,
}

impl ShapeQueue {
    /// A shape with nothing queued or running.
    pub fn empty(shape: Shape) -> Self {
        ShapeQueue {
            shape,
            queued: 0,
            runnable: 0,
            oldest_ready_at: None,
            running: 0,
        }
    }
}

/// One shape's demand beside the supply that could meet it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ShapeLoad {
    pub shape: Shape,
    /// Every queued job, those waiting out a backoff or a provider's reset, or held by a
    /// budget or a limit, included.
    pub queued: usize,
    /// Queued jobs that could be placed now: what more factories would serve.
    pub runnable: usize,
    pub running: usize,
    /// How long the oldest runnable job has waited since it could run (its creation or the
    /// end of its backoff; 0 with none runnable).
    pub oldest_queued_age_ms: u64,
    /// Online factories (not draining) that fit the shape, and their slots.
    pub factories_online: usize,
    pub slots: u32,
    pub slots_busy: u32,
}

/// The supply side at a glance: factories by status, and the slots of those that hold work
/// (online and draining: a draining factory still runs what it has).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FleetCount {
    pub online: usize,
    pub draining: usize,
    pub offline: usize,
    pub revoked: usize,
    pub slots: u32,
    /// Never more than `slots`: a factory's busy count is capped at its own slots.
    pub slots_busy: u32,
}

impl FleetCount {
    pub fn of(factories: &[Factory]) -> FleetCount {
        let mut c = FleetCount::default();
        for f in factories {
            match f.status {
                FactoryStatus::Online => c.online += 1,
                FactoryStatus::Draining => c.draining += 1,
                FactoryStatus::Offline => c.offline += 1,
                FactoryStatus::Revoked => c.revoked += 1,
            }
            if matches!(f.status, FactoryStatus::Online | FactoryStatus::Draining) {
                c.slots += f.slots;
                c.slots_busy += f.slots_busy.min(f.slots);
            }
        }
        c
    }

    pub fn with_status(&self, status: FactoryStatus) -> usize {
        match status {
            FactoryStatus::Online => self.online,
            FactoryStatus::Draining => self.draining,
            FactoryStatus::Offline => self.offline,
            FactoryStatus::Revoked => self.revoked,
        }
    }
}

/// Shapes a node exports as metric labels at most: each is three series, and nothing bounds
/// how many capability sets manifests may use.
pub const SHAPES_EXPORTED_MAX: usize = 100;

/// The `max` shapes most worth a series, and how many were left out: first those with work
/// no online factory fits (what an on-call engineer must see), then the deepest queues, then
/// the longest waits; the shape that requires nothing is always kept.
pub fn most_telling(mut loads: Vec<ShapeLoad>, max: usize) -> (Vec<ShapeLoad>, usize) {
    let total = loads.len();
    loads.sort_by(|a, b| {
        let stuck = |l: &ShapeLoad| l.queued > 0 && l.factories_online == 0;
        let any = |l: &ShapeLoad| l.shape.capabilities.is_empty() && l.shape.engine_class.is_none();
        (any(b), stuck(b), b.queued, b.oldest_queued_age_ms)
            .cmp(&(any(a), stuck(a), a.queued, a.oldest_queued_age_ms))
            .then_with(|| a.shape.cmp(&b.shape))
    });
    loads.truncate(max);
    let omitted = total - loads.len();
    loads.sort_by(|a, b| a.shape.cmp(&b.shape));
    (loads, omitted)
}

/// Joins the scheduler's queues with the factories that could serve them, at `now`. A
/// factory counts for every shape it fits, so slots overlap between shapes.
pub fn shape_loads(queues: &[ShapeQueue], factories: &[Factory], now: Millis) -> Vec<ShapeLoad> {
    let online: Vec<&Factory> = factories
        .iter()
        .filter(|f| f.status == FactoryStatus::Online)
        .collect();
    let mut loads: Vec<ShapeLoad> = queues
        .iter()
        .map(|q| {
            let fitting: Vec<&&Factory> = online.iter().filter(|f| q.shape.fits(f)).collect();
            ShapeLoad {
                shape: q.shape.clone(),
                queued: q.queued,
                runnable: q.runnable,
                running: q.running,
                oldest_queued_age_ms: q.oldest_ready_at.map_or(0, |t| now.saturating_sub(t)),
                factories_online: fitting.len(),
                slots: fitting.iter().map(|f| f.slots).sum(),
                slots_busy: fitting.iter().map(|f| f.slots_busy.min(f.slots)).sum(),
            }
        })
        .collect();
    loads.sort_by(|a, b| a.shape.cmp(&b.shape));
    loads
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::FactoryId;

    fn factory(
        caps: &[&str],
        engines: &[&str],
        slots: u32,
        busy: u32,
        status: FactoryStatus,
    ) -> Factory {
        Factory {
            id: FactoryId(uuid::Uuid::nil()),
            name: "f".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
            engine_classes: engines.iter().map(|c| c.to_string()).collect(),
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

    fn queue(
        caps: &[&str],
        engine: Option<&str>,
        queued: usize,
        oldest: Option<Millis>,
    ) -> ShapeQueue {
        let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
        ShapeQueue {
            shape: Shape::new(&caps, engine),
            queued,
            runnable: queued,
            oldest_ready_at: oldest,
            running: 1,
        }
    }

    #[test]
    fn a_shape_counts_only_online_factories_that_fit_it() {
        let factories = [
            factory(&["gpu", "linux"], &["claude"], 4, 1, FactoryStatus::Online),
            factory(&["linux"], &["claude"], 2, 2, FactoryStatus::Online),
            factory(
                &["gpu", "linux"],
                &["claude"],
                8,
                0,
                FactoryStatus::Draining,
            ),
            factory(&["gpu", "linux"], &[], 8, 0, FactoryStatus::Online),
        ];
        let loads = shape_loads(
            &[queue(&["linux", "gpu"], Some("claude"), 3, Some(1_000))],
            &factories,
            61_000,
        );
        assert_eq!(loads.len(), 1);
        let l = &loads[0];
        assert_eq!(l.shape.capabilities_label(), "gpu,linux");
        assert_eq!((l.factories_online, l.slots, l.slots_busy), (1, 4, 1));
        assert_eq!(l.oldest_queued_age_ms, 60_000);
    }

    #[test]
    fn the_fleet_counts_every_status_and_the_slots_of_factories_that_hold_work() {
        let factories = [
            factory(&[], &[], 4, 1, FactoryStatus::Online),
            factory(&[], &[], 2, 3, FactoryStatus::Draining),
            factory(&[], &[], 8, 0, FactoryStatus::Offline),
            factory(&[], &[], 8, 0, FactoryStatus::Revoked),
            factory(&[], &[], 1, 0, FactoryStatus::Revoked),
        ];
        let c = FleetCount::of(&factories);
        let by_status = FactoryStatus::ALL.map(|s| c.with_status(s));
        assert_eq!(by_status, [1, 1, 1, 2]);
        assert_eq!((c.slots, c.slots_busy), (6, 3));
    }

    #[test]
    fn a_shape_with_nothing_queued_is_zero_aged_and_no_capabilities_read_any() {
        let loads = shape_loads(&[queue(&[], None, 0, None)], &[], 5);
        assert_eq!(loads[0].oldest_queued_age_ms, 0);
        assert_eq!(loads[0].shape.capabilities_label(), "any");
        assert_eq!(loads[0].factories_online, 0);
    }

    #[test]
    fn the_exported_shapes_keep_the_stuck_and_the_deep_and_count_the_rest() {
        let mut queues: Vec<ShapeQueue> = (0..10)
            .map(|n| queue(&[&format!("c{n}")], None, n, Some(0)))
            .collect();
        queues.push(queue(&[], None, 0, None));
        let factories: Vec<Factory> = (0..10)
            .filter(|n| *n != 2)
            .map(|n| factory(&[&format!("c{n}")], &[], 1, 0, FactoryStatus::Online))
            .collect();
        let loads = shape_loads(&queues, &factories, 0);
        let (kept, omitted) = most_telling(loads, 4);
        let labels: Vec<String> = kept.iter().map(|l| l.shape.capabilities_label()).collect();
        // "any" always; c2 has work nobody fits; then the deepest, c9 and c8.
        assert_eq!(labels, ["any", "c2", "c8", "c9"]);
        assert_eq!(omitted, 7);
    }
}

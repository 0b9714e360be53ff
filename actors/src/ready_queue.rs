//! The scheduler's ready queue: every job waiting for a factory, grouped by shape (the
//! capabilities and engine class it requires), each shape in placement order (priority, then
//! age, then id). Whether a factory fits is decided once per shape, so a placement never walks
//! past jobs the asking factory cannot take, however many of them wait ahead.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use gigafactory_core::job::{JobId, Millis};
use gigafactory_core::scoring::{self, FactoryView};
use gigafactory_storage::repo::ReadyEntry;

/// Placement order: higher priority first, then older, then id.
pub(crate) type IndexKey = (Reverse<u32>, Millis, JobId);

/// Where `e` stands in placement order.
pub(crate) fn placement_order(e: &ReadyEntry) -> IndexKey {
    (Reverse(e.priority), e.created_at, e.id)
}

/// What a job requires of a factory, capabilities sorted.
type ShapeKey = (Vec<String>, Option<String>);

fn shape_key(e: &ReadyEntry) -> ShapeKey {
    let mut capabilities = e.capabilities.clone();
    capabilities.sort_unstable();
    capabilities.dedup();
    (capabilities, e.engine_class.clone())
}

/// Names a shape while it has jobs.
pub(crate) type ShapeId = u64;

struct Shape {
    key: ShapeKey,
    jobs: BTreeMap<IndexKey, ReadyEntry>,
}

#[derive(Default)]
pub(crate) struct ReadyQueue {
    /// By shape id; a shape is dropped when its last job leaves.
    shapes: HashMap<ShapeId, Shape>,
    shape_ids: HashMap<ShapeKey, ShapeId>,
    next_shape: ShapeId,
    /// Where each job is.
    at: HashMap<JobId, (ShapeId, IndexKey)>,
}

impl ReadyQueue {
    pub fn len(&self) -> usize {
        self.at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    pub fn get(&self, id: JobId) -> Option<&ReadyEntry> {
        let (shape, key) = self.at.get(&id)?;
        self.shapes.get(shape)?.jobs.get(key)
    }

    /// Every queued job, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &ReadyEntry> {
        self.shapes.values().flat_map(|s| s.jobs.values())
    }

    /// Adds `entry`, replacing (and returning) an entry of the same job.
    pub fn insert(&mut self, entry: ReadyEntry) -> Option<ReadyEntry> {
        let old = self.remove(entry.id);
        let shape_key = shape_key(&entry);
        let shape = match self.shape_ids.get(&shape_key) {
            Some(&id) => id,
            None => {
                let id = self.next_shape;
                self.next_shape += 1;
                self.shape_ids.insert(shape_key.clone(), id);
                self.shapes.insert(
                    id,
                    Shape {
                        key: shape_key,
                        jobs: BTreeMap::new(),
                    },
                );
                id
            }
        };
        let key = placement_order(&entry);
        self.at.insert(entry.id, (shape, key));
        if let Some(s) = self.shapes.get_mut(&shape) {
            s.jobs.insert(key, entry);
        }
        old
    }

    /// Removes job `id`, if queued.
    pub fn remove(&mut self, id: JobId) -> Option<ReadyEntry> {
        let (shape, key) = self.at.remove(&id)?;
        let s = self.shapes.get_mut(&shape)?;
        let entry = s.jobs.remove(&key);
        if s.jobs.is_empty() {
            let gone = self.shapes.remove(&shape).map(|s| s.key);
            if let Some(k) = gone {
                self.shape_ids.remove(&k);
            }
        }
        entry
    }

    /// The shapes whose jobs `factory` can take: one check per shape, whatever its length.
    pub fn fitting(&self, factory: &FactoryView) -> Vec<ShapeId> {
        self.shapes
            .iter()
            .filter(|(_, s)| scoring::fits(&s.key.0, s.key.1.as_ref(), factory))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Up to `max` jobs of `shapes` (see [`fitting`](Self::fitting)), best placement order
    /// first: those due at `now` and accepted by `keep`, looking at no more than `scan`
    /// entries of any one shape.
    pub fn candidates(
        &self,
        shapes: &[ShapeId],
        now: Millis,
        scan: usize,
        max: usize,
        keep: impl Fn(&ReadyEntry) -> bool,
    ) -> Vec<&ReadyEntry> {
        let mut found: Vec<(IndexKey, &ReadyEntry)> = Vec::new();
        // A shape emptied since `fitting` is simply gone.
        for shape in shapes.iter().filter_map(|id| self.shapes.get(id)) {
            found.extend(
                shape
                    .jobs
                    .iter()
                    .take(scan)
                    .filter(|(_, e)| e.not_before <= now && keep(e))
                    .take(max)
                    .map(|(k, e)| (*k, e)),
            );
        }
        found.sort_unstable_by_key(|(k, _)| *k);
        found.into_iter().take(max).map(|(_, e)| e).collect()
    }

    /// The first job in placement order, across shapes, that is due at `now` and accepted by
    /// `keep`.
    pub fn head(&self, now: Millis, keep: impl Fn(&ReadyEntry) -> bool) -> Option<&ReadyEntry> {
        self.shapes
            .values()
            .filter_map(|s| s.jobs.iter().find(|(_, e)| e.not_before <= now && keep(e)))
            .min_by_key(|(k, _)| **k)
            .map(|(_, e)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(n: u128, priority: u32, caps: &[&str], not_before: Millis) -> ReadyEntry {
        ReadyEntry {
            id: JobId(uuid::Uuid::from_u128(n)),
            priority,
            created_at: n as Millis,
            not_before,
            product: "p".into(),
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
            labels: Vec::new(),
            engine_class: None,
            preemptible: true,
            concurrency_key: None,
            affinity: None,
        }
    }

    fn factory(caps: &[&str]) -> FactoryView {
        FactoryView {
            id: 1,
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
            engine_classes: Vec::new(),
            slots: 1,
            slots_busy: 0,
            cost_per_hour_micros: 0,
            warm_repos: Vec::new(),
            success_by_product: Vec::new(),
        }
    }

    #[test]
    fn a_job_behind_many_the_factory_cannot_take_is_still_found() {
        let mut q = ReadyQueue::default();
        for n in 0..10_000 {
            q.insert(entry(n, 900, &["gpu"], 0));
        }
        q.insert(entry(20_000, 1, &["linux"], 0));
        let found = q.candidates(&q.fitting(&factory(&["linux"])), 0, 16, 8, |_| true);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, JobId(uuid::Uuid::from_u128(20_000)));
        assert!(
            q.candidates(&q.fitting(&factory(&["gpu"])), 0, 16, 8, |_| true)
                .len()
                == 8,
            "a factory that fits both sees the best first"
        );
    }

    #[test]
    fn jobs_not_yet_due_or_refused_are_skipped() {
        let mut q = ReadyQueue::default();
        q.insert(entry(1, 5, &[], 1_000));
        q.insert(entry(2, 5, &[], 0));
        q.insert(entry(3, 5, &[], 0));
        let skip_two = |e: &ReadyEntry| e.id != JobId(uuid::Uuid::from_u128(2));
        let found = q.candidates(&q.fitting(&factory(&[])), 10, 16, 8, skip_two);
        assert_eq!(found.len(), 1);
        assert_eq!(q.head(10, |_| true).map(|e| e.created_at), Some(2));
        assert_eq!(q.head(1_000, |_| true).map(|e| e.created_at), Some(1));
    }

    #[test]
    fn capability_order_does_not_split_a_shape_and_empty_shapes_go() {
        let mut q = ReadyQueue::default();
        q.insert(entry(1, 5, &["a", "b"], 0));
        q.insert(entry(2, 5, &["b", "a"], 0));
        assert_eq!(q.shapes.len(), 1);
        q.remove(JobId(uuid::Uuid::from_u128(1)));
        q.remove(JobId(uuid::Uuid::from_u128(2)));
        assert!(q.is_empty() && q.shapes.is_empty() && q.shape_ids.is_empty());
    }

    proptest! {
        /// Against a plain list: the candidates are exactly the best `max` jobs the factory
        /// fits, in placement order, whatever was inserted, replaced and removed.
        #[test]
        fn candidates_match_a_linear_scan(
            ops in prop::collection::vec((0u128..40, 0u32..4, 0usize..4, any::<bool>()), 0..200),
            fcaps in 0usize..4,
            max in 1usize..10,
        ) {
            const CAPS: [&[&str]; 4] = [&[], &["a"], &["b"], &["a", "b"]];
            let mut q = ReadyQueue::default();
            let mut model: HashMap<u128, ReadyEntry> = HashMap::new();
            for (n, priority, caps, delete) in ops {
                if delete {
                    let gone = q.remove(JobId(uuid::Uuid::from_u128(n)));
                    prop_assert_eq!(gone.is_some(), model.remove(&n).is_some());
                } else {
                    let e = entry(n, priority, CAPS[caps], 0);
                    q.insert(e.clone());
                    model.insert(n, e);
                }
            }
            let f = factory(CAPS[fcaps]);
            let mut expected: Vec<&ReadyEntry> = model
                .values()
                .filter(|e| scoring::fits(&e.capabilities, e.engine_class.as_ref(), &f))
                .collect();
            expected.sort_by_key(|e| placement_order(e));
            expected.truncate(max);
            let got = q.candidates(&q.fitting(&f), 0, usize::MAX, max, |_| true);
            prop_assert_eq!(
                got.iter().map(|e| e.id).collect::<Vec<_>>(),
                expected.iter().map(|e| e.id).collect::<Vec<_>>()
            );
            prop_assert_eq!(q.len(), model.len());
        }
    }
}

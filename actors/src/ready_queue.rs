//! The scheduler's ready queue: every job waiting for a factory, grouped by shape (the
//! capabilities and engine class it requires), each shape in placement order (priority, then
//! age, then id). Whether a factory fits is decided once per shape, so a placement never walks
//! past jobs the asking factory cannot take, however many of them wait ahead.
//!
//! It is the coordinator's largest structure (a million queued jobs), so a job is kept packed:
//! its shape once per shape, its product, label set, concurrency key and affinity as numbers
//! into tables that hold each distinct value once (counted, and dropped with its last job),
//! and its place in order once, as the key of its shape's map. Readers get a borrowed
//! [`Queued`] view; a whole [`ReadyEntry`] is rebuilt only for a job that leaves.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use gigafactory_core::job::{JobId, Millis};
use gigafactory_core::load::Shape as LoadShape;
use gigafactory_core::scoring::{self, FactoryView, JobView};
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
pub(crate) type ShapeId = u32;

/// A value held once in a [`Symbols`] table.
type Sym = u32;

/// Values many queued jobs share, each held once and counted; a value goes with the last job
/// that carried it, and its number is used again.
struct Symbols<T> {
    ids: HashMap<T, Sym>,
    /// By number: the value and how many jobs carry it (`None` once free).
    values: Vec<Option<(T, u32)>>,
    free: Vec<Sym>,
}

impl<T> Default for Symbols<T> {
    fn default() -> Self {
        Symbols {
            ids: HashMap::new(),
            values: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T: Hash + Eq + Clone> Symbols<T> {
    fn intern(&mut self, value: T) -> Sym {
        if let Some(&id) = self.ids.get(&value) {
            if let Some((_, n)) = &mut self.values[id as usize] {
                *n += 1;
            }
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.values.push(None);
                (self.values.len() - 1) as Sym
            }
        };
        self.values[id as usize] = Some((value.clone(), 1));
        self.ids.insert(value, id);
        id
    }

    fn get(&self, id: Sym) -> &T {
        &self.values[id as usize]
            .as_ref()
            .expect("a queued job's symbol is held")
            .0
    }

    fn release(&mut self, id: Sym) {
        let slot = &mut self.values[id as usize];
        if let Some((value, n)) = slot {
            *n -= 1;
            if *n == 0 {
                self.ids.remove(value);
                *slot = None;
                self.free.push(id);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.ids.len()
    }
}

/// A queued job as its shape's map holds it, besides its key.
struct Packed {
    not_before: Millis,
    product: Sym,
    /// The job's label set.
    labels: Sym,
    concurrency_key: Option<Sym>,
    affinity: Option<Sym>,
    preemptible: bool,
}

/// A queued job, borrowed from the queue: what placement, holds and explanations read.
pub(crate) struct Queued<'a> {
    pub id: JobId,
    pub priority: u32,
    pub created_at: Millis,
    pub not_before: Millis,
    pub product: &'a str,
    pub labels: &'a [String],
    pub concurrency_key: Option<&'a str>,
    pub affinity: Option<&'a str>,
    pub preemptible: bool,
    shape: &'a ShapeKey,
}

impl Queued<'_> {
    /// The engine class the job needs, if any.
    pub fn engine_class(&self) -> Option<&str> {
        self.shape.1.as_deref()
    }

    /// What placement knows of the job.
    pub fn view(&self) -> JobView {
        JobView {
            id: self.id.0.as_u128(),
            priority: self.priority,
            queued_at_ms: self.created_at,
            capabilities: self.shape.0.clone(),
            labels: self.labels.to_vec(),
            engine_class: self.shape.1.clone(),
            product: self.product.to_owned(),
            repo_hint: self.affinity.map(str::to_owned),
            preemptible: self.preemptible,
        }
    }

    /// The job's whole entry (its capabilities sorted and without repeats).
    pub fn entry(&self) -> ReadyEntry {
        ReadyEntry {
            id: self.id,
            priority: self.priority,
            created_at: self.created_at,
            not_before: self.not_before,
            product: self.product.to_owned(),
            capabilities: self.shape.0.clone(),
            labels: self.labels.to_vec(),
            engine_class: self.shape.1.clone(),
            preemptible: self.preemptible,
            concurrency_key: self.concurrency_key.map(str::to_owned),
            affinity: self.affinity.map(str::to_owned),
        }
    }
}

struct Shape {
    key: ShapeKey,
    jobs: BTreeMap<IndexKey, Packed>,
}

/// Where a job is: its shape and, with its id, its key there.
#[derive(Clone, Copy)]
struct At {
    shape: ShapeId,
    priority: u32,
    created_at: Millis,
}

impl At {
    fn key(&self, id: JobId) -> IndexKey {
        (Reverse(self.priority), self.created_at, id)
    }
}

#[derive(Default)]
pub(crate) struct ReadyQueue {
    /// By shape id; a shape is dropped when its last job leaves.
    shapes: HashMap<ShapeId, Shape>,
    shape_ids: HashMap<ShapeKey, ShapeId>,
    next_shape: ShapeId,
    at: HashMap<JobId, At>,
    /// Products, concurrency keys and affinities.
    names: Symbols<Box<str>>,
    label_sets: Symbols<Box<[String]>>,
}

impl ReadyQueue {
    pub fn len(&self) -> usize {
        self.at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// Every queued job's place in placement order (its id last), in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = IndexKey> + '_ {
        self.at.iter().map(|(id, at)| at.key(*id))
    }

    pub fn contains(&self, id: JobId) -> bool {
        self.at.contains_key(&id)
    }

    pub fn get(&self, id: JobId) -> Option<Queued<'_>> {
        let at = self.at.get(&id)?;
        let shape = self.shapes.get(&at.shape)?;
        let key = at.key(id);
        let packed = shape.jobs.get(&key)?;
        Some(self.unpack(&shape.key, &key, packed))
    }

    fn unpack<'a>(&'a self, shape: &'a ShapeKey, key: &IndexKey, p: &Packed) -> Queued<'a> {
        let (Reverse(priority), created_at, id) = *key;
        Queued {
            id,
            priority,
            created_at,
            not_before: p.not_before,
            product: self.names.get(p.product),
            labels: self.label_sets.get(p.labels),
            concurrency_key: p.concurrency_key.map(|k| &**self.names.get(k)),
            affinity: p.affinity.map(|a| &**self.names.get(a)),
            preemptible: p.preemptible,
            shape,
        }
    }

    /// Adds `entry`, replacing (and returning) an entry of the same job.
    pub fn insert(&mut self, entry: ReadyEntry) -> Option<ReadyEntry> {
        let old = self.remove(entry.id);
        let shape_key = shape_key(&entry);
        let shape = match self.shape_ids.get(&shape_key) {
            Some(&id) => id,
            None => {
                let id = self.next_shape;
                self.next_shape = self.next_shape.wrapping_add(1);
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
        let packed = Packed {
            not_before: entry.not_before,
            product: self.names.intern(entry.product.into()),
            labels: self.label_sets.intern(entry.labels.into()),
            concurrency_key: entry.concurrency_key.map(|k| self.names.intern(k.into())),
            affinity: entry.affinity.map(|a| self.names.intern(a.into())),
            preemptible: entry.preemptible,
        };
        let at = At {
            shape,
            priority: entry.priority,
            created_at: entry.created_at,
        };
        self.at.insert(entry.id, at);
        if let Some(s) = self.shapes.get_mut(&shape) {
            s.jobs.insert(key, packed);
        }
        old
    }

    /// Removes job `id`, if queued.
    pub fn remove(&mut self, id: JobId) -> Option<ReadyEntry> {
        let at = self.at.remove(&id)?;
        let key = at.key(id);
        let s = self.shapes.get_mut(&at.shape)?;
        let packed = s.jobs.remove(&key)?;
        let emptied = s.jobs.is_empty();
        let entry = {
            let s = self.shapes.get(&at.shape)?;
            self.unpack(&s.key, &key, &packed).entry()
        };
        self.names.release(packed.product);
        self.label_sets.release(packed.labels);
        for k in [packed.concurrency_key, packed.affinity]
            .into_iter()
            .flatten()
        {
            self.names.release(k);
        }
        if emptied && let Some(gone) = self.shapes.remove(&at.shape) {
            self.shape_ids.remove(&gone.key);
        }
        Some(entry)
    }

    /// Each shape's depth; of those, the jobs placeable at `now` (due, and accepted by
    /// `keep`: not held); and since when the oldest of them could run (its creation or the end
    /// of its backoff). A pass over every queued job: the scheduler keeps the result a moment.
    pub fn depths(
        &self,
        now: Millis,
        keep: impl Fn(&Queued) -> bool,
    ) -> Vec<(LoadShape, usize, usize, Option<Millis>)> {
        self.shapes
            .values()
            .map(|s| {
                let shape = LoadShape::new(&s.key.0, s.key.1.as_deref());
                let (mut runnable, mut oldest) = (0, None::<Millis>);
                for (k, p) in s.jobs.iter().filter(|(_, p)| p.not_before <= now) {
                    let q = self.unpack(&s.key, k, p);
                    if keep(&q) {
                        runnable += 1;
                        let ready_at = q.created_at.max(q.not_before);
                        oldest = Some(oldest.map_or(ready_at, |o| o.min(ready_at)));
                    }
                }
                (shape, s.jobs.len(), runnable, oldest)
            })
            .collect()
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
        keep: impl Fn(&Queued) -> bool,
    ) -> Vec<Queued<'_>> {
        let mut found: Vec<Queued> = Vec::new();
        // A shape emptied since `fitting` is simply gone.
        for shape in shapes.iter().filter_map(|id| self.shapes.get(id)) {
            found.extend(
                shape
                    .jobs
                    .iter()
                    .take(scan)
                    .filter(|(_, p)| p.not_before <= now)
                    .map(|(k, p)| self.unpack(&shape.key, k, p))
                    .filter(|q| keep(q))
                    .take(max),
            );
        }
        found.sort_unstable_by_key(|q| (Reverse(q.priority), q.created_at, q.id));
        found.truncate(max);
        found
    }

    /// The first job in placement order, across shapes, that is due at `now` and accepted by
    /// `keep`.
    pub fn head(&self, now: Millis, keep: impl Fn(&Queued) -> bool) -> Option<Queued<'_>> {
        self.shapes
            .values()
            .filter_map(|s| {
                s.jobs
                    .iter()
                    .filter(|(_, p)| p.not_before <= now)
                    .map(|(k, p)| self.unpack(&s.key, k, p))
                    .find(|q| keep(q))
            })
            .min_by_key(|q| (Reverse(q.priority), q.created_at, q.id))
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
        let skip_two = |e: &Queued| e.id != JobId(uuid::Uuid::from_u128(2));
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

    #[test]
    fn a_value_many_jobs_carry_is_held_once_and_goes_with_the_last_of_them() {
        let mut q = ReadyQueue::default();
        for n in 0..100 {
            let mut e = entry(n, 5, &["a"], 0);
            e.labels = vec!["team-a".into()];
            e.concurrency_key = Some(format!("key-{}", n % 2));
            q.insert(e);
        }
        // "p", "key-0", "key-1"; one label set.
        assert_eq!((q.names.len(), q.label_sets.len()), (3, 1));
        let back = q.remove(JobId(uuid::Uuid::from_u128(7))).unwrap();
        assert_eq!(back.concurrency_key.as_deref(), Some("key-1"));
        assert_eq!(back.labels, ["team-a"]);
        assert_eq!(back.capabilities, ["a"]);
        for n in 0..100 {
            q.remove(JobId(uuid::Uuid::from_u128(n)));
        }
        assert_eq!((q.names.len(), q.label_sets.len()), (0, 0));
        assert!(q.is_empty() && q.shapes.is_empty());
    }

    proptest! {
        /// Every job counts in its shape's depth; only those due and kept are runnable, and
        /// the oldest is the earliest time one of them could run.
        #[test]
        fn a_shapes_depth_counts_every_job_and_its_oldest_only_runnable_ones(
            jobs in proptest::collection::vec((0u32..4, 1u64..1_000, 0u64..2_000, any::<bool>()), 0..60),
        ) {
            let now = 1_000;
            let mut q = ReadyQueue::default();
            for (n, (priority, created_at, not_before, held)) in jobs.iter().enumerate() {
                let mut e = entry(n as u128 + 1, *priority, &["linux"], *not_before);
                e.created_at = *created_at;
                if *held {
                    e.product = "held".into();
                }
                q.insert(e);
            }
            let depths = q.depths(now, |j| j.product != "held");
            let runnable: Vec<u64> = jobs
                .iter()
                .filter(|(_, _, nb, held)| *nb <= now && !*held)
                .map(|(_, c, nb, _)| (*c).max(*nb))
                .collect();
            prop_assert_eq!(depths.iter().map(|d| d.1).sum::<usize>(), jobs.len());
            prop_assert_eq!(depths.iter().map(|d| d.2).sum::<usize>(), runnable.len());
            prop_assert_eq!(depths.first().and_then(|d| d.3), runnable.iter().copied().min());
        }
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
                    let expected = model.remove(&n).map(|mut e| {
                        e.capabilities.sort_unstable();
                        e
                    });
                    prop_assert_eq!(gone, expected, "a job leaves as it came");
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

//! What the scheduler tells an explanation (`core::waiting`): the queued jobs a job competes
//! with on the factories that fit it, as placement would see them, and the weights and
//! fair-share standing placement would use.

use std::collections::HashMap;

use gigafactory_core::fair_share::Standing;
use gigafactory_core::job::JobId;
use gigafactory_core::scoring::{FactoryView, JobView, Weights};

use super::{SCAN_MAX_ENTRIES, SchedulerState};

/// The competition a queued job meets.
#[derive(Debug, Clone, Default)]
pub struct Rivals {
    pub jobs: Vec<JobView>,
    /// Weights of the products that set their own.
    pub weights: HashMap<String, Weights>,
    pub standing: Standing,
    /// Running jobs per factory, as this node knows them (fresher than a heartbeat's count).
    pub busy: HashMap<u128, u32>,
    /// Each factory's recent outcomes per product, for the success factor.
    pub success: HashMap<u128, Vec<(String, u32, u32)>>,
}

impl SchedulerState {
    /// The jobs placement would weigh against `job` on each of `factories`, merged.
    pub(super) fn rivals(&self, job: JobId, factories: &[FactoryView]) -> Rivals {
        let now = self.ctx.now();
        let mut jobs: HashMap<JobId, JobView> = HashMap::new();
        for f in factories {
            let mut free = f.clone();
            free.slots_busy = 0;
            let shapes = self.queue.fitting(&free);
            let found = self.queue.candidates(
                &shapes,
                now,
                SCAN_MAX_ENTRIES,
                self.ctx.config.placement_candidates_max,
                |e| e.id != job && !self.holds.holds(e, now),
            );
            for e in found {
                jobs.entry(e.id).or_insert_with(|| e.view());
            }
        }
        Rivals {
            jobs: jobs.into_values().collect(),
            weights: self.weights.clone(),
            standing: self.standing.clone(),
            success: factories
                .iter()
                .map(|f| (f.id, self.outcomes.of(f.id)))
                .collect(),
            busy: self.running.iter().fold(HashMap::new(), |mut m, (_, r)| {
                *m.entry(r.factory_id).or_default() += 1;
                m
            }),
        }
    }
}

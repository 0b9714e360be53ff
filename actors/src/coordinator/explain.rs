//! Why a job is not running: the coordinator gathers what `core::waiting` reads (the job, its
//! parents, every factory, what holds it, the queued jobs it competes with) and returns the
//! explanation, once with the weights in force and, when a request overrides some, once more
//! with them.

use std::collections::HashMap;

use gigafactory_core::job::{Job, JobId};
use gigafactory_core::scoring::{self, FactoryView, JobView, Weights, WeightsOverride};
use gigafactory_core::waiting::{self, Explanation, FactoryFacts, Facts, ParentWait};
use gigafactory_storage::{repo, transact};

use super::Coordinator;
use crate::error::{CoordError, Result};
use crate::scheduler::{Rivals, SchedulerMsg};

/// An explanation, and what it would be with a request's weights.
#[derive(Debug, Clone)]
pub struct WhyNotRunning {
    pub job: Job,
    /// What holds the job (a budget's or a limit's message), if anything does.
    pub held: Option<String>,
    pub explanation: Explanation,
    /// The job's product's weights.
    pub weights: Weights,
    /// With the request's override: the weights and the explanation they would give.
    pub what_if: Option<(Weights, Explanation)>,
}

impl Coordinator {
    /// Why job `id` is not running; with `request`, also what those weights would change.
    pub async fn why_not_running(
        &self,
        id: JobId,
        request: Option<WeightsOverride>,
    ) -> Result<WhyNotRunning> {
        let job = self.job(id).await?;
        let (parents, records) = transact!(self.ctx.store, |tx| {
            let mut parents = Vec::new();
            for p in &job.parents {
                if let Some(parent) = repo::load_job(tx, *p).await?
                    && !parent.state.is_success()
                {
                    parents.push(ParentWait {
                        id: parent.id,
                        key: parent.spec.key.clone(),
                        state: parent.state.name().to_owned(),
                    });
                }
            }
            Ok::<_, gigafactory_storage::Error>((parents, repo::factories(tx).await?))
        })?;
        let views: Vec<FactoryView> = records.iter().map(FactoryView::of).collect();
        let held = self.held_by(&job).await?;
        let rivals = if job.state.ready_at().is_some() {
            self.rivals(id, views.clone()).await?
        } else {
            Rivals::default()
        };
        let factories: Vec<FactoryFacts> = records
            .iter()
            .zip(views)
            .map(|(f, mut view)| {
                // A heartbeat's count may predate the last claim.
                let running = rivals.busy.get(&view.id).copied().unwrap_or(0);
                view.slots_busy = view.slots_busy.max(running);
                if let Some(success) = rivals.success.get(&view.id) {
                    view.success_by_product = success.clone();
                }
                FactoryFacts {
                    view,
                    name: f.name.clone(),
                    status: f.status,
                }
            })
            .collect();
        let job_view = JobView::of(&job);
        let base = rivals
            .weights
            .get(&job.spec.product)
            .copied()
            .unwrap_or_default();
        let now = self.now();
        let explain = |weights: &HashMap<String, Weights>| {
            waiting::explain(&Facts {
                job: &job,
                job_view: &job_view,
                parents: parents.clone(),
                factories: &factories,
                held: held.clone(),
                rivals: &rivals.jobs,
                weights,
                standing: &rivals.standing,
                now,
            })
        };
        let explanation = explain(&rivals.weights);
        let what_if = match request {
            None => None,
            Some(o) => {
                let w = scoring::resolve_weights(&base, None, Some(&o))
                    .map_err(|e| CoordError::Invalid(e.to_string()))?;
                let mut weights = rivals.weights.clone();
                weights.insert(job.spec.product.clone(), w);
                Some((w, explain(&weights)))
            }
        };
        Ok(WhyNotRunning {
            held,
            job,
            explanation,
            weights: base,
            what_if,
        })
    }

    async fn rivals(&self, id: JobId, factories: Vec<FactoryView>) -> Result<Rivals> {
        let s = self
            .ctx
            .actors
            .scheduler()
            .ok_or_else(|| CoordError::Unavailable("scheduler restarting".into()))?;
        ractor::call!(s, |reply| SchedulerMsg::Rivals {
            job: id,
            factories,
            reply
        })
        .map_err(|e| CoordError::Unavailable(format!("scheduler: {e}")))
    }
}

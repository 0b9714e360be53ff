//! Preemption (DESIGN §4.4): when the best queued job fits no factory's free slot, the
//! scheduler asks a lower-priority preemptible job (`core::scoring`'s choice) to checkpoint
//! and release, and reserves the slot it frees for the job that preempted.

use gigafactory_core::event::Author;
use gigafactory_core::job::{Command, FactoryId, JobId};
use gigafactory_core::scoring::{self, FactoryView, RunningView};

use super::SchedulerState;
use crate::job_actor::JobMsg;

impl SchedulerState {
    /// When the best queued job fits no factory's free slot, asks a lower-priority
    /// preemptible job to make room (DESIGN §4.4) and reserves the slot it frees.
    pub(super) async fn consider_preemption(&mut self) {
        let now = self.ctx.now();
        let Some(top) = self
            .queue
            .head(now, |e| !self.reserved.values().any(|j| *j == e.id))
        else {
            return;
        };
        let view = top.view();
        if self.factories.values().any(|f| scoring::eligible(&view, f)) {
            return;
        }
        let running: Vec<RunningView> = self.running.iter().map(|(_, r)| r.clone()).collect();
        let factories: Vec<FactoryView> = self.factories.values().cloned().collect();
        let gap = self.ctx.config.preempt_min_priority_gap;
        let Some(i) = scoring::select_preemption_victim(&view, &running, &factories, gap) else {
            return;
        };
        let victim = &running[i];
        let victim_id = JobId(uuid::Uuid::from_u128(victim.job.id));
        let factory_id = FactoryId(uuid::Uuid::from_u128(victim.factory_id));
        let by = top.id;
        let cmd = Command::Preempt {
            by: Some(by),
            grace_ms: self.ctx.config.preempt_grace_ms,
        };
        let preempted = self
            .ctx
            .ask_job(victim_id, |reply| JobMsg::Apply {
                cmd: cmd.clone(),
                author: Author::Scheduler,
                reply,
            })
            .await;
        match preempted {
            Ok(_) => {
                tracing::info!(job_id = %victim_id, factory_id = %factory_id, by = %by, "preempting for a higher-priority job");
                metrics::counter!(crate::metrics::PREEMPTIONS_TOTAL).increment(1);
                self.reserved.insert(factory_id, by);
                self.running.remove(&mut self.standing, &victim_id);
            }
            Err(e) => {
                tracing::debug!(job_id = %victim_id, error = %e, "preemption refused");
                self.running.remove(&mut self.standing, &victim_id);
            }
        }
    }
}

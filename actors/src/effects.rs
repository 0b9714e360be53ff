//! Carrying out a transition's effects after its commit: waking the scheduler, telling
//! factories to stop or preempt, releasing children. Effects run only after the transaction
//! that produced them committed (adopt only after commit).

use std::sync::Arc;

use gigafactory_core::job::{Effect, Job};
use gigafactory_core::wire::FactoryCommand;
use gigafactory_storage::repo::{self, ReadyEntry};
use gigafactory_storage::transact;

use crate::coordinator::Shared;
use crate::factory_actor::FactoryMsg;
use crate::scheduler::SchedulerMsg;

pub(crate) async fn dispatch(shared: &Arc<Shared>, job: &Job, effects: Vec<Effect>) {
    if job.state.lease().is_none() {
        shared.tell_scheduler(SchedulerMsg::LeaseEnded(job.id));
    }
    if job.state.ready_at().is_none() {
        shared.tell_scheduler(SchedulerMsg::JobGone(job.id));
    }
    for effect in effects {
        match effect {
            Effect::Ready { .. } => {
                if let Some(entry) = ReadyEntry::of(job) {
                    shared.tell_scheduler(SchedulerMsg::JobReady(entry));
                }
            }
            Effect::StopOnFactory { factory, epoch } => {
                shared
                    .tell_factory(
                        factory,
                        FactoryMsg::Enqueue(FactoryCommand::Cancel {
                            job_id: job.id,
                            epoch,
                        }),
                    )
                    .await;
            }
            Effect::PreemptOnFactory {
                factory,
                epoch,
                deadline,
            } => {
                shared
                    .tell_factory(
                        factory,
                        FactoryMsg::Enqueue(FactoryCommand::Preempt {
                            job_id: job.id,
                            epoch,
                            deadline,
                        }),
                    )
                    .await;
            }
            Effect::Finished => {
                shared
                    .finished_total
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                metrics::counter!("gigafactory_jobs_finished_total", "state" => job.state.name())
                    .increment(1);
                if job.state.is_success() {
                    release_children(shared, job).await;
                }
            }
        }
    }
}

async fn release_children(shared: &Arc<Shared>, job: &Job) {
    let now = shared.now();
    let backoff = shared.config.backoff;
    let released = transact!(shared.store, |tx| repo::release_children(
        tx, job.id, now, &backoff
    )
    .await);
    match released {
        Ok(ids) => {
            for id in ids {
                let child = transact!(shared.store, |tx| repo::load_job(tx, id).await);
                if let Ok(Some(child)) = child
                    && let Some(entry) = ReadyEntry::of(&child)
                {
                    shared.tell_scheduler(SchedulerMsg::JobReady(entry));
                }
            }
        }
        // The children stay pending in the store; the next parent transition or an operator
        // retry releases them.
        Err(e) => tracing::error!(job_id = %job.id, error = %e, "cannot release children"),
    }
}

//! Carrying out a committed change's effects: keeping the scheduler's queue and running set
//! in step, telling factories to stop or preempt, counting finished jobs, renewed leases and
//! questions to an operator.
//! Called only by `commit::adopt`, after the transaction that made the change committed
//! (adopt only after commit).

use std::sync::Arc;

use gigafactory_core::event::{EventKind, Transition};
use gigafactory_core::job::Effect;
use gigafactory_core::wire::FactoryCommand;
use gigafactory_storage::repo::ReadyEntry;

use crate::context::Context;
use crate::factory_actor::FactoryMsg;
use crate::scheduler::SchedulerMsg;

pub(crate) async fn dispatch(ctx: &Arc<Context>, t: &Transition) {
    let job = &t.job;
    let before = t.before.as_ref();
    if let Some(lease) = before.and_then(|s| s.lease())
        && job.state.lease().is_none()
    {
        // A success or a failure says how the factory does on the product; a release, a
        // preemption or a cancel says nothing of it.
        let ok = match t.kind {
            EventKind::Complete => Some(true),
            EventKind::Fail | EventKind::Expire => Some(false),
            _ => None,
        };
        ctx.tell_scheduler(SchedulerMsg::LeaseEnded {
            id: job.id,
            outcome: ok.map(|ok| (lease.factory, job.spec.product.clone(), ok)),
        });
    }
    // A claim's placement took the job off this node's queue already.
    if t.kind != EventKind::Claim
        && before.is_some_and(|s| s.ready_at().is_some())
        && job.state.ready_at().is_none()
    {
        ctx.tell_scheduler(SchedulerMsg::JobGone(job.id));
    }
    if t.kind == EventKind::Renew {
        crate::metrics::lease_renewed();
    }
    crate::metrics::question_changed(t);
    for effect in &t.effects {
        match *effect {
            Effect::Ready { .. } => {
                if let Some(entry) = ReadyEntry::of(job) {
                    ctx.tell_scheduler(SchedulerMsg::JobReady(entry));
                }
            }
            Effect::StopOnFactory { factory, epoch } => {
                let cmd = FactoryCommand::Cancel {
                    job_id: job.id,
                    epoch,
                };
                ctx.tell_factory(factory, FactoryMsg::Enqueue(cmd)).await;
            }
            Effect::PreemptOnFactory {
                factory,
                epoch,
                deadline,
            } => {
                let cmd = FactoryCommand::Preempt {
                    job_id: job.id,
                    epoch,
                    deadline,
                };
                ctx.tell_factory(factory, FactoryMsg::Enqueue(cmd)).await;
            }
            Effect::Finished => {
                ctx.stats.job_finished();
                metrics::counter!(crate::metrics::JOBS_FINISHED_TOTAL, "state" => job.state.name())
                    .increment(1);
            }
        }
    }
}

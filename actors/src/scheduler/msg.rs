//! What the scheduler is told and asked: the messages of its mailbox, the claims that wait
//! in it, and the picks an end asks for. Which messages count in the mailbox's backlog
//! (`Context::tell_scheduler`) is said here too.

use gigafactory_core::budget::{Crossing, Hold};
use gigafactory_core::job::{FactoryId, JobId, Millis};
use gigafactory_core::limits::LimitHold;
use gigafactory_core::scoring::{FactoryView, ScoreBreakdown, Weights};
use gigafactory_core::wire::ClaimedJob;
use gigafactory_storage::repo::ReadyEntry;
use ractor::RpcReplyPort;
use tokio::sync::oneshot;

use super::{FleetRead, Rivals, SchedulerSnapshot};

/// A claim waiting for an answer.
pub(crate) struct ClaimAsk {
    pub factory_id: FactoryId,
    pub factory: FactoryView,
    pub max: u32,
    /// Answer empty at this time if nothing came.
    pub deadline: Millis,
    pub reply: oneshot::Sender<Vec<ClaimedJob>>,
}

/// An end asking for its factory's next jobs (`ClaimNext`): placed at once, without waiting,
/// and handed back uncommitted; the end's transaction claims them (`claims::settle` says how
/// it went).
pub(crate) struct PickAsk {
    pub factory_id: FactoryId,
    pub factory: FactoryView,
    pub max: u32,
    pub reply: oneshot::Sender<Picked>,
}

/// Jobs placed on a factory and taken out of the queue, each with why it was chosen.
pub(crate) type Picked = Vec<(ReadyEntry, ScoreBreakdown)>;

pub(crate) enum SchedulerMsg {
    /// A job became claimable (submitted, released, requeued, backing off).
    JobReady(ReadyEntry),
    /// A job is no longer claimable.
    JobGone(JobId),
    /// A job no longer holds a lease; with how it ended on which factory, when that says
    /// something of the factory (a success or a failure).
    LeaseEnded {
        id: JobId,
        outcome: Option<(FactoryId, String, bool)>,
    },
    Claim(ClaimAsk),
    Pick(PickAsk),
    /// Claims whose commit failed for a reason that may pass: put the entries back.
    Unclaimed(Vec<ReadyEntry>),
    /// Claims committed: these jobs now run on `factory`.
    Claimed {
        factory: FactoryId,
        jobs: Vec<(ReadyEntry, Millis)>,
    },
    /// A product's resolved scoring weights changed.
    WeightsChanged(String, Weights),
    /// A product's fair share changed.
    ShareChanged(String, u32),
    /// Time to re-read running jobs, factories and product settings from the store.
    FleetTick,
    /// What the store holds of them.
    FleetRead(Box<FleetRead>),
    /// The queued jobs a job competes with on `factories`, and what placement weighs them by.
    Rivals {
        job: JobId,
        factories: Vec<FactoryView>,
        reply: RpcReplyPort<Rivals>,
    },
    /// A factory's current shape, from its heartbeat.
    FactorySeen(FactoryId, FactoryView),
    /// A factory drains, went offline or was revoked: its waiting claims are answered empty.
    FactoryUnavailable(FactoryId),
    /// Expire long-polls and look for preemptions.
    Tick,
    /// Another node changed the ready index: re-read its head from the store.
    Refresh,
    /// Time to re-read the whole ready index (shared store).
    Resync,
    /// One page of a resync, in index order; `last` when the index is read through, `None`
    /// when the resync failed.
    ResyncPage {
        entries: Option<Vec<ReadyEntry>>,
        last: bool,
    },
    /// Budgets changed through this node: read them again.
    BudgetsChanged,
    /// Time to re-read budgets (`budget_refresh_ms`), or the store says some node changed
    /// one.
    BudgetTick,
    /// What every budget holds now, read from the store.
    HoldsLoaded(Vec<Hold>),
    /// Claims the store refused because a budget holds the jobs: put the entries back (they
    /// wait) and hold the budget's jobs.
    Held(Vec<(ReadyEntry, Hold)>),
    /// Claims the store refused because a limit holds the jobs: put the entries back and
    /// hold the limit's jobs until it may admit one.
    Limited(Vec<(ReadyEntry, LimitHold)>),
    /// A report through this node took a budget to its limit.
    BudgetReached(Crossing),
    Snapshot(RpcReplyPort<SchedulerSnapshot>),
    /// Fault injection (admin route): fail, so the supervisor restarts the scheduler.
    Crash,
}

impl SchedulerMsg {
    /// Whether the message came through `Context::tell_scheduler`, which counts the backlog;
    /// timers and the scheduler's own tasks send the rest.
    pub(super) fn sent_by_tell(&self) -> bool {
        matches!(
            self,
            SchedulerMsg::JobReady(_)
                | SchedulerMsg::JobGone(_)
                | SchedulerMsg::LeaseEnded { .. }
                | SchedulerMsg::Claim(_)
                | SchedulerMsg::Pick(_)
                | SchedulerMsg::Unclaimed(_)
                | SchedulerMsg::Claimed { .. }
                | SchedulerMsg::Held(_)
                | SchedulerMsg::Limited(_)
                | SchedulerMsg::WeightsChanged(..)
                | SchedulerMsg::ShareChanged(..)
                | SchedulerMsg::FactorySeen(..)
                | SchedulerMsg::FactoryUnavailable(_)
                | SchedulerMsg::BudgetsChanged
                | SchedulerMsg::BudgetReached(_)
        )
    }
}

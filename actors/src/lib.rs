//! Gigafactory's actor room: the ractor supervision tree that runs a coordinator node.
//!
//! ```text
//! Supervisor ─┬─ SchedulerActor   queued-job index, placement, long-poll claims, preemption
//!             ├─ ReaperActor      expired leases → requeue or dead; wall-clock budgets
//!             ├─ JobActor × n     one per active job: serializes every command on it
//!             ├─ FactoryActor × n one per factory: heartbeats, pending commands, liveness
//!             ├─ MembershipActor  on a shared store: node lease, shard leases
//!             ├─ FleetRelayActor  on a shared store: other nodes' fleet events into this stream
//!             ├─ OutboxActor      tracker echoes due in the node's shards
//!             ├─ ScheduleActor    cron schedules of the node's shards, each tick fired once
//!             └─ SweeperActor     artifact retention, blobs nobody keeps
//! ```
//!
//! Every change of a job is one store transaction committed through `commit` (the one path),
//! then announced and carried out; actors reach each other only through the node's
//! `Context`. [`Coordinator`] is the handle the API calls.

pub mod auth;
mod clock;
mod commit;
mod config;
mod context;
mod coordinator;
mod courier;
mod effects;
mod error;
mod factory_actor;
mod fleet;
mod fleet_relay;
mod job_actor;
mod membership;
pub mod metrics;
mod outbox;
mod ready_queue;
mod reaper;
mod registry;
mod schedule_actor;
mod scheduler;
pub mod sealing;
mod signal_watch;
mod stats_history;
mod supervisor;
mod sweeper;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use context::Edges;
pub use coordinator::{
    AutoscaleView, ClusterView, Coordinator, FaultTarget, GaugeFamily, GaugeSample, IntakeOutcome,
    Minted, OperatorAction, Principal, Session, Stats, TokenInfo, WhyNotRunning,
};
pub use courier::{Courier, NoCourier, Sent};
pub use error::{CoordError, Result};
pub use fleet::{FLEET_BUFFER_EVENTS, FleetEvent, FleetEventId};
pub use scheduler::SchedulerSnapshot;
pub use stats_history::StatsSample;

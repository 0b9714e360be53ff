//! Gigafactory's actor room: the ractor supervision tree that runs a coordinator node.
//!
//! ```text
//! Supervisor ─┬─ SchedulerActor   queued-job index, placement, long-poll claims, preemption
//!             ├─ ReaperActor      expired leases → requeue or dead; wall-clock budgets
//!             ├─ JobActor × n     one per active job: serializes every command on it
//!             ├─ FactoryActor × n one per factory: heartbeats, pending commands, liveness
//!             ├─ MembershipActor  on a shared store: node lease, shard leases
//!             └─ FleetRelayActor  on a shared store: other nodes' fleet events into this stream
//! ```
//!
//! Every state change is one store transaction; an actor commits first, then updates what it
//! holds in memory and runs the effects. [`Coordinator`] is the handle the API calls.

pub mod auth;
mod clock;
mod config;
mod coordinator;
mod effects;
mod error;
mod factory_actor;
mod fleet;
mod fleet_relay;
mod job_actor;
mod membership;
mod ready_queue;
mod reaper;
mod scheduler;
mod stats_history;
mod supervisor;

pub use clock::{Clock, SystemClock};
pub use config::Config;
pub use coordinator::{
    ClusterView, Coordinator, FaultTarget, JobFilter, LogLine, OperatorAction, Principal, Stats,
};
pub use error::{CoordError, Result};
pub use fleet::{FLEET_BUFFER_EVENTS, FleetEvent, FleetEventId};
pub use scheduler::SchedulerSnapshot;
pub use stats_history::StatsSample;

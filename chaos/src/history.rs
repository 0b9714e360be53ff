//! What a chaos run records, as plain data: every submit attempt and its answer, every fault
//! with its window, every request each factory sent and the answer it got (the factories'
//! journals), and, after the run settles, every acknowledged job with its timeline as the
//! coordinator stored it. Written to `history.json` so the checker can be re-run on a
//! saved run without starting anything.

use gigafactory_core::journal::Exchange;
use gigafactory_core::wire::Event;
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, the clock the coordinator stamps events with (every
/// process of a run shares one machine, so one clock).
pub type Millis = u64;

/// States a job never leaves without an operator action (DESIGN §3).
pub const TERMINAL_STATES: &[&str] = &["succeeded", "shipped", "rejected", "dead", "cancelled"];

/// Whether `state` is terminal.
pub fn is_terminal(state: &str) -> bool {
    TERMINAL_STATES.contains(&state)
}

/// A whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub seed: u64,
    /// The command line that reproduces the run.
    pub command: String,
    pub started_at: Millis,
    /// When the workload stopped submitting.
    pub workload_ended_at: Millis,
    /// When the settled jobs were fetched.
    pub ended_at: Millis,
    pub submits: Vec<Submit>,
    pub faults: Vec<Fault>,
    /// Every acknowledged job, fetched after the run settled.
    pub jobs: Vec<JobRecord>,
    /// Every factory's journal.
    #[serde(default)]
    pub factories: Vec<FactoryJournal>,
    /// The run's budget as it stood at the end (every job of the run counts against it).
    #[serde(default)]
    pub budget: Option<BudgetSnapshot>,
}

/// A budget's spend in its period, read after the run settled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetSnapshot {
    pub name: String,
    pub spent_micros: u64,
    pub period_start: Millis,
    pub period_end: Millis,
}

impl History {
    /// Factory writes the coordinator refused as fenced (`409 fenced`): each is a stale
    /// holder, woken or restarted, being turned away.
    pub fn fenced_refusals(&self) -> usize {
        self.exchanges().filter(|(_, e)| e.fenced()).count()
    }

    /// Every recorded request, with the id of the factory that sent it.
    pub fn exchanges(&self) -> impl Iterator<Item = (&str, &Exchange)> {
        self.factories
            .iter()
            .flat_map(|f| f.exchanges.iter().map(|e| (f.factory_id.as_str(), e)))
    }
}

/// What one factory agent sent the coordinators and what they answered, across its restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactoryJournal {
    /// The agent's index in the run.
    pub index: usize,
    /// Its factory id (kept across restarts in its workdir).
    pub factory_id: String,
    /// In the order the agent recorded them.
    pub exchanges: Vec<Exchange>,
}

/// One logical submit: a unique idempotency key, tried on one node and, if that failed, once
/// more on another with the same key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submit {
    pub key: String,
    pub attempts: Vec<Attempt>,
}

impl Submit {
    /// The job id of the first acknowledged attempt.
    pub fn acked_id(&self) -> Option<&str> {
        self.attempts.iter().find_map(|a| match &a.outcome {
            Outcome::Acked { id, .. } => Some(id.as_str()),
            Outcome::Unacked { .. } => None,
        })
    }

    /// When the first acknowledgement came back.
    pub fn acked_at(&self) -> Option<Millis> {
        self.attempts.iter().find_map(|a| match a.outcome {
            Outcome::Acked { .. } => Some(a.answered_at),
            Outcome::Unacked { .. } => None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Index of the coordinator node the request went to.
    pub node: usize,
    pub sent_at: Millis,
    pub answered_at: Millis,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// A 200 or 201 with the job's id: the coordinator promised the job exists.
    Acked { id: String, created: bool },
    /// A connection error, a timeout or an error status: no promise was made.
    Unacked { error: String },
}

/// One injected fault and the window it lasted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// `node_kill`, `node_stop`, `factory_stop`, `factory_crash`, `etcd_restart`,
    /// `panic_scheduler`, `panic_reaper`, `panic_job`, `panic_factory`.
    pub kind: String,
    /// What it hit: `node 1`, `factory 2`, `etcd m0`, a job or factory id.
    pub target: String,
    pub start: Millis,
    pub end: Millis,
    /// For a node kill: milliseconds until the live nodes no longer showed the dead node as
    /// the owner of any shard.
    #[serde(default)]
    pub recovered_after_ms: Option<u64>,
    /// Anything that went wrong injecting it (the fault still counts as attempted).
    #[serde(default)]
    pub note: Option<String>,
}

/// An acknowledged job as a live node showed it after the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    /// False when no node knew the job (404) — a lost submit.
    pub found: bool,
    /// Its state at the end; `None` when it could not be fetched.
    pub state: Option<String>,
    /// Its whole timeline, in sequence order.
    pub events: Vec<Event>,
    /// What it cost in all (`None` when it could not be fetched).
    #[serde(default)]
    pub cost_micros: Option<u64>,
}

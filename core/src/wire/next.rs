//! One round trip per job: an end (complete or fail) may ask for the factory's next jobs, and
//! its answer carries their leases, granted in the end's own transaction.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ClaimedJob, LeaseAnswer};

/// Asked with an end: lease up to `max_jobs` queued jobs to the factory in the same
/// transaction, if the end applies. Nothing queued that fits: the answer carries none, and
/// the factory claims (long-polls) as usual.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimNext {
    /// Most jobs wanted (the slots free once this end applies), at least 1.
    pub max_jobs: u32,
}

/// The answer to an end: the ended lease's answer and, when the end asked for them with
/// [`ClaimNext`], the jobs leased to the factory with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EndAnswer {
    #[serde(flatten)]
    pub lease: LeaseAnswer,
    /// Leased in the end's transaction. Empty when none was asked for, none fitted, or the
    /// end was a retry answered from its first answer (the leases that answer carried, if
    /// it was lost, expire and their jobs are requeued).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next: Vec<ClaimedJob>,
}

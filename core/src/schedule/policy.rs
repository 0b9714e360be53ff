//! What a schedule does at a moment: which tick is due now and which passed unfired (the
//! missed-run policy), and what a due tick does while the previous run still has jobs
//! running (the overlap policy). Pure: the actor and the trigger route call these with the
//! store's records and the node's clock.

use chrono_tz::Tz;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cron::Cron;
use crate::job::{JobId, Millis};

/// How many ticks one decision walks before it jumps to the part that can still fire (a
/// per-second cron paused for a week has 604,800 of them).
pub const TICKS_SCAN_MAX: u32 = 100_000;

/// What a tick does while jobs of the previous run have not all ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Record the tick as skipped, naming the running jobs.
    Skip,
    /// Submit anyway; the scheduler runs them when it can.
    Queue,
    /// Cancel the previous run's unfinished jobs (as an operator would), then submit.
    CancelPrevious,
}

impl Overlap {
    pub const ALL: [Overlap; 3] = [Overlap::Skip, Overlap::Queue, Overlap::CancelPrevious];

    pub fn name(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Queue => "queue",
            Overlap::CancelPrevious => "cancel_previous",
        }
    }
}

/// What happens to ticks that passed while no node could fire them (every node down, the
/// schedule paused): a tick later than the grace is missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// Record them as missed and fire only from now on.
    Skip,
    /// Fire the latest of them once, if it is within the catch-up window.
    RunOnce,
}

impl Missed {
    pub const ALL: [Missed; 2] = [Missed::Skip, Missed::RunOnce];

    pub fn name(self) -> &'static str {
        match self {
            Missed::Skip => "skip",
            Missed::RunOnce => "run_once",
        }
    }
}

/// Ticks that passed unfired: how many, the first and the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissedTicks {
    pub count: u64,
    /// Whether more passed than were counted (the walk jumped past `TICKS_SCAN_MAX`).
    pub more: bool,
    pub first: Millis,
    pub last: Millis,
}

/// A schedule's decision at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The tick to fire now.
    pub fire: Option<Millis>,
    /// The ticks that passed unfired, to record.
    pub missed: Option<MissedTicks>,
    /// Every tick at or before this is decided; the next decision starts after it.
    pub cursor: Millis,
}

/// How the policies apply at `now` to a schedule whose ticks up to `cursor` are decided. A
/// tick at most `grace_ms` old is on time and fires; older ticks are missed, and under
/// `run_once` the latest of them fires all the same when at most `catchup_window_ms` old.
#[allow(clippy::too_many_arguments)]
pub fn due(
    cron: &Cron,
    zone: Tz,
    cursor: Millis,
    now: Millis,
    missed: Missed,
    grace_ms: u64,
    catchup_window_ms: u64,
) -> Due {
    let mut ticks: Vec<Millis> = Vec::new();
    let mut more = false;
    let mut at = cursor;
    let mut walked = 0u32;
    while let Some(t) = cron.next_tick(zone, at).filter(|t| *t <= now) {
        debug_assert!(t > at);
        walked += 1;
        if walked.is_multiple_of(TICKS_SCAN_MAX) {
            // Only the latest ticks can still fire: jump to them, counting no further.
            let reach = match missed {
                Missed::Skip => grace_ms,
                Missed::RunOnce => grace_ms.max(catchup_window_ms),
            };
            let jump = now.saturating_sub(reach + 1);
            if jump > t {
                more = true;
                at = jump;
                continue;
            }
        }
        // Keep the first tick and the latest two; the rest are only counted.
        if ticks.len() == 3 {
            ticks.remove(1);
        }
        ticks.push(t);
        at = t;
    }
    let count = u64::from(walked);
    let Some(&latest) = ticks.last() else {
        return Due {
            fire: None,
            missed: None,
            cursor,
        };
    };
    let age = now - latest;
    let fires = age <= grace_ms || (missed == Missed::RunOnce && age <= catchup_window_ms);
    let unfired = if fires { count - 1 } else { count };
    let missed_ticks = (unfired > 0).then(|| MissedTicks {
        count: unfired,
        more,
        first: ticks[0],
        last: if fires {
            ticks[ticks.len() - 2]
        } else {
            latest
        },
    });
    Due {
        fire: fires.then_some(latest),
        missed: missed_ticks,
        cursor: latest,
    }
}

/// What a firing does given the previous run's jobs that have not ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverlapDecision {
    Submit,
    Skip { reason: String },
    CancelThenSubmit { cancel: Vec<JobId> },
}

pub fn on_overlap(policy: Overlap, unfinished: &[JobId]) -> OverlapDecision {
    if unfinished.is_empty() {
        return OverlapDecision::Submit;
    }
    match policy {
        Overlap::Queue => OverlapDecision::Submit,
        Overlap::Skip => {
            let names: Vec<String> = unfinished.iter().take(3).map(|j| j.0.to_string()).collect();
            let rest = unfinished.len().saturating_sub(3);
            let more = if rest > 0 {
                format!(" and {rest} more")
            } else {
                String::new()
            };
            OverlapDecision::Skip {
                reason: format!(
                    "the previous run is still running: {}{more}",
                    names.join(", ")
                ),
            }
        }
        Overlap::CancelPrevious => OverlapDecision::CancelThenSubmit {
            cancel: unfinished.to_vec(),
        },
    }
}

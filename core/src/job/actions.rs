//! What an operator may do to a job in its state (`allowed_actions`), read off the state
//! machine so that the API and the UI offer only what `apply` accepts, and the reason an
//! operator may give with an action (`action_reason`), kept in the action's event.
//!
//! An allowed action may still be refused for what the job alone does not say: a parent
//! that stays ended (`parent_ended`: retry it first), or a caller who may not review the job.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Job, JobError, JobState};

/// Longest reason an operator may give with an action, in bytes (a request for changes
/// takes one up to [`super::review::REASON_MAX_BYTES`]).
pub const ACTION_REASON_MAX_BYTES: usize = 1_000;

/// An operator's action on a job, as routes, the CLI and the UI name it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Put the job back in the queue now, whatever it is doing (a holder is told to stop);
    /// a finished job starts a new life with its attempts back.
    Requeue,
    /// Start a new life of a job that failed, died, was cancelled or rejected, with its
    /// attempts back.
    Retry,
    /// End the job (a holder is told to stop).
    Cancel,
    /// Approve the job in review; the last approval it needs ships it.
    Ship,
    /// End the job in review for good.
    Reject,
    /// Send the job in review back for a new attempt, with a reason.
    RequestChanges,
}

impl Action {
    /// Every action, in the order the UI shows them.
    pub const ALL: [Action; 6] = [
        Action::Ship,
        Action::RequestChanges,
        Action::Reject,
        Action::Retry,
        Action::Requeue,
        Action::Cancel,
    ];

    /// The action's name, as routes and the CLI spell it.
    pub fn name(self) -> &'static str {
        match self {
            Action::Requeue => "requeue",
            Action::Retry => "retry",
            Action::Cancel => "cancel",
            Action::Ship => "ship",
            Action::Reject => "reject",
            Action::RequestChanges => "request_changes",
        }
    }

    /// The action named `name`.
    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Whether `apply` takes this action on a job in `state` (ignoring the job's parents, its
    /// cost budget and who asks). Mirrors `apply`'s match arms; the property test
    /// `allowed_actions_are_exactly_those_apply_accepts` keeps the two the same.
    fn fits(self, state: &JobState) -> bool {
        match self {
            Action::Cancel => !state.is_terminal(),
            Action::Requeue => !matches!(state, JobState::Pending | JobState::Queued { .. }),
            Action::Retry => matches!(
                state,
                JobState::Dead
                    | JobState::Cancelled { .. }
                    | JobState::Failed { .. }
                    | JobState::Rejected
            ),
            Action::Ship | Action::Reject | Action::RequestChanges => {
                matches!(state, JobState::Review)
            }
        }
    }

    /// Whether the action starts a new attempt or life, which a job past its own cost
    /// budget may not.
    fn starts_over(self) -> bool {
        matches!(
            self,
            Action::Requeue | Action::Retry | Action::RequestChanges
        )
    }
}

/// The actions an operator may take on `job`, in [`Action::ALL`]'s order: those its state
/// takes, less those that start it over when it spent past its own cost budget.
pub fn allowed_actions(job: &Job) -> Vec<Action> {
    let over_cap = job
        .spec
        .cost_budget_micros
        .is_some_and(|cap| job.cost.total() > cap);
    Action::ALL
        .into_iter()
        .filter(|a| a.fits(&job.state) && !(over_cap && a.starts_over()))
        .collect()
}

/// An operator's optional reason as kept: trimmed, at most [`ACTION_REASON_MAX_BYTES`]
/// bytes; a blank one is no reason.
pub fn action_reason(raw: Option<&str>) -> Result<Option<String>, JobError> {
    let Some(trimmed) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    if trimmed.len() > ACTION_REASON_MAX_BYTES {
        return Err(JobError::InvalidReason(format!(
            "the reason is {} bytes; at most {ACTION_REASON_MAX_BYTES}",
            trimmed.len()
        )));
    }
    Ok(Some(trimmed.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_reads_back_from_its_name() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.name()), Some(a));
            assert_eq!(
                serde_json::to_string(&a).unwrap(),
                format!("\"{}\"", a.name())
            );
        }
        assert_eq!(Action::parse("requeued"), None);
    }

    #[test]
    fn a_reason_is_trimmed_a_blank_one_is_none_and_a_long_one_refused() {
        assert_eq!(action_reason(None), Ok(None));
        assert_eq!(action_reason(Some("  \n")), Ok(None));
        assert_eq!(
            action_reason(Some(" flaky runner ")),
            Ok(Some("flaky runner".into()))
        );
        let longest = "x".repeat(ACTION_REASON_MAX_BYTES);
        assert_eq!(action_reason(Some(&longest)), Ok(Some(longest.clone())));
        assert!(matches!(
            action_reason(Some(&format!("{longest}x"))),
            Err(JobError::InvalidReason(why)) if why.contains("1001 bytes")
        ));
    }
}

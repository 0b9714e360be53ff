//! What a job's timeline says: the kind of each event and who caused it. Both are closed sets
//! with one stable spelling each, shared by the store (events and fleet feeds are stored with
//! these strings), the REST API, the UI and the chaos checker; nothing else writes or parses
//! them.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::job::{FactoryId, Job, JobState, Millis};

/// Who caused a change.
///
/// Serialized as its stable string (`factory:<id>`, `scheduler`, `reaper`, `admin:<token
/// name>`, `operator:<token name>`, `tracker:<source>`), so stored events keep the bytes they
/// had as strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(into = "String", try_from = "String")]
pub enum Author {
    /// The factory holding (or taking) the job's lease.
    Factory(FactoryId),
    /// Placement and preemption.
    Scheduler,
    /// Lease expiry and wall-clock budgets.
    Reaper,
    /// A caller with an admin token, named by the token.
    Admin(String),
    /// A caller with an operator token, named by the token.
    Operator(String),
    /// A tracker's delivery (an item closed or reopened), named by its source.
    Tracker(String),
}

impl Author {
    /// The factory, when a factory caused it.
    pub fn factory(&self) -> Option<FactoryId> {
        match self {
            Author::Factory(id) => Some(*id),
            _ => None,
        }
    }
}

impl fmt::Display for Author {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Author::Factory(id) => write!(f, "factory:{id}"),
            Author::Scheduler => f.write_str("scheduler"),
            Author::Reaper => f.write_str("reaper"),
            Author::Admin(name) => write!(f, "admin:{name}"),
            Author::Operator(name) => write!(f, "operator:{name}"),
            Author::Tracker(source) => write!(f, "tracker:{source}"),
        }
    }
}

/// A string that names no author.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} names no author (factory:<id>, scheduler, reaper, admin:<name>, operator:<name>, tracker:<source>)"
)]
pub struct UnknownAuthor(pub String);

impl FromStr for Author {
    type Err = UnknownAuthor;

    fn from_str(s: &str) -> Result<Self, UnknownAuthor> {
        let unknown = || UnknownAuthor(s.to_owned());
        Ok(match s.split_once(':') {
            None if s == "scheduler" => Author::Scheduler,
            None if s == "reaper" => Author::Reaper,
            Some(("factory", id)) => {
                Author::Factory(FactoryId(uuid::Uuid::parse_str(id).map_err(|_| unknown())?))
            }
            Some(("admin", name)) => Author::Admin(name.to_owned()),
            Some(("operator", name)) => Author::Operator(name.to_owned()),
            Some(("tracker", source)) => Author::Tracker(source.to_owned()),
            _ => return Err(unknown()),
        })
    }
}

impl From<Author> for String {
    fn from(a: Author) -> String {
        a.to_string()
    }
}

impl TryFrom<String> for Author {
    type Error = UnknownAuthor;

    fn try_from(s: String) -> Result<Self, UnknownAuthor> {
        s.parse()
    }
}

/// What happened to a job. Serialized as its stable name (`claim`, `parent_ended`, …), the
/// name events have always been stored and shown with.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(into = "String", try_from = "String")]
pub enum EventKind {
    Submitted,
    Claim,
    Renew,
    Stage,
    /// The job reported what it spent on a model.
    Usage,
    /// The job saved a file (an artifact of its attempt).
    Artifact,
    Complete,
    Fail,
    Release,
    Expire,
    BudgetExhausted,
    Preempt,
    /// Every parent succeeded: the job is queued.
    ParentsDone,
    /// A parent ended dead, cancelled or rejected: the job is cancelled with it.
    ParentEnded,
    /// The parent that cancelled the job started a new life: the job waits again.
    ParentRevived,
    Cancel,
    Requeue,
    Retry,
    /// An approval of the job in review (the last one needed ships it).
    Ship,
    Reject,
    /// A reviewer sent the job back for a new attempt, with a reason.
    RequestChanges,
    /// The job changed paths outside its `allowed_scope` (a warning beside complete or fail).
    ScopeWarning,
    /// The job's output passed the per-job log limit; later output is refused.
    OutputCut,
    /// A budget the job counts against passed its alert threshold (fleet stream).
    BudgetAlert,
    /// A budget the job counts against reached its limit (fleet stream).
    BudgetReached,
    /// The job's spend passed its own cost budget: it ended (dead, or review).
    CostCapReached,
    /// The job asked an operator a question: it waits for input.
    Ask,
    /// An operator answered the job's question.
    Answer,
    /// The job's question reached its timeout: its default is the answer, or it timed out.
    QuestionTimeout,
}

impl EventKind {
    /// Every kind, for tests and documentation.
    pub const ALL: [EventKind; 29] = [
        EventKind::Submitted,
        EventKind::Claim,
        EventKind::Renew,
        EventKind::Stage,
        EventKind::Usage,
        EventKind::Artifact,
        EventKind::Complete,
        EventKind::Fail,
        EventKind::Release,
        EventKind::Expire,
        EventKind::BudgetExhausted,
        EventKind::Preempt,
        EventKind::ParentsDone,
        EventKind::ParentEnded,
        EventKind::ParentRevived,
        EventKind::Cancel,
        EventKind::Requeue,
        EventKind::Retry,
        EventKind::Ship,
        EventKind::Reject,
        EventKind::RequestChanges,
        EventKind::ScopeWarning,
        EventKind::OutputCut,
        EventKind::BudgetAlert,
        EventKind::BudgetReached,
        EventKind::CostCapReached,
        EventKind::Ask,
        EventKind::Answer,
        EventKind::QuestionTimeout,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventKind::Submitted => "submitted",
            EventKind::Claim => "claim",
            EventKind::Renew => "renew",
            EventKind::Stage => "stage",
            EventKind::Usage => "usage",
            EventKind::Artifact => "artifact",
            EventKind::Complete => "complete",
            EventKind::Fail => "fail",
            EventKind::Release => "release",
            EventKind::Expire => "expire",
            EventKind::BudgetExhausted => "budget_exhausted",
            EventKind::Preempt => "preempt",
            EventKind::ParentsDone => "parents_done",
            EventKind::ParentEnded => "parent_ended",
            EventKind::ParentRevived => "parent_revived",
            EventKind::Cancel => "cancel",
            EventKind::Requeue => "requeue",
            EventKind::Retry => "retry",
            EventKind::Ship => "ship",
            EventKind::Reject => "reject",
            EventKind::RequestChanges => "request_changes",
            EventKind::ScopeWarning => "scope_warning",
            EventKind::OutputCut => "output_cut",
            EventKind::BudgetAlert => "budget_alert",
            EventKind::BudgetReached => "budget_reached",
            EventKind::CostCapReached => "cost_cap_reached",
            EventKind::Ask => "ask",
            EventKind::Answer => "answer",
            EventKind::QuestionTimeout => "question_timeout",
        }
    }

    /// Whether the change is worth a line on the timeline and the fleet stream. Renewals are
    /// frequent and say nothing new: they change the lease's expiry only.
    pub fn on_timeline(self) -> bool {
        self != EventKind::Renew
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that names no event kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} names no event kind")]
pub struct UnknownEventKind(pub String);

impl FromStr for EventKind {
    type Err = UnknownEventKind;

    fn from_str(s: &str) -> Result<Self, UnknownEventKind> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownEventKind(s.to_owned()))
    }
}

impl From<EventKind> for String {
    fn from(k: EventKind) -> String {
        k.name().to_owned()
    }
}

impl TryFrom<String> for EventKind {
    type Error = UnknownEventKind;

    fn try_from(s: String) -> Result<Self, UnknownEventKind> {
        s.parse()
    }
}

/// One committed change of one job: the job as it is now, what happened and who did it, and
/// the effects someone outside must carry out. A transaction may hold several (a claim batch,
/// a parent's end with its children's).
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The job's state before the change; `None` for a job just submitted.
    pub before: Option<JobState>,
    pub job: Job,
    pub kind: EventKind,
    pub author: Author,
    pub effects: Vec<crate::job::Effect>,
    pub at: Millis,
    /// Budgets the change's spend took past a level for the first time this period.
    pub crossings: Vec<crate::budget::Crossing>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_event_kind_reads_back_from_its_name() {
        for k in EventKind::ALL {
            assert_eq!(k.name().parse::<EventKind>(), Ok(k));
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.name())
            );
        }
        assert!("renewed".parse::<EventKind>().is_err());
        assert!(!EventKind::Renew.on_timeline() && EventKind::Claim.on_timeline());
    }

    #[test]
    fn authors_read_back_from_their_strings() {
        let f = FactoryId(uuid::Uuid::from_u128(7));
        for a in [
            Author::Factory(f),
            Author::Scheduler,
            Author::Reaper,
            Author::Admin("admin".into()),
            Author::Operator("ci:nightly".into()),
            Author::Tracker("github".into()),
        ] {
            assert_eq!(a.to_string().parse::<Author>(), Ok(a.clone()));
        }
        assert_eq!(
            Author::Factory(f).to_string(),
            "factory:00000000-0000-0000-0000-000000000007"
        );
        assert_eq!(Author::Factory(f).factory(), Some(f));
        for bad in ["", "factory:nope", "viewer:x", "Scheduler", "admin"] {
            assert!(bad.parse::<Author>().is_err(), "{bad:?} parsed");
        }
    }

    proptest! {
        /// Token names are free text: any of them survives the round trip, colons included.
        #[test]
        fn any_token_name_survives_the_round_trip(name in ".*", admin in any::<bool>()) {
            let a = if admin { Author::Admin(name) } else { Author::Operator(name) };
            let json = serde_json::to_string(&a).unwrap();
            prop_assert_eq!(serde_json::from_str::<Author>(&json).unwrap(), a);
        }
    }
}

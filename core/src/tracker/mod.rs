//! Trackers (GitHub issues, Linear, a generic JSON source): how an item delivered by a
//! webhook becomes jobs, and how its jobs' progress goes back. Pure rules:
//!
//! - a delivery is verified (`payload::signature_ok`) and read (`payload::parse_item`);
//! - what it means for the item as stored (`decide`): first seen open → create its jobs
//!   (`plan::plan_jobs`); a revision seen before → nothing; closed → cancel its open jobs;
//!   reopened → bring back the jobs its closing cancelled; anything else → update the item;
//! - which job changes are echoed to the tracker (`echo`), as outbox records written in the
//!   transaction of the change and delivered after it, at least once, with an idempotency
//!   key, retried with backoff and jitter until a bound, then dead-lettered (`next_try`).

mod payload;
mod plan;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use payload::{parse_item, sign, signature_header, signature_ok};
pub use plan::{DEFAULT_TEMPLATE, plan_jobs};

use crate::backoff::Backoff;
use crate::event::EventKind;
use crate::job::{Job, JobId, JobState, Millis};

/// Tries of one delivery before it is dead-lettered, unless configured otherwise.
pub const DELIVERY_TRIES_DEFAULT: u32 = 10;
/// Longest item id or revision kept, in bytes.
pub const ITEM_ID_MAX_BYTES: usize = 256;

/// The payload shape and signature scheme of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Github,
    Linear,
    Generic,
}

/// One tracker as the coordinator's config describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub kind: SourceKind,
    /// Signs deliveries from the tracker (HMAC-SHA256).
    #[serde(skip_serializing)]
    pub secret: String,
    /// Where job changes are echoed, if anywhere.
    #[serde(default)]
    pub callback_url: Option<String>,
    /// Signs the echoes; the delivery secret when absent.
    #[serde(default, skip_serializing)]
    pub callback_secret: Option<String>,
    /// Tried in order; the first whose labels match decides.
    #[serde(default)]
    pub rules: Vec<IntakeRule>,
    /// Manifests with `{{title}}`, `{{body}}`, `{{url}}`, `{{id}}`, by name.
    #[serde(default)]
    pub templates: BTreeMap<String, String>,
}

/// Which items a rule takes and what it makes of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IntakeRule {
    /// Any of these labels matches; none listed matches every item.
    #[serde(default)]
    pub labels: Vec<String>,
    pub product: String,
    /// Added to every job's required capabilities.
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub priority: Option<u32>,
    /// A template of the source; the default makes one job whose prompt is the item.
    #[serde(default)]
    pub template: Option<String>,
}

/// An item (an issue, a ticket) as a delivery describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerItem {
    pub id: String,
    /// Changes whenever the item does; a delivery of a revision seen before changes nothing.
    pub revision: String,
    pub title: String,
    pub body: String,
    pub url: String,
    pub labels: Vec<String>,
    pub open: bool,
}

/// Why a delivery was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    #[error("the payload is not what this source sends: {0}")]
    Payload(String),
    #[error("no rule of this source takes an item labelled {labels:?}")]
    NoRule { labels: Vec<String> },
    #[error("the template makes invalid jobs: {}", .0.join("; "))]
    Template(Vec<String>),
    #[error("the source's configuration is wrong: {0}")]
    Config(String),
}

/// The tracker item a job came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct ItemRef {
    pub source: String,
    pub id: String,
}

/// An item as stored: what it looks like now and the jobs it made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ItemRecord {
    pub source: String,
    pub id: String,
    pub title: String,
    pub url: String,
    pub labels: Vec<String>,
    pub open: bool,
    pub revision: String,
    pub jobs: Vec<JobId>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// What a delivery means for its item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// First seen, open: make its jobs.
    Create,
    /// A revision already taken: change nothing.
    Duplicate,
    /// Closed in the tracker: cancel its open jobs.
    Close,
    /// Open again: bring back the jobs its closing cancelled.
    Reopen,
    /// Anything else (an edit, a new label): keep the item up to date.
    Update,
}

/// What a delivery of `item` means given what is stored of it.
pub fn decide(stored: Option<&ItemRecord>, item: &TrackerItem) -> Decision {
    match stored {
        None if item.open => Decision::Create,
        // An item first seen closed has nothing to cancel: just remember it.
        None => Decision::Update,
        Some(s) if s.revision == item.revision => Decision::Duplicate,
        Some(s) if s.open && !item.open => Decision::Close,
        Some(s) if !s.open && item.open => Decision::Reopen,
        Some(_) => Decision::Update,
    }
}

/// A job change the tracker hears of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Echo {
    /// `started`, `stage`, `review`, `shipped`, `succeeded`, `dead` or `cancelled`.
    pub event: String,
    pub stage: Option<String>,
}

/// Whether the change of `job` (from `before`, by a command of `kind`) is echoed.
pub fn echo(before: Option<&JobState>, job: &Job, kind: EventKind) -> Option<Echo> {
    let state_changed = before.is_none_or(|b| b.name() != job.state.name());
    let event = match (&job.state, kind) {
        (_, EventKind::Stage) => "stage",
        (JobState::Leased { .. }, EventKind::Claim) => "started",
        (JobState::Review, _) if state_changed => "review",
        (JobState::Shipped, _) if state_changed => "shipped",
        (JobState::Succeeded, _) if state_changed => "succeeded",
        (JobState::Dead, _) if state_changed => "dead",
        (JobState::Cancelled { .. }, _) if state_changed => "cancelled",
        _ => return None,
    };
    Some(Echo {
        event: event.into(),
        stage: job.stage.clone().filter(|_| event == "stage"),
    })
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// Tried as often as allowed without success: kept for an operator to redeliver.
    DeadLetter,
}

/// One echo of one job change, on its way to the tracker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Delivery {
    /// Unique, time-ordered; also the idempotency key the tracker sees.
    pub id: String,
    pub item: ItemRef,
    pub job: JobId,
    pub echo: Echo,
    /// What is sent: the JSON body, built once so every try sends the same bytes.
    pub body: String,
    pub status: DeliveryStatus,
    pub tries: u32,
    /// When the next try is due.
    pub next_at: Millis,
    /// The last answer: an HTTP status, or why there was none.
    pub last_answer: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// The delivery that tells the tracker of `item` about `job`'s change. Its id — the
/// idempotency key the tracker sees — is the job's id and revision, so it is the same however
/// often the change's transaction runs.
pub fn new_delivery(item: &ItemRef, job: &Job, echo: Echo, now: Millis) -> Delivery {
    let id = format!("{}-{:010}", job.id, job.rev);
    let body = serde_json::json!({
        "delivery_id": id,
        "source": item.source,
        "item_id": item.id,
        "job_id": job.id,
        "job_key": job.spec.key,
        "title": job.spec.title,
        "event": echo.event,
        "stage": echo.stage,
        "state": job.state.name(),
        "error": job.last_error,
        "at": now,
    })
    .to_string();
    Delivery {
        id,
        item: item.clone(),
        job: job.id,
        echo,
        body,
        status: DeliveryStatus::Pending,
        tries: 0,
        next_at: now,
        last_answer: None,
        created_at: now,
        updated_at: now,
    }
}

/// After the `tries`-th failed try at `now`: when to try again, or `None` (after
/// `tries_max`) to dead-letter it.
pub fn next_try(
    tries: u32,
    tries_max: u32,
    now: Millis,
    backoff: &Backoff,
    jitter: f64,
) -> Option<Millis> {
    (tries < tries_max).then(|| now + backoff.delay_ms(tries, jitter))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{FactoryId, Lease, new_job};
    use crate::manifest::{JobSpec, Payload};
    use uuid::Uuid;

    fn item(open: bool, revision: &str) -> TrackerItem {
        TrackerItem {
            id: "1".into(),
            revision: revision.into(),
            title: "t".into(),
            body: String::new(),
            url: String::new(),
            labels: vec![],
            open,
        }
    }

    fn stored(open: bool, revision: &str) -> ItemRecord {
        ItemRecord {
            source: "gh".into(),
            id: "1".into(),
            title: "t".into(),
            url: String::new(),
            labels: vec![],
            open,
            revision: revision.into(),
            jobs: vec![],
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn a_delivery_creates_once_closes_reopens_and_repeats_change_nothing() {
        assert_eq!(decide(None, &item(true, "1")), Decision::Create);
        assert_eq!(decide(None, &item(false, "1")), Decision::Update);
        assert_eq!(
            decide(Some(&stored(true, "1")), &item(true, "1")),
            Decision::Duplicate
        );
        assert_eq!(
            decide(Some(&stored(true, "1")), &item(false, "2")),
            Decision::Close
        );
        assert_eq!(
            decide(Some(&stored(false, "2")), &item(true, "3")),
            Decision::Reopen
        );
        assert_eq!(
            decide(Some(&stored(true, "1")), &item(true, "2")),
            Decision::Update
        );
    }

    fn job(state: JobState) -> Job {
        let spec: JobSpec = JobSpec {
            payload: Payload::Command("true".into()),
            ..serde_json::from_value(serde_json::json!({
                "key": "k", "title": "t", "product": "p", "payload": {"command": "true"}
            }))
            .unwrap()
        };
        Job {
            state,
            ..new_job(JobId(Uuid::nil()), spec, vec![], 0)
        }
    }

    #[test]
    fn starts_stages_and_ends_are_echoed_and_nothing_else() {
        let lease = Lease {
            epoch: 1,
            factory: FactoryId(Uuid::nil()),
            granted_at: 0,
            expires_at: 1,
        };
        let queued = JobState::Queued { not_before: 0 };
        let leased = job(JobState::Leased { lease });
        assert_eq!(
            echo(Some(&queued), &leased, EventKind::Claim)
                .unwrap()
                .event,
            "started"
        );
        let mut staged = job(JobState::Running { lease });
        staged.stage = Some("coding".into());
        let e = echo(
            Some(&JobState::Running { lease }),
            &staged,
            EventKind::Stage,
        )
        .unwrap();
        assert_eq!(
            (e.event.as_str(), e.stage.as_deref()),
            ("stage", Some("coding"))
        );
        let running = JobState::Running { lease };
        assert_eq!(
            echo(
                Some(&running),
                &job(JobState::Succeeded),
                EventKind::Complete
            )
            .unwrap()
            .event,
            "succeeded"
        );
        assert_eq!(
            echo(
                Some(&running),
                &job(JobState::Running { lease }),
                EventKind::Renew
            ),
            None
        );
        assert_eq!(
            echo(
                Some(&queued),
                &job(JobState::Failed { retry_at: 5 }),
                EventKind::Expire
            ),
            None
        );
        assert_eq!(
            echo(
                Some(&JobState::Dead),
                &job(JobState::Dead),
                EventKind::Usage
            ),
            None
        );
    }

    #[test]
    fn deliveries_back_off_then_go_to_the_dead_letter() {
        let b = Backoff {
            base_ms: 1_000,
            cap_ms: 60_000,
        };
        assert_eq!(next_try(1, 10, 100, &b, 0.0), Some(100 + 500));
        assert!(next_try(9, 10, 0, &b, 0.5).is_some());
        assert_eq!(next_try(10, 10, 0, &b, 0.5), None);
    }
}

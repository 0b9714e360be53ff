//! A factory's journal: when asked to (`gigafactory factory --journal FILE`), the agent writes
//! one JSON line per request it sends the coordinator and the answer it got. The chaos suite
//! reads the journals to check the lease invariants from the factories' side, where a lost or
//! doubled lease would show first. Plain data: the agent writes it, the checker reads it.

use serde::{Deserialize, Serialize};

use crate::job::{JobId, Millis};

/// One request and its answer. A retry is a new exchange with the same `request_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    pub sent_at: Millis,
    pub answered_at: Millis,
    /// The coordinator URL it went to.
    pub node: String,
    pub path: String,
    /// For a fenced write: what it wrote, under which lease, with which request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<WriteTag>,
    /// The HTTP status, or 0 when no answer came (connection error, timeout).
    pub status: u16,
    /// A refusal's error code, or what went wrong on the way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For an answered claim, or an end that asked for the next jobs: the leases it handed
    /// over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leases: Vec<Grant>,
    /// For an accepted fenced write: the job as the answer showed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Seen>,
}

impl Exchange {
    /// Whether the coordinator took the request (any 2xx).
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Whether the coordinator turned a write away as stale (`409 fenced`).
    pub fn fenced(&self) -> bool {
        self.status == 409 && self.error.as_deref() == Some("fenced")
    }
}

/// The lease a fenced write was sent under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteTag {
    pub job: JobId,
    /// `renew`, `stage`, `usage`, `logs`, `complete`, `fail` or `release`.
    pub action: String,
    pub epoch: u64,
    pub request_id: String,
    /// The request ids of the usage reports an end carried, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage: Vec<String>,
}

/// A job's epoch and state in a write's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub epoch: u64,
    pub state: String,
}

/// A lease handed over by a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub job: JobId,
    pub epoch: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_line_round_trips_and_omits_what_is_empty() {
        let e = Exchange {
            sent_at: 1,
            answered_at: 2,
            node: "http://127.0.0.1:7070".into(),
            path: "/v1/claims".into(),
            write: None,
            status: 200,
            error: None,
            leases: vec![Grant {
                job: JobId(uuid::Uuid::nil()),
                epoch: 3,
            }],
            answer: None,
        };
        let line = serde_json::to_string(&e).unwrap();
        assert!(!line.contains("write") && !line.contains("error"), "{line}");
        assert_eq!(serde_json::from_str::<Exchange>(&line).unwrap(), e);
        assert!(e.accepted() && !e.fenced());
    }

    #[test]
    fn only_a_409_fenced_counts_as_fenced() {
        let mut e = Exchange {
            sent_at: 1,
            answered_at: 2,
            node: String::new(),
            path: String::new(),
            write: None,
            status: 409,
            error: Some("fenced".into()),
            leases: Vec::new(),
            answer: None,
        };
        assert!(e.fenced() && !e.accepted());
        e.error = Some("conflict".into());
        assert!(!e.fenced());
    }
}

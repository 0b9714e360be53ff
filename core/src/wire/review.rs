//! The body of a review decision that takes one: `POST /v1/jobs/{id}/actions/request_changes`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why the reviewer sends the job back: trimmed, 1 to
/// [`crate::job::review::REASON_MAX_BYTES`] bytes, handed to the job's next attempts as
/// `GF_REVIEW_FEEDBACK`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestChangesBody {
    pub reason: String,
}

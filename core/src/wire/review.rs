//! The body of an operator's action on a job: `POST /v1/jobs/{id}/actions/{action}`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why the operator acts. Optional, up to [`crate::job::ACTION_REASON_MAX_BYTES`] bytes, for
/// every action but `request_changes`, which needs one of 1 to
/// [`crate::job::review::REASON_MAX_BYTES`] bytes, handed to the job's next attempts as
/// `GF_REVIEW_FEEDBACK`. Kept trimmed in the action's event, which the timeline shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

//! The error responses of the API: the stable `error` codes clients match on, and the body
//! every error answers with.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The stable `error` codes of error responses: clients match on these, never on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    MalformedRequest,
    PayloadTooLarge,
    NotFound,
    MethodNotAllowed,
    Fenced,
    NotLeaseHolder,
    IllegalTransition,
    AlreadyApproved,
    ParentEnded,
    LogLimitExceeded,
    ArtifactLimitExceeded,
    CostCapReached,
    BudgetHeld,
    LimitHeld,
    InvalidRequest,
    InvalidManifest,
    IdempotencyConflict,
    Unauthorized,
    Forbidden,
    Overloaded,
    Unavailable,
    Internal,
    UnsupportedMediaType,
    AuthThrottled,
    /// A question to an operator conflicts with the job's: none is open (to answer), or one
    /// is already (to ask).
    QuestionConflict,
    SecretsNotConfigured,
    SecretsUnreadable,
    InvalidSchedule,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 28] = [
        ErrorCode::MalformedRequest,
        ErrorCode::PayloadTooLarge,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Fenced,
        ErrorCode::NotLeaseHolder,
        ErrorCode::IllegalTransition,
        ErrorCode::AlreadyApproved,
        ErrorCode::ParentEnded,
        ErrorCode::LogLimitExceeded,
        ErrorCode::ArtifactLimitExceeded,
        ErrorCode::CostCapReached,
        ErrorCode::BudgetHeld,
        ErrorCode::LimitHeld,
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidManifest,
        ErrorCode::IdempotencyConflict,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::Overloaded,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::AuthThrottled,
        ErrorCode::QuestionConflict,
        ErrorCode::SecretsNotConfigured,
        ErrorCode::SecretsUnreadable,
        ErrorCode::InvalidSchedule,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedRequest => "malformed_request",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Fenced => "fenced",
            ErrorCode::NotLeaseHolder => "not_lease_holder",
            ErrorCode::IllegalTransition => "illegal_transition",
            ErrorCode::AlreadyApproved => "already_approved",
            ErrorCode::ParentEnded => "parent_ended",
            ErrorCode::LogLimitExceeded => "log_limit_exceeded",
            ErrorCode::ArtifactLimitExceeded => "artifact_limit_exceeded",
            ErrorCode::CostCapReached => "cost_cap_reached",
            ErrorCode::BudgetHeld => "budget_held",
            ErrorCode::LimitHeld => "limit_held",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidManifest => "invalid_manifest",
            ErrorCode::IdempotencyConflict => "idempotency_conflict",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::AuthThrottled => "auth_throttled",
            ErrorCode::QuestionConflict => "question_conflict",
            ErrorCode::SecretsNotConfigured => "secrets_not_configured",
            ErrorCode::SecretsUnreadable => "secrets_unreadable",
            ErrorCode::InvalidSchedule => "invalid_schedule",
        }
    }
}

/// Every error response: a stable machine-readable `error` code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    /// One of [`ErrorCode`]'s strings; a string, so a client reads codes added after it.
    #[schemars(schema_with = "error_code_schema")]
    pub error: String,
    pub message: String,
    /// With `fenced`: the epoch the job is at now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_epoch: Option<u64>,
    /// With `invalid_manifest`: every problem, with its location (with `invalid_schedule`,
    /// `field: problem`); with
    /// `idempotency_conflict`: every job whose key another job holds, with its location.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

/// `ErrorBody::error`'s schema: a string, one of the codes.
fn error_code_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    schemars::json_schema!({"type": "string", "enum": codes})
}

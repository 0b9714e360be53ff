//! The one mapping from errors to HTTP: a status, a stable `error` code, a sentence, and
//! `Retry-After` where waiting helps.

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gigafactory_actors::CoordError;
use gigafactory_core::wire::{ErrorBody, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Coord(#[from] CoordError),
    /// The body is not the JSON the route takes.
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("request body too large")]
    TooLarge,
    #[error("{0}")]
    NotFound(String),
    /// A write whose body is not of a media type the route takes (a cross-site form's).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Too many failed authentications from the caller's address: retry after this many
    /// seconds.
    #[error("too many failed authentications from this address: retry in {0} s")]
    Throttled(u64),
    /// A scaling hint's parameter or shape the caller must fix.
    #[error(transparent)]
    Hint(#[from] gigafactory_core::autoscale::HintError),
    /// The route does not take this method (`Allow` says which it does).
    #[error("the route does not take this method")]
    MethodNotAllowed,
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::Malformed(r.body_text())
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::Malformed(r.body_text())
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::Malformed(r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::Malformed(r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let mut body = ErrorBody {
            error: String::new(),
            message,
            current_epoch: None,
            details: Vec::new(),
        };
        // Seconds a client should wait before retrying, where waiting helps.
        let mut retry_after: Option<u64> = None;
        let status = match &self {
            ApiError::Malformed(_) => (StatusCode::BAD_REQUEST, ErrorCode::MalformedRequest),
            ApiError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
            ),
            ApiError::Throttled(secs) => {
                retry_after = Some(*secs);
                (StatusCode::TOO_MANY_REQUESTS, ErrorCode::AuthThrottled)
            }
            ApiError::Hint(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest),
            ApiError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed)
            }
            ApiError::Coord(e) => match e {
                CoordError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
                CoordError::Fenced { current, .. } => {
                    body.current_epoch = Some(*current);
                    (StatusCode::CONFLICT, ErrorCode::Fenced)
                }
                CoordError::NotLeaseHolder => (StatusCode::FORBIDDEN, ErrorCode::NotLeaseHolder),
                CoordError::IllegalTransition { .. } => {
                    (StatusCode::CONFLICT, ErrorCode::IllegalTransition)
                }
                CoordError::AlreadyApproved(_) => {
                    (StatusCode::CONFLICT, ErrorCode::AlreadyApproved)
                }
                CoordError::ParentEnded { .. } => (StatusCode::CONFLICT, ErrorCode::ParentEnded),
                CoordError::CostCapReached(_) => (StatusCode::CONFLICT, ErrorCode::CostCapReached),
                CoordError::BudgetHeld(_) => (StatusCode::CONFLICT, ErrorCode::BudgetHeld),
                CoordError::LimitHeld(_) => (StatusCode::CONFLICT, ErrorCode::LimitHeld),
                CoordError::LogLimitExceeded { .. } => {
                    (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::LogLimitExceeded)
                }
                CoordError::ArtifactLimit(_) => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::ArtifactLimitExceeded,
                ),
                CoordError::Invalid(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest),
                CoordError::QuestionConflict(_) => {
                    (StatusCode::CONFLICT, ErrorCode::QuestionConflict)
                }
                CoordError::InvalidManifest(details) => {
                    body.details = details.clone();
                    (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidManifest)
                }
                CoordError::InvalidSchedule(details) => {
                    body.details = details.clone();
                    (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidSchedule)
                }
                CoordError::IdempotencyConflict(details) => {
                    body.details = details.clone();
                    (StatusCode::CONFLICT, ErrorCode::IdempotencyConflict)
                }
                CoordError::Unauthorized(_) | CoordError::UnknownToken => {
                    (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized)
                }
                CoordError::Forbidden(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
                CoordError::Overloaded(_) => {
                    retry_after = Some(1);
                    (StatusCode::TOO_MANY_REQUESTS, ErrorCode::Overloaded)
                }
                CoordError::Unavailable(_) | CoordError::CommitUnknown(_) => {
                    retry_after = Some(1);
                    (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable)
                }
                CoordError::Internal(_) => {
                    tracing::error!(error = %e, "internal error");
                    (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal)
                }
                // Not a 5xx: nothing changes until the operator gives the node its key, so a
                // client must not retry (a factory fails the job with this message at once).
                CoordError::SecretsNotConfigured(_) => {
                    (StatusCode::CONFLICT, ErrorCode::SecretsNotConfigured)
                }
                CoordError::SecretsUnreadable(_) => {
                    tracing::error!(error = %e, "a secret does not open");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        ErrorCode::SecretsUnreadable,
                    )
                }
            },
        };
        body.error = status.1.as_str().into();
        let mut resp = (status.0, Json(body)).into_response();
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

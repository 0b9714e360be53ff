//! The one mapping from errors to HTTP: a status, a stable `error` code, a sentence, and
//! `Retry-After` where waiting helps.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gigafactory_actors::CoordError;
use gigafactory_core::wire::ErrorBody;

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
        let mut retry_after = false;
        let status = match &self {
            ApiError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed_request"),
            ApiError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Coord(e) => match e {
                CoordError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
                CoordError::Fenced { current, .. } => {
                    body.current_epoch = Some(*current);
                    (StatusCode::CONFLICT, "fenced")
                }
                CoordError::NotLeaseHolder => (StatusCode::FORBIDDEN, "not_lease_holder"),
                CoordError::IllegalTransition { .. } => {
                    (StatusCode::CONFLICT, "illegal_transition")
                }
                CoordError::ParentEnded { .. } => (StatusCode::CONFLICT, "parent_ended"),
                CoordError::LogLimitExceeded { .. } => {
                    (StatusCode::PAYLOAD_TOO_LARGE, "log_limit_exceeded")
                }
                CoordError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
                CoordError::InvalidManifest(details) => {
                    body.details = details.clone();
                    (StatusCode::UNPROCESSABLE_ENTITY, "invalid_manifest")
                }
                CoordError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
                CoordError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
                CoordError::Overloaded(_) => {
                    retry_after = true;
                    (StatusCode::TOO_MANY_REQUESTS, "overloaded")
                }
                CoordError::Unavailable(_) | CoordError::CommitUnknown(_) => {
                    retry_after = true;
                    (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
                }
                CoordError::Internal(_) => {
                    tracing::error!(error = %e, "internal error");
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal")
                }
            },
        };
        body.error = status.1.into();
        let mut resp = (status.0, Json(body)).into_response();
        if retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

//! Request bodies and framework refusals inside the contract: every refusal of a request the
//! API answers — a body that is not JSON, not a JSON object, not UTF-8, cut short or too
//! large; a path or query that does not decode; a method a route does not take — is the JSON
//! error body of `error.rs`, never axum's plain text.
//!
//! [`Body`] is the JSON extractor every route uses: the body must be one JSON object (every
//! request body of the API is one), so a JSON array or a number is refused instead of being
//! read as an empty object (serde reads a struct from an array too). That it is declared JSON
//! is the gate's one rule (`guard.rs`, `415` before the body is read), not checked again here.
//! [`plain_errors`] is the net under everything else: a refusal axum answers itself (a `Path`
//! that does not decode, a `String` body that is not UTF-8, the body limit on a `Bytes` body,
//! `405`) goes through the same mapping.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Longest text of axum's own refusal kept as the message of its JSON body.
const REFUSAL_TEXT_MAX_BYTES: usize = 1024;

/// A JSON object body, read as `T`; anything else is refused through [`ApiError`].
pub(crate) struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await?;
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return Err(ApiError::Malformed(
                "the body must be one JSON object ({...})".into(),
            ));
        }
        let Json(value) = Json::<T>::from_bytes(&bytes)?;
        Ok(Body(value))
    }
}

/// `value` as a `T`, refused unless it is an object: serde reads a struct from an array of
/// its fields in order as well, and `[null, null]` in place of a body must be refused, not
/// read as one (for the routes that read their body by hand).
pub(crate) fn from_object<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, String> {
    if !value.is_object() {
        return Err("the body must be a JSON object".into());
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// Turns a refusal axum answered itself (a status its extractors and router use, with a body
/// that is not JSON) into the API's JSON error body, through the one mapping: `413` is
/// `payload_too_large`, `405` is `method_not_allowed`, `404` is `not_found`, and `400`, `415`
/// and `422` (a request that does not decode) are `malformed_request` with axum's text as the
/// message. Any other answer passes as it is.
pub(crate) async fn plain_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let axums = matches!(
        status,
        StatusCode::BAD_REQUEST
            | StatusCode::NOT_FOUND
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::UNSUPPORTED_MEDIA_TYPE
            | StatusCode::UNPROCESSABLE_ENTITY
    );
    if !axums || is_json {
        return resp;
    }
    let allow = resp.headers().get(header::ALLOW).cloned();
    let text = axum::body::to_bytes(resp.into_body(), REFUSAL_TEXT_MAX_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge,
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::NOT_FOUND => ApiError::NotFound(if text.is_empty() {
            "not found".into()
        } else {
            text
        }),
        _ if text.is_empty() => ApiError::Malformed(format!("refused: {status}")),
        _ => ApiError::Malformed(text),
    };
    let mut resp = error.into_response();
    if let Some(allow) = allow {
        resp.headers_mut().insert(header::ALLOW, allow);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_plain_text_refusal_becomes_the_json_error_body_and_keeps_allow() {
        let plain = (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET,HEAD")],
            "",
        )
            .into_response();
        let resp = plain_errors(plain).await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()[header::ALLOW], "GET,HEAD");
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        let body: gigafactory_core::wire::ErrorBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(body.error, "method_not_allowed");

        let plain = (StatusCode::BAD_REQUEST, "Invalid URL: bad utf-8").into_response();
        let resp = plain_errors(plain).await;
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        let body: gigafactory_core::wire::ErrorBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (body.error.as_str(), body.message.as_str()),
            (
                "malformed_request",
                "malformed request: Invalid URL: bad utf-8"
            )
        );
        let ok = plain_errors("fine".into_response()).await;
        assert_eq!(
            ok.status(),
            StatusCode::OK,
            "answers that are not refusals pass"
        );
        let timeout = plain_errors(StatusCode::REQUEST_TIMEOUT.into_response()).await;
        assert_eq!(
            timeout.status(),
            StatusCode::REQUEST_TIMEOUT,
            "a status axum's extractors do not use keeps its meaning"
        );
    }
}

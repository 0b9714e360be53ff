//! Routes for artifacts: a factory uploads a file of the attempt it holds (the request's body,
//! streamed; the lease, kind and digest in the query), and readers list a job's artifacts and
//! download one. Downloads are attachments that may not run as pages: an artifact's HTML or
//! SVG is the job's output, not part of the control plane.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use gigafactory_core::wire::{ArtifactUpload, ArtifactView, LeaseAnswer, urlencode};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::factories::parse_job_id;

type ApiResult<T> = Result<T, ApiError>;

/// `PUT /v1/jobs/{id}/artifacts/{name}?epoch=&request_id=&kind=&sha256=`: the body is the
/// file. Refused before a byte is stored when the lease is stale or `Content-Length` passes
/// the per-file limit.
pub(crate) async fn upload(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
    query: Result<Query<ArtifactUpload>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<LeaseAnswer>> {
    let factory = caller.factory()?;
    let id = parse_job_id(&id)?;
    let Query(upload) = query?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let stream = body.into_data_stream().map_err(|e| e.to_string());
    Ok(Json(
        s.coord
            .upload_artifact(factory, id, &name, upload, declared, stream)
            .await?,
    ))
}

/// `GET /v1/jobs/{id}/artifacts`: every attempt's artifacts.
pub(crate) async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ArtifactView>>> {
    caller.require_view()?;
    Ok(Json(s.coord.artifacts(parse_job_id(&id)?).await?))
}

/// `GET /v1/jobs/{id}/artifacts/{attempt}/{name}`: the bytes, streamed.
pub(crate) async fn download(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, attempt, name)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    caller.require_view()?;
    // Parsed here, not by `Path`, whose refusal would be plain text, not our error body.
    let attempt: u32 = attempt
        .parse()
        .map_err(|_| ApiError::Malformed(format!("{attempt:?} is not an attempt number")))?;
    let (view, bytes) = s.coord.artifact(parse_job_id(&id)?, attempt, &name).await?;
    let mut resp = Body::from_stream(bytes).into_response();
    let h = resp.headers_mut();
    let media = HeaderValue::from_str(&view.media_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, media);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(view.size));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!(
            "attachment; filename*=UTF-8''{}",
            urlencode(&name)
        ))
        .unwrap_or(HeaderValue::from_static("attachment")),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    let etag = format!("\"{}\"", view.sha256);
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    Ok(resp)
}

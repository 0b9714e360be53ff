//! Tracker routes: deliveries (`POST /v1/intake/{source}`, authenticated by the source's
//! signature instead of a token), a dry run of what a delivery would create, a source's rules
//! (without its secrets), its items with their jobs and deliveries, and redelivering a dead
//! letter.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use gigafactory_actors::IntakeOutcome;
use gigafactory_core::manifest::JobSpec;
use gigafactory_core::tracker::{Delivery, ItemRecord, SourceConfig, signature_header};
use gigafactory_core::wire::JobView;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

type ApiResult<T> = Result<T, ApiError>;

/// A tracker's delivery: 200 with what it did (a repeat changes nothing and says
/// `duplicate`); 401 when unsigned or badly signed, and nothing changes.
pub(crate) async fn deliver(
    State(s): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<IntakeOutcome>> {
    let cfg = s.coord.intake_source(&source)?;
    let signature = headers
        .get(signature_header(cfg.kind))
        .and_then(|v| v.to_str().ok());
    Ok(Json(s.coord.intake(&source, signature, &body).await?))
}

/// What a delivery would create, created nothing (`gigafactory intake test`).
pub(crate) async fn test(
    State(s): State<AppState>,
    caller: Caller,
    Path(source): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Vec<JobSpec>>> {
    caller.require_operate()?;
    Ok(Json(s.coord.plan_intake(&source, &body)?))
}

/// A source's kind, callback, rules and templates; never its secrets.
pub(crate) async fn source(
    State(s): State<AppState>,
    caller: Caller,
    Path(source): Path<String>,
) -> ApiResult<Json<SourceConfig>> {
    caller.require_view()?;
    Ok(Json(s.coord.intake_source(&source)?.clone()))
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ItemsQuery {
    limit: Option<usize>,
}

pub(crate) async fn items(
    State(s): State<AppState>,
    caller: Caller,
    Path(source): Path<String>,
    q: Result<Query<ItemsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<ItemRecord>>> {
    caller.require_view()?;
    let Query(q) = q?;
    Ok(Json(s.coord.items(&source, q.limit.unwrap_or(100)).await?))
}

/// An item with its jobs and its deliveries.
#[derive(Serialize, JsonSchema)]
pub(crate) struct ItemView {
    item: ItemRecord,
    jobs: Vec<JobView>,
    deliveries: Vec<Delivery>,
}

/// `id` is the tracker's, percent-encoded in the path (`acme%2Fapp%2342`).
pub(crate) async fn item(
    State(s): State<AppState>,
    caller: Caller,
    Path((source, id)): Path<(String, String)>,
) -> ApiResult<Json<ItemView>> {
    caller.require_view()?;
    let (item, jobs, deliveries) = s.coord.item(&source, &id).await?;
    Ok(Json(ItemView {
        item,
        jobs: jobs.iter().map(JobView::from).collect(),
        deliveries,
    }))
}

pub(crate) async fn redeliver(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    caller.require_operate()?;
    Ok((StatusCode::ACCEPTED, Json(s.coord.redeliver(&id).await?)))
}

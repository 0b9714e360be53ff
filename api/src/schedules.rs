//! Routes for schedules: listed and read by viewers (with next runs and history); set,
//! removed, paused, resumed and triggered by operators (a trigger once per `Idempotency-Key`).
//! A set with problems is refused whole, every problem in `details` as `field: problem`, and
//! changes nothing.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gigafactory_actors::CoordError;
use gigafactory_core::wire::{ScheduleBody, ScheduleView, TriggerAnswer};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::json::Body;

/// The request header a trigger's idempotency key comes in (the IETF draft's name).
const IDEMPOTENCY_KEY: &str = "idempotency-key";

type ApiResult<T> = Result<T, ApiError>;

pub(crate) async fn list(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ScheduleView>>> {
    caller.require_view()?;
    Ok(Json(s.coord.schedules().await?))
}

pub(crate) async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<ScheduleView>> {
    caller.require_view()?;
    Ok(Json(s.coord.schedule(&name).await?))
}

/// `201` with a new schedule, `200` with a replaced one.
pub(crate) async fn set(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(body): Body<ScheduleBody>,
) -> ApiResult<Response> {
    caller.require_operate()?;
    let by = caller.author()?;
    let (view, created) = s.coord.set_schedule(&name, body, &by).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)).into_response())
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_operate()?;
    s.coord.delete_schedule(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn pause(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<ScheduleView>> {
    caller.require_operate()?;
    let by = caller.author()?;
    Ok(Json(s.coord.pause_schedule(&name, &by).await?))
}

pub(crate) async fn resume(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<ScheduleView>> {
    caller.require_operate()?;
    Ok(Json(s.coord.resume_schedule(&name).await?))
}

/// The run, new or the one an earlier trigger with the same `Idempotency-Key` made (`200`
/// both: `created` tells them apart). A bad key is `400 invalid_request`, nothing run.
pub(crate) async fn trigger(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<TriggerAnswer>> {
    caller.require_operate()?;
    let by = caller.author()?;
    let key = idempotency_key(&headers)?;
    let (run, created) = s.coord.trigger_schedule(&name, &by, key).await?;
    Ok(Json(TriggerAnswer { run, created }))
}

/// The `Idempotency-Key` header, as text (bytes that are not text become characters the
/// coordinator's check refuses, so every bad key gets the same answer); given twice, refused.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let mut given = headers.get_all(IDEMPOTENCY_KEY).iter();
    let key = given
        .next()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if given.next().is_some() {
        return Err(CoordError::Invalid("Idempotency-Key: give it once".into()).into());
    }
    Ok(key)
}

//! Routes for schedules: listed and read by viewers (with next runs and history); set,
//! removed, paused, resumed and triggered by operators. A set with problems is refused whole,
//! every problem in `details` as `field: problem`, and changes nothing.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gigafactory_core::wire::{ScheduleBody, ScheduleView, TriggerAnswer};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::json::Body;

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

pub(crate) async fn trigger(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<TriggerAnswer>> {
    caller.require_operate()?;
    let by = caller.author()?;
    Ok(Json(TriggerAnswer {
        run: s.coord.trigger_schedule(&name, &by).await?,
    }))
}

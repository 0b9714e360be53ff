//! Routes for money: a factory's usage report on a lease it holds, and the budgets operators
//! list, read (with burndown and top jobs), set, pause, resume and remove.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use gigafactory_core::wire::{
    BudgetBody, BudgetDetail, BudgetView, FencedWrite, LeaseAnswer, PauseBody, UsageReport,
};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::factories::parse_job_id;
use crate::json::Body;

type ApiResult<T> = Result<T, ApiError>;

/// `POST /v1/jobs/{id}/usage`: what the job spent on a model, fenced by the lease's epoch.
pub(crate) async fn usage(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(w): Body<FencedWrite<UsageReport>>,
) -> ApiResult<Json<LeaseAnswer>> {
    let factory = caller.factory()?;
    let id = parse_job_id(&id)?;
    Ok(Json(
        s.coord
            .report_usage(factory, id, w.epoch, w.request_id, w.body)
            .await?,
    ))
}

pub(crate) async fn list(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<BudgetView>>> {
    caller.require_view()?;
    Ok(Json(s.coord.budgets().await?))
}

pub(crate) async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<BudgetDetail>> {
    caller.require_view()?;
    Ok(Json(s.coord.budget(&name).await?))
}

pub(crate) async fn set(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(body): Body<BudgetBody>,
) -> ApiResult<Json<BudgetView>> {
    caller.require_operate()?;
    Ok(Json(s.coord.set_budget(&name, body).await?))
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_operate()?;
    s.coord.delete_budget(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn pause(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(body): Body<PauseBody>,
) -> ApiResult<Json<BudgetView>> {
    caller.require_operate()?;
    let by = caller.author()?;
    Ok(Json(s.coord.pause_budget(&name, &body.reason, &by).await?))
}

pub(crate) async fn resume(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<BudgetView>> {
    caller.require_operate()?;
    Ok(Json(s.coord.resume_budget(&name).await?))
}

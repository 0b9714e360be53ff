//! Routes for questions to an operator: the factory holding a job's lease asks (a fenced
//! write) and polls the outcome (a fenced read); an operator answers.

use axum::Json;
use axum::extract::{Path, Query, State};
use gigafactory_core::wire::{
    AnswerBody, AskBody, FencedWrite, JobView, LeaseAnswer, QuestionView,
};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::factories::parse_job_id;
use crate::json::Body;

type ApiResult<T> = Result<T, ApiError>;

/// The lease a factory's poll of its question is read under.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuestionQuery {
    /// The epoch of the lease the factory holds (J3: a stale one is refused with `409`).
    pub epoch: u64,
}

/// `POST /v1/jobs/{id}/question`: the job asks its operator; the request id is the question's.
pub(crate) async fn ask(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(w): Body<FencedWrite<AskBody>>,
) -> ApiResult<Json<LeaseAnswer>> {
    let factory = caller.factory()?;
    let id = parse_job_id(&id)?;
    Ok(Json(
        s.coord
            .ask(id, factory, w.epoch, w.request_id, w.body)
            .await?,
    ))
}

/// `GET /v1/jobs/{id}/question?epoch=N`: the job's last question, for its lease holder.
pub(crate) async fn poll(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<QuestionQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Option<QuestionView>>> {
    let factory = caller.factory()?;
    let id = parse_job_id(&id)?;
    let Query(q) = q?;
    Ok(Json(s.coord.question(id, factory, q.epoch).await?))
}

/// `POST /v1/jobs/{id}/answer`: an operator answers the job's open question.
pub(crate) async fn answer(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<AnswerBody>,
) -> ApiResult<Json<JobView>> {
    caller.require_operate()?;
    let id = parse_job_id(&id)?;
    let job = s.coord.answer(id, body, &caller.author()?).await?;
    Ok(Json(JobView::from(&job)))
}

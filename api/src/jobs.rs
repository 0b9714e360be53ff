//! Operator routes on jobs: submit (one job or a manifest), list, show, events, logs (JSON or
//! SSE with `Last-Event-ID` resume), actions, children, DAG, explain, and products' weights.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use gigafactory_actors::{CoordError, OperatorAction};
use gigafactory_core::job::{Action, FactoryId, Job, JobId, JobState};
use gigafactory_core::manifest::JobSpec;
use gigafactory_core::query::JobFilter;
use gigafactory_core::wire::{
    ActionBody, Event, JobPage, JobView, ManifestResponse, SubmitResponse,
};
use gigafactory_storage::repo;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::factories::parse_job_id;
use crate::json::{Body, from_object};

type ApiResult<T> = Result<T, ApiError>;

/// Log lines sent per page when catching up from the store.
const LOG_PAGE_LINES: usize = 1000;
/// Most bytes of output a log follower (SSE) holds queued: it reads the next page from the
/// store only once this one is sent, so a slow follower costs this much, not a page of
/// `LOG_PAGE_LINES` chunks (up to 64 KiB each).
const LOG_FOLLOW_PAGE_BYTES: usize = 256 * 1024;
/// SSE keep-alive comment interval.
pub(crate) const KEEP_ALIVE_SECS: u64 = 15;

fn parents_of(spec: &JobSpec) -> ApiResult<Vec<JobId>> {
    spec.deps.iter().map(|d| parse_job_id(d)).collect()
}

pub(crate) async fn submit(
    State(s): State<AppState>,
    caller: Caller,
    Body(spec): Body<JobSpec>,
) -> ApiResult<Response> {
    caller.require_operate()?;
    let parents = parents_of(&spec)?;
    let (job, created) = s.coord.submit(spec, parents, &caller.author()?).await?;
    Ok(submitted(&job, created))
}

/// `201` with the new job, or `200` with the one an earlier submit with the same idempotency
/// key made.
fn submitted(job: &Job, created: bool) -> Response {
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (
        status,
        Json(SubmitResponse {
            id: job.id,
            created,
            job: JobView::from(job),
        }),
    )
        .into_response()
}

pub(crate) async fn submit_manifest(
    State(s): State<AppState>,
    caller: Caller,
    body: String,
) -> ApiResult<Json<ManifestResponse>> {
    caller.require_operate()?;
    Ok(Json(ManifestResponse {
        jobs: s.coord.submit_manifest(&body, &caller.author()?).await?,
    }))
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    state: Option<String>,
    product: Option<String>,
    capability: Option<String>,
    factory: Option<String>,
    q: Option<String>,
    /// `true`: only jobs waiting for an operator's answer (read from the open questions'
    /// index); `false`: only the others.
    waiting_for_input: Option<bool>,
    cursor: Option<String>,
    limit: Option<usize>,
}

pub(crate) async fn list(
    State(s): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<JobPage>> {
    caller.require_view()?;
    let Query(q) = q?;
    let factory = match q.factory {
        Some(f) => Some(gigafactory_core::job::FactoryId(
            uuid::Uuid::parse_str(&f)
                .map_err(|_| ApiError::Malformed(format!("{f:?} is not a factory id")))?,
        )),
        None => None,
    };
    // A misspelt state would match nothing and read as "no such jobs": name the valid ones.
    if let Some(state) = q.state.as_deref()
        && !JobState::NAMES.contains(&state)
    {
        return Err(ApiError::Malformed(format!(
            "{state:?} is not a job state: use one of {}",
            JobState::NAMES.join(", ")
        )));
    }
    let filter = JobFilter {
        state: q.state,
        product: q.product,
        capability: q.capability,
        factory,
        text: q.q,
        waiting_for_input: q.waiting_for_input,
    };
    let cursor = q.cursor.as_deref().map(parse_job_id).transpose()?;
    let (jobs, next) = s
        .coord
        .list_jobs(&filter, cursor, q.limit.unwrap_or(50))
        .await?;
    Ok(Json(JobPage {
        jobs: jobs.iter().map(JobView::from).collect(),
        next_cursor: next.map(|c| c.to_string()),
    }))
}

pub(crate) async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    caller.require_view()?;
    let job = s.coord.job(parse_job_id(&id)?).await?;
    let mut view = JobView::from(&job);
    if matches!(view.state.as_str(), "pending" | "queued" | "failed") {
        let why = s.coord.why_not_running(job.id, None).await?;
        view.held = why.held;
        view.waiting = Some(why.explanation.summary);
    }
    Ok(Json(view))
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

/// An event as the timeline route shows it: with the factory that caused it named on its
/// own, so clients need not parse the author.
#[derive(Serialize, JsonSchema)]
pub(crate) struct EventView {
    #[serde(flatten)]
    event: Event,
    factory_id: Option<FactoryId>,
}

pub(crate) async fn events(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<EventView>>> {
    caller.require_view()?;
    let Query(q) = q?;
    let events = s
        .coord
        .events(parse_job_id(&id)?, q.after, q.limit.unwrap_or(200))
        .await?;
    Ok(Json(
        events
            .into_iter()
            .map(|event| EventView {
                factory_id: event.actor.factory(),
                event,
            })
            .collect(),
    ))
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogsQuery {
    /// `attempt:seq` of the last line already seen.
    after: Option<String>,
    /// Stream new lines as they arrive (SSE), as `Accept: text/event-stream` does.
    follow: Option<bool>,
}

fn parse_position(s: &str) -> ApiResult<(u32, u64)> {
    let bad = || ApiError::Malformed(format!("{s:?} is not a log position (attempt:seq)"));
    let (a, q) = s.split_once(':').ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, q.parse().map_err(|_| bad())?))
}

#[derive(Serialize)]
struct LogLineJson<'a> {
    attempt: u32,
    seq: u64,
    stream: gigafactory_core::wire::LogStream,
    data: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<gigafactory_core::job::Millis>,
}

pub(crate) async fn logs(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<LogsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    caller.require_view()?;
    let Query(q) = q?;
    let id = parse_job_id(&id)?;
    s.coord.job(id).await?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(q.after);
    let after = resume.as_deref().map(parse_position).transpose()?;
    let wants_sse = q.follow.unwrap_or(false)
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/event-stream"));
    if !wants_sse {
        let page = s
            .coord
            .logs(id, after, LOG_PAGE_LINES, repo::LOG_PAGE_MAX_BYTES)
            .await?;
        return Ok(Json(page.lines).into_response());
    }
    Ok(Sse::new(log_stream(s, id, after))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(KEEP_ALIVE_SECS)))
        .into_response())
}

/// Stored lines after `after`, then new ones as they are written (through any node), each with
/// id `attempt:seq` so a reconnect with `Last-Event-ID` resumes without losing or repeating a
/// line. The stream pulls one page at a time from the store and waits on a watch armed with
/// each read, so a slow client holds at most one page in memory.
fn log_stream(
    s: AppState,
    id: JobId,
    after: Option<(u32, u64)>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    struct St {
        s: AppState,
        id: JobId,
        last: Option<(u32, u64)>,
        pending: std::collections::VecDeque<gigafactory_core::wire::LogLine>,
        watch: Option<gigafactory_storage::Watch>,
    }
    let st = St {
        s,
        id,
        last: after,
        pending: Default::default(),
        watch: None,
    };
    stream::unfold(st, |mut st| async move {
        loop {
            if let Some(line) = st.pending.pop_front() {
                st.last = Some((line.attempt, line.seq));
                let data = serde_json::to_string(&LogLineJson {
                    attempt: line.attempt,
                    seq: line.seq,
                    stream: line.stream,
                    data: &line.data,
                    at: line.at,
                })
                .unwrap_or_default();
                let ev = SseEvent::default()
                    .id(format!("{}:{}", line.attempt, line.seq))
                    .event("log")
                    .data(data);
                return Some((Ok(ev), st));
            }
            if let Some(watch) = st.watch.take() {
                // A failed watch (a lost connection to the store) is treated as a change:
                // the next read tells what, if anything, is new.
                let _ = watch.await;
            }
            let page =
                st.s.coord
                    .logs_watch(st.id, st.last, LOG_PAGE_LINES, LOG_FOLLOW_PAGE_BYTES)
                    .await;
            match page {
                Ok((page, watch)) => {
                    // A page cut by its lines or its bytes has more behind it: read again
                    // once it is sent.
                    if !page.more {
                        st.watch = Some(watch);
                    }
                    let lines = page.lines;
                    st.pending.extend(lines);
                }
                Err(e) => {
                    let ev = SseEvent::default().event("error").data(e.to_string());
                    return Some((Ok(ev), st));
                }
            }
        }
    })
}

/// An operator's action, with an optional JSON body `{"reason": "..."}` (`request_changes`
/// needs one): the reason is kept in the action's event.
pub(crate) async fn act(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<JobView>> {
    caller.require_operate()?;
    let action = Action::parse(&action).ok_or_else(|| {
        let names: Vec<&str> = Action::ALL.iter().map(|a| a.name()).collect();
        ApiError::Coord(CoordError::Invalid(format!(
            "unknown action {action:?}: use {}",
            names.join(", ")
        )))
    })?;
    let reason = action_body(action, &body)?.reason;
    let action = OperatorAction { action, reason };
    Ok(Json(JobView::from(
        &s.coord
            .act(parse_job_id(&id)?, action, &caller.author()?)
            .await?,
    )))
}

/// The action's body: none at all is no reason, which only `request_changes` refuses.
fn action_body(action: Action, body: &[u8]) -> ApiResult<ActionBody> {
    let needs_reason = action == Action::RequestChanges;
    if body.is_empty() && !needs_reason {
        return Ok(ActionBody::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| e.to_string())
        .and_then(from_object::<ActionBody>)
        .and_then(|b| match b.reason {
            None if needs_reason => Err("the reason is missing".into()),
            _ => Ok(b),
        })
        .map_err(|e| {
            ApiError::Malformed(format!(
                "{} takes a JSON body {{\"reason\": \"why\"}}: {e}",
                action.name()
            ))
        })
}

pub(crate) async fn add_child(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(spec): Body<JobSpec>,
) -> ApiResult<Response> {
    caller.require_operate()?;
    if !spec.deps.is_empty() {
        return Err(ApiError::Coord(CoordError::Invalid(
            "a child's parent is the job in the path; leave deps empty".into(),
        )));
    }
    let (job, created) = s
        .coord
        .add_child(parse_job_id(&id)?, spec, &caller.author()?)
        .await?;
    Ok(submitted(&job, created))
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct DagNode {
    id: JobId,
    key: String,
    title: String,
    state: &'static str,
    parents: Vec<JobId>,
}

impl From<&Job> for DagNode {
    fn from(j: &Job) -> Self {
        DagNode {
            id: j.id,
            key: j.spec.key.clone(),
            title: j.spec.title.clone(),
            state: j.state.name(),
            parents: j.parents.clone(),
        }
    }
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct DagView {
    job: DagNode,
    parents: Vec<DagNode>,
    children: Vec<DagNode>,
    /// The whole run: the job, every ancestor and every descendant, nearest first (edges from
    /// each node's `parents`).
    run: Vec<DagNode>,
    /// Whether the run was too large to list whole (the nearest jobs are listed).
    run_truncated: bool,
}

pub(crate) async fn dag(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DagView>> {
    caller.require_view()?;
    let id = parse_job_id(&id)?;
    let (job, parents, children) = s.coord.dag(id).await?;
    let (run, run_truncated) = s.coord.run(id).await?;
    Ok(Json(DagView {
        job: (&job).into(),
        parents: parents.iter().map(Into::into).collect(),
        children: children.iter().map(Into::into).collect(),
        run: run.iter().map(Into::into).collect(),
        run_truncated,
    }))
}

/// Why a job is not running (`core::waiting`), with the last placement's breakdown.
#[derive(Serialize, JsonSchema)]
pub(crate) struct Explain {
    job_id: JobId,
    state: &'static str,
    /// The factory holding the job's lease, if one does.
    factory_id: Option<gigafactory_core::job::FactoryId>,
    /// Why the last placement chose its factory.
    placement: Option<gigafactory_core::scoring::ScoreBreakdown>,
    #[serde(flatten)]
    explanation: gigafactory_core::waiting::Explanation,
    /// The weights the explanation used (the product's).
    weights: gigafactory_core::scoring::Weights,
    /// With the request's weights (query parameters named after them): what would change.
    #[serde(skip_serializing_if = "Option::is_none")]
    what_if: Option<WhatIf>,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct WhatIf {
    weights: gigafactory_core::scoring::Weights,
    #[serde(flatten)]
    explanation: gigafactory_core::waiting::Explanation,
}

pub(crate) async fn explain(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<
        Query<gigafactory_core::scoring::WeightsOverride>,
        axum::extract::rejection::QueryRejection,
    >,
) -> ApiResult<Json<Explain>> {
    caller.require_view()?;
    let Query(o) = query?;
    let request = (o != Default::default()).then_some(o);
    let why = s.coord.why_not_running(parse_job_id(&id)?, request).await?;
    Ok(Json(Explain {
        job_id: why.job.id,
        state: why.job.state.name(),
        factory_id: why.job.state.lease().map(|l| l.factory),
        placement: why.job.placement,
        explanation: why.explanation,
        weights: why.weights,
        what_if: why.what_if.map(|(weights, explanation)| WhatIf {
            weights,
            explanation,
        }),
    }))
}

/// Every product's fair share that is not the default, and whether fair share is on.
#[derive(Serialize, JsonSchema)]
pub(crate) struct SharesView {
    enabled: bool,
    default: u32,
    shares: std::collections::BTreeMap<String, u32>,
}

pub(crate) async fn shares(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<SharesView>> {
    caller.require_view()?;
    let (enabled, shares) = s.coord.shares().await?;
    Ok(Json(SharesView {
        enabled,
        default: gigafactory_core::fair_share::SHARE_DEFAULT,
        shares,
    }))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShareBody {
    share: u64,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct ShareView {
    product: String,
    share: u32,
}

pub(crate) async fn set_share(
    State(s): State<AppState>,
    caller: Caller,
    Path(product): Path<String>,
    Body(b): Body<ShareBody>,
) -> ApiResult<Json<ShareView>> {
    caller.require_operate()?;
    let share = s.coord.set_share(&product, b.share).await?;
    Ok(Json(ShareView { product, share }))
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct WeightsView {
    product: String,
    /// What the product sets; unset weights come from the defaults.
    #[serde(rename = "override")]
    overrides: gigafactory_core::scoring::WeightsOverride,
    /// The weights placement uses for this product's jobs.
    effective: gigafactory_core::scoring::Weights,
    defaults: gigafactory_core::scoring::Weights,
}

pub(crate) async fn weights(
    State(s): State<AppState>,
    caller: Caller,
    Path(product): Path<String>,
) -> ApiResult<Json<WeightsView>> {
    caller.require_view()?;
    let (overrides, effective) = s.coord.weights(&product).await?;
    Ok(Json(WeightsView {
        product,
        overrides,
        effective,
        defaults: Default::default(),
    }))
}

pub(crate) async fn set_weights(
    State(s): State<AppState>,
    caller: Caller,
    Path(product): Path<String>,
    Body(o): Body<gigafactory_core::scoring::WeightsOverride>,
) -> ApiResult<Json<WeightsView>> {
    caller.require_operate()?;
    let effective = s.coord.set_weights(&product, o).await?;
    Ok(Json(WeightsView {
        product,
        overrides: o,
        effective,
        defaults: Default::default(),
    }))
}

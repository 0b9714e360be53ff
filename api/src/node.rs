//! Routes about the node and the fleet as a whole: health and readiness, metrics, the
//! caller's role, the overview's figures and their history, the fleet stream (SSE with
//! `Last-Event-ID` resume), the cluster's nodes and shards, and the admin's fault injection.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use gigafactory_actors::CoordError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::factories::parse_job_id;
use crate::jobs::KEEP_ALIVE_SECS;
use crate::json::Body;

type ApiResult<T> = Result<T, ApiError>;

pub(crate) async fn cluster(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<gigafactory_actors::ClusterView>> {
    caller.require_view()?;
    Ok(Json(s.coord.cluster().await?))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultRequest {
    /// `scheduler`, `reaper`, `job` or `factory`.
    target: String,
    /// The job or factory id, for those targets.
    id: Option<String>,
}

/// Chaos testing: an admin makes one actor fail; its supervisor must recover it. Routed only
/// on a node started with `--enable-fault-injection`.
pub(crate) async fn inject_fault(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<FaultRequest>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let id = || {
        req.id.clone().ok_or_else(|| {
            ApiError::Coord(CoordError::Invalid(format!(
                "target {} needs an id",
                req.target
            )))
        })
    };
    let target = match req.target.as_str() {
        "scheduler" => gigafactory_actors::FaultTarget::Scheduler,
        "reaper" => gigafactory_actors::FaultTarget::Reaper,
        "job" => gigafactory_actors::FaultTarget::Job(parse_job_id(&id()?)?),
        "factory" => gigafactory_actors::FaultTarget::Factory(gigafactory_core::job::FactoryId(
            uuid::Uuid::parse_str(&id()?)
                .map_err(|_| ApiError::Malformed("not a factory id".into()))?,
        )),
        other => {
            return Err(ApiError::Coord(CoordError::Invalid(format!(
                "unknown fault target {other:?}: use scheduler, reaper, job or factory"
            ))));
        }
    };
    s.coord.inject_fault(target, &caller.describe()).await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct WhoAmI {
    role: &'static str,
    name: String,
}

/// The caller's role, so the control plane shows only what it may do.
pub(crate) async fn whoami(caller: Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        role: caller.role.name(),
        name: caller.name,
    })
}

pub(crate) async fn stats(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<gigafactory_actors::Stats>> {
    caller.require_view()?;
    Ok(Json(s.coord.stats().await?))
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryQuery {
    /// Only samples taken after this time (ms since the epoch).
    after: Option<u64>,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct StatsHistoryView {
    /// Time between two samples.
    interval_ms: u64,
    /// When this node started. The history is the node's own and kept in memory: after a
    /// restart it begins here, which the charts say.
    node_started_at: gigafactory_core::job::Millis,
    samples: Vec<gigafactory_actors::StatsSample>,
}

/// The overview's charts over the last hour (bounded): throughput and placement latency,
/// sampled by this node; `after` returns only newer samples, for a client appending live.
pub(crate) async fn stats_history(
    State(s): State<AppState>,
    caller: Caller,
    q: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<StatsHistoryView>> {
    caller.require_view()?;
    let Query(q) = q?;
    Ok(Json(StatsHistoryView {
        interval_ms: s.coord.config().stats_sample_interval_ms,
        node_started_at: s.coord.started_at(),
        samples: s.coord.stats_history(q.after),
    }))
}

/// The fleet stream (SSE): job transitions committed through this node and, on a shared store,
/// through every other node, each with id `{node}:{seq}` in this node's order;
/// `Last-Event-ID` resumes from the node's kept events. A client that falls behind is dropped;
/// it reconnects.
pub(crate) async fn fleet_events(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.require_view()?;
    let after = match headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        Some(v) => Some(
            gigafactory_actors::FleetEventId::parse(v)
                .ok_or_else(|| ApiError::Malformed(format!("{v:?} is not an event id")))?,
        ),
        None => None,
    };
    let (backlog, rx) = s.coord.follow_fleet(after);
    let node = s.coord.node_id();
    let event = move |e: &gigafactory_actors::FleetEvent| {
        SseEvent::default()
            .id(gigafactory_actors::FleetEventId { node, seq: e.seq }.to_string())
            .event("job")
            .data(serde_json::to_string(e).unwrap_or_default())
    };
    let first: Vec<Result<SseEvent, Infallible>> = backlog.iter().map(|e| Ok(event(e))).collect();
    let live = stream::unfold(rx, move |mut rx| async move {
        match rx.recv().await {
            Ok(e) => Some((Ok(event(&e)), rx)),
            // Lagged: this client is too slow; end its stream so it reconnects and resumes.
            Err(_) => None,
        }
    });
    use futures_util::StreamExt as _;
    let all = stream::iter(first).chain(live);
    Ok(Sse::new(all)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(KEEP_ALIVE_SECS)))
        .into_response())
}

pub(crate) async fn readyz(State(s): State<AppState>) -> Response {
    match s.coord.ready().await {
        Ok(()) => (
            StatusCode::OK,
            format!("ready ({} store)", s.coord.store_engine()),
        )
            .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

pub(crate) async fn metrics(State(s): State<AppState>) -> Response {
    let body = crate::metrics::render(&s).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

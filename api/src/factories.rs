//! Routes factories call (enroll, heartbeat, claim, and the fenced writes on their leases)
//! and the fleet routes operators call (list, rotate, revoke, drain, undrain).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gigafactory_actors::CoordError;
use gigafactory_core::fleet::Factory;
use gigafactory_core::job::{Command, FactoryId, JobId};
use gigafactory_core::wire::{
    ClaimNext, ClaimRequest, ClaimResponse, Complete, EndAnswer, EnrollRequest, Fail, FencedWrite,
    HeartbeatRequest, HeartbeatResponse, LeaseAnswer, LogChunk, Release, Renew, Stage, UsageWrite,
};
use rand::Rng as _;
use schemars::JsonSchema;
use serde::Serialize;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::guard::AuditTarget;
use crate::json::Body;

type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn parse_job_id(s: &str) -> ApiResult<JobId> {
    uuid::Uuid::parse_str(s)
        .map(JobId)
        .map_err(|_| ApiError::Malformed(format!("{s:?} is not a job id")))
}

fn parse_factory_id(s: &str) -> ApiResult<FactoryId> {
    uuid::Uuid::parse_str(s)
        .map(FactoryId)
        .map_err(|_| ApiError::Malformed(format!("{s:?} is not a factory id")))
}

pub(crate) async fn enroll(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<EnrollRequest>,
) -> ApiResult<impl IntoResponse> {
    let secret = caller.secret.ok_or_else(|| {
        ApiError::Coord(CoordError::Unauthorized(
            "enrolling needs an enrollment token".into(),
        ))
    })?;
    let name = req.name.clone();
    let enrolled = s.coord.enroll(&secret, req).await?;
    let target = AuditTarget(format!("factory {} ({name})", enrolled.factory_id));
    Ok((axum::Extension(target), Json(enrolled)))
}

pub(crate) async fn heartbeat(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<HeartbeatRequest>,
) -> ApiResult<Json<HeartbeatResponse>> {
    let id = parse_factory_id(&id)?;
    if caller.factory()? != id {
        return Err(ApiError::Coord(CoordError::Forbidden(
            "a factory may heartbeat only for itself".into(),
        )));
    }
    Ok(Json(s.coord.heartbeat(id, req).await?))
}

pub(crate) async fn claim(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<ClaimRequest>,
) -> ApiResult<Response> {
    let factory = caller.factory()?;
    if req.max_jobs == 0 {
        return Err(ApiError::Coord(CoordError::Invalid(
            "max_jobs must be at least 1".into(),
        )));
    }
    let jobs = s.coord.claim(factory, req.max_jobs, req.wait_ms).await?;
    if jobs.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(Json(ClaimResponse { jobs }).into_response())
}

/// Applies a fenced write other than complete and fail (those are [`End`]s); `usage` (the
/// reports a release carries) is applied before it, in its transaction.
async fn write(
    s: &AppState,
    id: &str,
    cmd: Command,
    request_id: String,
    usage: Vec<UsageWrite>,
) -> ApiResult<Json<LeaseAnswer>> {
    Ok(Json(
        s.coord
            .factory_write(parse_job_id(id)?, cmd, request_id, Vec::new(), usage)
            .await?,
    ))
}

/// An end (complete or fail): a fenced write that may lease the factory its next jobs in its
/// transaction (`claim_next`).
struct End {
    cmd: Command,
    request_id: String,
    changed_paths: Vec<String>,
    usage: Vec<UsageWrite>,
    claim_next: Option<ClaimNext>,
}

async fn end(s: &AppState, id: &str, end: End) -> ApiResult<Json<EndAnswer>> {
    let id = parse_job_id(id)?;
    let answer = s
        .coord
        .factory_end(
            id,
            end.cmd,
            end.request_id,
            end.changed_paths,
            end.usage,
            end.claim_next,
        )
        .await?;
    Ok(Json(answer))
}

pub(crate) async fn renew(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(w): Body<FencedWrite<Renew>>,
) -> ApiResult<Json<LeaseAnswer>> {
    let factory = caller.factory()?;
    let ttl_ms = s.coord.config().lease_ttl_ms;
    write(
        &s,
        &id,
        Command::Renew {
            factory,
            epoch: w.epoch,
            ttl_ms,
        },
        w.request_id,
        Vec::new(),
    )
    .await
}

pub(crate) async fn stage(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(w): Body<FencedWrite<Stage>>,
) -> ApiResult<Json<LeaseAnswer>> {
    let factory = caller.factory()?;
    let stage = w.body.stage.trim().to_string();
    if stage.is_empty() || stage.len() > 64 {
        return Err(ApiError::Coord(CoordError::Invalid(
            "stage must be 1 to 64 characters".into(),
        )));
    }
    write(
        &s,
        &id,
        Command::Stage {
            factory,
            epoch: w.epoch,
            stage,
        },
        w.request_id,
        Vec::new(),
    )
    .await
}

pub(crate) async fn complete(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(w): Body<FencedWrite<Complete>>,
) -> ApiResult<Json<EndAnswer>> {
    let factory = caller.factory()?;
    let cmd = Command::Complete {
        factory,
        epoch: w.epoch,
    };
    let c = w.body;
    let (changed_paths, usage, claim_next) = (c.changed_paths, c.usage, c.claim_next);
    let request_id = w.request_id;
    let e = End {
        cmd,
        request_id,
        changed_paths,
        usage,
        claim_next,
    };
    end(&s, &id, e).await
}

pub(crate) async fn fail(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(w): Body<FencedWrite<Fail>>,
) -> ApiResult<Json<EndAnswer>> {
    let factory = caller.factory()?;
    let jitter = rand::rng().random::<f64>();
    let f = w.body;
    let error: String = f.error.chars().take(4096).collect();
    let cmd = Command::Fail {
        factory,
        epoch: w.epoch,
        error,
        exit_code: f.exit_code,
        retryable: f.retryable,
        jitter,
    };
    let e = End {
        cmd,
        request_id: w.request_id,
        changed_paths: f.changed_paths,
        usage: f.usage,
        claim_next: f.claim_next,
    };
    end(&s, &id, e).await
}

pub(crate) async fn release(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(w): Body<FencedWrite<Release>>,
) -> ApiResult<Json<LeaseAnswer>> {
    let factory = caller.factory()?;
    write(
        &s,
        &id,
        Command::Release {
            factory,
            epoch: w.epoch,
            checkpoint: w.body.checkpoint,
            throttled_until: w.body.throttled_until,
        },
        w.request_id,
        w.body.usage,
    )
    .await
}

pub(crate) async fn logs(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(w): Body<FencedWrite<LogChunk>>,
) -> ApiResult<Json<LeaseAnswer>> {
    let factory = caller.factory()?;
    Ok(Json(
        s.coord
            .append_log(factory, parse_job_id(&id)?, w.epoch, w.body)
            .await?,
    ))
}

/// A factory as operators see it (no token hash).
#[derive(Serialize, JsonSchema)]
pub(crate) struct FactoryView {
    id: FactoryId,
    name: String,
    os: String,
    arch: String,
    capabilities: Vec<String>,
    engine_classes: Vec<String>,
    slots: u32,
    slots_busy: u32,
    cost_per_hour_usd: f64,
    status: &'static str,
    enrolled_at: u64,
    last_heartbeat: u64,
    /// What it holds warm, as its last heartbeat said.
    warm: Vec<String>,
}

impl From<Factory> for FactoryView {
    fn from(f: Factory) -> Self {
        FactoryView {
            id: f.id,
            name: f.name,
            os: f.os,
            arch: f.arch,
            capabilities: f.capabilities,
            engine_classes: f.engine_classes,
            slots: f.slots,
            slots_busy: f.slots_busy,
            cost_per_hour_usd: f.cost_per_hour_micros as f64 / 1e6,
            status: f.status.name(),
            enrolled_at: f.enrolled_at,
            last_heartbeat: f.last_heartbeat,
            warm: f.warm,
        }
    }
}

pub(crate) async fn list(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<FactoryView>>> {
    caller.require_view()?;
    Ok(Json(
        s.coord
            .factories()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

pub(crate) async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<FactoryView>> {
    caller.require_view()?;
    Ok(Json(s.coord.factory(parse_factory_id(&id)?).await?.into()))
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct TokenResponse {
    /// The secret; shown this once.
    token: String,
}

pub(crate) async fn rotate(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenResponse>> {
    caller.require_admin()?;
    Ok(Json(TokenResponse {
        token: s.coord.rotate_factory(parse_factory_id(&id)?).await?,
    }))
}

pub(crate) async fn revoke(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    s.coord.revoke_factory(parse_factory_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn drain(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_operate()?;
    s.coord.drain_factory(parse_factory_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn undrain(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_operate()?;
    s.coord.undrain_factory(parse_factory_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

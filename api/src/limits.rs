//! Routes for concurrency and rate limits: list them with where each stands, set one, remove
//! one. Keys hold `:` and `/` (`repo:acme/api`): percent-encode them in the path.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use gigafactory_core::job::Millis;
use gigafactory_core::limits::{self, LimitSpec};
use gigafactory_storage::repo::LimitState;
use schemars::JsonSchema;
use serde::Serialize;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::json::Body;

type ApiResult<T> = Result<T, ApiError>;

/// A limit as the API shows it.
#[derive(Serialize, JsonSchema)]
pub(crate) struct LimitView {
    key: String,
    max_running: Option<u32>,
    per_minute: Option<u32>,
    /// Leases holding a slot under it now.
    running: u32,
    /// With a rate: the earliest time its next lease may start (ms), when that is ahead.
    next_start_at: Option<Millis>,
    /// With a rate faster than 3,000 a minute: leases started in the current second, of the
    /// second's quota (a 61st of the rate).
    started_this_second: Option<u32>,
    /// No lease under the key before then (ms), while that is ahead: a provider's quota
    /// window a throttled job reported, or an operator's pause.
    throttled_until: Option<Millis>,
}

impl LimitView {
    fn of(s: LimitState, now: Millis) -> Self {
        let counted = s.spec.per_minute.is_some_and(limits::rate_is_counted);
        let next = if counted {
            let full = s.spec.per_minute.map(limits::rate_quota) <= Some(s.started_this_second);
            full.then(|| (limits::rate_bucket(now) + 1) * limits::RATE_BUCKET_MS)
        } else {
            Some(s.next_start_us.div_ceil(1_000))
        };
        LimitView {
            key: s.key,
            max_running: s.spec.max_running,
            per_minute: s.spec.per_minute,
            running: s.running,
            next_start_at: next.filter(|n| s.spec.per_minute.is_some() && *n > now),
            started_this_second: counted.then_some(s.started_this_second),
            throttled_until: s.spec.throttled_until.filter(|t| *t > now),
        }
    }
}

pub(crate) async fn list(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<LimitView>>> {
    caller.require_view()?;
    let now = s.coord.now();
    let limits = s.coord.limits().await?;
    Ok(Json(
        limits.into_iter().map(|l| LimitView::of(l, now)).collect(),
    ))
}

pub(crate) async fn set(
    State(s): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    Body(spec): Body<LimitSpec>,
) -> ApiResult<Json<LimitView>> {
    caller.require_operate()?;
    let state = s.coord.set_limit(&key, spec).await?;
    Ok(Json(LimitView::of(state, s.coord.now())))
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_operate()?;
    s.coord.delete_limit(&key).await?;
    Ok(StatusCode::NO_CONTENT)
}

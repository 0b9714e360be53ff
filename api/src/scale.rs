//! Scaling hints: `GET /v1/autoscale` (every shape, or one, with the rule's parameters) and
//! `GET /v1/autoscale/keda` (one shape as a flat object, for KEDA's metrics-api scaler, which
//! reads `desired_factories`). The rule is `core::autoscale`'s.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use gigafactory_actors::AutoscaleView;
use gigafactory_core::autoscale::{self, HintError, ScaleRule};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

type ApiResult<T> = Result<T, ApiError>;

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AutoscaleQuery {
    /// One shape's capabilities, comma-separated (`gpu,linux`; `any` for none). Without it,
    /// every shape with work queued or running.
    capabilities: Option<String>,
    /// The shape's engine class (only with `capabilities`; absent: the shape without one).
    engine_class: Option<String>,
    /// Slots one factory brings (1 to 1024); default: the fitting factories' mean.
    #[schemars(range(min = 1, max = 1024))]
    slots_per_factory: Option<u32>,
    /// How long the oldest queued job may wait before one more factory is asked for (s; at
    /// most a week).
    #[schemars(range(max = 604800))]
    target_wait_seconds: Option<u64>,
}

// The schema's bounds are the rule's.
const _: () = assert!(autoscale::SLOTS_PER_FACTORY_MAX == 1024);
const _: () = assert!(autoscale::TARGET_WAIT_SECONDS_MAX == 604_800);

impl AutoscaleQuery {
    async fn answer(self, s: &AppState) -> ApiResult<AutoscaleView> {
        let rule = ScaleRule::new(self.slots_per_factory, self.target_wait_seconds)?;
        let only = autoscale::select(self.capabilities.as_deref(), self.engine_class.as_deref())?;
        Ok(s.coord.autoscale(rule, only).await?)
    }
}

/// Every shape's figures and the factories each asks for, or the one `capabilities` and
/// `engine_class` name (zeros when nothing of it is queued or running).
pub(crate) async fn hints(
    State(s): State<AppState>,
    caller: Caller,
    q: Result<Query<AutoscaleQuery>, QueryRejection>,
) -> ApiResult<Json<AutoscaleView>> {
    caller.require_view()?;
    let Query(q) = q?;
    Ok(Json(q.answer(&s).await?))
}

/// One shape, flat, as KEDA's metrics-api scaler reads it (`valueLocation: desired_factories`).
#[derive(Serialize, JsonSchema)]
pub(crate) struct KedaView {
    desired_factories: usize,
    queued: usize,
    runnable: usize,
    running: usize,
    oldest_queued_age_seconds: u64,
    factories_online: usize,
    slots: u32,
    slots_per_factory: u32,
}

/// One shape (`capabilities` is required) for KEDA.
pub(crate) async fn keda(
    State(s): State<AppState>,
    caller: Caller,
    q: Result<Query<AutoscaleQuery>, QueryRejection>,
) -> ApiResult<Json<KedaView>> {
    caller.require_view()?;
    let Query(q) = q?;
    if q.capabilities.is_none() {
        return Err(ApiError::Hint(HintError::NoShape));
    }
    let view = q.answer(&s).await?;
    // `select` named one shape, and `autoscale` answers a named shape even when idle.
    let h = view
        .shapes
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::NotFound("no such shape".into()))?;
    Ok(Json(KedaView {
        desired_factories: h.desired_factories,
        queued: h.queued,
        runnable: h.runnable,
        running: h.running,
        oldest_queued_age_seconds: h.oldest_queued_age_seconds,
        factories_online: h.factories_online,
        slots: h.slots,
        slots_per_factory: h.slots_per_factory,
    }))
}

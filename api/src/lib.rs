//! Gigafactory's HTTP room: the REST API v1 (DESIGN §6) over a [`Coordinator`]: routes,
//! authentication, the error mapping, SSE streams and the OpenAPI document.
//!
//! Architecture invariant: only `api` knows HTTP. Errors become responses in one place
//! (`error.rs`), each with a stable `error` code.

mod artifacts;
mod auth;
mod budgets;
mod courier;
mod error;
mod factories;
mod intake;
mod jobs;
mod json;
mod limits;
mod node;
mod openapi;
mod ui;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use gigafactory_actors::Coordinator;
use metrics_exporter_prometheus::PrometheusHandle;

pub use courier::HttpCourier;
pub use error::ApiError;

/// Largest request body accepted (a manifest of 10,000 jobs fits).
pub const BODY_MAX_BYTES: usize = 8 * 1024 * 1024;

/// How the API runs.
#[derive(Clone, Default)]
pub struct ApiOptions {
    /// Operator routes without a token act as admin. Only for local development.
    pub insecure_dev: bool,
    /// Renders `/metrics`; without it `/metrics` is empty.
    pub metrics: Option<PrometheusHandle>,
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub coord: Coordinator,
    pub opts: Arc<ApiOptions>,
}

/// Every route of the API.
pub fn router(coord: Coordinator, opts: ApiOptions) -> Router {
    let state = AppState {
        coord,
        opts: Arc::new(opts),
    };
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(node::readyz))
        .route("/metrics", get(node::metrics))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/v1/cluster", get(node::cluster))
        .route("/v1/stats", get(node::stats))
        .route("/v1/stats/history", get(node::stats_history))
        .route("/v1/whoami", get(node::whoami))
        .route("/v1/events", get(node::fleet_events))
        .route("/", get(ui::index))
        .route("/ui/{file}", get(ui::asset))
        .route("/v1/admin/faults", post(node::inject_fault))
        .route("/v1/factories/enroll", post(factories::enroll))
        .route("/v1/factories", get(factories::list))
        .route("/v1/factories/{id}", get(factories::show))
        .route("/v1/factories/{id}/heartbeat", post(factories::heartbeat))
        .route("/v1/factories/{id}/rotate", post(factories::rotate))
        .route("/v1/factories/{id}/revoke", post(factories::revoke))
        .route("/v1/factories/{id}/drain", post(factories::drain))
        .route("/v1/enrollment-tokens", post(factories::enrollment_token))
        .route("/v1/tokens", post(factories::mint_token))
        .route("/v1/claims", post(factories::claim))
        .route("/v1/jobs", post(jobs::submit).get(jobs::list))
        .route("/v1/manifests", post(jobs::submit_manifest))
        .route("/v1/jobs/{id}", get(jobs::show))
        .route("/v1/jobs/{id}/events", get(jobs::events))
        .route("/v1/jobs/{id}/logs", get(jobs::logs).post(factories::logs))
        .route("/v1/jobs/{id}/actions/{action}", post(jobs::act))
        .route("/v1/jobs/{id}/children", post(jobs::add_child))
        .route("/v1/jobs/{id}/dag", get(jobs::dag))
        .route("/v1/jobs/{id}/explain", get(jobs::explain))
        .route(
            "/v1/products/{product}/weights",
            get(jobs::weights).put(jobs::set_weights),
        )
        .route("/v1/limits", get(limits::list))
        .route("/v1/limits/{key}", put(limits::set).delete(limits::delete))
        .route("/v1/products/shares", get(jobs::shares))
        .route("/v1/products/{product}/share", put(jobs::set_share))
        .route("/v1/jobs/{id}/usage", post(budgets::usage))
        .route("/v1/jobs/{id}/artifacts", get(artifacts::list))
        .route("/v1/jobs/{id}/artifacts/{name}", put(artifacts::upload))
        .route(
            "/v1/jobs/{id}/artifacts/{attempt}/{name}",
            get(artifacts::download),
        )
        .route(
            "/v1/intake/{source}",
            get(intake::source).post(intake::deliver),
        )
        .route("/v1/intake/{source}/test", post(intake::test))
        .route("/v1/items/{source}", get(intake::items))
        .route("/v1/items/{source}/{id}", get(intake::item))
        .route("/v1/deliveries/{id}/redeliver", post(intake::redeliver))
        .route("/v1/budgets", get(budgets::list))
        .route(
            "/v1/budgets/{name}",
            get(budgets::show).put(budgets::set).delete(budgets::delete),
        )
        .route("/v1/budgets/{name}/pause", post(budgets::pause))
        .route("/v1/budgets/{name}/resume", post(budgets::resume))
        .route("/v1/jobs/{id}/renew", post(factories::renew))
        .route("/v1/jobs/{id}/stage", post(factories::stage))
        .route("/v1/jobs/{id}/complete", post(factories::complete))
        .route("/v1/jobs/{id}/fail", post(factories::fail))
        .route("/v1/jobs/{id}/release", post(factories::release))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(BODY_MAX_BYTES))
        .layer(axum::middleware::map_response(json::plain_errors))
        .with_state(state)
}

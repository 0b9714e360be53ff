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
mod guard;
mod intake;
mod jobs;
mod json;
mod limits;
pub mod listener;
mod metrics;
mod node;
mod openapi;
mod questions;
mod scale;
mod schedules;
mod secrets;
mod session;
mod tokens;
mod ui;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post, put};
use gigafactory_actors::Coordinator;
use gigafactory_core::throttle::{AuthThrottle, ThrottleLimits};
use metrics_exporter_prometheus::PrometheusHandle;

pub use courier::HttpCourier;
pub use error::ApiError;

/// Largest request body accepted (a manifest of 10,000 jobs fits).
pub const BODY_MAX_BYTES: usize = 8 * 1024 * 1024;

/// How the API runs.
#[derive(Clone, Default)]
pub struct ApiOptions {
    /// A caller without a token is an operator (never an admin), and only requests that name
    /// this node by a loopback `Host` from no page or its own are served. Only for local
    /// development.
    pub insecure_dev: bool,
    /// The address the node listens on: an insecure node checks the `Host` port against it.
    pub listen: Option<SocketAddr>,
    /// Serves `/v1/admin/faults` (chaos testing); off unless the node is started so.
    pub fault_injection: bool,
    /// When a peer that presents unknown tokens is refused for a while.
    pub auth_throttle: ThrottleLimits,
    /// The node serves over TLS: session cookies are `Secure`.
    pub tls: bool,
    /// Renders `/metrics`' event series; without it `/metrics` has only the node's state.
    pub metrics: Option<PrometheusHandle>,
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub coord: Coordinator,
    pub opts: Arc<ApiOptions>,
    /// Failed authentications by peer (`guard::gate`).
    throttle: Arc<Mutex<AuthThrottle>>,
}

impl AppState {
    /// How long (ms) `peer` must still wait before a token of its is looked at.
    pub(crate) fn blocked_for(&self, peer: IpAddr) -> Option<u64> {
        let now = self.coord.now();
        self.throttle
            .lock()
            .expect("throttle lock poisoned")
            .blocked_for(peer, now)
    }

    /// Counts a token of `peer`'s that matched none.
    pub(crate) fn failed_auth(&self, peer: IpAddr) {
        let now = self.coord.now();
        let mut t = self.throttle.lock().expect("throttle lock poisoned");
        t.fail(peer, now);
        if t.blocked_for(peer, now).is_some() {
            tracing::warn!(%peer, "too many unknown tokens: peer throttled");
        }
    }
}

/// Every route of the API.
pub fn router(coord: Coordinator, opts: ApiOptions) -> Router {
    let state = AppState {
        coord,
        throttle: Arc::new(Mutex::new(AuthThrottle::new(opts.auth_throttle))),
        opts: Arc::new(opts),
    };
    let faults = state.opts.fault_injection;
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(node::readyz))
        .route("/metrics", get(node::metrics))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/v1/cluster", get(node::cluster))
        .route("/v1/stats", get(node::stats))
        .route("/v1/stats/history", get(node::stats_history))
        .route("/v1/autoscale", get(scale::hints))
        .route("/v1/autoscale/keda", get(scale::keda))
        .route("/v1/whoami", get(node::whoami))
        .route("/v1/session", post(session::open).delete(session::close))
        .route("/v1/events", get(node::fleet_events))
        .route("/", get(ui::index))
        .route("/ui/{file}", get(ui::asset))
        .route("/v1/factories/enroll", post(factories::enroll))
        .route("/v1/factories", get(factories::list))
        .route("/v1/factories/{id}", get(factories::show))
        .route("/v1/factories/{id}/heartbeat", post(factories::heartbeat))
        .route("/v1/factories/{id}/rotate", post(factories::rotate))
        .route("/v1/factories/{id}/revoke", post(factories::revoke))
        .route("/v1/factories/{id}/drain", post(factories::drain))
        .route("/v1/factories/{id}/undrain", post(factories::undrain))
        .route("/v1/enrollment-tokens", post(tokens::enrollment_token))
        .route("/v1/tokens", post(tokens::mint_token).get(tokens::list))
        .route("/v1/tokens/{id}", delete(tokens::revoke))
        .route("/v1/audit", get(tokens::audit))
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
        .route("/v1/schedules", get(schedules::list))
        .route(
            "/v1/schedules/{name}",
            get(schedules::show)
                .put(schedules::set)
                .delete(schedules::delete),
        )
        .route("/v1/schedules/{name}/pause", post(schedules::pause))
        .route("/v1/schedules/{name}/resume", post(schedules::resume))
        .route("/v1/schedules/{name}/trigger", post(schedules::trigger))
        .route("/v1/jobs/{id}/renew", post(factories::renew))
        .route("/v1/jobs/{id}/stage", post(factories::stage))
        .route("/v1/jobs/{id}/complete", post(factories::complete))
        .route("/v1/jobs/{id}/fail", post(factories::fail))
        .route("/v1/jobs/{id}/release", post(factories::release))
        .route(
            "/v1/jobs/{id}/question",
            post(questions::ask).get(questions::poll),
        )
        .route("/v1/jobs/{id}/answer", post(questions::answer))
        .route("/v1/secrets", get(secrets::list))
        .route(
            "/v1/secrets/{product}/{name}",
            put(secrets::set).delete(secrets::delete),
        )
        .route("/v1/jobs/{id}/secrets", post(secrets::fetch));
    let router = match faults {
        true => router.route("/v1/admin/faults", post(node::inject_fault)),
        false => router,
    };
    router
        .route_layer(from_fn_with_state(state.clone(), guard::gate))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(BODY_MAX_BYTES))
        .layer(from_fn_with_state(state.clone(), guard::edge))
        .layer(axum::middleware::map_response(json::plain_errors))
        .with_state(state)
}

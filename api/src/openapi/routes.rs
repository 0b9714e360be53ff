//! Every operation of the router (`lib.rs`), described once: summary, role, parameters, the
//! request body's type and each success answer's type. Schemas come from the types; only what
//! a type cannot say (media types, statuses, which path parameters are ids) is written here.

use gigafactory_actors::{AutoscaleView, ClusterView, IntakeOutcome, Minted, Stats, TokenInfo};
use gigafactory_core::limits::LimitSpec;
use gigafactory_core::manifest::JobSpec;
use gigafactory_core::scoring::WeightsOverride;
use gigafactory_core::tracker::{Delivery, ItemRecord, SourceConfig};
use gigafactory_core::wire::{
    ActionBody, ArtifactUpload, ArtifactView, BudgetBody, BudgetDetail, BudgetView, ClaimRequest,
    ClaimResponse, Complete, EndAnswer, EnrollRequest, EnrollResponse, Fail, FencedWrite,
    FleetEvent, HeartbeatRequest, HeartbeatResponse, JobPage, JobView, LeaseAnswer, LogChunk,
    LogLine, ManifestResponse, PauseBody, Release, Renew, Stage, SubmitResponse, UsageReport,
};
use serde_json::{Value, json};

use super::{Access, Doc};
use crate::factories::{FactoryView, TokenResponse};
use crate::intake::{ItemView, ItemsQuery};
use crate::jobs::{
    DagView, EventView, EventsQuery, Explain, ListQuery, LogsQuery, ShareBody, ShareView,
    SharesView, WeightsView,
};
use crate::limits::LimitView;
use crate::node::{FaultRequest, HistoryQuery, StatsHistoryView, WhoAmI};
use crate::scale::{AutoscaleQuery, KedaView};
use crate::session::{OpenSessionRequest, SessionInfo};
use crate::tokens::{
    AuditPage, AuditQuery, EnrollmentTokenRequest, ListQuery as TokensQuery, MintTokenRequest,
};

fn uuid() -> Value {
    json!({"type": "string", "format": "uuid"})
}

fn text(description: &str) -> Value {
    json!({"text/plain": {"schema": {"type": "string", "description": description}}})
}

/// Server-sent events whose `data` is `T` as JSON (`x-data` names it; OpenAPI 3.1 has no
/// field for an event stream's items).
fn events(data: Value) -> Value {
    json!({"text/event-stream": {"schema": {"type": "string"}, "x-data": data}})
}

pub(super) fn describe(d: &mut Doc) {
    node(d);
    factories(d);
    jobs(d);
    leases(d);
    scheduling(d);
    money(d);
    trackers(d);
    artifacts(d);
    super::questions::describe(d);
    super::secrets::describe(d);
}

fn node(d: &mut Doc) {
    use Access::*;
    d.get("/healthz", "Liveness", Open)
        .answers_with(200, "alive", text("`ok`"));
    d.get(
        "/readyz",
        "Readiness: the store answers and no actor crash-loops",
        Open,
    )
    .answers_with(200, "ready", text("`ready (<engine> store)`"));
    d.get("/metrics", "Prometheus metrics", Open).answers_with(
        200,
        "the exposition",
        json!({"text/plain": {"schema": {"type": "string"}}}),
    );
    d.get("/v1/openapi.json", "This document", Open)
        .answers_with(
            200,
            "OpenAPI 3.1",
            json!({"application/json": {"schema": {"type": "object"}}}),
        );
    d.get("/", "The control plane (browser UI)", Open)
        .answers_with(
            200,
            "the page",
            json!({"text/html": {"schema": {"type": "string"}}}),
        );
    d.get("/ui/{file}", "The control plane's assets", Open)
        .answers_with(
            200,
            "the asset",
            json!({"text/javascript": {"schema": {"type": "string"}},
                   "text/css": {"schema": {"type": "string"}}}),
        );
    d.get("/v1/whoami", "The caller's role and name", Any)
        .answers::<WhoAmI>(200, "the caller");
    d.post(
        "/v1/session",
        "Sign in a browser: exchange an admin, operator or viewer token for a session cookie \
         (HttpOnly, SameSite=Strict, Secure over TLS) that expires and is revoked with the \
         token; writes with the cookie must carry this node's Origin",
        Open,
    )
    .json::<OpenSessionRequest>()
    .answers::<SessionInfo>(201, "the session's role, name and end; Set-Cookie holds it");
    d.delete(
        "/v1/session",
        "Sign out: revoke the session whose cookie the request carries and clear the cookie",
        Any,
    )
    .empty(204, "signed out");
    d.get(
        "/v1/cluster",
        "Nodes (with liveness) and shard owners",
        Viewer,
    )
    .answers::<ClusterView>(200, "the cluster");
    d.get(
        "/v1/stats",
        "Overview figures: fleet, queue by product and capability, counters, claim latency",
        Viewer,
    )
    .answers::<Stats>(200, "the figures");
    d.get(
        "/v1/stats/history",
        "The overview's charts over the last hour, sampled by this node every interval_ms",
        Viewer,
    )
    .query::<HistoryQuery>()
    .answers::<StatsHistoryView>(200, "the samples");
    d.get(
        "/v1/autoscale",
        "Scaling hints: per capability shape, queued and running jobs, fitting factories online \
         and the factories the documented rule asks for; any node answers for the whole cluster",
        Viewer,
    )
    .query::<AutoscaleQuery>()
    .answers::<AutoscaleView>(200, "the hints");
    d.get(
        "/v1/autoscale/keda",
        "One shape's scaling hint as a flat object for KEDA's metrics-api scaler \
         (valueLocation: desired_factories); capabilities is required",
        Viewer,
    )
    .query::<AutoscaleQuery>()
    .answers::<KedaView>(200, "the hint");
    let mut op = d.get(
        "/v1/events",
        "Fleet stream (SSE) of job transitions, this node's and every node's on a shared \
         store; event ids are `{node}:{seq}`, Last-Event-ID resumes",
        Viewer,
    );
    let event = op.reference::<FleetEvent>();
    op.header("Last-Event-ID", "resume after this event (`{node}:{seq}`)")
        .answers_with(200, "`job` events", events(event));
    d.post(
        "/v1/admin/faults",
        "Chaos testing: make one actor (scheduler, reaper, job, factory) fail; its supervisor \
         recovers it",
        Admin,
    )
    .json::<FaultRequest>()
    .empty(202, "injected");
}

fn factories(d: &mut Doc) {
    use Access::*;
    d.post(
        "/v1/factories/enroll",
        "Spend an enrollment token: register a factory and get its own token",
        Enrollment,
    )
    .json::<EnrollRequest>()
    .answers::<EnrollResponse>(200, "the factory's id and token");
    d.get("/v1/factories", "List factories", Viewer)
        .answers::<Vec<FactoryView>>(200, "every factory");
    d.get("/v1/factories/{id}", "One factory", Viewer)
        .param("id", uuid())
        .answers::<FactoryView>(200, "the factory");
    d.post(
        "/v1/factories/{id}/heartbeat",
        "Heartbeat; answers with commands (cancel, preempt, drain)",
        Factory,
    )
    .param("id", uuid())
    .json::<HeartbeatRequest>()
    .answers::<HeartbeatResponse>(200, "what to do");
    d.post(
        "/v1/factories/{id}/rotate",
        "Replace a factory's token",
        Admin,
    )
    .param("id", uuid())
    .answers::<TokenResponse>(200, "the new token, shown once");
    d.post("/v1/factories/{id}/revoke", "Revoke a factory", Admin)
        .param("id", uuid())
        .empty(204, "revoked");
    d.post(
        "/v1/factories/{id}/drain",
        "Stop giving a factory new work",
        Operator,
    )
    .param("id", uuid())
    .empty(204, "draining");
    d.post(
        "/v1/factories/{id}/undrain",
        "Give a draining factory new work again (refused unless it drains)",
        Operator,
    )
    .param("id", uuid())
    .empty(204, "online");
    d.post("/v1/enrollment-tokens", "Mint an enrollment token", Admin)
        .optional_json::<EnrollmentTokenRequest>(
            "`{}`, or a name and an expiry (`expires_in` or `expires_at`); may be empty",
        )
        .answers::<Minted>(200, "the token, shown once, with its id and expiry");
    d.post(
        "/v1/tokens",
        "Mint a token for a role (admin, operator, viewer, enrollment), optionally expiring",
        Admin,
    )
    .json::<MintTokenRequest>()
    .answers::<Minted>(200, "the token, shown once, with its id and expiry");
    d.get("/v1/tokens", "List tokens, never their secrets", Admin)
        .query::<TokensQuery>()
        .answers::<Vec<TokenInfo>>(200, "every token (revoked ones with all=true)");
    d.delete("/v1/tokens/{id}", "Revoke a token by its public id", Admin)
        .param("id", json!({"type": "string", "pattern": "^[0-9a-f]{16}$"}))
        .empty(204, "revoked");
    d.get(
        "/v1/audit",
        "The audit log of operator and admin writes, newest first",
        Admin,
    )
    .query::<AuditQuery>()
    .answers::<AuditPage>(200, "a page of entries and the cursor of the next");
    d.post(
        "/v1/claims",
        "Long-poll for work: up to max_jobs jobs with leases, or 204",
        Factory,
    )
    .json::<ClaimRequest>()
    .answers::<ClaimResponse>(200, "jobs with their leases")
    .empty(204, "no work within wait_ms");
}

fn jobs(d: &mut Doc) {
    use Access::*;
    d.post(
        "/v1/jobs",
        "Submit one job (idempotency key honoured)",
        Operator,
    )
    .json::<JobSpec>()
    .answers::<SubmitResponse>(201, "created")
    .answers::<SubmitResponse>(200, "made earlier under the same idempotency key");
    d.get(
        "/v1/jobs",
        "List jobs (filters: state, product, capability, factory, q, waiting_for_input; cursor \
         paging). A filtered page examines at most 10,000 jobs and returns what it found with a \
         cursor; waiting_for_input=true reads the open questions' index instead, so it finds \
         every waiting job (up to 10,000 at once) at the cost of those alone",
        Viewer,
    )
    .query::<ListQuery>()
    .answers::<JobPage>(200, "a page of jobs");
    d.post(
        "/v1/manifests",
        "Submit a manifest (TOML or JSON), all or nothing",
        Operator,
    )
    .body(
        "a manifest: `[[job]]` tables in TOML, or the same as JSON",
        json!({"application/toml": {"schema": {"type": "string"}},
               "text/plain": {"schema": {"type": "string"}},
               "application/json": {"schema": {"type": "object"}}}),
    )
    .answers::<ManifestResponse>(200, "every job's key and id");
    d.get("/v1/jobs/{id}", "One job", Viewer)
        .param("id", uuid())
        .answers::<JobView>(200, "the job");
    d.get("/v1/jobs/{id}/events", "A job's timeline", Viewer)
        .param("id", uuid())
        .query::<EventsQuery>()
        .answers::<Vec<EventView>>(200, "its events, oldest first");
    let mut op = d.get(
        "/v1/jobs/{id}/logs",
        "A job's output: JSON, or SSE (follow=true or Accept: text/event-stream) with \
         Last-Event-ID resume",
        Viewer,
    );
    let lines = op.reference::<Vec<LogLine>>();
    let line = op.reference::<LogLine>();
    op.param("id", uuid())
        .query::<LogsQuery>()
        .header("Last-Event-ID", "resume after this line (`attempt:seq`)")
        .answers_with(
            200,
            "a page of lines, or `log` events",
            json!({"application/json": {"schema": lines},
                   "text/event-stream": {"schema": {"type": "string"}, "x-data": line}}),
        );
    d.post(
        "/v1/jobs/{id}/actions/{action}",
        "Operator action: requeue, reject, cancel, ship, retry, request_changes",
        Operator,
    )
    .param("id", uuid())
    .optional_json::<ActionBody>("why; request_changes needs it, the others take it optionally")
    .answers::<JobView>(200, "the job after it");
    d.post("/v1/jobs/{id}/children", "Add a child job", Operator)
        .param("id", uuid())
        .json::<JobSpec>()
        .answers::<SubmitResponse>(201, "created")
        .answers::<SubmitResponse>(200, "made earlier under the same idempotency key");
    d.get(
        "/v1/jobs/{id}/dag",
        "Parents and children with states",
        Viewer,
    )
    .param("id", uuid())
    .answers::<DagView>(200, "the job with its parents and children");
    d.get(
        "/v1/jobs/{id}/explain",
        "Why the job is not running: the reason, every factory with its refusals and score; \
         weights given as query parameters (age=2) show what they would change",
        Viewer,
    )
    .param("id", uuid())
    .query::<WeightsOverride>()
    .answers::<Explain>(200, "the explanation");
}

/// The fenced writes of the factory holding a job's lease.
fn leases(d: &mut Doc) {
    use Access::*;
    d.post("/v1/jobs/{id}/logs", "Append a log chunk (fenced)", Factory)
        .param("id", uuid())
        .json::<FencedWrite<LogChunk>>()
        .answers::<LeaseAnswer>(200, "the lease");
    d.post("/v1/jobs/{id}/renew", "Extend the lease (fenced)", Factory)
        .param("id", uuid())
        .json::<FencedWrite<Renew>>()
        .answers::<LeaseAnswer>(200, "the lease");
    d.post("/v1/jobs/{id}/stage", "Report progress (fenced)", Factory)
        .param("id", uuid())
        .json::<FencedWrite<Stage>>()
        .answers::<LeaseAnswer>(200, "the lease");
    d.post(
        "/v1/jobs/{id}/complete",
        "Report success (fenced), with usage reports not yet sent; claim_next leases the \
         factory's next jobs in the same transaction",
        Factory,
    )
    .param("id", uuid())
    .json::<FencedWrite<Complete>>()
    .answers::<EndAnswer>(200, "the lease, and the next jobs leased with it");
    d.post(
        "/v1/jobs/{id}/fail",
        "Report failure (fenced), with usage reports not yet sent; claim_next leases the \
         factory's next jobs in the same transaction",
        Factory,
    )
    .param("id", uuid())
    .json::<FencedWrite<Fail>>()
    .answers::<EndAnswer>(200, "the lease, and the next jobs leased with it");
    d.post(
        "/v1/jobs/{id}/release",
        "Give the job back, with a checkpoint (fenced)",
        Factory,
    )
    .param("id", uuid())
    .json::<FencedWrite<Release>>()
    .answers::<LeaseAnswer>(200, "the lease");
    d.post(
        "/v1/jobs/{id}/usage",
        "Report what the job spent on a model (fenced; a retried request id counts once; \
         tokens without cost_micros are priced from the coordinator's [prices])",
        Factory,
    )
    .param("id", uuid())
    .json::<FencedWrite<UsageReport>>()
    .answers::<LeaseAnswer>(200, "the lease");
}

fn scheduling(d: &mut Doc) {
    use Access::*;
    d.get(
        "/v1/products/{product}/weights",
        "A product's scoring weights: override, effective, defaults",
        Viewer,
    )
    .answers::<WeightsView>(200, "the weights");
    d.put(
        "/v1/products/{product}/weights",
        "Replace a product's weights override (each 0..=10)",
        Operator,
    )
    .json::<WeightsOverride>()
    .answers::<WeightsView>(200, "the weights now");
    d.get(
        "/v1/products/shares",
        "Products' fair shares that are not the default, and whether fair share is on",
        Viewer,
    )
    .answers::<SharesView>(200, "the shares");
    d.put(
        "/v1/products/{product}/share",
        "Set a product's fair share (1..=1000)",
        Operator,
    )
    .json::<ShareBody>()
    .answers::<ShareView>(200, "the share now");
    d.get(
        "/v1/limits",
        "Concurrency and rate limits, each with the leases holding a slot and its next start",
        Viewer,
    )
    .answers::<Vec<LimitView>>(200, "every limit");
    d.put(
        "/v1/limits/{key}",
        "Set a limit: max_running and/or per_minute, on product:NAME or a concurrency key",
        Operator,
    )
    .json::<LimitSpec>()
    .answers::<LimitView>(200, "the limit now");
    d.delete(
        "/v1/limits/{key}",
        "Remove a limit (leases holding slots still give them back)",
        Operator,
    )
    .empty(204, "removed");
}

fn money(d: &mut Doc) {
    use Access::*;
    d.get(
        "/v1/budgets",
        "Every budget with its state and this period's spend",
        Viewer,
    )
    .answers::<Vec<BudgetView>>(200, "every budget");
    d.get(
        "/v1/budgets/{name}",
        "A budget with its burndown (spend per day, cumulative, limit, forecast) and top jobs",
        Viewer,
    )
    .answers::<BudgetDetail>(200, "the budget");
    d.put("/v1/budgets/{name}", "Create or change a budget", Operator)
        .json::<BudgetBody>()
        .answers::<BudgetView>(200, "the budget now");
    d.delete(
        "/v1/budgets/{name}",
        "Remove a budget and what it counted",
        Operator,
    )
    .empty(204, "removed");
    d.post(
        "/v1/budgets/{name}/pause",
        "Pause a budget: its jobs get no new leases until resumed",
        Operator,
    )
    .json::<PauseBody>()
    .answers::<BudgetView>(200, "the budget now");
    d.post(
        "/v1/budgets/{name}/resume",
        "Resume a paused budget",
        Operator,
    )
    .answers::<BudgetView>(200, "the budget now");
}

fn trackers(d: &mut Doc) {
    use Access::*;
    d.get(
        "/v1/intake/{source}",
        "A tracker source's kind, callback, rules and templates (never its secrets)",
        Viewer,
    )
    .answers::<SourceConfig>(200, "the source");
    d.post(
        "/v1/intake/{source}",
        "A tracker's webhook delivery, authenticated by its HMAC-SHA256 signature (GitHub: \
         X-Hub-Signature-256, Linear: Linear-Signature, generic: X-Gigafactory-Signature); \
         idempotent by item revision",
        Signature,
    )
    .body(
        "the tracker's payload (a GitHub issue event, a Linear issue webhook, or generic \
         {id, revision, title, body?, url?, labels?, state?})",
        json!({"application/json": {"schema": {"type": "object"}}}),
    )
    .answers::<IntakeOutcome>(200, "what the delivery did");
    d.post(
        "/v1/intake/{source}/test",
        "What a delivery would create, creating nothing",
        Operator,
    )
    .body(
        "the tracker's payload",
        json!({"application/json": {"schema": {"type": "object"}}}),
    )
    .answers::<Vec<JobSpec>>(200, "the jobs it would create");
    d.get(
        "/v1/items/{source}",
        "A source's items (limit query, default 100)",
        Viewer,
    )
    .query::<ItemsQuery>()
    .answers::<Vec<ItemRecord>>(200, "its items");
    d.get(
        "/v1/items/{source}/{id}",
        "An item (id percent-encoded) with its jobs and deliveries",
        Viewer,
    )
    .answers::<ItemView>(200, "the item");
    d.post(
        "/v1/deliveries/{id}/redeliver",
        "Send a dead-lettered delivery again (same idempotency key, tries from zero)",
        Operator,
    )
    .answers::<Delivery>(202, "queued again");
}

fn artifacts(d: &mut Doc) {
    use Access::*;
    d.get(
        "/v1/jobs/{id}/artifacts",
        "A job's artifacts, every attempt's, by attempt then name",
        Viewer,
    )
    .param("id", uuid())
    .answers::<Vec<ArtifactView>>(200, "its artifacts");
    d.put(
        "/v1/jobs/{id}/artifacts/{name}",
        "Upload a file of the attempt the factory holds (fenced: a stale epoch is refused \
         before anything is stored); the body must hash to sha256 and fit the per-file and \
         per-job limits; the same name in the same attempt replaces it",
        Factory,
    )
    .param("id", uuid())
    .query::<ArtifactUpload>()
    .body(
        "the file's bytes, streamed",
        json!({"application/octet-stream": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}),
    )
    .answers::<LeaseAnswer>(200, "the lease");
    d.get(
        "/v1/jobs/{id}/artifacts/{attempt}/{name}",
        "An artifact's bytes, streamed, as an attachment with its media type",
        Viewer,
    )
    .param("id", uuid())
    .param(
        "attempt",
        json!({"type": "integer", "minimum": 0, "maximum": u32::MAX}),
    )
    .answers_with(
        200,
        "the file, with its media type",
        json!({"*/*": {"schema": {"type": "string"}}}),
    );
}

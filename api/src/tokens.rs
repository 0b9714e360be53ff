//! Token routes (admin): mint a token for a role or an enrollment token, each with an optional
//! expiry (`expires_in`: `90d`, `12h`; or `expires_at`, ms since the epoch); list every token
//! without its secret; revoke one by id. And the audit log (`GET /v1/audit`, admin): newest
//! first, filtered by action or caller, a page at a time.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use gigafactory_actors::{CoordError, Minted, TokenInfo};
use gigafactory_core::audit::{AuditEntry, AuditFilter};
use gigafactory_core::fleet::Role;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::guard::AuditTarget;
use crate::json::{Body, from_object};

type ApiResult<T> = Result<T, ApiError>;

/// Longest token name, in bytes.
const NAME_MAX_BYTES: usize = 128;
/// Most audit entries one page returns.
const AUDIT_PAGE_MAX: usize = 500;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MintTokenRequest {
    role: String,
    name: String,
    /// A duration from now: `90d`, `12h`, `30m`, `3600s`.
    #[serde(default)]
    expires_in: Option<String>,
    /// A time, in ms since the epoch.
    #[serde(default)]
    expires_at: Option<u64>,
}

/// An enrollment token's request: the body is optional (`{}`, a name, an expiry).
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnrollmentTokenRequest {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    expires_in: Option<String>,
    #[serde(default)]
    expires_at: Option<u64>,
}

/// When a token expires, as a mint request said it.
struct Expiry<'a> {
    expires_in: Option<&'a str>,
    expires_at: Option<u64>,
}

async fn mint(
    s: &AppState,
    caller: &Caller,
    role: Role,
    name: &str,
    expiry: Expiry<'_>,
) -> ApiResult<impl IntoResponse + use<>> {
    caller.require_admin()?;
    if name.trim().is_empty() || name.len() > NAME_MAX_BYTES {
        return Err(ApiError::Coord(CoordError::Invalid(format!(
            "name must be 1 to {NAME_MAX_BYTES} characters"
        ))));
    }
    let expires_at =
        gigafactory_core::fleet::expiry(s.coord.now(), expiry.expires_in, expiry.expires_at)
            .map_err(|e| ApiError::Coord(CoordError::Invalid(e.to_string())))?;
    let minted: Minted = s
        .coord
        .mint_token(role, name, expires_at, Some(caller.describe()))
        .await?;
    let target = AuditTarget(format!("token {} ({} {name})", minted.id, role.name()));
    Ok((axum::Extension(target), Json(minted)))
}

pub(crate) async fn mint_token(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<MintTokenRequest>,
) -> ApiResult<impl IntoResponse> {
    let role = match req.role.as_str() {
        "admin" => Role::Admin,
        "operator" => Role::Operator,
        "viewer" => Role::Viewer,
        "enrollment" => Role::Enrollment,
        other => {
            return Err(ApiError::Coord(CoordError::Invalid(format!(
                "unknown role {other:?}: use admin, operator, viewer or enrollment"
            ))));
        }
    };
    let expiry = Expiry {
        expires_in: req.expires_in.as_deref(),
        expires_at: req.expires_at,
    };
    mint(&s, &caller, role, &req.name, expiry).await
}

pub(crate) async fn enrollment_token(
    State(s): State<AppState>,
    caller: Caller,
    body: String,
) -> ApiResult<impl IntoResponse> {
    caller.require_admin()?;
    let req: EnrollmentTokenRequest = if body.trim().is_empty() {
        EnrollmentTokenRequest::default()
    } else {
        serde_json::from_str(&body)
            .map_err(|e| e.to_string())
            .and_then(from_object)
            .map_err(ApiError::Malformed)?
    };
    let name = req.name.unwrap_or_else(|| "enrollment".into());
    let expiry = Expiry {
        expires_in: req.expires_in.as_deref(),
        expires_at: req.expires_at,
    };
    mint(&s, &caller, Role::Enrollment, &name, expiry).await
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Also list revoked tokens (spent enrollment tokens, rotated factory tokens).
    #[serde(default)]
    all: bool,
}

pub(crate) async fn list(
    State(s): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<TokenInfo>>> {
    caller.require_admin()?;
    let Query(q) = q?;
    Ok(Json(s.coord.tokens(q.all).await?))
}

pub(crate) async fn revoke(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    s.coord.revoke_token(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// Only entries whose action contains this (`drain`, `POST /v1/tokens`).
    action: Option<String>,
    /// Only entries whose `role:name` contains this (`alice`, `operator:`).
    caller: Option<String>,
    /// The `next_cursor` of the page before.
    cursor: Option<String>,
    limit: Option<usize>,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct AuditPage {
    entries: Vec<AuditEntry>,
    /// Where the next (older) page starts; absent at the log's start.
    next_cursor: Option<String>,
}

pub(crate) async fn audit(
    State(s): State<AppState>,
    caller: Caller,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<AuditPage>> {
    caller.require_admin()?;
    let Query(q) = q?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > AUDIT_PAGE_MAX {
        return Err(ApiError::Coord(CoordError::Invalid(format!(
            "limit must be within 1..={AUDIT_PAGE_MAX}"
        ))));
    }
    let before = q.cursor.as_deref().map(parse_cursor).transpose()?;
    let filter = AuditFilter {
        action: q.action,
        caller: q.caller,
    };
    let (entries, next) = s.coord.audit(before, &filter, limit).await?;
    Ok(Json(AuditPage {
        entries,
        next_cursor: next.map(|(at, id)| format!("{at}-{id}")),
    }))
}

fn parse_cursor(text: &str) -> ApiResult<(u64, uuid::Uuid)> {
    let bad = || ApiError::Malformed(format!("{text:?} is not an audit cursor"));
    let (at, id) = text.split_once('-').ok_or_else(bad)?;
    Ok((
        at.parse().map_err(|_| bad())?,
        uuid::Uuid::parse_str(id).map_err(|_| bad())?,
    ))
}

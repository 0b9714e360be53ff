//! Routes for secrets: operators set and remove them, anyone who may view lists what is known
//! of them (never a value), and a factory fetches a job's values with the epoch of the lease
//! it holds. No answer but the fetch's carries a value, and it is marked `no-store`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gigafactory_core::secrets::{SecretMeta, SecretScope};
use gigafactory_core::wire::{SecretFetch, SecretListQuery, SecretProfileQuery, SecretSet};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::factories::parse_job_id;
use crate::guard::AuditTarget;
use crate::json::Body;

type ApiResult<T> = Result<T, ApiError>;
type QueryOf<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

fn scope(product: String, q: QueryOf<SecretProfileQuery>) -> ApiResult<SecretScope> {
    let Query(q) = q?;
    Ok(SecretScope {
        product,
        profile: q.profile,
    })
}

/// The audit log's target for a write: the path says the product and name; the profile is in
/// the query, and the version in the answer.
fn target(scope: &SecretScope, name: &str, version: Option<u64>) -> AuditTarget {
    let profile = scope
        .profile
        .as_ref()
        .map_or(String::new(), |p| format!(" profile={p}"));
    let version = version.map_or(String::new(), |v| format!(" version={v}"));
    AuditTarget(format!(
        "product={}{profile} name={name}{version}",
        scope.product
    ))
}

pub(crate) async fn list(
    State(s): State<AppState>,
    caller: Caller,
    q: QueryOf<SecretListQuery>,
) -> ApiResult<Json<Vec<SecretMeta>>> {
    caller.require_view()?;
    let Query(q) = q?;
    Ok(Json(s.coord.secrets(q.product.as_deref()).await?))
}

pub(crate) async fn set(
    State(s): State<AppState>,
    caller: Caller,
    Path((product, name)): Path<(String, String)>,
    q: QueryOf<SecretProfileQuery>,
    Body(body): Body<SecretSet>,
) -> ApiResult<Response> {
    caller.require_operate()?;
    let scope = scope(product, q)?;
    let by = caller.author()?.to_string();
    let meta = s.coord.set_secret(scope.clone(), &name, body, by).await?;
    let target = target(&scope, &name, Some(meta.version));
    Ok((axum::Extension(target), Json(meta)).into_response())
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path((product, name)): Path<(String, String)>,
    q: QueryOf<SecretProfileQuery>,
) -> ApiResult<Response> {
    caller.require_operate()?;
    let scope = scope(product, q)?;
    s.coord.delete_secret(scope.clone(), &name).await?;
    Ok((
        axum::Extension(target(&scope, &name, None)),
        StatusCode::NO_CONTENT,
    )
        .into_response())
}

pub(crate) async fn fetch(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<SecretFetch>,
) -> ApiResult<Response> {
    let factory = caller.factory()?;
    let id = parse_job_id(&id)?;
    let secrets = s.coord.job_secrets(factory, id, body.epoch).await?;
    let mut resp = Json(secrets).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

//! Browser sessions: `POST /v1/session` exchanges an admin, operator or viewer token for a
//! session cookie (`HttpOnly`, so no page script reads it; `SameSite=Strict`, so no other
//! site's page sends it; `Secure` on a TLS node), which every tab of the browser shares and
//! the gate accepts in place of a bearer token. `DELETE /v1/session` revokes the session and
//! clears the cookie. A session is a token of its own in the store (`Coordinator::open_session`):
//! it expires, admins see and revoke it, and revoking its token ends it. Both are audited here
//! (the gate does not know the caller of a sign-in).
//!
//! Against cross-site requests, besides `SameSite=Strict` and the JSON-only writes of the
//! gate: a write authenticated by the cookie must carry an `Origin` naming this node
//! (`check_origin`), which a browser sends with every `fetch` write and cannot be forged by a
//! page of another origin.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gigafactory_actors::CoordError;
use gigafactory_core::job::Millis;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::guard::record;
use crate::json::Body;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "gf_session";
/// The route that opens and ends sessions.
pub(crate) const ROUTE: &str = "/v1/session";

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenSessionRequest {
    /// An admin, operator or viewer token.
    token: String,
}

/// Who the session is, and when it ends.
#[derive(Serialize, JsonSchema)]
pub(crate) struct SessionInfo {
    role: &'static str,
    name: String,
    /// ms since the epoch.
    expires_at: Millis,
}

/// The session cookie's value in `headers`, if the request has one.
pub(crate) fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .filter(|v| !v.is_empty())
}

/// Refuses a write whose `Origin` is another site's, or absent when `required` (a write
/// authenticated by the session cookie): the origin must be this node as its `Host` names it.
pub(crate) fn check_origin(headers: &HeaderMap, required: bool) -> Result<(), ApiError> {
    let refuse = |why: String| Err(ApiError::Coord(CoordError::Forbidden(why)));
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (headers.get(header::ORIGIN).map(|v| v.to_str()), host) {
        (None, _) if !required => Ok(()),
        (None, _) => refuse("a write with the session cookie needs an Origin header".into()),
        (Some(Ok(o)), Some(h)) if o == format!("http://{h}") || o == format!("https://{h}") => {
            Ok(())
        }
        (Some(o), _) => refuse(format!(
            "the session cookie is not accepted from Origin {:?}",
            o.unwrap_or("?")
        )),
    }
}

/// The `Set-Cookie` value that sets `secret` for `max_age_s` seconds (0 clears it).
fn set_cookie(secret: &str, max_age_s: u64, tls: bool) -> HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    let text = format!(
        "{COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    );
    HeaderValue::from_str(&text).expect("a secret is hex, a cookie value")
}

pub(crate) async fn open(
    State(s): State<AppState>,
    Body(req): Body<OpenSessionRequest>,
) -> Result<Response, ApiError> {
    let session = s.coord.open_session(req.token.trim()).await?;
    let caller = Caller {
        role: session.role,
        name: session.name.clone(),
        secret: None,
    };
    let target = format!("session {}", session.id);
    record(&s, &caller, format!("POST {ROUTE}"), target, 201).await;
    let max_age_s = session.expires_at.saturating_sub(s.coord.now()) / 1000;
    let cookie = set_cookie(&session.secret, max_age_s, s.opts.tls);
    let info = SessionInfo {
        role: session.role.name(),
        name: session.name,
        expires_at: session.expires_at,
    };
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, cookie)],
        Json(info),
    )
        .into_response())
}

pub(crate) async fn close(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(secret) = cookie(&headers) else {
        return Err(ApiError::Coord(CoordError::Invalid(format!(
            "no session cookie: DELETE {ROUTE} ends a browser session, a token is revoked by id"
        ))));
    };
    // A bearer token wins over the cookie in the gate: end only the caller's own session.
    if headers.contains_key(header::AUTHORIZATION) {
        return Err(ApiError::Coord(CoordError::Invalid(
            "send the session cookie without an Authorization header".into(),
        )));
    }
    s.coord.close_session(secret).await?;
    record(
        &s,
        &caller,
        format!("DELETE {ROUTE}"),
        "session".into(),
        204,
    )
    .await;
    let cookie = set_cookie("", 0, s.opts.tls);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_session_cookie_is_found_among_others_and_an_empty_one_is_none() {
        let h = headers(&[("cookie", "a=1; gf_session=gf_abc; b=2")]);
        assert_eq!(cookie(&h), Some("gf_abc"));
        let h = headers(&[("cookie", "a=1"), ("cookie", "gf_session=gf_x")]);
        assert_eq!(cookie(&h), Some("gf_x"));
        assert_eq!(cookie(&headers(&[("cookie", "gf_session=")])), None);
        assert_eq!(cookie(&headers(&[("cookie", "gf_sessionx=1")])), None);
        assert_eq!(cookie(&HeaderMap::new()), None);
    }

    #[test]
    fn a_cookie_write_needs_this_nodes_origin() {
        let host = ("host", "127.0.0.1:7070");
        let same = headers(&[host, ("origin", "http://127.0.0.1:7070")]);
        assert!(check_origin(&same, true).is_ok());
        let tls = headers(&[host, ("origin", "https://127.0.0.1:7070")]);
        assert!(check_origin(&tls, true).is_ok());
        let other = headers(&[host, ("origin", "https://evil.example")]);
        assert!(check_origin(&other, true).is_err());
        assert!(check_origin(&other, false).is_err());
        assert!(check_origin(&headers(&[host]), true).is_err());
        assert!(check_origin(&headers(&[host]), false).is_ok());
        let null = headers(&[host, ("origin", "null")]);
        assert!(check_origin(&null, true).is_err());
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_only_over_tls() {
        let plain = set_cookie("gf_1", 60, false);
        let plain = plain.to_str().unwrap();
        assert!(plain.starts_with("gf_session=gf_1;"));
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(plain.contains("Max-Age=60") && !plain.contains("Secure"));
        assert!(
            set_cookie("gf_1", 60, true)
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
    }
}

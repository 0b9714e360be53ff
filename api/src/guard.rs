//! What every request passes before its route: the edge (`edge`: on an `--insecure-dev` node,
//! a loopback `Host` with the node's port and a same-origin or absent `Origin`, so neither a
//! web page nor a rebound DNS name can use the token-less node; security headers on every
//! answer) and the gate (`gate`, per route: writes of the route's media types only, so a
//! cross-site form cannot reach one; throttling of peers that guess tokens; the caller's
//! credentials, checked once; and the audit record of every operator and admin write, with
//! its outcome). Putting these here means no route can forget one.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gigafactory_actors::CoordError;
use gigafactory_core::audit::{AUDIT_TEXT_MAX_BYTES, AuditEntry, clip};
use gigafactory_core::fleet::Role;

use crate::AppState;
use crate::auth::{Caller, Credentials};
use crate::error::ApiError;
use crate::session;

/// What a write acted on, when its route's parameters do not say it all (a minted token's
/// id, an enrolled factory's): a route puts it in its answer's extensions for the audit log.
#[derive(Clone)]
pub(crate) struct AuditTarget(pub String);

/// Writes the audit log leaves out, each recorded elsewhere with its author: submissions (the
/// job's timeline names who submitted it) and a tracker payload's dry run, which changes
/// nothing. Factories' writes are never recorded here either: the job's timeline has them.
const UNAUDITED: &[&str] = &[
    // Sign-in and sign-out record themselves: the gate does not know who signs in.
    session::ROUTE,
    "/v1/jobs",
    "/v1/manifests",
    "/v1/jobs/{id}/children",
    "/v1/intake/{source}/test",
];

/// The media types a write to `route` may have: JSON, a manifest's TOML, an artifact's bytes.
/// None of them is one a form can send without a preflight.
fn accepted_media(route: &str) -> &'static [&'static str] {
    match route {
        "/v1/manifests" => &["application/json", "application/toml"],
        "/v1/jobs/{id}/artifacts/{name}" => &["application/octet-stream"],
        _ => &["application/json"],
    }
}

fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Refuses a write whose `Content-Type` (without parameters) is not one `route` takes.
fn check_media(route: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    let accepted = accepted_media(route);
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match given {
        Some(t) if accepted.contains(&t.as_str()) => Ok(()),
        given => Err(ApiError::UnsupportedMediaType(format!(
            "this route takes Content-Type {}, not {}",
            accepted.join(" or "),
            given.as_deref().unwrap_or("none")
        ))),
    }
}

/// On an insecure development node: the request names this node by a loopback name or
/// address with its port (`port`, when known), and comes from no page or from its own.
fn check_local(headers: &HeaderMap, port: Option<u16>) -> Result<(), String> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .ok_or("--insecure-dev needs a Host header")?;
    let (name, host_port) = split_host(host).ok_or_else(|| format!("bad Host {host:?}"))?;
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(format!(
            "--insecure-dev serves loopback names only, not Host {host:?}"
        ));
    }
    if let Some(p) = port
        && host_port.unwrap_or(80) != p
    {
        return Err(format!("Host {host:?} does not name this node's port {p}"));
    }
    match headers.get(header::ORIGIN).map(|v| v.to_str()) {
        None => Ok(()),
        Some(Ok(o)) if o == format!("http://{host}") || o == format!("https://{host}") => Ok(()),
        Some(o) => Err(format!(
            "--insecure-dev refuses cross-origin requests (Origin {:?})",
            o.unwrap_or("?")
        )),
    }
}

/// A `Host` header's name (IPv6 without brackets) and port.
fn split_host(host: &str) -> Option<(&str, Option<u16>)> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (name, after) = rest.split_once(']')?;
        (name, after.strip_prefix(':'))
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    let port = port
        .map(|p| p.parse::<u16>().ok())
        .map_or(Some(None), |p| p.map(Some))?;
    Some((name, port))
}

/// Headers every answer carries: no page may frame the control plane (clickjacking), and no
/// browser may guess a type other than the one sent. A route's own policy keeps its rules and
/// gains `frame-ancestors` when it lacks one.
fn secure(headers: &mut HeaderMap) {
    for (name, value) in [
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    const NO_FRAMES: &str = "frame-ancestors 'none'";
    let policy = match headers
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
    {
        None => NO_FRAMES.to_string(),
        Some(p) if p.contains("frame-ancestors") => return,
        Some(p) => format!("{p}; {NO_FRAMES}"),
    };
    if let Ok(v) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
}

/// The edge, before routing: the insecure node's `Host` and `Origin`, and the headers of
/// every answer.
pub(crate) async fn edge(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = match s.opts.insecure_dev {
        true => match check_local(req.headers(), s.opts.listen.map(|a| a.port())) {
            Ok(()) => next.run(req).await,
            Err(why) => ApiError::Coord(CoordError::Forbidden(why)).into_response(),
        },
        false => next.run(req).await,
    };
    secure(resp.headers_mut());
    resp
}

/// The gate, per route: media type, throttle, credentials, audit.
pub(crate) async fn gate(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    // A clone of the matched path is a reference count, not a copy of the text.
    let matched = parts.extensions.get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("", MatchedPath::as_str);
    // Without the peer's address (a server built without connect info) nothing is throttled.
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let presents_token = parts.headers.contains_key(header::AUTHORIZATION);
    let signs_in = route == session::ROUTE && parts.method == Method::POST;
    if (presents_token || signs_in)
        && let Some(wait_ms) = peer.and_then(|p| s.blocked_for(p))
    {
        return ApiError::Throttled(wait_ms.div_ceil(1_000)).into_response();
    }
    let write = is_write(&parts.method);
    if write && let Err(e) = check_media(route, &parts.headers) {
        return e.into_response();
    }
    // A bearer write never pays for this: only the cookie is sent by a browser on its own.
    if write && !presents_token {
        let cookie = session::cookie(&parts.headers).is_some();
        if (cookie || signs_in)
            && let Err(e) = session::check_origin(&parts.headers, cookie)
        {
            return e.into_response();
        }
    }
    let credentials = Credentials::of(&parts.headers, &s).await;
    if let (Credentials::Refused(e), Some(p)) = (&credentials, peer)
        && *e == CoordError::UnknownToken
    {
        s.failed_auth(p);
    }
    let audited = match &credentials {
        Credentials::Caller(c) => {
            write && !matches!(c.role, Role::Factory(_)) && !UNAUDITED.contains(&route)
        }
        Credentials::Refused(_) => false,
    };
    let caller = match &credentials {
        Credentials::Caller(c) if audited => Some(c.clone()),
        _ => None,
    };
    // Only an audited write pays for its parameters and its action's text.
    let audit = match caller {
        Some(caller) => {
            let params = RawPathParams::from_request_parts(&mut parts, &s).await.ok();
            Some((caller, params, format!("{} {route}", parts.method)))
        }
        None => None,
    };
    parts.extensions.insert(credentials);
    let resp = next.run(Request::from_parts(parts, body)).await;
    // A sign-in with an unknown token counts as a guess, as a bearer one does.
    if signs_in
        && resp.status() == axum::http::StatusCode::UNAUTHORIZED
        && let Some(p) = peer
    {
        s.failed_auth(p);
    }
    if let Some((caller, params, action)) = audit {
        let target = match resp.extensions().get::<AuditTarget>() {
            Some(t) => t.0.clone(),
            None => params
                .iter()
                .flat_map(|p| p.iter())
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
        };
        record(&s, &caller, action, target, resp.status().as_u16()).await;
    }
    resp
}

/// Appends one entry to the audit log; a store that fails is logged, and the answer (whose
/// action already happened) still goes out.
pub(crate) async fn record(
    s: &AppState,
    caller: &Caller,
    action: String,
    target: String,
    status: u16,
) {
    let entry = AuditEntry {
        at: s.coord.now(),
        role: caller.role.name().into(),
        caller: caller.name.clone(),
        action: clip(&action, AUDIT_TEXT_MAX_BYTES),
        target: clip(&target, AUDIT_TEXT_MAX_BYTES),
        status,
    };
    if let Err(e) = s.coord.record_audit(entry.clone()).await {
        tracing::error!(error = %e, action = %entry.action, caller = %caller.describe(), "audit entry not recorded");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn an_insecure_node_answers_only_its_loopback_names_and_its_own_pages() {
        let ok = |pairs: &[(&'static str, &str)]| check_local(&headers(pairs), Some(7070));
        assert!(ok(&[("host", "127.0.0.1:7070")]).is_ok());
        assert!(ok(&[("host", "localhost:7070")]).is_ok());
        assert!(ok(&[("host", "[::1]:7070")]).is_ok());
        assert!(
            ok(&[
                ("host", "127.0.0.1:7070"),
                ("origin", "http://127.0.0.1:7070")
            ])
            .is_ok()
        );
        assert!(
            ok(&[("host", "evil.example:7070")]).is_err(),
            "a rebound name"
        );
        assert!(ok(&[("host", "127.0.0.1:8080")]).is_err(), "another port");
        assert!(ok(&[("host", "127.0.0.1")]).is_err(), "port 80 is not 7070");
        assert!(
            ok(&[
                ("host", "127.0.0.1:7070"),
                ("origin", "https://evil.example")
            ])
            .is_err()
        );
        assert!(ok(&[("host", "127.0.0.1:7070"), ("origin", "null")]).is_err());
        assert!(ok(&[]).is_err(), "no Host");
    }

    #[test]
    fn a_write_must_be_of_a_media_type_its_route_takes() {
        let ct = |v: &str| headers(&[("content-type", v)]);
        assert!(check_media("/v1/tokens", &ct("application/json")).is_ok());
        assert!(check_media("/v1/tokens", &ct("Application/JSON; charset=utf-8")).is_ok());
        assert!(check_media("/v1/tokens", &ct("text/plain")).is_err());
        assert!(check_media("/v1/tokens", &HeaderMap::new()).is_err());
        assert!(check_media("/v1/manifests", &ct("application/toml")).is_ok());
        assert!(check_media("/v1/manifests", &ct("application/x-www-form-urlencoded")).is_err());
        let upload = "/v1/jobs/{id}/artifacts/{name}";
        assert!(check_media(upload, &ct("application/octet-stream")).is_ok());
        assert!(check_media(upload, &ct("multipart/form-data")).is_err());
    }

    #[test]
    fn every_answer_forbids_framing_and_sniffing_and_a_routes_own_policy_gains_it() {
        let mut h = HeaderMap::new();
        secure(&mut h);
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], "frame-ancestors 'none'");
        let mut h = headers(&[("content-security-policy", "sandbox; default-src 'none'")]);
        secure(&mut h);
        assert_eq!(
            h[header::CONTENT_SECURITY_POLICY],
            "sandbox; default-src 'none'; frame-ancestors 'none'"
        );
        let mut h = headers(&[("content-security-policy", "frame-ancestors 'self'")]);
        secure(&mut h);
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], "frame-ancestors 'self'");
    }
}

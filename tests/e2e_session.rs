//! Browser sessions and undrain through a real coordinator: signing in exchanges a token for
//! an HttpOnly, SameSite=Strict cookie that authenticates like the token and is audited;
//! signing out revokes it; revoking its token ends it; a cookie write from another origin (or
//! none) is refused; a bad sign-in is a JSON error that opens no session. A drained factory is
//! undrained through the API and the CLI and takes work again; undraining one that does not
//! drain, or an unknown or malformed id, is a JSON error that changes nothing.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const JSON: (&str, &str) = ("content-type", "application/json");

/// Signs in with `token`: the answer's status, headers and body.
fn sign_in(coord: &Coordinator, token: &str) -> (u16, HashMap<String, String>, Value) {
    let body = json!({ "token": token }).to_string();
    raw("POST", &session_url(coord), &[JSON], Some(&body))
}

fn session_url(coord: &Coordinator) -> String {
    format!("{}/v1/session", coord.url)
}

/// The `Cookie` header that sends the session a sign-in answer set.
fn cookie_of(headers: &HashMap<String, String>) -> String {
    let set = headers.get("set-cookie").expect("a session cookie is set");
    set.split(';').next().unwrap().to_string()
}

fn whoami_with(coord: &Coordinator, cookie: &str) -> (u16, Value) {
    let (status, _, v) = raw(
        "GET",
        &format!("{}/v1/whoami", coord.url),
        &[("cookie", cookie)],
        None,
    );
    (status, v)
}

fn token_count(coord: &Coordinator) -> usize {
    get(coord, "/v1/tokens?all=true").as_array().unwrap().len()
}

#[test]
fn a_session_cookie_is_http_only_strict_authenticates_and_sign_out_revokes_it() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 15_000);
    let (operator, _) = mint(&coord, "operator", "olga");
    let (status, headers, v) = sign_in(&coord, &operator);
    assert_eq!(status, 201, "{v}");
    assert_eq!(
        (v["role"].as_str(), v["name"].as_str()),
        (Some("operator"), Some("olga"))
    );
    let set = &headers["set-cookie"];
    for part in [
        "gf_session=gf_",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=",
    ] {
        assert!(set.contains(part), "{part} in {set}");
    }
    assert!(
        !set.contains("Secure"),
        "plain HTTP: no Secure flag ({set})"
    );
    assert!(
        !set.contains(&operator),
        "the cookie is a session, not the token"
    );
    let cookie = cookie_of(&headers);
    let (status, me) = whoami_with(&coord, &cookie);
    assert_eq!((status, me["name"].as_str()), (200, Some("olga")), "{me}");

    let own = coord.url.clone();
    let (status, headers, v) = raw(
        "DELETE",
        &session_url(&coord),
        &[JSON, ("cookie", &cookie), ("origin", &own)],
        None,
    );
    assert_eq!(status, 204, "{v}");
    assert!(
        headers["set-cookie"].contains("Max-Age=0"),
        "the cookie is cleared"
    );
    expect_error(&whoami_with(&coord, &cookie), 401, "unauthorized");
    let (status, me) = call(
        "GET",
        &format!("{}/v1/whoami", coord.url),
        Some(&operator),
        None,
    );
    assert_eq!(status, 200, "the token itself still works: {me}");

    let audit = get(&coord, "/v1/audit?caller=olga");
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"POST /v1/session"), "{audit}");
    assert!(actions.contains(&"DELETE /v1/session"), "{audit}");
}

#[test]
fn a_bad_sign_in_is_a_json_error_and_opens_no_session() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 15_000);
    let before = token_count(&coord);
    let url = session_url(&coord);
    let refused = |body: &str| {
        let (status, headers, v) = raw("POST", &url, &[JSON], Some(body));
        assert!(!headers.contains_key("set-cookie"), "{body}: {headers:?}");
        (status, v)
    };
    expect_error(&refused(r#"{"token": "gf_nope"}"#), 401, "unauthorized");
    expect_error(&refused(r#"{}"#), 400, "malformed_request");
    expect_error(
        &refused(r#"{"token": "x", "remember": true}"#),
        400,
        "malformed_request",
    );
    expect_error(&refused("[1]"), 400, "malformed_request");
    let enrollment = enrollment_token(&coord);
    let before = before + 1;
    let body = json!({ "token": enrollment }).to_string();
    expect_error(&refused(&body), 403, "forbidden");
    let (status, _, v) = raw("POST", &url, &[("content-type", "text/plain")], Some("{}"));
    assert_eq!(status, 415, "a form cannot sign in: {v}");
    let evil = [JSON, ("origin", "https://evil.example")];
    let body = json!({ "token": coord.admin }).to_string();
    let (status, headers, v) = raw("POST", &url, &evil, Some(&body));
    assert_eq!(status, 403, "no sign-in from another site's page: {v}");
    assert!(!headers.contains_key("set-cookie"));
    assert_eq!(token_count(&coord), before, "no session was opened");
    let (status, _, v) = raw(
        "DELETE",
        &url,
        &[JSON, ("authorization", &format!("Bearer {}", coord.admin))],
        None,
    );
    expect_error(&(status, v), 400, "invalid_request");
}

#[test]
fn a_cookie_write_needs_this_nodes_origin_and_revoking_the_token_ends_its_sessions() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 15_000);
    let (operator, operator_id) = mint(&coord, "operator", "otto");
    let (_, headers, _) = sign_in(&coord, &operator);
    let cookie = cookie_of(&headers);
    let limit = format!("{}/v1/limits/product:p", coord.url);
    let body = r#"{"max_running": 2}"#;
    for origin in [Some("https://evil.example"), Some("null"), None] {
        let mut h = vec![JSON, ("cookie", cookie.as_str())];
        if let Some(o) = origin {
            h.push(("origin", o));
        }
        let (status, _, v) = raw("PUT", &limit, &h, Some(body));
        expect_error(&(status, v), 403, "forbidden");
    }
    assert_eq!(
        get(&coord, "/v1/limits").as_array().unwrap().len(),
        0,
        "nothing was set"
    );
    let own = coord.url.clone();
    let (status, _, v) = raw(
        "PUT",
        &limit,
        &[JSON, ("cookie", &cookie), ("origin", &own)],
        Some(body),
    );
    assert!(status < 300, "its own page may write: {v}");

    let (status, _) = call(
        "DELETE",
        &format!("{}/v1/tokens/{operator_id}", coord.url),
        Some(&coord.admin),
        None,
    );
    assert_eq!(status, 204);
    expect_error(&whoami_with(&coord, &cookie), 401, "unauthorized");
}

#[test]
fn a_drained_factory_is_undrained_by_api_and_cli_and_bad_undrains_change_nothing() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 15_000);
    let _f = Factory::start(&coord, "undrain-f", 1, "linux", &dir.path().join("f"));
    let status_of = |coord: &Coordinator| {
        let fs = get(coord, "/v1/factories");
        fs[0]["status"]
            .as_str()
            .unwrap_or("not enrolled")
            .to_string()
    };
    wait_for(Duration::from_secs(20), "factory online", || {
        status_of(&coord) == "online"
    });
    let id = get(&coord, "/v1/factories")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let undrain = |id: &str| post(&coord, &format!("/v1/factories/{id}/undrain"), "");

    expect_error(&undrain(&id), 400, "invalid_request");
    assert_eq!(
        status_of(&coord),
        "online",
        "an online factory stays as it was"
    );
    expect_error(&undrain("not-a-uuid"), 400, "malformed_request");
    expect_error(
        &undrain("01234567-89ab-7def-8123-456789abcdef"),
        404,
        "not_found",
    );

    assert_eq!(
        post(&coord, &format!("/v1/factories/{id}/drain"), "").0,
        204
    );
    assert_eq!(status_of(&coord), "draining");
    let (status, v) = undrain(&id);
    assert_eq!(status, 204, "{v}");
    assert_eq!(status_of(&coord), "online");

    // The agent took the drain and the undrain: a job submitted now runs on it.
    let (status, v) = post(
        &coord,
        "/v1/jobs",
        r#"{"key": "after-undrain", "title": "after undrain", "product": "p", "capabilities": ["linux"], "payload": {"command": "true"}}"#,
    );
    assert_eq!(status, 201, "{v}");
    let job = v["id"].as_str().unwrap().to_string();
    wait_for(Duration::from_secs(30), "the job to succeed", || {
        state(&coord, &job) == "succeeded"
    });

    assert_eq!(
        post(&coord, &format!("/v1/factories/{id}/drain"), "").0,
        204
    );
    cli_ok(&coord, &["factories", "undrain", &id]);
    assert_eq!(status_of(&coord), "online");
    let (ok, _, err) = cli(&coord, &["factories", "undrain", &id]);
    assert!(!ok && err.contains("not draining"), "{err}");
    let audit = get(&coord, "/v1/audit?action=undrain");
    assert!(!audit["entries"].as_array().unwrap().is_empty(), "{audit}");
}

//! Safe on a real network (issue 13) through real processes: tokens listed without their
//! secrets, revoked by id and refused once expired; the audit log of operator and admin
//! writes; an `--insecure-dev` node that serves only its loopback names and its own pages and
//! gives token-less callers no admin; writes refused unless of their route's media type (a
//! cross-site form's are not); peers guessing tokens throttled; the fault route only when
//! enabled; headers that forbid framing and sniffing.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn whoami(coord: &Coordinator, token: &str) -> (u16, Value) {
    call(
        "GET",
        &format!("{}/v1/whoami", coord.url),
        Some(token),
        None,
    )
}

#[test]
fn tokens_are_listed_without_secrets_revoked_by_id_and_refused_once_expired() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 15_000);

    let short = cli_ok(
        &coord,
        &[
            "tokens",
            "mint",
            "--role",
            "viewer",
            "--name",
            "short",
            "--expires-in",
            "4s",
        ],
    );
    let short = short.trim();
    assert_eq!(whoami(&coord, short).0, 200, "works before its expiry");
    wait_for(Duration::from_secs(20), "the token to expire", || {
        whoami(&coord, short).0 == 401
    });
    let (_, refused) = whoami(&coord, short);
    assert!(
        refused["message"].as_str().unwrap().contains("expired"),
        "{refused}"
    );

    let (ci, ci_id) = mint(&coord, "operator", "ci");
    let list = get(&coord, "/v1/tokens");
    let text = list.to_string();
    assert!(
        !text.contains(&ci) && !text.contains(&coord.admin),
        "no secret is listed"
    );
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == ci_id.as_str())
        .unwrap_or_else(|| panic!("{ci_id} not in {list}"));
    assert_eq!(entry["role"], "operator");
    assert_eq!(entry["name"], "ci");
    assert_eq!(entry["status"], "active");
    assert_eq!(entry["created_by"], "admin:admin");
    assert!(entry.get("token").is_none());
    assert!(cli_ok(&coord, &["tokens", "ls"]).contains(&ci_id));

    cli_ok(&coord, &["tokens", "revoke", &ci_id]);
    let (status, v) = whoami(&coord, &ci);
    assert_eq!(status, 401, "a revoked token stops working at once: {v}");
    assert!(cli_ok(&coord, &["tokens", "ls", "--all"]).contains("revoked"));
    assert!(!cli_ok(&coord, &["tokens", "ls"]).contains(&ci_id));

    let admin_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (ok, _, err) = cli(&coord, &["tokens", "revoke", &admin_id]);
    assert!(!ok && err.contains("last working admin"), "{err}");
    assert_eq!(whoami(&coord, &coord.admin).0, 200);
}

#[test]
fn every_operator_and_admin_write_is_in_the_audit_log_with_caller_target_and_outcome() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 15_000);
    let (ops, ops_id) = mint(&coord, "operator", "ops");
    let (viewer, _) = mint(&coord, "viewer", "eve");
    let factory = FakeFactory::enroll(&coord);
    let (_, me) = call(
        "GET",
        &format!("{}/v1/factories", coord.url),
        Some(&coord.admin),
        None,
    );
    let fid = me[0]["id"].as_str().unwrap().to_string();
    let drain = format!("{}/v1/factories/{fid}/drain", coord.url);
    assert_eq!(call("POST", &drain, Some(&ops), None).0, 204);
    assert_eq!(call("POST", &drain, Some(&viewer), None).0, 403);
    let (status, _) = factory.call(
        &coord,
        &format!("/v1/factories/{fid}/heartbeat"),
        json!({"slots_busy": 0, "running": []}),
    );
    assert_eq!(status, 200);

    let log = get(&coord, "/v1/audit")["entries"].clone();
    let entries = log.as_array().unwrap();
    let line = |e: &Value| {
        format!(
            "{}:{} {} [{}] {}",
            e["role"].as_str().unwrap(),
            e["caller"].as_str().unwrap(),
            e["action"].as_str().unwrap(),
            e["target"].as_str().unwrap(),
            e["status"]
        )
    };
    let lines: Vec<String> = entries.iter().map(line).collect();
    let expected = [
        format!("viewer:eve POST /v1/factories/{{id}}/drain [id={fid}] 403"),
        format!("operator:ops POST /v1/factories/{{id}}/drain [id={fid}] 204"),
        format!("enrollment:enrollment POST /v1/factories/enroll [factory {fid} (fake)] 200"),
    ];
    assert_eq!(lines[..3], expected, "newest first: {lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l
                == &format!("admin:admin POST /v1/tokens [token {ops_id} (operator ops)] 200")),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("heartbeat")),
        "factories' writes are the jobs' timelines' business"
    );
    let times: Vec<u64> = entries.iter().map(|e| e["at"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    let by_ops = get(&coord, "/v1/audit?caller=operator:ops")["entries"].clone();
    assert_eq!(by_ops.as_array().unwrap().len(), 1, "{by_ops}");
    let page = get(&coord, "/v1/audit?limit=2");
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let next = get(&coord, &format!("/v1/audit?limit=2&cursor={cursor}"));
    assert_eq!(
        line(&next["entries"][0]),
        lines[2],
        "the next page goes on where it stopped"
    );
    let (status, _) = call("GET", &format!("{}/v1/audit", coord.url), Some(&ops), None);
    assert_eq!(status, 403, "admins only");
    let printed = cli_ok(&coord, &["audit", "--action", "drain"]);
    assert!(
        printed.contains("operator:ops") && printed.contains("-> 204"),
        "{printed}"
    );
}

#[test]
fn an_insecure_dev_node_serves_only_its_loopback_names_and_pages_and_no_admin() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start_with_config(dir.path(), 15_000, "insecure_dev = true\n");
    let host = coord.url.trim_start_matches("http://").to_string();
    let json_type = ("content-type", "application/json");
    let (status, _, me) = raw("GET", &format!("{}/v1/whoami", coord.url), &[], None);
    assert_eq!(
        (status, me["role"].as_str()),
        (200, Some("operator")),
        "{me}"
    );

    let body = json!({"role": "admin", "name": "mine"}).to_string();
    let (status, _, v) = raw(
        "POST",
        &format!("{}/v1/tokens", coord.url),
        &[json_type],
        Some(&body),
    );
    assert_eq!(status, 403, "a token-less caller mints nothing: {v}");

    let manifest = json!({"product": "p", "jobs": [{"key": "a", "title": "a", "command": "true"}]})
        .to_string();
    let url = format!("{}/v1/manifests", coord.url);
    let (status, _, v) = raw(
        "POST",
        &url,
        &[json_type, ("origin", "http://evil.example")],
        Some(&manifest),
    );
    assert_eq!(
        (status, v["error"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    let rebound = format!("evil.example:{}", host.rsplit_once(':').unwrap().1);
    let (status, _, v) = raw(
        "POST",
        &url,
        &[json_type, ("host", &rebound)],
        Some(&manifest),
    );
    assert_eq!(status, 403, "a rebound name: {v}");
    let (status, _, v) = raw(
        "GET",
        &format!("{}/v1/jobs", coord.url),
        &[("host", &rebound)],
        None,
    );
    assert_eq!(status, 403, "reads too: {v}");
    assert_eq!(get(&coord, "/v1/jobs")["jobs"].as_array().unwrap().len(), 0);

    let own = format!("http://{host}");
    let (status, _, v) = raw(
        "POST",
        &url,
        &[json_type, ("origin", &own)],
        Some(&manifest),
    );
    assert_eq!(status, 200, "its own page may write: {v}");
}

#[test]
fn a_write_not_of_its_routes_media_type_is_refused_and_changes_nothing() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 15_000);
    let auth = bearer(&coord.admin);
    let manifest = "product = \"p\"\n[[jobs]]\nkey = \"a\"\ntitle = \"a\"\ncommand = \"true\"\n";
    let url = format!("{}/v1/manifests", coord.url);
    for form in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let (status, _, v) = raw(
            "POST",
            &url,
            &[("authorization", &auth), ("content-type", form)],
            Some(manifest),
        );
        assert_eq!(
            (status, v["error"].as_str()),
            (415, Some("unsupported_media_type")),
            "{form}: {v}"
        );
    }
    let (status, _, v) = raw(
        "DELETE",
        &format!("{}/v1/limits/k", coord.url),
        &[("authorization", &auth)],
        None,
    );
    assert_eq!(status, 415, "a write without a type: {v}");
    assert_eq!(get(&coord, "/v1/jobs")["jobs"].as_array().unwrap().len(), 0);
    let (status, _, v) = raw(
        "POST",
        &url,
        &[
            ("authorization", &auth),
            ("content-type", "application/toml"),
        ],
        Some(manifest),
    );
    assert_eq!(status, 200, "{v}");
    assert!(
        cli_ok(&coord, &["jobs", "ls"]).contains("a"),
        "the CLI sends its types"
    );
}

#[test]
fn a_peer_presenting_unknown_tokens_is_throttled_with_retry_after() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 15_000);
    let url = format!("{}/v1/whoami", coord.url);
    for i in 0..20 {
        let (status, _) = call("GET", &url, Some(&format!("gf_guess{i}")), None);
        assert_eq!(status, 401, "guess {i}");
    }
    let (status, headers, v) = raw(
        "GET",
        &url,
        &[("authorization", &bearer(&coord.admin))],
        None,
    );
    assert_eq!(
        (status, v["error"].as_str()),
        (429, Some("auth_throttled")),
        "{v}"
    );
    let wait: u64 = headers["retry-after"].parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let (status, _, _) = raw("GET", &format!("{}/healthz", coord.url), &[], None);
    assert_eq!(status, 200, "a request without a token is no guess");
}

#[test]
fn the_fault_route_is_served_only_when_enabled_and_its_log_names_the_caller() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let fault = json!({"target": "reaper"}).to_string();
    let coord = Coordinator::start(dir.path().join("off").as_path(), 15_000);
    assert_eq!(post(&coord, "/v1/admin/faults", &fault).0, 404);
    drop(coord);
    let coord = Coordinator::start_with(
        dir.path().join("on").as_path(),
        15_000,
        &["--enable-fault-injection"],
    );
    let (status, v) = post(&coord, "/v1/admin/faults", &fault);
    assert_eq!(status, 202, "{v}");
    wait_for(Duration::from_secs(10), "the fault in the log", || {
        coord
            .log()
            .lines()
            .any(|l| l.contains("fault injected") && l.contains("admin:admin"))
    });
}

#[test]
fn answers_forbid_framing_and_sniffing() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 15_000);
    for path in ["/", "/ui/app.js", "/v1/whoami", "/nowhere"] {
        let (_, h, _) = raw(
            "GET",
            &format!("{}{path}", coord.url),
            &[("authorization", &bearer(&coord.admin))],
            None,
        );
        assert_eq!(
            h.get("x-frame-options").map(String::as_str),
            Some("DENY"),
            "{path}"
        );
        assert_eq!(
            h.get("x-content-type-options").map(String::as_str),
            Some("nosniff"),
            "{path}"
        );
        assert!(
            h["content-security-policy"].contains("frame-ancestors 'none'"),
            "{path}"
        );
    }
}

//! What the job page and the overview read from the API, against a real coordinator process:
//! every job lists the actions its state allows (`allowed_actions`), an action it does not
//! list is refused, an action's reason is kept in its event (through the API and the CLI's
//! `--reason`), and a bad reason or body is a JSON 400 that changes nothing; a job's run
//! (`/dag`) holds its ancestors and descendants, no sibling; the stats history says when its
//! node started, which a restart moves on.

mod common;

use common::*;
use serde_json::{Value, json};

fn allowed(job: &Value) -> Vec<String> {
    job["allowed_actions"]
        .as_array()
        .unwrap_or_else(|| panic!("no allowed_actions in {job}"))
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

fn act(coord: &Coordinator, id: &str, action: &str, body: Option<&str>) -> (u16, Value) {
    call(
        "POST",
        &format!("{}/v1/jobs/{id}/actions/{action}", coord.url),
        Some(&coord.admin),
        body,
    )
}

fn submit(coord: &Coordinator, key: &str) -> String {
    let spec = json!({"key": key, "title": key, "product": "acts", "capabilities": ["none-has-it"],
                      "payload": {"command": "true"}});
    let (status, v) = post(coord, "/v1/jobs", &spec.to_string());
    assert_eq!(status, 201, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

#[test]
fn a_job_lists_the_actions_its_state_allows_and_refuses_the_others() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);
    let id = submit(&coord, "listed");
    let queued = job(&coord, &id);
    assert_eq!(allowed(&queued), ["cancel"]);
    // The listing carries them too.
    let page = get(&coord, "/v1/jobs?product=acts");
    assert_eq!(allowed(&page["jobs"][0]), ["cancel"]);

    for refused in ["retry", "requeue", "ship", "reject"] {
        expect_error(&act(&coord, &id, refused, None), 409, "illegal_transition");
    }
    assert_eq!(state(&coord, &id), "queued");

    let (status, cancelled) = act(&coord, &id, "cancel", None);
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(allowed(&cancelled), ["retry", "requeue"]);
    expect_error(&act(&coord, &id, "cancel", None), 409, "illegal_transition");
}

#[test]
fn an_actions_reason_is_kept_on_the_timeline_and_a_bad_one_changes_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);
    let id = submit(&coord, "reasoned");
    let events_before = events(&coord, &id).len();

    let too_long = json!({ "reason": "x".repeat(1001) }).to_string();
    for (body, code) in [
        (too_long.as_str(), "invalid_request"),
        (r#"{"why": "x"}"#, "malformed_request"),
        (r#"{"reason": 7}"#, "malformed_request"),
        (r#"["flaky"]"#, "malformed_request"),
        ("flaky", "malformed_request"),
    ] {
        let got = act(&coord, &id, "cancel", Some(body));
        expect_error(&got, 400, code);
    }
    assert_eq!(
        state(&coord, &id),
        "queued",
        "a refused action changed nothing"
    );
    assert_eq!(events(&coord, &id).len(), events_before);

    let (status, v) = act(
        &coord,
        &id,
        "cancel",
        Some(r#"{"reason": "  wrong branch\n"}"#),
    );
    assert_eq!(status, 200, "{v}");
    let last = events(&coord, &id).pop().unwrap();
    assert_eq!(
        (last["kind"].as_str(), last["detail"].as_str()),
        (Some("cancel"), Some("wrong branch"))
    );

    // The CLI's --reason says the same, and a blank body is no reason.
    cli_ok(&coord, &["jobs", "retry", &id, "--reason", "branch fixed"]);
    let last = events(&coord, &id).pop().unwrap();
    assert_eq!(
        (last["kind"].as_str(), last["detail"].as_str()),
        (Some("retry"), Some("branch fixed"))
    );
    let (status, v) = act(&coord, &id, "cancel", Some(r#"{}"#));
    assert_eq!(status, 200, "{v}");
    assert_eq!(events(&coord, &id).pop().unwrap()["detail"], Value::Null);

    let (ok, _, err) = cli(
        &coord,
        &["jobs", "requeue", &id, "--reason", &"y".repeat(1001)],
    );
    assert!(!ok && err.contains("at most 1000"), "{err}");
    assert_eq!(state(&coord, &id), "cancelled");
}

#[test]
fn a_jobs_run_holds_every_ancestor_and_descendant_and_no_sibling() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);
    let jobs = submit_manifest(
        &coord,
        r#"product = "acts"
[[jobs]]
key = "a"
title = "a"
command = "true"
capabilities = ["none-has-it"]
[[jobs]]
key = "b"
title = "b"
command = "true"
deps = ["a"]
[[jobs]]
key = "c"
title = "c"
command = "true"
deps = ["b"]
[[jobs]]
key = "sibling"
title = "sibling"
command = "true"
deps = ["a"]
"#,
    );
    let id = |key: &str| jobs.iter().find(|(k, _)| k == key).unwrap().1.clone();
    let view = get(&coord, &format!("/v1/jobs/{}/dag", id("b")));
    let run: Vec<(String, Vec<Value>)> = view["run"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let parents = n["parents"].as_array().unwrap().clone();
            (n["key"].as_str().unwrap().to_owned(), parents)
        })
        .collect();
    let keys: Vec<&str> = run.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["b", "a", "c"], "the job first, then nearest first");
    assert_eq!(run[2].1, [json!(id("b"))], "each node names its parents");
    assert_eq!(view["run_truncated"], json!(false));
}

#[test]
fn the_stats_history_says_when_its_node_started_and_a_restart_moves_it_on() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut coord = Coordinator::start(dir.path(), 5_000);
    let started = |c: &Coordinator| {
        get(c, "/v1/stats/history")["node_started_at"]
            .as_u64()
            .unwrap()
    };
    let first = started(&coord);
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    assert!(first <= now_ms(), "{first} is in the future");
    coord.restart();
    let again = started(&coord);
    assert!(
        again > first,
        "a restart starts the history again: {first} then {again}"
    );
    let samples = get(&coord, "/v1/stats/history")["samples"].clone();
    for s in samples.as_array().unwrap() {
        assert!(
            s["at"].as_u64().unwrap() >= again,
            "{s} is older than the node"
        );
    }
}

//! A provider's quota window through real processes: a job that says its model provider
//! throttles it (`gigafactory job throttled --until`) is given back without a failure, no job
//! of its engine class starts before the reset (while jobs of other classes run), the wait says
//! why, and at the reset both run; a job that reports a throttle and succeeds anyway is done. A stale epoch's release throttles nothing, and a reset too
//! far away is refused.

mod common;

use std::time::{Duration, Instant};

use common::{Coordinator, Factory, call, get, job, serial, state, submit_manifest, wait_for};
use serde_json::json;

const THROTTLE_SECS: u64 = 4;

fn manifest(key: &str, engine: Option<&str>, command: &str) -> String {
    let engine = engine.map_or(String::new(), |e| format!("engine_class = \"{e}\"\n"));
    format!(
        "product = \"thr\"\n[[jobs]]\nkey = \"{key}\"\ntitle = \"{key}\"\ncapabilities = [\"linux\"]\n\
         {engine}max_attempts = 2\ncommand = '''{command}'''\n"
    )
}

#[test]
fn a_throttle_holds_the_engines_queue_until_the_reset_and_costs_no_attempt() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);
    let _f = Factory::start_with_args(
        &coord,
        &coord.url,
        "agents",
        3,
        "linux",
        &dir.path().join("f"),
        &["--engine-classes", "claude"],
    );
    // The first attempt is throttled; the second (after the reset) succeeds.
    let throttled = format!(
        "if [ \"$GF_ATTEMPT\" = 1 ]; then gigafactory job throttled --until {THROTTLE_SECS}s; exit 1; fi; echo resumed"
    );
    let first = submit_manifest(&coord, &manifest("first", Some("claude"), &throttled))[0]
        .1
        .clone();
    wait_for(Duration::from_secs(30), "the throttled release", || {
        job(&coord, &first)["attempts"] == 1 && state(&coord, &first) == "queued"
    });
    let released_at = Instant::now();
    let second = submit_manifest(&coord, &manifest("second", Some("claude"), "echo second"))[0]
        .1
        .clone();
    // A job that reports a throttle and then succeeds anyway is done: only a failing exit
    // turns the report into a release.
    let plain = manifest(
        "plain",
        None,
        "gigafactory job throttled --until 60s; echo plain",
    );
    let plain = submit_manifest(&coord, &plain)[0].1.clone();
    wait_for(
        Duration::from_secs(20),
        "the job without an engine class",
        || state(&coord, &plain) == "succeeded",
    );
    // Before the reset, the engine's jobs wait, and say why.
    let why = job(&coord, &second);
    assert_eq!(why["state"], "queued", "{why}");
    let text = format!("{} {}", why["held"], why["waiting"]);
    assert!(text.contains("claude throttled until"), "{text}");
    let (_, limits) = call(
        "GET",
        &format!("{}/v1/limits", coord.url),
        Some(&coord.admin),
        None,
    );
    let engine = limits
        .as_array()
        .and_then(|l| l.iter().find(|l| l["key"] == "engine:claude"))
        .cloned()
        .unwrap_or_else(|| panic!("engine:claude listed in {limits}"));
    assert!(engine["throttled_until"].as_u64().is_some(), "{engine}");

    wait_for(Duration::from_secs(30), "both jobs after the reset", || {
        state(&coord, &first) == "succeeded" && state(&coord, &second) == "succeeded"
    });
    assert!(
        released_at.elapsed() >= Duration::from_secs(THROTTLE_SECS - 1),
        "the engine's jobs ran before the reset"
    );
    assert_eq!(
        job(&coord, &plain)["attempts"],
        1,
        "a success is not released"
    );
    let first = job(&coord, &first);
    assert_eq!(first["failures"], 0, "a throttle is not a failure: {first}");
    assert_eq!(first["attempts"], 2, "{first}");
    let events = get(
        &coord,
        &format!("/v1/jobs/{}/events", first["id"].as_str().unwrap()),
    );
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "release"),
        "{events}"
    );
}

#[test]
fn a_throttle_past_a_week_is_refused_and_changes_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);
    let body = json!({"name": "fake", "os": "linux", "arch": "x86_64", "slots": 1,
        "capabilities": ["linux"], "engine_classes": ["claude"]});
    let (status, v) = call(
        "POST",
        &format!("{}/v1/factories/enroll", coord.url),
        Some(&common::enrollment_token(&coord)),
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "{v}");
    let fake = common::FakeFactory {
        token: v["token"].as_str().unwrap().to_string(),
    };
    let id = submit_manifest(&coord, &manifest("far", Some("claude"), "true"))[0]
        .1
        .clone();
    let (claimed, epoch) = fake.claim(&coord);
    assert_eq!(claimed, id);
    let far = 4_000_000_000_000u64;
    let (status, body) = fake.write(
        &coord,
        &id,
        "release",
        epoch,
        json!({ "throttled_until": far }),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(state(&coord, &id), "leased");
    // A stale epoch's throttle throttles nothing.
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 60_000;
    let stale = json!({ "throttled_until": soon });
    let (status, body) = fake.write(&coord, &id, "release", epoch - 1, stale);
    assert_eq!(status, 409, "{body}");
    assert_eq!(state(&coord, &id), "leased");
    let (_, limits) = call(
        "GET",
        &format!("{}/v1/limits", coord.url),
        Some(&coord.admin),
        None,
    );
    assert!(
        limits
            .as_array()
            .is_none_or(|l| l.iter().all(|l| l["key"] != "engine:claude")),
        "{limits}"
    );
}

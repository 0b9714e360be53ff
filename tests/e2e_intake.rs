//! Trackers against a real coordinator process: signed deliveries make jobs once and a bad
//! signature changes nothing; closing and reopening an item cancels and brings back its jobs;
//! a fake tracker (a real HTTP server in the test) hears every job change at least once, with
//! a stable idempotency key and a valid signature, through 500s, time-outs and a coordinator
//! restart; a dead-lettered delivery is visible and redeliverable.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::tracker::FakeTracker;
use common::*;
use gigafactory_core::tracker::{SourceKind, sign, signature_ok};
use serde_json::{Value, json};

const SECRET: &str = "s3cret";
const CALLBACK_SECRET: &str = "back-s3cret";

fn config(callback: Option<&str>, tries_max: u32) -> String {
    let callback = callback
        .map(|u| format!("callback_url = \"{u}\"\ncallback_secret = \"{CALLBACK_SECRET}\""))
        .unwrap_or_default();
    format!(
        r#"
[intake.gh]
kind = "github"
secret = "{SECRET}"
{callback}

[[intake.gh.rules]]
labels = ["bug"]
product = "app"
template = "fix"

[intake.gh.templates]
fix = '''
[[jobs]]
key = "plan"
title = "Plan {{{{id}}}}"
prompt = "Plan a fix for {{{{title}}}}"
[[jobs]]
key = "fix"
title = "Fix {{{{id}}}}"
prompt = "{{{{body}}}}"
deps = ["plan"]
'''

[outbox]
backoff_base_ms = 50
backoff_cap_ms = 200
tries_max = {tries_max}
timeout_ms = 500
"#
    )
}

fn issue(state: &str, updated_at: &str) -> String {
    json!({
        "action": if state == "open" { "opened" } else { "closed" },
        "repository": {"full_name": "acme/app"},
        "issue": {"number": 42, "title": "Crash on start", "body": "stack trace",
            "html_url": "https://github.com/acme/app/issues/42", "state": state,
            "updated_at": updated_at, "labels": [{"name": "bug"}]}
    })
    .to_string()
}

fn deliver(coord: &Coordinator, body: &str, signature: Option<&str>) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = signature
        .map(|s| ("x-hub-signature-256", s))
        .into_iter()
        .collect();
    call_with(
        "POST",
        &format!("{}/v1/intake/gh", coord.url),
        &headers,
        body,
    )
}

fn signed(body: &str) -> String {
    sign(SECRET.as_bytes(), body.as_bytes())
}

fn job_states(coord: &Coordinator) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = get(coord, "/v1/jobs?limit=500")["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["key"].as_str().unwrap().to_string(),
                j["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

const ITEM_PATH: &str = "/v1/items/gh/acme%2Fapp%2342";

#[test]
fn a_signed_delivery_creates_its_jobs_once_and_closing_and_reopening_follow_the_item() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start_with_config(dir.path(), 60_000, &config(None, 5));
    let opened = issue("open", "2026-12-02T10:00:00Z");

    let (status, v) = deliver(&coord, &opened, None);
    assert_eq!(
        (status, v["error"].as_str()),
        (401, Some("unauthorized")),
        "{v}"
    );
    let (status, _) = deliver(&coord, &opened, Some(&sign(b"wrong", opened.as_bytes())));
    assert_eq!(status, 401);
    assert!(
        job_states(&coord).is_empty(),
        "a bad signature changes nothing"
    );

    let (status, planned) = post(&coord, "/v1/intake/gh/test", &opened);
    assert_eq!(status, 200, "{planned}");
    assert_eq!(planned.as_array().unwrap().len(), 2);
    assert!(job_states(&coord).is_empty(), "a dry run creates nothing");

    let mut decisions = Vec::new();
    for _ in 0..3 {
        let (status, v) = deliver(&coord, &opened, Some(&signed(&opened)));
        assert_eq!(status, 200, "{v}");
        decisions.push(v["decision"].as_str().unwrap().to_string());
    }
    assert_eq!(decisions, ["created", "duplicate", "duplicate"]);
    assert_eq!(
        job_states(&coord),
        [
            ("fix".into(), "pending".into()),
            ("plan".into(), "queued".into())
        ]
    );
    let item = get(&coord, ITEM_PATH);
    assert_eq!(item["item"]["title"], "Crash on start");
    assert_eq!(item["jobs"][0]["origin"]["id"], "acme/app#42");

    let closed = issue("closed", "2026-12-02T11:00:00Z");
    let (_, v) = deliver(&coord, &closed, Some(&signed(&closed)));
    assert_eq!(v["decision"], "closed");
    assert_eq!(
        job_states(&coord),
        [
            ("fix".into(), "cancelled".into()),
            ("plan".into(), "cancelled".into())
        ]
    );
    let reopened = issue("open", "2026-12-02T12:00:00Z");
    let (_, v) = deliver(&coord, &reopened, Some(&signed(&reopened)));
    assert_eq!(v["decision"], "reopened");
    assert_eq!(
        job_states(&coord),
        [
            ("fix".into(), "pending".into()),
            ("plan".into(), "queued".into())
        ]
    );
    let rules = get(&coord, "/v1/intake/gh");
    assert_eq!(rules["rules"][0]["product"], "app");
    assert!(rules.get("secret").is_none(), "secrets are never shown");
}

#[test]
fn the_tracker_hears_every_change_at_least_once_through_errors_time_outs_and_a_restart() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let tracker = FakeTracker::start(3, 1, Duration::from_millis(1_500));
    let mut coord =
        Coordinator::start_with_config(dir.path(), 60_000, &config(Some(&tracker.url), 50));
    let opened = issue("open", "2026-12-02T10:00:00Z");
    let (_, v) = deliver(&coord, &opened, Some(&signed(&opened)));
    let plan = v["jobs"][0][1].as_str().unwrap().to_string();
    let factory = FakeFactory::enroll(&coord);
    let (claimed, epoch) = factory.claim(&coord);
    assert_eq!(claimed, plan);
    // The node dies with echoes still owed; they are in its store and go out after restart.
    coord.restart();
    let (status, _) = factory.write(&coord, &plan, "stage", epoch, json!({"stage": "coding"}));
    assert_eq!(status, 200);
    assert_eq!(
        factory.write(&coord, &plan, "complete", epoch, json!({})).0,
        200
    );

    wait_for(Duration::from_secs(30), "every change acknowledged", || {
        let acked = tracker.acknowledged();
        ["started", "stage", "succeeded"]
            .iter()
            .all(|e| acked.iter().any(|a| a == e))
    });
    let received = tracker.received();
    assert!(
        received.iter().any(|r| r.answered == 500),
        "it went through errors"
    );
    for r in &received {
        let sig = r.header("x-gigafactory-signature");
        assert!(
            signature_ok(
                SourceKind::Generic,
                CALLBACK_SECRET.as_bytes(),
                sig,
                r.body.as_bytes()
            ),
            "every callback is signed"
        );
        let key = r.header("idempotency-key").expect("an idempotency key");
        // Every try of one delivery carries the same key and the same bytes.
        for other in received
            .iter()
            .filter(|o| o.header("idempotency-key") == Some(key))
        {
            assert_eq!(other.body, r.body);
        }
    }
    // A try the tracker answered after the coordinator stopped waiting (the slow answer) is
    // acknowledged there but still owed here: its next try, due soon, settles it.
    let all_delivered = || {
        get(&coord, ITEM_PATH)["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                ["started", "stage", "succeeded"]
                    .contains(&d["echo"]["event"].as_str().unwrap_or(""))
            })
            .all(|d| d["status"] == "delivered")
    };
    wait_for(
        Duration::from_secs(30),
        "every change delivered",
        all_delivered,
    );
}

#[test]
fn a_dead_lettered_delivery_is_visible_and_redeliverable() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let tracker = FakeTracker::start(0, 0, Duration::ZERO);
    tracker.down.store(true, Ordering::SeqCst);
    let coord = Coordinator::start_with_config(dir.path(), 60_000, &config(Some(&tracker.url), 3));
    let opened = issue("open", "2026-12-02T10:00:00Z");
    deliver(&coord, &opened, Some(&signed(&opened)));
    let factory = FakeFactory::enroll(&coord);
    factory.claim(&coord);

    let mut dead = Value::Null;
    wait_for(
        Duration::from_secs(20),
        "the delivery dead-lettered",
        || {
            dead = get(&coord, ITEM_PATH)["deliveries"][0].clone();
            dead["status"] == "dead_letter"
        },
    );
    assert_eq!(
        (dead["tries"].as_u64(), dead["last_answer"].as_str()),
        (Some(3), Some("HTTP 500"))
    );
    let id = dead["id"].as_str().unwrap().to_string();
    let (status, _) = post(&coord, "/v1/deliveries/no-such/redeliver", "{}");
    assert_eq!(status, 404);

    let shown = cli_ok(&coord, &["intake", "item", "gh", "acme/app#42"]);
    assert!(
        shown.contains("dead letter") && shown.contains("3 tries, last answer: HTTP 500"),
        "{shown}"
    );
    tracker.down.store(false, Ordering::SeqCst);
    let again = cli_ok(&coord, &["intake", "redeliver", &id]);
    assert!(again.contains("queued again"), "{again}");
    wait_for(Duration::from_secs(20), "redelivered", || {
        get(&coord, ITEM_PATH)["deliveries"][0]["status"] == "delivered"
    });
    assert!(tracker.acknowledged().contains(&"started".to_string()));
    let (status, v) = post(&coord, &format!("/v1/deliveries/{id}/redeliver"), "{}");
    assert_eq!(
        (status, v["error"].as_str()),
        (409, Some("illegal_transition")),
        "{v}"
    );
}

#[test]
fn intake_test_shows_what_a_payload_would_create_and_creates_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start_with_config(dir.path(), 60_000, &config(None, 5));
    let payload = dir.path().join("issue.json");
    std::fs::write(&payload, issue("open", "2026-12-02T10:00:00Z")).unwrap();
    let plan = cli_ok(&coord, &["intake", "test", "gh", payload.to_str().unwrap()]);
    assert!(plan.starts_with("2 job(s) would be created:"), "{plan}");
    assert!(
        plan.contains("Fix acme/app#42") && plan.contains("after plan"),
        "{plan}"
    );
    assert!(job_states(&coord).is_empty(), "a dry run creates nothing");

    std::fs::write(&payload, "{\"not\": \"an issue\"}").unwrap();
    let (ok, _, err) = cli(&coord, &["intake", "test", "gh", payload.to_str().unwrap()]);
    assert!(!ok && err.contains("invalid_request"), "{err}");
    let (ok, _, err) = cli(
        &coord,
        &["intake", "test", "nope", payload.to_str().unwrap()],
    );
    assert!(!ok && err.contains("not_found"), "{err}");
}

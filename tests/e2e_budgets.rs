//! Budgets and usage through a real coordinator process and its HTTP API, with a factory
//! played by the test: usage, alone or carried on a complete, is counted once per request id
//! and refused from a stale epoch or another factory; bad budgets get clear errors and change nothing; an exhausted budget
//! holds new jobs, stops running ones under policy `stop`, and a raise or a resume releases
//! them; a job past its own cost budget ends.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

const USD: u64 = 1_000_000;

fn put_budget(coord: &Coordinator, name: &str, body: Value) -> (u16, Value) {
    call(
        "PUT",
        &format!("{}/v1/budgets/{name}", coord.url),
        Some(&coord.admin),
        Some(&body.to_string()),
    )
}

fn spent(coord: &Coordinator, name: &str) -> u64 {
    get(coord, &format!("/v1/budgets/{name}"))["budget"]["spent_micros"]
        .as_u64()
        .unwrap()
}

fn submit(coord: &Coordinator, key: &str, extra: Value) -> String {
    let mut body = json!({"key": key, "title": key, "product": "ops", "payload": {"command": "x"}});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (status, v) = post(coord, "/v1/jobs", &body.to_string());
    assert_eq!(status, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

fn usage(cost_usd: u64) -> Value {
    json!({"model": "gpt", "input_tokens": 10, "output_tokens": 5, "cost_micros": cost_usd * USD})
}

fn expect(got: (u16, Value), status: u16, code: &str) {
    assert_eq!(
        (got.0, got.1["error"].as_str()),
        (status, Some(code)),
        "{}",
        got.1
    );
}

#[test]
fn usage_is_counted_once_refused_from_stale_or_foreign_writers_and_bad_budgets_change_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 60_000);
    clear_of_utc_midnight(Duration::from_secs(180));
    let budget = json!({"product": "ops", "period": "day", "limit_micros": 10 * USD});
    assert_eq!(put_budget(&coord, "ops-daily", budget.clone()).0, 200);

    // Bad budgets: each refused with a clear error; the budget stays as it was.
    let bad = |patch: Value| {
        let mut b = budget.clone();
        b.as_object_mut()
            .unwrap()
            .extend(patch.as_object().unwrap().clone());
        put_budget(&coord, "ops-daily", b)
    };
    expect(bad(json!({"period": "hourly"})), 400, "malformed_request");
    expect(bad(json!({"limit_micros": -1})), 400, "malformed_request");
    expect(bad(json!({"limit_micros": 0})), 400, "invalid_request");
    expect(bad(json!({"alert_percent": 150})), 400, "invalid_request");
    expect(bad(json!({"product": "no spaces"})), 400, "invalid_request");
    let pause = |body: &str| post(&coord, "/v1/budgets/ops-daily/pause", body);
    expect(pause(r#"{"reason": "  "}"#), 400, "invalid_request");
    expect(pause("{}"), 400, "malformed_request");
    expect(
        post(&coord, "/v1/budgets/ops-daily/resume", "{}"),
        409,
        "illegal_transition",
    );
    expect(
        call(
            "GET",
            &format!("{}/v1/budgets/nope", coord.url),
            Some(&coord.admin),
            None,
        ),
        404,
        "not_found",
    );
    let listed = get(&coord, "/v1/budgets");
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["limit_micros"], 10 * USD);
    assert_eq!(listed[0]["state"], "active");

    let factory = FakeFactory::enroll(&coord);
    let other = FakeFactory::enroll(&coord);
    let id = submit(&coord, "a", json!({}));
    let (claimed, epoch) = factory.claim(&coord);
    assert_eq!(claimed, id);
    // The same report sent twice (its answer lost, say) counts once.
    for _ in 0..2 {
        let (status, v) = factory.write_as(&coord, &id, "usage", epoch, "u1", usage(3));
        assert_eq!(status, 200, "{v}");
    }
    assert_eq!(spent(&coord, "ops-daily"), 3 * USD);
    assert_eq!(job(&coord, &id)["cost"]["total_micros"], 3 * USD);
    // A stale epoch, another factory, a model without a price: refused, nothing counted.
    expect(
        factory.write_as(&coord, &id, "usage", epoch + 1, "u2", usage(1)),
        409,
        "fenced",
    );
    expect(
        other.write_as(&coord, &id, "usage", epoch, "u3", usage(1)),
        403,
        "not_lease_holder",
    );
    let unpriced = json!({"model": "mystery", "input_tokens": 5});
    let got = factory.write_as(&coord, &id, "usage", epoch, "u4", unpriced);
    expect(got.clone(), 400, "invalid_request");
    assert!(
        got.1["message"]
            .as_str()
            .unwrap()
            .contains("no price for model")
    );
    assert_eq!(spent(&coord, "ops-daily"), 3 * USD);
    let models = &job(&coord, &id)["cost"]["models"];
    assert_eq!(
        (
            models[0]["input_tokens"].as_u64(),
            models[0]["micros"].as_u64()
        ),
        (Some(10), Some(3 * USD))
    );

    // Reports carried on the complete: refused with it from a stale epoch or another factory
    // (nothing counted), then taken with it, the one already counted alone once more not.
    let carried = |ids: &[&str]| {
        let reports: Vec<Value> = ids
            .iter()
            .map(|rid| {
                let mut r = usage(2);
                r["request_id"] = json!(rid);
                r
            })
            .collect();
        json!({"usage": reports})
    };
    expect(
        factory.write_as(&coord, &id, "complete", epoch + 1, "end", carried(&["u5"])),
        409,
        "fenced",
    );
    expect(
        other.write_as(&coord, &id, "complete", epoch, "end", carried(&["u5"])),
        403,
        "not_lease_holder",
    );
    assert_eq!(spent(&coord, "ops-daily"), 3 * USD);
    let (status, v) = factory.write_as(
        &coord,
        &id,
        "complete",
        epoch,
        "end",
        carried(&["u1", "u5"]),
    );
    assert_eq!(
        (status, v["state"].as_str()),
        (200, Some("succeeded")),
        "{v}"
    );
    assert_eq!(
        spent(&coord, "ops-daily"),
        5 * USD,
        "u1 counted once, u5 once"
    );
    assert_eq!(job(&coord, &id)["cost"]["total_micros"], 5 * USD);
}

#[test]
fn an_exhausted_budget_holds_new_jobs_stops_running_ones_and_a_raise_or_resume_releases_them() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 60_000);
    clear_of_utc_midnight(Duration::from_secs(180));
    let budget = |limit: u64| json!({"product": "ops", "period": "day", "limit_micros": limit * USD, "policy": "stop"});
    assert_eq!(put_budget(&coord, "ops-daily", budget(5)).0, 200);
    let factory = FakeFactory::enroll(&coord);
    let a = submit(&coord, "a", json!({}));
    let (_, epoch) = factory.claim(&coord);
    let (status, v) = factory.write(&coord, &a, "usage", epoch, usage(6));
    assert_eq!(status, 200, "{v}");
    wait_for(Duration::from_secs(10), "the running job stopped", || {
        state(&coord, &a) == "preempting"
    });
    let view = get(&coord, "/v1/budgets/ops-daily")["budget"].clone();
    assert_eq!(
        (view["state"].as_str(), view["spent_micros"].as_u64()),
        (Some("exhausted"), Some(6 * USD))
    );
    let kinds: Vec<String> = events(&coord, &a)
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(
        kinds.contains(&"budget_alert".into()) && kinds.contains(&"budget_reached".into()),
        "{kinds:?}"
    );

    let b = submit(&coord, "b", json!({}));
    let (status, _) = factory.call(&coord, "/v1/claims", json!({"max_jobs": 1, "wait_ms": 500}));
    assert_eq!(
        status, 204,
        "nothing to lease while the budget is exhausted"
    );
    let held = job(&coord, &b)["held"].as_str().unwrap().to_string();
    assert!(
        held.starts_with("budget ops-daily exhausted: $6.00 of $5.00, resets "),
        "{held}"
    );

    // Raising the limit lets the waiting job run at once.
    assert_eq!(put_budget(&coord, "ops-daily", budget(50)).0, 200);
    let (claimed, _) = factory.claim(&coord);
    assert_eq!(claimed, b);

    // A pause holds the next one until the budget is resumed.
    let (status, v) = post(
        &coord,
        "/v1/budgets/ops-daily/pause",
        r#"{"reason": "audit"}"#,
    );
    assert_eq!((status, v["state"].as_str()), (200, Some("paused")), "{v}");
    let c = submit(&coord, "c", json!({}));
    let (status, _) = factory.call(&coord, "/v1/claims", json!({"max_jobs": 1, "wait_ms": 500}));
    assert_eq!(status, 204);
    assert_eq!(
        job(&coord, &c)["held"],
        "budget ops-daily paused by admin:admin: audit"
    );
    assert_eq!(post(&coord, "/v1/budgets/ops-daily/resume", "{}").0, 200);
    let (claimed, _) = factory.claim(&coord);
    assert_eq!(claimed, c);
}

#[test]
fn a_job_past_its_own_cost_budget_ends_dead_and_cannot_be_retried() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 60_000);
    let factory = FakeFactory::enroll(&coord);
    let id = submit(&coord, "capped", json!({"cost_budget_micros": USD}));
    let (_, epoch) = factory.claim(&coord);
    let (status, v) = factory.write(&coord, &id, "usage", epoch, usage(2));
    assert_eq!((status, v["state"].as_str()), (200, Some("dead")), "{v}");
    let j = job(&coord, &id);
    assert_eq!(j["last_error"], "cost budget exhausted: $2.00 of $1.00");
    assert_eq!(j["cost_budget_micros"], USD);
    let kinds: Vec<String> = events(&coord, &id)
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.contains(&"cost_cap_reached".into()), "{kinds:?}");
    expect(
        factory.write(&coord, &id, "complete", epoch, json!({})),
        409,
        "fenced",
    );
    expect(
        post(&coord, &format!("/v1/jobs/{id}/actions/retry"), "{}"),
        409,
        "cost_cap_reached",
    );
}

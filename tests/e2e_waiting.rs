//! End to end with real processes: why a job is not running, in the API and the CLI, for each
//! way a job waits; a per-request weight override; and placements across products following
//! their fair shares.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn explain(coord: &Coordinator, id: &str) -> Value {
    get(coord, &format!("/v1/jobs/{id}/explain"))
}

fn factory_id(coord: &Coordinator, name: &str) -> String {
    get(coord, "/v1/factories")
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("factory {name} enrolled"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn one(coord: &Coordinator, manifest: &str) -> String {
    submit_manifest(coord, manifest).remove(0).1
}

#[test]
fn explain_says_why_each_waiting_job_waits_and_lists_every_factory() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 10_000);
    let _linux = Factory::start(&coord, "linux-1", 1, "linux", &dir.path().join("l"));
    let _gpu = Factory::start(&coord, "gpu-1", 1, "linux,gpu", &dir.path().join("g"));
    wait_for(Duration::from_secs(20), "both factories online", || {
        get(&coord, "/v1/factories")
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["status"] == "online")
            .count()
            == 2
    });
    let drain = post(
        &coord,
        &format!("/v1/factories/{}/drain", factory_id(&coord, "gpu-1")),
        "{}",
    );
    assert_eq!(drain.0, 204, "{}", drain.1);

    // No factory has macos, nor engine codex: named, with the closest factories.
    let mac = one(
        &coord,
        "product = \"w\"\n[[jobs]]\nkey = \"mac\"\ntitle = \"mac\"\ncapabilities = [\"macos\"]\nengine_class = \"codex\"\ncommand = \"true\"\n",
    );
    let e = explain(&coord, &mac);
    assert_eq!(e["reason"], "no_factory_fits", "{e}");
    assert_eq!(e["capabilities"], json!(["macos"]));
    assert_eq!(e["engine"], "codex");
    assert_eq!(e["candidates"].as_array().unwrap().len(), 2, "{e}");
    for c in e["candidates"].as_array().unwrap() {
        let kinds: Vec<&str> = c["refusals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["kind"].as_str().unwrap())
            .collect();
        assert!(
            kinds.contains(&"missing_capability") && kinds.contains(&"missing_engine"),
            "{c}"
        );
        assert!(c["score"].is_null());
    }
    assert!(
        e["summary"]
            .as_str()
            .unwrap()
            .starts_with("no factory has capability macos, engine codex; closest: "),
        "{e}"
    );
    // The job's own view and the CLI say it too.
    assert_eq!(job(&coord, &mac)["waiting"], e["summary"]);
    let shown = cli_ok(&coord, &["jobs", "show", &mac]);
    assert!(
        shown.contains("waiting    no factory has capability macos"),
        "{shown}"
    );
    let explained = cli_ok(&coord, &["jobs", "explain", &mac]);
    let line = explained
        .lines()
        .find(|l| l.starts_with("linux-1"))
        .unwrap();
    assert!(
        line.contains("lacks capability macos; lacks engine codex"),
        "{explained}"
    );

    // The only gpu factory drains.
    let gpu = one(
        &coord,
        "product = \"w\"\n[[jobs]]\nkey = \"gpu\"\ntitle = \"gpu\"\ncapabilities = [\"gpu\"]\ncommand = \"true\"\n",
    );
    let e = explain(&coord, &gpu);
    assert_eq!(e["reason"], "factories_unavailable", "{e}");
    assert_eq!(e["draining"], json!(["gpu-1"]));

    // linux-1 is busy with a long job; the next linux job waits for it, and a job of higher
    // priority queued with it goes first.
    let long = one(
        &coord,
        "product = \"w\"\n[[jobs]]\nkey = \"long\"\ntitle = \"long\"\ncapabilities = [\"linux\"]\ncommand = \"sleep 60\"\n",
    );
    wait_for(Duration::from_secs(20), "the long job to run", || {
        state(&coord, &long) == "running"
    });
    let ids = submit_manifest(
        &coord,
        "product = \"w\"\n[[jobs]]\nkey = \"next\"\ntitle = \"next\"\ncapabilities = [\"linux\"]\ncommand = \"true\"\n[[jobs]]\nkey = \"urgent\"\ntitle = \"urgent\"\npriority = 900\ncapabilities = [\"linux\"]\ncommand = \"true\"\n",
    );
    let (next, urgent) = (&ids[0].1, &ids[1].1);
    let e = explain(&coord, next);
    assert_eq!(e["reason"], "factories_unavailable", "{e}");
    assert_eq!(e["busy"], json!(["linux-1"]), "{e}");
    assert_eq!(e["draining"], json!(["gpu-1"]), "{e}");
    assert_eq!(e["ahead"], json!([urgent]), "{e}");
    let linux = e["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "linux-1")
        .unwrap()
        .clone();
    assert_eq!(linux["refusals"][0]["kind"], "no_free_slot", "{linux}");
    assert!(
        linux["score"]["total"].as_f64().is_some(),
        "a fitting factory is scored"
    );

    // A child waits for its parent, named.
    let child_ids = submit_manifest(
        &coord,
        "product = \"w\"\n[[jobs]]\nkey = \"parent\"\ntitle = \"parent\"\ncapabilities = [\"macos\"]\ncommand = \"true\"\n[[jobs]]\nkey = \"child\"\ntitle = \"child\"\ndeps = [\"parent\"]\ncommand = \"true\"\n",
    );
    let e = explain(&coord, &child_ids[1].1);
    assert_eq!(e["reason"], "waiting_for_parents", "{e}");
    assert_eq!(e["parents"][0]["key"], "parent");
    assert_eq!(e["summary"], "waiting for 1 parent(s): parent (queued)");

    // A paused budget holds its product's jobs.
    let (status, v) = call(
        "PUT",
        &format!("{}/v1/budgets/held-daily", coord.url),
        Some(&coord.admin),
        Some(&json!({"product": "held", "period": "day", "limit_micros": 5_000_000}).to_string()),
    );
    assert_eq!(status, 200, "{v}");
    let paused = post(
        &coord,
        "/v1/budgets/held-daily/pause",
        r#"{"reason": "audit"}"#,
    );
    assert_eq!(paused.0, 200, "{}", paused.1);
    let held = one(
        &coord,
        "product = \"held\"\n[[jobs]]\nkey = \"h\"\ntitle = \"h\"\ncommand = \"true\"\n",
    );
    let e = explain(&coord, &held);
    assert_eq!(e["reason"], "held", "{e}");
    assert!(e["by"].as_str().unwrap().contains("held-daily"), "{e}");

    // A running job says so.
    assert_eq!(explain(&coord, &long)["reason"], "running");

    // A weight override shows what would change, and bad weights are refused.
    let e = get(&coord, &format!("/v1/jobs/{next}/explain?age=3&priority=0"));
    assert_eq!(e["what_if"]["weights"]["age"], 3.0, "{e}");
    assert_eq!(e["what_if"]["weights"]["priority"], 0.0, "{e}");
    assert_eq!(
        e["weights"]["priority"], 1.0,
        "the stored weights are unchanged"
    );
    let with = cli_ok(&coord, &["jobs", "explain", next, "--weight", "age=3"]);
    assert!(with.contains("with those weights: "), "{with}");
    for (query, code) in [
        ("age=11", "invalid_request"),
        ("agee=1", "malformed_request"),
    ] {
        let (status, v) = call(
            "GET",
            &format!("{}/v1/jobs/{next}/explain?{query}", coord.url),
            Some(&coord.admin),
            None,
        );
        assert_eq!(
            (status, v["error"].as_str()),
            (400, Some(code)),
            "{query}: {v}"
        );
    }
}

#[test]
fn placements_across_products_follow_their_fair_shares() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start_with_config(
        dir.path(),
        10_000,
        "[scheduling]\nfair_share = true\n[scheduling.shares]\nbig = 3\n",
    );
    // Bad shares are refused and change nothing; the configured one is shown.
    for (body, code) in [
        (r#"{"share": 0}"#, "invalid_request"),
        (r#"{"share": 5000}"#, "invalid_request"),
        (r#"{"shares": 2}"#, "malformed_request"),
    ] {
        let (status, v) = call(
            "PUT",
            &format!("{}/v1/products/small/share", coord.url),
            Some(&coord.admin),
            Some(body),
        );
        assert_eq!(
            (status, v["error"].as_str()),
            (400, Some(code)),
            "{body}: {v}"
        );
    }
    let shares = get(&coord, "/v1/products/shares");
    assert_eq!(shares["shares"], json!({"big": 3}), "{shares}");
    let listed = cli_ok(&coord, &["products", "shares"]);
    assert!(
        listed.contains("fair share on") && listed.contains("big"),
        "{listed}"
    );

    // The small product's jobs are queued first: without fair share its older jobs would take
    // the slots first.
    let manifest = |product: &str| {
        let mut m = format!("product = \"{product}\"\n");
        for n in 0..16 {
            m.push_str(&format!(
                "[[jobs]]\nkey = \"{product}-{n}\"\ntitle = \"{product} {n}\"\ncommand = \"sleep 0.4\"\n"
            ));
        }
        m
    };
    let small = submit_manifest(&coord, &manifest("small"));
    let big = submit_manifest(&coord, &manifest("big"));
    let _f = Factory::start(&coord, "only", 4, "linux", &dir.path().join("f"));
    let all: Vec<&String> = small.iter().chain(&big).map(|(_, id)| id).collect();
    wait_for(Duration::from_secs(90), "every job to succeed", || {
        all.iter().all(|id| state(&coord, id) == "succeeded")
    });
    let mut claims: Vec<(u64, &str)> = Vec::new();
    for (set, product) in [(&small, "small"), (&big, "big")] {
        for (_, id) in set {
            let at = events(&coord, id)
                .iter()
                .find(|e| e["kind"] == "claim")
                .unwrap()["at"]
                .as_u64()
                .unwrap();
            claims.push((at, product));
        }
    }
    claims.sort();
    // Shares 3 : 1 while both have work: of the first 16 placements, 12 are big's, give or
    // take the 2 that in-flight claims and job ends of a real run can shift.
    let big_first = claims[..16].iter().filter(|(_, p)| *p == "big").count();
    assert!(
        (10..=14).contains(&big_first),
        "big took {big_first} of the first 16 placements: {claims:?}"
    );
}

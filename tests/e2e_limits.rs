//! End to end with real processes: a concurrency limit on a key lets at most its max run at
//! once and says so in "why not running"; a rate limit spaces starts; bad limits are refused
//! and change nothing. (Across nodes: `e2e_cluster.rs`.)

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn put_limit(coord: &Coordinator, key: &str, body: &str) -> (u16, Value) {
    call(
        "PUT",
        &format!("{}/v1/limits/{key}", coord.url),
        Some(&coord.admin),
        Some(body),
    )
}

#[test]
fn a_concurrency_limit_runs_at_most_its_max_and_a_held_job_says_why() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 10_000);
    let _f = Factory::start(&coord, "wide", 4, "linux", &dir.path().join("f"));

    // Bad limits are refused, each with its reason, and nothing is stored.
    for (key, body, code, part) in [
        (
            "acme",
            r#"{"max_running": 1}"#,
            "invalid_request",
            "kind before a colon",
        ),
        (
            "repo:acme%2Fapi",
            "{}",
            "invalid_request",
            "needs max_running, per_minute",
        ),
        (
            "repo:acme%2Fapi",
            r#"{"max_running": 0}"#,
            "invalid_request",
            "between 1 and",
        ),
        (
            "repo:acme%2Fapi",
            r#"{"max": 1}"#,
            "malformed_request",
            "max",
        ),
    ] {
        let (status, v) = put_limit(&coord, key, body);
        assert_eq!(
            (status, v["error"].as_str()),
            (400, Some(code)),
            "{key} {body}: {v}"
        );
        assert!(v["message"].as_str().unwrap().contains(part), "{v}");
    }
    assert_eq!(get(&coord, "/v1/limits"), json!([]));

    let set = cli_ok(
        &coord,
        &["limits", "set", "repo:acme/api", "--max-running", "1"],
    );
    assert!(set.contains("repo:acme/api"), "{set}");
    let mut manifest = String::from("product = \"lim\"\n");
    for n in 0..3 {
        manifest.push_str(&format!(
            "[[jobs]]\nkey = \"api-{n}\"\ntitle = \"api {n}\"\nconcurrency_key = \"repo:acme/api\"\ncommand = \"sleep 1.5\"\n"
        ));
    }
    manifest.push_str("[[jobs]]\nkey = \"free\"\ntitle = \"free\"\ncommand = \"true\"\n");
    let ids: Vec<String> = submit_manifest(&coord, &manifest)
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    let (keyed, free) = (&ids[..3], &ids[3]);
    // A job without the key is not held by it.
    wait_for(Duration::from_secs(20), "the free job to succeed", || {
        state(&coord, free) == "succeeded"
    });
    // While one keyed job runs, the others wait and say why.
    let mut said = None;
    wait_for(Duration::from_secs(20), "a held job to say why", || {
        let queued = keyed.iter().find(|id| state(&coord, id) == "queued");
        if let Some(id) = queued {
            let e = get(&coord, &format!("/v1/jobs/{id}/explain"));
            if e["reason"] == "held" {
                said = Some(e);
                return true;
            }
        }
        false
    });
    let said = said.unwrap();
    assert_eq!(
        said["summary"], "held: concurrency limit repo:acme/api: 1 of 1 running",
        "{said}"
    );
    wait_for(
        Duration::from_secs(60),
        "every keyed job to succeed",
        || keyed.iter().all(|id| state(&coord, id) == "succeeded"),
    );
    let spans = lease_spans(&coord, keyed);
    assert_eq!(spans.len(), 3, "{spans:?}");
    assert_eq!(most_at_once(&spans), 1, "leases overlapped: {spans:?}");
    let listed = get(&coord, "/v1/limits");
    assert_eq!(listed[0]["key"], "repo:acme/api");
    assert_eq!(listed[0]["running"], 0, "every slot given back: {listed}");
    let table = cli_ok(&coord, &["limits", "ls"]);
    assert!(
        table.lines().nth(1).unwrap().starts_with("repo:acme/api"),
        "{table}"
    );
    cli_ok(&coord, &["limits", "rm", "repo:acme/api"]);
    assert_eq!(get(&coord, "/v1/limits"), json!([]));
}

#[test]
fn a_rate_limit_spaces_the_starts_of_a_products_jobs() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 10_000);
    let _f = Factory::start(&coord, "wide", 4, "linux", &dir.path().join("f"));
    let (status, v) = put_limit(&coord, "product:rated", r#"{"per_minute": 60}"#);
    assert_eq!(status, 200, "{v}");
    let mut manifest = String::from("product = \"rated\"\n");
    for n in 0..3 {
        manifest.push_str(&format!(
            "[[jobs]]\nkey = \"r{n}\"\ntitle = \"r{n}\"\ncommand = \"true\"\n"
        ));
    }
    let ids: Vec<String> = submit_manifest(&coord, &manifest)
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    let mut said = None;
    wait_for(Duration::from_secs(20), "every job to succeed", || {
        if said.is_none()
            && let Some(id) = ids.iter().find(|id| state(&coord, id) == "queued")
        {
            let e = get(&coord, &format!("/v1/jobs/{id}/explain"));
            if e["reason"] == "held" {
                said = Some(e["summary"].as_str().unwrap().to_owned());
            }
        }
        ids.iter().all(|id| state(&coord, id) == "succeeded")
    });
    let said = said.expect("a job waited for the rate");
    assert!(
        said.starts_with("held: rate limit product:rated: 60 a minute, next start at "),
        "{said}"
    );
    let mut starts: Vec<u64> = lease_spans(&coord, &ids).iter().map(|s| s.0).collect();
    starts.sort();
    for pair in starts.windows(2) {
        assert!(
            pair[1] - pair[0] >= 999,
            "60 a minute: a second apart: {starts:?}"
        );
    }
}

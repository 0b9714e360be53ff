//! End to end with real processes: the scaling hints (`GET /v1/autoscale`, its KEDA form and
//! `gigafactory autoscale`) over a coordinator and one factory with 2 slots of `linux`, with
//! jobs queued for `linux` and for a capability no factory has; and `gigafactory probe`, the
//! image's health check, against a live node and a dead port.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// A job that runs until `stop` exists, so the test decides when slots free up.
fn blocking_job(key: &str, capability: &str, stop: &std::path::Path) -> String {
    format!(
        "[[jobs]]\nkey = \"{key}\"\ntitle = \"{key}\"\ncapabilities = [\"{capability}\"]\n\
         command = \"while [ ! -f {} ]; do sleep 0.1; done\"\n",
        stop.display()
    )
}

fn shape<'a>(answer: &'a Value, capabilities: &[&str]) -> &'a Value {
    answer["shapes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["capabilities"] == serde_json::json!(capabilities))
        .unwrap_or_else(|| panic!("no shape {capabilities:?} in {answer}"))
}

#[test]
fn hints_count_each_shapes_queue_and_ask_for_the_factories_it_needs() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);
    let _f = Factory::start(&coord, "linux-2", 2, "linux", &dir.path().join("f"));
    let stop = dir.path().join("stop");
    let mut manifest = String::from("product = \"e2e\"\n");
    for n in 0..4 {
        manifest.push_str(&blocking_job(&format!("l{n}"), "linux", &stop));
    }
    for n in 0..3 {
        manifest.push_str(&blocking_job(&format!("g{n}"), "gpu", &stop));
    }
    submit_manifest(&coord, &manifest);

    // Two linux jobs fill the factory's slots; two wait beside the three gpu jobs.
    let mut answer = Value::Null;
    wait_for(Duration::from_secs(30), "two linux jobs running", || {
        answer = get(&coord, "/v1/autoscale");
        shape(&answer, &["linux"])["running"] == 2
    });
    assert_eq!(answer["rule"]["target_wait_seconds"], 300);
    assert_eq!(answer["rule"]["slots_per_factory"], Value::Null);
    let linux = shape(&answer, &["linux"]);
    assert_eq!(
        (
            &linux["queued"],
            &linux["factories_online"],
            &linux["slots"]
        ),
        (&2.into(), &1.into(), &2.into()),
        "{linux}"
    );
    // (2 queued + 2 running) / 2 slots of the one linux factory.
    assert_eq!(linux["slots_per_factory"], 2);
    assert_eq!(
        (&linux["desired_factories"], &linux["reason"]),
        (&2.into(), &"demand".into())
    );
    let gpu = shape(&answer, &["gpu"]);
    assert_eq!(
        (&gpu["queued"], &gpu["running"], &gpu["factories_online"]),
        (&3.into(), &0.into(), &0.into()),
        "{gpu}"
    );
    // No gpu factory to measure: one slot each by default.
    assert_eq!(
        (&gpu["slots_per_factory"], &gpu["desired_factories"]),
        (&1.into(), &3.into())
    );

    // Parameters: 4 slots a factory, and no wait tolerated, so the linux jobs that have been
    // waiting ask for one factory more than the one online.
    let tuned = get(
        &coord,
        "/v1/autoscale?capabilities=linux&slots_per_factory=4&target_wait_seconds=0",
    );
    let shapes = tuned["shapes"].as_array().unwrap();
    assert_eq!(shapes.len(), 1, "{tuned}");
    assert_eq!(
        (&shapes[0]["desired_factories"], &shapes[0]["reason"]),
        (&2.into(), &"waited".into()),
        "{tuned}"
    );
    assert_eq!(tuned["rule"]["slots_per_factory"], 4);

    // The KEDA form: one shape, flat; a shape nobody asked for answers zeros, not 404.
    let keda = get(&coord, "/v1/autoscale/keda?capabilities=linux");
    assert_eq!(
        (
            &keda["desired_factories"],
            &keda["queued"],
            &keda["running"]
        ),
        (&2.into(), &2.into(), &2.into()),
        "{keda}"
    );
    let idle = get(
        &coord,
        "/v1/autoscale/keda?capabilities=linux,arm&engine_class=claude",
    );
    assert_eq!(
        (
            &idle["desired_factories"],
            &idle["queued"],
            &idle["running"]
        ),
        (&0.into(), &0.into(), &0.into()),
        "{idle}"
    );

    // A viewer may read them; a caller without a token may not.
    let (viewer, _) = mint(&coord, "viewer", "scaler");
    let url = |path: &str| format!("{}{path}", coord.url);
    let (status, _) = call(
        "GET",
        &url("/v1/autoscale/keda?capabilities=gpu"),
        Some(&viewer),
        None,
    );
    assert_eq!(status, 200);
    expect_error(
        &call(
            "GET",
            &url("/v1/autoscale/keda?capabilities=gpu"),
            None,
            None,
        ),
        401,
        "unauthorized",
    );
    for (path, code) in [
        ("/v1/autoscale?slots_per_factory=0", "invalid_request"),
        ("/v1/autoscale?slots_per_factory=many", "malformed_request"),
        (
            "/v1/autoscale?target_wait_seconds=99999999",
            "invalid_request",
        ),
        ("/v1/autoscale?engine_class=claude", "invalid_request"),
        ("/v1/autoscale?capabilities=gpu,,linux", "invalid_request"),
        ("/v1/autoscale?shape=gpu", "malformed_request"),
        ("/v1/autoscale/keda", "invalid_request"),
    ] {
        expect_error(&call("GET", &url(path), Some(&viewer), None), 400, code);
    }

    // The CLI: a row per shape, and the API's answer with -o json.
    let table = cli_ok(&coord, &["autoscale"]);
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("gpu ")).collect();
    assert_eq!(rows.len(), 1, "{table}");
    assert!(rows[0].split_whitespace().any(|c| c == "3"), "{table}");
    assert!(
        table.contains("CAPABILITIES") && table.contains("DESIRED"),
        "{table}"
    );
    let json: Value = serde_json::from_str(&cli_ok(
        &coord,
        &["autoscale", "--capabilities", "gpu", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(json["shapes"][0]["desired_factories"], 3, "{json}");
    let (ok, _, err) = cli(&coord, &["autoscale", "--slots-per-factory", "0"]);
    assert!(!ok && err.contains("invalid_request"), "{err}");

    // Once the linux jobs end, the linux shape goes idle: zeros, not a 404.
    std::fs::write(&stop, "").unwrap();
    wait_for(Duration::from_secs(30), "the linux shape idle", || {
        let k = get(&coord, "/v1/autoscale/keda?capabilities=linux");
        k["desired_factories"] == 0 && k["running"] == 0 && k["queued"] == 0
    });
}

#[test]
fn probe_passes_on_a_live_nodes_health_and_fails_on_a_dead_port_or_another_status() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);
    let healthz = format!("{}/healthz", coord.url);
    let (ok, out, err) = cli(&coord, &["probe", &healthz]);
    assert!(ok, "{err}");
    assert!(out.contains("ok"), "{out}");
    let readyz = format!("{}/readyz", coord.url);
    wait_for(Duration::from_secs(10), "readyz to pass", || {
        cli(&coord, &["probe", &readyz]).0
    });
    let (ok, _, err) = cli(&coord, &["probe", &format!("{}/no-such-page", coord.url)]);
    assert!(!ok && err.contains("404"), "{err}");
    let dead = format!("http://127.0.0.1:{}/healthz", free_port());
    let (ok, _, err) = cli(&coord, &["probe", &dead]);
    assert!(!ok && err.contains("did not answer"), "{err}");
}

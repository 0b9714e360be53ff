//! Two coordinator nodes on one three-member etcd cluster (real processes): work submitted on
//! one node reaches claims waiting on the other through a store watch, and a factory fails over
//! between nodes when one dies.

#![cfg(feature = "etcd")]

mod common;

use std::time::{Duration, Instant};

use common::*;
use gigafactory_storage::LocalEtcdCluster;

fn two_nodes(dir: &std::path::Path, etcd: &LocalEtcdCluster) -> (Coordinator, Coordinator) {
    let store = etcd.store_url("e2e-cluster/");
    let a = Coordinator::start_on(&dir.join("a"), &store, 3_000, None);
    let b = Coordinator::start_on(&dir.join("b"), &store, 3_000, Some(&a.admin));
    (a, b)
}

#[test]
fn a_claim_waiting_on_one_node_wakes_for_a_job_submitted_on_another() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let etcd = LocalEtcdCluster::start(3).expect("etcd cluster");
    let (a, b) = two_nodes(dir.path(), &etcd);
    let (status, f) = call(
        "POST",
        &format!("{}/v1/factories/enroll", a.url),
        Some(&enrollment_token(&a)),
        Some(r#"{"name": "f", "os": "linux", "arch": "x86_64", "slots": 1}"#),
    );
    assert_eq!(status, 200, "{f}");
    let token = f["token"].as_str().unwrap().to_string();
    let claim_url = format!("{}/v1/claims", a.url);
    let waiting = std::thread::spawn(move || {
        let started = Instant::now();
        let got = call(
            "POST",
            &claim_url,
            Some(&token),
            Some(r#"{"max_jobs": 1, "wait_ms": 20000}"#),
        );
        (got, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    let (status, made) = post(
        &b,
        "/v1/jobs",
        r#"{"key": "x", "title": "x", "product": "e2e", "payload": {"command": "true"}}"#,
    );
    assert_eq!(status, 201, "{made}");
    let ((status, claimed), waited) = waiting.join().unwrap();
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(claimed["jobs"][0]["job_id"], made["id"]);
    assert!(
        waited < Duration::from_secs(10),
        "woken by the submit, not by the long-poll's end ({waited:?})"
    );
}

#[test]
fn a_factory_fails_over_to_another_node_when_its_node_dies() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let etcd = LocalEtcdCluster::start(3).expect("etcd cluster");
    let (mut a, b) = two_nodes(dir.path(), &etcd);
    let urls = format!("{},{}", a.url, b.url);
    let _f = Factory::start_with_urls(&a, &urls, "f", 2, "linux", &dir.path().join("f"));
    let mut manifest = String::from("product = \"e2e\"\n");
    for n in 0..10 {
        manifest.push_str(&format!(
            "[[jobs]]\nkey = \"j{n}\"\ntitle = \"j{n}\"\ncommand = \"sleep 0.3\"\n"
        ));
    }
    let ids = submit_manifest(&b, &manifest);
    wait_for(Duration::from_secs(60), "a first job to succeed", || {
        ids.iter().any(|(_, id)| state(&b, id) == "succeeded")
    });
    a.kill();
    wait_for(
        Duration::from_secs(120),
        "every job to succeed through node b",
        || ids.iter().all(|(_, id)| state(&b, id) == "succeeded"),
    );
}

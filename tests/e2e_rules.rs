//! Rules a real coordinator process keeps, driven through its HTTP API with a factory played
//! by the test: output past a job's log bound is refused with a clear error and the timeline
//! says it was cut; a parent that ends badly cancels its descendants in the same transaction,
//! and a retry of the parent brings them back.

mod common;

use common::*;
use serde_json::{Value, json};

fn kinds(coord: &Coordinator, id: &str) -> Vec<String> {
    events(coord, id)
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_log_past_the_per_job_limit_is_refused_with_413_and_the_timeline_says_it_was_cut() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 60_000);
    let factory = FakeFactory::enroll(&coord);
    let body =
        r#"{"key": "noisy", "title": "noisy", "product": "e2e", "payload": {"command": "yes"}}"#;
    assert_eq!(post(&coord, "/v1/jobs", body).0, 201);
    let (id, epoch) = factory.claim(&coord);

    // Chunks stored as 64 KiB each (the text and nine bytes of framing: its stream and the
    // time it was kept): the 16 MiB bound holds 256 of them, and the 257th no longer fits.
    let data = "x".repeat(64 * 1024 - 9);
    let mut refused = None;
    for seq in 0..300u64 {
        let chunk = json!({"seq": seq, "stream": "stdout", "data": data});
        let (status, v) = factory.write(&coord, &id, "logs", epoch, chunk);
        if status != 200 {
            refused = Some((seq, status, v));
            break;
        }
    }
    let (seq, status, v) = refused.expect("the log bound refused a chunk");
    assert_eq!(
        (status, v["error"].as_str()),
        (413, Some("log_limit_exceeded")),
        "{v}"
    );
    assert_eq!(seq, 256, "every chunk that fit was kept");
    assert!(v["message"].as_str().unwrap().contains("limit"), "{v}");

    // Refused again, without a second note; the job itself goes on and completes.
    let chunk = json!({"seq": seq + 1, "stream": "stderr", "data": "more"});
    assert_eq!(factory.write(&coord, &id, "logs", epoch, chunk).0, 413);
    let cut: Vec<Value> = events(&coord, &id)
        .into_iter()
        .filter(|e| e["kind"] == "output_cut")
        .collect();
    assert_eq!(cut.len(), 1, "one note per attempt");
    assert!(cut[0]["detail"].as_str().unwrap().contains("16 MiB"));
    assert_eq!(all_logs(&coord, &id).len(), 256);
    let (status, v) = factory.write(&coord, &id, "complete", epoch, json!({}));
    assert_eq!(
        (status, v["state"].as_str()),
        (200, Some("succeeded")),
        "{v}"
    );
}

#[test]
fn a_parents_bad_end_cancels_its_descendants_and_its_retry_brings_them_back() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 60_000);
    let factory = FakeFactory::enroll(&coord);
    // a → b → c, and d waits for both a and e.
    let manifest = r#"{"jobs": [
        {"key": "a", "title": "a", "product": "e2e", "command": "a", "max_attempts": 1},
        {"key": "e", "title": "e", "product": "e2e", "command": "e", "priority": 1},
        {"key": "b", "title": "b", "product": "e2e", "command": "b", "deps": ["a"]},
        {"key": "c", "title": "c", "product": "e2e", "command": "c", "deps": ["b"]},
        {"key": "d", "title": "d", "product": "e2e", "command": "d", "deps": ["a", "e"]}
    ]}"#;
    let ids: std::collections::HashMap<String, String> =
        submit_manifest(&coord, manifest).into_iter().collect();
    let (a, epoch) = factory.claim(&coord);
    assert_eq!(a, ids["a"], "a goes first: it has the higher priority");
    let fail = json!({"error": "boom", "retryable": false});
    let (status, v) = factory.write(&coord, &a, "fail", epoch, fail);
    assert_eq!((status, v["state"].as_str()), (200, Some("dead")), "{v}");

    // Every descendant ended in the same transaction, naming the parent.
    for k in ["b", "c", "d"] {
        let j = job(&coord, &ids[k]);
        assert_eq!(j["state"], "cancelled", "{k}: {j}");
        assert!(
            kinds(&coord, &ids[k]).contains(&"parent_ended".to_string()),
            "{k}"
        );
    }
    let b = job(&coord, &ids["b"]);
    assert_eq!(b["last_error"], format!("parent {a} dead"));
    let c = job(&coord, &ids["c"]);
    assert_eq!(c["last_error"], format!("parent {} cancelled", ids["b"]));
    // A cancelled child cannot be retried on its own while its parent stays dead.
    let (status, v) = post(
        &coord,
        &format!("/v1/jobs/{}/actions/retry", ids["b"]),
        "{}",
    );
    assert_eq!(
        (status, v["error"].as_str()),
        (409, Some("parent_ended")),
        "{v}"
    );

    // Retrying the parent brings the whole subtree back to waiting.
    let (status, v) = post(&coord, &format!("/v1/jobs/{a}/actions/retry"), "{}");
    assert_eq!(status, 200, "{v}");
    for k in ["b", "c", "d"] {
        assert_eq!(state(&coord, &ids[k]), "pending", "{k}");
        assert!(
            kinds(&coord, &ids[k]).contains(&"parent_revived".to_string()),
            "{k}"
        );
    }
    // And when it succeeds, its child runs.
    let (again, epoch) = factory.claim(&coord);
    assert_eq!(again, a);
    assert_eq!(
        factory.write(&coord, &a, "complete", epoch, json!({})).0,
        200
    );
    assert_eq!(state(&coord, &ids["b"]), "queued");
    assert_eq!(state(&coord, &ids["d"]), "pending", "d still waits for e");
}

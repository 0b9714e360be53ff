//! The API's contract at its edges, against a real coordinator process: a factory reusing
//! another's request id meets the fence, not the other's answer; an idempotency key reused
//! with another spec is a 409 naming the conflict (a manifest lists every one and keeps
//! nothing); bad bytes, bad JSON, bad lengths and bad methods get the JSON error body and
//! change nothing; what a factory says it is and the paths and checkpoint it reports are
//! bounded; a page of a job's output is bounded in bytes, and so is what a slow log follower
//! holds.

mod common;

use std::io::{Read, Write};
use std::process::Command;

use common::*;
use serde_json::{Value, json};

/// One HTTP call with raw bytes as the body and the content type given.
fn call_bytes(
    method: &str,
    url: &str,
    token: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, Value) {
    let mut cmd = Command::new("curl");
    cmd.args(["-X", method])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", &format!("content-type: {content_type}")])
        .args(["--data-binary", "@-", url]);
    curl(cmd, body)
}

/// A request whose `Content-Length` promises more than is sent: the status and JSON body.
fn call_cut_short(coord: &Coordinator, path: &str) -> (u16, Value) {
    let addr = coord.url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\nconnection: close\r\n\r\n{{\"key\"",
        coord.admin
    );
    s.write_all(head.as_bytes()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn jobs_count(coord: &Coordinator) -> usize {
    get(coord, "/v1/jobs?limit=500")["jobs"]
        .as_array()
        .unwrap()
        .len()
}

fn submit(coord: &Coordinator, key: &str) -> String {
    let body = json!({"key": key, "title": key, "product": "e2e", "payload": {"command": "true"}});
    let (status, v) = post(coord, "/v1/jobs", &body.to_string());
    assert_eq!(status, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

#[test]
fn a_factory_reusing_another_factorys_request_id_meets_the_fence_not_its_answer() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 60_000);
    let a = FakeFactory::enroll(&coord);
    let b = FakeFactory::enroll(&coord);

    // While A holds the lease: B's renew under A's request id is not A's answer.
    let running = submit(&coord, "running");
    let (id, epoch) = a.claim(&coord);
    assert_eq!(id, running);
    let first = a.write_as(&coord, &id, "renew", epoch, "shared-renew", json!({}));
    assert_eq!(first.0, 200, "{}", first.1);
    let stolen = b.write_as(&coord, &id, "renew", epoch, "shared-renew", json!({}));
    expect_error(&stolen, 403, "not_lease_holder");
    // A's own retry gets its first answer again, word for word.
    let again = a.write_as(&coord, &id, "renew", epoch, "shared-renew", json!({}));
    assert_eq!(again, first, "a retry is answered as the first was");

    // After A completed: B's complete under A's request id is fenced, not "succeeded".
    let done = a.write_as(&coord, &id, "complete", epoch, "shared-end", json!({}));
    assert_eq!((done.0, done.1["state"].as_str()), (200, Some("succeeded")));
    let stolen = b.write_as(&coord, &id, "complete", epoch, "shared-end", json!({}));
    expect_error(&stolen, 409, "fenced");
    let again = a.write_as(&coord, &id, "complete", epoch, "shared-end", json!({}));
    assert_eq!(again, done, "A's retry of its end gets its answer");
    let completes = events(&coord, &id)
        .iter()
        .filter(|e| e["kind"] == "complete")
        .count();
    assert_eq!(completes, 1, "nothing applied twice");
}

#[test]
fn an_idempotency_key_reused_with_another_spec_is_409_and_a_manifest_lists_every_conflict() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 60_000);
    let spec = |title: &str| {
        json!({"key": "j", "title": title, "product": "e2e", "payload": {"command": "true"},
               "idempotency_key": "deploy-42"})
        .to_string()
    };
    let (status, made) = post(&coord, "/v1/jobs", &spec("deploy"));
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_str().unwrap();
    // The same spec again: the same job, 200.
    let (status, again) = post(&coord, "/v1/jobs", &spec("deploy"));
    assert_eq!((status, again["id"].as_str()), (200, Some(id)), "{again}");
    // Another spec under the key: 409, naming the key and the job that has it.
    let conflict = post(&coord, "/v1/jobs", &spec("deploy something else"));
    expect_error(&conflict, 409, "idempotency_conflict");
    let message = conflict.1["message"].as_str().unwrap();
    assert!(
        message.contains("deploy-42") && message.contains(id),
        "{message}"
    );
    assert_eq!(jobs_count(&coord), 1);

    let manifest = |suffix: &str| {
        format!(
            "product = \"e2e\"\n\
             [[jobs]]\nkey = \"a\"\ntitle = \"a{suffix}\"\ncommand = \"true\"\nidempotency_key = \"ka\"\n\
             [[jobs]]\nkey = \"b\"\ntitle = \"b{suffix}\"\ncommand = \"true\"\nidempotency_key = \"kb\"\ndeps = [\"a\"]\n\
             [[jobs]]\nkey = \"c\"\ntitle = \"c\"\ncommand = \"true\"\n"
        )
    };
    let first = submit_manifest(&coord, &manifest(""));
    assert_eq!(jobs_count(&coord), 4);
    // Repeated as it was: the keyed jobs are the same ones (c, without a key, is made again).
    let repeat = submit_manifest(&coord, &manifest(""));
    assert_eq!((&repeat[0], &repeat[1]), (&first[0], &first[1]));
    assert_eq!(jobs_count(&coord), 5);
    // Changed under the same keys: refused whole, every conflict listed with its job.
    let count = jobs_count(&coord);
    let refused = post(&coord, "/v1/manifests", &manifest(" v2"));
    expect_error(&refused, 409, "idempotency_conflict");
    let details: Vec<&str> = refused.1["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(details.len(), 2, "{details:?}");
    assert!(details[0].starts_with("jobs[key=a]") && details[0].contains(&first[0].1));
    assert!(details[1].starts_with("jobs[key=b]") && details[1].contains(&first[1].1));
    assert_eq!(
        jobs_count(&coord),
        count,
        "nothing of a refused manifest is kept"
    );
    // Two jobs of one manifest under one key: both named, nothing kept.
    let twice = "product = \"e2e\"\n\
                 [[jobs]]\nkey = \"x\"\ntitle = \"x\"\ncommand = \"true\"\nidempotency_key = \"kx\"\n\
                 [[jobs]]\nkey = \"y\"\ntitle = \"y\"\ncommand = \"true\"\nidempotency_key = \"kx\"\n";
    let refused = post(&coord, "/v1/manifests", twice);
    expect_error(&refused, 422, "invalid_manifest");
    assert!(
        refused.1["details"][0]
            .as_str()
            .unwrap()
            .starts_with("jobs[1].idempotency_key"),
        "{}",
        refused.1
    );
    assert_eq!(jobs_count(&coord), count);
}

#[test]
fn bad_bytes_lengths_methods_and_shapes_get_the_json_error_body_and_change_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 60_000);
    let url = |p: &str| format!("{}{p}", coord.url);
    let admin = coord.admin.as_str();
    let job = submit(&coord, "kept");

    let bad_utf8 = b"product = \"e2e\"\n[[jobs]]\nkey = \"\xff\xfe\"\n";
    let got = call_bytes(
        "POST",
        &url("/v1/manifests"),
        admin,
        "application/toml",
        bad_utf8,
    );
    expect_error(&got, 400, "malformed_request");
    let got = call_bytes(
        "POST",
        &url("/v1/jobs"),
        admin,
        "application/json",
        b"{\"key\": \"\xff\"}",
    );
    expect_error(&got, 400, "malformed_request");
    let got = call_bytes("POST", &url("/v1/jobs"), admin, "text/plain", b"{}");
    expect_error(&got, 415, "unsupported_media_type");
    expect_error(
        &call_cut_short(&coord, "/v1/jobs"),
        400,
        "malformed_request",
    );
    let huge = vec![b'#'; 9 * 1024 * 1024];
    let cancel = format!("/v1/jobs/{job}/actions/cancel");
    for (path, media) in [
        ("/v1/manifests", "application/toml"),
        (cancel.as_str(), "application/json"),
    ] {
        let got = call_bytes("POST", &url(path), admin, media, &huge);
        expect_error(&got, 413, "payload_too_large");
    }
    expect_error(
        &call("GET", &url("/v1/jobs/%FF%FE"), Some(admin), None),
        400,
        "malformed_request",
    );
    expect_error(
        &call("DELETE", &url("/v1/jobs"), Some(admin), None),
        405,
        "method_not_allowed",
    );
    assert_eq!(state(&coord, &job), "queued", "nothing changed");
    assert_eq!(jobs_count(&coord), 1);

    // Weights: any body but one JSON object is refused, and the weights stay.
    let weights = "/v1/products/e2e/weights";
    assert_eq!(
        call("PUT", &url(weights), Some(admin), Some(r#"{"age": 2.0}"#)).0,
        200
    );
    for body in ["[]", "[2.0]", "1", "\"age\"", "null"] {
        let got = call("PUT", &url(weights), Some(admin), Some(body));
        expect_error(&got, 400, "malformed_request");
    }
    assert_eq!(get(&coord, weights)["effective"]["age"], 2.0);

    // What a factory says it is: a strict charset for os and arch, a job's rule for
    // capabilities.
    for (os, arch, caps) in [
        ("Linux OS", "x86_64", json!([])),
        ("linux", "x86_64; rm -rf", json!([])),
        ("linux", "x86_64", json!(["<script>"])),
    ] {
        let body = json!({"name": "f", "os": os, "arch": arch, "slots": 1, "capabilities": caps});
        let got = call(
            "POST",
            &url("/v1/factories/enroll"),
            Some(&enrollment_token(&coord)),
            Some(&body.to_string()),
        );
        expect_error(&got, 400, "invalid_request");
    }
    assert_eq!(get(&coord, "/v1/factories").as_array().unwrap().len(), 0);

    // Changed paths: one past the bound is refused saying why; twenty at the bound outside the
    // scope make a warning the job's end still fits.
    let scoped = json!({"key": "s", "title": "s", "product": "e2e", "payload": {"command": "true"},
                        "allowed_scope": ["src/**"]});
    post(&coord, &format!("/v1/jobs/{job}/actions/cancel"), "");
    let scoped = post(&coord, "/v1/jobs", &scoped.to_string()).1["id"]
        .as_str()
        .unwrap()
        .to_string();
    let factory = FakeFactory::enroll(&coord);
    let (id, epoch) = factory.claim(&coord);
    assert_eq!(id, scoped);
    let long = json!({"changed_paths": ["x".repeat(1025)]});
    let refused = factory.write(&coord, &id, "complete", epoch, long);
    expect_error(&refused, 400, "invalid_request");
    assert!(
        refused.1["message"].as_str().unwrap().contains("can end"),
        "{}",
        refused.1
    );
    let checkpoint = json!({"checkpoint": "c".repeat(4097)});
    let refused = factory.write(&coord, &id, "release", epoch, checkpoint);
    expect_error(&refused, 400, "invalid_request");
    let paths: Vec<String> = (0..20)
        .map(|i| format!("{i:02}{}", "y".repeat(1022)))
        .collect();
    let done = factory.write(
        &coord,
        &id,
        "complete",
        epoch,
        json!({"changed_paths": paths}),
    );
    assert_eq!(
        (done.0, done.1["state"].as_str()),
        (200, Some("succeeded")),
        "{}",
        done.1
    );
    assert!(
        events(&coord, &id)
            .iter()
            .any(|e| e["kind"] == "scope_warning")
    );
}

/// A job leased to a factory the test plays, with `chunks` chunks of 64 KiB of output: its id.
fn noisy_job(coord: &Coordinator, chunks: u64) -> String {
    let factory = FakeFactory::enroll(coord);
    submit(coord, "noisy");
    let (id, epoch) = factory.claim(coord);
    let data = "z".repeat(64 * 1024 - 1);
    for seq in 0..chunks {
        let chunk = json!({"seq": seq, "stream": "stdout", "data": data});
        assert_eq!(factory.write(coord, &id, "logs", epoch, chunk).0, 200);
    }
    id
}

#[test]
fn a_page_of_a_jobs_output_is_bounded_in_bytes_and_the_next_page_goes_on() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 60_000);
    let id = noisy_job(&coord, 40);
    let mut seen = Vec::new();
    let mut after = String::new();
    while seen.len() < 40 {
        let page = get(&coord, &format!("/v1/jobs/{id}/logs{after}"));
        let lines = page.as_array().unwrap();
        let bytes: usize = lines
            .iter()
            .map(|l| l["data"].as_str().unwrap().len())
            .sum();
        assert!(
            !lines.is_empty() && bytes <= 1024 * 1024,
            "{} lines, {bytes} bytes",
            lines.len()
        );
        let last = lines.last().unwrap();
        after = format!("?after={}:{}", last["attempt"], last["seq"]);
        seen.extend(lines.iter().map(|l| l["seq"].as_u64().unwrap()));
    }
    assert_eq!(
        seen,
        (0..40).collect::<Vec<u64>>(),
        "every line once, in order"
    );
}

#[test]
fn slow_log_followers_each_hold_a_bounded_page_not_the_whole_log() {
    const FOLLOWERS: usize = 20;
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 60_000);
    // 12 MiB of output.
    let id = noisy_job(&coord, 192);
    let before = coord.rss_bytes();
    // Followers that read 1 KiB a second: the node cannot send them what it read for them.
    let outputs = tempfile::tempdir().unwrap();
    let mut followers: Vec<std::process::Child> = (0..FOLLOWERS)
        .map(|n| {
            Command::new("curl")
                .args(["-s", "-N", "--limit-rate", "1k", "-o"])
                .arg(outputs.path().join(n.to_string()))
                .args(["-H", &format!("Authorization: Bearer {}", coord.admin)])
                .args(["-H", "Accept: text/event-stream"])
                .arg(format!("{}/v1/jobs/{id}/logs", coord.url))
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("curl")
        })
        .collect();
    wait_for(
        std::time::Duration::from_secs(30),
        "every follower to get its first lines",
        || {
            (0..FOLLOWERS).all(|n| {
                std::fs::metadata(outputs.path().join(n.to_string())).is_ok_and(|m| m.len() > 0)
            })
        },
    );
    let grown = coord.rss_bytes().saturating_sub(before);
    for f in &mut followers {
        let _ = f.kill();
        let _ = f.wait();
    }
    // Each follower holds at most a 256 KiB page (and the socket's buffers): far less than
    // the 12 MiB log each would hold if it read the whole log at once.
    assert!(
        grown < 64 * 1024 * 1024,
        "{FOLLOWERS} slow followers grew the node by {} MiB",
        grown >> 20
    );
}

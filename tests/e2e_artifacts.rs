//! Artifacts through a real coordinator process, its HTTP API and its artifacts directory,
//! with a factory played by the test: a file of several MiB round-trips byte for byte; an
//! upload under a stale epoch is refused and leaves nothing on disk; the per-file and per-job
//! limits answer 413 with the limit, with or without a length given up front, and keep
//! nothing; bad input gets a clear error.

mod common;

use std::path::Path;

use common::artifacts::{download, noise, put_bytes, sha256, upload};
use common::*;
use serde_json::{Value, json};

const MIB: usize = 1 << 20;

const CONFIG: &str = r#"
[artifacts]
file_max_bytes = 8388608
job_max_bytes = 10485760
"#;

fn submit(coord: &Coordinator, key: &str) -> String {
    let body = json!({"key": key, "title": key, "product": "ops", "payload": {"command": "x"}});
    let (status, v) = post(coord, "/v1/jobs", &body.to_string());
    assert_eq!(status, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

fn expect(got: (u16, Value), status: u16, code: &str) -> Value {
    assert_eq!(
        (got.0, got.1["error"].as_str()),
        (status, Some(code)),
        "{}",
        got.1
    );
    got.1
}

/// Every file under `dir`, relative to it.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn listed(coord: &Coordinator, id: &str) -> Vec<Value> {
    get(coord, &format!("/v1/jobs/{id}/artifacts"))
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_file_of_several_mib_round_trips_and_a_stale_epoch_leaves_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start_with_config(dir.path(), 60_000, CONFIG);
    let blobs = dir.path().join("store").join("artifacts");
    let factory = FakeFactory::enroll(&coord);
    let id = submit(&coord, "review");
    let (_, epoch) = factory.claim(&coord);

    let bytes = noise(6 * MIB + 123, 7);
    let sha = sha256(&bytes);
    let (status, v) = upload(
        &coord.url,
        &factory.token,
        &id,
        "build.tar",
        epoch,
        "file",
        &bytes,
        false,
    );
    assert_eq!(status, 200, "{v}");
    let diff = b"--- a/src/x.rs\n+++ b/src/x.rs\n@@ -1 +1 @@\n-a\n+b\n";
    let (status, v) = upload(
        &coord.url,
        &factory.token,
        &id,
        "fix.patch",
        epoch,
        "patch",
        diff,
        true,
    );
    assert_eq!(status, 200, "{v}");

    let all = listed(&coord, &id);
    assert_eq!(all.len(), 2, "{all:?}");
    let tar = all.iter().find(|a| a["name"] == "build.tar").unwrap();
    assert_eq!(tar["size"], bytes.len() as u64);
    assert_eq!(tar["sha256"], sha.as_str());
    assert_eq!(
        (tar["attempt"].as_u64(), tar["epoch"].as_u64()),
        (Some(1), Some(epoch))
    );
    let (status, headers, body) = download(
        &coord.url,
        &coord.admin,
        &format!("/v1/jobs/{id}/artifacts/1/build.tar"),
    );
    assert_eq!(status, 200);
    assert!(body == bytes, "the bytes read back are the bytes sent");
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert!(header("content-disposition").starts_with("attachment"));
    assert_eq!(header("x-content-type-options"), "nosniff");
    let (_, headers, body) = download(
        &coord.url,
        &coord.admin,
        &format!("/v1/jobs/{id}/artifacts/1/fix.patch"),
    );
    assert_eq!(body, diff);
    assert!(headers.contains(&("content-type".into(), "text/x-diff".into())));
    let kept_on_disk = files(&blobs);
    assert_eq!(kept_on_disk.len(), 2, "{kept_on_disk:?}");
    assert!(kept_on_disk.contains(&format!("sha256/{}/{sha}", &sha[..2])));

    // The job is requeued and leased again: the old epoch's upload is refused, nothing kept.
    let (status, v) = post(&coord, &format!("/v1/jobs/{id}/actions/requeue"), "{}");
    assert_eq!(status, 200, "{v}");
    let (_, current) = factory.claim(&coord);
    let late = noise(MIB, 9);
    let refused = upload(
        &coord.url,
        &factory.token,
        &id,
        "late.bin",
        epoch,
        "file",
        &late,
        false,
    );
    let v = expect(refused, 409, "fenced");
    assert_eq!(v["current_epoch"], current);
    assert_eq!(listed(&coord, &id).len(), 2);
    assert_eq!(
        files(&blobs),
        kept_on_disk,
        "nothing of the stale upload on disk"
    );
    let timeline = events(&coord, &id);
    let noted = timeline.iter().filter(|e| e["kind"] == "artifact").count();
    assert_eq!(noted, 2, "one artifact event per file kept");
}

#[test]
fn limits_answer_413_with_the_limit_and_bad_input_is_refused_and_nothing_is_kept() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start_with_config(dir.path(), 60_000, CONFIG);
    let blobs = dir.path().join("store").join("artifacts");
    let factory = FakeFactory::enroll(&coord);
    let id = submit(&coord, "limits");
    let (_, epoch) = factory.claim(&coord);
    let up = |name: &str, bytes: &[u8], chunked: bool| {
        upload(
            &coord.url,
            &factory.token,
            &id,
            name,
            epoch,
            "file",
            bytes,
            chunked,
        )
    };

    let big = noise(8 * MIB + 1, 3);
    for chunked in [false, true] {
        let v = expect(up("big.bin", &big, chunked), 413, "artifact_limit_exceeded");
        assert!(
            v["message"].as_str().unwrap().contains("8388608 bytes"),
            "{v}"
        );
    }
    assert_eq!(up("one.bin", &noise(6 * MIB, 4), false).0, 200);
    let v = expect(
        up("two.bin", &noise(5 * MIB, 5), true),
        413,
        "artifact_limit_exceeded",
    );
    assert!(
        v["message"].as_str().unwrap().contains("job's artifacts"),
        "{v}"
    );
    assert_eq!(listed(&coord, &id).len(), 1);
    let on_disk = files(&blobs);
    assert_eq!(on_disk.len(), 1, "only the kept file: {on_disk:?}");

    // A digest that is not the body's, a bad name, a bad kind, a viewer's token, no such job.
    let bytes = b"hello";
    let wrong = format!(
        "{}/v1/jobs/{id}/artifacts/x.txt?epoch={epoch}&request_id=w&sha256={}",
        coord.url,
        sha256(b"other")
    );
    let (status, v) = put_bytes(&wrong, &factory.token, b"hello", false);
    expect((status, v), 400, "invalid_request");
    expect(up("a%2Fb", bytes, false), 400, "invalid_request");
    let bad_kind = format!(
        "{}/v1/jobs/{id}/artifacts/x.txt?epoch={epoch}&request_id=k&kind=zip&sha256={}",
        coord.url,
        sha256(bytes)
    );
    let (status, v) = put_bytes(&bad_kind, &factory.token, b"hello", false);
    expect((status, v), 400, "malformed_request");
    let (status, v) = upload(
        &coord.url,
        &coord.admin,
        &id,
        "x.txt",
        epoch,
        "file",
        bytes,
        false,
    );
    expect((status, v), 403, "forbidden");
    let missing = "00000000-0000-0000-0000-000000000000";
    let (status, _, _) = download(
        &coord.url,
        &coord.admin,
        &format!("/v1/jobs/{id}/artifacts/1/nope"),
    );
    assert_eq!(status, 404);
    let (status, v) = call(
        "GET",
        &format!("{}/v1/jobs/{missing}/artifacts", coord.url),
        Some(&coord.admin),
        None,
    );
    expect((status, v), 404, "not_found");
    assert_eq!(listed(&coord, &id).len(), 1);
    assert_eq!(
        files(&blobs),
        on_disk,
        "nothing of the refused uploads kept"
    );
}

#[test]
fn the_cli_lists_and_downloads_artifacts_and_never_overwrites_a_file() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start_with_config(&dir.path().join("node"), 60_000, CONFIG);
    let factory = FakeFactory::enroll(&coord);
    let id = submit(&coord, "cli");
    let (_, epoch) = factory.claim(&coord);
    let bytes = noise(2 * MIB, 11);
    let (status, v) = upload(
        &coord.url,
        &factory.token,
        &id,
        "out.bin",
        epoch,
        "file",
        &bytes,
        false,
    );
    assert_eq!(status, 200, "{v}");

    let listed = cli_ok(&coord, &["jobs", "artifacts", &id]);
    assert!(
        listed.starts_with("ATTEMPT")
            && listed.lines().any(|l| l.trim_start().starts_with("1 ")
                && l.contains("2.0 MiB")
                && l.contains("out.bin")),
        "{listed}"
    );
    let target = dir.path().join("saved.bin");
    let target_arg = target.to_str().unwrap();
    cli_ok(
        &coord,
        &["jobs", "download", &id, "out.bin", "-o", target_arg],
    );
    assert!(
        std::fs::read(&target).unwrap() == bytes,
        "the file saved is the file uploaded"
    );
    let (ok, _, err) = cli(
        &coord,
        &["jobs", "download", &id, "out.bin", "-o", target_arg],
    );
    assert!(!ok && err.contains("must not exist"), "{err}");
    let (ok, _, err) = cli(
        &coord,
        &["jobs", "download", &id, "out.bin", "--attempt", "2"],
    );
    assert!(
        !ok && err.contains("no artifact \"out.bin\"") && err.contains("out.bin (attempt 1)"),
        "{err}"
    );
}

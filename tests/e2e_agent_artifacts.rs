//! Artifacts from inside a job to the coordinator, through real processes: the job saves a
//! file with `gigafactory job artifact` (a copy as it was then, uploaded while the job still
//! runs) and a link, its manifest's `artifacts` globs collect what it left in its workspace at
//! its end (same file names told apart by their paths, a symbolic link refused), and each
//! downloads byte for byte. A file past the coordinator's limit is dropped with a note in the
//! job's output and the job still succeeds. Bad input to the command changes nothing.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::artifacts::{download, sha256};
use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(40);

/// Submits one job running `script` (written beside the test's files), with `artifacts`
/// globs.
fn submit_script(coord: &Coordinator, dir: &Path, key: &str, script: &str, globs: &str) -> String {
    let path = dir.join(format!("{key}.sh"));
    std::fs::write(&path, script).unwrap();
    let manifest = format!(
        "product = \"e2e\"\n[[jobs]]\nkey = \"{key}\"\ntitle = \"{key}\"\ncommand = \"sh {}\"\nartifacts = {globs}\n",
        path.display()
    );
    submit_manifest(coord, &manifest).remove(0).1
}

/// The job's artifacts as (attempt/name, kind, size).
fn listed(coord: &Coordinator, id: &str) -> Vec<(String, String, u64)> {
    let mut out: Vec<_> = get(coord, &format!("/v1/jobs/{id}/artifacts"))
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                format!("{}/{}", a["attempt"], a["name"].as_str().unwrap()),
                a["kind"].as_str().unwrap().to_owned(),
                a["size"].as_u64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn bytes_of(coord: &Coordinator, id: &str, name: &str) -> Vec<u8> {
    let (status, _, body) = download(
        &coord.url,
        &coord.admin,
        &format!("/v1/jobs/{id}/artifacts/1/{name}"),
    );
    assert_eq!(status, 200, "{name}");
    body
}

fn output(coord: &Coordinator, id: &str) -> String {
    get(coord, &format!("/v1/jobs/{id}/logs"))
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["data"].as_str().unwrap_or_default())
        .collect()
}

#[test]
fn a_jobs_saved_files_and_globbed_outputs_reach_the_coordinator_and_download_byte_for_byte() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&dir.path().join("coordinator"), 5_000);
    let factory = Factory::start(&coord, "f", 1, "linux", &dir.path().join("f"));

    // The job saves its notes and a link, then waits for the test to see the notes uploaded
    // while it runs (the test creates `go`); then it leaves files for its globs.
    let script = r#"set -e
printf 'first draft\n' > notes.txt
gigafactory job artifact notes.txt
printf 'rewritten later\n' > notes.txt
gigafactory job artifact --url https://github.com/acme/app/pull/7 --name pull-request
while [ ! -e go ]; do sleep 0.05; done
mkdir -p out/sub
printf -- '--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new\n' > out/fix.patch
printf 'other\n' > out/sub/fix.patch
head -c 3000 /dev/urandom > out/data.bin
printf '# Report\n' > out/report.md
ln -s /etc/hostname out/host
"#;
    let id = submit_script(&coord, dir.path(), "saver", script, r#"["out/**"]"#);

    wait_for(WAIT, "the notes to be uploaded while the job runs", || {
        listed(&coord, &id)
            .iter()
            .any(|(n, _, _)| n == "1/notes.txt")
    });
    assert_eq!(state(&coord, &id), "running");
    let work = factory
        .workdir
        .join("jobs")
        .join(&id)
        .join("1")
        .join("work");
    std::fs::write(work.join("go"), "").unwrap();
    wait_for(WAIT, "the job to succeed", || {
        state(&coord, &id) == "succeeded"
    });

    let data = std::fs::read(work.join("out/data.bin")).unwrap();
    assert_eq!(
        listed(&coord, &id),
        [
            ("1/data.bin".into(), "file".into(), 3000),
            ("1/notes.txt".into(), "file".into(), 12),
            ("1/out_fix.patch".into(), "patch".into(), 38),
            ("1/out_sub_fix.patch".into(), "patch".into(), 6),
            ("1/pull-request".into(), "link".into(), 35),
            ("1/report.md".into(), "report".into(), 9),
        ]
    );
    // The copy as it was when saved, not the file as the job left it.
    assert_eq!(bytes_of(&coord, &id, "notes.txt"), b"first draft\n");
    assert_eq!(
        bytes_of(&coord, &id, "pull-request"),
        b"https://github.com/acme/app/pull/7\n"
    );
    assert_eq!(sha256(&bytes_of(&coord, &id, "data.bin")), sha256(&data));
    assert_eq!(bytes_of(&coord, &id, "out_sub_fix.patch"), b"other\n");
    let text = output(&coord, &id);
    assert!(
        text.contains("[gigafactory: out/host not saved: not a regular file"),
        "{text}"
    );

    // The CLI lists them and downloads one.
    let shown = cli_ok(&coord, &["jobs", "artifacts", &id]);
    assert!(
        shown.contains("out_fix.patch") && shown.contains("pull-request"),
        "{shown}"
    );
}

#[test]
fn a_file_past_the_coordinators_limit_is_dropped_with_a_note_and_the_job_still_succeeds() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let config = "[artifacts]\nfile_max_bytes = 4096\n";
    let coord = Coordinator::start_with_config(&dir.path().join("coordinator"), 5_000, config);
    let _factory = Factory::start(&coord, "f", 1, "linux", &dir.path().join("f"));
    let script = r#"set -e
head -c 5000 /dev/zero > big.bin
gigafactory job artifact big.bin
head -c 8388608 /dev/zero > huge.bin
gigafactory job artifact huge.bin
printf 'ok\n' > small.txt
gigafactory job artifact small.txt --kind report
"#;
    let id = submit_script(&coord, dir.path(), "limits", script, "[]");
    wait_for(WAIT, "the job to succeed", || {
        state(&coord, &id) == "succeeded"
    });
    assert_eq!(
        listed(&coord, &id),
        [("1/small.txt".into(), "report".into(), 3)]
    );
    let text = output(&coord, &id);
    assert!(
        text.contains("[gigafactory: artifact big.bin not saved: artifact_limit_exceeded:"),
        "{text}"
    );
    // Refused by its length before a byte is read: answered, not retried until the job ends.
    assert!(
        text.contains("[gigafactory: artifact huge.bin not saved: artifact_limit_exceeded:"),
        "{text}"
    );
}

#[test]
fn bad_input_to_job_artifact_is_refused_with_a_reason_and_saves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("control");
    std::fs::create_dir(&control).unwrap();
    let run = |args: &[&str], control_dir: Option<&Path>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gigafactory"));
        cmd.arg("job")
            .arg("artifact")
            .args(args)
            .current_dir(dir.path());
        cmd.env_remove("GF_CONTROL_DIR");
        if let Some(c) = control_dir {
            cmd.env("GF_CONTROL_DIR", c);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    std::fs::write(dir.path().join("a.txt"), "x").unwrap();
    let (ok, err) = run(&["a.txt"], None);
    assert!(!ok && err.contains("GF_CONTROL_DIR is not set"), "{err}");
    for (args, says) in [
        (vec!["missing.txt"], "missing.txt"),
        (
            vec!["--url", "javascript:alert(1)", "--name", "x"],
            "http:// or https://",
        ),
        (vec!["--url", "https://example.com/"], "needs a name"),
        (vec!["a.txt", "--name", "../a"], "must not contain"),
        (vec!["a.txt", "--kind", "zip"], "kind must be one of"),
        (vec![], "required"),
    ] {
        let (ok, err) = run(&args, Some(&control));
        assert!(!ok && err.contains(says), "{args:?}: {err}");
    }
    let left: Vec<Value> = std::fs::read_dir(control.join("artifacts"))
        .map(|d| {
            d.flatten()
                .map(|e| Value::from(e.path().display().to_string()))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing saved: {left:?}");
}

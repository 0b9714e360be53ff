//! The CLI as an operator uses it, through real processes: `-o json` on every listing and show
//! command parses as JSON; piped output keeps its headers but has no colour codes and no epoch
//! milliseconds; a misspelt `--state` names the valid states and exits non-zero (and the API
//! refuses it too); `jobs logs -f` follows a job across a coordinator restart without losing
//! or repeating a line, keeps the job's stderr apart, and exits with the job's outcome, as
//! `submit --wait` does.

mod common;

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Submits `manifest` with the CLI (`submit` and more arguments): its exit status, stdout and
/// stderr.
fn submit(
    coord: &Coordinator,
    dir: &std::path::Path,
    manifest: &str,
    more: &[&str],
) -> (bool, String, String) {
    let file = dir.join(format!("manifest-{}.toml", manifest.len()));
    std::fs::write(&file, manifest).unwrap();
    let mut args = vec!["submit", file.to_str().unwrap()];
    args.extend_from_slice(more);
    cli(coord, &args)
}

/// The CLI with `args` as a child whose stdout and stderr go to files in `dir`.
fn spawn_cli(coord: &Coordinator, dir: &std::path::Path, args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .env("GIGAFACTORY_COORDINATOR", &coord.url)
        .env("GIGAFACTORY_TOKEN", &coord.admin)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("cli.out")).unwrap())
        .stderr(std::fs::File::create(dir.join("cli.err")).unwrap())
        .spawn()
        .unwrap()
}

fn wait_exit(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the CLI did not exit in {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_listing_and_show_prints_the_apis_answer_as_json_with_output_json() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&dir.path().join("coordinator"), 5_000);
    // No factory has `gpu`: the job stays queued, with a reason.
    let (ok, out, err) = submit(
        &coord,
        dir.path(),
        "product = \"e2e\"\n[[jobs]]\nkey = \"waits\"\ntitle = \"waits\"\ncapabilities = [\"gpu\"]\ncommand = \"true\"\n",
        &["-o", "json"],
    );
    assert!(ok, "{err}");
    let made: Value = serde_json::from_str(&out).unwrap();
    let id = made["jobs"][0][1].as_str().unwrap().to_owned();
    for args in [
        &[
            "budgets",
            "set",
            "e2e",
            "--product",
            "e2e",
            "--period",
            "month",
            "--limit-usd",
            "10",
        ][..],
        &["limits", "set", "product:e2e", "--max-running", "3"],
    ] {
        cli_ok(&coord, args);
    }
    let job = dir.path().join("nightly.json");
    let spec = r#"{"key": "n", "title": "n", "product": "e2e", "payload": {"command": "true"}}"#;
    std::fs::write(&job, spec).unwrap();
    let job = job.to_str().unwrap();
    cli_ok(
        &coord,
        &[
            "schedules",
            "set",
            "e2e",
            "--cron",
            "0 3 * * *",
            "--job",
            job,
        ],
    );
    let listings: Vec<Vec<&str>> = vec![
        vec!["jobs", "ls"],
        vec!["jobs", "show", &id],
        vec!["jobs", "events", &id],
        vec!["jobs", "explain", &id],
        vec!["jobs", "artifacts", &id],
        vec!["factories", "ls"],
        vec!["tokens", "ls"],
        vec!["audit"],
        vec!["budgets", "ls"],
        vec!["budgets", "show", "e2e"],
        vec!["limits", "ls"],
        vec!["schedules", "ls"],
        vec!["schedules", "show", "e2e"],
        vec!["products", "shares"],
        vec!["products", "weights", "e2e"],
    ];
    for args in listings {
        for flag in ["-o", "--output"] {
            let mut with = args.clone();
            with.extend([flag, "json"]);
            let out = cli_ok(&coord, &with);
            let parsed: Result<Value, _> = serde_json::from_str(&out);
            assert!(parsed.is_ok(), "{with:?} printed no JSON: {out}");
        }
    }
    let page: Value = serde_json::from_str(&cli_ok(&coord, &["jobs", "ls", "-o", "json"])).unwrap();
    assert_eq!(page["jobs"][0]["id"], id.as_str());
    let shown: Value =
        serde_json::from_str(&cli_ok(&coord, &["jobs", "show", &id, "-o", "json"])).unwrap();
    assert_eq!(shown["state"], "queued");
}

#[test]
fn piped_output_has_headers_relative_times_and_no_colour_codes_or_epoch_milliseconds() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&dir.path().join("coordinator"), 5_000);
    let (ok, out, err) = submit(
        &coord,
        dir.path(),
        "product = \"e2e\"\n[[jobs]]\nkey = \"waits\"\ntitle = \"waits\"\ncapabilities = [\"gpu\"]\ncommand = \"true\"\n",
        &[],
    );
    assert!(ok && out.starts_with("ID "), "{out}{err}");
    let id = out
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let created = job(&coord, &id)["created_at"].as_u64().unwrap().to_string();
    let listed = cli_ok(&coord, &["jobs", "ls"]);
    let header: Vec<&str> = listed.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "ID", "STATE", "STAGE", "PRI", "ATTEMPTS", "UPDATED", "TITLE"
        ]
    );
    assert!(
        listed.lines().nth(1).unwrap().contains(" ago  waits")
            || listed.contains("just now  waits"),
        "{listed}"
    );
    for args in [
        vec!["jobs", "ls"],
        vec!["jobs", "show", &id],
        vec!["jobs", "events", &id],
        vec!["factories", "ls"],
        vec!["tokens", "ls"],
    ] {
        let out = cli_ok(&coord, &args);
        assert!(
            !out.contains('\x1b'),
            "{args:?} printed colour codes into a pipe: {out:?}"
        );
        assert!(
            !out.contains(&created),
            "{args:?} printed epoch milliseconds: {out}"
        );
    }
    let shown = cli_ok(&coord, &["jobs", "show", &id]);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("state      queued for ")),
        "{shown}"
    );

    // The paging hint names a flag that exists and gets the next page.
    let second =
        "product = \"e2e\"\n[[jobs]]\nkey = \"second\"\ntitle = \"second\"\ncommand = \"true\"\n";
    assert!(submit(&coord, dir.path(), second, &[]).0);
    let (ok, first, hint) = cli(&coord, &["jobs", "ls", "--limit", "1"]);
    assert!(ok && first.lines().count() == 2, "{first}");
    let cursor = hint
        .trim()
        .strip_prefix("(more: --cursor ")
        .and_then(|h| h.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{hint}"));
    let (ok, next, last) = cli(&coord, &["jobs", "ls", "--limit", "1", "--cursor", cursor]);
    assert!(ok && next.lines().count() == 2 && next != first, "{next}");
    // A full page always has a cursor; past the last job it leads to an empty page.
    let cursor = last
        .trim()
        .strip_prefix("(more: --cursor ")
        .unwrap()
        .trim_end_matches(')');
    let (ok, empty, none) = cli(&coord, &["jobs", "ls", "--limit", "1", "--cursor", cursor]);
    assert!(
        ok && empty.lines().count() == 1 && none.is_empty(),
        "{empty}{none}"
    );
    let events = cli_ok(&coord, &["jobs", "events", &id]);
    assert!(events.starts_with("SEQ  AT "), "{events}");
    let utc = cli_ok(&coord, &["jobs", "show", &id, "--utc"]);
    let created_line = utc.lines().find(|l| l.starts_with("created")).unwrap();
    let stamp = created_line.split_whitespace().nth(1).unwrap();
    assert!(
        stamp.len() == 20 && stamp.as_bytes()[10] == b'T' && stamp.ends_with('Z'),
        "ISO-8601 UTC: {created_line}"
    );
}

#[test]
fn a_misspelt_state_names_the_valid_states_and_fails() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&dir.path().join("coordinator"), 5_000);
    let out = Command::new(BIN)
        .args(["jobs", "ls", "--state", "runnin"])
        .env("GIGAFACTORY_COORDINATOR", &coord.url)
        .env("GIGAFACTORY_TOKEN", &coord.admin)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("'runnin'") && err.contains("running") && err.contains("cancelled"),
        "{err}"
    );
    // The API refuses it too, for every other client: not an empty page.
    let got = call(
        "GET",
        &format!("{}/v1/jobs?state=runnin", coord.url),
        Some(&coord.admin),
        None,
    );
    expect_error(&got, 400, "malformed_request");
    let message = got.1["message"].as_str().unwrap();
    assert!(
        message.contains("\"runnin\" is not a job state") && message.contains("preempting"),
        "{message}"
    );
    assert_eq!(
        call(
            "GET",
            &format!("{}/v1/jobs?state=running", coord.url),
            Some(&coord.admin),
            None
        )
        .0,
        200
    );
}

#[test]
fn a_user_error_prints_its_message_without_a_backtrace() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&dir.path().join("coordinator"), 5_000);
    let missing = "0190a0b0-0000-7000-8000-000000000001";
    let mut child = spawn_cli(&coord, dir.path(), &["jobs", "show", missing]);
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let err = std::fs::read_to_string(dir.path().join("cli.err")).unwrap();
    assert!(!status.success());
    assert!(err.starts_with("error: not_found (404)"), "{err}");
    assert!(
        !err.contains("backtrace") && !err.contains("Stack"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    // A follower that never reached a coordinator says so at once: a wrong address is not a
    // restart to wait out.
    let out = Command::new(BIN)
        .args([
            "jobs",
            "logs",
            "-f",
            missing,
            "--coordinator",
            "http://127.0.0.1:1",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.starts_with("error: cannot reach the coordinator"),
        "{err}"
    );
}

#[test]
fn logs_follow_resumes_across_a_coordinator_restart_and_exits_with_the_jobs_outcome() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut coord = Coordinator::start(&dir.path().join("coordinator"), 10_000);
    let _factory = Factory::start(&coord, "f", 1, "linux", &dir.path().join("f"));
    let go = dir.path().join("go");
    let manifest = format!(
        "product = \"e2e\"\n[[jobs]]\nkey = \"dies\"\ntitle = \"dies\"\nmax_attempts = 1\ncommand = \"echo out-1; echo err-1 >&2; while [ ! -e {} ]; do sleep 0.1; done; echo out-2; exit 3\"\n",
        go.display()
    );
    let id = submit_manifest(&coord, &manifest).remove(0).1;
    let mut follower = spawn_cli(&coord, dir.path(), &["jobs", "logs", "-f", &id]);
    wait_for(
        Duration::from_secs(30),
        "the first line to be stored",
        || all_logs(&coord, &id).len() >= 2,
    );
    let out = dir.path().join("cli.out");
    wait_for(Duration::from_secs(30), "the follower to print it", || {
        std::fs::read_to_string(&out).unwrap().contains("out-1")
    });

    coord.restart();
    std::fs::write(&go, "").unwrap();
    let status = wait_exit(&mut follower, Duration::from_secs(60));
    let stdout = std::fs::read_to_string(&out).unwrap();
    let stderr = std::fs::read_to_string(dir.path().join("cli.err")).unwrap();
    assert_eq!(state(&coord, &id), "dead");
    assert!(!status.success(), "{stderr}");
    assert_eq!(
        stdout, "out-1\nout-2\n",
        "every line once, stdout only: {stderr}"
    );
    assert!(stderr.contains("err-1\n"), "{stderr}");
    assert!(
        stderr.contains("lost the coordinator") && stderr.contains("reconnected"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "error: job dies ({id}) ended dead after 1 attempt"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("stack backtrace"), "{stderr}");

    // Once the job has ended, following prints what it wrote and exits at once.
    let (ok, again, _) = cli(&coord, &["jobs", "logs", "-f", &id]);
    assert!(!ok);
    assert_eq!(again, "out-1\nout-2\n");
}

#[test]
fn submit_wait_exits_zero_only_when_every_job_succeeded() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&dir.path().join("coordinator"), 5_000);
    let _factory = Factory::start(&coord, "f", 2, "linux", &dir.path().join("f"));

    let (ok, out, err) = submit(
        &coord,
        dir.path(),
        "product = \"e2e\"\n[[jobs]]\nkey = \"fine\"\ntitle = \"fine\"\ncommand = \"echo fine\"\n",
        &["--wait"],
    );
    assert!(ok, "{out}{err}");
    assert!(
        err.contains("job fine (") && err.contains(") succeeded after 1 attempt"),
        "{err}"
    );
    let id = out
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(state(&coord, &id), "succeeded");
    let (ok, logs, _) = cli(&coord, &["jobs", "logs", "-f", &id]);
    assert!(ok && logs == "fine\n", "{logs}");

    let (ok, _, err) = submit(
        &coord,
        dir.path(),
        "product = \"e2e\"\n[[jobs]]\nkey = \"good\"\ntitle = \"good\"\ncommand = \"true\"\n\
         [[jobs]]\nkey = \"bad\"\ntitle = \"bad\"\nmax_attempts = 1\ncommand = \"exit 4\"\n",
        &["--wait"],
    );
    assert!(!ok, "{err}");
    assert!(
        err.contains("job good (") && err.contains("succeeded"),
        "{err}"
    );
    assert!(
        err.contains("job bad (") && err.contains("ended dead after 1 attempt"),
        "{err}"
    );
    assert!(
        err.contains("error: 1 of 2 jobs did not succeed: bad"),
        "{err}"
    );
}

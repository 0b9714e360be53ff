//! The control plane in headless Chromium (Debian's `chromium`, driven by `playwright-core`
//! from `tests/ui`) against a real coordinator and factory: the overview shows the fleet, a
//! submitted job appears and runs, its live logs stream, cancel ends it, a refused action shows
//! its error, a factory's page shows the jobs it runs and its actions, budgets are created,
//! paused, resumed, refused a bad edit and deleted, a token is minted and revoked on the Tokens
//! page beside the audit log, a budget's burndown is drawn, a job's cost
//! and the budget holding it show (the browser script plays a second factory to report usage),
//! a viewer cannot act, and narrow screens work. A second run, on a coordinator with a GitHub
//! source, shows a tracker item's job in review with the files each of its two attempts saved,
//! the one up for review first and beside Ship and Reject, and the item's deliveries,
//! dead-lettered and redelivered from the page. A third run (`jobpage.test.mjs`) shows the job
//! page offering only the actions each job's state allows (queued, running, cancelled, dead,
//! in review, shipped, succeeded), an action's reason on the timeline, what a job runs, the
//! logs of its attempts apart with search, pause and download, a dead job's stderr tail, and
//! a run's graph coloured by state. `secrets.test.mjs` sets, rotates and deletes a secret in
//! the Secrets page and finds its value nowhere in the page. `repo.test.mjs`: a job's git
//! repository and revision on its page. `schedules.test.mjs`: a schedule created from the form
//! with its next runs, a bad one's problems beside their fields, a run linking to its job,
//! pause and resume, a viewer reading. A fourth, the shell (`shell.test.mjs`), kills and
//! restarts the coordinator when the script asks (a line `kill` or `start` on its stdout,
//! answered on its stdin): the outage banner, stale marks and resume; sessions by cookie;
//! filters in the URL; the phone layout. A fifth (`questions.test.mjs`) answers a job's
//! question to an operator from its page. Screenshots go to `docs/screenshots/`. Needs
//! `chromium` and `npm ci --prefix tests/ui` (`.ci/run` does both).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

#[test]
fn the_control_plane_works_in_a_real_browser() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);
    let _f = Factory::start(&coord, "ui-factory", 1, "linux", &dir.path().join("f"));
    let viewer = mint_viewer(&coord);
    let out = run_script("ui.test.mjs", &coord, &viewer, &[]);
    assert!(out.contains("passed, 0 failed"), "{out}");
}

#[test]
fn the_job_page_offers_only_valid_actions_and_shows_its_logs_and_run() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);
    let _f = Factory::start(&coord, "jobpage-factory", 1, "linux", &dir.path().join("f"));
    let viewer = mint_viewer(&coord);
    let out = run_script("jobpage.test.mjs", &coord, &viewer, &[]);
    assert!(out.contains("passed, 0 failed"), "{out}");
}

#[test]
fn schedules_are_created_from_the_form_show_their_runs_and_pause_and_resume() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);
    let _f = Factory::start(
        &coord,
        "schedules-factory",
        2,
        "linux",
        &dir.path().join("f"),
    );
    let viewer = mint_viewer(&coord);
    let out = run_script("schedules.test.mjs", &coord, &viewer, &[]);
    assert!(out.contains("passed, 0 failed"), "{out}");
}

#[test]
fn the_shell_shows_an_outage_and_resumes_keeps_sessions_and_filters_and_fits_a_phone() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut coord = Coordinator::start(dir.path(), 5_000);
    let _f = Factory::start(&coord, "shell-factory", 1, "linux", &dir.path().join("f"));
    let viewer = mint_viewer(&coord);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("node")
        .arg(root.join("tests/ui/shell.test.mjs"))
        .args([&coord.url, &coord.admin, &viewer])
        .arg(root.join("docs/screenshots"))
        .current_dir(root.join("tests/ui"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node (Node.js) is needed for the browser tests");
    let mut to_script = child.stdin.take().unwrap();
    let mut out = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        match line.as_str() {
            "kill" => coord.kill(),
            "start" => coord.restart(),
            _ => {
                out.push_str(&line);
                out.push('\n');
                continue;
            }
        }
        writeln!(to_script, "done").unwrap();
    }
    assert!(
        child.wait().unwrap().success(),
        "browser tests (shell.test.mjs) failed:\n{out}"
    );
    assert!(out.contains("passed, 0 failed"), "{out}");
}

const WEBHOOK_SECRET: &str = "ui-webhook-secret";
const CALLBACK_SECRET: &str = "ui-callback-secret";

/// A GitHub source whose callback is `port` on loopback, where the browser script starts
/// listening only once it wants deliveries to succeed; the outbox gives up after two quick
/// tries, so a delivery dead-letters within a second.
fn review_config(port: u16) -> String {
    format!(
        r#"
[intake.github]
kind = "github"
secret = "{WEBHOOK_SECRET}"
callback_url = "http://127.0.0.1:{port}/hook"
callback_secret = "{CALLBACK_SECRET}"

[[intake.github.rules]]
labels = ["bug"]
product = "ui-review"
capabilities = ["ui-review"]
template = "fix"

[intake.github.templates]
fix = '''
[[jobs]]
key = "fix"
title = "Fix {{{{id}}}}"
prompt = "Fix {{{{title}}}}: {{{{body}}}} ({{{{url}}}})"
review = true
'''

[outbox]
backoff_base_ms = 50
backoff_cap_ms = 200
tries_max = 2
timeout_ms = 500
"#
    )
}

#[test]
fn a_review_shows_what_it_saved_and_a_tracker_item_its_deliveries() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on until the script does.
    let callback_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let coord = Coordinator::start_with_config(dir.path(), 5_000, &review_config(callback_port));
    let viewer = mint_viewer(&coord);
    let port = callback_port.to_string();
    let out = run_script(
        "review.test.mjs",
        &coord,
        &viewer,
        &[&port, WEBHOOK_SECRET, CALLBACK_SECRET],
    );
    assert!(out.contains("passed, 0 failed"), "{out}");
}

#[test]
fn a_job_asks_and_the_operator_answers_from_its_page() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // The script plays a factory that never renews its lease: an hour outlasts any slow run,
    // so its last asks are not fenced by an expiry.
    let coord = Coordinator::start(dir.path(), 3_600_000);
    let viewer = mint_viewer(&coord);
    let out = run_script("questions.test.mjs", &coord, &viewer, &[]);
    assert!(out.contains("passed, 0 failed"), "{out}");
}

#[test]
fn a_secret_set_in_the_page_is_listed_never_shown_back_and_deleted() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let key = Command::new(BIN)
        .args(["secrets", "keygen"])
        .output()
        .unwrap();
    assert!(key.status.success());
    let key_file = dir.path().join("secrets.key");
    std::fs::write(&key_file, &key.stdout).unwrap();
    // The owner's alone, or the node refuses to start.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let coord = Coordinator::start_with(
        &dir.path().join("node"),
        5_000,
        &["--secrets-key-file", &key_file.display().to_string()],
    );
    let viewer = mint_viewer(&coord);
    let out = run_script("secrets.test.mjs", &coord, &viewer, &[]);
    assert!(out.contains("passed, 0 failed"), "{out}");
}

#[test]
fn a_jobs_repository_shows_on_its_page() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);
    let viewer = mint_viewer(&coord);
    let out = run_script("repo.test.mjs", &coord, &viewer, &[]);
    assert!(out.contains("passed, 0 failed"), "{out}");
}

fn mint_viewer(coord: &Coordinator) -> String {
    post(
        coord,
        "/v1/tokens",
        r#"{"role": "viewer", "name": "ui-viewer"}"#,
    )
    .1["token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Runs `tests/ui/{script}` with the coordinator's URL, the admin and viewer tokens, the
/// screenshot directory and `extra`; fails with its output unless it succeeds. Answers stdout.
fn run_script(script: &str, coord: &Coordinator, viewer: &str, extra: &[&str]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shots = root.join("docs/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(root.join("tests/ui").join(script))
        .args([&coord.url, &coord.admin, viewer])
        .arg(&shots)
        .args(extra)
        .current_dir(root.join("tests/ui"))
        .output()
        .expect("node (Node.js) is needed for the browser tests");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser tests ({script}) failed:\n{stdout}\n{stderr}"
    );
    stdout
}

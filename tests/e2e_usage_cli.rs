//! Money from inside a job to the operator's screen, through real processes: a job reports
//! its usage with `gigafactory job usage` (its factory sends each report, fenced, under the id
//! it was written with), and `gigafactory budgets` and `gigafactory jobs show` show what it
//! spent; a paused budget holds a job and says why until resumed. Bad input gets the server's
//! (or the CLI's) message and a non-zero exit.

mod common;

use std::time::Duration;

use common::*;

/// Runs the CLI against `coord` with its admin token: whether it succeeded, stdout, stderr.
fn submit_one(coord: &Coordinator, key: &str, command: &str) -> String {
    let manifest = format!(
        "product = \"e2e\"\n[[jobs]]\nkey = \"{key}\"\ntitle = \"{key}\"\ncommand = \"{command}\"\n"
    );
    submit_manifest(coord, &manifest).remove(0).1
}

#[test]
fn a_jobs_usage_reaches_its_budget_and_the_cli_shows_it() {
    let _serial = serial();
    clear_of_utc_midnight(Duration::from_secs(180));
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&dir.path().join("coordinator"), 5_000);
    let set = cli_ok(
        &coord,
        &[
            "budgets",
            "set",
            "e2e-month",
            "--product",
            "e2e",
            "--period",
            "month",
            "--limit-usd",
            "100",
        ],
    );
    assert!(set.contains("$0.00 of $100.00 (0%)"), "{set}");
    let _factory = Factory::start(&coord, "f", 1, "linux", &dir.path().join("f"));

    let id = submit_one(
        &coord,
        "spender",
        "gigafactory job usage --model sonnet --input-tokens 1200 --output-tokens 300 \
         --cost-usd 0.25 && gigafactory job usage --model haiku --cost-usd 0.000001",
    );
    wait_for(Duration::from_secs(30), "the job to succeed", || {
        state(&coord, &id) == "succeeded"
    });
    let shown = cli_ok(&coord, &["jobs", "show", &id]);
    assert!(
        shown.contains("cost       $0.250001 (no cost budget)"),
        "{shown}"
    );
    let sonnet = shown.lines().find(|l| l.contains("sonnet")).unwrap();
    assert!(
        sonnet.contains("1200 tokens in") && sonnet.ends_with("$0.25"),
        "{sonnet}"
    );
    let budget = cli_ok(&coord, &["budgets", "show", "e2e-month"]);
    assert!(
        budget.contains("spent      $0.250001 of $100.00 (0%)"),
        "{budget}"
    );
    let top = budget.lines().find(|l| l.starts_with("top jobs")).unwrap();
    assert!(top.contains(&id) && top.contains("$0.250001"), "{top}");
    let listed = cli_ok(&coord, &["budgets", "ls"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("e2e-month") && l.contains("active")),
        "{listed}"
    );

    cli_ok(
        &coord,
        &["budgets", "pause", "e2e-month", "--reason", "e2e pause"],
    );
    let held = submit_one(&coord, "held", "true");
    wait_for(Duration::from_secs(10), "the job to be held", || {
        cli_ok(&coord, &["jobs", "show", &held])
            .lines()
            .any(|l| l.starts_with("held") && l.contains("paused by") && l.contains("e2e pause"))
    });
    assert_eq!(state(&coord, &held), "queued");
    let resumed = cli_ok(&coord, &["budgets", "resume", "e2e-month"]);
    assert!(resumed.contains("active"), "{resumed}");
    wait_for(Duration::from_secs(30), "the held job to run", || {
        state(&coord, &held) == "succeeded"
    });

    cli_ok(&coord, &["budgets", "rm", "e2e-month"]);
    let (ok, _, err) = cli(&coord, &["budgets", "show", "e2e-month"]);
    assert!(!ok && err.contains("not_found"), "{err}");
}

#[test]
fn bad_budgets_and_usage_outside_a_job_are_refused_with_a_message() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&dir.path().join("coordinator"), 5_000);
    let (ok, _, err) = cli(
        &coord,
        &[
            "budgets",
            "set",
            "zero",
            "--product",
            "e2e",
            "--period",
            "day",
            "--limit-usd",
            "0",
        ],
    );
    assert!(!ok, "a zero limit is refused");
    assert!(
        err.contains("invalid_request (400)") && err.contains("limit: must be more than $0"),
        "the server's message: {err}"
    );
    let (ok, _, err) = cli(
        &coord,
        &[
            "budgets",
            "set",
            "neg",
            "--product",
            "e2e",
            "--period",
            "day",
            "--limit-usd",
            "-5",
        ],
    );
    assert!(!ok && err.contains("--limit-usd"), "{err}");
    assert!(
        cli_ok(&coord, &["budgets", "ls"]).lines().count() == 1,
        "only the header"
    );

    let (ok, _, err) = cli(
        &coord,
        &["job", "usage", "--model", "m", "--input-tokens", "1"],
    );
    assert!(!ok && err.contains("GF_CONTROL_DIR is not set"), "{err}");
    let (ok, _, err) = cli(
        &coord,
        &["job", "usage", "--model", "m", "--cost-usd", "1e3"],
    );
    assert!(!ok && err.contains("not an amount of dollars"), "{err}");
}

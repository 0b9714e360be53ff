//! End to end with real processes: a schedule with a seconds field fires once per tick and
//! its jobs run on a real factory, each findable by its idempotency key; pause stops firing
//! and resume resumes; overlap `skip` records a skipped tick while the previous run still
//! runs and `cancel_previous` cancels it; a manual trigger runs under its own key, once per
//! `Idempotency-Key` (the same key again answers the same run; a bad key is refused); a
//! manifest template submits all its jobs, dependencies kept, each under the run's key; bad
//! schedules are refused with every problem and change nothing. (Across three nodes with one
//! killed: `e2e_cluster_schedules.rs`.)

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn put_schedule(coord: &Coordinator, name: &str, body: &Value) -> (u16, Value) {
    call(
        "PUT",
        &format!("{}/v1/schedules/{name}", coord.url),
        Some(&coord.admin),
        Some(&body.to_string()),
    )
}

fn job(product: &str, command: &str) -> Value {
    json!({"key": "tick", "title": "scheduled", "product": product, "payload": {"command": command}})
}

fn runs(coord: &Coordinator, name: &str) -> Vec<Value> {
    get(coord, &format!("/v1/schedules/{name}"))["history"]
        .as_array()
        .unwrap()
        .clone()
}

fn with_outcome(runs: &[Value], outcome: &str) -> Vec<Value> {
    runs.iter()
        .filter(|r| r["outcome"] == outcome)
        .cloned()
        .collect()
}

#[test]
fn a_seconds_schedule_fires_once_per_tick_its_jobs_run_and_pause_stops_it() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // A tick more than 3 s late is missed; schedules are re-read every 200 ms.
    let config = "[schedules]\ngrace_ms = 3000\nrefresh_ms = 200\n";
    let coord = Coordinator::start_with_config(dir.path(), 10_000, config);
    let _f = Factory::start(&coord, "f1", 4, "linux", &dir.path().join("f"));
    let body = json!({"cron": "*/2 * * * * *", "job": job("sched", "echo tick")});
    let (status, v) = put_schedule(&coord, "every2", &body);
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["state"], "active");
    assert_eq!(v["time_zone"], "UTC");
    assert_eq!(v["next_runs"].as_array().unwrap().len(), 5, "{v}");
    let first = v["next_runs"][0]["at"].as_u64().unwrap();
    assert_eq!(first % 2_000, 0, "{v}");
    assert!(
        v["next_runs"][0]["utc"]
            .as_str()
            .unwrap()
            .ends_with("+00:00")
    );

    wait_for(Duration::from_secs(30), "three submitted runs", || {
        with_outcome(&runs(&coord, "every2"), "submitted").len() >= 3
    });
    let submitted = with_outcome(&runs(&coord, "every2"), "submitted");
    let ticks: Vec<u64> = submitted
        .iter()
        .map(|r| r["tick"].as_u64().unwrap())
        .collect();
    let distinct: BTreeSet<u64> = ticks.iter().copied().collect();
    assert_eq!(distinct.len(), ticks.len(), "a tick fired twice: {ticks:?}");
    for w in ticks.windows(2) {
        // Newest first, every tick of the cron, none skipped.
        assert_eq!(w[0] - w[1], 2_000, "{ticks:?}");
    }
    for r in &submitted {
        let tick = r["tick"].as_u64().unwrap();
        let id = r["jobs"][0].as_str().unwrap();
        assert_eq!(r["jobs"].as_array().unwrap().len(), 1, "{r}");
        let j = common::job(&coord, id);
        assert_eq!(
            j["idempotency_key"],
            format!("schedule:every2:{tick}"),
            "{j}"
        );
        wait_for(
            Duration::from_secs(20),
            "a scheduled job to succeed",
            || state(&coord, id) == "succeeded",
        );
    }

    // Paused, it fires nothing; resumed, it fires again.
    cli_ok(&coord, &["schedules", "pause", "every2"]);
    let paused = get(&coord, "/v1/schedules/every2");
    assert_eq!(paused["state"], "paused", "{paused}");
    let before = runs(&coord, "every2").len();
    // Waiting for nothing to happen cannot poll for it: three ticks pass.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        runs(&coord, "every2").len(),
        before,
        "a paused schedule fired"
    );
    let jobs_then = get(&coord, "/v1/jobs?product=sched")["jobs"]
        .as_array()
        .unwrap()
        .len();
    cli_ok(&coord, &["schedules", "resume", "every2"]);
    wait_for(Duration::from_secs(20), "a run after resuming", || {
        let now = runs(&coord, "every2");
        now.len() > before && now[0]["outcome"] == "submitted"
    });
    let after = runs(&coord, "every2");
    // Ticks that passed while paused are recorded missed, once; only the latest, if on time, fires.
    let missed = with_outcome(&after[..after.len() - before], "missed");
    assert_eq!(missed.len(), 1, "{after:?}");
    assert!(
        missed[0]["missed_ticks"].as_u64().unwrap() >= 1,
        "{after:?}"
    );

    // Every job the schedule submitted is one of its runs' (none twice).
    cli_ok(&coord, &["schedules", "pause", "every2"]);
    let all = runs(&coord, "every2");
    let from_runs: BTreeSet<String> = all
        .iter()
        .flat_map(|r| r["jobs"].as_array().unwrap().clone())
        .map(|j| j.as_str().unwrap().to_owned())
        .collect();
    let listed = get(&coord, "/v1/jobs?product=sched&limit=500");
    let listed: BTreeSet<String> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(listed.len() > jobs_then);
    assert_eq!(listed, from_runs);

    let table = cli_ok(&coord, &["schedules", "ls"]);
    assert!(
        table.lines().nth(1).unwrap().starts_with("every2"),
        "{table}"
    );
    assert!(
        table.contains("*/2 * * * * *") && table.contains("paused"),
        "{table}"
    );
    let shown = cli_ok(&coord, &["schedules", "show", "every2"]);
    assert!(
        shown.contains("next runs") && shown.contains("submitted"),
        "{shown}"
    );
    let json_out: Value = serde_json::from_str(&cli_ok(
        &coord,
        &["schedules", "show", "every2", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(json_out["name"], "every2");
    let metrics = raw_metrics(&coord);
    assert!(
        metrics.lines().any(|l| l
            .starts_with("gigafactory_schedule_runs_total{outcome=\"submitted\"}")
            && !l.ends_with(" 0")),
        "{metrics}"
    );
    cli_ok(&coord, &["schedules", "rm", "every2"]);
    assert_eq!(get(&coord, "/v1/schedules"), json!([]));
}

fn raw_metrics(coord: &Coordinator) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", &format!("{}/metrics", coord.url)])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn overlap_skip_records_a_skipped_tick_and_cancel_previous_cancels_the_running_run() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 10_000);
    let _f = Factory::start(&coord, "f1", 4, "linux", &dir.path().join("f"));
    let body = json!({"cron": "* * * * * *", "overlap": "skip", "job": job("slow", "sleep 30")});
    assert_eq!(put_schedule(&coord, "slow", &body).0, 201);
    wait_for(Duration::from_secs(20), "a skipped tick", || {
        !with_outcome(&runs(&coord, "slow"), "skipped").is_empty()
    });
    let all = runs(&coord, "slow");
    let submitted = with_outcome(&all, "submitted");
    assert_eq!(submitted.len(), 1, "one run while the first runs: {all:?}");
    let running = submitted[0]["jobs"][0].as_str().unwrap();
    let skipped = &with_outcome(&all, "skipped")[0];
    assert!(
        skipped["reason"].as_str().unwrap().contains(running),
        "the skip names the running job: {skipped}"
    );
    assert_ne!(state(&coord, running), "cancelled");

    // The same schedule cancelling the previous run instead.
    let body = json!({"cron": "* * * * * *", "overlap": "cancel_previous", "job": job("slow", "sleep 30")});
    let (status, v) = put_schedule(&coord, "slow", &body);
    assert_eq!(status, 200, "a replaced schedule: {v}");
    assert_eq!(v["overlap"], "cancel_previous");
    wait_for(
        Duration::from_secs(20),
        "a run that cancelled the previous",
        || !with_outcome(&runs(&coord, "slow"), "cancelled_previous").is_empty(),
    );
    // The oldest such run (history is newest first) cancelled the job the skips named.
    let cancelled = with_outcome(&runs(&coord, "slow"), "cancelled_previous");
    let cancelling = cancelled.last().unwrap();
    assert_eq!(cancelling["cancelled"][0], running, "{cancelling}");
    wait_for(
        Duration::from_secs(20),
        "the previous job cancelled",
        || state(&coord, running) == "cancelled",
    );
    let events = events(&coord, running);
    assert!(
        events.iter().any(|e| e["kind"] == "cancel"
            && e["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("schedule slow")),
        "{events:?}"
    );

    // A trigger runs now, paused or not, under its own key.
    cli_ok(&coord, &["schedules", "pause", "slow"]);
    let url = format!("{}/v1/schedules/slow/trigger", coord.url);
    let (status, t) = call("POST", &url, Some(&coord.admin), None);
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["run"]["trigger"], "manual", "{t}");
    let id = t["run"]["jobs"][0].as_str().unwrap();
    let key = common::job(&coord, id)["idempotency_key"].clone();
    assert!(
        key.as_str().unwrap().starts_with("schedule:slow:manual-"),
        "{key}"
    );
    let out = cli_ok(&coord, &["schedules", "trigger", "slow"]);
    assert!(out.contains("manual"), "{out}");
}

#[test]
fn bad_schedules_are_refused_with_every_problem_and_change_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 10_000);
    let mut bad_job = job("p", "true");
    bad_job["idempotency_key"] = json!("mine");
    let body = json!({
        "cron": "61 * * * *",
        "time_zone": "Mars/Olympus",
        "overlap": "sometimes",
        "job": bad_job,
    });
    let got = put_schedule(&coord, "Bad_Name", &body);
    expect_error(&got, 422, "invalid_schedule");
    let details: Vec<&str> = got.1["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    for field in [
        "name:",
        "cron:",
        "time_zone:",
        "overlap:",
        "job.idempotency_key:",
    ] {
        assert!(
            details.iter().any(|d| d.starts_with(field)),
            "{field} in {details:?}"
        );
    }
    assert_eq!(get(&coord, "/v1/schedules"), json!([]));

    // A good schedule stays as it was when a bad replacement is refused.
    let good = json!({"cron": "0 3 * * *", "time_zone": "Europe/Paris", "job": job("p", "true")});
    assert_eq!(put_schedule(&coord, "nightly", &good).0, 201);
    let got = put_schedule(&coord, "nightly", &json!({"cron": "0 3 * * *"}));
    expect_error(&got, 422, "invalid_schedule");
    let shown = get(&coord, "/v1/schedules/nightly");
    assert_eq!(shown["cron"], "0 3 * * *");
    assert_eq!(shown["job"]["product"], "p");
    assert!(
        shown["next_runs"][0]["local"]
            .as_str()
            .unwrap()
            .contains("T03:00:00+0"),
        "{shown}"
    );
    let (ok, _, err) = cli(
        &coord,
        &[
            "schedules",
            "set",
            "nightly",
            "--cron",
            "* * *",
            "--manifest",
            "/nonexistent.toml",
        ],
    );
    assert!(!ok);
    assert!(err.contains("/nonexistent.toml"), "{err}");
    let file = dir.path().join("job.json");
    std::fs::write(&file, job("p", "true").to_string()).unwrap();
    let (ok, _, err) = cli(
        &coord,
        &[
            "schedules",
            "set",
            "nightly",
            "--cron",
            "* * *",
            "--tz",
            "Nowhere",
            "--job",
            file.to_str().unwrap(),
        ],
    );
    assert!(!ok);
    assert!(err.contains("cron:") && err.contains("time_zone:"), "{err}");
    assert_eq!(get(&coord, "/v1/schedules/nightly")["cron"], "0 3 * * *");
    for (method, path) in [
        ("GET", "/v1/schedules/none"),
        ("POST", "/v1/schedules/none/pause"),
        ("POST", "/v1/schedules/none/trigger"),
        ("DELETE", "/v1/schedules/none"),
    ] {
        let got = call(
            method,
            &format!("{}{path}", coord.url),
            Some(&coord.admin),
            None,
        );
        expect_error(&got, 404, "not_found");
    }
    // Viewers read, and only read.
    let (viewer, _) = mint(&coord, "viewer", "v");
    let (status, _) = call(
        "GET",
        &format!("{}/v1/schedules", coord.url),
        Some(&viewer),
        None,
    );
    assert_eq!(status, 200);
    let got = call(
        "POST",
        &format!("{}/v1/schedules/nightly/pause", coord.url),
        Some(&viewer),
        None,
    );
    expect_error(&got, 403, "forbidden");
    assert_eq!(get(&coord, "/v1/schedules/nightly")["state"], "active");
}

#[test]
fn a_manifest_template_submits_all_its_jobs_with_their_dependencies_under_the_runs_keys() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 10_000);
    let manifest = "product = \"weekly\"\n\
        [[jobs]]\nkey = \"audit\"\ntitle = \"Audit\"\ncommand = \"true\"\n\
        [[jobs]]\nkey = \"report\"\ntitle = \"Report\"\ndeps = [\"audit\"]\ncommand = \"true\"\n";
    let file = dir.path().join("weekly.toml");
    std::fs::write(&file, manifest).unwrap();
    let args = [
        "schedules",
        "set",
        "weekly",
        "--cron",
        "0 9 * * MON",
        "--tz",
        "America/New_York",
    ];
    let shown = cli_ok(
        &coord,
        &[&args[..], &["--manifest", file.to_str().unwrap()]].concat(),
    );
    assert!(shown.contains("0 9 * * MON (America/New_York)"), "{shown}");
    let v = get(&coord, "/v1/schedules/weekly");
    assert_eq!(v["manifest"], manifest);
    for n in v["next_runs"].as_array().unwrap() {
        let local = n["local"].as_str().unwrap();
        assert!(local.contains("T09:00:00-0"), "{local}");
    }

    let url = format!("{}/v1/schedules/weekly/trigger", coord.url);
    let (status, t) = call("POST", &url, Some(&coord.admin), None);
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["run"]["jobs_total"], 2, "{t}");
    let ids: Vec<&str> = t["run"]["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j.as_str().unwrap())
        .collect();
    let (audit, report) = (common::job(&coord, ids[0]), common::job(&coord, ids[1]));
    let at = t["run"]["tick"].as_u64().unwrap();
    assert_eq!(
        audit["idempotency_key"],
        format!("schedule:weekly:manual-{at}:audit")
    );
    assert_eq!(
        report["idempotency_key"],
        format!("schedule:weekly:manual-{at}:report")
    );
    assert_eq!(report["parents"], json!([ids[0]]), "{report}");
    assert_eq!(report["state"], "pending");
}

/// A trigger of `name` with `Idempotency-Key: key`, as the admin.
fn trigger_with_key(coord: &Coordinator, name: &str, key: &str) -> (u16, Value) {
    let auth = format!("Bearer {}", coord.admin);
    call_with(
        "POST",
        &format!("{}/v1/schedules/{name}/trigger", coord.url),
        &[("Authorization", &auth), ("Idempotency-Key", key)],
        "",
    )
}

fn jobs_of(coord: &Coordinator, product: &str) -> Vec<Value> {
    get(coord, &format!("/v1/jobs?product={product}&limit=500"))["jobs"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_trigger_retried_with_its_idempotency_key_answers_the_same_run_and_submits_once() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 10_000);
    // A daily cron: only the triggers here run it.
    let body = json!({"cron": "0 3 * * *", "overlap": "queue", "job": job("keyed", "true")});
    assert_eq!(put_schedule(&coord, "keyed", &body).0, 201);

    let (status, first) = trigger_with_key(&coord, "keyed", "retry-1");
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["created"], true, "{first}");
    let id = first["run"]["jobs"][0].as_str().unwrap().to_owned();
    assert_eq!(
        common::job(&coord, &id)["idempotency_key"],
        "schedule:keyed:trigger-retry-1"
    );
    // The template changes before the retry: the retry still answers the first run, and
    // neither submits the new template nor conflicts with the first run's job.
    let edited = json!({"cron": "0 3 * * *", "overlap": "queue", "job": job("keyed", "false")});
    assert_eq!(put_schedule(&coord, "keyed", &edited).0, 200);
    let (status, again) = trigger_with_key(&coord, "keyed", "retry-1");
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["created"], false, "{again}");
    assert_eq!(again["run"], first["run"], "the same run answers");
    assert_eq!(runs(&coord, "keyed").len(), 1, "one run in the history");
    assert_eq!(jobs_of(&coord, "keyed").len(), 1, "one set of jobs");

    // Another key is another run.
    let (status, other) = trigger_with_key(&coord, "keyed", "retry-2");
    assert_eq!((status, &other["created"]), (200, &json!(true)), "{other}");
    assert_ne!(other["run"]["seq"], first["run"]["seq"]);
    assert_eq!(jobs_of(&coord, "keyed").len(), 2);

    // The CLI: `--key` twice runs once; without it, each invocation is its own run.
    let out = cli_ok(&coord, &["schedules", "trigger", "keyed", "--key", "cli-1"]);
    assert!(out.contains("manual"), "{out}");
    let out = cli_ok(&coord, &["schedules", "trigger", "keyed", "--key", "cli-1"]);
    assert!(out.contains("nothing submitted now"), "{out}");
    assert_eq!(jobs_of(&coord, "keyed").len(), 3);
    cli_ok(&coord, &["schedules", "trigger", "keyed"]);
    cli_ok(&coord, &["schedules", "trigger", "keyed"]);
    assert_eq!(jobs_of(&coord, "keyed").len(), 5);
    assert_eq!(runs(&coord, "keyed").len(), 5);
}

#[test]
fn a_bad_trigger_key_is_refused_with_a_json_error_and_runs_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 10_000);
    let body = json!({"cron": "0 3 * * *", "job": job("badkey", "true")});
    assert_eq!(put_schedule(&coord, "badkey", &body).0, 201);
    let long = "k".repeat(65);
    for key in ["a:b", "two words", "naïve", long.as_str()] {
        let got = trigger_with_key(&coord, "badkey", key);
        expect_error(&got, 400, "invalid_request");
        let message = got.1["message"].as_str().unwrap();
        assert!(message.contains("Idempotency-Key"), "{message}");
    }
    let (ok, _, err) = cli(&coord, &["schedules", "trigger", "badkey", "--key", "a:b"]);
    assert!(!ok && err.contains("invalid_request"), "{err}");
    assert!(runs(&coord, "badkey").is_empty(), "a refused trigger ran");
    assert!(
        jobs_of(&coord, "badkey").is_empty(),
        "a refused trigger submitted"
    );
}

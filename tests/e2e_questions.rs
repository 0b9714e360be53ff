//! Questions to an operator through real processes: a job's command runs `gigafactory job
//! ask`, the job shows as waiting for input (API and `jobs ls`), an operator answers with the
//! CLI, and the job goes on with the answer; a timeout takes the default, or ends `job ask`
//! with exit code 3; a wrong choice, a second answer, a second question, a stale epoch's ask,
//! a misspelt key and an answer meant for an earlier question are refused and change nothing.

mod common;

use std::time::Duration;

use common::{
    Coordinator, Factory, FakeFactory, all_logs, call, cli, events, get, job, mint, serial, state,
    submit_manifest, wait_for,
};
use serde_json::{Value, json};

fn manifest(key: &str, command: &str) -> String {
    format!(
        "product = \"ask\"\n[[jobs]]\nkey = \"{key}\"\ntitle = \"{key}\"\ncapabilities = [\"linux\"]\n\
         max_attempts = 1\ncommand = '''{command}'''\n"
    )
}

fn output(coord: &Coordinator, id: &str) -> String {
    all_logs(coord, id)
        .iter()
        .filter_map(|l| l["data"].as_str())
        .collect::<String>()
}

fn kinds(coord: &Coordinator, id: &str) -> Vec<String> {
    events(coord, id)
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_job_asks_an_operator_answers_from_the_cli_and_the_job_goes_on_with_the_answer() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);
    let _f = Factory::start(&coord, "asker", 1, "linux", &dir.path().join("f"));
    let ask = "a=$(gigafactory job ask \"Merge the migration now?\" --choice yes --choice no \
               --timeout 5m) && echo \"got: $a\"";
    let id = submit_manifest(&coord, &manifest("merge", ask))[0]
        .1
        .clone();
    wait_for(Duration::from_secs(30), "the job to wait for input", || {
        job(&coord, &id)["waiting_for_input"] == true
    });
    let view = job(&coord, &id);
    assert_eq!(view["state"], "running", "it keeps its lease: {view}");
    assert_eq!(view["question"]["text"], "Merge the migration now?");
    assert_eq!(view["question"]["choices"], json!(["yes", "no"]));
    assert_eq!(view["question"]["status"], "open");
    let waiting = get(&coord, "/v1/jobs?waiting_for_input=true");
    assert_eq!(waiting["jobs"][0]["id"], id.as_str(), "{waiting}");
    let others = get(&coord, "/v1/jobs?waiting_for_input=false");
    assert_eq!(others["jobs"], json!([]), "{others}");

    let (ok, ls, err) = cli(&coord, &["jobs", "ls", "--waiting-for-input"]);
    assert!(ok, "{err}");
    assert!(ls.contains(&id) && ls.contains("waits for input"), "{ls}");
    let (ok, shown, err) = cli(&coord, &["jobs", "show", &id]);
    assert!(ok, "{err}");
    assert!(
        shown.contains("Merge the migration now? [yes / no]"),
        "{shown}"
    );
    assert!(shown.contains("WAITS FOR INPUT since"), "{shown}");

    // Not one of the choices: refused with them, and nothing changed.
    let (ok, _, err) = cli(&coord, &["jobs", "answer", &id, "maybe"]);
    assert!(
        !ok && err.contains("not one of the choices: yes, no"),
        "{err}"
    );
    assert_eq!(job(&coord, &id)["question"]["status"], "open");

    let (ok, out, err) = cli(
        &coord,
        &["jobs", "answer", &id, "yes", "--note", "backup done"],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("answered \"yes\" to \"Merge the migration now?\" (question "),
        "the CLI says which question it answered: {out}"
    );
    wait_for(
        Duration::from_secs(30),
        "the job to go on and succeed",
        || state(&coord, &id) == "succeeded",
    );
    let text = output(&coord, &id);
    assert!(
        text.contains("got: yes"),
        "the job printed its answer: {text}"
    );

    // A second answer: the question is closed (answered, then its lease ended with the job).
    let (ok, _, err) = cli(&coord, &["jobs", "answer", &id, "no"]);
    assert!(
        !ok && err.contains("no open question") && err.contains("is answered"),
        "{err}"
    );
    let view = job(&coord, &id);
    assert_eq!(view["question"]["answer"], "yes", "{view}");
    assert!(view["question"]["answered_by"].is_string(), "{view}");
    assert_eq!(view["waiting_for_input"], false);

    let timeline = events(&coord, &id);
    let asked = timeline
        .iter()
        .find(|e| e["kind"] == "ask")
        .expect("ask event");
    assert!(
        asked["detail"]
            .as_str()
            .unwrap()
            .contains("Merge the migration now?"),
        "{asked}"
    );
    let answered = timeline
        .iter()
        .find(|e| e["kind"] == "answer")
        .expect("answer event");
    assert_eq!(answered["detail"], "yes (backup done)", "{answered}");
    assert!(
        answered["actor"].as_str().unwrap().starts_with("admin:"),
        "{answered}"
    );

    // The fleet stream carries both (its backlog holds the node's recent events).
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-N",
            "--max-time",
            "2",
            "-H",
            "Accept: text/event-stream",
        ])
        .args(["-H", &format!("Authorization: Bearer {}", coord.admin)])
        .arg(format!("{}/v1/events", coord.url))
        .output()
        .expect("curl");
    let stream = String::from_utf8_lossy(&out.stdout);
    for kind in ["ask", "answer"] {
        let seen = stream
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .any(|d| {
                let e: Value = serde_json::from_str(d).unwrap();
                e["kind"] == kind && e["job_id"] == id.as_str()
            });
        assert!(seen, "{kind} on the fleet stream:\n{stream}");
    }

    let out = std::process::Command::new("curl")
        .args(["-s", "--fail", &format!("{}/metrics", coord.url)])
        .output()
        .expect("curl");
    let metrics = String::from_utf8_lossy(&out.stdout);
    for line in [
        "gigafactory_questions_total{change=\"asked\"} 1",
        "gigafactory_questions_total{change=\"answered\"} 1",
        "gigafactory_questions_total{change=\"timed_out\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

#[test]
fn a_timeout_takes_the_default_or_ends_job_ask_with_exit_code_3() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);
    let _f = Factory::start(&coord, "asker", 2, "linux", &dir.path().join("f"));
    let with_default = "a=$(gigafactory job ask \"Deploy?\" --choice yes --choice no \
                        --timeout 2s --default no) && echo \"got: $a\"";
    let without = "gigafactory job ask \"What should I name it?\" --timeout 2s; \
                   echo \"exit: $?\"";
    let defaulted = submit_manifest(&coord, &manifest("deploy", with_default))[0]
        .1
        .clone();
    let timed_out = submit_manifest(&coord, &manifest("name", without))[0]
        .1
        .clone();
    wait_for(Duration::from_secs(40), "both jobs to end", || {
        state(&coord, &defaulted) == "succeeded" && state(&coord, &timed_out) == "succeeded"
    });
    assert!(output(&coord, &defaulted).contains("got: no"));
    assert!(output(&coord, &timed_out).contains("exit: 3"));
    assert_eq!(job(&coord, &defaulted)["question"]["status"], "defaulted");
    assert_eq!(job(&coord, &timed_out)["question"]["status"], "timed_out");
    for id in [&defaulted, &timed_out] {
        let k = kinds(&coord, id);
        assert!(
            k.contains(&"ask".into()) && k.contains(&"question_timeout".into()),
            "{k:?}"
        );
    }
}

fn ask_body(text: &str) -> Value {
    json!({"text": text, "choices": ["yes", "no"], "timeout_ms": 600_000})
}

#[test]
fn a_stale_epochs_ask_a_second_question_and_a_viewers_answer_are_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 30_000);
    let fake = FakeFactory::enroll(&coord);
    let plain =
        "product = \"ask\"\n[[jobs]]\nkey = \"fenced\"\ntitle = \"fenced\"\ncommand = \"true\"\n";
    let id = submit_manifest(&coord, plain)[0].1.clone();
    let (claimed, epoch) = fake.claim(&coord);
    assert_eq!(claimed, id);

    let (status, body) = fake.write_as(&coord, &id, "question", epoch - 1, "q0", ask_body("?"));
    assert_eq!((status, &body["error"]), (409, &json!("fenced")), "{body}");
    assert_eq!(job(&coord, &id)["question"], Value::Null);
    // A misspelt key is refused, named, rather than leaving the question the default hour.
    let typo = json!({"text": "Go?", "timeout": 1_800_000});
    let (status, body) = fake.write_as(&coord, &id, "question", epoch, "q0", typo);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("`timeout`"),
        "{body}"
    );
    assert_eq!(job(&coord, &id)["question"], Value::Null);

    // A retry under the same request id asks once.
    for _ in 0..2 {
        let (status, body) = fake.write_as(&coord, &id, "question", epoch, "q1", ask_body("Go?"));
        assert_eq!(status, 200, "{body}");
    }
    let asks = kinds(&coord, &id).iter().filter(|k| *k == "ask").count();
    assert_eq!(asks, 1);
    let (status, body) = fake.write_as(&coord, &id, "question", epoch, "q2", ask_body("And?"));
    assert_eq!(
        (status, &body["error"]),
        (409, &json!("question_conflict")),
        "{body}"
    );
    assert_eq!(job(&coord, &id)["question"]["id"], "q1");

    let (viewer, _) = mint(&coord, "viewer", "watcher");
    let url = format!("{}/v1/jobs/{id}/answer", coord.url);
    let yes = json!({"question_id": "q1", "answer": "yes"}).to_string();
    let (status, _) = call("POST", &url, Some(&viewer), Some(&yes));
    assert_eq!(status, 403, "viewers see, operators answer");
    let (status, body) = call("POST", &url, Some(&coord.admin), Some(&yes));
    assert_eq!(status, 200, "{body}");

    // The factory polls its outcome under its lease; a stale epoch learns nothing.
    let poll = |e: u64| {
        call(
            "GET",
            &format!("{}/v1/jobs/{id}/question?epoch={e}", coord.url),
            Some(&fake.token),
            None,
        )
    };
    let (status, view) = poll(epoch);
    assert_eq!(
        (status, &view["status"], &view["answer"]),
        (200, &json!("answered"), &json!("yes"))
    );
    assert_eq!(poll(epoch - 1).0, 409);

    // A new question: an answer meant for the old one (an operator reading a stale page) is
    // refused, names the open one, and leaves it open.
    let drop = ask_body("Drop the users table?");
    let (status, body) = fake.write_as(&coord, &id, "question", epoch, "q3", drop);
    assert_eq!(status, 200, "{body}");
    let before = job(&coord, &id);
    let (status, body) = call("POST", &url, Some(&coord.admin), Some(&yes));
    assert_eq!(
        (status, &body["error"]),
        (409, &json!("question_conflict")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("question changed") && message.contains("Drop the users table?"),
        "{body}"
    );
    let after = job(&coord, &id);
    assert_eq!(
        (&after["updated_at"], &after["question"]),
        (&before["updated_at"], &before["question"]),
        "nothing changed"
    );
    // The CLI pinned to the old question is refused the same way.
    let (ok, _, err) = cli(&coord, &["jobs", "answer", &id, "yes", "--question", "q1"]);
    assert!(!ok && err.contains("question changed"), "{err}");
    assert_eq!(job(&coord, &id)["question"]["status"], "open");

    // Once the lease ends, the open question of the job is closed with it.
    let (status, body) = call(
        "POST",
        &url,
        Some(&coord.admin),
        Some(&json!({"question_id": "q3", "answer": "maybe"}).to_string()),
    );
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_request")),
        "{body}"
    );
    let (status, _) = fake.write(&coord, &id, "release", epoch, json!({}));
    assert_eq!(status, 200);
    let view = job(&coord, &id);
    assert_eq!(view["question"]["status"], "closed", "{view}");
    assert_eq!(view["question"]["closed_by"], "release", "{view}");
    let yes = json!({"question_id": "q3", "answer": "yes"}).to_string();
    let (status, body) = call("POST", &url, Some(&coord.admin), Some(&yes));
    assert_eq!(
        (status, &body["error"]),
        (409, &json!("question_conflict")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("closed when its lease ended"),
        "{body}"
    );
}

//! End to end with real processes: a coordinator and factories on loopback. Jobs run exactly
//! once; a factory killed or paused mid-job loses its lease to another factory and is fenced;
//! a coordinator killed under load loses nothing it acknowledged; a coordinator down past the
//! lease TTL while jobs run costs them neither their run nor an attempt.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use common::*;

fn ran_ids(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn two_hundred_jobs_run_exactly_once_across_two_factories() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);
    let _a = Factory::start(&coord, "a", 4, "linux", &dir.path().join("fa"));
    let _b = Factory::start(&coord, "b", 4, "linux", &dir.path().join("fb"));
    let ran = dir.path().join("ran.log");
    let mut manifest = String::from("product = \"e2e\"\n");
    for n in 0..200 {
        manifest.push_str(&format!(
            "[[jobs]]\nkey = \"j{n}\"\ntitle = \"job {n}\"\ncapabilities = [\"linux\"]\ncommand = \"echo $GF_JOB_ID >> {}\"\n",
            ran.display()
        ));
    }
    let ids: BTreeSet<String> = submit_manifest(&coord, &manifest)
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    assert_eq!(ids.len(), 200);
    wait_for(Duration::from_secs(180), "200 jobs to succeed", || {
        get(&coord, "/v1/jobs?product=e2e&state=succeeded&limit=500")["jobs"]
            .as_array()
            .unwrap()
            .len()
            == 200
    });
    let ran = ran_ids(&ran);
    assert_eq!(ran.len(), 200, "a job ran more than once or not at all");
    assert_eq!(ran.into_iter().collect::<BTreeSet<_>>(), ids);
    for id in &ids {
        assert_eq!(job(&coord, id)["attempts"], 1);
    }
}

/// Starts one factory, gives it a job that runs a while, and waits until it runs there.
fn job_running_on(
    coord: &Coordinator,
    factory_dir: &std::path::Path,
    command: &str,
) -> (Factory, String) {
    let a = Factory::start(coord, "a", 1, "linux", factory_dir);
    let manifest = format!(
        "product = \"e2e\"\n[[jobs]]\nkey = \"long\"\ntitle = \"long job\"\ncommand = \"{command}\"\n"
    );
    let id = submit_manifest(coord, &manifest).remove(0).1;
    wait_for(
        Duration::from_secs(30),
        "the job to run on factory a",
        || state(coord, &id) == "running",
    );
    (a, id)
}

#[test]
fn a_factory_killed_mid_job_loses_it_to_another_factory() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 2_000);
    let (mut a, id) = job_running_on(&coord, &dir.path().join("fa"), "sleep 1; echo finished");
    let a_id = a.identity().0;
    a.kill();
    let b = Factory::start(&coord, "b", 1, "linux", &dir.path().join("fb"));
    let b_id = b.identity_after_enroll();
    wait_for(
        Duration::from_secs(60),
        "the job to succeed on factory b",
        || state(&coord, &id) == "succeeded",
    );
    let j = job(&coord, &id);
    assert_eq!(j["attempts"], 2);
    assert_eq!(
        j["epoch"], 3,
        "claim, expiry and the second claim each bumped the epoch"
    );
    let evs = events(&coord, &id);
    let kinds: Vec<&str> = evs.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"expire"), "{kinds:?}");
    let claims: Vec<&str> = evs
        .iter()
        .filter(|e| e["kind"] == "claim")
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        claims,
        vec![format!("factory {a_id}"), format!("factory {b_id}")]
    );
    let completes: Vec<&str> = evs
        .iter()
        .filter(|e| e["kind"] == "complete")
        .map(|e| e["factory_id"].as_str().unwrap())
        .collect();
    assert_eq!(completes, vec![b_id.as_str()]);
}

impl Factory {
    /// Waits for the factory to enroll, then returns its id.
    fn identity_after_enroll(&self) -> String {
        wait_for(Duration::from_secs(30), "the factory to enroll", || {
            self.workdir.join(".gigafactory/identity.json").exists()
        });
        self.identity().0
    }
}

#[test]
fn a_paused_factory_is_fenced_and_the_job_finishes_once_elsewhere() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 2_000);
    let (a, id) = job_running_on(&coord, &dir.path().join("fa"), "sleep 4; echo finished");
    let (a_id, a_token) = a.identity();
    let epoch = job(&coord, &id)["epoch"].as_u64().unwrap();
    a.signal(libc::SIGSTOP);
    let b = Factory::start(&coord, "b", 1, "linux", &dir.path().join("fb"));
    let b_id = b.identity_after_enroll();
    wait_for(Duration::from_secs(60), "factory b to hold the job", || {
        job(&coord, &id)["lease"]["factory_id"].as_str() == Some(b_id.as_str())
    });
    // What the paused factory will send when it wakes: refused with the current epoch.
    let body = format!("{{\"epoch\": {epoch}, \"request_id\": \"late-renew\"}}");
    let (status, v) = call(
        "POST",
        &format!("{}/v1/jobs/{id}/renew", coord.url),
        Some(&a_token),
        Some(&body),
    );
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["error"], "fenced");
    assert!(v["current_epoch"].as_u64().unwrap() > epoch);
    let body = format!("{{\"epoch\": {epoch}, \"request_id\": \"late-complete\"}}");
    let (status, v) = call(
        "POST",
        &format!("{}/v1/jobs/{id}/complete", coord.url),
        Some(&a_token),
        Some(&body),
    );
    assert_eq!((status, v["error"].as_str()), (409, Some("fenced")));
    a.signal(libc::SIGCONT);
    wait_for(Duration::from_secs(60), "the job to succeed", || {
        state(&coord, &id) == "succeeded"
    });
    // Give the woken factory time to try its own late writes.
    std::thread::sleep(Duration::from_secs(3));
    let evs = events(&coord, &id);
    let completes: Vec<String> = evs
        .iter()
        .filter(|e| e["kind"] == "complete")
        .map(|e| e["factory_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        completes,
        vec![b_id.clone()],
        "finished once, by b (a is {a_id})"
    );
    assert_eq!(state(&coord, &id), "succeeded");
}

#[test]
fn a_coordinator_killed_under_load_loses_no_acknowledged_submit_or_completion() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut coord = Coordinator::start(dir.path(), 5_000);
    let _a = Factory::start(&coord, "a", 2, "linux", &dir.path().join("fa"));
    let _b = Factory::start(&coord, "b", 2, "linux", &dir.path().join("fb"));
    let ran = dir.path().join("ran.log");
    let mut acked: Vec<String> = Vec::new();
    let submit = |coord: &Coordinator, n: usize| {
        let body = format!(
            "{{\"key\": \"k{n}\", \"title\": \"job {n}\", \"product\": \"e2e\", \"payload\": {{\"command\": \"sleep 0.2; echo $GF_JOB_ID >> {}\"}}}}",
            ran.display()
        );
        let (status, v) = post(coord, "/v1/jobs", &body);
        (status == 201).then(|| v["id"].as_str().unwrap().to_string())
    };
    for n in 0..60 {
        if let Some(id) = submit(&coord, n) {
            acked.push(id);
        }
        if n == 30 {
            coord.kill();
            coord.restart();
        }
    }
    assert!(
        acked.len() >= 59,
        "submits to a live coordinator are acknowledged"
    );
    // Completions acknowledged before the kill must still be there after it.
    let succeeded_before: Vec<String> = acked
        .iter()
        .filter(|id| state(&coord, id) == "succeeded")
        .cloned()
        .collect();
    coord.kill();
    coord.restart();
    for id in &succeeded_before {
        assert_eq!(
            state(&coord, id),
            "succeeded",
            "an acknowledged completion was lost"
        );
    }
    wait_for(
        Duration::from_secs(120),
        "every acknowledged job to succeed",
        || acked.iter().all(|id| state(&coord, id) == "succeeded"),
    );
    let runs: HashMap<String, usize> =
        ran_ids(&ran).into_iter().fold(HashMap::new(), |mut m, id| {
            *m.entry(id).or_default() += 1;
            m
        });
    for id in &acked {
        let attempts = job(&coord, id)["attempts"].as_u64().unwrap() as usize;
        let n = runs.get(id).copied().unwrap_or(0);
        assert!(
            n >= 1 && n <= attempts,
            "job {id} ran {n} times in {attempts} attempts"
        );
    }
}

#[test]
fn a_coordinator_down_past_the_lease_ttl_costs_running_jobs_no_restart_and_no_attempt() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    const TTL_MS: u64 = 2_000;
    let mut coord = Coordinator::start(dir.path(), TTL_MS);
    let ran = dir.path().join("ran.log");
    let command = format!("echo $GF_JOB_ID >> {}; sleep 8", ran.display());
    let (_a, id) = job_running_on(&coord, &dir.path().join("fa"), &command);

    coord.kill();
    // The outage itself: three TTLs with no node to hear the factory's renewals.
    std::thread::sleep(Duration::from_millis(3 * TTL_MS));
    coord.restart();
    wait_for(Duration::from_secs(60), "the job to succeed", || {
        state(&coord, &id) == "succeeded"
    });
    let done = job(&coord, &id);
    assert_eq!(done["attempts"], 1, "not restarted: {done}");
    assert_eq!(done["failures"], 0, "not counted as a failure: {done}");
    assert_eq!(ran_ids(&ran), vec![id.clone()], "ran once");
    assert!(
        coord.log().contains("no coordinator node was heard"),
        "the node says why it holds back the reaper"
    );
}

/// Reads a job's log stream (SSE) for `secs`, optionally resuming after `last_event_id`:
/// the `(id, data)` of every `log` event.
fn sse_logs(
    coord: &Coordinator,
    id: &str,
    last_event_id: Option<&str>,
    secs: u32,
) -> Vec<(String, String)> {
    let mut cmd = std::process::Command::new("curl");
    cmd.args([
        "-s",
        "-N",
        "--max-time",
        &secs.to_string(),
        "-H",
        "Accept: text/event-stream",
    ])
    .args(["-H", &format!("Authorization: Bearer {}", coord.admin)]);
    if let Some(l) = last_event_id {
        cmd.args(["-H", &format!("Last-Event-ID: {l}")]);
    }
    let out = cmd
        .arg(format!("{}/v1/jobs/{id}/logs", coord.url))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.split("\n\n")
        .filter(|block| block.contains("event: log"))
        .map(|block| {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
                    .unwrap_or_default()
            };
            let data: serde_json::Value = serde_json::from_str(&field("data")).unwrap();
            (field("id"), data["data"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn logs_stream_live_and_resume_after_a_reconnect_without_loss_or_repeat() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);
    let _a = Factory::start(&coord, "a", 1, "linux", &dir.path().join("fa"));
    let manifest = "product = \"e2e\"\n[[jobs]]\nkey = \"talk\"\ntitle = \"talk\"\ncommand = \"for i in 1 2 3 4 5 6; do echo line $i; sleep 0.4; done\"\n";
    let id = submit_manifest(&coord, manifest).remove(0).1;
    // Follow from the start while the job runs: every line arrives, in order, once.
    let live = sse_logs(&coord, &id, None, 8);
    let text: String = live.iter().map(|(_, d)| d.as_str()).collect();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        ["line 1", "line 2", "line 3", "line 4", "line 5", "line 6"],
        "{live:?}"
    );
    wait_for(Duration::from_secs(30), "the job to succeed", || {
        state(&coord, &id) == "succeeded"
    });
    // Reconnect after the first event: the rest, nothing repeated.
    let resumed = sse_logs(&coord, &id, Some(&live[0].0), 2);
    let rest: String = resumed.iter().map(|(_, d)| d.as_str()).collect();
    let first: String = live[0].1.clone();
    assert_eq!(format!("{first}{rest}"), text);
}

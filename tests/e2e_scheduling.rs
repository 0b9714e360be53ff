//! End to end with real processes: preemption on a full fleet, the dependency DAG, and
//! idempotent submission.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_high_priority_job_preempts_a_low_one_which_resumes_from_its_checkpoint() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);
    let _f = Factory::start(&coord, "only", 1, "linux", &dir.path().join("f"));
    // The low job saves a checkpoint when asked to stop, and finishes at once when it has one.
    let low_cmd = r#"if [ -n \"$GF_CHECKPOINT\" ]; then echo resumed from $GF_CHECKPOINT; exit 0; fi; trap 'gigafactory job checkpoint saved-by-$GF_ATTEMPT; exit 0' TERM; echo low started; while true; do sleep 0.1; done"#;
    let manifest = format!(
        "product = \"e2e\"\n[[jobs]]\nkey = \"low\"\ntitle = \"low\"\npriority = 10\npreemptible = true\ncommand = \"{low_cmd}\"\n"
    );
    let low = submit_manifest(&coord, &manifest).remove(0).1;
    wait_for(Duration::from_secs(30), "the low job to run", || {
        state(&coord, &low) == "running"
    });
    let high = submit_manifest(&coord, "product = \"e2e\"\n[[jobs]]\nkey = \"high\"\ntitle = \"high\"\npriority = 900\ncommand = \"echo high ran\"\n")
        .remove(0)
        .1;
    wait_for(Duration::from_secs(60), "the high job to succeed", || {
        state(&coord, &high) == "succeeded"
    });
    wait_for(Duration::from_secs(60), "the low job to succeed", || {
        state(&coord, &low) == "succeeded"
    });
    let kinds: Vec<String> = events(&coord, &low)
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(
        kinds.contains(&"preempt".to_string()) && kinds.contains(&"release".to_string()),
        "{kinds:?}"
    );
    let j = job(&coord, &low);
    assert_eq!(j["attempts"], 2);
    assert_eq!(j["failures"], 0, "a preemption is not a failure");
    let logs = get(&coord, &format!("/v1/jobs/{low}/logs"));
    let text: String = logs
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["data"].as_str().unwrap())
        .collect();
    assert!(text.contains("resumed from saved-by-1"), "{text}");
    // The high job ran while the low one was out: its claim precedes the low job's second one.
    let high_claim = events(&coord, &high)
        .iter()
        .find(|e| e["kind"] == "claim")
        .unwrap()["at"]
        .as_u64()
        .unwrap();
    let low_claims: Vec<u64> = events(&coord, &low)
        .iter()
        .filter(|e| e["kind"] == "claim")
        .map(|e| e["at"].as_u64().unwrap())
        .collect();
    assert!(
        low_claims[0] < high_claim && high_claim <= low_claims[1],
        "{low_claims:?} vs {high_claim}"
    );
}

#[test]
fn children_wait_for_parents_cycles_are_refused_and_submits_are_idempotent() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);

    let cyclic = "product = \"e2e\"\n[[jobs]]\nkey = \"a\"\ntitle = \"a\"\ncommand = \"true\"\ndeps = [\"b\"]\n[[jobs]]\nkey = \"b\"\ntitle = \"b\"\ncommand = \"true\"\ndeps = [\"a\"]\n";
    let (status, v) = call(
        "POST",
        &format!("{}/v1/manifests", coord.url),
        Some(&coord.admin),
        Some(cyclic),
    );
    assert_eq!(
        (status, v["error"].as_str()),
        (422, Some("invalid_manifest")),
        "{v}"
    );
    assert!(
        v["details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_str().unwrap().contains("a -> b -> a")),
        "{v}"
    );
    assert!(
        get(&coord, "/v1/jobs?product=e2e")["jobs"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing was submitted"
    );

    let dag = "product = \"e2e\"\n[[jobs]]\nkey = \"parent\"\ntitle = \"parent\"\ncommand = \"sleep 1\"\n[[jobs]]\nkey = \"child\"\ntitle = \"child\"\ncommand = \"true\"\ndeps = [\"parent\"]\n";
    let ids = submit_manifest(&coord, dag);
    let (parent, child) = (&ids[0].1, &ids[1].1);
    assert_eq!(state(&coord, child), "pending");
    let dagv = get(&coord, &format!("/v1/jobs/{parent}/dag"));
    assert_eq!(dagv["children"][0]["id"].as_str(), Some(child.as_str()));
    let _f = Factory::start(&coord, "f", 2, "linux", &dir.path().join("f"));
    wait_for(Duration::from_secs(60), "both jobs to succeed", || {
        state(&coord, child) == "succeeded"
    });
    let parent_done = events(&coord, parent)
        .iter()
        .find(|e| e["kind"] == "complete")
        .unwrap()["at"]
        .as_u64()
        .unwrap();
    let child_claimed = events(&coord, child)
        .iter()
        .find(|e| e["kind"] == "claim")
        .unwrap()["at"]
        .as_u64()
        .unwrap();
    assert!(
        child_claimed >= parent_done,
        "the child ran before its parent finished"
    );

    let body = r#"{"key": "once", "title": "once", "product": "e2e", "payload": {"command": "true"}, "idempotency_key": "e2e/once"}"#;
    let (s1, first) = post(&coord, "/v1/jobs", body);
    let (s2, second) = post(&coord, "/v1/jobs", body);
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(first["id"], second["id"]);
    assert_eq!(
        (first["created"].as_bool(), second["created"].as_bool()),
        (Some(true), Some(false))
    );
    let again = submit_manifest(
        &coord,
        "product = \"e2e\"\n[[jobs]]\nkey = \"once\"\ntitle = \"once\"\ncommand = \"true\"\nidempotency_key = \"e2e/once\"\n",
    );
    assert_eq!(
        Some(again[0].1.as_str()),
        first["id"].as_str(),
        "a manifest honours idempotency keys too"
    );
}

#[test]
fn a_warm_factory_takes_its_affinity_job_and_a_cold_one_takes_it_while_the_warm_one_is_busy() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 10_000);
    let warm_args = ["--warm", "repo:acme/api"];
    let (url, d) = (coord.url.clone(), dir.path());
    let _warm =
        Factory::start_with_args(&coord, &url, "warm", 1, "linux", &d.join("w"), &warm_args);
    let _cold = Factory::start(&coord, "cold", 1, "linux", &d.join("c"));
    wait_for(
        Duration::from_secs(20),
        "warm to report its warm key",
        || {
            get(&coord, "/v1/factories")
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["name"] == "warm" && f["warm"] == serde_json::json!(["repo:acme/api"]))
                && get(&coord, "/v1/factories").as_array().unwrap().len() == 2
        },
    );
    // Both wait for work (their claims long-poll); the job goes to the warm one.
    std::thread::sleep(Duration::from_millis(1_500));
    let job = |key: &str| {
        format!(
            "product = \"e2e\"\n[[jobs]]\nkey = \"{key}\"\ntitle = \"{key}\"\naffinity = \"repo:acme/api\"\ncommand = \"sleep 3\"\n"
        )
    };
    let first = submit_manifest(&coord, &job("first")).remove(0).1;
    wait_for(Duration::from_secs(20), "the first job to run", || {
        state(&coord, &first) == "running"
    });
    let factory_of = |id: &str| {
        let f = job_factory(&coord, id);
        get(&coord, &format!("/v1/factories/{f}"))["name"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(factory_of(&first), "warm");
    let placement = job_json(&coord, &first)["placement"].clone();
    let affinity = placement["factors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "affinity")
        .unwrap()["raw"]
        .clone();
    assert_eq!(affinity, 1.0, "{placement}");
    // The warm one is busy: the cold one takes the next rather than leave it waiting.
    let second = submit_manifest(&coord, &job("second")).remove(0).1;
    wait_for(Duration::from_secs(20), "the second job to run", || {
        state(&coord, &second) == "running"
    });
    assert_eq!(factory_of(&second), "cold");
}

fn job_json(coord: &Coordinator, id: &str) -> serde_json::Value {
    get(coord, &format!("/v1/jobs/{id}"))
}

fn job_factory(coord: &Coordinator, id: &str) -> String {
    job_json(coord, id)["lease"]["factory_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

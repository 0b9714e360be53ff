//! Two coordinator nodes on one three-member etcd cluster (real processes): work submitted on
//! one node reaches claims waiting on the other through a store watch, fleet events committed
//! through one node stream live from the other, a factory fails over between nodes when one
//! dies, a concurrency limit holds across nodes, a node preempts a job it never saw
//! start, and any node answers scaling hints for the whole cluster's queue.
//!
//! The nodes share a local etcd cluster, or, in a build with the `fdb` feature and
//! `FDB_CLUSTER_FILE` set, that FoundationDB cluster (each test in a namespace of its own):
//! `FDB_CLUSTER_FILE=/etc/foundationdb/fdb.cluster cargo test --features etcd,fdb --test
//! e2e_cluster`.

#![cfg(feature = "etcd")]

mod common;

use std::time::{Duration, Instant};

use common::tracker::FakeTracker;
use common::*;
use gigafactory_storage::LocalEtcdCluster;

/// The store the nodes of one test share.
enum Shared {
    Etcd(LocalEtcdCluster),
    #[cfg(feature = "fdb")]
    Fdb(String),
}

impl Shared {
    fn start() -> Self {
        #[cfg(feature = "fdb")]
        if let Ok(cluster_file) = std::env::var("FDB_CLUSTER_FILE") {
            return Shared::Fdb(cluster_file);
        }
        Shared::Etcd(LocalEtcdCluster::start(3).expect("etcd cluster"))
    }

    /// The store URL with keys under `namespace`. On FoundationDB, whose cluster outlives the
    /// test, each call names a fresh namespace (its keys stay behind): call it once per test
    /// and hand the URL to every node.
    fn url(&self, namespace: &str) -> String {
        match self {
            Shared::Etcd(etcd) => etcd.store_url(namespace),
            #[cfg(feature = "fdb")]
            Shared::Fdb(cluster_file) => {
                let run = uuid::Uuid::now_v7().simple();
                format!("fdb:{cluster_file}#gigafactory-e2e/{run}/{namespace}")
            }
        }
    }
}

fn two_nodes(dir: &std::path::Path, store: &Shared) -> (Coordinator, Coordinator) {
    let store = store.url("e2e-cluster/");
    let a = Coordinator::start_on(&dir.join("a"), &store, 3_000, None);
    let b = Coordinator::start_on(&dir.join("b"), &store, 3_000, Some(&a.admin));
    (a, b)
}

#[test]
fn a_claim_waiting_on_one_node_wakes_for_a_job_submitted_on_another() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = Shared::start();
    let (a, b) = two_nodes(dir.path(), &store);
    let (status, f) = call(
        "POST",
        &format!("{}/v1/factories/enroll", a.url),
        Some(&enrollment_token(&a)),
        Some(r#"{"name": "f", "os": "linux", "arch": "x86_64", "slots": 1}"#),
    );
    assert_eq!(status, 200, "{f}");
    let token = f["token"].as_str().unwrap().to_string();
    let claim_url = format!("{}/v1/claims", a.url);
    let waiting = std::thread::spawn(move || {
        let started = Instant::now();
        let got = call(
            "POST",
            &claim_url,
            Some(&token),
            Some(r#"{"max_jobs": 1, "wait_ms": 20000}"#),
        );
        (got, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    let (status, made) = post(
        &b,
        "/v1/jobs",
        r#"{"key": "x", "title": "x", "product": "e2e", "payload": {"command": "true"}}"#,
    );
    assert_eq!(status, 201, "{made}");
    let ((status, claimed), waited) = waiting.join().unwrap();
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(claimed["jobs"][0]["job_id"], made["id"]);
    assert!(
        waited < Duration::from_secs(10),
        "woken by the submit, not by the long-poll's end ({waited:?})"
    );
}

/// Follows a node's fleet stream (`/v1/events`, SSE) with curl: every event's id and JSON, as
/// it arrives. The curl process is killed on drop.
struct FleetFollower {
    curl: std::process::Child,
    events: std::sync::mpsc::Receiver<(String, serde_json::Value)>,
}

impl FleetFollower {
    fn start(node: &Coordinator, last_event_id: Option<&str>) -> Self {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-s", "-N", "-H", "Accept: text/event-stream"])
            .args(["-H", &format!("Authorization: Bearer {}", node.admin)]);
        if let Some(id) = last_event_id {
            cmd.args(["-H", &format!("Last-Event-ID: {id}")]);
        }
        let mut curl = cmd
            .arg(format!("{}/v1/events", node.url))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("curl");
        let out = std::io::BufReader::new(curl.stdout.take().unwrap());
        let (tx, events) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut id = String::new();
            for line in out.lines().map_while(Result::ok) {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.to_string();
                } else if let Some(data) = line.strip_prefix("data: ") {
                    let event = serde_json::from_str(data).expect("an event is JSON");
                    if tx.send((std::mem::take(&mut id), event)).is_err() {
                        return;
                    }
                }
            }
        });
        FleetFollower { curl, events }
    }

    /// The next event that is about job `id`, within `within`.
    fn next_for_job(
        &self,
        id: &serde_json::Value,
        within: Duration,
    ) -> (String, serde_json::Value) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (event_id, event) = self
                .events
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no fleet event for job {id} within {within:?}"));
            if event["job_id"] == *id {
                return (event_id, event);
            }
        }
    }
}

impl Drop for FleetFollower {
    fn drop(&mut self) {
        let _ = self.curl.kill();
        let _ = self.curl.wait();
    }
}

#[test]
fn a_job_submitted_through_one_node_shows_live_on_the_other_nodes_fleet_stream() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = Shared::start();
    let (a, b) = two_nodes(dir.path(), &store);
    let a_id = get(&a, "/v1/cluster")["this_node"].clone();
    let b_id = get(&b, "/v1/cluster")["this_node"].clone();
    let on_a = FleetFollower::start(&a, None);
    let submit = |key: &str| {
        let body = format!(
            r#"{{"key": "{key}", "title": "{key}", "product": "e2e", "payload": {{"command": "true"}}}}"#
        );
        let (status, made) = post(&b, "/v1/jobs", &body);
        assert_eq!(status, 201, "{made}");
        made["id"].clone()
    };
    let first = submit("first");
    let (first_id, event) = on_a.next_for_job(&first, Duration::from_secs(10));
    assert_eq!(event["kind"], "submitted");
    assert_eq!(
        event["node"], b_id,
        "the event names the node that committed it"
    );
    assert!(
        first_id.starts_with(&format!("{}:", a_id.as_str().unwrap())),
        "ids number events in the stream of the node serving it: {first_id}"
    );
    let second = submit("second");
    let (second_id, _) = on_a.next_for_job(&second, Duration::from_secs(10));
    // A follower that reconnects after the first event resumes with the second: nothing of
    // what it saw comes again, nothing after it is lost.
    let resumed = FleetFollower::start(&a, Some(&first_id));
    let (next_id, next) = resumed
        .events
        .recv_timeout(Duration::from_secs(10))
        .expect("the resumed stream sends the kept events after its id");
    assert_eq!((next_id, &next["job_id"]), (second_id, &second));
}

#[test]
fn a_factory_fails_over_to_another_node_when_its_node_dies() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = Shared::start();
    let (mut a, b) = two_nodes(dir.path(), &store);
    let urls = format!("{},{}", a.url, b.url);
    let _f = Factory::start_with_args(&a, &urls, "f", 2, "linux", &dir.path().join("f"), &[]);
    let mut manifest = String::from("product = \"e2e\"\n");
    for n in 0..10 {
        manifest.push_str(&format!(
            "[[jobs]]\nkey = \"j{n}\"\ntitle = \"j{n}\"\ncommand = \"sleep 0.3\"\n"
        ));
    }
    let ids = submit_manifest(&b, &manifest);
    wait_for(Duration::from_secs(60), "a first job to succeed", || {
        ids.iter().any(|(_, id)| state(&b, id) == "succeeded")
    });
    a.kill();
    wait_for(
        Duration::from_secs(120),
        "every job to succeed through node b",
        || ids.iter().all(|(_, id)| state(&b, id) == "succeeded"),
    );
}

/// Live nodes and how many shards each holds, from one node's cluster view.
fn shard_owners(node: &Coordinator) -> (usize, std::collections::BTreeMap<String, usize>) {
    let v = get(node, "/v1/cluster");
    let live = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n[0] == true)
        .count();
    let mut owners = std::collections::BTreeMap::new();
    for s in v["shards"].as_array().unwrap() {
        if let Some(owner) = s[1]["owner"].as_str() {
            *owners.entry(owner.to_string()).or_insert(0) += 1;
        }
    }
    (live, owners)
}

#[test]
fn a_dead_nodes_shards_are_re_owned_within_two_lease_ttls() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::start();
    let store = shared.url("e2e-shards/");
    let a = Coordinator::start_on(&dir.path().join("a"), &store, 3_000, None);
    let b = Coordinator::start_on(&dir.path().join("b"), &store, 3_000, Some(&a.admin));
    let mut c = Coordinator::start_on(&dir.path().join("c"), &store, 3_000, Some(&a.admin));
    wait_for(
        Duration::from_secs(30),
        "three nodes sharing all 16 shards",
        || {
            let (live, owners) = shard_owners(&a);
            live == 3
                && owners.len() == 3
                && owners.values().sum::<usize>() == 16
                && owners.values().all(|n| *n <= 6)
        },
    );
    let c_id = get(&c, "/v1/cluster")["this_node"]
        .as_str()
        .unwrap()
        .to_string();
    c.kill();
    let killed = Instant::now();
    // The node lease TTL is 3 s (the default); the target is re-ownership within 2× that.
    wait_for(
        Duration::from_secs(30),
        "the dead node's shards to move",
        || {
            let (_, owners) = shard_owners(&b);
            !owners.contains_key(&c_id) && owners.values().sum::<usize>() == 16
        },
    );
    let took = killed.elapsed();
    eprintln!("shards re-owned {took:?} after the node was killed");
    assert!(
        took <= Duration::from_secs(6) + Duration::from_millis(1500),
        "re-owned after {took:?}"
    );
}

#[test]
fn usage_reported_to_a_node_killed_mid_report_is_counted_once_when_retried_on_another() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = Shared::start();
    let (mut a, b) = two_nodes(dir.path(), &store);
    clear_of_utc_midnight(Duration::from_secs(180));
    let budget = r#"{"product": "ops", "period": "day", "limit_micros": 100000000}"#;
    let (status, v) = call(
        "PUT",
        &format!("{}/v1/budgets/ops-daily", a.url),
        Some(&a.admin),
        Some(budget),
    );
    assert_eq!(status, 200, "{v}");
    let factory = FakeFactory::enroll(&a);
    let job = r#"{"key": "k", "title": "t", "product": "ops", "payload": {"command": "x"}}"#;
    let (status, v) = post(&a, "/v1/jobs", job);
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let (claimed, epoch) = factory.claim(&a);
    assert_eq!(claimed, id);

    let report = format!(
        r#"{{"epoch": {epoch}, "request_id": "u1", "model": "gpt", "cost_micros": 2500000}}"#
    );
    let url = format!("{}/v1/jobs/{id}/usage", a.url);
    let token = factory.token.clone();
    let sent = report.clone();
    let in_flight = std::thread::spawn(move || call("POST", &url, Some(&token), Some(&sent)));
    a.kill();
    // Whatever node a did with it (committed, or not), the retry through b counts it once.
    let first = in_flight.join().unwrap();
    let retried = call(
        "POST",
        &format!("{}/v1/jobs/{id}/usage", b.url),
        Some(&factory.token),
        Some(&report),
    );
    assert_eq!(retried.0, 200, "first answer {first:?}, retry {retried:?}");
    let detail = get(&b, "/v1/budgets/ops-daily");
    assert_eq!(
        detail["budget"]["spent_micros"], 2_500_000,
        "first answer {first:?}"
    );
    assert_eq!(
        get(&b, &format!("/v1/jobs/{id}"))["cost"]["total_micros"],
        2_500_000
    );
}

#[test]
fn a_killed_nodes_tracker_deliveries_resume_on_another_node() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = Shared::start();
    let url = store.url("e2e-cluster/");
    // The tracker's callback is down at first: the echo waits, retried, in the store.
    let tracker = FakeTracker::start(0, 0, Duration::ZERO);
    tracker
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let config = format!(
        "[intake.gen]\nkind = \"generic\"\nsecret = \"s\"\ncallback_url = \"{}\"\n\
         [[intake.gen.rules]]\nproduct = \"app\"\n\
         [outbox]\nbackoff_base_ms = 100\nbackoff_cap_ms = 300\ntries_max = 100\ntimeout_ms = 300\n",
        tracker.url
    );
    let mut a =
        Coordinator::start_configured(&dir.path().join("a"), &url, 3_000, None, Some(&config));
    let b = Coordinator::start_configured(
        &dir.path().join("b"),
        &url,
        3_000,
        Some(&a.admin),
        Some(&config),
    );
    let item = r#"{"id": "T-1", "revision": "1", "title": "Do it"}"#;
    let sig = gigafactory_core::tracker::sign(b"s", item.as_bytes());
    let (status, v) = call_with(
        "POST",
        &format!("{}/v1/intake/gen", a.url),
        &[("x-gigafactory-signature", &sig)],
        item,
    );
    assert_eq!(status, 200, "{v}");
    let factory = FakeFactory::enroll(&a);
    factory.claim(&a);
    wait_for(Duration::from_secs(10), "a failed try", || {
        !tracker.received().is_empty()
    });
    // The node that may own the echo's shard dies; the tracker comes back; b delivers it.
    a.kill();
    tracker
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    wait_for(Duration::from_secs(20), "delivered through b", || {
        get(&b, "/v1/items/gen/T-1")["deliveries"][0]["status"] == "delivered"
    });
    assert!(tracker.acknowledged().contains(&"started".to_string()));
}

#[test]
fn an_artifact_uploaded_through_one_node_reads_back_through_the_other() {
    use common::artifacts::{download, noise, upload};
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = Shared::start();
    let (a, b) = two_nodes(dir.path(), &store);
    let factory = FakeFactory::enroll(&a);
    let job = r#"{"key": "k", "title": "t", "product": "ops", "payload": {"command": "x"}}"#;
    let (status, v) = post(&a, "/v1/jobs", job);
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let (_, epoch) = factory.claim(&a);
    let bytes = noise(3 << 20, 21);
    let (status, v) = upload(
        &a.url,
        &factory.token,
        &id,
        "report.md",
        epoch,
        "report",
        &bytes,
        true,
    );
    assert_eq!(status, 200, "{v}");
    let listed = get(&b, &format!("/v1/jobs/{id}/artifacts"));
    assert_eq!(listed[0]["name"], "report.md", "{listed}");
    let (status, _, body) = download(
        &b.url,
        &b.admin,
        &format!("/v1/jobs/{id}/artifacts/1/report.md"),
    );
    assert_eq!(status, 200);
    assert!(body == bytes, "node b serves the bytes node a stored");
}

#[test]
fn a_concurrency_limit_holds_across_nodes_whose_factories_claim_at_once() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = Shared::start();
    let (a, b) = two_nodes(dir.path(), &store);
    let (status, v) = call(
        "PUT",
        &format!("{}/v1/limits/repo:acme%2Fapi", a.url),
        Some(&a.admin),
        Some(r#"{"max_running": 3}"#),
    );
    assert_eq!(status, 200, "{v}");
    // Two slots each: neither factory can fill the limit alone, so both run the keyed jobs
    // at once, claiming through different nodes.
    let _fa = Factory::start(&a, "fa", 2, "linux", &dir.path().join("fa"));
    let _fb = Factory::start(&b, "fb", 2, "linux", &dir.path().join("fb"));
    let manifest = |node: &str| {
        let mut m = String::from("product = \"lim\"\n");
        for n in 0..4 {
            m.push_str(&format!(
                "[[jobs]]\nkey = \"{node}{n}\"\ntitle = \"{node}{n}\"\nconcurrency_key = \"repo:acme/api\"\ncommand = \"sleep 0.8\"\n"
            ));
        }
        m
    };
    let mut ids: Vec<String> = submit_manifest(&a, &manifest("a"))
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    ids.extend(
        submit_manifest(&b, &manifest("b"))
            .into_iter()
            .map(|(_, id)| id),
    );
    wait_for(Duration::from_secs(120), "every job to succeed", || {
        ids.iter().all(|id| state(&a, id) == "succeeded")
    });
    let spans = lease_spans(&a, &ids);
    assert_eq!(spans.len(), 8, "{spans:?}");
    assert!(most_at_once(&spans) <= 3, "more than 3 at once: {spans:?}");
    let claimed_by: std::collections::BTreeSet<String> = ids
        .iter()
        .map(|id| {
            events(&a, id)
                .iter()
                .find(|e| e["kind"] == "claim")
                .unwrap()["factory_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(claimed_by.len(), 2, "both factories took jobs");
    assert_eq!(get(&b, "/v1/limits")[0]["running"], 0);
}

#[test]
fn a_node_preempts_a_job_it_never_saw_start_after_the_node_that_did_died() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = Shared::start();
    let (mut a, b) = two_nodes(dir.path(), &store);
    let urls = format!("{},{}", a.url, b.url);
    let _f = Factory::start_with_args(&a, &urls, "only", 1, "linux", &dir.path().join("f"), &[]);
    let low_cmd = r#"if [ -n \"$GF_CHECKPOINT\" ]; then echo resumed; exit 0; fi; trap 'gigafactory job checkpoint saved; exit 0' TERM; while true; do sleep 0.1; done"#;
    let low = submit_manifest(
        &a,
        &format!("product = \"e2e\"\n[[jobs]]\nkey = \"low\"\ntitle = \"low\"\npriority = 10\ncommand = \"{low_cmd}\"\n"),
    )
    .remove(0)
    .1;
    wait_for(Duration::from_secs(30), "the low job to run", || {
        state(&a, &low) == "running"
    });
    // The node that granted the lease dies; the factory goes on through b, which never saw
    // the job start.
    a.kill();
    let high = submit_manifest(
        &b,
        "product = \"e2e\"\n[[jobs]]\nkey = \"high\"\ntitle = \"high\"\npriority = 900\ncommand = \"true\"\n",
    )
    .remove(0)
    .1;
    wait_for(Duration::from_secs(60), "the high job to succeed", || {
        state(&b, &high) == "succeeded"
    });
    wait_for(
        Duration::from_secs(60),
        "the low job to resume and succeed",
        || state(&b, &low) == "succeeded",
    );
    let kinds: Vec<String> = events(&b, &low)
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(kinds.contains(&"preempt".to_owned()), "{kinds:?}");
}

#[test]
fn any_node_answers_scaling_hints_for_the_whole_clusters_queue() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = Shared::start();
    let (a, b) = two_nodes(dir.path(), &store);
    let mut manifest = String::from("product = \"e2e\"\n");
    for n in 0..5 {
        manifest.push_str(&format!(
            "[[jobs]]\nkey = \"g{n}\"\ntitle = \"g{n}\"\ncapabilities = [\"gpu\"]\ncommand = \"true\"\n"
        ));
    }
    submit_manifest(&a, &manifest);
    // Each node's scheduler follows the shared ready index, whichever shards it owns: both
    // count all five jobs, once (summing the nodes' answers would count them twice).
    for node in [&a, &b] {
        wait_for(Duration::from_secs(20), "the node to see the queue", || {
            let k = get(node, "/v1/autoscale/keda?capabilities=gpu");
            k["queued"] == 5 && k["desired_factories"] == 5
        });
    }
}

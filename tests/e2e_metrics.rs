//! `/metrics` of a real coordinator, read as Prometheus reads it: on a fresh node every series
//! of the metrics contract is there with its help and type (counters at 0); after a small
//! workload on a real factory (jobs that succeed, one that dies, one queued for a capability
//! no factory has) the state gauges say what happened, histograms come in buckets, and no
//! label value is an id; a renewal is counted, and a stale-epoch write under its route.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use serde_json::json;

/// Every series of the contract (`/work/notes/metrics-contract.md`) with its type.
const CONTRACT: [(&str, &str); 31] = [
    ("gigafactory_jobs_submitted_total", "counter"),
    ("gigafactory_jobs_finished_total", "counter"),
    ("gigafactory_claims_total", "counter"),
    ("gigafactory_claim_latency_seconds", "histogram"),
    ("gigafactory_claim_commit_seconds", "histogram"),
    ("gigafactory_leases_expired_total", "counter"),
    ("gigafactory_preemptions_total", "counter"),
    ("gigafactory_shards_owned", "gauge"),
    ("gigafactory_actor_failures_total", "counter"),
    ("gigafactory_actor_restarts_total", "counter"),
    ("gigafactory_budget_spend_usd", "gauge"),
    ("gigafactory_budget_limit_usd", "gauge"),
    ("gigafactory_budget_spend_ratio", "gauge"),
    ("gigafactory_jobs", "gauge"),
    ("gigafactory_queue_depth_jobs", "gauge"),
    ("gigafactory_queue_oldest_age_seconds", "gauge"),
    ("gigafactory_queue_factories_online", "gauge"),
    ("gigafactory_queue_shapes_omitted", "gauge"),
    ("gigafactory_placements_total", "counter"),
    ("gigafactory_placement_latency_seconds", "histogram"),
    ("gigafactory_leases_granted_total", "counter"),
    ("gigafactory_leases_renewed_total", "counter"),
    ("gigafactory_fenced_writes_total", "counter"),
    ("gigafactory_factories", "gauge"),
    ("gigafactory_factory_slots", "gauge"),
    ("gigafactory_claim_long_poll_seconds", "histogram"),
    ("gigafactory_store_commit_seconds", "histogram"),
    ("gigafactory_store_conflicts_total", "counter"),
    ("gigafactory_store_commit_unknown_total", "counter"),
    ("gigafactory_cluster_nodes", "gauge"),
    ("gigafactory_schedule_runs_total", "counter"),
];

/// Series with a label only a user's object gives (a budget, a product): on a fresh node
/// they have help and type once described, and samples once such an object exists.
const NEED_AN_OBJECT: [&str; 4] = [
    "gigafactory_budget_spend_usd",
    "gigafactory_budget_limit_usd",
    "gigafactory_budget_spend_ratio",
    "gigafactory_jobs",
];

/// One scrape, parsed.
struct Page {
    /// `# TYPE` by family name.
    types: BTreeMap<String, String>,
    helped: BTreeSet<String>,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Page {
    fn scrape(coord: &Coordinator) -> Page {
        let out = std::process::Command::new("curl")
            .args(["-s", "--fail", &format!("{}/metrics", coord.url)])
            .output()
            .expect("curl");
        assert!(out.status.success(), "GET /metrics failed");
        Page::parse(&String::from_utf8(out.stdout).unwrap())
    }

    fn parse(text: &str) -> Page {
        let mut page = Page {
            types: BTreeMap::new(),
            helped: BTreeSet::new(),
            samples: Vec::new(),
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                let before = page.types.insert(name.into(), kind.into());
                assert!(before.is_none(), "{name} typed twice");
            } else if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap();
                assert!(!help.trim().is_empty(), "{name} has an empty help");
                page.helped.insert(name.into());
            } else {
                page.samples.push(sample(line));
            }
        }
        page
    }

    /// The value of the sample `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(v))
            })
            .map(|(_, _, v)| *v)
    }

    fn has_samples(&self, family: &str) -> bool {
        self.samples.iter().any(|(n, _, _)| {
            n == family
                || ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| n.strip_suffix(s) == Some(family))
        })
    }

    /// Every family of the contract with its help and its type, and samples unless `skip`.
    fn check_contract(&self, skip: &[&str]) {
        for (name, kind) in CONTRACT {
            if NEED_AN_OBJECT.contains(&name) && !self.types.contains_key(name) {
                assert!(skip.contains(&name), "{name} missing");
                continue;
            }
            assert_eq!(
                self.types.get(name).map(String::as_str),
                Some(kind),
                "{name}"
            );
            assert!(self.helped.contains(name), "{name} has no help");
            if !skip.contains(&name) {
                assert!(self.has_samples(name), "{name} has no sample");
            }
        }
    }
}

/// `name{k="v",...} value`, label values unescaped.
fn sample(line: &str) -> (String, BTreeMap<String, String>, f64) {
    let (head, value) = line.rsplit_once(' ').unwrap();
    let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
    let Some((name, rest)) = head.split_once('{') else {
        return (head.into(), BTreeMap::new(), value);
    };
    let mut labels = BTreeMap::new();
    let mut chars = rest.strip_suffix('}').unwrap().chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "{line}");
        let mut v = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => v.push(match chars.next() {
                    Some('n') => '\n',
                    Some(other) => other,
                    None => panic!("{line}"),
                }),
                '"' => break,
                c => v.push(c),
            }
        }
        labels.insert(key, v);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    (name.into(), labels, value)
}

/// Whether `v` is spelled like a UUID (8-4-4-4-12 hex digits).
fn looks_like_a_uuid(v: &str) -> bool {
    let groups: Vec<&str> = v.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[test]
fn a_scrape_after_a_small_workload_has_every_contract_series_and_says_what_happened() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 60_000);

    // A fresh node: every series there, counters at 0 with their label values.
    let fresh = Page::scrape(&coord);
    fresh.check_contract(&NEED_AN_OBJECT);
    for route in ["renew", "complete", "logs", "artifact", "question", "other"] {
        let labels = [("route", route)];
        let fenced = fresh.value("gigafactory_fenced_writes_total", &labels);
        assert_eq!(fenced, Some(0.0), "{route}");
    }
    for outcome in [
        "submitted",
        "skipped",
        "cancelled_previous",
        "missed",
        "failed",
    ] {
        let runs = fresh.value("gigafactory_schedule_runs_total", &[("outcome", outcome)]);
        assert_eq!(runs, Some(0.0), "{outcome}");
    }
    for outcome in ["granted", "empty"] {
        let labels = [("outcome", outcome)];
        let polls = fresh.value("gigafactory_claim_long_poll_seconds_count", &labels);
        assert_eq!(polls, Some(0.0), "{outcome}");
    }
    let unknown = fresh.value(
        "gigafactory_store_commit_unknown_total",
        &[("engine", "embedded")],
    );
    assert_eq!(unknown, Some(0.0));
    assert_eq!(
        fresh.value("gigafactory_cluster_nodes", &[("state", "alive")]),
        Some(1.0)
    );

    // The workload: three jobs succeed, one dies, one waits for a GPU nobody has.
    clear_of_utc_midnight(Duration::from_secs(180));
    let budget = json!({"product": "metrics", "period": "day", "limit_micros": 10_000_000});
    let (status, v) = call(
        "PUT",
        &format!("{}/v1/budgets/metrics-daily", coord.url),
        Some(&coord.admin),
        Some(&budget.to_string()),
    );
    assert_eq!(status, 200, "{v}");
    let factory = Factory::start(&coord, "a", 2, "linux", &dir.path().join("fa"));
    let mut manifest = String::from("product = \"metrics\"\n");
    for n in 0..3 {
        manifest.push_str(&format!(
            "[[jobs]]\nkey = \"ok{n}\"\ntitle = \"ok {n}\"\ncapabilities = [\"linux\"]\ncommand = \"true\"\n"
        ));
    }
    manifest.push_str(
        "[[jobs]]\nkey = \"dies\"\ntitle = \"dies\"\nmax_attempts = 1\ncommand = \"exit 3\"\n",
    );
    manifest.push_str(
        "[[jobs]]\nkey = \"gpu\"\ntitle = \"gpu\"\ncapabilities = [\"gpu\"]\ncommand = \"true\"\n",
    );
    let ids: BTreeMap<String, String> = submit_manifest(&coord, &manifest).into_iter().collect();
    wait_for(Duration::from_secs(60), "four jobs to end", || {
        ["ok0", "ok1", "ok2"]
            .iter()
            .all(|k| state(&coord, &ids[*k]) == "succeeded")
            && state(&coord, &ids["dies"]) == "dead"
    });
    let gpu = [("capabilities", "gpu"), ("engine_class", "")];
    let mut page = Page::scrape(&coord);
    // The budget's gauges come with the scheduler's next read of the budgets.
    wait_for(
        Duration::from_secs(30),
        "the budget's gauges and the GPU job's age",
        || {
            page = Page::scrape(&coord);
            page.value(
                "gigafactory_budget_limit_usd",
                &[("budget", "metrics-daily")],
            ) == Some(10.0)
                && page.value("gigafactory_queue_oldest_age_seconds", &gpu) > Some(0.0)
        },
    );
    page.check_contract(&[]);

    let jobs = |state| {
        page.value(
            "gigafactory_jobs",
            &[("state", state), ("product", "metrics")],
        )
    };
    assert_eq!((jobs("queued"), jobs("running")), (Some(1.0), Some(0.0)));
    assert_eq!(page.value("gigafactory_queue_depth_jobs", &gpu), Some(1.0));
    assert_eq!(
        page.value("gigafactory_queue_factories_online", &gpu),
        Some(0.0)
    );
    let any = [("capabilities", "any"), ("engine_class", "")];
    assert_eq!(
        page.value("gigafactory_queue_factories_online", &any),
        Some(1.0)
    );
    assert_eq!(
        page.value("gigafactory_factories", &[("status", "online")]),
        Some(1.0)
    );
    assert_eq!(
        page.value("gigafactory_factories", &[("status", "revoked")]),
        Some(0.0)
    );
    assert_eq!(
        page.value("gigafactory_factory_slots", &[("state", "total")]),
        Some(2.0)
    );
    let finished = |state| page.value("gigafactory_jobs_finished_total", &[("state", state)]);
    assert_eq!(
        (finished("succeeded"), finished("dead")),
        (Some(3.0), Some(1.0))
    );
    // Four jobs ran, each leased once in its life.
    assert!(page.value("gigafactory_leases_granted_total", &[]) >= Some(4.0));
    assert_eq!(page.value("gigafactory_placements_total", &[]), Some(4.0));
    let placed = page.value("gigafactory_placement_latency_seconds_count", &[]);
    assert_eq!(placed, Some(4.0));
    let embedded = [("engine", "embedded")];
    let commits = page.value("gigafactory_store_commit_seconds_count", &embedded);
    assert!(commits > Some(0.0), "{commits:?}");
    let buckets = page
        .samples
        .iter()
        .filter(|(n, l, _)| {
            n == "gigafactory_store_commit_seconds_bucket"
                && l.get("engine").map(String::as_str) == Some("embedded")
        })
        .count();
    assert!(
        buckets > 2,
        "the store's commits are bucketed, not summarized"
    );
    assert!(
        page.value(
            "gigafactory_claim_long_poll_seconds_count",
            &[("outcome", "granted")]
        ) >= Some(1.0)
    );
    for (name, labels, _) in &page.samples {
        for (k, v) in labels {
            assert!(
                !looks_like_a_uuid(v),
                "{name}{{{k}={v:?}}}: an id as a label value"
            );
        }
    }

    // Factory a drains; a factory the test plays takes the next job, renews its lease, and
    // then writes under a stale epoch: refused, and counted under each route.
    let (a_id, _) = factory.identity();
    let drain = format!("{}/v1/factories/{a_id}/drain", coord.url);
    assert_eq!(call("POST", &drain, Some(&coord.admin), None).0, 204);
    let fake = FakeFactory::enroll(&coord);
    let held =
        "product = \"metrics\"\n[[jobs]]\nkey = \"held\"\ntitle = \"held\"\ncommand = \"true\"\n";
    let id = submit_manifest(&coord, held).remove(0).1;
    let (claimed, epoch) = fake.claim(&coord);
    assert_eq!(claimed, id);
    let renewed = fake.write(&coord, &id, "renew", epoch, json!({}));
    assert_eq!(renewed.0, 200, "{}", renewed.1);
    let stale = epoch - 1;
    let refused = [
        fake.write(&coord, &id, "complete", stale, json!({})),
        fake.write(&coord, &id, "renew", stale, json!({})),
        fake.write(
            &coord,
            &id,
            "logs",
            stale,
            json!({"seq": 0, "stream": "stdout", "data": "x"}),
        ),
    ];
    for r in &refused {
        expect_error(r, 409, "fenced");
    }
    let after = Page::scrape(&coord);
    for route in ["complete", "renew", "logs"] {
        let fenced = after.value("gigafactory_fenced_writes_total", &[("route", route)]);
        assert_eq!(fenced, Some(1.0), "{route}");
    }
    let stage = after.value("gigafactory_fenced_writes_total", &[("route", "stage")]);
    assert_eq!(stage, Some(0.0));
    // The agent renews too (it starts each job with a renewal): the fake's counts once more.
    let renewed = |p: &Page| p.value("gigafactory_leases_renewed_total", &[]).unwrap();
    assert_eq!(renewed(&after), renewed(&page) + 1.0);
    assert_eq!(after.value("gigafactory_placements_total", &[]), Some(5.0));
    let status = |s| after.value("gigafactory_factories", &[("status", s)]);
    assert_eq!(
        (status("online"), status("draining")),
        (Some(1.0), Some(1.0))
    );
    let running = [("state", "running"), ("product", "metrics")];
    assert_eq!(after.value("gigafactory_jobs", &running), Some(1.0));

    // A deleted budget's series drop to 0 with the next read of the budgets, so an alert on
    // its ratio does not outlive it.
    let budget_url = format!("{}/v1/budgets/metrics-daily", coord.url);
    let deleted = call("DELETE", &budget_url, Some(&coord.admin), None);
    assert!(deleted.0 < 300, "{deleted:?}");
    let named = [("budget", "metrics-daily")];
    wait_for(
        Duration::from_secs(30),
        "the deleted budget's gauges at 0",
        || {
            let page = Page::scrape(&coord);
            page.value("gigafactory_budget_limit_usd", &named) == Some(0.0)
                && page.value("gigafactory_budget_spend_ratio", &named) == Some(0.0)
        },
    );
}

#[test]
fn the_parser_reads_escaped_label_values_and_the_uuid_check_catches_ids() {
    let (name, labels, value) = sample(r#"gigafactory_jobs{state="queued",product="a\"b\\c"} 2"#);
    assert_eq!((name.as_str(), value), ("gigafactory_jobs", 2.0));
    assert_eq!(labels["product"], "a\"b\\c");
    assert_eq!(labels["state"], "queued");
    assert!(looks_like_a_uuid("0195f0c2-7a3e-7c1b-9f00-1234567890ab"));
    assert!(!looks_like_a_uuid("gpu,linux"));
}

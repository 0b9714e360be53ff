//! The shipped monitoring files against a live coordinator: every `gigafactory_*` metric that
//! `deploy/prometheus/alerts.yml` or a query of `deploy/grafana/gigafactory.json` names is one
//! a real node exports, scraped from `/metrics` after a small workload (a budget, a factory
//! running jobs, a lease left to expire and a write fenced for its stale epoch). An alert or a
//! panel on a misspelt or missing series would otherwise stay silent or empty forever.
//! promtool checks the rules' syntax and unit tests (`scripts/check-deploy`); this checks names.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const PREFIX: &str = "gigafactory_";

/// Every `gigafactory_*` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        // Not a metric when glued to a longer word (`x_gigafactory_...`).
        let glued = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if !glued {
            names.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// A histogram's or summary's sample name to the metric it belongs to.
fn base_name(name: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

/// Every query (`expr`) of the dashboard's panels, rows' nested panels included.
fn dashboard_exprs(panels: &Value, out: &mut Vec<String>) {
    for panel in panels.as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.extend(target["expr"].as_str().map(str::to_string));
        }
        dashboard_exprs(&panel["panels"], out);
    }
}

/// The metric names the shipped alerts and dashboard refer to, each with the file naming it.
fn referenced_names() -> Vec<(String, &'static str)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let alerts = std::fs::read_to_string(root.join("deploy/prometheus/alerts.yml")).unwrap();
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/gigafactory.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard["panels"], &mut exprs);
    let mut names: Vec<(String, &str)> = metric_names(&alerts)
        .into_iter()
        .map(|n| (n, "alerts.yml"))
        .collect();
    names.extend(
        metric_names(&exprs.join("\n"))
            .into_iter()
            .map(|n| (n, "gigafactory.json")),
    );
    names
}

/// The sample names of one `/metrics` scrape.
fn scrape(coord: &Coordinator) -> BTreeSet<String> {
    let out = Command::new("curl")
        .args(["-sf", &format!("{}/metrics", coord.url)])
        .output()
        .expect("curl");
    assert!(out.status.success(), "GET /metrics failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_name_reader_finds_histogram_samples_and_skips_words_that_only_contain_the_prefix() {
    let text = "histogram_quantile(0.99, sum by (le) (rate(gigafactory_store_commit_seconds_bucket[5m])))\n\
                max(gigafactory_shards_unowned) > 0 # not_gigafactory_x, `gigafactory factories ls`";
    let names: Vec<String> = metric_names(text).into_iter().collect();
    assert_eq!(
        names,
        [
            "gigafactory_shards_unowned",
            "gigafactory_store_commit_seconds_bucket"
        ]
    );
    assert_eq!(
        base_name("gigafactory_store_commit_seconds_bucket"),
        "gigafactory_store_commit_seconds"
    );
    assert_eq!(
        base_name("gigafactory_claims_total"),
        "gigafactory_claims_total"
    );
}

#[test]
fn every_metric_the_alerts_and_the_dashboard_name_is_exported_by_a_coordinator() {
    let referenced = referenced_names();
    // Both files are read: a path or format change must not make this pass on nothing.
    for file in ["alerts.yml", "gigafactory.json"] {
        assert!(
            referenced.iter().filter(|(_, f)| *f == file).count() >= 10,
            "too few metric names read from {file}: {referenced:?}"
        );
    }

    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 2_000);
    clear_of_utc_midnight(Duration::from_secs(180));
    let budget = json!({"product": "ops", "period": "day", "limit_micros": 10_000_000});
    let (status, v) = call(
        "PUT",
        &format!("{}/v1/budgets/ops-daily", coord.url),
        Some(&coord.admin),
        Some(&budget.to_string()),
    );
    assert_eq!(status, 200, "{v}");

    // A lease left to expire, then a renewal from its stale epoch, fenced.
    let lost =
        "product = \"ops\"\n[[jobs]]\nkey = \"lost\"\ntitle = \"lost\"\ncommand = \"true\"\n";
    let id = submit_manifest(&coord, lost).remove(0).1;
    let fake = FakeFactory::enroll(&coord);
    let (claimed, epoch) = fake.claim(&coord);
    assert_eq!(claimed, id);
    wait_for(Duration::from_secs(30), "the lost lease to expire", || {
        events(&coord, &id).iter().any(|e| e["kind"] == "expire")
    });
    let fenced = fake.write(&coord, &id, "renew", epoch, json!({}));
    expect_error(&fenced, 409, "fenced");

    // A real factory runs it and two more jobs; a job needing a gpu waits, so series
    // labelled by a product or a shape with work (dropped when none is left) are on the page.
    let _factory = Factory::start(&coord, "f1", 2, "linux", &dir.path().join("f1"));
    let more = "product = \"ops\"\n[[jobs]]\nkey = \"a\"\ntitle = \"a\"\ncommand = \"echo a\"\n\
                [[jobs]]\nkey = \"b\"\ntitle = \"b\"\ncommand = \"echo b\"\n\
                [[jobs]]\nkey = \"gpu\"\ntitle = \"gpu\"\ncapabilities = [\"gpu\"]\ncommand = \"true\"\n";
    let mut ids: Vec<String> = submit_manifest(&coord, more)
        .into_iter()
        .filter(|(key, _)| key != "gpu")
        .map(|(_, id)| id)
        .collect();
    ids.push(id);
    wait_for(Duration::from_secs(60), "the jobs to succeed", || {
        ids.iter().all(|id| state(&coord, id) == "succeeded")
    });

    // Gauges refreshed on a timer (budgets every 5 s, say) may lag the workload: poll.
    let deadline = Instant::now() + Duration::from_secs(30);
    let missing = loop {
        let exported = scrape(&coord);
        let missing: Vec<String> = referenced
            .iter()
            .filter(|(name, _)| !exported.contains(name))
            .map(|(name, file)| format!("{name} (in {file}; metric {})", base_name(name)))
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        missing.is_empty(),
        "named in the shipped monitoring files but not exported by the coordinator:\n  {}",
        missing.join("\n  ")
    );
}

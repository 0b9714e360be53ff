//! One job on its own: a single submission's JSON (defaults, unknown fields, a round trip),
//! `validate_job_spec` naming every bad field, and the scheduling and review fields a
//! manifest sets (approvals, reviewers, concurrency key, affinity).

use super::*;
use crate::checkout::RepoSpec;
use crate::sandbox::SandboxSpec;

#[test]
fn job_spec_json_takes_the_manifest_defaults() {
    let json = r#"{"key": "k", "title": "t", "product": "p",
                   "payload": {"command": "make"}, "capabilities": ["rust", "linux", "rust"],
                   "deps": ["0190b6c4-4d5e-7f00-8000-000000000001"]}"#;
    let spec = parse_job_spec_json(json).expect("valid spec");
    assert_eq!(spec.priority, PRIORITY_DEFAULT);
    assert_eq!(spec.max_attempts, MAX_ATTEMPTS_DEFAULT);
    assert!(spec.preemptible);
    assert!(!spec.review);
    assert_eq!(spec.capabilities, ["linux", "rust"]);
}

#[test]
fn job_spec_json_refuses_unknown_fields() {
    let json =
        r#"{"key": "k", "title": "t", "product": "p", "payload": {"command": "c"}, "colour": 1}"#;
    let errors = parse_job_spec_json(json).expect_err("unknown field").0;
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].message.contains("unknown field `colour`"),
        "{errors:?}"
    );
    assert!(
        errors[0].location.starts_with("line 1, column "),
        "{errors:?}"
    );
}

#[test]
fn validate_job_spec_reports_every_problem_by_field() {
    let spec = JobSpec {
        key: "".into(),
        title: "t".into(),
        product: "p q".into(),
        payload: Payload::Prompt("".into()),
        priority: 5_000,
        capabilities: vec!["b".into(), "a".into()],
        labels: Vec::new(),
        engine_class: None,
        profile: None,
        deps: vec!["x".into(), "x".into()],
        idempotency_key: Some("a\nb".into()),
        allowed_scope: vec!["ok/**".into(), "{".into()],
        artifacts: vec!["out/*.md".into(), "../secrets".into(), "/etc/*".into()],
        max_attempts: 0,
        wall_clock_ms: Some(0),
        cost_budget_micros: Some(COST_BUDGET_MAX_MICROS + 1),
        preemptible: true,
        review: false,
        approvals: 11,
        reviewers: vec!["ana".into(), " ".into()],
        concurrency_key: Some("acme".into()),
        affinity: Some("repo:a b".into()),
        sandbox: SandboxSpec {
            network: false,
            memory_mib: Some(1),
            cpu_millis: Some(1_000),
        },
        repo: Some(RepoSpec {
            url: "-u".into(),
            rev: "a..b".into(),
        }),
    };
    let errors = validate_job_spec(&spec).expect_err("many problems").0;
    for (location, part) in [
        ("key", "must not be empty"),
        ("product", "[A-Za-z0-9._-]"),
        ("payload.prompt", "must not be empty"),
        ("priority", "between 0 and 1000"),
        ("capabilities", "sorted"),
        ("deps", "duplicate dependency \"x\""),
        ("idempotency_key", "control characters"),
        ("allowed_scope[1]", "invalid glob"),
        ("artifacts[1]", "inside the workspace"),
        ("artifacts[2]", "inside the workspace"),
        ("max_attempts", "between 1 and 100"),
        ("wall_clock_ms", "got 0"),
        ("cost_budget_micros", "between 0 and"),
        ("approvals", "between 1 and 10"),
        ("reviewers[1]", "must not be empty"),
        ("concurrency_key", "product:NAME"),
        ("affinity", "product:NAME"),
        ("sandbox.memory_mib", "MiB"),
        ("repo.url", "'-'"),
        ("repo.rev", "branch, tag or commit"),
    ] {
        assert_error(&errors, location, part);
    }
    assert_eq!(errors.len(), 20, "{}", ManifestErrors(errors.clone()));
}

#[test]
fn a_jobs_sandbox_comes_from_its_profile_unless_it_sets_its_own() {
    let manifest = parse_manifest(
        r#"
product = "p"
[profiles.tight]
sandbox = { network = false, memory_mib = 512, cpu_millis = 1500 }
[[jobs]]
key = "inherits"
title = "t"
profile = "tight"
command = "true"
[[jobs]]
key = "own"
title = "t"
profile = "tight"
command = "true"
sandbox = { memory_mib = 64 }
[[jobs]]
key = "plain"
title = "t"
command = "true"
"#,
    )
    .expect("valid");
    let by_key = |k: &str| {
        manifest
            .jobs
            .iter()
            .find(|j| j.key == k)
            .unwrap()
            .sandbox
            .clone()
    };
    let tight = SandboxSpec {
        network: false,
        memory_mib: Some(512),
        cpu_millis: Some(1_500),
    };
    assert_eq!(by_key("inherits"), tight);
    // A job's table replaces its profile's whole: network is back to its default.
    let own = SandboxSpec {
        network: true,
        memory_mib: Some(64),
        cpu_millis: None,
    };
    assert_eq!(by_key("own"), own);
    assert_eq!(by_key("plain"), SandboxSpec::default());
}

#[test]
fn a_sandbox_table_reports_each_wrong_field_where_it_stands() {
    let errors = parse_manifest(
        r#"
product = "p"
[[jobs]]
key = "k"
title = "t"
command = "true"
sandbox = { network = "no", memory_mib = 8, cpu_millis = -1, swap = 0 }
"#,
    )
    .expect_err("invalid")
    .0;
    for (location, part) in [
        ("jobs[0].sandbox.network", "boolean"),
        ("jobs[0].sandbox.cpu_millis", "thousandths"),
        ("jobs[0].sandbox.swap", "unknown field"),
        ("jobs[0].sandbox.memory_mib", "MiB"),
    ] {
        assert_error(&errors, location, part);
    }
}

#[test]
fn every_resolved_job_passes_single_job_validation() {
    for spec in parse_manifest(FULL).expect("valid").jobs {
        assert_eq!(validate_job_spec(&spec), Ok(()));
    }
}

#[test]
fn job_spec_round_trips_through_json() {
    for spec in parse_manifest(FULL).expect("valid").jobs {
        let json = serde_json::to_string(&spec).expect("serializes");
        assert_eq!(parse_job_spec_json(&json), Ok(spec));
    }
}

#[test]
fn a_manifest_sets_review_approvals_reviewers_concurrency_key_and_affinity_through_profiles() {
    let m = parse_manifest(
        "product = \"p\"\n[profiles.api]\nconcurrency_key = \"repo:acme/api\"\naffinity = \"repo:acme/api\"\n[[jobs]]\nkey = \"a\"\ntitle = \"a\"\ncommand = \"x\"\nprofile = \"api\"\nreview = true\napprovals = 2\nreviewers = [\"ana\", \"bo\"]\n[[jobs]]\nkey = \"b\"\ntitle = \"b\"\ncommand = \"x\"\n",
    )
    .expect("valid");
    let (a, b) = (&m.jobs[0], &m.jobs[1]);
    assert_eq!(a.concurrency_key.as_deref(), Some("repo:acme/api"));
    assert_eq!(a.affinity.as_deref(), Some("repo:acme/api"));
    assert_eq!(
        (a.approvals, a.reviewers.as_slice()),
        (2, &["ana".to_owned(), "bo".to_owned()][..])
    );
    assert_eq!(
        (b.approvals, b.concurrency_key.as_ref()),
        (APPROVALS_DEFAULT, None)
    );
    let e = parse_manifest("product = \"p\"\n[[jobs]]\nkey = \"a\"\ntitle = \"a\"\ncommand = \"x\"\nconcurrency_key = \"acme\"\napprovals = 0\n")
        .expect_err("bad key and approvals");
    let text = e.to_string();
    assert!(
        text.contains("concurrency_key") && text.contains("approvals"),
        "{text}"
    );
}

#[test]
fn a_review_needing_more_approvals_than_it_names_reviewers_is_refused() {
    let spec = JobSpec {
        approvals: 3,
        reviewers: vec!["ana".into(), "bo".into(), "ana".into()],
        ..JobSpec::sample()
    };
    let errors = validate_job_spec(&spec).expect_err("cannot ship").0;
    assert_error(&errors, "approvals", "needs 3 approvals but names only 2");
    let spec = JobSpec {
        approvals: 2,
        reviewers: vec!["ana".into(), "bo".into()],
        ..JobSpec::sample()
    };
    assert_eq!(validate_job_spec(&spec), Ok(()));
}

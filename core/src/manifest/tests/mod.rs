//! The manifest reader and the job-spec checks, case by case and by property; one job on its
//! own (single submissions, `validate_job_spec`, the scheduling and review fields) is
//! `single.rs`.

use super::*;
use proptest::prelude::*;

const FULL: &str = r#"
product = "payments"

[profiles.agent]
capabilities = ["rust", "linux"]
engine_class = "claude"
priority = 50
max_attempts = 3
wall_clock_secs = 3600
cost_budget_usd = 5.0
preemptible = true
review = false
allowed_scope = ["src/**"]

[[jobs]]
key = "build-api"
title = "Build the API"
command = "cargo build"
profile = "agent"
priority = 80
capabilities = ["rust"]
deps = ["schema"]
idempotency_key = "payments/build-api/v1"
allowed_scope = ["api/**"]
wall_clock_secs = 600
cost_budget_usd = 2.5

[[jobs]]
key = "schema"
title = "Design the schema"
prompt = "Write the schema"
product = "ledger"
preemptible = false
review = true
"#;

fn errors_of(text: &str) -> Vec<ManifestError> {
    match parse_manifest(text) {
        Ok(manifest) => panic!("expected errors, got {manifest:?}"),
        Err(errors) => errors.0,
    }
}

fn has_error(errors: &[ManifestError], location: &str, message_part: &str) -> bool {
    errors
        .iter()
        .any(|e| e.location == location && e.message.contains(message_part))
}

#[track_caller]
fn assert_error(errors: &[ManifestError], location: &str, message_part: &str) {
    assert!(
        has_error(errors, location, message_part),
        "no error at {location} containing {message_part:?} in:\n{}",
        ManifestErrors(errors.to_vec())
    );
}

fn job(key: &str, extra: &str) -> String {
    format!("[[jobs]]\nkey = \"{key}\"\ntitle = \"t\"\ncommand = \"true\"\n{extra}\n")
}

fn manifest(jobs: &[String]) -> String {
    format!("product = \"p\"\n{}", jobs.concat())
}

#[test]
fn resolves_a_full_manifest_with_profile_defaults_applied() {
    let manifest = parse_manifest(FULL).expect("valid manifest");
    let schema = &manifest.jobs[0];
    let build = &manifest.jobs[1];
    assert_eq!(
        *build,
        JobSpec {
            key: "build-api".into(),
            title: "Build the API".into(),
            product: "payments".into(),
            payload: Payload::Command("cargo build".into()),
            priority: 80,
            capabilities: vec!["rust".into()],
            labels: Vec::new(),
            engine_class: Some("claude".into()),
            profile: Some("agent".into()),
            deps: vec!["schema".into()],
            idempotency_key: Some("payments/build-api/v1".into()),
            allowed_scope: vec!["api/**".into()],
            artifacts: Vec::new(),
            max_attempts: 3,
            wall_clock_ms: Some(600_000),
            cost_budget_micros: Some(2_500_000),
            preemptible: true,
            review: false,
            approvals: 1,
            reviewers: Vec::new(),
            concurrency_key: None,
            affinity: None,
            sandbox: crate::sandbox::SandboxSpec::default(),
            repo: None,
        }
    );
    assert_eq!(schema.key, "schema");
    assert_eq!(schema.product, "ledger");
    assert_eq!(schema.payload, Payload::Prompt("Write the schema".into()));
    assert!(!schema.preemptible);
    assert!(schema.review);
}

#[test]
fn job_values_replace_profile_values_instead_of_merging() {
    let text = format!(
        "product = \"p\"\n[profiles.base]\ncapabilities = [\"linux\", \"rust\"]\n\
         wall_clock_secs = 60\nallowed_scope = [\"a/**\"]\nartifacts = [\"out/*.md\"]\n{}{}",
        job(
            "own",
            "profile = \"base\"\ncapabilities = [\"gpu\"]\nartifacts = [\"*.patch\"]"
        ),
        job("inherits", "profile = \"base\""),
    );
    let manifest = parse_manifest(&text).expect("valid manifest");
    assert_eq!(manifest.jobs[0].capabilities, vec!["gpu".to_owned()]);
    assert_eq!(manifest.jobs[0].allowed_scope, vec!["a/**".to_owned()]);
    assert_eq!(
        manifest.jobs[1].capabilities,
        vec!["linux".to_owned(), "rust".to_owned()]
    );
    assert_eq!(manifest.jobs[1].wall_clock_ms, Some(60_000));
    assert_eq!(manifest.jobs[0].artifacts, vec!["*.patch".to_owned()]);
    assert_eq!(manifest.jobs[1].artifacts, vec!["out/*.md".to_owned()]);
}

#[test]
fn applies_built_in_defaults_when_nothing_sets_a_field() {
    let manifest = parse_manifest(&manifest(&[job("a", "")])).expect("valid manifest");
    let spec = &manifest.jobs[0];
    assert_eq!(spec.priority, PRIORITY_DEFAULT);
    assert_eq!(spec.max_attempts, MAX_ATTEMPTS_DEFAULT);
    assert!(spec.preemptible);
    assert!(!spec.review);
    assert_eq!(spec.capabilities, Vec::<String>::new());
    assert_eq!(spec.engine_class, None);
    assert_eq!(spec.profile, None);
    assert_eq!(spec.wall_clock_ms, None);
    assert_eq!(spec.cost_budget_micros, None);
}

#[test]
fn sorts_and_deduplicates_capabilities() {
    let text = manifest(&[job("a", "capabilities = [\"rust\", \"linux\", \"rust\"]")]);
    let manifest = parse_manifest(&text).expect("valid manifest");
    assert_eq!(
        manifest.jobs[0].capabilities,
        vec!["linux".to_owned(), "rust".to_owned()]
    );
}

#[test]
fn orders_parents_first_and_keeps_document_order_otherwise() {
    let text = manifest(&[
        job("deploy", "deps = [\"test\", \"build\"]"),
        job("zeta", ""),
        job("test", "deps = [\"build\"]"),
        job("build", ""),
        job("alpha", ""),
    ]);
    let keys: Vec<String> = parse_manifest(&text)
        .expect("valid manifest")
        .jobs
        .into_iter()
        .map(|j| j.key)
        .collect();
    assert_eq!(keys, ["zeta", "build", "test", "deploy", "alpha"]);
}

#[test]
fn accepts_json_with_the_same_shape() {
    let json = r#"
        { "product": "payments",
          "profiles": { "agent": { "engine_class": "claude", "cost_budget_usd": 1 } },
          "jobs": [
            { "key": "b", "title": "B", "prompt": "do b", "profile": "agent", "deps": ["a"] },
            { "key": "a", "title": "A", "command": "make", "wall_clock_secs": null }
          ] }"#;
    let manifest = parse_manifest(json).expect("valid json manifest");
    assert_eq!(manifest.jobs[0].key, "a");
    assert_eq!(manifest.jobs[1].engine_class.as_deref(), Some("claude"));
    assert_eq!(manifest.jobs[1].cost_budget_micros, Some(1_000_000));
    assert_eq!(manifest.jobs[0].wall_clock_ms, None, "null means absent");
}

#[test]
fn reports_every_problem_at_once_with_its_location() {
    let text = r#"
product = "p"
[profiles.agent]
allowed_scope = ["src/**", "a[", ""]
[[jobs]]
key = "bad key"
title = ""
command = "x"
priority = 1001
max_attempts = 0
[[jobs]]
key = "ok"
title = "fine"
prompt = "p"
profile = "nope"
capabilities = ["Rust", "linux"]
cost_budget_usd = -1
"#;
    let errors = errors_of(text);
    assert_error(&errors, "profiles.agent.allowed_scope[1]", "invalid glob");
    assert_error(
        &errors,
        "profiles.agent.allowed_scope[2]",
        "must not be empty",
    );
    assert_error(&errors, "jobs[0].key", "[A-Za-z0-9._-]");
    assert_error(&errors, "jobs[0].title", "must not be empty");
    assert_error(&errors, "jobs[0].priority", "between 0 and 1000");
    assert_error(&errors, "jobs[0].max_attempts", "between 1 and 100");
    assert_error(
        &errors,
        "jobs[1].profile",
        "unknown profile \"nope\" (defined: agent)",
    );
    assert_error(&errors, "jobs[1].capabilities[0]", "[a-z0-9._:-]");
    assert_error(&errors, "jobs[1].cost_budget_usd", "must not be negative");
    assert_eq!(errors.len(), 9, "{}", ManifestErrors(errors.clone()));
}

#[test]
fn refuses_unknown_fields_at_every_level() {
    let text = "product = \"p\"\nversion = 2\n[profiles.x]\ncolour = \"red\"\n\
                [[jobs]]\nkey = \"a\"\ntitle = \"t\"\ncommand = \"c\"\npriorty = 3\n";
    let errors = errors_of(text);
    assert_error(&errors, "version", "unknown field");
    assert_error(&errors, "profiles.x.colour", "unknown field");
    assert_error(
        &errors,
        "jobs[0].priorty",
        "unknown field (expected one of: key, title",
    );
    assert_eq!(errors.len(), 3);
}

#[test]
fn requires_exactly_one_of_command_and_prompt() {
    let both =
        "product = \"p\"\n[[jobs]]\nkey = \"a\"\ntitle = \"t\"\ncommand = \"c\"\nprompt = \"p\"\n";
    assert_error(&errors_of(both), "jobs[0]", "not both");
    let neither = "product = \"p\"\n[[jobs]]\nkey = \"a\"\ntitle = \"t\"\n";
    assert_error(&errors_of(neither), "jobs[0]", "missing payload");
    let empty = "product = \"p\"\n[[jobs]]\nkey = \"a\"\ntitle = \"t\"\ncommand = \"  \"\n";
    assert_error(&errors_of(empty), "jobs[0].command", "must not be empty");
}

#[test]
fn refuses_missing_and_duplicate_keys() {
    let text = "product = \"p\"\n[[jobs]]\ntitle = \"t\"\ncommand = \"c\"\n".to_owned()
        + &job("a", "")
        + &job("a", "");
    let errors = errors_of(&text);
    assert_error(&errors, "jobs[0].key", "missing required field");
    assert_error(
        &errors,
        "jobs[2].key",
        "duplicate key \"a\" (first used by jobs[1])",
    );
    assert_eq!(errors.len(), 2);
}

#[test]
fn refuses_keys_outside_the_charset_or_too_long() {
    for bad in ["a b", "é", "a/b", &"k".repeat(KEY_LEN_MAX + 1)] {
        let text = manifest(&[job(bad, "")]);
        assert_error(
            &errors_of(&text),
            "jobs[0].key",
            "characters from [A-Za-z0-9._-]",
        );
    }
    let longest = "k".repeat(KEY_LEN_MAX);
    assert!(parse_manifest(&manifest(&[job(&longest, "")])).is_ok());
}

#[test]
fn refuses_unknown_and_self_dependencies() {
    let text = manifest(&[
        job("a", "deps = [\"a\", \"ghost\", \"b\", \"b\"]"),
        job("b", ""),
    ]);
    let errors = errors_of(&text);
    assert_error(&errors, "jobs[key=a].deps", "cannot depend on itself");
    assert_error(&errors, "jobs[key=a].deps", "unknown dependency \"ghost\"");
    assert_error(&errors, "jobs[key=a].deps", "duplicate dependency \"b\"");
    assert_eq!(errors.len(), 3);
}

#[test]
fn names_a_dependency_cycle_in_order() {
    let text = manifest(&[
        job("x", ""),
        job("a", "deps = [\"b\"]"),
        job("b", "deps = [\"c\", \"x\"]"),
        job("c", "deps = [\"a\"]"),
    ]);
    let errors = errors_of(&text);
    assert_eq!(
        errors,
        vec![ManifestError {
            location: "jobs[key=a].deps".into(),
            message: "cycle: a -> b -> c -> a".into(),
        }]
    );
}

#[test]
fn refuses_bad_capability_and_engine_names() {
    let text = manifest(&[job(
        "a",
        "capabilities = [\"ok:1\", \"UPPER\", \"\"]\nengine_class = \"Claude Code\"",
    )]);
    let errors = errors_of(&text);
    assert_error(&errors, "jobs[0].capabilities[1]", "[a-z0-9._:-]");
    assert_error(&errors, "jobs[0].capabilities[2]", "must not be empty");
    assert_error(&errors, "jobs[0].engine_class", "[a-z0-9._:-]");
    assert_eq!(errors.len(), 3);
}

#[test]
fn refuses_nan_infinite_and_negative_costs() {
    for (value, message) in [("nan", "finite"), ("inf", "finite"), ("-0.5", "negative")] {
        let text = manifest(&[job("a", &format!("cost_budget_usd = {value}"))]);
        assert_error(&errors_of(&text), "jobs[0].cost_budget_usd", message);
    }
    let too_much = manifest(&[job("a", "cost_budget_usd = 1e7")]);
    assert_error(&errors_of(&too_much), "jobs[0].cost_budget_usd", "at most");
}

#[test]
fn converts_seconds_to_milliseconds_and_dollars_to_micros() {
    let text = manifest(&[job(
        "a",
        "wall_clock_secs = 90\ncost_budget_usd = 0.1234567",
    )]);
    let spec = &parse_manifest(&text).expect("valid").jobs[0];
    assert_eq!(spec.wall_clock_ms, Some(90_000));
    assert_eq!(
        spec.cost_budget_micros,
        Some(123_457),
        "rounded to the nearest micro"
    );
}

#[test]
fn refuses_out_of_range_integers_and_wrong_types() {
    let text = manifest(&[job(
        "a",
        "priority = -1\nmax_attempts = 101\nwall_clock_secs = 0\npreemptible = \"yes\"\n\
         deps = [1]\ntitle2 = 1",
    )]);
    let errors = errors_of(&text);
    assert_error(&errors, "jobs[0].priority", "got -1");
    assert_error(&errors, "jobs[0].max_attempts", "got 101");
    assert_error(&errors, "jobs[0].wall_clock_secs", "got 0");
    assert_error(
        &errors,
        "jobs[0].preemptible",
        "expected a boolean, found a string",
    );
    assert_error(
        &errors,
        "jobs[0].deps[0]",
        "expected a string, found an integer",
    );
    assert_error(&errors, "jobs[0].title2", "unknown field");
    let float = manifest(&[job("a", "priority = 5.0")]);
    assert_error(
        &errors_of(&float),
        "jobs[0].priority",
        "expected an integer, found a float",
    );
}

#[test]
fn refuses_more_than_the_job_limit() {
    let jobs: String = (0..=MANIFEST_JOBS_MAX)
        .map(|i| format!("{{key = \"j{i}\"}},"))
        .collect();
    let text = format!("product = \"p\"\njobs = [{jobs}]");
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 1);
    assert_error(&errors, "jobs", "too many jobs: 10001 (at most 10000)");
}

#[test]
fn refuses_more_than_the_profile_limit() {
    let profiles: String = (0..=MANIFEST_PROFILES_MAX)
        .map(|i| format!("[profiles.p{i}]\n"))
        .collect();
    let errors = errors_of(&(manifest(&[job("a", "profile = \"zz\"")]) + &profiles));
    assert_error(&errors, "profiles", "too many profiles: 257 (at most 256)");
    assert_error(&errors, "jobs[0].profile", "(defined: none)");
    assert_eq!(errors.len(), 2);
}

#[test]
fn hints_at_the_first_few_defined_profiles() {
    let profiles: String = (0..12).map(|i| format!("[profiles.p{i:02}]\n")).collect();
    let errors = errors_of(&(manifest(&[job("a", "profile = \"zz\"")]) + &profiles));
    assert_error(
        &errors,
        "jobs[0].profile",
        "(defined: p00, p01, p02, p03, p04, p05, p06, p07, p08, p09 and 2 more)",
    );
}

#[test]
fn refuses_an_empty_manifest() {
    assert_error(&errors_of("product = \"p\""), "jobs", "at least one job");
    assert_error(
        &errors_of("product = \"p\"\njobs = []"),
        "jobs",
        "at least one job",
    );
    let both = errors_of("product = \"a b\"");
    assert_error(&both, "product", "[A-Za-z0-9._-]");
    assert_error(&both, "jobs", "at least one job");
}

#[test]
fn requires_a_product_when_a_job_names_none() {
    let text = job("a", "") + &job("b", "product = \"q\"");
    let errors = errors_of(&text);
    assert_error(&errors, "jobs[0].product", "missing");
    assert_eq!(errors.len(), 1);
    let spec = &parse_manifest(&(job("b", "product = \"q\"")))
        .expect("valid")
        .jobs[0];
    assert_eq!(spec.product, "q");
}

#[test]
fn locates_toml_syntax_errors_by_line_and_column() {
    let errors = errors_of("product = \"p\"\n[[jobs]\nkey = 1\n");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].location.starts_with("line 2, column "),
        "{:?}",
        errors[0]
    );
}

#[test]
fn locates_json_syntax_errors_by_line_and_column() {
    let errors = errors_of("{\n  \"product\": \"p\",\n  \"jobs\": [,]\n}");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].location, "line 3, column 12");
    assert!(!errors[0].message.contains("at line"), "{:?}", errors[0]);
}

#[test]
fn survives_deeply_nested_input() {
    let toml = format!("product = {}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(errors_of(&toml).len(), 1);
    let json = format!(
        "{{\"product\": {}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(errors_of(&json).len(), 1);
}

#[test]
fn caps_the_listed_problems_and_counts_the_rest() {
    let capabilities = vec!["\"BAD\""; CAPABILITIES_MAX].join(", ");
    let jobs: Vec<String> = (0..20)
        .map(|i| {
            job(
                &format!("j{i}"),
                &format!("capabilities = [{capabilities}]"),
            )
        })
        .collect();
    let errors = errors_of(&manifest(&jobs));
    assert_eq!(errors.len(), MANIFEST_ERRORS_MAX + 1);
    let last = errors.last().expect("a summary line");
    assert_eq!(last.location, "manifest");
    assert_eq!(
        last.message,
        format!("{} more problems not listed", 20 * 64 - 1_000)
    );
}

#[test]
fn parses_a_ten_thousand_deep_chain() {
    let jobs: Vec<String> = (0..MANIFEST_JOBS_MAX)
        .map(|i| match i {
            0 => job("j0", ""),
            _ => job(&format!("j{i}"), &format!("deps = [\"j{}\"]", i - 1)),
        })
        .rev()
        .collect();
    let manifest = parse_manifest(&manifest(&jobs)).expect("a chain is a DAG");
    assert_eq!(manifest.jobs.len(), MANIFEST_JOBS_MAX);
    assert_eq!(manifest.jobs[0].key, "j0");
    assert_eq!(
        manifest.jobs[MANIFEST_JOBS_MAX - 1].key,
        format!("j{}", MANIFEST_JOBS_MAX - 1)
    );
}

#[test]
fn displays_one_line_per_problem() {
    let errors = ManifestErrors(vec![
        ManifestError {
            location: "jobs[0].key".into(),
            message: "missing required field".into(),
        },
        ManifestError {
            location: "jobs[1]".into(),
            message: "missing payload".into(),
        },
    ]);
    assert_eq!(
        errors.to_string(),
        "jobs[0].key: missing required field\njobs[1]: missing payload"
    );
}

/// Random dependency graphs over up to 12 jobs, each edge given as (job, dep) indices.
fn random_graph() -> impl Strategy<Value = (usize, Vec<(usize, usize)>)> {
    (1usize..=12).prop_flat_map(|n| (Just(n), prop::collection::vec((0..n, 0..n), 0..=24)))
}

proptest! {
    #[test]
    fn accepts_exactly_the_acyclic_manifests_and_orders_parents_first(
        (n, edges) in random_graph(),
    ) {
        let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
        for &(job, dep) in &edges {
            if job != dep {
                deps[job].insert(dep);
            }
        }
        let jobs: Vec<String> = (0..n)
            .map(|i| {
                let list: Vec<String> = deps[i].iter().map(|d| format!("\"j{d}\"")).collect();
                job(&format!("j{i}"), &format!("deps = [{}]", list.join(", ")))
            })
            .collect();
        let flat: Vec<(usize, usize)> =
            (0..n).flat_map(|i| deps[i].iter().map(move |&d| (i, d))).collect();
        let nodes: Vec<usize> = (0..n).collect();
        let cyclic = dag::find_cycle(&nodes, &flat).is_some();
        match parse_manifest(&manifest(&jobs)) {
            Ok(parsed) => {
                prop_assert!(!cyclic);
                let position = |key: &str| parsed.jobs.iter().position(|j| j.key == key).unwrap();
                for spec in &parsed.jobs {
                    for dep in &spec.deps {
                        prop_assert!(position(dep) < position(&spec.key));
                    }
                }
            }
            Err(errors) => {
                prop_assert!(cyclic);
                prop_assert_eq!(errors.0.len(), 1);
                prop_assert!(errors.0[0].message.starts_with("cycle: "));
            }
        }
    }
}

mod repo;
mod single;

#[test]
fn jobs_sharing_an_idempotency_key_are_each_reported_with_the_job_that_has_it_first() {
    let errors = errors_of(&manifest(&[
        job("a", "idempotency_key = \"same\""),
        job("b", "idempotency_key = \"other\""),
        job("c", "idempotency_key = \"same\""),
        job("d", "idempotency_key = \"same\""),
    ]));
    assert_eq!(errors.len(), 2, "{}", ManifestErrors(errors.clone()));
    assert_error(&errors, "jobs[2].idempotency_key", "jobs[0]");
    assert_error(&errors, "jobs[3].idempotency_key", "jobs[0]");
    // One key in two products is two keys.
    let two_products = manifest(&[
        job("a", "idempotency_key = \"same\""),
        job("b", "idempotency_key = \"same\"\nproduct = \"q\""),
    ]);
    assert!(parse_manifest(&two_products).is_ok());
}

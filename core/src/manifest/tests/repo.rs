//! A job's `repo`: read from a manifest job or its profile, validated where it stands, and
//! the affinity it gives a job that names none.

use super::*;
use crate::checkout::RepoSpec;

#[test]
fn a_jobs_repo_comes_from_its_profile_unless_it_sets_its_own() {
    let manifest = parse_manifest(
        r#"
product = "p"
[profiles.api]
repo = { url = "https://example.com/acme/api.git", rev = "main" }
[[jobs]]
key = "inherits"
title = "t"
profile = "api"
command = "true"
[[jobs]]
key = "own"
title = "t"
profile = "api"
command = "true"
repo = { url = "https://example.com/acme/web.git" }
[[jobs]]
key = "plain"
title = "t"
command = "true"
"#,
    )
    .expect("valid");
    let by_key = |k: &str| manifest.jobs.iter().find(|j| j.key == k).unwrap().clone();
    let api = RepoSpec {
        url: "https://example.com/acme/api.git".into(),
        rev: "main".into(),
    };
    assert_eq!(by_key("inherits").repo, Some(api));
    // No rev: the repository's default branch (`HEAD`).
    assert_eq!(by_key("own").repo.unwrap().rev, "HEAD");
    assert_eq!(by_key("plain").repo, None);
}

#[test]
fn a_repo_table_reports_each_wrong_field_where_it_stands() {
    let errors = parse_manifest(
        r#"
product = "p"
[[jobs]]
key = "k"
title = "t"
command = "true"
repo = { url = "https://a", rev = "-x", branch = "main" }
[[jobs]]
key = "l"
title = "t"
command = "true"
repo = { rev = "main" }
"#,
    )
    .expect_err("invalid")
    .0;
    for (location, part) in [
        ("jobs[0].repo.branch", "unknown field"),
        ("jobs[0].repo.rev", "'-'"),
        ("jobs[1].repo.url", "required"),
    ] {
        assert_error(&errors, location, part);
    }
}

#[test]
fn a_job_with_a_repo_and_no_affinity_wants_the_repo_warm() {
    let mut spec = JobSpec::sample();
    assert_eq!(spec.affinity_key(), None);
    spec.repo = Some(RepoSpec {
        url: "https://example.com/acme/api.git".into(),
        rev: "main".into(),
    });
    assert_eq!(
        spec.affinity_key(),
        Some("https://example.com/acme/api.git")
    );
    // What placement and the claim see.
    let job = crate::job::new_job(
        crate::job::JobId(uuid::Uuid::nil()),
        spec.clone(),
        Vec::new(),
        0,
    );
    assert_eq!(
        crate::scoring::JobView::of(&job).repo_hint.as_deref(),
        Some("https://example.com/acme/api.git")
    );
    // An affinity of its own wins.
    spec.affinity = Some("cache:node".into());
    assert_eq!(spec.affinity_key(), Some("cache:node"));
}

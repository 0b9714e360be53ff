//! Jobs that work in a git repository, through a real coordinator and factory agent: the
//! test makes an origin repository with two branches; each job sees its branch's files and
//! the commit it resolved to, the factory keeps one mirror of the URL and leaves no worktree
//! behind, a commit pushed between two jobs reaches the second, an unknown revision ends
//! the job dead naming it, the factory's heartbeat carries the URL as warm, and bad `repo`
//! input is refused whole.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::sandbox::bwrap_refused;
use common::{
    Coordinator, Factory, all_logs, call, get, job, serial, state, submit_manifest, wait_for,
};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Commits `file` (its content its name) on the current branch of `origin`; the new head.
fn commit(origin: &Path, file: &str) -> String {
    std::fs::write(origin.join(file), file).unwrap();
    git(origin, &["add", file]);
    git(origin, &["commit", "-q", "-m", file]);
    git(origin, &["rev-parse", "HEAD"])
}

/// An origin with `main` (main.txt) and `feature` (main.txt and feature.txt); its
/// `file://` URL and main's head.
fn origin(dir: &Path) -> (PathBuf, String, String) {
    let origin = dir.join("origin");
    std::fs::create_dir(&origin).unwrap();
    git(&origin, &["init", "-q", "-b", "main"]);
    let main = commit(&origin, "main.txt");
    git(&origin, &["checkout", "-q", "-b", "feature"]);
    commit(&origin, "feature.txt");
    git(&origin, &["checkout", "-q", "main"]);
    let url = format!("file://{}", origin.display());
    (origin, url, main)
}

fn text_of(coord: &Coordinator, id: &str) -> String {
    all_logs(coord, id)
        .iter()
        .filter_map(|l| l["data"].as_str().map(str::to_owned))
        .collect()
}

fn ended(coord: &Coordinator, ids: &[(String, String)]) {
    wait_for(Duration::from_secs(90), "the jobs to end", || {
        ids.iter()
            .all(|(_, id)| ["succeeded", "dead"].contains(&state(coord, id).as_str()))
    });
}

fn job_toml(key: &str, command: &str, url: &str, rev: &str) -> String {
    format!(
        "[[jobs]]\nkey = \"{key}\"\ntitle = \"{key}\"\ncapabilities = [\"linux\"]\n\
         max_attempts = 2\ncommand = '''{command}'''\n\
         repo = {{ url = \"{url}\", rev = \"{rev}\" }}\n"
    )
}

/// What a job prints: the files of its checkout and the commit it was given.
const SHOW: &str = "ls; echo \"url=$GF_REPO_URL rev=$GF_REPO_REV commit=$GF_REPO_COMMIT\"";

/// A job without a sandbox may commit in its checkout.
const COMMIT: &str = "git -c user.name=job -c user.email=job@example.com commit -q --allow-empty -m job && echo committed";

/// The factory's mirrors, one directory each.
fn mirrors(workdir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(workdir.join("mirrors"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

/// Whether the only worktree `mirror` knows is itself (the bare repository).
fn no_worktree_left(mirror: &Path) -> bool {
    git(mirror, &["worktree", "list", "--porcelain"])
        .lines()
        .filter(|l| l.starts_with("worktree "))
        .count()
        == 1
}

#[test]
fn each_job_works_in_its_branch_from_one_mirror_that_follows_the_origin() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (origin, url, main_head) = origin(dir.path());
    let coord = Coordinator::start(dir.path(), 5_000);
    let workdir = dir.path().join("factory");
    let factory = Factory::start(&coord, "git", 2, "linux", &workdir);

    let manifest = format!(
        "product = \"git\"\n{}{}",
        job_toml("on-main", &format!("{SHOW}; {COMMIT}"), &url, "main"),
        job_toml("on-feature", SHOW, &url, "feature"),
    );
    let ids = submit_manifest(&coord, &manifest);
    ended(&coord, &ids);
    let on_main = text_of(&coord, &ids[0].1);
    assert_eq!(state(&coord, &ids[0].1), "succeeded", "{on_main}");
    assert!(
        on_main.contains("main.txt") && !on_main.contains("feature.txt"),
        "{on_main}"
    );
    assert!(
        on_main.contains(&format!("url={url} rev=main commit={main_head}")),
        "{on_main}"
    );
    assert!(on_main.contains("committed"), "{on_main}");
    let on_feature = text_of(&coord, &ids[1].1);
    assert_eq!(state(&coord, &ids[1].1), "succeeded", "{on_feature}");
    assert!(on_feature.contains("feature.txt"), "{on_feature}");

    // One mirror for the URL; every worktree removed with its attempt.
    let found = mirrors(&workdir);
    assert_eq!(found.len(), 1, "{found:?}");
    let mirror = &found[0];
    wait_for(
        Duration::from_secs(30),
        "the worktrees to be removed",
        || no_worktree_left(mirror),
    );
    for (_, id) in &ids {
        let work = workdir.join("jobs").join(id).join("1").join("work");
        assert!(!work.exists(), "{} is left", work.display());
    }

    // The heartbeat carries the URL as warm.
    let (factory_id, _) = factory.identity();
    wait_for(Duration::from_secs(30), "the URL to be warm", || {
        get(&coord, &format!("/v1/factories/{factory_id}"))["warm"]
            .as_array()
            .is_some_and(|w| w.iter().any(|k| k == url.as_str()))
    });

    // A commit pushed since is fetched; an unknown revision ends the job dead.
    let new_head = commit(&origin, "later.txt");
    let nowhere = format!("file://{}", dir.path().join("nowhere").display());
    let manifest = format!(
        "product = \"git\"\n{}{}{}",
        job_toml("after-push", SHOW, &url, "main"),
        job_toml("unknown-rev", SHOW, &url, "no-such-branch"),
        job_toml("no-origin", SHOW, &nowhere, "main"),
    );
    let ids = submit_manifest(&coord, &manifest);
    ended(&coord, &ids);
    let after = text_of(&coord, &ids[0].1);
    assert_eq!(state(&coord, &ids[0].1), "succeeded", "{after}");
    assert!(
        after.contains("later.txt") && after.contains(&new_head),
        "{after}"
    );
    let unknown = job(&coord, &ids[1].1);
    assert_eq!(unknown["state"], "dead", "{unknown}");
    assert_eq!(unknown["attempts"], 1, "an unknown revision is not retried");
    let error = unknown["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("no-such-branch"), "{error}");
    // A clone that fails is this machine's or the network's: retried, with git's words.
    let no_origin = job(&coord, &ids[2].1);
    assert_eq!(no_origin["state"], "dead", "{no_origin}");
    assert_eq!(no_origin["attempts"], 2, "a failed clone is retried");
    let error = no_origin["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("git clone failed") && error.contains("nowhere"),
        "{error}"
    );
    assert_eq!(mirrors(&workdir).len(), 1, "{:?}", mirrors(&workdir));
}

#[test]
fn bad_repo_input_is_refused_and_creates_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);
    let body = r#"{"key": "k", "title": "t", "product": "git", "payload": {"command": "true"},
        "repo": {"url": "--upload-pack=touch /tmp/x", "rev": "a..b"}}"#;
    let (status, v) = call(
        "POST",
        &format!("{}/v1/jobs", coord.url),
        Some(&coord.admin),
        Some(body),
    );
    assert_eq!(status, 422, "{v}");
    let text = v.to_string();
    assert!(v["error"].is_string(), "{v}");
    for location in ["repo.url", "repo.rev"] {
        assert!(text.contains(location), "{location} named in {text}");
    }
    let manifest = job_toml("bad", "true", "https://example.com/a.git", "-f");
    let (status, v) = call(
        "POST",
        &format!("{}/v1/manifests", coord.url),
        Some(&coord.admin),
        Some(&format!("product = \"git\"\n{manifest}")),
    );
    assert_eq!(status, 422, "{v}");
    assert!(v.to_string().contains("jobs[0].repo.rev"), "{v}");
    let (_, jobs) = call(
        "GET",
        &format!("{}/v1/jobs", coord.url),
        Some(&coord.admin),
        None,
    );
    assert_eq!(jobs["jobs"].as_array().map_or(0, Vec::len), 0, "{jobs}");
}

#[test]
fn a_sandboxed_job_reads_its_checkout_and_its_history_but_cannot_write_the_mirror() {
    let _serial = serial();
    if let Some(why) = bwrap_refused() {
        eprintln!("skipping: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_origin, url, main_head) = origin(dir.path());
    let coord = Coordinator::start(dir.path(), 5_000);
    let workdir = dir.path().join("factory");
    let _factory = Factory::start_with_args(
        &coord,
        &coord.url,
        "sandboxed",
        1,
        "linux",
        &workdir,
        &["--sandbox", "bwrap"],
    );
    // `git log` reads the mirror, `git status` writes the worktree's own index; a commit
    // would write objects into the shared mirror, which is read-only.
    let command = "cat main.txt && git log --format=%H -1 && git status --short && echo status-ok; \
        echo x > new.txt && git add new.txt 2>/dev/null && echo ADDED || echo add-refused";
    let ids = submit_manifest(
        &coord,
        &format!(
            "product = \"git\"\n{}",
            job_toml("boxed", command, &url, "main")
        ),
    );
    ended(&coord, &ids);
    let log = text_of(&coord, &ids[0].1);
    assert_eq!(state(&coord, &ids[0].1), "succeeded", "{log}");
    assert!(
        log.contains(&main_head) && log.contains("status-ok"),
        "{log}"
    );
    assert!(
        log.contains("add-refused") && !log.contains("ADDED"),
        "{log}"
    );
}

//! The README's first command, as a newcomer runs it: `gigafactory demo` starts a coordinator
//! on the embedded store and two factories, runs the sample DAG (stages, a retry, a review of
//! what a job saved and spent) to its end and exits 0.

use std::process::Command;

#[test]
fn the_demo_runs_every_job_to_its_end_and_ships_the_reviewed_one_with_its_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gigafactory"))
        .args(["demo", "--timeout-secs", "120", "--dir"])
        .arg(dir.path().join("demo"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("all 5 jobs finished:"), "{stdout}");
    assert!(
        stdout.contains(
            "in review with RELEASE_NOTES.md, pull-request, version.patch: shipping them"
        ),
        "{stdout}"
    );
    let release = stdout
        .lines()
        .find(|l| l.starts_with("  release "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        release.contains("shipped") && release.contains("$0.0125"),
        "{release}"
    );
    let flaky = stdout.lines().find(|l| l.starts_with("  flaky ")).unwrap();
    assert!(flaky.contains("succeeded attempts 2"), "{flaky}");
}

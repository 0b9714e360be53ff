//! The README's first command, as a newcomer runs it: `gigafactory demo` starts a coordinator
//! on the embedded store and two factories, runs the sample DAG (stages, a retry, a review of
//! what a job saved and spent) to its end; with `--exit-when-done` it then exits 0, without it
//! keeps everything running for the newcomer to look around until interrupted.

use std::process::Command;

#[test]
fn the_demo_runs_every_job_to_its_end_and_ships_the_reviewed_one_with_its_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gigafactory"))
        .args(["demo", "--exit-when-done", "--timeout-secs", "120", "--dir"])
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

/// Without `--exit-when-done` the demo keeps its coordinator, factories and control plane
/// running after its jobs, printing where to look and the token to sign in with, until Ctrl-C.
#[test]
fn the_demo_keeps_its_coordinator_and_factories_running_until_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("demo.out");
    let mut demo = Command::new(env!("CARGO_BIN_EXE_gigafactory"))
        .args(["demo", "--timeout-secs", "120", "--dir"])
        .arg(dir.path().join("demo"))
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run the demo");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(150);
    let shown = loop {
        let text = std::fs::read_to_string(&out_path).unwrap_or_default();
        if text.contains("GIGAFACTORY_TOKEN=") {
            break text;
        }
        assert!(
            demo.try_wait().unwrap().is_none(),
            "the demo exited: {text}"
        );
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(shown.contains("all 5 jobs finished:"), "{shown}");
    let exports = shown
        .lines()
        .find(|l| {
            l.trim_start()
                .starts_with("export GIGAFACTORY_COORDINATOR=")
        })
        .unwrap();
    let var = |name: &str| {
        exports
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_owned()
    };
    let (url, token) = (var("GIGAFACTORY_COORDINATOR"), var("GIGAFACTORY_TOKEN"));
    assert!(
        shown.contains(&format!("open {url}/ and sign in with {token}")),
        "{shown}"
    );

    // The commands it prints work while it runs: both factories are still there.
    let listed = Command::new(env!("CARGO_BIN_EXE_gigafactory"))
        .args(["factories", "ls", "-o", "json"])
        .env("GIGAFACTORY_COORDINATOR", &url)
        .env("GIGAFACTORY_TOKEN", &token)
        .output()
        .unwrap();
    assert!(listed.status.success());
    let factories: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(factories.as_array().unwrap().len(), 2, "{factories}");
    assert!(demo.try_wait().unwrap().is_none(), "still running");

    // SAFETY: signals the demo child this test started, by its pid.
    unsafe { libc::kill(demo.id() as i32, libc::SIGINT) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = demo.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the demo did not stop on Ctrl-C"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
}

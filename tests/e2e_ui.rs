//! The control plane in headless Chromium (Debian's `chromium`, driven by `playwright-core`
//! from `tests/ui`) against a real coordinator and factory: the overview shows the fleet, a
//! submitted job appears and runs, its live logs stream, cancel ends it, a refused action shows
//! its error, a factory's page shows the jobs it runs and its actions, budgets are created,
//! paused, resumed, refused a bad edit and deleted, a budget's burndown is drawn, a job's cost
//! and the budget holding it show (the browser script plays a second factory to report usage),
//! a viewer cannot act, and narrow screens work. Screenshots go to `docs/screenshots/`. Needs
//! `chromium` and `npm ci --prefix tests/ui` (`.ci/run` does both).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

#[test]
fn the_control_plane_works_in_a_real_browser() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);
    let _f = Factory::start(&coord, "ui-factory", 1, "linux", &dir.path().join("f"));
    let viewer = post(
        &coord,
        "/v1/tokens",
        r#"{"role": "viewer", "name": "ui-viewer"}"#,
    )
    .1["token"]
        .as_str()
        .unwrap()
        .to_string();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shots = root.join("docs/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(root.join("tests/ui/ui.test.mjs"))
        .args([&coord.url, &coord.admin, &viewer])
        .arg(&shots)
        .current_dir(root.join("tests/ui"))
        .output()
        .expect("node (Node.js) is needed for the browser tests");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser tests failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("passed, 0 failed"), "{stdout}");
}

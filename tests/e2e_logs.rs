//! What a coordinator and a factory agent write to a log that is not a terminal, after a small
//! workload: plain text without colour codes by default, one JSON object a line with
//! `--log-format json`, and never the admin token (which goes only to its file).

mod common;

use std::time::Duration;

use common::{Coordinator, Factory, serial, state, submit_manifest, wait_for};

/// Runs two jobs through a coordinator and a factory started with `args`; both logs.
fn logs_after_a_workload(args: &[&str]) -> (String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut coord = Coordinator::start_with(dir.path(), 5_000, args);
    let factory_dir = dir.path().join("f");
    let _f = Factory::start_with_args(&coord, &coord.url, "logs", 1, "linux", &factory_dir, args);
    let manifest = "product = \"e2e\"\n\
        [[jobs]]\nkey = \"ok\"\ntitle = \"ok\"\ncapabilities = [\"linux\"]\ncommand = \"echo hello\"\n\
        [[jobs]]\nkey = \"bad\"\ntitle = \"bad\"\ncapabilities = [\"linux\"]\ncommand = \"exit 3\"\n\
        max_attempts = 1\n";
    let ids = submit_manifest(&coord, manifest);
    wait_for(Duration::from_secs(60), "both jobs to end", || {
        ids.iter()
            .all(|(_, id)| ["succeeded", "dead"].contains(&state(&coord, id).as_str()))
    });
    let admin = coord.admin.clone();
    coord.kill();
    let factory_log = std::fs::read_to_string(factory_dir.with_extension("log")).unwrap();
    (coord.log(), factory_log, admin)
}

#[test]
fn text_logs_carry_no_colour_codes_and_no_token() {
    let _serial = serial();
    let (coordinator, factory, admin) = logs_after_a_workload(&[]);
    for (who, log) in [("coordinator", &coordinator), ("factory", &factory)] {
        assert!(log.contains("INFO"), "{who} logged nothing:\n{log}");
        assert!(!log.contains('\u{1b}'), "{who} wrote escape codes:\n{log}");
        assert!(!log.contains(&admin), "{who} logged the admin token");
    }
}

#[test]
fn json_logs_are_one_object_a_line_and_carry_no_token() {
    let _serial = serial();
    let (coordinator, factory, admin) = logs_after_a_workload(&["--log-format", "json"]);
    for (who, log) in [("coordinator", &coordinator), ("factory", &factory)] {
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(!lines.is_empty(), "{who} logged nothing");
        for line in &lines {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{who}: not a JSON line ({e}): {line}"));
            assert!(
                v["level"].is_string() && v["timestamp"].is_string(),
                "{line}"
            );
            assert!(v["fields"].is_object(), "{line}");
        }
        assert!(!log.contains(&admin), "{who} logged the admin token");
    }
    // The agent's job events are there, as fields a shipper can index.
    assert!(
        factory.contains("\"job_id\""),
        "the agent's lines name their job:\n{factory}"
    );
}

/// A first start with no `--admin-token-file` and stderr redirected: the token goes into a
/// 0600 file beside the store, the log names that file, and the token itself is nowhere in it.
#[test]
fn a_first_start_into_a_log_puts_the_token_in_a_file_not_the_log() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let log_path = dir.path().join("coordinator.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let port = common::free_port();
    let mut child = std::process::Command::new(common::BIN)
        .args(["serve", "--store"])
        .arg(format!("embedded:{}", store.display()))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("GIGAFACTORY_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let token_file = store.join("admin-token");
    wait_for(Duration::from_secs(30), "the node to be ready", || {
        token_file.exists() && common::call("GET", &format!("{url}/readyz"), None, None).0 == 200
    });
    let admin = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    let (status, me) = common::call("GET", &format!("{url}/v1/whoami"), Some(&admin), None);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status, 200, "the file's token works: {me}");
    assert_eq!(me["role"], "admin", "{me}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(!text.contains(&admin), "the token is in the log:\n{text}");
    assert!(
        text.contains(&token_file.display().to_string()),
        "the log names the token's file:\n{text}"
    );
}

/// A first start told to put the token where no file can be made refuses to start before it
/// makes one, so the token is not lost: the next start, given a good file, still makes it.
#[test]
fn a_token_file_that_cannot_be_written_stops_the_first_start_before_a_token_exists() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("embedded:{}", dir.path().join("store").display());
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let port = common::free_port();
    let serve = |token_file: &std::path::Path| {
        let mut cmd = std::process::Command::new(common::BIN);
        cmd.args(["serve", "--store", &store])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--admin-token-file")
            .arg(token_file)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        cmd
    };
    let refused = serve(&blocker.join("admin-token")).output().unwrap();
    assert!(!refused.status.success(), "it started");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("admin token"),
        "the error names the token: {err}"
    );

    let good = dir.path().join("admin-token");
    let mut child = serve(&good)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    wait_for(Duration::from_secs(30), "the node to be ready", || {
        good.exists() && common::call("GET", &format!("{url}/readyz"), None, None).0 == 200
    });
    let admin = std::fs::read_to_string(&good).unwrap().trim().to_string();
    let (status, me) = common::call("GET", &format!("{url}/v1/whoami"), Some(&admin), None);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status, 200, "the second start made the first token: {me}");
    assert_eq!(me["role"], "admin", "{me}");
}

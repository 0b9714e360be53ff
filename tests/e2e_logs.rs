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

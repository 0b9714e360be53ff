//! Jobs in their sandbox, through a real coordinator and a factory started with
//! `--sandbox bwrap`: a job writes its workspace and nothing else and cannot read the factory's
//! identity, a job without the network cannot reach the coordinator (one with it can), a job
//! past its memory limit ends `dead` with a clear reason, and a spec with a limit out of
//! bounds is refused whole. Where the machine refuses namespaces or cgroups, the test says so
//! and skips that part.

mod common;

use std::path::Path;
use std::time::Duration;

use common::sandbox::bwrap_refused;
use common::{Coordinator, Factory, all_logs, call, job, serial, state, submit_manifest, wait_for};

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

fn job_toml(key: &str, command: &str, sandbox: &str) -> String {
    format!(
        "[[jobs]]\nkey = \"{key}\"\ntitle = \"{key}\"\ncapabilities = [\"linux\"]\n\
         max_attempts = 1\ncommand = '''{command}'''\nsandbox = {{ {sandbox} }}\n"
    )
}

fn start(dir: &Path) -> Option<(Coordinator, Factory, std::path::PathBuf)> {
    if let Some(why) = bwrap_refused() {
        eprintln!("skipping: {why}");
        return None;
    }
    let coord = Coordinator::start(dir, 5_000);
    let workdir = dir.join("factory");
    let factory = Factory::start_with_args(
        &coord,
        &coord.url,
        "sandboxed",
        3,
        "linux",
        &workdir,
        &["--sandbox", "bwrap"],
    );
    Some((coord, factory, workdir))
}

#[test]
fn a_sandboxed_job_writes_only_its_workspace_and_reaches_the_network_only_when_allowed() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let Some((coord, _factory, workdir)) = start(dir.path()) else {
        return;
    };
    let identity = workdir.join(".gigafactory/identity.json");
    wait_for(Duration::from_secs(30), "the factory's identity", || {
        identity.exists()
    });
    // One path beside the factory's directory (under the sandbox's private /tmp when the test
    // runs in /tmp), one in the machine's read-only tree: neither may appear on the host.
    let outside = dir.path().join("outside.txt");
    let unique = dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    let system = Path::new("/var/tmp").join(format!("gigafactory-escape{unique}"));
    let contained = format!(
        "echo kept > in.txt && touch \"$HOME/home-ok\" && echo t > /tmp/t && \
         echo x > {outside} 2>/dev/null; \
         if echo x > {system} 2>/dev/null; then echo ESCAPED-WRITE; exit 1; fi; \
         if cat {identity} 2>/dev/null; then echo ESCAPED-READ; exit 1; fi; echo contained",
        outside = outside.display(),
        system = system.display(),
        identity = identity.display(),
    );
    let reach = "curl -sf -m 5 \"$GF_COORDINATOR/healthz\" && echo reached || { echo unreachable; exit 3; }";
    let manifest = format!(
        "product = \"sbx\"\n{}{}{}",
        job_toml("contained", &contained, ""),
        job_toml("offline", reach, "network = false"),
        job_toml("online", reach, "network = true"),
    );
    let ids = submit_manifest(&coord, &manifest);
    ended(&coord, &ids);
    let id = |key: &str| ids.iter().find(|(k, _)| k == key).unwrap().1.clone();

    let contained_id = id("contained");
    let log = text_of(&coord, &contained_id);
    assert_eq!(state(&coord, &contained_id), "succeeded", "{log}");
    assert!(
        log.contains("contained") && !log.contains("ESCAPED"),
        "{log}"
    );
    assert!(!outside.exists(), "the job wrote outside its workspace");
    assert!(!system.exists(), "the job wrote into the machine's tree");

    let offline = id("offline");
    assert_eq!(
        state(&coord, &offline),
        "dead",
        "{}",
        text_of(&coord, &offline)
    );
    assert!(text_of(&coord, &offline).contains("unreachable"));
    let online = id("online");
    assert_eq!(
        state(&coord, &online),
        "succeeded",
        "{}",
        text_of(&coord, &online)
    );
    assert!(text_of(&coord, &online).contains("reached"));
}

#[test]
fn a_job_past_its_memory_limit_ends_dead_with_the_reason() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let Some((coord, _factory, _)) = start(dir.path()) else {
        return;
    };
    let hog = "python3 -c 'b = bytearray(400 * 1024 * 1024); print(len(b))'";
    let manifest = format!(
        "product = \"sbx\"\n{}{}",
        job_toml("hog", hog, "memory_mib = 64, cpu_millis = 500"),
        job_toml(
            "small",
            "python3 -c 'b = bytearray(8 * 1024 * 1024)' && echo fits",
            "memory_mib = 64"
        ),
    );
    let ids = submit_manifest(&coord, &manifest);
    ended(&coord, &ids);
    let hog_job = job(&coord, &ids[0].1);
    let error = hog_job["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if error.contains("cannot apply") {
        eprintln!("skipping: this machine gives the factory no cgroups: {error}");
        return;
    }
    assert_eq!(hog_job["state"], "dead", "{hog_job}");
    assert!(
        error.contains("memory limit (64 MiB)"),
        "the reason names the limit: {error}"
    );
    assert_eq!(hog_job["attempts"], 1, "a memory kill is not retried");
    assert_eq!(
        state(&coord, &ids[1].1),
        "succeeded",
        "a job within its limit runs"
    );
}

#[test]
fn a_sandbox_limit_out_of_bounds_is_refused_and_creates_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);
    let manifest = format!(
        "product = \"sbx\"\n{}",
        job_toml("bad", "true", "memory_mib = 1, cpu_millis = 5, swap = 1")
    );
    let (status, body) = call(
        "POST",
        &format!("{}/v1/manifests", coord.url),
        Some(&coord.admin),
        Some(&manifest),
    );
    assert_eq!(status, 422, "{body}");
    let text = body.to_string();
    for location in ["sandbox.memory_mib", "sandbox.cpu_millis", "sandbox.swap"] {
        assert!(text.contains(location), "{location} named in {text}");
    }
    let (_, jobs) = call(
        "GET",
        &format!("{}/v1/jobs", coord.url),
        Some(&coord.admin),
        None,
    );
    assert_eq!(jobs["jobs"].as_array().map_or(0, Vec::len), 0, "{jobs}");
}

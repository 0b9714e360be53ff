//! Secrets end to end, with real processes: a coordinator with a key file and a factory agent
//! (`--sandbox off`). A job gets its product's secret as a variable and its profile's as a
//! file, prints them and their encodings split across writes, asks a question with one, and
//! afterwards no value (nor an encoding) is in anything that can be read: stored logs, events,
//! the question, every API answer, both processes' logs and the store's bytes on disk. The
//! audit log names each use; a stale epoch or another factory gets nothing; a rotation reaches
//! the next lease, not the running one; bad input and a node without (or with the wrong) key
//! get a JSON error and change nothing.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use common::{
    BIN, Coordinator, Factory, FakeFactory, call, cli_ok, expect_error, get, mint, serial, state,
    submit_manifest, wait_for,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const PRODUCT_KEY: &str = "sk-e2e/first?key=a+b&c~d 0001";
const ROTATED_KEY: &str = "sk-e2e/rotated?key=x+y&z 0002";
const PROFILE_FILE: &str = "file-secret/profile&agent=yes 0003";
const SHADOWED_FILE: &str = "file-secret/product-wide 0004";

/// A new key from `secrets keygen`, in a 0600 file.
fn key_file(dir: &Path, name: &str) -> PathBuf {
    let out = Command::new(BIN)
        .args(["secrets", "keygen"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout).unwrap();
    assert_eq!(STANDARD.decode(key.trim()).unwrap().len(), 32);
    let path = dir.join(name);
    std::fs::write(&path, key).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

fn keyed_node(dir: &Path, key: &Path) -> Coordinator {
    Coordinator::start_with(
        dir,
        5_000,
        &["--secrets-key-file", &key.display().to_string()],
    )
}

/// `gigafactory secrets set NAME ARGS...` with the value on stdin, as an operator would.
fn set_from_stdin(coord: &Coordinator, name: &str, value: &str, args: &[&str]) -> Value {
    let mut child = Command::new(BIN)
        .args(["secrets", "set", name, "-o", "json"])
        .args(args)
        .env("GIGAFACTORY_COORDINATOR", &coord.url)
        .env("GIGAFACTORY_TOKEN", &coord.admin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{value}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "secrets set {name}: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Product `e2e`'s `API_KEY` (a variable) and `FILE_KEY` (a file, `file_value`); the answer
/// to the first set.
fn set_product_secrets(coord: &Coordinator, file_value: &str) -> Value {
    let set = set_from_stdin(coord, "API_KEY", PRODUCT_KEY, &["--product", "e2e"]);
    let file_args = ["--product", "e2e", "--as-file"];
    set_from_stdin(coord, "FILE_KEY", file_value, &file_args);
    set
}

fn sha(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `value` percent-encoded as an URL's query value would be (unreserved characters kept).
fn percent(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What must never be readable: the value, its base64 in both alphabets, its percent-encoding,
/// and the part of the base64 of `xy{value}z` (as the job prints it) made of its bits alone.
fn forms(value: &str) -> Vec<String> {
    let inside = URL_SAFE_NO_PAD.encode(format!("xy{value}z"));
    // "xy" is 16 bits: characters from the third on hold the value's bits until 8n + 16.
    let end = (8 * value.len() + 16) / 6;
    vec![
        value.to_string(),
        STANDARD_NO_PAD.encode(value),
        URL_SAFE_NO_PAD.encode(value),
        percent(value),
        inside[3..end].to_string(),
    ]
}

#[track_caller]
fn assert_clean(what: &str, text: &str, values: &[&str]) {
    for value in values {
        for form in forms(value) {
            assert!(!text.contains(&form), "{what} holds {form:?}");
        }
    }
}

/// Every file under `dir`, as raw bytes, lossily as text.
fn bytes_under(dir: &Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.push_str(&bytes_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    out
}

/// A job of profile `agent` that checks its secrets, prints them every way it can, reports
/// one as its stage, waits for `signal`, and checks its variable again (a rotation meanwhile
/// must not reach it).
fn job_command(variable_sha: &str, file_sha: &str, signal: &Path) -> String {
    format!(
        r#"set -eu
enc() {{ s="$1"; while [ -n "$s" ]; do r="${{s#?}}"; c="${{s%"$r"}}"; s="$r"; case "$c" in [A-Za-z0-9._~-]) printf %s "$c";; *) printf '%%%02X' "'$c";; esac; done; }}
[ "$(printf %s "$API_KEY" | sha256sum | cut -c1-64)" = "{variable_sha}" ] || {{ echo "API_KEY differs" >&2; exit 3; }}
[ "$(sha256sum < "$GF_SECRETS_DIR/FILE_KEY" | cut -c1-64)" = "{file_sha}" ] || {{ echo "FILE_KEY differs" >&2; exit 4; }}
[ "$(stat -c %a "$GF_SECRETS_DIR/FILE_KEY")" = 400 ] || {{ echo "FILE_KEY is not 0400" >&2; exit 5; }}
case "$GF_SECRETS_DIR" in "$PWD"*) echo "secrets inside the workspace" >&2; exit 6;; esac
printf 'value: %s' "${{API_KEY%"${{API_KEY#?????????}}"}}"; sleep 0.3; printf '%s\n' "${{API_KEY#?????????}}"
printf 'b64: %s\n' "$(printf %s "$API_KEY" | base64 -w0)"
printf 'b64 inside: %s\n' "$(printf 'xy%sz' "$API_KEY" | base64 -w0 | tr '+/' '-_' | tr -d '=')"
u="$(enc "$API_KEY")"; printf 'url: %s' "${{u%"${{u#???????????}}"}}"; sleep 0.3; printf '%s\n' "${{u#???????????}}"
f="$(cat "$GF_SECRETS_DIR/FILE_KEY")"
printf 'file: %s' "${{f%"${{f#??????}}"}}" >&2; sleep 0.3; printf '%s\n' "${{f#??????}}" >&2
printf 'file b64: %s\n' "$(printf %s "$f" | base64 -w0)" >&2
printf 'file url: %s\n' "$(enc "$f")" >&2
printf 'stage %s' "$API_KEY" > "$GF_CONTROL_DIR/stage"
a="$(gigafactory job ask "Is $API_KEY still valid?" --choice "$API_KEY" --choice no --timeout 2s --default "$API_KEY")"
printf 'asked: %s\n' "$a"
while [ ! -e '{signal}' ]; do sleep 0.1; done
[ "$(printf %s "$API_KEY" | sha256sum | cut -c1-64)" = "{variable_sha}" ] || {{ echo "API_KEY changed" >&2; exit 7; }}
echo done
"#,
        signal = signal.display()
    )
}

fn submit(coord: &Coordinator, key: &str, command: &str) -> String {
    let manifest = format!(
        "product = \"e2e\"\n[profiles.agent]\npriority = 10\n\
         [[jobs]]\nkey = \"{key}\"\ntitle = \"{key}\"\nprofile = \"agent\"\n\
         capabilities = [\"linux\"]\nmax_attempts = 1\ncommand = '''\n{command}'''\n"
    );
    submit_manifest(coord, &manifest).remove(0).1
}

fn wait_ended(coord: &Coordinator, id: &str) -> String {
    wait_for(Duration::from_secs(60), "the job to end", || {
        ["succeeded", "dead", "failed"].contains(&state(coord, id).as_str())
    });
    state(coord, id)
}

/// The job's output as stored, every line's text.
fn stored_output(coord: &Coordinator, id: &str) -> String {
    common::all_logs(coord, id)
        .iter()
        .map(|l| l["data"].as_str().unwrap_or_default())
        .collect()
}

#[test]
fn a_secret_reaches_the_job_and_is_found_nowhere_else_and_a_rotation_waits_for_the_next_lease() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "secrets.key");
    let mut coord = keyed_node(&dir.path().join("node"), &key);
    // The fleet stream, recorded from before the first job to the end.
    let fleet_file = dir.path().join("fleet.sse");
    let mut fleet = Command::new("curl")
        .args(["-s", "-N", "-m", "120", "-H"])
        .arg(format!("Authorization: Bearer {}", coord.admin))
        .arg(format!("{}/v1/events", coord.url))
        .stdout(std::fs::File::create(&fleet_file).unwrap())
        .spawn()
        .unwrap();
    let set = set_product_secrets(&coord, SHADOWED_FILE);
    assert_eq!((set["version"].as_u64(), set.get("value")), (Some(1), None));
    let from = dir.path().join("value.txt");
    std::fs::write(&from, PROFILE_FILE).unwrap();
    let from_arg = from.display().to_string();
    cli_ok(
        &coord,
        &[
            "secrets",
            "set",
            "FILE_KEY",
            "--product",
            "e2e",
            "--profile",
            "agent",
            "--as-file",
            "--from-file",
            &from_arg,
        ],
    );
    std::fs::remove_file(&from).unwrap();
    let factory_dir = dir.path().join("factory");
    let f = Factory::start(&coord, "secrets", 2, "linux", &factory_dir);

    let signal = dir.path().join("rotated");
    let first = submit(
        &coord,
        "first",
        &job_command(&sha(PRODUCT_KEY), &sha(PROFILE_FILE), &signal),
    );
    wait_for(Duration::from_secs(60), "the job's redacted stage", || {
        get(&coord, &format!("/v1/jobs/{first}"))["stage"].as_str()
            == Some("stage [secret API_KEY]")
            || ["dead", "failed"].contains(&state(&coord, &first).as_str())
    });
    // Rotated while the first job runs: it keeps its value, the next lease gets the new one.
    let rotated = set_from_stdin(&coord, "API_KEY", ROTATED_KEY, &["--product", "e2e"]);
    assert_eq!(rotated["version"].as_u64(), Some(2));
    std::fs::write(&signal, "").unwrap();
    let first_end = wait_ended(&coord, &first);
    let first_output = stored_output(&coord, &first);
    assert_eq!(first_end, "succeeded", "{first_output}");
    let second = submit(
        &coord,
        "second",
        &job_command(&sha(ROTATED_KEY), &sha(PROFILE_FILE), &signal),
    );
    let second_end = wait_ended(&coord, &second);
    assert_eq!(
        second_end,
        "succeeded",
        "{}",
        stored_output(&coord, &second)
    );

    // The job did print them: what was kept says where.
    for marker in [
        "value: [secret API_KEY]",
        "url: [secret API_KEY]",
        "file: [secret FILE_KEY]",
    ] {
        assert!(first_output.contains(marker), "{marker}: {first_output}");
    }
    assert!(first_output.contains("b64 inside: "), "{first_output}");
    // The job asked with the value in its question's text, choices and default: what was
    // asked (the job's events here; its view, which shows the question, is read below) holds
    // the marker.
    let asked = get(&coord, &format!("/v1/jobs/{first}/events")).to_string();
    assert!(
        asked.contains("Is [secret API_KEY] still valid?"),
        "the question was asked, redacted: {asked}"
    );

    // Everything that can be read, read.
    let secrets = get(&coord, "/v1/secrets?product=e2e");
    assert_eq!(secrets.as_array().unwrap().len(), 3, "{secrets}");
    let audit = get(&coord, "/v1/audit?limit=100");
    let uses: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "POST /v1/jobs/{id}/secrets")
        .collect();
    assert_eq!(uses.len(), 2, "one use per lease: {audit}");
    let sets: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "PUT /v1/secrets/{product}/{name}")
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert!(
        sets.contains(&"product=e2e name=API_KEY version=2")
            && sets.contains(&"product=e2e profile=agent name=FILE_KEY version=1"),
        "each set is audited with its scope and version: {sets:?}"
    );
    let (factory_id, factory_token) = f.identity();
    for (id, version) in [(&first, 1), (&second, 2)] {
        let entry = uses
            .iter()
            .find(|e| e["target"].as_str().unwrap().contains(id.as_str()))
            .unwrap_or_else(|| panic!("no use of {id}: {audit}"));
        let target = entry["target"].as_str().unwrap();
        assert!(target.contains(&format!("API_KEY@v{version}")), "{target}");
        assert!(target.contains("FILE_KEY@v1 (profile agent)"), "{target}");
        assert!(
            target.contains("epoch=") && target.contains("count=2"),
            "{target}"
        );
        assert_eq!(entry["caller"], factory_id.as_str(), "{entry}");
    }
    // The lease is over: the factory's own token gets nothing for it now.
    let (status, answer) = call(
        "POST",
        &format!("{}/v1/jobs/{first}/secrets", coord.url),
        Some(&factory_token),
        Some(&json!({"epoch": 1}).to_string()),
    );
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("fenced")),
        "{answer}"
    );
    let mut reads = vec![
        ("secrets list", secrets.to_string()),
        ("audit", audit.to_string()),
        ("jobs list", get(&coord, "/v1/jobs").to_string()),
        ("factories", get(&coord, "/v1/factories").to_string()),
        ("stats", get(&coord, "/v1/stats").to_string()),
        ("refused fetch", answer.to_string()),
    ];
    for id in [&first, &second] {
        for path in ["", "/events", "/logs", "/explain", "/dag", "/artifacts"] {
            reads.push((
                "job read",
                get(&coord, &format!("/v1/jobs/{id}{path}")).to_string(),
            ));
        }
    }
    let metrics = Command::new("curl")
        .args(["-s", &format!("{}/metrics", coord.url)])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout).into_owned();
    assert!(metrics.contains("gigafactory_"), "{metrics}");
    reads.push(("metrics", metrics));
    let (ok, ls, _) = common::cli(&coord, &["secrets", "ls"]);
    assert!(
        ok && ls.contains("FILE_KEY") && ls.contains("agent"),
        "{ls}"
    );
    reads.push(("secrets ls", ls));
    cli_ok(&coord, &["secrets", "rm", "FILE_KEY", "--product", "e2e"]);
    let left = cli_ok(&coord, &["secrets", "ls", "--product", "e2e", "-o", "json"]);
    let left: Value = serde_json::from_str(&left).unwrap();
    assert_eq!(left.as_array().unwrap().len(), 2, "{left}");
    reads.push(("secrets ls -o json", left.to_string()));
    let every = [PRODUCT_KEY, ROTATED_KEY, PROFILE_FILE, SHADOWED_FILE];
    for (what, text) in &reads {
        assert_clean(what, text, &every);
    }
    let _ = fleet.kill();
    let _ = fleet.wait();
    let fleet_events = std::fs::read_to_string(&fleet_file).unwrap();
    assert!(fleet_events.contains(&first), "the stream was recorded");
    assert_clean("fleet stream", &fleet_events, &every);
    drop(f);
    coord.kill();
    assert_clean("coordinator log", &coord.log(), &every);
    let factory_log = std::fs::read_to_string(factory_dir.with_extension("log")).unwrap();
    assert!(factory_log.contains("secrets fetched"), "{factory_log}");
    assert_clean("factory log", &factory_log, &every);
    assert_clean(
        "store files",
        &bytes_under(&dir.path().join("node")),
        &every,
    );
    assert!(
        !factory_dir.join("secrets").exists()
            || std::fs::read_dir(factory_dir.join("secrets"))
                .unwrap()
                .next()
                .is_none(),
        "the secret files went with their attempts"
    );
}

#[test]
fn only_the_lease_holder_at_its_epoch_gets_the_secrets_and_each_use_is_audited() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "secrets.key");
    let coord = keyed_node(&dir.path().join("node"), &key);
    set_from_stdin(&coord, "API_KEY", PRODUCT_KEY, &["--product", "e2e"]);
    let holder = FakeFactory::enroll(&coord);
    let other = FakeFactory::enroll(&coord);
    let manifest = "product = \"e2e\"\n[[jobs]]\nkey = \"k\"\ntitle = \"t\"\ncommand = \"true\"\n";
    let id = submit_manifest(&coord, manifest).remove(0).1;
    let (claimed, epoch) = holder.claim(&coord);
    assert_eq!(claimed, id);
    let fetch = |f: &FakeFactory, epoch: u64| {
        f.call(
            &coord,
            &format!("/v1/jobs/{id}/secrets"),
            json!({"epoch": epoch}),
        )
    };
    let audited = || {
        get(&coord, "/v1/audit?limit=100")["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "POST /v1/jobs/{id}/secrets")
            .count()
    };

    let refused = fetch(&other, epoch);
    expect_error(&refused, 403, "not_lease_holder");
    let stale = fetch(&holder, epoch + 1);
    expect_error(&stale, 409, "fenced");
    for refused in [&refused.1, &stale.1] {
        assert_clean("a refusal", &refused.to_string(), &[PRODUCT_KEY]);
    }
    assert_eq!(audited(), 0, "a refused fetch used nothing");

    let (status, answer) = fetch(&holder, epoch);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["secrets"],
        json!([{"name": "API_KEY", "version": 1, "delivery": "env", "value": PRODUCT_KEY}])
    );
    assert_eq!(audited(), 1);

    // Requeued by an operator: the epoch moves on, and the old one gets nothing.
    let (status, v) = common::post(&coord, &format!("/v1/jobs/{id}/actions/requeue"), "{}");
    assert_eq!(status, 200, "{v}");
    expect_error(&fetch(&holder, epoch), 409, "fenced");
    assert_eq!(audited(), 1);
}

#[test]
fn bad_input_gets_a_json_error_and_changes_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "secrets.key");
    let coord = keyed_node(&dir.path().join("node"), &key);
    set_from_stdin(&coord, "API_KEY", PRODUCT_KEY, &["--product", "e2e"]);
    let before = get(&coord, "/v1/secrets");
    let put = |path: &str, token: &str, body: Value| {
        call(
            "PUT",
            &format!("{}/v1/secrets/{path}", coord.url),
            Some(token),
            Some(&body.to_string()),
        )
    };
    let admin = coord.admin.clone();
    let value = json!({"value": "a long enough value"});
    for (path, body) in [
        ("e2e/lower_case", value.clone()),
        ("e2e/GF_JOB_ID", value.clone()),
        ("e2e/1ST", value.clone()),
        ("e2e/API_KEY", json!({"value": ""})),
        ("e2e/API_KEY", json!({"value": "short"})),
        ("e2e/API_KEY", json!({"value": "has a \u{0} byte"})),
        ("bad%20product/API_KEY", value.clone()),
        ("e2e/API_KEY?profile=bad%20profile", value.clone()),
    ] {
        expect_error(&put(path, &admin, body), 400, "invalid_request");
    }
    let unknown = put(
        "e2e/API_KEY",
        &admin,
        json!({"value": "long enough!", "extra": 1}),
    );
    assert!(unknown.0 == 400 || unknown.0 == 422, "{unknown:?}");
    // A scope that holds no such secret: the product-wide one stays.
    let (status, v) = call(
        "DELETE",
        &format!("{}/v1/secrets/e2e/API_KEY?profile=agent", coord.url),
        Some(&admin),
        None,
    );
    expect_error(&(status, v), 404, "not_found");
    let (viewer, _) = mint(&coord, "viewer", "watcher");
    expect_error(
        &put("e2e/API_KEY", &viewer, value.clone()),
        403,
        "forbidden",
    );
    let listed = call(
        "GET",
        &format!("{}/v1/secrets", coord.url),
        Some(&viewer),
        None,
    );
    assert_eq!(listed.0, 200, "a viewer lists names");
    assert_eq!(get(&coord, "/v1/secrets"), before, "nothing changed");
    assert_clean("the listing", &before.to_string(), &[PRODUCT_KEY]);
}

/// A node started without a key on a store where a keyed one set `API_KEY` of product `e2e`;
/// with the node's directory and store URL.
fn keyless_after_a_secret(dir: &Path, lease_ttl_ms: u64) -> (Coordinator, PathBuf, String) {
    let node = dir.join("node");
    let store = format!("embedded:{}", node.join("store").display());
    let key = key_file(dir, "secrets.key");
    let admin = {
        let keyed = keyed_node(&node, &key);
        set_from_stdin(&keyed, "API_KEY", PRODUCT_KEY, &["--product", "e2e"]);
        keyed.admin.clone()
    };
    let keyless = Coordinator::start_on(&node, &store, lease_ttl_ms, Some(&admin));
    (keyless, node, store)
}

#[test]
fn without_its_key_a_node_refuses_secrets_and_runs_jobs_and_a_wrong_key_is_a_clear_error() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // Leases long enough to outlive a restart of the node.
    let (keyless, node, store) = keyless_after_a_secret(dir.path(), 60_000);
    let admin = keyless.admin.clone();
    let refused = call(
        "PUT",
        &format!("{}/v1/secrets/other/API_KEY", keyless.url),
        Some(&admin),
        Some(&json!({"value": "a long enough value"}).to_string()),
    );
    expect_error(&refused, 409, "secrets_not_configured");
    assert!(
        refused.1["message"]
            .as_str()
            .unwrap()
            .contains("--secrets-key-file"),
        "{}",
        refused.1
    );
    assert_eq!(
        get(&keyless, "/v1/secrets").as_array().unwrap().len(),
        1,
        "listing needs no key"
    );
    // A product without secrets runs as before; one with secrets cannot be handed them.
    let fake = FakeFactory::enroll(&keyless);
    let manifest =
        "product = \"plain\"\n[[jobs]]\nkey = \"k\"\ntitle = \"t\"\ncommand = \"true\"\n";
    let plain = submit_manifest(&keyless, manifest).remove(0).1;
    let (_, epoch) = fake.claim(&keyless);
    let (status, v) = fake.call(
        &keyless,
        &format!("/v1/jobs/{plain}/secrets"),
        json!({"epoch": epoch}),
    );
    assert_eq!((status, &v["secrets"]), (200, &json!([])), "{v}");
    let manifest = "product = \"e2e\"\n[[jobs]]\nkey = \"k\"\ntitle = \"t\"\ncommand = \"true\"\n";
    let with = submit_manifest(&keyless, manifest).remove(0).1;
    let (_, epoch) = fake.claim(&keyless);
    let fetch = || {
        fake.call(
            &keyless,
            &format!("/v1/jobs/{with}/secrets"),
            json!({"epoch": epoch}),
        )
    };
    expect_error(&fetch(), 409, "secrets_not_configured");
    drop(keyless);

    let wrong = key_file(dir.path(), "wrong.key");
    let wrong_node = Coordinator::start_with_args(
        &node,
        &store,
        60_000,
        Some(&admin),
        None,
        &["--secrets-key-file", &wrong.display().to_string()],
    );
    let (status, v) = fake.call(
        &wrong_node,
        &format!("/v1/jobs/{with}/secrets"),
        json!({"epoch": epoch}),
    );
    expect_error(&(status, v.clone()), 500, "secrets_unreadable");
    assert_clean("the refusal", &v.to_string(), &[PRODUCT_KEY]);
    assert!(
        wrong_node.log().contains("a secret does not open"),
        "logged"
    );
    // A real agent hears the refusal at once and fails the attempt saying why, instead of
    // retrying the fetch until its lease runs out.
    let _f = Factory::start(
        &wrong_node,
        "wrong",
        1,
        "linux",
        &dir.path().join("factory"),
    );
    let unreadable = submit(&wrong_node, "unreadable", "echo never");
    assert_eq!(wait_ended(&wrong_node, &unreadable), "dead");
    let shown = get(&wrong_node, &format!("/v1/jobs/{unreadable}"));
    let error = shown["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("secrets_unreadable"), "{shown}");
}

#[test]
fn under_bubblewrap_the_secret_files_are_the_jobs_alone_and_read_only() {
    let _serial = serial();
    if let Some(why) = common::sandbox::bwrap_refused() {
        eprintln!("skipping: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "secrets.key");
    let coord = keyed_node(&dir.path().join("node"), &key);
    set_product_secrets(&coord, PROFILE_FILE);
    let factory_dir = dir.path().join("factory");
    let _f = Factory::start_with_args(
        &coord,
        &coord.url,
        "sandboxed",
        1,
        "linux",
        &factory_dir,
        &["--sandbox", "bwrap"],
    );
    // Once a first job ran (the agent cleared what an earlier one left before claiming it),
    // another attempt's secrets directory sits beside the next job's: the job must not see it.
    let first = submit(&coord, "warm-up", "true");
    assert_eq!(wait_ended(&coord, &first), "succeeded");
    let sibling = factory_dir.join("secrets").join("other-attempt");
    std::fs::create_dir_all(&sibling).unwrap();
    std::fs::write(sibling.join("FILE_KEY"), "another job's").unwrap();
    let command = format!(
        r#"set -u
[ "$(printf %s "$API_KEY" | sha256sum | cut -c1-64)" = "{}" ] || {{ echo "API_KEY differs"; exit 3; }}
[ "$(sha256sum < "$GF_SECRETS_DIR/FILE_KEY" | cut -c1-64)" = "{}" ] || {{ echo "FILE_KEY unreadable"; exit 4; }}
if chmod 600 "$GF_SECRETS_DIR/FILE_KEY" 2>/dev/null; then echo "FILE_KEY is writable"; exit 5; fi
if touch "$GF_SECRETS_DIR/more" 2>/dev/null; then echo "the secrets directory is writable"; exit 6; fi
[ "$(ls "$GF_SECRETS_DIR/.." | wc -l)" = 1 ] || {{ echo "other attempts' secrets are visible"; exit 7; }}
echo sandboxed ok
"#,
        sha(PRODUCT_KEY),
        sha(PROFILE_FILE)
    );
    let id = submit(&coord, "sandboxed", &command);
    let end = wait_ended(&coord, &id);
    let output = stored_output(&coord, &id);
    assert_eq!(end, "succeeded", "{output}");
    assert!(output.contains("sandboxed ok"), "{output}");
}

#[test]
fn a_factory_fails_a_job_whose_secrets_a_keyless_node_cannot_hand_over_saying_why() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (keyless, _, _) = keyless_after_a_secret(dir.path(), 5_000);
    let _f = Factory::start(&keyless, "keyless", 1, "linux", &dir.path().join("factory"));
    let id = submit(&keyless, "needs-a-key", "echo never");
    assert_eq!(wait_ended(&keyless, &id), "dead");
    let shown = get(&keyless, &format!("/v1/jobs/{id}"));
    let error = shown["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("secrets_not_configured") && error.contains("--secrets-key-file"),
        "{shown}"
    );
    assert!(
        !stored_output(&keyless, &id).contains("never"),
        "it never ran"
    );
}

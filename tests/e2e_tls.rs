//! End to end over HTTPS with certificates made at test time: a coordinator serving TLS (and
//! asking factories for client certificates), a factory agent and the CLI run a job through it;
//! a client that does not trust its CA is refused with a message that says what to do; a
//! replaced certificate is served to new connections without a restart; a browser session's
//! cookie is `Secure` over HTTPS.

#[path = "common/ca.rs"]
mod ca;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ca::{Purpose, TestCa};
use common::*;

/// A server certificate for loopback signed by `ca`, written as `dir/server.pem` and
/// `dir/server.key`.
fn server_files(ca: &TestCa, dir: &Path) -> (PathBuf, PathBuf) {
    ca.leaf_files(
        &["localhost", "127.0.0.1"],
        Purpose::ServerAuth,
        &dir.join("server.pem"),
        &dir.join("server.key"),
    )
}

/// A node serving HTTPS with a certificate its own new CA signed, which clients trust: the
/// CA's file and the node.
fn tls_node(dir: &Path) -> (PathBuf, Coordinator) {
    let ca = TestCa::new("ca");
    let ca_file = ca.write(&dir.join("ca.pem"));
    let (cert, key) = server_files(&ca, dir);
    use_client_tls(ClientTls {
        ca: Some(ca_file.clone()),
        identity: None,
    });
    let coord = Coordinator::start_with(
        &dir.join("node"),
        5_000,
        &["--tls-cert", s(&cert), "--tls-key", s(&key)],
    );
    (ca_file, coord)
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_factory_and_the_cli_run_a_job_over_https_with_client_certificates() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let servers = TestCa::new("servers");
    let factories = TestCa::new("factories");
    let (cert, key) = server_files(&servers, dir.path());
    let factories_file = factories.write(&dir.path().join("factories.pem"));
    let identity = factories.leaf_files(
        &["factory-1"],
        Purpose::ClientAuth,
        &dir.path().join("client.pem"),
        &dir.path().join("client.key"),
    );
    use_client_tls(ClientTls {
        ca: Some(servers.write(&dir.path().join("servers.pem"))),
        identity: Some(identity),
    });
    let coord = Coordinator::start_with(
        &dir.path().join("node"),
        5_000,
        &[
            "--tls-cert",
            s(&cert),
            "--tls-key",
            s(&key),
            "--tls-client-ca",
            s(&factories_file),
            "--tls-client-cert-required",
        ],
    );
    assert!(coord.url.starts_with("https://"), "{}", coord.url);
    let _factory = Factory::start(&coord, "f", 1, "linux", &dir.path().join("f"));
    let manifest = dir.path().join("jobs.toml");
    std::fs::write(
        &manifest,
        "product = \"tls\"\n[[jobs]]\nkey = \"hello\"\ntitle = \"hello\"\ncapabilities = [\"linux\"]\ncommand = \"echo hello\"\n",
    )
    .unwrap();
    let out = cli_ok(&coord, &["submit", s(&manifest)]);
    // Under the table's header: the job's id, then its key.
    let id = out
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    wait_for(
        Duration::from_secs(60),
        "the job to succeed over TLS",
        || state(&coord, &id) == "succeeded",
    );
    assert!(cli_ok(&coord, &["jobs", "ls"]).contains(&id));
}

#[test]
fn a_client_without_the_ca_is_refused_with_a_certificate_error() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (_, coord) = tls_node(dir.path());
    let out = Command::new(BIN)
        .args(["jobs", "ls"])
        .env("GIGAFACTORY_COORDINATOR", &coord.url)
        .env("GIGAFACTORY_TOKEN", &coord.admin)
        .env_remove("GIGAFACTORY_CA_FILE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("certificate is not trusted"), "{err}");
    assert!(err.contains("--ca-file"), "{err}");
    // The same call trusting the CA goes through.
    assert!(cli(&coord, &["jobs", "ls"]).0);
}

#[test]
fn a_replaced_certificate_is_served_to_new_connections() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (old, coord) = tls_node(dir.path());
    // A new CA signs the replacement, written over the same files.
    let new = TestCa::new("new");
    let new_file = new.write(&dir.path().join("new.pem"));
    server_files(&new, dir.path());
    let healthz = format!("{}/healthz", coord.url);
    let trusting = |ca: &Path| {
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "--cacert", s(ca), &healthz])
            .status()
            .unwrap()
            .success()
    };
    wait_for(Duration::from_secs(10), "the new certificate", || {
        trusting(&new_file)
    });
    assert!(!trusting(&old), "the old certificate is still served");
}

#[test]
fn a_session_cookie_over_https_is_secure() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let (_, coord) = tls_node(dir.path());
    let body = serde_json::json!({ "token": coord.admin }).to_string();
    let (status, headers, v) = raw(
        "POST",
        &format!("{}/v1/session", coord.url),
        &[("content-type", "application/json")],
        Some(&body),
    );
    assert_eq!(status, 201, "{v}");
    let cookie = &headers["set-cookie"];
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
}

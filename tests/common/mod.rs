//! Harness for end-to-end tests: real `gigafactory serve` and `gigafactory factory` processes on
//! loopback ports (over HTTP, or HTTPS trusting a test CA), the CLI, and bounded waits; HTTP calls
//! (`http.rs`), a factory the test plays itself (`fake_factory.rs`) and lease spans (`spans.rs`). Every process is killed when its handle
//! drops, so a failing test leaves nothing running.

#![allow(dead_code)]

pub mod artifacts;
mod fake_factory;
mod http;
pub mod sandbox;
mod spans;
pub mod tracker;

// Each test binary uses some of these, as of the rest of the harness (`dead_code` above).
#[allow(unused_imports)]
pub use fake_factory::FakeFactory;
#[allow(unused_imports)]
pub use http::{call, call_with, curl, expect_error, raw};
#[allow(unused_imports)]
pub use spans::{lease_spans, most_at_once};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_gigafactory");

/// What every client this test process starts (curl, the CLI, factories) trusts and presents
/// to a coordinator serving HTTPS.
#[derive(Clone, Default)]
pub struct ClientTls {
    /// The CA certificate to trust.
    pub ca: Option<PathBuf>,
    /// A client certificate and its key.
    pub identity: Option<(PathBuf, PathBuf)>,
}

static CLIENT_TLS: Mutex<Option<ClientTls>> = Mutex::new(None);

/// From now on, clients started here trust and present what `tls` says.
pub fn use_client_tls(tls: ClientTls) {
    *CLIENT_TLS.lock().unwrap_or_else(|p| p.into_inner()) = Some(tls);
}

fn client_tls() -> ClientTls {
    let tls = CLIENT_TLS.lock().unwrap_or_else(|p| p.into_inner());
    tls.clone().unwrap_or_default()
}

/// curl, trusting and presenting what [`use_client_tls`] said.
fn curl_command() -> Command {
    let mut cmd = Command::new("curl");
    let tls = client_tls();
    if let Some(ca) = tls.ca {
        cmd.arg("--cacert").arg(ca);
    }
    if let Some((cert, key)) = tls.identity {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    cmd
}

/// The CLI's and the factory agent's TLS flags for what [`use_client_tls`] said.
fn tls_flags() -> Vec<std::ffi::OsString> {
    let tls = client_tls();
    let mut flags = Vec::new();
    if let Some(ca) = tls.ca {
        flags.extend(["--ca-file".into(), ca.into_os_string()]);
    }
    if let Some((cert, key)) = tls.identity {
        flags.extend(["--tls-client-cert".into(), cert.into_os_string()]);
        flags.extend(["--tls-client-key".into(), key.into_os_string()]);
    }
    flags
}

/// End-to-end tests run one at a time: each starts several processes and leases are timed.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A PATH with this binary first, for jobs that call `gigafactory job stage`.
fn job_path() -> String {
    let dir = Path::new(BIN).parent().unwrap();
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

pub struct Coordinator {
    child: Option<Child>,
    pub url: String,
    pub admin: String,
    dir: PathBuf,
    port: u16,
    lease_ttl_ms: u64,
    store: String,
    /// A config file given with `--config`, if any.
    config: Option<PathBuf>,
    /// More `serve` arguments (`--tls-cert ...`, `--enable-fault-injection`).
    args: Vec<String>,
}

impl Coordinator {
    /// A node on its own embedded store in `dir`.
    pub fn start(dir: &Path, lease_ttl_ms: u64) -> Self {
        let store = format!("embedded:{}", dir.join("store").display());
        Self::start_on(dir, &store, lease_ttl_ms, None)
    }

    /// A node on its own embedded store in `dir`, with `config` (TOML) as its config file.
    pub fn start_with_config(dir: &Path, lease_ttl_ms: u64, config: &str) -> Self {
        let store = format!("embedded:{}", dir.join("store").display());
        Self::start_configured(dir, &store, lease_ttl_ms, None, Some(config))
    }

    /// A node on `store`; `admin` is the admin token when an earlier node already minted it.
    pub fn start_on(dir: &Path, store: &str, lease_ttl_ms: u64, admin: Option<&str>) -> Self {
        Self::start_configured(dir, store, lease_ttl_ms, admin, None)
    }

    /// A node on `store`, with `config` (TOML) as its config file when given.
    pub fn start_configured(
        dir: &Path,
        store: &str,
        lease_ttl_ms: u64,
        admin: Option<&str>,
        config: Option<&str>,
    ) -> Self {
        Self::start_with_args(dir, store, lease_ttl_ms, admin, config, &[])
    }

    /// A node on its own embedded store in `dir` with more `serve` arguments; with
    /// `--tls-cert` it is reached over HTTPS, as [`use_client_tls`] says.
    pub fn start_with(dir: &Path, lease_ttl_ms: u64, args: &[&str]) -> Self {
        let store = format!("embedded:{}", dir.join("store").display());
        Self::start_with_args(dir, &store, lease_ttl_ms, None, None, args)
    }

    /// A node on `store` with more `serve` arguments, `admin` as in [`Self::start_on`].
    pub fn start_with_args(
        dir: &Path,
        store: &str,
        lease_ttl_ms: u64,
        admin: Option<&str>,
        config: Option<&str>,
        args: &[&str],
    ) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let config = config.map(|text| {
            let path = dir.join("gigafactory.toml");
            std::fs::write(&path, text).unwrap();
            path
        });
        if let Some(a) = admin {
            std::fs::write(dir.join("admin-token"), a).unwrap();
        }
        let mut c = Coordinator {
            child: None,
            url: String::new(),
            admin: String::new(),
            dir: dir.to_path_buf(),
            port: free_port(),
            lease_ttl_ms,
            store: store.to_string(),
            config,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        c.spawn();
        c.admin = std::fs::read_to_string(dir.join("admin-token"))
            .expect("admin token written on first start")
            .trim()
            .to_string();
        c
    }

    /// Nodes of one test sharing a store (their directories side by side) share artifacts.
    fn shared_artifacts(&self) -> Vec<String> {
        if self.store.starts_with("embedded:") {
            return Vec::new();
        }
        let shared = self.dir.parent().unwrap().join("artifacts");
        vec!["--artifacts".into(), shared.display().to_string()]
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("coordinator.log"))
            .unwrap();
        let child = Command::new(BIN)
            .arg("serve")
            .arg("--store")
            .arg(&self.store)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--admin-token-file")
            .arg(self.dir.join("admin-token"))
            .arg("--lease-ttl-ms")
            .arg(self.lease_ttl_ms.to_string())
            .args(
                self.config
                    .iter()
                    .flat_map(|c| ["--config".as_ref(), c.as_os_str()]),
            )
            .args(self.shared_artifacts())
            .args(&self.args)
            .env("GIGAFACTORY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start coordinator");
        self.child = Some(child);
        let scheme = if self.args.iter().any(|a| a == "--tls-cert") {
            "https"
        } else {
            "http"
        };
        self.url = format!("{scheme}://127.0.0.1:{}", self.port);
        let ready = format!("{}/readyz", self.url);
        wait_for(Duration::from_secs(30), "coordinator ready", || {
            self.dir.join("admin-token").exists() && call("GET", &ready, None, None).0 == 200
        });
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// The node's resident memory now, in bytes (from `/proc`).
    pub fn rss_bytes(&self) -> u64 {
        let pid = self.child.as_ref().expect("running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS");
        kib * 1024
    }

    /// Restarts on the same store and port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("coordinator.log")).unwrap_or_default()
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Factory {
    child: Option<Child>,
    pub workdir: PathBuf,
}

impl Factory {
    pub fn start(
        coord: &Coordinator,
        name: &str,
        slots: u32,
        capabilities: &str,
        workdir: &Path,
    ) -> Self {
        Self::start_with_args(coord, &coord.url, name, slots, capabilities, workdir, &[])
    }

    /// A factory that fails over between the comma-separated coordinator `urls`, with more
    /// command-line arguments (`--warm KEY`, say).
    pub fn start_with_args(
        coord: &Coordinator,
        urls: &str,
        name: &str,
        slots: u32,
        capabilities: &str,
        workdir: &Path,
        extra: &[&str],
    ) -> Self {
        let token = enrollment_token(coord);
        let log = std::fs::File::create(workdir.with_extension("log")).unwrap();
        let child = Command::new(BIN)
            .args([
                "factory",
                "--coordinator",
                urls,
                "--slots",
                &slots.to_string(),
            ])
            .args([
                "--capabilities",
                capabilities,
                "--name",
                name,
                "--heartbeat-secs",
                "1",
                "--grace-secs",
                "2",
            ])
            .arg("--workdir")
            .arg(workdir)
            .arg("--enroll-token")
            .arg(token)
            .args(tls_flags())
            // Test jobs signal the test through files beside their workspace, which a sandbox
            // hides: only the sandbox's own tests ask for one.
            .args(
                (!extra.contains(&"--sandbox"))
                    .then_some(["--sandbox", "off"])
                    .into_iter()
                    .flatten(),
            )
            .args(extra)
            .env("PATH", job_path())
            .env("GIGAFACTORY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start factory");
        Factory {
            child: Some(child),
            workdir: workdir.to_path_buf(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to a child we own.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    /// The factory's own token and id, from the identity it stored after enrolling.
    pub fn identity(&self) -> (String, String) {
        let v: Value = serde_json::from_str(
            &std::fs::read_to_string(self.workdir.join(".gigafactory/identity.json")).unwrap(),
        )
        .unwrap();
        (
            v["factory_id"].as_str().unwrap().to_string(),
            v["token"].as_str().unwrap().to_string(),
        )
    }
}

impl Drop for Factory {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal(libc::SIGCONT);
        }
        self.kill();
    }
}

/// Polls `check` until it holds, failing the test after `within`.
pub fn wait_for(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Budgets' periods (day, week, month) all turn over at UTC midnight, and a test that reports
/// spend and then reads it back would see a fresh period if midnight fell in between. A test
/// that needs `span` without one waits for midnight to pass first, when it is that close.
pub fn clear_of_utc_midnight(span: Duration) {
    const DAY_MS: u128 = 86_400_000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let left = Duration::from_millis((DAY_MS - now % DAY_MS) as u64);
    if left < span {
        eprintln!("waiting {left:?} for UTC midnight to pass before a budget's period is used");
        std::thread::sleep(left + Duration::from_secs(2));
    }
}

pub fn get(coord: &Coordinator, path: &str) -> Value {
    let (status, v) = call(
        "GET",
        &format!("{}{path}", coord.url),
        Some(&coord.admin),
        None,
    );
    assert_eq!(status, 200, "GET {path}: {v}");
    v
}

pub fn post(coord: &Coordinator, path: &str, body: &str) -> (u16, Value) {
    call(
        "POST",
        &format!("{}{path}", coord.url),
        Some(&coord.admin),
        Some(body),
    )
}

pub fn enrollment_token(coord: &Coordinator) -> String {
    let (status, v) = post(coord, "/v1/enrollment-tokens", "{}");
    assert_eq!(status, 200, "{v}");
    v["token"].as_str().unwrap().to_string()
}

pub fn submit_manifest(coord: &Coordinator, manifest: &str) -> Vec<(String, String)> {
    let (_, v) = call(
        "POST",
        &format!("{}/v1/manifests", coord.url),
        Some(&coord.admin),
        Some(manifest),
    );
    v["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("manifest refused: {v}"))
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub fn job(coord: &Coordinator, id: &str) -> Value {
    get(coord, &format!("/v1/jobs/{id}"))
}

pub fn events(coord: &Coordinator, id: &str) -> Vec<Value> {
    get(coord, &format!("/v1/jobs/{id}/events"))
        .as_array()
        .unwrap()
        .clone()
}

/// Every stored line of a job's output, read page after page (a page is bounded in bytes).
pub fn all_logs(coord: &Coordinator, id: &str) -> Vec<Value> {
    let mut lines: Vec<Value> = Vec::new();
    loop {
        let after = lines.last().map_or(String::new(), |l| {
            format!("?after={}:{}", l["attempt"], l["seq"])
        });
        let page = get(coord, &format!("/v1/jobs/{id}/logs{after}"));
        let page = page.as_array().unwrap();
        if page.is_empty() {
            return lines;
        }
        lines.extend(page.iter().cloned());
    }
}

pub fn state(coord: &Coordinator, id: &str) -> String {
    job(coord, id)["state"].as_str().unwrap().to_string()
}

/// Runs the CLI against `coord` as its admin: whether it succeeded, its stdout and stderr.
pub fn cli(coord: &Coordinator, args: &[&str]) -> (bool, String, String) {
    cli_as(coord, &coord.admin, args)
}

/// Runs the CLI against `coord` with `token`: whether it succeeded, its stdout and stderr.
pub fn cli_as(coord: &Coordinator, token: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .args(tls_flags())
        .env("GIGAFACTORY_COORDINATOR", &coord.url)
        .env("GIGAFACTORY_TOKEN", token)
        .env_remove("GF_CONTROL_DIR")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the CLI and expects it to succeed; its stdout.
pub fn cli_ok(coord: &Coordinator, args: &[&str]) -> String {
    cli_as_ok(coord, &coord.admin, args)
}

/// Runs the CLI with `token` and expects it to succeed; its stdout.
pub fn cli_as_ok(coord: &Coordinator, token: &str, args: &[&str]) -> String {
    let (ok, out, err) = cli_as(coord, token, args);
    assert!(ok, "gigafactory {args:?} failed: {err}");
    out
}

/// Mints a token for `role` as the admin: its secret and id.
pub fn mint(coord: &Coordinator, role: &str, name: &str) -> (String, String) {
    let (status, v) = post(
        coord,
        "/v1/tokens",
        &serde_json::json!({"role": role, "name": name}).to_string(),
    );
    assert_eq!(status, 200, "{v}");
    (
        v["token"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    )
}

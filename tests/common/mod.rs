//! Harness for end-to-end tests: real `gigafactory serve` and `gigafactory factory` processes on
//! loopback ports (over HTTP, or HTTPS trusting a test CA), an HTTP helper, and bounded waits. Every process is killed when its handle
//! drops, so a failing test leaves nothing running.

#![allow(dead_code)]

pub mod artifacts;
pub mod tracker;

use std::collections::HashMap;
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

fn free_port() -> u16 {
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

    fn start_with_args(
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

/// One HTTP call: status and JSON body (Null when empty or not JSON). The body goes through
/// stdin, so it may be larger than an argument list allows.
pub fn call(method: &str, url: &str, token: Option<&str>, body: Option<&str>) -> (u16, Value) {
    let mut cmd = curl_command();
    cmd.args(["-X", method]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if method != "GET" {
        // Every write says it is JSON, as the API requires (a cross-site form cannot).
        cmd.args(["-H", "content-type: application/json"]);
    }
    if body.is_some() {
        cmd.args(["--data-binary", "@-"]);
    }
    cmd.arg(url);
    curl(cmd, body.unwrap_or_default().as_bytes())
}

/// Runs `cmd` (a curl with its method, headers and URL) with `body` on its stdin: the status
/// and the JSON body (Null when empty or not JSON).
pub fn curl(mut cmd: Command, body: &[u8]) -> (u16, Value) {
    use std::io::Write;
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("curl");
    let mut stdin = child.stdin.take().unwrap();
    // The server may answer (413) before reading it all; a broken pipe is fine then.
    let _ = stdin.write_all(body);
    drop(stdin);
    let out = child.wait_with_output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// Asserts an error answer: its status, its stable `error` code, and a message saying why.
#[track_caller]
pub fn expect_error(got: &(u16, Value), status: u16, code: &str) {
    assert_eq!(
        (got.0, got.1["error"].as_str()),
        (status, Some(code)),
        "{}",
        got.1
    );
    assert!(
        !got.1["message"].as_str().unwrap_or_default().is_empty(),
        "every error says why: {}",
        got.1
    );
}

/// Like [`call`], with extra headers and no token (a tracker's webhook, say).
pub fn call_with(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let mut cmd = curl_command();
    cmd.args(["-X", method, "-H", "content-type: application/json"]);
    for (name, value) in headers {
        cmd.args(["-H", &format!("{name}: {value}")]);
    }
    cmd.args(["--data-binary", "@-", url]);
    curl(cmd, body.as_bytes())
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

/// A factory the test plays itself, with its own token.
pub struct FakeFactory {
    pub token: String,
}

impl FakeFactory {
    pub fn enroll(coord: &Coordinator) -> Self {
        let body = serde_json::json!({"name": "fake", "os": "linux", "arch": "x86_64", "slots": 4});
        let (status, v) = call(
            "POST",
            &format!("{}/v1/factories/enroll", coord.url),
            Some(&enrollment_token(coord)),
            Some(&body.to_string()),
        );
        assert_eq!(status, 200, "{v}");
        FakeFactory {
            token: v["token"].as_str().unwrap().to_string(),
        }
    }

    pub fn call(&self, coord: &Coordinator, path: &str, body: Value) -> (u16, Value) {
        call(
            "POST",
            &format!("{}{path}", coord.url),
            Some(&self.token),
            Some(&body.to_string()),
        )
    }

    /// Claims the one queued job: `(id, epoch)`.
    pub fn claim(&self, coord: &Coordinator) -> (String, u64) {
        let (status, v) = self.call(
            coord,
            "/v1/claims",
            serde_json::json!({"max_jobs": 1, "wait_ms": 5000}),
        );
        assert_eq!(status, 200, "{v}");
        let job = &v["jobs"][0];
        (
            job["job_id"].as_str().unwrap().to_string(),
            job["epoch"].as_u64().unwrap(),
        )
    }

    pub fn write(
        &self,
        coord: &Coordinator,
        id: &str,
        what: &str,
        epoch: u64,
        body: Value,
    ) -> (u16, Value) {
        let request_id = format!("{what}-{id}-{epoch}-{}", body.to_string().len());
        self.write_as(coord, id, what, epoch, &request_id, body)
    }

    /// A fenced write with the request id given (a retry sends the same one).
    pub fn write_as(
        &self,
        coord: &Coordinator,
        id: &str,
        what: &str,
        epoch: u64,
        request_id: &str,
        body: Value,
    ) -> (u16, Value) {
        let mut body = body;
        body["epoch"] = serde_json::json!(epoch);
        body["request_id"] = serde_json::json!(request_id);
        self.call(coord, &format!("/v1/jobs/{id}/{what}"), body)
    }
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

/// The (claim, end) times of each attempt of `ids`, from their timelines.
pub fn lease_spans(coord: &Coordinator, ids: &[String]) -> Vec<(u64, u64)> {
    let mut spans = Vec::new();
    for id in ids {
        let mut open = None;
        for e in events(coord, id) {
            let at = e["at"].as_u64().unwrap();
            match e["kind"].as_str().unwrap() {
                "claim" => open = Some(at),
                "complete" | "fail" | "release" | "expire" => {
                    if let Some(start) = open.take() {
                        spans.push((start, at));
                    }
                }
                _ => {}
            }
        }
    }
    spans
}

/// The most spans open at one moment.
pub fn most_at_once(spans: &[(u64, u64)]) -> usize {
    spans
        .iter()
        .map(|(start, _)| {
            spans
                .iter()
                .filter(|(s, e)| s <= start && start < e)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// One HTTP call with `headers` (and no others but curl's own): status, answer headers
/// (lower-cased names) and JSON body (Null when empty or not JSON).
pub fn raw(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, HashMap<String, String>, Value) {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("headers");
    let mut cmd = curl_command();
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, "-D"])
        .arg(&dump);
    for (name, value) in headers {
        cmd.args(["-H", &format!("{name}: {value}")]);
    }
    if let Some(b) = body {
        cmd.args(["--data-binary", b]);
    }
    let out = cmd.arg(url).stdout(Stdio::piped()).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let answer_headers = std::fs::read_to_string(&dump)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (
        code.trim().parse().unwrap_or(0),
        answer_headers,
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
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

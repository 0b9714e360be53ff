//! Coordinator nodes the bench starts: `gigafactory serve` (from the executable the caller
//! named) as a child process on a loopback port the bench picks, in a scratch directory under
//! the current directory. A child is killed when its handle drops (`kill_on_drop`), so every
//! way out of the bench — success, error, Ctrl-C — takes it down; a scratch directory is
//! removed when dropped.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use uuid::Uuid;

use super::error::{Error, Result};
use crate::procfs::{self, Memory};

/// How long a child coordinator has to answer `/readyz`.
const READY_DEADLINE_SECS: u64 = 60;
/// Pause between two start-up probes.
const PROBE_PAUSE_MS: u64 = 50;
/// Lines of a coordinator's log shown when the run fails.
const LOG_TAIL_LINES: usize = 30;
/// The log file in a node's directory.
const LOG_FILE: &str = "coordinator.log";
/// The admin-token file in a node's directory.
const TOKEN_FILE: &str = "admin-token";

/// A directory removed when dropped.
pub(crate) struct ScratchDir(pub PathBuf);

impl ScratchDir {
    /// A fresh `gigafactory-bench-<id>` directory under the current directory.
    pub fn create() -> Result<ScratchDir> {
        let name = format!("gigafactory-bench-{}", Uuid::now_v7().simple());
        let path = std::path::absolute(&name)
            .map_err(|e| Error::io(format!("locating {name} in the current directory"), e))?;
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        Ok(ScratchDir(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("could not remove {}: {e}", self.0.display());
        }
    }
}

/// How the bench starts a coordinator node.
#[derive(Clone)]
pub(crate) struct Launcher {
    /// The executable whose `serve` subcommand runs a node.
    pub gigafactory: PathBuf,
    /// The nodes' job lease TTL (`serve`'s own default when `None`).
    pub lease_ttl_ms: Option<u64>,
    /// Fair share on or off (`serve`'s own default when `None`).
    pub fair_share: Option<bool>,
}

/// One `gigafactory serve` child, restartable on the same port, store and directory.
pub(crate) struct ChildNode {
    pub url: String,
    port: u16,
    pub store: String,
    /// Holds its admin-token file and its log.
    dir: PathBuf,
    launcher: Launcher,
    process: Option<tokio::process::Child>,
}

impl ChildNode {
    /// Starts a node and waits until it is ready. `admin` is the token an earlier node of the
    /// same store minted; without it the store must be fresh, as the token is written on its
    /// first start only.
    pub async fn start(
        http: &reqwest::Client,
        launcher: &Launcher,
        dir: &Path,
        store: &str,
        admin: Option<&str>,
    ) -> Result<ChildNode> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        if let Some(token) = admin {
            let file = dir.join(TOKEN_FILE);
            std::fs::write(&file, token)
                .map_err(|e| Error::io(format!("writing {}", file.display()), e))?;
        }
        // `serve` names its address only in a log line, so we choose the port: bind port 0,
        // read what the kernel gave, and free it for the child. Another process could take it
        // in between; the start-up would then fail and say so.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| Error::io("picking a free loopback port", e))?
            .port();
        let mut node = ChildNode {
            url: format!("http://127.0.0.1:{port}"),
            port,
            store: store.to_string(),
            dir: dir.to_path_buf(),
            launcher: launcher.clone(),
            process: None,
        };
        node.spawn(http).await?;
        Ok(node)
    }

    /// Starts the process (again) and waits, at most `READY_DEADLINE_SECS`, for `/readyz`.
    pub async fn spawn(&mut self, http: &reqwest::Client) -> Result<()> {
        self.kill().await;
        // Appended to, so a restarted node's log follows its first life's.
        let log_file = self.dir.join(LOG_FILE);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_file)
            .map_err(|e| Error::io(format!("opening {}", log_file.display()), e))?;
        let mut cmd = tokio::process::Command::new(&self.launcher.gigafactory);
        cmd.arg("serve")
            .arg("--store")
            .arg(&self.store)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--admin-token-file")
            .arg(self.dir.join(TOKEN_FILE));
        if let Some(ttl) = self.launcher.lease_ttl_ms {
            cmd.arg("--lease-ttl-ms").arg(ttl.to_string());
        }
        if let Some(on) = self.launcher.fair_share {
            let config = self.dir.join("scheduling.toml");
            std::fs::write(&config, format!("[scheduling]\nfair_share = {on}\n"))
                .map_err(|e| Error::io(format!("writing {}", config.display()), e))?;
            cmd.arg("--config").arg(config);
        }
        // Nodes sharing a store share artifacts, beside their directories.
        let parent = self.dir.parent().unwrap_or(&self.dir);
        cmd.arg("--artifacts").arg(parent.join("artifacts"));
        let process = cmd
            // Settings must come from the flags above only.
            .env_remove("GIGAFACTORY_CONFIG")
            .env_remove("GIGAFACTORY_INSECURE_DEV")
            .env_remove("GIGAFACTORY_LEASE_TTL_MS")
            // A log file, not a terminal: no colour codes in it.
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                let exe = self.launcher.gigafactory.display();
                Error::io(format!("starting a coordinator ({exe} serve)"), e)
            })?;
        let process = self.process.insert(process);
        let deadline = Instant::now() + Duration::from_secs(READY_DEADLINE_SECS);
        loop {
            let exited = process.try_wait().map_err(|e| {
                Error::io(format!("waiting for the coordinator at {}", self.url), e)
            })?;
            if let Some(status) = exited {
                return Err(Error::Setup(format!(
                    "the coordinator at {} exited during start-up ({status}); its log:\n{}",
                    self.url,
                    tail(&log_file)
                )));
            }
            let ready = http.get(format!("{}/readyz", self.url)).send().await;
            if ready.is_ok_and(|r| r.status() == StatusCode::OK) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Setup(format!(
                    "the coordinator at {} did not become ready in {READY_DEADLINE_SECS} s; its \
                     log:\n{}",
                    self.url,
                    tail(&log_file)
                )));
            }
            tokio::time::sleep(Duration::from_millis(PROBE_PAUSE_MS)).await;
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(|p| p.id())
    }

    /// The admin token the node wrote on the store's first start (or was given).
    pub fn admin_token(&self) -> Result<String> {
        let file = self.dir.join(TOKEN_FILE);
        let token = std::fs::read_to_string(&file).map_err(|e| {
            let context = format!(
                "reading {} (is the store fresh? the admin token is written on its first \
                 start only)",
                file.display()
            );
            Error::io(context, e)
        })?;
        let token = token.trim().to_string();
        if token.is_empty() {
            return Err(Error::Setup(format!("{} is empty", file.display())));
        }
        Ok(token)
    }

    /// SIGKILL, and reap: a node killed by the bench gets no chance to hand anything over.
    pub async fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.kill().await;
        }
    }

    /// The end of the node's log, with the admin token masked should it appear (a node given
    /// no token file prints it there on its first start): the tail goes to the terminal.
    pub fn log_tail(&self, admin: &str) -> String {
        let text = tail(&self.dir.join(LOG_FILE));
        if admin.is_empty() {
            text
        } else {
            text.replace(admin, "<admin token>")
        }
    }
}

/// The coordinator under test in the single-node mode.
pub(crate) struct Target {
    pub base: String,
    pub admin: String,
    /// Present when the bench started the coordinator. Declared before `dir`: fields drop in
    /// order, so the process is killed before its directory is removed.
    child: Option<ChildNode>,
    dir: Option<ScratchDir>,
}

impl Target {
    pub async fn start(
        coordinator: Option<&str>,
        token: Option<&str>,
        store: Option<&str>,
        launcher: &Launcher,
        http: &reqwest::Client,
    ) -> Result<Target> {
        if let Some(url) = coordinator {
            let base = url.trim_end_matches('/').to_string();
            let ready = http.get(format!("{base}/readyz")).send().await;
            if !ready.is_ok_and(|r| r.status().is_success()) {
                return Err(Error::Setup(format!(
                    "the coordinator at {base} is not ready (GET /readyz)"
                )));
            }
            return Ok(Target {
                base,
                admin: token.unwrap_or_default().to_string(),
                child: None,
                dir: None,
            });
        }
        let dir = ScratchDir::create()?;
        let store = store.map_or_else(
            || format!("embedded:{}", dir.0.join("store").display()),
            str::to_string,
        );
        let child = ChildNode::start(http, launcher, &dir.0, &store, None).await?;
        Ok(Target {
            base: child.url.clone(),
            admin: child.admin_token()?,
            child: Some(child),
            dir: Some(dir),
        })
    }

    pub fn describe(&self) -> String {
        match &self.child {
            Some(c) => format!(
                "{} (child pid {}, store {})",
                self.base,
                c.pid().unwrap_or_default(),
                c.store
            ),
            None => format!("{} (already running)", self.base),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(ChildNode::pid)
    }

    pub fn memory(&self) -> Option<Memory> {
        self.pid().and_then(Memory::of)
    }

    pub fn cpu_secs(&self) -> Option<f64> {
        self.pid()
            .and_then(|pid| procfs::cpu_secs(&format!("/proc/{pid}/stat")))
    }

    pub fn store_bytes(&self) -> Option<u64> {
        self.child
            .as_ref()
            .zip(self.dir.as_ref())
            .map(|(_, d)| dir_bytes(&d.0.join("store")))
    }

    pub fn log_tail(&self) -> Option<String> {
        self.child.as_ref().map(|c| c.log_tail(&self.admin))
    }

    pub async fn stop(mut self) {
        if let Some(c) = self.child.as_mut() {
            // SIGKILL: the store is thrown away with the directory, nothing to shut down cleanly.
            c.kill().await;
        }
    }
}

/// The last `LOG_TAIL_LINES` lines of a file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// Bytes of all files under `dir`.
pub(crate) fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

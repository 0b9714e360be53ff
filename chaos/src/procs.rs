//! The run's processes: coordinator nodes and factory agents started from this very binary,
//! and a small blocking HTTP client. Every process is killed when its handle drops and, should
//! the chaos process itself die, by the kernel (`PR_SET_PDEATHSIG`), so a run leaves no process
//! behind. (A `--netns` run killed by a signal leaves its bridge and namespaces; the next run
//! picks other names.)

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use gigafactory_core::journal::Exchange;
use serde_json::Value;

use crate::ChaosError;

/// How long a starting node may take to answer `/readyz`.
pub const READY_DEADLINE: Duration = Duration::from_secs(60);
/// Time limit of one API call: short, so a stopped node costs little.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Between two polls of a condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A blocking HTTP client with the admin token.
#[derive(Clone)]
pub struct Api {
    client: reqwest::blocking::Client,
    pub admin: String,
}

impl Api {
    pub fn new() -> Result<Self, ChaosError> {
        let client = reqwest::blocking::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(Duration::from_secs(1))
            .build()
            .map_err(|e| ChaosError::Setup(format!("http client: {e}")))?;
        Ok(Api {
            client,
            admin: String::new(),
        })
    }

    /// One call: status and JSON body (Null when empty or not JSON), or the transport error.
    pub fn call(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let is_get = method == reqwest::Method::GET;
        let mut req = self.client.request(method, url);
        if !self.admin.is_empty() {
            req = req.bearer_auth(&self.admin);
        }
        if let Some(b) = body {
            req = req.json(b);
        } else if !is_get {
            // Every write says it is JSON, as the API requires (a cross-site form cannot).
            req = req.header(reqwest::header::CONTENT_TYPE, "application/json");
        }
        let resp = req.send().map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp.text().map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// A GET that must answer 200.
    pub fn get_ok(&self, url: &str) -> Result<Value, String> {
        match self.call("GET", url, None)? {
            (200, v) => Ok(v),
            (s, v) => Err(format!("GET {url}: {s} {v}")),
        }
    }
}

/// Polls `check` until it holds or `within` passes; whether it held.
pub fn poll(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

pub fn free_port() -> Result<u16, ChaosError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(ChaosError::io("pick a free port"))
}

fn log_file(path: &Path) -> Result<(std::fs::File, std::fs::File), ChaosError> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(ChaosError::io(path.display().to_string()))?;
    let g = f
        .try_clone()
        .map_err(ChaosError::io(path.display().to_string()))?;
    Ok((f, g))
}

fn signal(child: &Option<Child>, sig: i32) {
    if let Some(c) = child {
        // SAFETY: sending a signal to a child we own and have not reaped.
        unsafe {
            libc::kill(c.id() as i32, sig);
        }
    }
}

fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        // A stopped process dies of SIGKILL too; continue it anyway so nothing lingers stopped.
        // SAFETY: signalling a child we own and have not reaped.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGCONT);
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Where a node runs: the address it listens on, the network namespace it runs in (none: the
/// host's), and the store URL that reaches etcd from there.
pub struct Site {
    pub host: String,
    pub netns: Option<String>,
    pub store: String,
}

/// One coordinator node (`gigafactory serve`), restartable on the same port and store.
pub struct Node {
    pub index: usize,
    pub url: String,
    exe: PathBuf,
    dir: PathBuf,
    site: Site,
    port: u16,
    lease_ttl_ms: u64,
    child: Option<Child>,
}

impl Node {
    /// Starts a node; `admin` is the token an earlier node minted (pre-written to its file).
    pub fn start(
        exe: &Path,
        index: usize,
        dir: &Path,
        site: Site,
        lease_ttl_ms: u64,
        admin: Option<&str>,
        api: &Api,
    ) -> Result<Self, ChaosError> {
        std::fs::create_dir_all(dir).map_err(ChaosError::io(dir.display().to_string()))?;
        if let Some(a) = admin {
            let f = dir.join("admin-token");
            std::fs::write(&f, a).map_err(ChaosError::io(f.display().to_string()))?;
        }
        let port = free_port()?;
        let mut node = Node {
            index,
            url: format!("http://{}:{port}", site.host),
            exe: exe.to_path_buf(),
            dir: dir.to_path_buf(),
            site,
            port,
            lease_ttl_ms,
            child: None,
        };
        node.spawn(api)?;
        Ok(node)
    }

    pub fn admin_token(&self) -> Result<String, ChaosError> {
        let f = self.dir.join("admin-token");
        std::fs::read_to_string(&f)
            .map(|t| t.trim().to_string())
            .map_err(ChaosError::io(f.display().to_string()))
    }

    fn spawn(&mut self, api: &Api) -> Result<(), ChaosError> {
        let (out, err) = log_file(&self.dir.join("coordinator.log"))?;
        // `ip netns exec` enters the namespace and execs the node: same process, same pid.
        let mut cmd = match &self.site.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.exe);
                c
            }
            None => Command::new(&self.exe),
        };
        cmd.arg("serve")
            .args(["--store", &self.site.store])
            .args(["--listen", &format!("{}:{}", self.site.host, self.port)])
            .arg("--admin-token-file")
            .arg(self.dir.join("admin-token"))
            .args(["--lease-ttl-ms", &self.lease_ttl_ms.to_string()])
            // The suite's faults go through `/v1/admin/faults`.
            .arg("--enable-fault-injection")
            // Every node reaches the same artifacts, beside the nodes' directories.
            .arg("--artifacts")
            .arg(self.dir.parent().unwrap_or(&self.dir).join("artifacts"))
            .env("GIGAFACTORY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        self.child = Some(spawn_tied(cmd).map_err(ChaosError::io("start a coordinator node"))?);
        let ready = format!("{}/readyz", self.url);
        let token = self.dir.join("admin-token");
        if !poll(READY_DEADLINE, || {
            token.exists() && matches!(api.call("GET", &ready, None), Ok((200, _)))
        }) {
            return Err(ChaosError::Setup(format!(
                "node {} not ready within {READY_DEADLINE:?}; see {}",
                self.index,
                self.dir.join("coordinator.log").display()
            )));
        }
        Ok(())
    }

    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// Restarts a killed node on its port and store and waits until it is ready.
    pub fn restart(&mut self, api: &Api) -> Result<(), ChaosError> {
        self.kill();
        self.spawn(api)
    }

    pub fn stop(&self) {
        signal(&self.child, libc::SIGSTOP);
    }

    pub fn resume(&self) {
        signal(&self.child, libc::SIGCONT);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One factory agent (`gigafactory factory`), failing over between every node.
pub struct Agent {
    pub index: usize,
    pub workdir: PathBuf,
    exe: PathBuf,
    coordinators: String,
    enroll_token: String,
    child: Option<Child>,
}

impl Agent {
    pub fn start(
        exe: &Path,
        index: usize,
        workdir: &Path,
        coordinators: &str,
        enroll_token: &str,
    ) -> Result<Self, ChaosError> {
        std::fs::create_dir_all(workdir).map_err(ChaosError::io(workdir.display().to_string()))?;
        let mut a = Agent {
            index,
            workdir: workdir.to_path_buf(),
            exe: exe.to_path_buf(),
            coordinators: coordinators.to_string(),
            enroll_token: enroll_token.to_string(),
            child: None,
        };
        a.spawn()?;
        Ok(a)
    }

    fn spawn(&mut self) -> Result<(), ChaosError> {
        let (out, err) = log_file(&self.workdir.with_extension("log"))?;
        // Jobs may call `gigafactory job stage`: this binary's directory goes first on PATH.
        let bin_dir = self.exe.parent().unwrap_or(Path::new("."));
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new(&self.exe);
        cmd.args(["factory", "--coordinator", &self.coordinators])
            .args(["--slots", "2", "--capabilities", "linux"])
            .args(["--name", &format!("chaos-f{}", self.index)])
            .args(["--heartbeat-secs", "1", "--grace-secs", "2"])
            .arg("--workdir")
            .arg(&self.workdir)
            .arg("--journal")
            .arg(self.journal_path())
            .args(["--enroll-token", &self.enroll_token])
            // The suite checks leases; jobs' isolation has its own tests (tests/e2e_sandbox.rs).
            .args(["--sandbox", "off"])
            .env("PATH", path)
            .env("GIGAFACTORY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        self.child = Some(spawn_tied(cmd).map_err(ChaosError::io("start a factory agent"))?);
        Ok(())
    }

    /// The factory id it stored after enrolling, once it has.
    pub fn factory_id(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.workdir.join(".gigafactory/identity.json")).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        v["factory_id"].as_str().map(str::to_string)
    }

    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// Where the agent records its requests; kept across its restarts.
    fn journal_path(&self) -> PathBuf {
        self.workdir.with_extension("journal.jsonl")
    }

    /// Every request the agent recorded. A line torn by a kill -9 is skipped.
    pub fn journal(&self) -> Vec<Exchange> {
        std::fs::read_to_string(self.journal_path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Restarts a killed agent; it keeps its identity from its workdir.
    pub fn restart(&mut self) -> Result<(), ChaosError> {
        self.kill();
        self.spawn()
    }

    pub fn stop(&self) {
        signal(&self.child, libc::SIGSTOP);
    }

    pub fn resume(&self) {
        signal(&self.child, libc::SIGCONT);
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Spawns `cmd` from one long-lived thread with `PR_SET_PDEATHSIG`: the kernel sends the
/// signal when the *thread* that forked the child exits, so forking from the short-lived
/// thread of one fault would kill a restarted node when that thread ends.
fn spawn_tied(cmd: Command) -> std::io::Result<Child> {
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("chaos-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
                    unsafe {
                        cmd.pre_exec(|| {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                                return Err(std::io::Error::last_os_error());
                            }
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawn the chaos spawner thread");
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, reply))
        .map_err(|_| std::io::Error::other("spawner gone"))?;
    answer
        .recv()
        .map_err(|_| std::io::Error::other("spawner gone"))?
}

//! A real etcd cluster on loopback ports, for tests, benchmarks and chaos runs: starts Debian's
//! `etcd` binary once per member, waits for the cluster to be healthy, kills and restarts
//! members on demand and removes everything when dropped. Members die with the process that
//! started them (Linux `PR_SET_PDEATHSIG`), so a crashed test leaves no etcd behind.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a starting member may take to answer `/health`.
const HEALTHY_DEADLINE: Duration = Duration::from_secs(60);
/// Fresh clusters tried before giving up: a port picked free can be taken by another process
/// before etcd binds it.
const START_ATTEMPTS: usize = 3;
/// Lines of a member's log quoted when it fails to start.
const LOG_TAIL_LINES: usize = 8;
/// Raised from etcd's defaults (128 ops, 1.5 MiB) so a transaction at the store's own limits
/// (10 MB, one compare per key read) fits in one etcd request.
const MAX_TXN_OPS: u32 = 100_000;
const MAX_REQUEST_BYTES: u32 = 12 * 1024 * 1024;

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

/// A running local etcd cluster.
pub struct LocalEtcdCluster {
    members: Vec<Member>,
    dir: PathBuf,
    initial_cluster: String,
    /// Unique per cluster, so members of two clusters on one machine never join each other.
    token: String,
    /// Addresses members serve clients on: 127.0.0.1 first (health checks use it), then any
    /// asked for. Peers always talk over 127.0.0.1.
    client_hosts: Vec<String>,
}

impl LocalEtcdCluster {
    /// Starts `size` members and waits until every one reports healthy; a cluster that does
    /// not come up is torn down and tried again on fresh ports.
    pub fn start(size: usize) -> io::Result<Self> {
        Self::start_also_on(size, &[])
    }

    /// Like [`start`](Self::start), with members also serving clients on each of `hosts` (local
    /// addresses, e.g. a bridge the chaos suite's network namespaces reach the store through).
    pub fn start_also_on(size: usize, hosts: &[&str]) -> io::Result<Self> {
        remove_dead_processes_dirs();
        let mut attempt = 1;
        loop {
            match Self::try_start(size, hosts) {
                Ok(cluster) => return Ok(cluster),
                // A missing etcd binary will not appear on a second try.
                Err(e) if attempt < START_ATTEMPTS && e.kind() != io::ErrorKind::NotFound => {
                    eprintln!("etcd cluster did not start (attempt {attempt}): {e}; retrying");
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn try_start(size: usize, hosts: &[&str]) -> io::Result<Self> {
        let token = format!("gigafactory-{}-{}", std::process::id(), unique());
        let mut members = Vec::with_capacity(size);
        for i in 0..size {
            members.push(Member {
                name: format!("m{i}"),
                client_port: free_port()?,
                peer_port: free_port()?,
                child: None,
            });
        }
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        // Created once nothing can fail before the cluster owns it (and removes it when dropped).
        let dir = std::env::temp_dir().join(format!("{token}-etcd"));
        std::fs::create_dir_all(&dir)?;
        let mut cluster = LocalEtcdCluster {
            members,
            dir,
            initial_cluster,
            token,
            client_hosts: std::iter::once("127.0.0.1")
                .chain(hosts.iter().copied())
                .map(str::to_string)
                .collect(),
        };
        for i in 0..size {
            cluster.spawn(i, "new")?;
        }
        for i in 0..size {
            cluster.wait_healthy(i)?;
        }
        Ok(cluster)
    }

    /// `127.0.0.1:port` of every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.endpoints_on(&self.client_hosts[0])
    }

    fn endpoints_on(&self, host: &str) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("{host}:{}", m.client_port))
            .collect()
    }

    /// A store URL for this cluster with keys under `namespace`.
    pub fn store_url(&self, namespace: &str) -> String {
        self.store_url_on(&self.client_hosts[0], namespace)
    }

    /// A store URL reaching the members through `host`, one of the hosts they listen on.
    pub fn store_url_on(&self, host: &str, namespace: &str) -> String {
        format!("etcd://{}/{namespace}", self.endpoints_on(host).join(","))
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// SIGKILLs member `i` and reaps it.
    pub fn kill(&mut self, i: usize) -> io::Result<()> {
        if let Some(mut child) = self.members[i].child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Restarts a killed member on its old data and waits until it is healthy.
    pub fn restart(&mut self, i: usize) -> io::Result<()> {
        self.kill(i)?;
        self.spawn(i, "existing")?;
        self.wait_healthy(i)
    }

    fn spawn(&mut self, i: usize, state: &str) -> io::Result<()> {
        let m = &self.members[i];
        let client = self
            .client_hosts
            .iter()
            .map(|h| format!("http://{h}:{}", m.client_port))
            .collect::<Vec<_>>()
            .join(",");
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let log = std::fs::File::create(self.dir.join(format!("{}.log", m.name)))?;
        let mut cmd = Command::new("etcd");
        cmd.args(["--name", &m.name])
            .arg("--data-dir")
            .arg(self.dir.join(&m.name))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &self.initial_cluster])
            .args([
                "--initial-cluster-state",
                state,
                "--initial-cluster-token",
                &self.token,
            ])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .arg(format!("--max-txn-ops={MAX_TXN_OPS}"))
            .arg(format!("--max-request-bytes={MAX_REQUEST_BYTES}"))
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = spawn_tied_to_process(cmd).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot start etcd (Debian package etcd-server): {e}"),
            )
        })?;
        self.members[i].child = Some(child);
        Ok(())
    }

    fn wait_healthy(&mut self, i: usize) -> io::Result<()> {
        let deadline = Instant::now() + HEALTHY_DEADLINE;
        let port = self.members[i].client_port;
        loop {
            if health(port).unwrap_or(false) {
                return Ok(());
            }
            if let Some(child) = self.members[i].child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                return Err(io::Error::other(format!(
                    "etcd member {i} exited with {status}; its log ends:\n{}",
                    self.log_tail(i)
                )));
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "etcd member {i} never became healthy; its log ends:\n{}",
                        self.log_tail(i)
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl LocalEtcdCluster {
    /// The last lines of member `i`'s log (the directory is removed with the cluster).
    fn log_tail(&self, i: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join(format!("{}.log", self.members[i].name)))
            .unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for LocalEtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            let _ = self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes the data directories of clusters whose process is gone. A cluster kept for a
/// whole test binary (in a `static`) is never dropped, so its directory would stay behind.
fn remove_dead_processes_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("gigafactory-")
            .and_then(|rest| rest.strip_suffix("-etcd"))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, n)| n.parse::<u64>().ok().and(pid.parse::<i32>().ok()));
        let Some(pid) = pid.filter(|&p| p > 0) else {
            continue;
        };
        // SAFETY: signal 0 only asks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn unique() -> u64 {
    static NEXT: Mutex<u64> = Mutex::new(0);
    let mut n = NEXT.lock().expect("counter lock");
    *n += 1;
    *n
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Whether etcd's `/health` endpoint on `port` says the member is healthy.
fn health(port: u16) -> io::Result<bool> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body.contains("\"health\":\"true\""))
}

/// Spawns `cmd` from one long-lived thread with `PR_SET_PDEATHSIG`: the kernel sends the
/// signal when the *thread* that forked the child exits, so forking from a short-lived test
/// thread would kill the member when that test ends.
fn spawn_tied_to_process(cmd: Command) -> io::Result<Child> {
    type Job = (Command, mpsc::Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("etcd-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
                    unsafe {
                        cmd.pre_exec(|| {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                                return Err(io::Error::last_os_error());
                            }
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawn the etcd spawner thread");
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::channel();
    spawner
        .lock()
        .expect("spawner lock")
        .send((cmd, reply))
        .map_err(|_| io::Error::other("spawner gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("spawner gone"))?
}

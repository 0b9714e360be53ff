//! Starting a job's process and stopping it: the operating-system edge of the agent. On Unix a
//! job leads its own process group, so one `killpg` reaches everything it started; elsewhere
//! (Windows) only the direct child can be stopped. Nothing here knows about leases.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};

use gigafactory_core::job::JobId;
use tokio::process::{Child, Command};

/// The variable that tells a job its id; also how an orphaned group is recognised.
pub const JOB_ID_ENV: &str = "GF_JOB_ID";
/// Inherited variables with these prefixes are not passed to jobs: they are the agent's own
/// configuration (or stale values of a job's), never the job's business.
const WITHHELD_ENV_PREFIXES: [&str; 2] = ["GF_", "GIGAFACTORY_"];

/// What to start.
#[derive(Clone)]
pub struct Launch {
    pub program: String,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    /// The job's variables, its secrets among them.
    pub env: Vec<(String, String)>,
    /// Piped to the process's stdin when set; stdin is empty otherwise.
    pub stdin: Option<String>,
}

/// Names the variables without their values: a job's secrets are among them.
impl std::fmt::Debug for Launch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Launch")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("cwd", &self.cwd)
            .field("env", &names)
            .field("stdin", &self.stdin.as_ref().map(String::len))
            .finish()
    }
}

/// Starts `launch` in its own process group with piped stdout and stderr, its first process
/// joining the cgroups whose `cgroup.procs` files `join` names before it runs (Linux).
pub fn spawn(launch: &Launch, join: &[std::ffi::CString]) -> std::io::Result<Child> {
    let mut cmd = std::process::Command::new(&launch.program);
    cmd.args(&launch.args)
        .current_dir(&launch.cwd)
        .stdin(if launch.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars_os() {
        let name_str = name.to_string_lossy();
        if WITHHELD_ENV_PREFIXES
            .iter()
            .any(|p| name_str.starts_with(p))
        {
            cmd.env_remove(&name);
        }
    }
    cmd.envs(launch.env.iter().map(|(k, v)| (k, v)));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // The job leads a new group (pgid = its pid): signals to the group reach its children
        // too, and the agent's own group (the terminal's Ctrl-C) does not reach the job.
        cmd.process_group(0);
    }
    #[cfg(target_os = "linux")]
    if !join.is_empty() {
        use std::os::unix::process::CommandExt;
        let join = join.to_vec();
        // SAFETY: the hook runs in the forked child before exec and only makes system calls
        // (getpid, open, write, close) on memory prepared before the fork: no allocation, no
        // lock. A failure fails the spawn, so a job never runs outside its limits.
        unsafe {
            cmd.pre_exec(move || {
                for path in &join {
                    join_cgroup(path)?;
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = join;
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        cmd.creation_flags(CREATE_NEW_PROCESS_GROUP);
    }
    let mut cmd = Command::from(cmd);
    // If the agent's task is dropped with the process still running, at least the leader dies;
    // the job's guard kills the rest of the group.
    cmd.kill_on_drop(true);
    cmd.spawn()
}

/// Writes the calling process's pid into the `cgroup.procs` file `path`, without allocating.
#[cfg(target_os = "linux")]
fn join_cgroup(path: &std::ffi::CStr) -> std::io::Result<()> {
    // SAFETY: getpid cannot fail.
    let mut pid = unsafe { libc::getpid() } as u32;
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (pid % 10) as u8;
        pid /= 10;
        if pid == 0 {
            break;
        }
    }
    // SAFETY: `path` is a valid C string; the buffer outlives the write.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = libc::write(fd, digits[at..].as_ptr().cast(), digits.len() - at);
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if n < 0 {
            return Err(err);
        }
    }
    Ok(())
}

/// The two ways to stop a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Ask it to finish (SIGTERM): it may save work and exit.
    Term,
    /// End it now (SIGKILL).
    Kill,
}

/// Sends `signal` to the job's process group (on Windows: kills the child for either).
pub fn signal_job(child: &mut Child, pgid: i32, signal: Signal) {
    #[cfg(unix)]
    {
        let _ = child;
        signal_group(pgid, signal);
    }
    #[cfg(not(unix))]
    {
        let _ = (pgid, signal);
        let _ = child.start_kill();
    }
}

/// Asks the job to finish (SIGTERM to its group). When the group's leader is a wrapper
/// (bubblewrap), which SIGTERM would end at once and the job with it, before the job could save
/// its work, only the rest of the group is told: the wrapper exits when the job does.
pub fn ask_job_to_stop(child: &mut Child, pgid: i32, wrapped: bool) {
    #[cfg(target_os = "linux")]
    if wrapped {
        if is_job_group(pgid) {
            linux::signal_members_except(pgid, pgid, libc::SIGTERM);
        }
        return;
    }
    let _ = wrapped;
    signal_job(child, pgid, Signal::Term);
}

/// Sends `signal` to the process group `pgid`. A group that is gone is not an error.
pub fn signal_group(pgid: i32, signal: Signal) {
    #[cfg(unix)]
    {
        if !is_job_group(pgid) {
            tracing::error!(
                pgid,
                "refusing to signal a process group that cannot be a job's"
            );
            return;
        }
        let sig = match signal {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
        };
        // SAFETY: killpg has no memory effects; `pgid` was checked to be a real group id that
        // is not ours.
        let rc = unsafe { libc::killpg(pgid, sig) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                tracing::warn!(pgid, error = %err, "cannot signal the job's process group");
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (pgid, signal);
    }
}

/// Whether any process of group `pgid` exists (a zombie not yet reaped counts).
pub fn group_exists(pgid: i32) -> bool {
    #[cfg(unix)]
    {
        if !is_job_group(pgid) {
            return false;
        }
        // SAFETY: signal 0 only checks that the group exists and may be signalled.
        let rc = unsafe { libc::killpg(pgid, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pgid;
        false
    }
}

/// A group id we may signal: a real one (0 and 1 would mean "our group" and init), and not
/// the agent's own group.
#[cfg(unix)]
fn is_job_group(pgid: i32) -> bool {
    // SAFETY: getpgrp cannot fail and has no memory effects.
    pgid > 1 && pgid != unsafe { libc::getpgrp() }
}

/// Whether the process group `pgid` recorded for `job_id` before the agent restarted still runs
/// that job. Group ids are reused, so a bare "the group exists" could name someone else's
/// processes; on Linux a member must still carry the job's `GF_JOB_ID`.
pub fn orphan_group_runs(pgid: i32, job_id: JobId) -> bool {
    if !group_exists(pgid) {
        return false;
    }
    #[cfg(target_os = "linux")]
    {
        linux::group_member_has_env(pgid, &format!("{JOB_ID_ENV}={job_id}"))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = job_id;
        true
    }
}

#[cfg(target_os = "linux")]
mod linux {
    /// Whether a process of group `pgid` has `entry` (`NAME=value`) in its environment.
    pub fn group_member_has_env(pgid: i32, entry: &str) -> bool {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return false;
        };
        for proc in procs.filter_map(|e| e.ok()) {
            let name = proc.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            if process_group_of(pid) != Some(pgid) {
                continue;
            }
            let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
                continue;
            };
            if environ.split(|b| *b == 0).any(|kv| kv == entry.as_bytes()) {
                return true;
            }
        }
        false
    }

    /// Sends `sig` to every process of group `pgid` but `except`.
    pub fn signal_members_except(pgid: i32, except: i32, sig: i32) {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for proc in procs.filter_map(|e| e.ok()) {
            let Some(pid) = proc
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if pid != except && process_group_of(pid) == Some(pgid) {
                // SAFETY: kill has no memory effects; the pid was just seen in the job's group.
                unsafe { libc::kill(pid, sig) };
            }
        }
    }

    /// Field 5 of `/proc/<pid>/stat`, counted after the command name (which may hold spaces
    /// and parentheses, so we split after its last `)`).
    fn process_group_of(pid: i32) -> Option<i32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after_name = &stat[stat.rfind(')')? + 1..];
        // state ppid pgrp ...
        after_name.split_whitespace().nth(2)?.parse().ok()
    }
}

/// The error text and exit code for how a job's process ended.
pub fn describe_exit(status: ExitStatus) -> (String, Option<i32>) {
    if let Some(code) = status.code() {
        return (format!("exit status {code}"), Some(code));
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return (format!("killed by signal {signal}"), None);
        }
    }
    (format!("ended abnormally ({status})"), None)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn describes_exit_codes_and_signals() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            describe_exit(ExitStatus::from_raw(3 << 8)),
            ("exit status 3".into(), Some(3))
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(9)),
            ("killed by signal 9".into(), None)
        );
    }

    #[test]
    fn never_signals_our_own_group_or_init() {
        assert!(!is_job_group(0));
        assert!(!is_job_group(1));
        assert!(!is_job_group(-5));
        // SAFETY: as above.
        assert!(!is_job_group(unsafe { libc::getpgrp() }));
        assert!(!group_exists(0));
    }

    #[tokio::test]
    async fn a_job_leads_its_own_group_and_dies_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let job_id = JobId(uuid::Uuid::new_v4());
        let launch = Launch {
            program: "sh".into(),
            args: vec!["-c".into(), "sleep 30 & wait".into()],
            cwd: dir.path().into(),
            env: vec![(JOB_ID_ENV.into(), job_id.to_string())],
            stdin: None,
        };
        let mut child = spawn(&launch, &[]).unwrap();
        let pgid = child.id().unwrap() as i32;
        assert!(group_exists(pgid));
        #[cfg(target_os = "linux")]
        {
            assert!(orphan_group_runs(pgid, job_id));
            assert!(
                !orphan_group_runs(pgid, JobId(uuid::Uuid::new_v4())),
                "another job's id"
            );
        }
        signal_job(&mut child, pgid, Signal::Kill);
        let status = child.wait().await.unwrap();
        assert_eq!(describe_exit(status).0, "killed by signal 9");
        // The backgrounded sleep was in the group too; once init reaps it the group is gone.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while group_exists(pgid) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the group outlived SIGKILL"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

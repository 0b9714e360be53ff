//! Isolating jobs from the machine and from each other. On Linux a job runs inside
//! bubblewrap (`bwrap.rs`: only its workspace writable, the network off when its spec says so)
//! and, when its spec sets limits, in a cgroup of its own (`cgroup.rs`: memory and CPU, v2 or
//! v1). What the machine allows is found once, when the agent starts: `--sandbox bwrap`
//! refuses to start without it, `auto` (the default) runs jobs as plain processes with a
//! warning, `off` never isolates.

#[cfg(target_os = "linux")]
mod bwrap;
#[cfg(target_os = "linux")]
mod cgroup;

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use gigafactory_core::sandbox::SandboxSpec;

use crate::error::{AgentError, Result};
use crate::process::Launch;
use crate::workspace::Workspace;

/// How strictly the agent isolates jobs (`--sandbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Isolate where the machine allows it; otherwise run plain, with a warning.
    #[default]
    Auto,
    /// Isolate, or refuse to start.
    Required,
    Off,
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(Mode::Auto),
            "bwrap" => Ok(Mode::Required),
            "off" => Ok(Mode::Off),
            other => Err(format!("--sandbox is auto, bwrap or off, not {other:?}")),
        }
    }
}

/// What this machine lets the agent do for its jobs.
#[derive(Debug)]
pub struct Sandboxing {
    mode: Mode,
    #[cfg(target_os = "linux")]
    bwrap: Option<PathBuf>,
    #[cfg(target_os = "linux")]
    cgroups: std::result::Result<cgroup::Root, String>,
    /// Why jobs are not isolated (empty when they are).
    missing: Vec<String>,
}

impl Sandboxing {
    /// Finds bubblewrap and the cgroup tree, as `mode` asks.
    pub fn detect(mode: Mode) -> Result<Sandboxing> {
        let mut s = Sandboxing {
            mode,
            #[cfg(target_os = "linux")]
            bwrap: None,
            #[cfg(target_os = "linux")]
            cgroups: Err("not looked for".into()),
            missing: Vec::new(),
        };
        if mode == Mode::Off {
            return Ok(s);
        }
        #[cfg(target_os = "linux")]
        {
            match probe_bwrap() {
                Ok(path) => s.bwrap = Some(path),
                Err(why) => s.missing.push(why),
            }
            s.cgroups = cgroup::Root::detect();
        }
        #[cfg(not(target_os = "linux"))]
        s.missing.push("jobs are isolated on Linux only".into());
        match (mode, s.missing.is_empty()) {
            (_, true) => tracing::info!("jobs run in bubblewrap"),
            (Mode::Required, false) => {
                return Err(AgentError::Config(format!(
                    "--sandbox bwrap: {}",
                    s.missing.join("; ")
                )));
            }
            _ => {
                tracing::warn!(why = %s.missing.join("; "), "jobs run as plain processes, not isolated")
            }
        }
        Ok(s)
    }

    /// Puts `launch` in its sandbox; the cgroup it must join before it runs, and notices for
    /// the job's log (what its spec asked that this machine does not do). Refuses with a
    /// reason when the agent must isolate and cannot give the job what its spec asks.
    pub fn prepare(
        &self,
        spec: &SandboxSpec,
        workdir: &Path,
        ws: &Workspace,
        launch: Launch,
        name: &str,
    ) -> std::result::Result<(Launch, JobSandbox, Vec<String>), String> {
        let mut notices = Vec::new();
        let mut sandbox = JobSandbox::default();
        if self.mode == Mode::Off {
            if spec != &SandboxSpec::default() {
                notices.push("this factory runs jobs without a sandbox (--sandbox off): the job's sandbox spec is not enforced".into());
            }
            return Ok((launch, sandbox, notices));
        }
        #[cfg(target_os = "linux")]
        {
            std::fs::create_dir_all(ws.root.join("home"))
                .map_err(|e| format!("creating the job's home: {e}"))?;
            let launch = match &self.bwrap {
                Some(bwrap) => {
                    sandbox.wrapped = true;
                    bwrap::wrap(bwrap, launch, workdir, ws, spec.network)
                }
                None => {
                    notices.push(format!("not isolated: {}", self.missing.join("; ")));
                    launch
                }
            };
            if spec.has_limits() {
                match &self.cgroups {
                    Ok(root) => {
                        let cg = root
                            .create(name, spec)
                            .map_err(|e| format!("cannot create the job's cgroup: {e}"))?;
                        sandbox.memory_mib = spec.memory_mib;
                        sandbox.cgroup = Some(cg);
                    }
                    Err(why) if self.mode == Mode::Required => {
                        return Err(format!(
                            "the job sets limits this machine cannot apply: {why}"
                        ));
                    }
                    Err(why) => notices.push(format!("memory and CPU limits not enforced: {why}")),
                }
            }
            Ok((launch, sandbox, notices))
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (workdir, ws, name);
            if spec != &SandboxSpec::default() {
                notices.push(
                    "jobs are isolated on Linux only: the job's sandbox spec is not enforced"
                        .into(),
                );
            }
            Ok((launch, sandbox, notices))
        }
    }
}

/// Finds `bwrap` on PATH and checks it can make the namespaces a job needs here (a container
/// or a kernel setting may refuse them).
#[cfg(target_os = "linux")]
fn probe_bwrap() -> std::result::Result<PathBuf, String> {
    let path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("bwrap"))
        .find(|p| p.is_file())
        .ok_or("bubblewrap (bwrap) is not installed")?;
    let out = std::process::Command::new(&path)
        .args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"])
        .args(["--unshare-pid", "--unshare-net", "--", "true"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    if !out.status.success() {
        return Err(format!(
            "bubblewrap cannot create namespaces here: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(path)
}

/// One attempt's sandbox, removed when dropped.
#[derive(Debug, Default)]
pub struct JobSandbox {
    #[cfg(target_os = "linux")]
    cgroup: Option<cgroup::JobCgroup>,
    memory_mib: Option<u32>,
    /// The job runs under bubblewrap, which leads its process group.
    wrapped: bool,
}

impl JobSandbox {
    /// Whether the group's leader is the sandbox's wrapper, not the job.
    pub fn wrapped(&self) -> bool {
        self.wrapped
    }

    /// The files the job's first process writes its pid into, before it runs.
    pub fn join(&self) -> Vec<CString> {
        #[cfg(target_os = "linux")]
        if let Some(cg) = &self.cgroup {
            return cg.procs.clone();
        }
        Vec::new()
    }

    /// Why the job ended, when the kernel ended it for passing its memory limit.
    pub fn memory_exceeded(&self) -> Option<String> {
        #[cfg(target_os = "linux")]
        if let (Some(cg), Some(mib)) = (&self.cgroup, self.memory_mib)
            && cg.limit_kills() > 0
        {
            return Some(format!(
                "the job passed its memory limit ({mib} MiB) and the kernel ended it"
            ));
        }
        None
    }
}

impl Drop for JobSandbox {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(cg) = self.cgroup.take() {
            cg.remove();
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::process;
    use gigafactory_core::job::JobId;
    use std::time::Duration;

    /// bubblewrap leads the job's group: a stop must reach the job, which may save its work
    /// in its grace period, not end the wrapper and the job with it at once.
    #[tokio::test]
    async fn a_sandboxed_job_asked_to_stop_gets_the_signal_and_saves_its_work() {
        let bwrap = match probe_bwrap() {
            Ok(path) => path,
            Err(why) => {
                eprintln!("skipping: {why}");
                return;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::create(dir.path(), JobId(uuid::Uuid::new_v4()), 1).unwrap();
        std::fs::create_dir_all(ws.root.join("home")).unwrap();
        let script = "trap 'echo saved > saved; exit 7' TERM; touch ready; sleep 30 & wait";
        let launch = Launch {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            cwd: ws.work.clone(),
            env: Vec::new(),
            stdin: None,
        };
        let wrapped = bwrap::wrap(&bwrap, launch, dir.path(), &ws, true);
        let mut child = process::spawn(&wrapped, &[]).unwrap();
        let pgid = child.id().unwrap() as i32;
        let ready = ws.work.join("ready");
        for _ in 0..100 {
            if ready.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready.exists(), "the job started");
        process::ask_job_to_stop(&mut child, pgid, true);
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("the job ends after its trap")
            .unwrap();
        assert_eq!(
            status.code(),
            Some(7),
            "the job's own handler ran: {status:?}"
        );
        assert!(ws.work.join("saved").exists(), "the job saved its work");
    }
}

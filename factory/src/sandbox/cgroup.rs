//! A job's cgroup: its memory and CPU limits, on cgroup v2 (one unified tree, the production
//! default) or v1 (a tree per controller, as on this project's CI machines). The agent creates
//! one per attempt under its own cgroup, the job's first process joins it before it runs a
//! single instruction of the job (`process::spawn` writes its pid into `procs`), and after the
//! job ends the kernel's count of out-of-memory kills says whether the limit ended it.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use gigafactory_core::sandbox::{CPU_PERIOD_US, SandboxSpec};

const CGROUP_FS: &str = "/sys/fs/cgroup";

/// Where this agent may create job cgroups.
#[derive(Debug, Clone)]
pub enum Root {
    /// The unified tree: the agent's cgroup, with memory and cpu delegated to its children.
    V2 { base: PathBuf },
    /// One directory per controller, each the agent's own cgroup in that tree.
    V1 {
        memory: PathBuf,
        cpu: Option<PathBuf>,
    },
}

impl Root {
    /// Finds the agent's cgroups and makes sure jobs can get limits under them; why not, if
    /// they cannot (no controller, no write access).
    pub fn detect() -> Result<Root, String> {
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("reading /proc/self/cgroup: {e}"))?;
        let unified = Path::new(CGROUP_FS).join("cgroup.controllers");
        if unified.exists() {
            let path = own
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .ok_or("no cgroup v2 line in /proc/self/cgroup")?;
            return delegate_v2(&under(Path::new(CGROUP_FS), path));
        }
        let memory = v1_dir(&own, "memory", &["memory"])
            .ok_or("neither cgroup v2 nor a v1 memory controller is mounted")?;
        let cpu = v1_dir(&own, "cpu", &["cpu", "cpu,cpuacct"]);
        let root = Root::V1 { memory, cpu };
        // Creating and removing a probe proves write access now, not at the first job.
        root.create("probe", &SandboxSpec::default())
            .map_err(|e| format!("cannot create a cgroup: {e}"))?
            .remove();
        Ok(root)
    }

    /// Creates the cgroup `name` with `spec`'s limits; on a failure, removes what it made.
    pub fn create(&self, name: &str, spec: &SandboxSpec) -> io::Result<JobCgroup> {
        let mut cg = JobCgroup {
            dirs: Vec::new(),
            procs: Vec::new(),
            events: PathBuf::new(),
        };
        match self.fill(&format!("gigafactory-{name}"), spec, &mut cg) {
            Ok(()) => Ok(cg),
            Err(e) => {
                cg.remove();
                Err(e)
            }
        }
    }

    fn fill(&self, name: &str, spec: &SandboxSpec, cg: &mut JobCgroup) -> io::Result<()> {
        match self {
            Root::V2 { base } => {
                let dir = cg.make(base, name)?;
                cg.events = dir.join("memory.events");
                if let Some(bytes) = spec.memory_bytes() {
                    write(&dir.join("memory.max"), &bytes.to_string())?;
                    // Swap would let a job hold more than its limit, only slower.
                    let _ = write(&dir.join("memory.swap.max"), "0");
                }
                if let Some(quota) = spec.cpu_quota_us() {
                    write(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
                }
            }
            Root::V1 { memory, cpu } => {
                let mem = cg.make(memory, name)?;
                cg.events = mem.join("memory.oom_control");
                if let Some(bytes) = spec.memory_bytes() {
                    write(&mem.join("memory.limit_in_bytes"), &bytes.to_string())?;
                    let _ = write(&mem.join("memory.memsw.limit_in_bytes"), &bytes.to_string());
                }
                if let Some(quota) = spec.cpu_quota_us() {
                    let cpu = cpu.as_ref().ok_or_else(|| {
                        io::Error::other("no cgroup v1 cpu controller is mounted")
                    })?;
                    let dir = cg.make(cpu, name)?;
                    write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                    write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                }
            }
        }
        Ok(())
    }
}

/// One attempt's cgroup (a directory per v1 controller).
#[derive(Debug)]
pub struct JobCgroup {
    dirs: Vec<PathBuf>,
    /// The `cgroup.procs` files the job's first process writes its pid into.
    pub procs: Vec<CString>,
    /// Where the kernel counts out-of-memory kills (`oom_kill N`).
    events: PathBuf,
}

impl JobCgroup {
    /// Makes the directory `name` under `parent` part of the cgroup, joined by the job.
    fn make(&mut self, parent: &Path, name: &str) -> io::Result<PathBuf> {
        let dir = parent.join(name);
        make_fresh(&dir)?;
        self.dirs.push(dir.clone());
        self.procs.push(procs_path(&dir)?);
        Ok(dir)
    }

    /// Processes the kernel killed because the cgroup reached its own memory limit: an
    /// out-of-memory kill counted while the limit was hit (v2 `oom`, v1 the peak usage), so a
    /// machine-wide shortage is not blamed on the job's limit.
    pub fn limit_kills(&self) -> u64 {
        let read = |path: &Path, field: &str| -> u64 {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|text| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(field))
                        .and_then(|n| n.trim().parse().ok())
                })
                .unwrap_or(0)
        };
        let kills = read(&self.events, "oom_kill ");
        let hit = if self.events.ends_with("memory.events") {
            read(&self.events, "oom ")
        } else {
            // v1 keeps `failcnt` at 0 here even when its limit kills; the peak usage reaching
            // the limit says it was hit.
            let dir = self.events.parent().unwrap_or(Path::new("/"));
            let peak = read(&dir.join("memory.max_usage_in_bytes"), "");
            let limit = read(&dir.join("memory.limit_in_bytes"), "");
            u64::from(limit > 0 && peak >= limit)
        };
        if hit > 0 { kills } else { 0 }
    }

    /// Kills what is left in the cgroup and removes it. A process outside the job's group
    /// (a daemon it started) is still in its cgroup, so it goes too.
    pub fn remove(&self) {
        for dir in &self.dirs {
            for _ in 0..50 {
                kill_members(dir);
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    // Busy: members are still exiting.
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
                }
            }
            if dir.exists() {
                tracing::warn!(cgroup = %dir.display(), "cannot remove a job's cgroup");
            }
        }
    }
}

fn kill_members(dir: &Path) {
    let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
        return;
    };
    for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        // SAFETY: kill has no memory effects; the pid was read from the job's own cgroup.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Makes `base` (the agent's v2 cgroup) able to hold job cgroups with memory and cpu: the
/// controllers enabled for its children. A cgroup with processes cannot enable them (the v2
/// "no internal processes" rule), so the agent first moves itself into a leaf, `agent`.
fn delegate_v2(base: &Path) -> Result<Root, String> {
    let available = std::fs::read_to_string(base.join("cgroup.controllers"))
        .map_err(|e| format!("reading {}: {e}", base.join("cgroup.controllers").display()))?;
    for c in ["memory", "cpu"] {
        if !available.split_whitespace().any(|a| a == c) {
            return Err(format!(
                "the {c} controller is not delegated to {} (systemd: Delegate=yes)",
                base.display()
            ));
        }
    }
    let control = base.join("cgroup.subtree_control");
    if write(&control, "+memory +cpu").is_err() {
        let leaf = base.join("agent");
        std::fs::create_dir_all(&leaf).map_err(|e| format!("creating {}: {e}", leaf.display()))?;
        write(&leaf.join("cgroup.procs"), &std::process::id().to_string())
            .map_err(|e| format!("moving the agent into {}: {e}", leaf.display()))?;
        write(&control, "+memory +cpu")
            .map_err(|e| format!("enabling memory and cpu in {}: {e}", control.display()))?;
    }
    Ok(Root::V2 {
        base: base.to_path_buf(),
    })
}

/// The agent's own directory in the v1 tree of `controller`, mounted at one of `mounts`.
fn v1_dir(own: &str, controller: &str, mounts: &[&str]) -> Option<PathBuf> {
    let mount = mounts
        .iter()
        .map(|m| Path::new(CGROUP_FS).join(m))
        .find(|m| m.join("cgroup.procs").exists())?;
    let path = own.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == controller)
            .then_some(path)
    })?;
    // In a container without a cgroup namespace the mount may be the container's own subtree:
    // then the path from /proc names nothing under it, and the mount itself is ours.
    let dir = under(&mount, path);
    Some(if dir.is_dir() { dir } else { mount })
}

fn under(mount: &Path, path: &str) -> PathBuf {
    mount.join(path.trim_start_matches('/'))
}

/// Creates `dir`, first removing one a crashed agent left behind.
fn make_fresh(dir: &Path) -> io::Result<()> {
    if dir.exists() {
        kill_members(dir);
        let _ = std::fs::remove_dir(dir);
    }
    std::fs::create_dir(dir)
}

fn procs_path(dir: &Path) -> io::Result<CString> {
    CString::new(dir.join("cgroup.procs").as_os_str().as_bytes())
        .map_err(|_| io::Error::other("a cgroup path holds a NUL byte"))
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    std::fs::write(path, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cgroup whose counters are files the test writes, as the kernel would.
    fn counted(dir: &Path, events: &str, files: &[(&str, &str)]) -> JobCgroup {
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        JobCgroup {
            dirs: Vec::new(),
            procs: Vec::new(),
            events: dir.join(events),
        }
    }

    #[test]
    fn a_v1_kill_counts_only_when_the_peak_reached_the_jobs_own_limit() {
        let dir = tempfile::tempdir().unwrap();
        // v1's value for "no limit" (a job with only a CPU limit): a kill there came from a
        // machine-wide shortage, not the job's limit.
        let unlimited = counted(
            dir.path(),
            "memory.oom_control",
            &[
                (
                    "memory.oom_control",
                    "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
                ),
                ("memory.max_usage_in_bytes", "1073741824\n"),
                ("memory.limit_in_bytes", "9223372036854771712\n"),
            ],
        );
        assert_eq!(unlimited.limit_kills(), 0);
        let limited = counted(
            dir.path(),
            "memory.oom_control",
            &[("memory.limit_in_bytes", "1073741824\n")],
        );
        assert_eq!(limited.limit_kills(), 1);
    }

    #[test]
    fn a_v2_kill_counts_only_when_the_cgroup_hit_its_own_limit() {
        let dir = tempfile::tempdir().unwrap();
        let global = counted(
            dir.path(),
            "memory.events",
            &[("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 1\n")],
        );
        assert_eq!(global.limit_kills(), 0);
        let own = counted(
            dir.path(),
            "memory.events",
            &[("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")],
        );
        assert_eq!(own.limit_kills(), 1);
    }
}

//! What the benchmarks read from `/proc`: a process's resident memory and CPU time, the
//! machine's CPU time and load average. Read-only, Linux only; a figure that cannot be read is
//! `None` and printed as "n/a", never guessed.

use std::time::Instant;

/// Clock ticks per second of `/proc/<pid>/stat`: `USER_HZ`, fixed at 100 by the kernel ABI on
/// every Linux architecture we run on (so no `sysconf`, which would need libc here).
const PROC_TICKS_PER_SEC: f64 = 100.0;

/// A process's resident memory, from `/proc/<pid>/status`.
#[derive(Clone, Copy)]
pub(crate) struct Memory {
    pub rss_kib: u64,
    /// The peak resident set since the process started.
    pub hwm_kib: u64,
}

impl Memory {
    pub fn of(pid: u32) -> Option<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| -> Option<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        Some(Memory {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
        })
    }

    pub fn show(m: Option<Memory>) -> String {
        match m {
            Some(m) => format!(
                "VmRSS {:.1} MiB, peak VmHWM {:.1} MiB",
                m.rss_kib as f64 / 1024.0,
                m.hwm_kib as f64 / 1024.0
            ),
            None => "n/a (the bench did not start the coordinator)".into(),
        }
    }
}

/// User plus system CPU seconds of a process, from its `/proc/.../stat`.
pub(crate) fn cpu_secs(stat_path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    // The command name (field 2) may hold spaces; the fields after its ')' do not.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / PROC_TICKS_PER_SEC)
}

/// CPU seconds of all `pids` together; `None` when there are none or one cannot be read (a
/// killed process has lost its counters, so a sum without it would be wrong).
fn cpu_secs_of(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter()
        .map(|pid| cpu_secs(&format!("/proc/{pid}/stat")))
        .sum()
}

/// The children of this process whose command name is `name` (the etcd members, which the
/// storage crate starts without telling their pids).
#[cfg(feature = "etcd")]
pub(crate) fn children_named(name: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                return false;
            };
            // After ')': state, then the parent's pid.
            let ppid = stat[close + 1..].split_whitespace().nth(1);
            &stat[open + 1..close] == name && ppid == Some(me.to_string().as_str())
        })
        .collect()
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` gives them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

/// Busy and total CPU seconds of the whole machine, summed over its cores, from `/proc/stat`.
/// Busy minus what the watched processes and the client used is what other processes took: a
/// run that shared the machine says so instead of passing for the coordinator's own figure.
fn machine_cpu_secs() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let field = |i: usize| ticks.get(i).copied().unwrap_or(0);
    let idle = field(3) + field(4);
    let busy = field(0) + field(1) + field(2) + field(5) + field(6) + field(7);
    Some((
        busy as f64 / PROC_TICKS_PER_SEC,
        (busy + idle) as f64 / PROC_TICKS_PER_SEC,
    ))
}

/// The processes whose CPU time the bench reports besides its own.
#[derive(Clone, Default)]
pub(crate) struct Watched {
    /// Coordinator nodes the bench started.
    pub coordinators: Vec<u32>,
    /// Store processes (etcd members) the bench started.
    pub store: Vec<u32>,
}

/// CPU counters at one moment: the watched processes', the client's and the machine's.
#[derive(Clone, Copy)]
pub(crate) struct CpuSample {
    pub at: Instant,
    coordinator_secs: Option<f64>,
    store_secs: Option<f64>,
    client_secs: Option<f64>,
    /// Busy and total seconds, all cores.
    machine_secs: Option<(f64, f64)>,
}

impl CpuSample {
    pub fn take(watched: &Watched) -> CpuSample {
        CpuSample {
            at: Instant::now(),
            coordinator_secs: cpu_secs_of(&watched.coordinators),
            store_secs: cpu_secs_of(&watched.store),
            client_secs: cpu_secs("/proc/self/stat"),
            machine_secs: machine_cpu_secs(),
        }
    }
}

/// CPU use between two samples, in percent of one core.
pub(crate) struct CpuUse {
    pub coordinator: Option<f64>,
    // Read by the cluster comparison only (feature `etcd`).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub store: Option<f64>,
    pub client: Option<f64>,
    /// What other processes took: the machine's busy time minus the three above.
    pub others: Option<f64>,
    pub machine: Option<f64>,
    pub cores: usize,
}

impl CpuUse {
    pub fn between(a: &CpuSample, b: &CpuSample) -> CpuUse {
        let wall = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
        let pct = |x: Option<f64>, y: Option<f64>| x.zip(y).map(|(x, y)| 100.0 * (y - x) / wall);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let machine = a
            .machine_secs
            .zip(b.machine_secs)
            .map(|((b0, t0), (b1, t1))| 100.0 * cores as f64 * (b1 - b0) / (t1 - t0).max(1e-9));
        let coordinator = pct(a.coordinator_secs, b.coordinator_secs);
        let store = pct(a.store_secs, b.store_secs);
        let client = pct(a.client_secs, b.client_secs);
        let others = machine.map(|m| {
            (m - coordinator.unwrap_or(0.0) - store.unwrap_or(0.0) - client.unwrap_or(0.0)).max(0.0)
        });
        CpuUse {
            coordinator,
            store,
            client,
            others,
            machine,
            cores,
        }
    }
}

/// A share of one core, or "n/a".
pub(crate) fn show_pct(p: Option<f64>) -> String {
    p.map_or_else(|| "n/a".into(), |p| format!("{p:.0} %"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_time_past_a_command_name_with_spaces() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            file.path(),
            "42 (a b) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0 1 0 100 0 0\n",
        )
        .unwrap();
        assert_eq!(cpu_secs(file.path().to_str().unwrap()), Some(4.0));
    }

    #[test]
    fn sums_no_cpu_time_for_no_process() {
        assert_eq!(cpu_secs_of(&[]), None);
        assert!(cpu_secs_of(&[std::process::id()]).is_some());
    }
}

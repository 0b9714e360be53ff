//! Gigafactory's chaos suite (issue 4). A run starts, on loopback, a three-member etcd cluster,
//! several `gigafactory serve` nodes on it and several `gigafactory factory` agents, all real
//! processes; submits jobs at a steady rate; injects faults from a schedule drawn from a seed
//! (node kill -9, SIGSTOP past the lease TTL, etcd member restarts, actor panics, a factory
//! crash mid-job, and with `--netns` network partitions and flapping links between nodes in
//! network namespaces); lets the system settle; fetches every acknowledged job's timeline;
//! and runs the [`checker`] over the recorded [`history`]. The invariants C1–C8 are numbered
//! once, in [`checker`].
//!
//! The history and the checker need nothing; the runner ([`run`]) needs the `etcd` feature,
//! since it starts Debian's `etcd`.

pub mod checker;
pub mod history;
#[cfg(feature = "etcd")]
mod netns;
#[cfg(feature = "etcd")]
mod procs;
pub mod report;
#[cfg(feature = "etcd")]
mod rng;
#[cfg(feature = "etcd")]
mod run;

use std::path::{Path, PathBuf};

pub use checker::{Invariant, Verdict, Violation, check};
pub use history::History;
pub use report::Report;
#[cfg(feature = "etcd")]
pub use run::{Config, Outcome, run};

/// What can stop a chaos run (a violation does not: it is a finding, in the report).
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a chaos history: {source}")]
    History {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cluster setup failed: {0}")]
    Setup(String),
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl ChaosError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ChaosError {
        let what = what.into();
        move |source| ChaosError::Io { what, source }
    }
}

/// Reads a saved `history.json`.
pub fn load_history(path: &Path) -> Result<History, ChaosError> {
    let text = std::fs::read_to_string(path).map_err(ChaosError::io(path.display().to_string()))?;
    serde_json::from_str(&text).map_err(|source| ChaosError::History {
        path: path.to_path_buf(),
        source,
    })
}

/// Re-runs only the checker on a saved history and builds its report.
pub fn check_file(path: &Path) -> Result<Report, ChaosError> {
    let history = load_history(path)?;
    Ok(report::build(&history, &check(&history)))
}

/// Writes `history.json` and `report.json` into `dir`.
pub fn write_outputs(dir: &Path, history: &History, report: &Report) -> Result<(), ChaosError> {
    std::fs::create_dir_all(dir).map_err(ChaosError::io(dir.display().to_string()))?;
    for (name, json) in [
        ("history.json", serde_json::to_string(history)),
        ("report.json", serde_json::to_string_pretty(report)),
    ] {
        let path = dir.join(name);
        let json = json.map_err(|e| ChaosError::Io {
            what: path.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(&path, json).map_err(ChaosError::io(path.display().to_string()))?;
    }
    Ok(())
}

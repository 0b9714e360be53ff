//! The control directory: how a running job talks back to its agent without a network or a
//! token. `gigafactory job stage NAME` and `gigafactory job checkpoint REF` write one small
//! file each into `$GF_CONTROL_DIR` (atomically: tmp file, then rename), which the agent reads;
//! `gigafactory job usage` queues a file per report (`control/usage.rs`), and
//! `gigafactory job artifact` a copy of each file it saves (`control/artifacts.rs`), and
//! `gigafactory job ask` its question, whose answer the agent writes back (`control/question.rs`). The agent also keeps
//! its `running.json` marker there while the job's process lives, so an agent restarted after
//! a crash finds the jobs it orphaned.

mod artifacts;
mod question;
mod usage;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use gigafactory_core::job::JobId;
use serde::{Deserialize, Serialize};

use crate::error::{AgentError, Result};

pub use artifacts::{
    ArtifactSource, PendingArtifact, hash_file, pending_artifacts, write_artifact,
    write_artifact_in,
};
pub use question::{
    AnswerFile, QuestionFile, read_answer, read_question, write_answer, write_question,
};
pub use usage::{PendingUsage, pending_usage, split_for_end, write_usage, write_usage_in};

/// The variable that names a job's control directory.
pub const CONTROL_DIR_ENV: &str = "GF_CONTROL_DIR";
/// The file holding the job's current stage.
pub const STAGE_FILE: &str = "stage";
/// The file holding the job's latest checkpoint reference.
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// The file saying until when the model provider throttles the job (ms since the epoch).
pub const THROTTLED_FILE: &str = "throttled";
/// The agent's marker for a job whose process runs.
pub const RUNNING_MARKER_FILE: &str = "running.json";
/// Longest stage name: it is a label in the UI, not a log line.
pub const STAGE_MAX_BYTES: usize = 128;
/// Longest checkpoint reference (a path, a branch, an object URL): the coordinator's bound.
pub use gigafactory_core::wire::CHECKPOINT_MAX_BYTES;

/// Reports the calling job's stage (`gigafactory job stage NAME`): the agent sends it to the
/// coordinator within a quarter of a second.
pub fn write_stage(name: &str) -> Result<()> {
    write_stage_in(&control_dir_from_env()?, name)
}

/// Records where the calling job saved its work (`gigafactory job checkpoint REF`): sent with
/// the release when the job is preempted, and handed to the next attempt as `GF_CHECKPOINT`.
pub fn write_checkpoint(reference: &str) -> Result<()> {
    write_checkpoint_in(&control_dir_from_env()?, reference)
}

/// Reports that the model provider throttles the calling job until `until` (ms since the
/// epoch; `gigafactory job throttled --until T`): when the job then exits, the agent gives it
/// back without a failure, and the coordinator holds its engine class until then.
pub fn write_throttled(until: u64) -> Result<()> {
    write_atomically(
        &control_dir_from_env()?,
        THROTTLED_FILE,
        until.to_string().as_bytes(),
    )
}

/// Until when the job said it is throttled, if it did.
pub fn read_throttled(dir: &Path) -> Option<u64> {
    read_value(dir, THROTTLED_FILE, 20)?.parse().ok()
}

fn control_dir_from_env() -> Result<PathBuf> {
    match std::env::var_os(CONTROL_DIR_ENV) {
        Some(dir) if !dir.is_empty() => Ok(dir.into()),
        _ => Err(AgentError::NotInJob),
    }
}

/// [`write_stage`] into an explicit control directory.
pub fn write_stage_in(dir: &Path, name: &str) -> Result<()> {
    let name = validate("stage name", name, STAGE_MAX_BYTES)?;
    write_atomically(dir, STAGE_FILE, name.as_bytes())
}

/// [`write_checkpoint`] into an explicit control directory.
pub fn write_checkpoint_in(dir: &Path, reference: &str) -> Result<()> {
    let reference = validate("checkpoint reference", reference, CHECKPOINT_MAX_BYTES)?;
    write_atomically(dir, CHECKPOINT_FILE, reference.as_bytes())
}

/// The stage the job last reported, if any.
pub fn read_stage(dir: &Path) -> Option<String> {
    read_value(dir, STAGE_FILE, STAGE_MAX_BYTES)
}

/// The checkpoint the job last recorded, if any.
pub fn read_checkpoint(dir: &Path) -> Option<String> {
    read_value(dir, CHECKPOINT_FILE, CHECKPOINT_MAX_BYTES)
}

fn validate<'a>(what: &'static str, value: &'a str, max_bytes: usize) -> Result<&'a str> {
    let value = value.trim();
    let reason = if value.is_empty() {
        "it is empty".to_owned()
    } else if value.len() > max_bytes {
        format!(
            "it is {} bytes long, over the {max_bytes}-byte limit",
            value.len()
        )
    } else if value.chars().any(char::is_control) {
        "it holds a line break or another control character".to_owned()
    } else {
        return Ok(value);
    };
    Err(AgentError::InvalidValue { what, reason })
}

/// Reads a value the job wrote; anything a valid writer could not have produced (a file edited
/// by hand, a half-written file from an old version) reads as nothing rather than garbage.
fn read_value(dir: &Path, file: &str, max_bytes: usize) -> Option<String> {
    let bytes = std::fs::read(dir.join(file)).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    validate("value", &text, max_bytes).ok().map(str::to_owned)
}

/// Writes `dir/name` so that a reader sees the old content or the new, never a mix: the data
/// goes to a temporary file that is then renamed over the target.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    // The pid keeps two concurrent writers (two `gigafactory job stage` calls) off each other's
    // temporary file.
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let target = dir.join(name);
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        std::fs::rename(&tmp, &target)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        AgentError::io(format!("writing {}", target.display()), e)
    })
}

/// Opens the queue `sub` under `control_dir` (the job's usage reports, its artifacts),
/// creating it on first use: the directory, and how many `suffix` entries wait in it.
fn open_queue(control_dir: &Path, sub: &str, suffix: &str) -> Result<(PathBuf, usize)> {
    let dir = control_dir.join(sub);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        // Not `create_dir_all`: a control directory that is missing is a wrong GF_CONTROL_DIR,
        // not something to create.
        Err(e) => return Err(AgentError::io(format!("creating {}", dir.display()), e)),
    }
    let pending = queued_names(&dir, suffix)?.len();
    Ok((dir, pending))
}

/// The start of a queued entry's name: when it was written, in nanoseconds since the Unix
/// epoch, 20 digits, so that names sort in the order written.
fn queue_stamp() -> String {
    let ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{ns:020}")
}

/// The entries ending in `suffix` in the queue `dir`, sorted: the order they were written.
fn queued_names(dir: &Path, suffix: &str) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(AgentError::io(format!("reading {}", dir.display()), e)),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        // Temporary files of writers in progress start with a dot.
        .filter(|n| n.ends_with(suffix) && !n.starts_with('.'))
        .collect();
    names.sort_unstable();
    Ok(names)
}

/// The queue `sub` under `control_dir` and the first `max` entries waiting in it, oldest
/// first: none when it cannot be read (with a warning naming `what`).
fn waiting(
    control_dir: &Path,
    sub: &str,
    suffix: &str,
    max: usize,
    what: &str,
) -> (PathBuf, Vec<String>) {
    let dir = control_dir.join(sub);
    match queued_names(&dir, suffix) {
        Ok(mut names) => {
            names.truncate(max);
            (dir, names)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the job's {what}");
            (dir, Vec::new())
        }
    }
}

/// What the agent records about a job whose process it started, until it reported the job's
/// end. Found at start-up, it means the agent died while the job ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningMarker {
    pub job_id: JobId,
    pub epoch: u64,
    pub attempt: u32,
    pub pid: u32,
    /// The job's process group (the job is its leader, so it equals `pid`).
    pub pgid: i32,
    pub started_at_ms: u64,
}

impl RunningMarker {
    /// Records the marker in `control_dir`.
    pub fn write(&self, control_dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec(self).expect("a marker always serializes");
        write_atomically(control_dir, RUNNING_MARKER_FILE, &bytes)
    }

    /// The marker in `control_dir`, if there is a readable one.
    pub fn read(control_dir: &Path) -> Option<RunningMarker> {
        let bytes = std::fs::read(control_dir.join(RUNNING_MARKER_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Removes the marker: the job's end was reported (or needs no report).
    pub fn remove(control_dir: &Path) {
        match std::fs::remove_file(control_dir.join(RUNNING_MARKER_FILE)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(error = %e, dir = %control_dir.display(), "cannot remove the running marker")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_stage_reads_back_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_stage(dir.path()), None);
        write_stage_in(dir.path(), "  coding\n").unwrap();
        assert_eq!(read_stage(dir.path()).as_deref(), Some("coding"));
        write_stage_in(dir.path(), "testing").unwrap();
        assert_eq!(read_stage(dir.path()).as_deref(), Some("testing"));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "no temporary files left: {leftovers:?}"
        );
    }

    #[test]
    fn refuses_stages_that_are_not_a_short_label() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "   ", "two\nlines", &"x".repeat(STAGE_MAX_BYTES + 1)] {
            let err = write_stage_in(dir.path(), bad).unwrap_err();
            assert!(
                matches!(err, AgentError::InvalidValue { .. }),
                "{bad:?}: {err}"
            );
        }
        assert_eq!(
            read_stage(dir.path()),
            None,
            "a refused stage writes nothing"
        );
        write_stage_in(dir.path(), &"x".repeat(STAGE_MAX_BYTES)).unwrap();
    }

    #[test]
    fn a_hand_edited_oversized_stage_reads_as_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STAGE_FILE), "y".repeat(STAGE_MAX_BYTES * 2)).unwrap();
        assert_eq!(read_stage(dir.path()), None);
    }

    #[test]
    fn checkpoints_are_kept_apart_from_stages() {
        let dir = tempfile::tempdir().unwrap();
        write_checkpoint_in(dir.path(), "git:refs/heads/wip-42").unwrap();
        write_stage_in(dir.path(), "saving").unwrap();
        assert_eq!(
            read_checkpoint(dir.path()).as_deref(),
            Some("git:refs/heads/wip-42")
        );
        assert_eq!(read_stage(dir.path()).as_deref(), Some("saving"));
    }

    #[test]
    fn the_running_marker_round_trips_and_goes_away() {
        let dir = tempfile::tempdir().unwrap();
        let marker = RunningMarker {
            job_id: JobId(uuid::Uuid::new_v4()),
            epoch: 4,
            attempt: 2,
            pid: 1234,
            pgid: 1234,
            started_at_ms: 1,
        };
        marker.write(dir.path()).unwrap();
        assert_eq!(RunningMarker::read(dir.path()), Some(marker));
        RunningMarker::remove(dir.path());
        RunningMarker::remove(dir.path());
        assert_eq!(RunningMarker::read(dir.path()), None);
    }
}

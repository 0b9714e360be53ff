//! A job's workspace on disk and what the job did to it. Each attempt gets a fresh directory
//! `<workdir>/jobs/<job_id>/<attempt>/` with the job's cwd `work/` and the agent's `control/`
//! beside it (outside the cwd, so a job cleaning its tree cannot delete its control files).
//! The files under `work/` are snapshotted before and after the run; the difference is the
//! job's `changed_paths`, checked against its `allowed_scope` globs. Old workspaces are pruned.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use gigafactory_core::job::JobId;
use tracing::warn;

use crate::control::RUNNING_MARKER_FILE;
use crate::error::{AgentError, Result};

/// The directory under the work directory holding every job's workspaces.
pub const JOBS_DIR: &str = "jobs";
/// At most this many changed paths are reported for one attempt (the coordinator's bound).
pub use gigafactory_core::scope::CHANGED_PATHS_MAX;
/// A snapshot stops after this many entries, so a job that creates millions of files cannot
/// exhaust the agent's memory; the walk is sorted, so both snapshots stop at the same place
/// for the unchanged part of the tree.
pub const SNAPSHOT_ENTRIES_MAX: usize = 200_000;
/// Finished workspaces kept on disk (the newest ones); older ones are deleted.
pub const WORKSPACES_KEPT: usize = 20;

/// The directories of one attempt.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// `<workdir>/jobs/<job_id>/<attempt>`.
    pub root: PathBuf,
    /// The job's cwd.
    pub work: PathBuf,
    /// `$GF_CONTROL_DIR`.
    pub control: PathBuf,
    /// `$GF_SECRETS_DIR`, outside `root`, when the job has file secrets.
    pub secrets: Option<PathBuf>,
    /// The git directories `work/` needs when it is a checkout of a mirror (`mirror.rs`).
    pub git: Option<GitDirs>,
}

/// Where a checkout's git data lives, outside the workspace: the sandbox binds them.
#[derive(Debug, Clone)]
pub struct GitDirs {
    /// The factory's mirror of the repository (shared by every job of it: read-only).
    pub mirror: PathBuf,
    /// The worktree's own directory in the mirror (its `HEAD` and index: writable).
    pub admin: PathBuf,
}

impl Workspace {
    /// The directories of attempt `attempt` of `job_id`, not created.
    pub fn path(workdir: &Path, job_id: JobId, attempt: u32) -> Workspace {
        let root = workdir
            .join(JOBS_DIR)
            .join(job_id.to_string())
            .join(attempt.to_string());
        Workspace {
            work: root.join("work"),
            control: root.join("control"),
            root,
            secrets: None,
            git: None,
        }
    }

    /// Creates the attempt's directories, empty: whatever an earlier agent left at the same
    /// path (the same attempt claimed twice) is removed first.
    pub fn create(workdir: &Path, job_id: JobId, attempt: u32) -> Result<Workspace> {
        let ws = Workspace::path(workdir, job_id, attempt);
        match std::fs::remove_dir_all(&ws.root) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(AgentError::io(format!("clearing {}", ws.root.display()), e)),
        }
        for dir in [&ws.work, &ws.control] {
            std::fs::create_dir_all(dir)
                .map_err(|e| AgentError::io(format!("creating {}", dir.display()), e))?;
        }
        Ok(ws)
    }
}

/// What identifies a file's content cheaply: its size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub size: u64,
    pub modified: Option<SystemTime>,
}

/// Every file under a directory, by relative path with `/` separators.
pub type Snapshot = BTreeMap<String, FileStamp>;

/// Snapshots the files (and symbolic links, which are not followed) under `root`. Unreadable
/// entries are skipped: the snapshot is evidence for a report, not a guarantee.
pub fn snapshot(root: &Path) -> Snapshot {
    let mut files = Snapshot::new();
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            if files.len() >= SNAPSHOT_ENTRIES_MAX {
                warn!(root = %root.display(), limit = SNAPSHOT_ENTRIES_MAX, "workspace snapshot truncated");
                return files;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                pending.push((entry.path(), relative));
            } else {
                files.insert(
                    relative,
                    FileStamp {
                        size: meta.len(),
                        modified: meta.modified().ok(),
                    },
                );
            }
        }
    }
    files
}

/// The paths added, modified or removed between two snapshots, sorted, at most `max` of them.
pub fn changed_paths(before: &Snapshot, after: &Snapshot, max: usize) -> Vec<String> {
    let mut changed = Vec::new();
    let mut old = before.iter().peekable();
    let mut new = after.iter().peekable();
    // A merge of two sorted maps: the output comes out sorted without a sort.
    while changed.len() < max {
        let path = match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some((p, _)), None) => {
                let p = (*p).clone();
                old.next();
                p
            }
            (None, Some((p, _))) => {
                let p = (*p).clone();
                new.next();
                p
            }
            (Some((po, so)), Some((pn, sn))) => match po.cmp(pn) {
                std::cmp::Ordering::Less => {
                    let p = (*po).clone();
                    old.next();
                    p
                }
                std::cmp::Ordering::Greater => {
                    let p = (*pn).clone();
                    new.next();
                    p
                }
                std::cmp::Ordering::Equal => {
                    let same = so == sn;
                    let p = (*po).clone();
                    old.next();
                    new.next();
                    if same {
                        continue;
                    }
                    p
                }
            },
        };
        changed.push(path);
    }
    debug_assert!(changed.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
    changed
}

/// Deletes finished workspaces beyond the newest `keep`. A workspace is finished when it holds
/// no running marker and is not in `active` (a job that has not written its marker yet).
pub fn prune(workdir: &Path, keep: usize, active: &HashSet<PathBuf>) {
    let jobs = workdir.join(JOBS_DIR);
    let Ok(job_dirs) = std::fs::read_dir(&jobs) else {
        return;
    };
    let mut finished = Vec::new();
    for job_dir in job_dirs.filter_map(|e| e.ok()) {
        let Ok(attempts) = std::fs::read_dir(job_dir.path()) else {
            continue;
        };
        for attempt in attempts.filter_map(|e| e.ok()) {
            let root = attempt.path();
            if !root.is_dir()
                || active.contains(&root)
                || root.join("control").join(RUNNING_MARKER_FILE).exists()
            {
                continue;
            }
            // The control directory changes last (the marker is removed when the end was
            // reported), so its time is when the attempt finished.
            let finished_at = std::fs::metadata(root.join("control"))
                .or_else(|_| std::fs::metadata(&root))
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            finished.push((root, finished_at));
        }
    }
    for root in prunable(finished, keep) {
        if let Err(e) = std::fs::remove_dir_all(&root) {
            warn!(error = %e, path = %root.display(), "cannot delete an old workspace");
            continue;
        }
        // The job directory goes once its last attempt went; failing means other attempts
        // remain, which is fine.
        if let Some(job_dir) = root.parent() {
            let _ = std::fs::remove_dir(job_dir);
        }
    }
}

/// Which of the finished workspaces to delete: all but the `keep` most recently finished.
pub fn prunable(mut finished: Vec<(PathBuf, SystemTime)>, keep: usize) -> Vec<PathBuf> {
    // Newest first; the path breaks ties so the choice does not depend on directory order.
    finished.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    finished.into_iter().skip(keep).map(|(p, _)| p).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn stamp(size: u64, secs: u64) -> FileStamp {
        FileStamp {
            size,
            modified: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
        }
    }

    fn snap(entries: &[(&str, FileStamp)]) -> Snapshot {
        entries.iter().map(|(p, s)| (p.to_string(), *s)).collect()
    }

    #[test]
    fn reports_added_modified_and_removed_paths_sorted() {
        let before = snap(&[
            ("a", stamp(1, 1)),
            ("b", stamp(1, 1)),
            ("d", stamp(4, 1)),
            ("e", stamp(1, 1)),
        ]);
        let after = snap(&[
            ("a", stamp(1, 1)), // same
            ("b", stamp(2, 1)), // bigger
            ("c", stamp(1, 1)), // added
            ("d", stamp(4, 2)), // touched
                                // e removed
        ]);
        assert_eq!(changed_paths(&before, &after, 100), ["b", "c", "d", "e"]);
        assert_eq!(changed_paths(&after, &after, 100), Vec::<String>::new());
    }

    #[test]
    fn changed_paths_are_capped() {
        let after: Snapshot = (0..50).map(|i| (format!("f{i:03}"), stamp(1, 1))).collect();
        let changed = changed_paths(&Snapshot::new(), &after, 10);
        assert_eq!(changed.len(), 10);
        assert_eq!(changed[0], "f000");
        assert_eq!(changed[9], "f009");
    }

    #[test]
    fn snapshot_sees_nested_files_with_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src/deep")).unwrap();
        std::fs::write(dir.path().join("top.txt"), "1").unwrap();
        std::fs::write(dir.path().join("src/deep/x.rs"), "12").unwrap();
        std::fs::create_dir_all(dir.path().join("empty")).unwrap();
        let before = snapshot(dir.path());
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            ["src/deep/x.rs", "top.txt"]
        );
        assert_eq!(before["src/deep/x.rs"].size, 2);
        std::fs::write(dir.path().join("src/new.rs"), "").unwrap();
        std::fs::remove_file(dir.path().join("top.txt")).unwrap();
        let after = snapshot(dir.path());
        assert_eq!(
            changed_paths(&before, &after, CHANGED_PATHS_MAX),
            ["src/new.rs", "top.txt"]
        );
    }

    #[test]
    fn prunes_all_but_the_newest_finished_workspaces() {
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let finished = vec![
            (PathBuf::from("j/1"), t(10)),
            (PathBuf::from("j/2"), t(30)),
            (PathBuf::from("k/1"), t(20)),
            (PathBuf::from("k/2"), t(40)),
        ];
        assert_eq!(
            prunable(finished.clone(), 2),
            [PathBuf::from("k/1"), PathBuf::from("j/1")]
        );
        assert!(prunable(finished, 4).is_empty());
    }

    #[test]
    fn prune_keeps_running_and_active_workspaces() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<JobId> = (0..4).map(|_| JobId(uuid::Uuid::new_v4())).collect();
        let spaces: Vec<Workspace> = ids
            .iter()
            .map(|id| Workspace::create(dir.path(), *id, 1).unwrap())
            .collect();
        std::fs::write(spaces[0].control.join(RUNNING_MARKER_FILE), "{}").unwrap();
        let active: HashSet<PathBuf> = [spaces[1].root.clone()].into();
        prune(dir.path(), 0, &active);
        assert!(spaces[0].root.exists(), "running marker");
        assert!(spaces[1].root.exists(), "active");
        assert!(!spaces[2].root.exists());
        assert!(!spaces[3].root.exists());
        assert!(
            !spaces[3].root.parent().unwrap().exists(),
            "the empty job directory goes too"
        );
    }
}

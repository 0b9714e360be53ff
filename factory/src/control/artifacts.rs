//! Artifacts in the control directory. `gigafactory job artifact PATH` copies the file, as it
//! is at that moment, into `$GF_CONTROL_DIR/artifacts/` (so the job may change or delete it
//! afterwards), hashing it on the way; `--url` saves a link. The agent uploads the entries in
//! the order written, each under the request id it got then, while the job runs and before its
//! end, and removes an entry once the coordinator took it (or refused it for good).
//!
//! The format, shared by the two sides of one binary: `<stamp>-<request id>.data` holds the
//! bytes and `<stamp>-<request id>.json` the description `{"request_id", "name", "kind",
//! "size", "sha256"}`, written after the data is complete, so an entry without one is a copy
//! in progress.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use gigafactory_core::artifact::{self, ArtifactKind, JOB_COUNT_MAX};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::warn;

use super::{control_dir_from_env, open_queue, queue_stamp, waiting, write_atomically};
use crate::error::{AgentError, Result};

/// The directory under the control directory that holds the artifacts not yet uploaded.
pub const ARTIFACTS_DIR: &str = "artifacts";
/// Entries waiting past which `gigafactory job artifact` refuses more: as many as a job may
/// keep at most, so the agent is not taking them.
pub const ARTIFACTS_PENDING_MAX: usize = JOB_COUNT_MAX;
const META_SUFFIX: &str = ".json";
const DATA_SUFFIX: &str = ".data";
/// Read and hashed this much at a time while copying.
const COPY_CHUNK_BYTES: usize = 64 << 10;

/// What the job saves.
#[derive(Debug, Clone, Copy)]
pub enum ArtifactSource<'a> {
    /// A file, copied as it is now.
    File(&'a Path),
    /// A URL (a pull request, a dashboard), saved as a `link`.
    Link(&'a str),
}

/// An entry's description.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    request_id: String,
    name: String,
    kind: ArtifactKind,
    size: u64,
    sha256: String,
}

/// A saved artifact not yet uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingArtifact {
    /// Its bytes.
    pub data: PathBuf,
    meta: PathBuf,
    /// The id every upload of it carries.
    pub request_id: String,
    pub name: String,
    pub kind: ArtifactKind,
    pub size: u64,
    pub sha256: String,
}

impl PendingArtifact {
    /// Forgets the entry: the coordinator took it, or refused it for good.
    pub fn remove(&self) {
        // The description first: an entry without one is never read again.
        for path in [&self.meta, &self.data] {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    warn!(error = %e, path = %path.display(), "cannot remove an uploaded artifact")
                }
            }
        }
    }
}

/// Saves an artifact of the calling job (`gigafactory job artifact`): named `name` (the
/// file's name by default), of `kind` (by its extension by default). The agent uploads it at
/// its next look into the control directory (every quarter of a second by default), or before
/// the job's end if that comes first.
pub fn write_artifact(
    source: ArtifactSource<'_>,
    name: Option<&str>,
    kind: Option<ArtifactKind>,
) -> Result<PendingArtifact> {
    write_artifact_in(&control_dir_from_env()?, source, name, kind)
}

/// [`write_artifact`] into an explicit control directory.
pub fn write_artifact_in(
    control_dir: &Path,
    source: ArtifactSource<'_>,
    name: Option<&str>,
    kind: Option<ArtifactKind>,
) -> Result<PendingArtifact> {
    let invalid = |what, reason: String| Err(AgentError::InvalidValue { what, reason });
    let (name, kind) = match source {
        ArtifactSource::File(path) => {
            let meta = std::fs::metadata(path)
                .map_err(|e| AgentError::io(format!("reading {}", path.display()), e))?;
            if !meta.is_file() {
                return invalid("artifact", format!("{} is not a file", path.display()));
            }
            let name = match name {
                Some(name) => name.to_owned(),
                None => match path.file_name().and_then(|n| n.to_str()) {
                    Some(n) => n.to_owned(),
                    None => {
                        return invalid(
                            "artifact",
                            format!("{} has no UTF-8 file name: give --name", path.display()),
                        );
                    }
                },
            };
            let kind = kind.unwrap_or_else(|| artifact::kind_for(&name));
            if kind == ArtifactKind::Link {
                return invalid("artifact", "a link is saved with --url, not a file".into());
            }
            (name, kind)
        }
        ArtifactSource::Link(url) => {
            if let Err(reason) = artifact::check_link(url) {
                return invalid("link", reason);
            }
            let Some(name) = name else {
                return invalid("link", "a link needs a name (--name)".into());
            };
            if kind.is_some_and(|k| k != ArtifactKind::Link) {
                return invalid("link", "a URL is saved as kind link".into());
            }
            (name.to_owned(), ArtifactKind::Link)
        }
    };
    if let Err(reason) = artifact::check_name(&name) {
        return invalid("artifact name", reason);
    }
    let (dir, pending) = open_queue(control_dir, ARTIFACTS_DIR, META_SUFFIX)?;
    if pending >= ARTIFACTS_PENDING_MAX {
        return Err(AgentError::Backlog {
            what: "artifacts",
            pending,
            dir,
        });
    }
    let request_id = uuid::Uuid::now_v7().to_string();
    let stem = format!("{}-{request_id}", queue_stamp());
    let data = dir.join(format!("{stem}{DATA_SUFFIX}"));
    let (size, sha256) = match source {
        ArtifactSource::File(path) => copy_hashed(path, &dir, &data)?,
        ArtifactSource::Link(url) => {
            let bytes = format!("{url}\n");
            write_atomically(&dir, &format!("{stem}{DATA_SUFFIX}"), bytes.as_bytes())?;
            let digest = Sha256::digest(bytes.as_bytes());
            (bytes.len() as u64, gigafactory_core::wire::hex(&digest))
        }
    };
    let meta = Meta {
        request_id,
        name,
        kind,
        size,
        sha256,
    };
    let bytes = serde_json::to_vec(&meta).expect("a description always serializes");
    write_atomically(&dir, &format!("{stem}{META_SUFFIX}"), &bytes)?;
    Ok(PendingArtifact {
        data,
        meta: dir.join(format!("{stem}{META_SUFFIX}")),
        request_id: meta.request_id,
        name: meta.name,
        kind: meta.kind,
        size,
        sha256: meta.sha256,
    })
}

/// Copies `source` to `target` through a hidden temporary file in `dir`, hashing it on the
/// way: its size and SHA-256.
fn copy_hashed(source: &Path, dir: &Path, target: &Path) -> Result<(u64, String)> {
    let tmp = dir.join(format!(".copy.{}.tmp", uuid::Uuid::new_v4()));
    let copy = || -> std::io::Result<(u64, String)> {
        let mut to = std::fs::File::create(&tmp)?;
        let hashed = hash_into(source, |chunk| to.write_all(chunk))?;
        to.flush()?;
        std::fs::rename(&tmp, target)?;
        Ok(hashed)
    };
    copy().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        AgentError::io(format!("copying {}", source.display()), e)
    })
}

/// The size and SHA-256 of the file at `path`: for a file the agent uploads itself (one the
/// job's `artifacts` globs matched).
pub fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    hash_into(path, |_| Ok(()))
}

/// Reads `path` through, handing each chunk to `sink`: its size and SHA-256.
fn hash_into(
    path: &Path,
    mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<(u64, String)> {
    let mut from = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; COPY_CHUNK_BYTES];
    let mut size = 0u64;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        sink(&buf[..n])?;
        size += n as u64;
    }
    Ok((size, gigafactory_core::wire::hex(&hasher.finalize())))
}

/// The artifacts waiting in `control_dir`, oldest first (at most [`ARTIFACTS_PENDING_MAX`]).
/// An entry no writer could have produced (edited by hand, its data gone or of another size)
/// cannot be uploaded: it is removed, with a warning.
pub fn pending_artifacts(control_dir: &Path) -> Vec<PendingArtifact> {
    let (dir, names) = waiting(
        control_dir,
        ARTIFACTS_DIR,
        META_SUFFIX,
        ARTIFACTS_PENDING_MAX,
        "artifacts",
    );
    let mut pending = Vec::with_capacity(names.len());
    for name in names {
        let meta = dir.join(&name);
        let data = dir.join(format!(
            "{}{DATA_SUFFIX}",
            name.trim_end_matches(META_SUFFIX)
        ));
        let parsed = std::fs::read(&meta)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Meta>(&b).map_err(|e| e.to_string()))
            .and_then(|m| match std::fs::symlink_metadata(&data) {
                Ok(d) if !d.is_file() => Err("its data is not a regular file".into()),
                Ok(d) if d.len() == m.size => Ok(m),
                Ok(d) => Err(format!("{} bytes of data for {}", d.len(), m.size)),
                Err(e) => Err(e.to_string()),
            });
        match parsed {
            Ok(m) => pending.push(PendingArtifact {
                data,
                meta,
                request_id: m.request_id,
                name: m.name,
                kind: m.kind,
                size: m.size,
                sha256: m.sha256,
            }),
            Err(e) => {
                warn!(error = %e, path = %meta.display(), "removing an artifact entry that does not read");
                let _ = std::fs::remove_file(&meta);
                let _ = std::fs::remove_file(&data);
            }
        }
    }
    pending
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_file_is_a_snapshot_named_and_kinded_from_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("fix.patch");
        std::fs::write(&src, "--- a\n+++ b\n").unwrap();
        let saved = write_artifact_in(dir.path(), ArtifactSource::File(&src), None, None).unwrap();
        // The job changes the file afterwards: what was saved stays as it was.
        std::fs::write(&src, "changed").unwrap();
        assert_eq!(
            (saved.name.as_str(), saved.kind),
            ("fix.patch", ArtifactKind::Patch)
        );
        assert_eq!(saved.size, 12);
        assert_eq!(
            saved.sha256,
            gigafactory_core::wire::hex(&Sha256::digest(b"--- a\n+++ b\n"))
        );
        assert_eq!(std::fs::read(&saved.data).unwrap(), b"--- a\n+++ b\n");
        assert_eq!(pending_artifacts(dir.path()), std::slice::from_ref(&saved));
        assert_eq!(hash_file(&saved.data).unwrap(), (12, saved.sha256.clone()));

        saved.remove();
        saved.remove();
        assert_eq!(pending_artifacts(dir.path()), []);
        let left: Vec<_> = std::fs::read_dir(dir.path().join(ARTIFACTS_DIR))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "nothing left behind: {left:?}");
    }

    #[test]
    fn entries_read_back_in_the_order_written_with_the_names_given() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("out.bin");
        std::fs::write(&src, [0u8, 1, 2]).unwrap();
        let first = write_artifact_in(
            dir.path(),
            ArtifactSource::Link("https://github.com/acme/app/pull/7"),
            Some("pull-request"),
            None,
        )
        .unwrap();
        let second = write_artifact_in(
            dir.path(),
            ArtifactSource::File(&src),
            Some("summary"),
            Some(ArtifactKind::Report),
        )
        .unwrap();
        let pending = pending_artifacts(dir.path());
        let names: Vec<_> = pending.iter().map(|p| (p.name.as_str(), p.kind)).collect();
        assert_eq!(
            names,
            [
                ("pull-request", ArtifactKind::Link),
                ("summary", ArtifactKind::Report)
            ]
        );
        assert_ne!(first.request_id, second.request_id);
        assert_eq!(
            std::fs::read_to_string(&first.data).unwrap(),
            "https://github.com/acme/app/pull/7\n"
        );
    }

    #[test]
    fn bad_input_is_refused_and_saves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.txt");
        std::fs::write(&src, "x").unwrap();
        let refused = [
            write_artifact_in(dir.path(), ArtifactSource::File(dir.path()), None, None),
            write_artifact_in(dir.path(), ArtifactSource::File(&src), Some("a/b"), None),
            write_artifact_in(
                dir.path(),
                ArtifactSource::File(&src),
                None,
                Some(ArtifactKind::Link),
            ),
            write_artifact_in(dir.path(), ArtifactSource::Link("https://x.y/"), None, None),
            write_artifact_in(
                dir.path(),
                ArtifactSource::Link("javascript:alert(1)"),
                Some("x"),
                None,
            ),
            write_artifact_in(
                dir.path(),
                ArtifactSource::Link("https://x.y/"),
                Some("x"),
                Some(ArtifactKind::Patch),
            ),
        ];
        for r in refused {
            let err = r.unwrap_err();
            assert!(matches!(err, AgentError::InvalidValue { .. }), "{err}");
        }
        let missing = dir.path().join("missing");
        let err = write_artifact_in(dir.path(), ArtifactSource::File(&missing), None, None);
        assert!(matches!(err, Err(AgentError::Io { .. })));
        assert_eq!(pending_artifacts(dir.path()), []);
    }

    #[test]
    fn an_entry_whose_data_does_not_match_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.txt");
        std::fs::write(&src, "abc").unwrap();
        let saved = write_artifact_in(dir.path(), ArtifactSource::File(&src), None, None).unwrap();
        std::fs::write(&saved.data, "abcd").unwrap();
        assert_eq!(pending_artifacts(dir.path()), []);
        assert!(!saved.data.exists());
    }

    #[cfg(unix)]
    #[test]
    fn an_entry_whose_data_became_a_symbolic_link_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.txt");
        std::fs::write(&src, "abc").unwrap();
        let saved = write_artifact_in(dir.path(), ArtifactSource::File(&src), None, None).unwrap();
        std::fs::remove_file(&saved.data).unwrap();
        std::os::unix::fs::symlink(&src, &saved.data).unwrap();
        assert_eq!(pending_artifacts(dir.path()), []);
    }

    #[test]
    fn refuses_more_while_too_many_wait() {
        let dir = tempfile::tempdir().unwrap();
        let queue = dir.path().join(ARTIFACTS_DIR);
        std::fs::create_dir(&queue).unwrap();
        for i in 0..ARTIFACTS_PENDING_MAX {
            std::fs::write(queue.join(format!("{i:020}-x{META_SUFFIX}")), "{}").unwrap();
        }
        let err = write_artifact_in(
            dir.path(),
            ArtifactSource::Link("https://x.y/"),
            Some("x"),
            None,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                AgentError::Backlog {
                    what: "artifacts",
                    ..
                }
            ),
            "{err}"
        );
    }
}

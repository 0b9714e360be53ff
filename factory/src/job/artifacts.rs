//! A job's artifacts on their way to the coordinator. What the job saves with `gigafactory job
//! artifact` goes up while it runs, oldest first, each under the request id it got when saved;
//! at its end, before the end is reported (after it the lease is gone), what is still waiting,
//! then the files its manifest's `artifacts` globs match in its workspace. A file the
//! coordinator refuses for good (past a limit, a bad name) is dropped and the job's output
//! says why; a lost lease stops the job as any fenced write does; an unavailable coordinator
//! is retried.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gigafactory_core::artifact::{self, ArtifactKind, JOB_COUNT_MAX};
use gigafactory_core::wire::{ArtifactUpload, LogStream};
use tokio::sync::oneshot;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{info, warn};

use super::JobCtx;
use super::report::Written;
use crate::client::Retry;
use crate::control::{self, PendingArtifact};
use crate::logs::LogQueue;
use crate::workspace::Snapshot;

/// Sends of one upload before it is dropped with a note: unlike a report, a file may be
/// refused in a way the agent only sees as a broken connection (an answer before the body was
/// read), or be too large for the link; it must not hold the job's end forever.
const UPLOAD_SENDS_MAX: u32 = 8;

/// One file on its way up.
struct Upload<'a> {
    name: &'a str,
    kind: ArtifactKind,
    path: &'a Path,
    size: u64,
    sha256: String,
    request_id: String,
}

impl JobCtx {
    /// Uploads one file under the job's lease, retried a few times while the coordinator does
    /// not answer.
    async fn upload(&self, file: Upload<'_>) -> Written {
        let shared = &self.shared;
        let upload = ArtifactUpload {
            epoch: self.job.epoch,
            request_id: file.request_id,
            kind: file.kind,
            sha256: file.sha256,
        };
        let sent = shared
            .coordinator
            .upload_artifact(
                &shared.identity.token,
                self.job.job_id,
                file.name,
                &upload,
                file.path,
                file.size,
                Retry::Attempts(UPLOAD_SENDS_MAX),
            )
            .await;
        self.written("artifact", sent)
    }

    /// Uploads `file`; whether the job may still report (false once its lease is gone). The
    /// name goes into `saved` once the coordinator kept the file; a refusal is noted in the
    /// job's output.
    async fn save(&self, file: Upload<'_>, queue: &LogQueue, saved: &mut BTreeSet<String>) -> bool {
        let name = file.name.to_owned();
        let size = file.size;
        match self.upload(file).await {
            Written::Accepted(_) => {
                info!(name, size, "artifact saved");
                saved.insert(name);
                true
            }
            Written::Ended => false,
            Written::Refused(why) => {
                warn!(name, %why, "an artifact was refused; dropping it");
                queue.push(
                    LogStream::Stderr,
                    format!("[gigafactory: artifact {name} not saved: {why}]\n"),
                );
                true
            }
        }
    }
}

/// Uploads the artifacts the job saved as it saves them, oldest first. Once `last_call` fires
/// (the job's process ended) it returns, after the pass under way if one is, with the names
/// the coordinator kept: what is still waiting goes up in [`save_at_end`].
pub(super) async fn artifact_loop(
    ctx: Arc<JobCtx>,
    control_dir: PathBuf,
    queue: Arc<LogQueue>,
    mut last_call: oneshot::Receiver<()>,
) -> BTreeSet<String> {
    let period = ctx.shared.config.stage_poll_interval;
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut saved = BTreeSet::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut last_call => return saved,
        }
        let pending = control::pending_artifacts(&control_dir);
        if !send_pending(&ctx, pending, &queue, &mut saved).await {
            return saved;
        }
    }
}

/// Uploads the saved entries in order, removing each once answered; false once the job must
/// not be reported any more.
async fn send_pending(
    ctx: &JobCtx,
    pending: Vec<PendingArtifact>,
    queue: &LogQueue,
    saved: &mut BTreeSet<String>,
) -> bool {
    for p in pending {
        let file = Upload {
            name: &p.name,
            kind: p.kind,
            path: &p.data,
            size: p.size,
            sha256: p.sha256.clone(),
            request_id: p.request_id.clone(),
        };
        if !ctx.save(file, queue, saved).await {
            return false;
        }
        p.remove();
    }
    true
}

/// At the job's end, before the end is reported: uploads what the job saved and is still
/// waiting, then, when the job's process ended by itself (`collect`), the regular files under
/// `work` (as `after` lists them) that its `artifacts` globs match, each under its file name
/// unless that is taken (see [`artifact::names_for_paths`]). A job stopped (preempted, past
/// its wall-clock budget, shutting down) has a deadline its end must meet: its outputs are not
/// collected. False once the job must not be reported any more.
pub(super) async fn save_at_end(
    ctx: &JobCtx,
    control_dir: &Path,
    work: &Path,
    after: &Snapshot,
    queue: &LogQueue,
    mut saved: BTreeSet<String>,
    collect: bool,
) -> bool {
    let pending = control::pending_artifacts(control_dir);
    if !send_pending(ctx, pending, queue, &mut saved).await {
        return false;
    }
    if !collect {
        if !ctx.job.artifacts.is_empty() {
            let note =
                "[gigafactory: the job was stopped; its artifacts globs are not collected]\n";
            queue.push(LogStream::Stderr, note.into());
        }
        return true;
    }
    let paths: Vec<String> = after.keys().cloned().collect();
    let (mut matched, invalid) = gigafactory_core::scope::matching(&ctx.job.artifacts, &paths);
    for glob in &invalid {
        warn!(glob, "an artifacts glob does not parse; it matches nothing");
    }
    if matched.len() > JOB_COUNT_MAX {
        queue.push(
            LogStream::Stderr,
            format!(
                "[gigafactory: the artifacts globs matched {} files; saving the first {JOB_COUNT_MAX}]\n",
                matched.len()
            ),
        );
        matched.truncate(JOB_COUNT_MAX);
    }
    for (relative, name) in artifact::names_for_paths(&matched, &saved.clone()) {
        let Some(name) = name else {
            queue.push(
                LogStream::Stderr,
                format!("[gigafactory: {relative} not saved: no free valid name for it]\n"),
            );
            continue;
        };
        let path = work.join(relative);
        let hashed = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || regular_file_hashed(&path)).await
        };
        let (size, sha256) = match hashed {
            Ok(Ok(hashed)) => hashed,
            Ok(Err(why)) => {
                queue.push(
                    LogStream::Stderr,
                    format!("[gigafactory: {relative} not saved: {why}]\n"),
                );
                continue;
            }
            Err(e) => {
                warn!(error = %e, "hashing an artifact panicked");
                continue;
            }
        };
        let file = Upload {
            name: &name,
            kind: artifact::kind_for(&name),
            path: &path,
            size,
            sha256,
            request_id: uuid::Uuid::new_v4().to_string(),
        };
        if !ctx.save(file, queue, &mut saved).await {
            return false;
        }
    }
    true
}

/// The size and digest of `path` if it is a regular file: a symbolic link is not followed (it
/// could point anywhere on this machine).
fn regular_file_hashed(path: &Path) -> Result<(u64, String), String> {
    match path.symlink_metadata() {
        Ok(meta) if meta.is_file() => control::hash_file(path).map_err(|e| e.to_string()),
        Ok(_) => Err("not a regular file (symbolic links are not followed)".into()),
        Err(e) => Err(e.to_string()),
    }
}

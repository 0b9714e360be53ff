//! Jobs orphaned by an agent that died: at start-up, every workspace still holding a
//! `running.json` marker was running when the previous agent stopped without reporting its end.
//! Its processes (if they still run that job) are killed, and the coordinator is told the
//! attempt failed, retryably, so the job is requeued now instead of when its lease expires; the
//! fail carries the usage reports the attempt left unsent (each under the request id it was
//! written with, so one the dead agent sent already is counted once), and the files it saved
//! and its agent never uploaded go up before it (after its usage, which then goes alone: no
//! one renews the lease while files upload). The marker goes once the
//! coordinator took the report (or answered that the lease is gone).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gigafactory_core::wire::{ArtifactUpload, Fail, FencedWrite};
use tokio::task::JoinHandle;
use tracing::{Instrument, info, info_span, warn};

use crate::client::{CallError, Retry, WriteOutcome};
use crate::context::Shared;
use crate::control::{self, PendingArtifact, PendingUsage, RunningMarker};
use crate::process::{self, Signal};
use crate::workspace::JOBS_DIR;

/// The error reported for an orphaned attempt.
pub const ORPHANED_ERROR: &str = "orphaned by a factory restart";
/// Sends of one orphan report before giving up until the next start (about a minute with the
/// capped backoff).
const ORPHAN_REPORT_SENDS_MAX: u32 = 20;

/// The control directories holding a running marker, with the marker.
pub fn find(workdir: &Path) -> Vec<(PathBuf, RunningMarker)> {
    let mut found = Vec::new();
    let Ok(job_dirs) = std::fs::read_dir(workdir.join(JOBS_DIR)) else {
        return found;
    };
    for job_dir in job_dirs.filter_map(|e| e.ok()) {
        let Ok(attempts) = std::fs::read_dir(job_dir.path()) else {
            continue;
        };
        for attempt in attempts.filter_map(|e| e.ok()) {
            let control = attempt.path().join("control");
            if let Some(marker) = RunningMarker::read(&control) {
                found.push((control, marker));
            } else if control.join(crate::control::RUNNING_MARKER_FILE).exists() {
                // Unreadable: we cannot report it (no epoch), and keeping it would pin the
                // workspace forever.
                warn!(dir = %control.display(), "removing an unreadable running marker");
                RunningMarker::remove(&control);
            }
        }
    }
    found
}

/// Kills the orphans' processes now and reports each orphan in its own task.
pub fn recover(shared: &Arc<Shared>) -> Vec<JoinHandle<()>> {
    find(&shared.config.workdir)
        .into_iter()
        .map(|(control, marker)| {
            let span = info_span!("orphan", job_id = %marker.job_id, epoch = marker.epoch, factory_id = %shared.identity.factory_id);
            span.in_scope(|| {
                if process::orphan_group_runs(marker.pgid, marker.job_id) {
                    warn!(pgid = marker.pgid, "killing the processes of a job orphaned by a restart");
                    process::signal_group(marker.pgid, Signal::Kill);
                }
            });
            tokio::spawn(report(shared.clone(), control, marker).instrument(span))
        })
        .collect()
}

/// What an orphan's report does after one write's outcome.
enum Next {
    /// Go on to the next write.
    Continue,
    /// The lease is gone: nothing more can be said; the marker goes.
    Done,
    /// Stop here and keep the marker (and the reports not sent): the next start tries again.
    Later,
}

/// Reads one write's outcome for an orphan's report.
fn next_after(shared: &Shared, sent: Result<WriteOutcome, CallError>, what: &str) -> Next {
    match sent {
        Ok(WriteOutcome::Accepted(_)) => Next::Continue,
        Ok(WriteOutcome::Lost { code, .. }) => {
            info!(code, what, "an orphaned job's lease was already gone");
            Next::Done
        }
        Err(e) if e.is_unauthorized() => {
            shared.raise_fatal(shared.revoked());
            Next::Later
        }
        Err(CallError::Unavailable(e)) => {
            warn!(error = %e, what, "cannot report an orphaned job now; will retry at the next start");
            Next::Later
        }
        Err(e) => {
            warn!(error = ?e, what, "the coordinator refused an orphan's report");
            Next::Continue
        }
    }
}

async fn report(shared: Arc<Shared>, control: PathBuf, marker: RunningMarker) {
    let usage = control::pending_usage(&control);
    let artifacts = control::pending_artifacts(&control);
    // Nothing renews an orphan's lease: its money goes first, alone, before files that may
    // take long; with no files, the newest reports ride on the fail (more than it may carry
    // go first, alone).
    let (alone, carried) = if artifacts.is_empty() {
        control::split_for_end(usage)
    } else {
        (usage, Vec::new())
    };
    if !send_alone(&shared, &control, &marker, alone).await {
        return;
    }
    if !send_artifacts(&shared, &control, &marker, artifacts).await {
        return;
    }
    let mut sent = send_fail(&shared, &marker, &carried).await;
    let invalid = |sent: &Result<WriteOutcome, CallError>| matches!(sent, Err(CallError::Status { status: 400, body }) if body.error == "invalid_request");
    if invalid(&sent) && !carried.is_empty() {
        // A report the coordinator cannot take (one it cannot price): alone, the rest count.
        warn!(
            reports = carried.len(),
            "the orphan's fail was refused with the usage it carried: sending the reports alone, then the fail"
        );
        if !send_alone(&shared, &control, &marker, carried).await {
            return;
        }
        sent = send_fail(&shared, &marker, &[]).await;
    } else if matches!(sent, Ok(WriteOutcome::Accepted(_))) {
        carried.iter().for_each(PendingUsage::remove);
    }
    let accepted = matches!(sent, Ok(WriteOutcome::Accepted(_)));
    match next_after(&shared, sent, "fail") {
        Next::Continue if accepted => info!("reported a job orphaned by a restart"),
        Next::Continue | Next::Done => {}
        Next::Later => return,
    }
    RunningMarker::remove(&control);
}

/// Sends `pending` alone, each under its id; false once the orphan's report must stop here
/// (the marker is gone when the lease was, kept when the coordinator could not be reached).
async fn send_alone(
    shared: &Shared,
    control: &Path,
    marker: &RunningMarker,
    pending: Vec<PendingUsage>,
) -> bool {
    for pending in pending {
        let write = FencedWrite {
            epoch: marker.epoch,
            request_id: pending.request_id.clone(),
            body: &pending.report,
        };
        let sent = shared
            .coordinator
            .write_as(
                &shared.identity.token,
                marker.job_id,
                "usage",
                write,
                Retry::Attempts(ORPHAN_REPORT_SENDS_MAX),
            )
            .await;
        if !goes_on(shared, control, sent, "usage") {
            return false;
        }
        pending.remove();
    }
    true
}

/// Uploads the files the attempt saved and its agent never uploaded, under its lease, each
/// under the request id it got when saved; false once the orphan's report must stop here.
async fn send_artifacts(
    shared: &Shared,
    control: &Path,
    marker: &RunningMarker,
    pending: Vec<PendingArtifact>,
) -> bool {
    for pending in pending {
        let upload = ArtifactUpload {
            epoch: marker.epoch,
            request_id: pending.request_id.clone(),
            kind: pending.kind,
            sha256: pending.sha256.clone(),
        };
        let sent = shared
            .coordinator
            .upload_artifact(
                &shared.identity.token,
                marker.job_id,
                &pending.name,
                &upload,
                &pending.data,
                pending.size,
                Retry::Attempts(ORPHAN_REPORT_SENDS_MAX),
            )
            .await;
        if !goes_on(shared, control, sent, "artifact") {
            return false;
        }
        pending.remove();
    }
    true
}

/// Whether the orphan's report goes on after one of its writes was answered (the caller then
/// forgets what it sent); the marker goes when the lease did.
fn goes_on(
    shared: &Shared,
    control: &Path,
    sent: Result<WriteOutcome, CallError>,
    what: &'static str,
) -> bool {
    match next_after(shared, sent, what) {
        Next::Continue => true,
        Next::Done => {
            RunningMarker::remove(control);
            false
        }
        Next::Later => false,
    }
}

/// Sends the orphan's fail, carrying `carried`.
async fn send_fail(
    shared: &Shared,
    marker: &RunningMarker,
    carried: &[PendingUsage],
) -> Result<WriteOutcome, CallError> {
    let usage: Vec<_> = carried.iter().map(PendingUsage::carried).collect();
    let ids = usage.iter().map(|u| u.request_id.clone()).collect();
    let fail = Fail {
        error: ORPHANED_ERROR.into(),
        exit_code: None,
        retryable: true,
        changed_paths: Vec::new(),
        usage,
        claim_next: None,
    };
    let write = FencedWrite {
        epoch: marker.epoch,
        request_id: uuid::Uuid::new_v4().to_string(),
        body: fail,
    };
    shared
        .coordinator
        .write_carrying(
            &shared.identity.token,
            marker.job_id,
            "fail",
            write,
            ids,
            Retry::Attempts(ORPHAN_REPORT_SENDS_MAX),
        )
        .await
}

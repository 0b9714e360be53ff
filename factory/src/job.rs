//! One claimed job, from its workspace to its last report. The job's task starts the process
//! and six helpers — the output pump, the log sender, the lease renewer, the stage watcher,
//! the usage sender and the artifact uploader — then supervises the process: it exits, or a
//! stop is asked for (cancel, preempt, lost lease, budget, shutdown) and carried out with
//! SIGTERM, a grace period and SIGKILL. Then the usage sender and the uploader stop, the
//! changed paths are computed, the artifacts still waiting and those the job's globs match
//! uploaded, the rest of the output delivered, and the end reported: `complete`, `fail` or
//! `release`, carrying the usage reports still waiting, retried until the coordinator takes
//! it. A lost lease (`409`, `404`)
//! anywhere ends everything at once: SIGKILL, and not another word to the coordinator.
//!
//! This file is the job's life on this machine; `job/report.rs` is everything it tells the
//! coordinator but its files, which `job/artifacts.rs` uploads.

mod artifacts;
mod question;
mod report;
mod secrets;

use std::io;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use gigafactory_core::checkout::RepoSpec;
use gigafactory_core::job::Millis;
use gigafactory_core::manifest::Payload;
use gigafactory_core::redact::Redactor;
use gigafactory_core::wire::{ClaimedJob, LogStream};
use tokio::io::AsyncWriteExt;
use tokio::process::Child;
use tokio::sync::{oneshot, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::{Instrument, info, info_span, warn};

use crate::context::Shared;
use crate::control::{self, RunningMarker};
use crate::journal::now_ms;
use crate::logs::{self, LOG_QUEUE_MAX_BYTES, LogQueue};
use crate::mirror::{Checkout, CheckoutError};
use crate::process::{self, JOB_ID_ENV, Launch, Signal};
use crate::stop::{Stop, escalate};
use crate::workspace::{self, CHANGED_PATHS_MAX, GitDirs, Workspace};
use artifacts::{artifact_loop, save_at_end};
use report::{
    final_report, finish_early, renew_loop, send_logs, send_report, stage_loop, usage_loop,
};
pub use secrets::clear_leftovers as clear_secret_leftovers;

/// After the process exits, its output pipes get this long to reach end of file (a process
/// outside the job's group may hold them open).
const LOG_DRAIN_MS: u64 = 2_000;
/// A preempted job gets at least this long to checkpoint, whatever the deadline says: the
/// coordinator's clock and ours may disagree by this much.
const PREEMPT_WAIT_MIN_MS: u64 = 1_000;
/// ...and at most this long, so a deadline far in the future cannot park a slot.
const PREEMPT_WAIT_MAX_MS: u64 = 15 * 60 * 1_000;
/// Out-of-scope paths named one by one in the job's log; the rest are counted.
const SCOPE_NOTICE_PATHS_MAX: usize = 20;

/// What a job's helpers share.
struct JobCtx {
    shared: Arc<Shared>,
    job: ClaimedJob,
    stop: Arc<watch::Sender<Option<Stop>>>,
    /// Replaces the job's secrets in everything it reports (`job/secrets.rs`).
    redactor: Arc<Redactor>,
}

impl JobCtx {
    fn request(&self, stop: Stop) {
        self.stop
            .send_if_modified(|current| escalate(current, stop));
    }

    /// Waits for `delivery` unless the job must not be reported any more first; whether it was
    /// delivered (`what` names it in the log when not).
    async fn delivered(&self, delivery: impl std::future::Future, what: &str) -> bool {
        tokio::select! {
            _ = delivery => true,
            _ = self.silenced() => {
                info!("job stopped before {what} was delivered");
                false
            }
        }
    }

    /// Resolves once the job must not be reported any more.
    async fn silenced(&self) {
        let mut rx = self.stop.subscribe();
        if rx
            .wait_for(|s| s.is_some_and(Stop::silences))
            .await
            .is_err()
        {
            // The sender lives as long as this context: unreachable, but never a busy loop.
            std::future::pending::<()>().await;
        }
    }
}

/// Kills what is left of the job's process group if the job's task ends early (aborted at
/// shutdown, or a panic).
struct GroupGuard {
    pgid: i32,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            process::signal_group(self.pgid, Signal::Kill);
        }
    }
}

/// Aborts the job's helper tasks however the job's task ends.
struct Helpers(Vec<AbortHandle>);

impl Drop for Helpers {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Registers a job leased to this factory (by a claim, or with an end's answer) and starts its
/// task.
pub fn start(shared: &Arc<Shared>, job: ClaimedJob) {
    shared.set_lease_ttl(job.lease_ttl_ms);
    let (job_id, epoch) = (job.job_id, job.epoch);
    let workspace = Workspace::path(&shared.config.workdir, job_id, job.attempt).root;
    let held = shared.hold(job_id, epoch, workspace);
    info!(%job_id, epoch, attempt = job.attempt, title = %job.title, "job claimed");
    let span = info_span!("job", %job_id, epoch, attempt = job.attempt, factory_id = %shared.identity.factory_id);
    let task_shared = shared.clone();
    let task = tokio::spawn(
        async move {
            // Moved in, so the entry goes when the task ends, panics or is aborted.
            let _guard = held.guard;
            run_job(task_shared, job, held.stop, held.pgid).await;
        }
        .instrument(span),
    );
    shared.attach_task(job_id, epoch, task.abort_handle());
}

/// Runs one claimed job to its end. `stop` carries stop requests from the agent; `pgid_slot`
/// gets the process group once the process started.
async fn run_job(
    shared: Arc<Shared>,
    job: ClaimedJob,
    stop: Arc<watch::Sender<Option<Stop>>>,
    pgid_slot: Arc<AtomicI32>,
) {
    // A repository is warm once it is checked out (below), not before.
    let repo_key = job.repo.as_ref().and_then(RepoSpec::default_affinity);
    if let Some(key) = job.affinity.as_deref().filter(|k| Some(*k) != repo_key) {
        shared.mark_warm(key);
    }
    // Fresh at every lease: a secret rotated since the last one reaches this one.
    let fetched = secrets::fetch(&shared, &job).await;
    let (job_secrets, fetch_failed) = match fetched {
        Ok(s) => (s, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let redactor = Arc::new(secrets::redactor(&job_secrets));
    let ctx = Arc::new(JobCtx {
        shared,
        job,
        stop,
        redactor,
    });
    if let Some(e) = fetch_failed {
        let why = format!("cannot fetch the job's secrets: {e}");
        return finish_early(&ctx, why, true).await;
    }
    let config = &ctx.shared.config;
    let (workdir, job_id, attempt) = (config.workdir.clone(), ctx.job.job_id, ctx.job.attempt);
    let created = tokio::task::spawn_blocking(move || Workspace::create(&workdir, job_id, attempt))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let mut ws = match created {
        Ok(ws) => ws,
        Err(e) => {
            let why = format!("cannot prepare the workspace: {e}");
            return finish_early(&ctx, why, true).await;
        }
    };
    // Held to the end of the attempt, however it ends: the worktree goes with it.
    let checkout = match &ctx.job.repo {
        None => None,
        Some(repo) => match check_out(&ctx, repo, &ws).await {
            // Cancelled or fenced meanwhile: the coordinator wants no more from this epoch.
            None => return,
            Some(Ok(checkout)) => {
                if let Some(key) = repo.default_affinity() {
                    ctx.shared.mark_warm(key);
                }
                ws.git = Some(GitDirs {
                    mirror: checkout.mirror.clone(),
                    admin: checkout.admin.clone(),
                });
                Some(checkout)
            }
            Some(Err(e @ CheckoutError::UnknownRev { .. })) => {
                return finish_early(&ctx, e.to_string(), false).await;
            }
            Some(Err(e)) => {
                let why = format!("cannot check out {}: {e}", repo);
                return finish_early(&ctx, why, true).await;
            }
        },
    };
    // Held to the end of the attempt, however it ends: the files go with it.
    let secret_files =
        match secrets::SecretFiles::write(&config.workdir, job_id, attempt, &job_secrets) {
            Ok(files) => files,
            Err(e) => {
                let why = format!("cannot write the job's secret files: {e}");
                return finish_early(&ctx, why, true).await;
            }
        };
    ws.secrets = secret_files.dir().map(Path::to_path_buf);
    let secret_env = secrets::env(&job_secrets, &secret_files);
    drop(job_secrets);
    let commit = checkout.as_ref().map(|c| c.commit.as_str());
    let launch = match launch_for(&ctx, &ws, secret_env, commit) {
        Ok(launch) => launch,
        Err(why) => return finish_early(&ctx, why, false).await,
    };
    let name = format!("{job_id}-{attempt}");
    let sandboxing = &ctx.shared.sandboxing;
    let (launch, sandbox, notices) =
        match sandboxing.prepare(&ctx.job.sandbox, &config.workdir, &ws, launch, &name) {
            Ok(prepared) => prepared,
            // This machine's problem (its cgroups), not the job's: another may run it.
            Err(why) => return finish_early(&ctx, why, true).await,
        };
    let work = ws.work.clone();
    let before = tokio::task::spawn_blocking(move || workspace::snapshot(&work))
        .await
        .unwrap_or_default();
    let mut child = match process::spawn(&launch, &sandbox.join()) {
        Ok(child) => child,
        Err(e) => {
            // A missing agent program will be missing on the next attempt here too: say so
            // once instead of burning attempts. A missing `sh` is this machine's problem.
            let prompt = matches!(ctx.job.payload, Payload::Prompt(_));
            let retryable = !(prompt && e.kind() == io::ErrorKind::NotFound);
            return finish_early(
                &ctx,
                format!("cannot start `{}`: {e}", launch.program),
                retryable,
            )
            .await;
        }
    };
    let started = Instant::now();
    // The job leads its own group, so its group id is its pid.
    let pid = child.id().unwrap_or(0);
    let pgid = pid as i32;
    pgid_slot.store(pgid, Ordering::Release);
    let mut group = GroupGuard { pgid, armed: true };
    let marker = RunningMarker {
        job_id: ctx.job.job_id,
        epoch: ctx.job.epoch,
        attempt: ctx.job.attempt,
        pid,
        pgid,
        started_at_ms: now_ms(),
    };
    if let Err(e) = marker.write(&ws.control) {
        // Only crash recovery needs it: run the job anyway.
        warn!(error = %e, "cannot write the running marker");
    }
    info!(pgid, program = %launch.program, "job started");

    let mut helpers = Vec::new();
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), launch.stdin.clone()) {
        let feed = async move {
            // A job that exits without reading its prompt closes the pipe: not our error.
            let _ = stdin.write_all(input.as_bytes()).await;
        };
        helpers.push(tokio::spawn(feed.in_current_span()).abort_handle());
    }
    let queue = LogQueue::new(LOG_QUEUE_MAX_BYTES);
    for notice in notices {
        warn!(%notice, "sandbox");
        queue.push(LogStream::Stderr, format!("[gigafactory: {notice}]\n"));
    }
    let (give_up, give_up_rx) = oneshot::channel();
    let mut pump = tokio::spawn(
        logs::pump(
            child.stdout.take(),
            child.stderr.take(),
            queue.clone(),
            ctx.redactor.clone(),
            give_up_rx,
        )
        .in_current_span(),
    );
    let mut sender = tokio::spawn(send_logs(ctx.clone(), queue.clone()).in_current_span());
    let renewer = tokio::spawn(renew_loop(ctx.clone()).in_current_span());
    let stager = tokio::spawn(stage_loop(ctx.clone(), ws.control.clone()).in_current_span());
    let asker =
        tokio::spawn(question::question_loop(ctx.clone(), ws.control.clone()).in_current_span());
    let (usage_last_call, usage_last_call_rx) = oneshot::channel();
    let mut usage = tokio::spawn(
        usage_loop(
            ctx.clone(),
            ws.control.clone(),
            queue.clone(),
            usage_last_call_rx,
        )
        .in_current_span(),
    );
    let (artifacts_last_call, artifacts_last_call_rx) = oneshot::channel();
    let mut saver = tokio::spawn(
        artifact_loop(
            ctx.clone(),
            ws.control.clone(),
            queue.clone(),
            artifacts_last_call_rx,
        )
        .in_current_span(),
    );
    helpers.extend([
        pump.abort_handle(),
        sender.abort_handle(),
        renewer.abort_handle(),
        stager.abort_handle(),
        asker.abort_handle(),
        usage.abort_handle(),
        saver.abort_handle(),
    ]);
    let _helpers = Helpers(helpers);

    let budget_at = ctx
        .job
        .wall_clock_ms
        .map(|ms| started + Duration::from_millis(ms));
    let (status, ended_by) = supervise(&ctx, &mut child, pgid, sandbox.wrapped(), budget_at).await;
    // Whatever the job left behind in its group goes with it; and until the stragglers are
    // gone its pipes would not reach end of file.
    process::signal_group(pgid, Signal::Kill);
    group.armed = false;
    stager.abort();
    asker.abort();
    if tokio::time::timeout(Duration::from_millis(LOG_DRAIN_MS), &mut pump)
        .await
        .is_err()
    {
        warn!("the job's output pipes stayed open after it exited; not waiting for them");
        let _ = give_up.send(());
        let _ = pump.await;
    }
    if ctx.stop.borrow().is_some_and(Stop::silences) {
        // Cancelled or fenced: the coordinator wants no more from this epoch.
        info!(stop = ?*ctx.stop.borrow(), "job stopped");
        RunningMarker::remove(&ws.control);
        return;
    }

    // The usage sender stops (after the report it is sending, if one): the reports still
    // waiting ride on the end, in its transaction, which saves a write each. Read only once it
    // stopped, so that no report goes both ways at once.
    let _ = usage_last_call.send(());
    if !ctx.delivered(&mut usage, "its usage").await {
        RunningMarker::remove(&ws.control);
        return;
    }

    // Likewise the artifact uploader; what it has not uploaded goes up below, with the files
    // the job's `artifacts` globs match, all before the end (after it the lease is gone).
    let _ = artifacts_last_call.send(());
    let saved = tokio::select! {
        saved = &mut saver => saved.unwrap_or_default(),
        _ = ctx.silenced() => {
            RunningMarker::remove(&ws.control);
            return;
        }
    };

    let work = ws.work.clone();
    let after = tokio::task::spawn_blocking(move || workspace::snapshot(&work))
        .await
        .unwrap_or_default();
    let mut changed = workspace::changed_paths(&before, &after, CHANGED_PATHS_MAX);
    check_scope(&ctx, &changed, &queue);
    // The coordinator refuses an end listing a path past its bound; such a path is told in
    // the job's own output above (scope notice) and left out of the report.
    changed.retain(|p| p.len() <= gigafactory_core::scope::CHANGED_PATH_MAX_BYTES);
    // A stopped job has a deadline for its end: its outputs are not collected then.
    let collect = ended_by.is_none();
    let at_end = save_at_end(&ctx, &ws.control, &ws.work, &after, &queue, saved, collect);
    if !ctx.delivered(at_end, "its artifacts").await {
        RunningMarker::remove(&ws.control);
        return;
    }
    queue.close();
    // All output goes before the end: after it the lease is gone and more output would be
    // refused.
    if !ctx.delivered(&mut sender, "its output").await {
        RunningMarker::remove(&ws.control);
        return;
    }

    // No renewal may race the end: one answered after the end was applied would read as a
    // lost lease. The end itself is retried within what is left of the lease.
    renewer.abort();
    let report = final_report(&ws, status, ended_by, changed, sandbox.memory_exceeded());
    let pending = control::pending_usage(&ws.control);
    ctx.delivered(send_report(&ctx, report, pending), "its end")
        .await;
    RunningMarker::remove(&ws.control);
    let shared = ctx.shared.clone();
    let _ = tokio::task::spawn_blocking(move || shared.prune_workspaces()).await;
}

/// Checks `repo` out as the job's working directory, renewing the lease meanwhile (a first
/// clone can outlast it); `None` when the job was cancelled or fenced first (git is killed).
async fn check_out(
    ctx: &Arc<JobCtx>,
    repo: &RepoSpec,
    ws: &Workspace,
) -> Option<Result<Checkout, CheckoutError>> {
    let renewer = tokio::spawn(renew_loop(ctx.clone()).in_current_span());
    let _renewer = Helpers(vec![renewer.abort_handle()]);
    tokio::select! {
        checked = ctx.shared.mirrors.checkout(repo, &ws.work) => Some(checked),
        _ = ctx.silenced() => None,
    }
}

/// Waits for the process to exit, carrying out stop requests meanwhile; returns how it exited
/// and the stop that was asked for by then, if any.
async fn supervise(
    ctx: &JobCtx,
    child: &mut Child,
    pgid: i32,
    wrapped: bool,
    mut budget_at: Option<Instant>,
) -> (io::Result<ExitStatus>, Option<Stop>) {
    let grace = ctx.shared.config.grace;
    let mut requests = ctx.stop.subscribe();
    let mut requests_open = true;
    let mut acted: Option<Stop> = None;
    let mut terminated = false;
    let mut kill_at: Option<Instant> = None;
    loop {
        let wanted = *requests.borrow_and_update();
        if wanted != acted
            && let Some(stop) = wanted
        {
            if stop == Stop::Fenced {
                info!("lease lost: SIGKILL");
                process::signal_job(child, pgid, Signal::Kill);
                kill_at = None;
            } else {
                if !terminated {
                    info!(
                        ?stop,
                        grace_ms = grace.as_millis() as u64,
                        "stopping the job: SIGTERM"
                    );
                    process::ask_job_to_stop(child, pgid, wrapped);
                    terminated = true;
                }
                let by = match stop {
                    Stop::Preempt { deadline } => Instant::now() + preempt_wait(deadline, now_ms()),
                    _ => Instant::now() + grace,
                };
                kill_at = Some(kill_at.map_or(by, |at| at.min(by)));
            }
            acted = wanted;
        }
        tokio::select! {
            status = child.wait() => return (status, acted),
            _ = sleep_until(budget_at) => {
                budget_at = None;
                warn!(wall_clock_ms = ctx.job.wall_clock_ms, "wall-clock budget exceeded");
                ctx.request(Stop::Budget);
            }
            _ = sleep_until(kill_at) => {
                warn!("the job did not stop in time: SIGKILL");
                process::signal_job(child, pgid, Signal::Kill);
                kill_at = None;
            }
            changed = requests.changed(), if requests_open => requests_open = changed.is_ok(),
        }
    }
}

/// How long a preempted job may take, from the coordinator's deadline and our clock.
fn preempt_wait(deadline: Millis, now: Millis) -> Duration {
    let ms = deadline
        .saturating_sub(now)
        .clamp(PREEMPT_WAIT_MIN_MS, PREEMPT_WAIT_MAX_MS);
    Duration::from_millis(ms)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What to start for the job's payload.
fn launch_for(
    ctx: &JobCtx,
    ws: &Workspace,
    secret_env: Vec<(String, String)>,
    commit: Option<&str>,
) -> Result<Launch, String> {
    let job = &ctx.job;
    let (program, args, stdin) = match &job.payload {
        Payload::Command(command) => {
            #[cfg(windows)]
            let (program, flag) = ("cmd", "/C");
            #[cfg(not(windows))]
            let (program, flag) = ("sh", "-c");
            (
                program.to_owned(),
                vec![flag.to_owned(), command.clone()],
                None,
            )
        }
        Payload::Prompt(prompt) => {
            let configured = ctx.shared.config.agent_command.as_deref().unwrap_or("");
            let mut words = configured.split_whitespace().map(str::to_owned);
            let Some(program) = words.next() else {
                return Err("this factory has no agent command configured (--agent-command) to run prompt jobs".into());
            };
            (program, words.collect(), Some(prompt.clone()))
        }
    };
    let mut env = vec![
        (JOB_ID_ENV.to_owned(), job.job_id.to_string()),
        ("GF_EPOCH".to_owned(), job.epoch.to_string()),
        (
            "GF_COORDINATOR".to_owned(),
            ctx.shared.coordinator.first_url().to_owned(),
        ),
        ("GF_ATTEMPT".to_owned(), job.attempt.to_string()),
        (
            control::CONTROL_DIR_ENV.to_owned(),
            ws.control.to_string_lossy().into_owned(),
        ),
    ];
    if let Some(checkpoint) = &job.checkpoint {
        env.push(("GF_CHECKPOINT".to_owned(), checkpoint.clone()));
    }
    if let Some(feedback) = &job.review_feedback {
        env.push(("GF_REVIEW_FEEDBACK".to_owned(), feedback.clone()));
    }
    if let (Some(repo), Some(commit)) = (&job.repo, commit) {
        env.push(("GF_REPO_URL".to_owned(), repo.url.clone()));
        env.push(("GF_REPO_REV".to_owned(), repo.rev.clone()));
        env.push(("GF_REPO_COMMIT".to_owned(), commit.to_owned()));
    }
    env.extend(secret_env);
    Ok(Launch {
        program,
        args,
        cwd: ws.work.clone(),
        env,
        stdin,
    })
}

/// Warns about changed paths outside the job's allowed scope, in our log and in the job's
/// output (which the coordinator keeps with the job). It never fails the job.
fn check_scope(ctx: &JobCtx, changed: &[String], queue: &LogQueue) {
    let (outside, invalid) = gigafactory_core::scope::out_of_scope(&ctx.job.allowed_scope, changed);
    for glob in &invalid {
        warn!(
            glob,
            "an allowed_scope glob does not parse; it matches nothing"
        );
    }
    if outside.is_empty() {
        return;
    }
    warn!(count = outside.len(), paths = ?&outside[..outside.len().min(SCOPE_NOTICE_PATHS_MAX)], "the job changed paths outside its allowed scope");
    let mut notice = format!(
        "[gigafactory: {} changed paths outside allowed_scope:",
        outside.len()
    );
    for path in outside.iter().take(SCOPE_NOTICE_PATHS_MAX) {
        notice.push(' ');
        notice.push_str(path);
    }
    if outside.len() > SCOPE_NOTICE_PATHS_MAX {
        notice.push_str(" ...");
    }
    notice.push_str("]\n");
    queue.push(LogStream::Stderr, notice);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preemption_waits_are_bounded_both_ways() {
        assert_eq!(preempt_wait(10_000, 4_000), Duration::from_millis(6_000));
        assert_eq!(
            preempt_wait(1_000, 5_000),
            Duration::from_millis(PREEMPT_WAIT_MIN_MS),
            "a deadline in the past"
        );
        assert_eq!(
            preempt_wait(u64::MAX, 0),
            Duration::from_millis(PREEMPT_WAIT_MAX_MS)
        );
    }
}

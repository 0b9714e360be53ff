//! Reading the coordinator for `top`. Each reader is a task that sends what it read to the
//! screen's loop as a [`Msg`]: the fleet every [`REFRESH_MS`] (nodes, factories, figures and
//! the jobs holding leases, read together so that the panes agree), the fleet's events (SSE,
//! resumed with `Last-Event-ID` after a reconnect), one job's log while its pane is open, and
//! a drain or an undrain. No reader gives up on a coordinator out of reach: it says so, waits
//! and tries again; the loop ends them when `top` quits.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use gigafactory_core::wire::{FleetEvent, JobPage, JobView, LogLine};
use ratatui::crossterm::event::KeyEvent;
use tokio::sync::mpsc::Sender;

use super::model::{Cluster, FactoryRow, Fleet, Stats};
use super::state::{Confirm, FleetAction};
use crate::cli::sse::next_event;
use crate::client::{Client, unreachable};

/// How often the fleet is read.
pub const REFRESH_MS: u64 = 1_000;
/// A fleet reading that has not answered by then counts as out of reach: a coordinator that
/// accepts connections but does not answer must not freeze the screen on old data unmarked.
const READ_TIMEOUT_MS: u64 = 5_000;
/// The wait before the events stream is opened again.
const RECONNECT_WAIT_MS: u64 = 1_000;
/// How often an open log is read for new output.
const LOG_POLL_MS: u64 = 500;
/// Jobs holding a lease read per page (the listing's largest page).
const LEASED_JOBS_MAX: usize = 500;
/// Pages of the listing read per state and refresh. The listing has no index by state: a
/// page examines at most 10,000 jobs of the store, oldest first, so on a large store the
/// running jobs may lie past these pages. The factories pane then says its current jobs were
/// read from part of the store (as the web UI's factory page does).
const LEASED_PAGES_MAX: usize = 2;
/// The states in which a job holds a factory's slot.
const LEASED_STATES: [&str; 3] = ["leased", "running", "preempting"];

/// What the screen's loop hears: a key, a resize, or what a reader read.
pub enum Msg {
    Key(KeyEvent),
    Resized,
    Fleet(Box<Fleet>),
    FleetFailed {
        error: String,
        unreachable: bool,
    },
    Event(Box<FleetEvent>),
    EventsLive(bool),
    Log {
        job_id: String,
        read: Result<Vec<LogLine>, String>,
    },
    /// A drain's or an undrain's outcome, to show.
    Done(Result<String, String>),
}

/// Reads the fleet every [`REFRESH_MS`] until the loop stops listening.
pub async fn poll_fleet(c: Arc<Client>, tx: Sender<Msg>) {
    let mut tick = tokio::time::interval(Duration::from_millis(REFRESH_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let read = tokio::time::timeout(Duration::from_millis(READ_TIMEOUT_MS), read_fleet(&c));
        let msg = match read.await {
            Ok(Ok(fleet)) => Msg::Fleet(Box::new(fleet)),
            Ok(Err(e)) => Msg::FleetFailed {
                unreachable: unreachable(&e),
                error: format!("{e:#}"),
            },
            Err(_) => Msg::FleetFailed {
                error: format!("no answer within {} s", READ_TIMEOUT_MS / 1_000),
                unreachable: true,
            },
        };
        if tx.send(msg).await.is_err() {
            return;
        }
    }
}

async fn read_fleet(c: &Client) -> Result<Fleet> {
    let [leased, running, preempting] = LEASED_STATES;
    let (cluster, factories, stats, leased, running, preempting) = tokio::try_join!(
        c.get::<Cluster>("/v1/cluster"),
        c.get::<Vec<FactoryRow>>("/v1/factories"),
        c.get::<Stats>("/v1/stats"),
        jobs_in(c, leased),
        jobs_in(c, running),
        jobs_in(c, preempting),
    )?;
    let jobs_complete = leased.1 && running.1 && preempting.1;
    Ok(Fleet {
        cluster,
        factories,
        stats,
        jobs: [leased.0, running.0, preempting.0].concat(),
        jobs_complete,
    })
}

/// The jobs in `state`, page after page up to [`LEASED_PAGES_MAX`]; whether that was all.
async fn jobs_in(c: &Client, state: &str) -> Result<(Vec<JobView>, bool)> {
    let mut jobs = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..LEASED_PAGES_MAX {
        let after = cursor.map(|c| format!("&cursor={c}")).unwrap_or_default();
        let page: JobPage = c
            .get(&format!(
                "/v1/jobs?state={state}&limit={LEASED_JOBS_MAX}{after}"
            ))
            .await?;
        jobs.extend(page.jobs);
        cursor = page.next_cursor;
        if cursor.is_none() {
            return Ok((jobs, true));
        }
    }
    Ok((jobs, false))
}

/// Follows the fleet's events, reconnecting (and resuming after the last event read) for as
/// long as the loop listens.
pub async fn follow_events(c: Arc<Client>, tx: Sender<Msg>) {
    let mut last_id: Option<String> = None;
    loop {
        let read = match c.get_events("/v1/events", last_id.as_deref()).await {
            Ok(stream) => {
                if tx.send(Msg::EventsLive(true)).await.is_err() {
                    return;
                }
                read_events(stream, &mut last_id, &tx).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = read
            && !unreachable(&e)
        {
            // Refused (an id the node cannot resume from, say): start afresh next time.
            last_id = None;
        }
        if tx.send(Msg::EventsLive(false)).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(RECONNECT_WAIT_MS)).await;
    }
}

/// Sends the stream's job events until it ends; the id of each event read goes to `last_id`.
async fn read_events(
    mut stream: reqwest::Response,
    last_id: &mut Option<String>,
    tx: &Sender<Msg>,
) -> Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.chunk().await? {
        buf.extend_from_slice(&chunk);
        while let Some(event) = next_event(&mut buf) {
            if event.id.is_some() {
                *last_id = event.id;
            }
            if event.kind != "job" {
                continue;
            }
            // An event this build cannot read is skipped rather than ending the stream.
            if let Ok(e) = serde_json::from_str::<FleetEvent>(&event.data)
                && tx.send(Msg::Event(Box::new(e))).await.is_err()
            {
                bail!("top quit");
            }
        }
    }
    Ok(())
}

/// Reads `job_id`'s log from its start, then its new output every [`LOG_POLL_MS`], until the
/// loop aborts it (its pane closed).
pub async fn follow_log(c: Arc<Client>, job_id: String, tx: Sender<Msg>) {
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(p) => format!("/v1/jobs/{job_id}/logs?after={p}"),
            None => format!("/v1/jobs/{job_id}/logs"),
        };
        let read = c.get::<Vec<LogLine>>(&path).await;
        let more = matches!(&read, Ok(lines) if !lines.is_empty());
        if let Ok(Some(l)) = read.as_ref().map(|lines| lines.last()) {
            after = Some(format!("{}:{}", l.attempt, l.seq));
        }
        let msg = Msg::Log {
            job_id: job_id.clone(),
            read: read.map_err(|e| format!("{e:#}")),
        };
        if tx.send(msg).await.is_err() {
            return;
        }
        // A full page may have more behind it: read on at once.
        if !more {
            tokio::time::sleep(Duration::from_millis(LOG_POLL_MS)).await;
        }
    }
}

/// Drains or undrains a factory; its outcome, or the API's error, goes to the loop.
pub async fn act(c: Arc<Client>, what: Confirm, tx: Sender<Msg>) {
    let path = format!("/v1/factories/{}/{}", what.factory_id, what.action.verb());
    let outcome = match c.post::<serde_json::Value>(&path, None).await {
        Ok(_) => Ok(match what.action {
            FleetAction::Drain => format!(
                "{} drains: it finishes its jobs and takes no new ones",
                what.name
            ),
            FleetAction::Undrain => format!("{} takes new jobs again", what.name),
        }),
        Err(e) => Err(format!("{} {}: {e:#}", what.action.verb(), what.name)),
    };
    let _ = tx.send(Msg::Done(outcome)).await;
}

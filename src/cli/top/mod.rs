//! `gigafactory top`: a live terminal view of the fleet. Its parts: `model.rs` (the API's
//! readings and the pure rules over them: order, filter, rates, ages), `state.rs` (what the
//! screen shows and selects), `keys.rs` (what each key does), `draw.rs` (the screen, drawn
//! with ratatui) and `fetch.rs` (the tasks that read the coordinator). This file wires them:
//! the terminal, the loop that turns keys and readings into state and draws it, and the
//! tasks it starts and ends.
//!
//! The terminal is given back as it was on every way out: a quit, an error (a guard's drop)
//! and a panic (ratatui's panic hook restores it before the message prints). Without a
//! terminal on standard output `top` refuses to start ([`NotATerminal`], exit 2).

mod draw;
mod fetch;
mod keys;
mod model;
mod state;

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self, Event};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::Remote;
use crate::client::Client;
use fetch::Msg;
use keys::Effect;
use state::{App, Mode};

/// How often the screen is drawn without news, so that ages and "updated … ago" move.
const REDRAW_MS: u64 = 500;
/// How long the key reader waits for a key before it checks that `top` still runs.
const KEY_POLL_MS: u64 = 200;
/// Messages waiting for the loop; readers wait when it is full (a burst of events).
const MSG_QUEUE_MAX: usize = 1_024;

/// `top` was started with standard output not a terminal (a pipe, a file).
#[derive(Debug)]
pub struct NotATerminal;

impl std::fmt::Display for NotATerminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "gigafactory top draws on a terminal, and standard output is not one; \
             for output to read or pipe use `gigafactory factories ls` or `jobs ls`",
        )
    }
}

impl std::error::Error for NotATerminal {}

/// The terminal in raw mode on the alternate screen, given back when dropped.
struct Screen(DefaultTerminal);

impl Screen {
    fn open() -> Result<Self> {
        match ratatui::try_init() {
            Ok(t) => Ok(Screen(t)),
            Err(e) => {
                ratatui::restore();
                Err(e).context("setting up the terminal")
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// A task ended when `top` ends, however it ends.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub async fn run(remote: &Remote) -> Result<()> {
    if !std::io::stdout().is_terminal() {
        return Err(NotATerminal.into());
    }
    let client = Arc::new(Client::new(remote)?);
    let (tx, mut rx) = mpsc::channel(MSG_QUEUE_MAX);
    let mut fleet = Task(tokio::spawn(fetch::poll_fleet(client.clone(), tx.clone())));
    let mut events = Task(tokio::spawn(fetch::follow_events(
        client.clone(),
        tx.clone(),
    )));
    let mut screen = Screen::open()?;
    let keys_tx = tx.clone();
    std::thread::spawn(move || read_terminal(keys_tx));
    let mut app = App::new(remote.coordinator.clone());
    // The task following the open log; replacing or taking it ends that task.
    let mut log: Option<Task> = None;
    let mut redraw = tokio::time::interval(Duration::from_millis(REDRAW_MS));
    loop {
        screen
            .0
            .draw(|f| draw::draw(f, &app, Instant::now()))
            .context("drawing")?;
        let first = tokio::select! {
            m = rx.recv() => m,
            _ = redraw.tick() => continue,
            // The readers loop until aborted: one that ended has panicked.
            r = &mut fleet.0 => bail!("the fleet reader stopped: {r:?}"),
            r = &mut events.0 => bail!("the events reader stopped: {r:?}"),
        };
        // Everything that arrived together is drawn once.
        let mut batch: Vec<Msg> = first.into_iter().collect();
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
        }
        for msg in batch {
            let effect = match msg {
                Msg::Key(k) => keys::on_key(&mut app, k),
                other => {
                    on_reading(&mut app, other);
                    None
                }
            };
            match effect {
                None => {}
                Some(Effect::Quit) => return Ok(()),
                Some(Effect::Act(what)) => {
                    tokio::spawn(fetch::act(client.clone(), what, tx.clone()));
                }
                Some(Effect::FollowLog(job)) => {
                    log.replace(Task(tokio::spawn(fetch::follow_log(
                        client.clone(),
                        job,
                        tx.clone(),
                    ))));
                }
                Some(Effect::StopLog) => drop(log.take()),
            }
        }
    }
}

/// A reader's news into the screen's state.
fn on_reading(app: &mut App, msg: Msg) {
    match msg {
        Msg::Key(_) | Msg::Resized => {}
        Msg::Fleet(fleet) => app.on_fleet(*fleet, Instant::now()),
        Msg::FleetFailed { error, unreachable } => {
            app.on_fleet_failed(error, unreachable, Instant::now())
        }
        Msg::Event(e) => app.on_event(*e),
        Msg::EventsLive(live) => app.events_live = live,
        Msg::Log { job_id, read } => {
            // A page read for a log closed since is dropped.
            if let Mode::Log(view) = &mut app.mode
                && view.job_id == job_id
            {
                match read {
                    Ok(lines) => {
                        view.error = None;
                        for l in &lines {
                            view.push(l);
                        }
                    }
                    Err(e) => view.error = Some(e),
                }
            }
        }
        Msg::Done(Ok(text)) => app.notice(text, false),
        Msg::Done(Err(text)) => app.notice(text, true),
    }
}

/// Sends the terminal's keys and resizes to the loop until it stops listening. A thread of
/// its own: crossterm's reads block.
fn read_terminal(tx: mpsc::Sender<Msg>) {
    while !tx.is_closed() {
        match event::poll(Duration::from_millis(KEY_POLL_MS)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => return,
        }
        let msg = match event::read() {
            Ok(Event::Key(k)) => Msg::Key(k),
            Ok(Event::Resize(..)) => Msg::Resized,
            Ok(_) => continue,
            Err(_) => return,
        };
        if tx.blocking_send(msg).is_err() {
            return;
        }
    }
}

//! The schedule commands: `gigafactory schedules ls | show | set | rm | pause | resume |
//! trigger`. `set` reads its template from a file (`--job FILE.json`, the body `submit`
//! sends, or `--manifest FILE.toml`); the server checks everything and a refusal lists every
//! problem. `trigger` sends an idempotency key (fresh, or `--key`), so it runs once however
//! often it is sent. Moments are relative to now (or in UTC with `--utc`).

use anyhow::{Context as _, Result};
use clap::builder::PossibleValuesParser;
use gigafactory_core::wire::{RunView, ScheduleBody, ScheduleView, TriggerAnswer, urlencode};
use serde_json::Value;

use super::output::{Cell, Fmt, Style, Table, View};
use crate::Remote;
use crate::client::Client;

#[derive(clap::Subcommand)]
pub enum SchedulesCmd {
    /// List schedules: cron, zone, state, next run, last run.
    Ls,
    /// One schedule: its settings, next five runs (UTC and its zone) and its history.
    Show { name: String },
    /// Create or replace a schedule.
    Set {
        name: String,
        /// Five fields (minute hour day month weekday), or six with seconds first.
        #[arg(long)]
        cron: String,
        /// An IANA zone (Europe/Paris); UTC when absent.
        #[arg(long)]
        tz: Option<String>,
        /// What a tick does while the previous run still runs (the server's default: skip).
        #[arg(long, value_parser = PossibleValuesParser::new(["skip", "queue", "cancel-previous"]))]
        overlap: Option<String>,
        /// What happens to ticks that passed unfired (the server's default: skip).
        #[arg(long, value_parser = PossibleValuesParser::new(["skip", "run-once"]))]
        missed: Option<String>,
        /// How old a missed tick `--missed run-once` still fires, in seconds.
        #[arg(long)]
        catchup_window_s: Option<u64>,
        /// A single-job spec as JSON (what `submit` sends).
        #[arg(
            long,
            conflicts_with = "manifest",
            required_unless_present = "manifest"
        )]
        job: Option<std::path::PathBuf>,
        /// A manifest (TOML or JSON).
        #[arg(long)]
        manifest: Option<std::path::PathBuf>,
    },
    /// Remove a schedule and its history (its jobs stay).
    Rm { name: String },
    /// Pause a schedule: no tick fires until it is resumed.
    Pause { name: String },
    /// Resume a paused schedule.
    Resume { name: String },
    /// Run a schedule now, once: the request carries an idempotency key (a fresh one unless
    /// `--key` gives it), so a retry, by this command or by running it again with the same
    /// `--key`, answers the same run and submits nothing new.
    Trigger {
        name: String,
        /// The idempotency key: 1 to 64 of [A-Za-z0-9._-] (default: a fresh UUID).
        #[arg(long)]
        key: Option<String>,
    },
}

pub async fn schedules(remote: &Remote, view: &View, cmd: SchedulesCmd) -> Result<()> {
    let c = Client::new(remote)?;
    let path = |name: &str| format!("/v1/schedules/{}", urlencode(name));
    match cmd {
        SchedulesCmd::Ls => {
            let answer: Value = c.get("/v1/schedules").await?;
            view.print(answer, |fmt, all: &Vec<ScheduleView>| table(fmt, all))?;
        }
        SchedulesCmd::Show { name } => {
            let answer: Value = c.get(&path(&name)).await?;
            view.print(answer, describe)?;
        }
        SchedulesCmd::Set {
            name,
            cron,
            tz,
            overlap,
            missed,
            catchup_window_s,
            job,
            manifest,
        } => {
            let job = match job {
                Some(file) => {
                    let text = read(&file)?;
                    Some(
                        serde_json::from_str(&text)
                            .with_context(|| format!("{} is not JSON", file.display()))?,
                    )
                }
                None => None,
            };
            let body = ScheduleBody {
                cron,
                time_zone: tz,
                overlap,
                missed,
                catchup_window_s,
                job,
                manifest: manifest.as_deref().map(read).transpose()?,
            };
            let answer: Value = c.put(&path(&name), &body).await?;
            view.print(answer, describe)?;
        }
        SchedulesCmd::Rm { name } => c.delete(&path(&name)).await?,
        SchedulesCmd::Pause { name } => {
            let answer: Value = c.post(&format!("{}/pause", path(&name)), None).await?;
            view.print(answer, describe)?;
        }
        SchedulesCmd::Resume { name } => {
            let answer: Value = c.post(&format!("{}/resume", path(&name)), None).await?;
            view.print(answer, describe)?;
        }
        SchedulesCmd::Trigger { name, key } => {
            let key = key.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
            let answer: Value = c
                .post_idempotent(&format!("{}/trigger", path(&name)), &key)
                .await?;
            view.print(answer, |fmt, t: &TriggerAnswer| {
                let mut out = runs(fmt, std::slice::from_ref(&t.run));
                if !t.created {
                    out.push_str(&format!(
                        "an earlier trigger with key {key} made this run: nothing submitted now\n"
                    ));
                }
                out
            })?;
        }
    }
    Ok(())
}

fn read(file: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

fn state_style(state: &str) -> Style {
    if state == "active" {
        Style::Green
    } else {
        Style::Yellow
    }
}

/// One line a schedule, under a header.
fn table(fmt: &Fmt, all: &[ScheduleView]) -> String {
    let mut t = Table::new(&["NAME", "CRON", "ZONE", "STATE", "NEXT RUN", "LAST RUN"]);
    for s in all {
        let next = s.next_runs.first().map_or("-".to_owned(), |n| fmt.at(n.at));
        let last = s.history.first().map_or("-".to_owned(), |r| {
            format!("{} {}", r.outcome, fmt.at(r.at))
        });
        t.row(vec![
            s.name.as_str().into(),
            s.cron.as_str().into(),
            s.time_zone.as_str().into(),
            Cell::styled(s.state.clone(), state_style(&s.state)),
            next.into(),
            last.into(),
        ]);
    }
    t.render(fmt)
}

/// A schedule as `schedules show` prints it.
fn describe(fmt: &Fmt, s: &ScheduleView) -> String {
    let mut out = format!("schedule   {}\n", s.name);
    out.push_str(&format!("cron       {} ({})\n", s.cron, s.time_zone));
    let paused = match (&s.paused_by, s.paused_at) {
        (Some(by), Some(at)) => format!(" by {by} {}", fmt.at(at)),
        _ => String::new(),
    };
    out.push_str(&format!(
        "state      {}{paused}\n",
        fmt.paint(state_style(&s.state), &s.state)
    ));
    out.push_str(&format!(
        "policies   overlap {}, missed {} (catch-up window {}s)\n",
        s.overlap, s.missed, s.catchup_window_s
    ));
    let target = if s.manifest.is_some() {
        "a manifest"
    } else {
        "a job"
    };
    out.push_str(&format!("submits    {target}\n"));
    for (i, n) in s.next_runs.iter().enumerate() {
        let label = if i == 0 { "next runs" } else { "" };
        out.push_str(&format!(
            "{label:<10} {}  {}  ({})\n",
            n.utc,
            n.local,
            fmt.at(n.at)
        ));
    }
    if s.history.is_empty() {
        out.push_str("history    no runs yet\n");
    } else {
        out.push_str("history\n");
        out.push_str(&runs(fmt, &s.history));
    }
    out
}

/// Runs, newest first, under a header.
fn runs(fmt: &Fmt, runs: &[RunView]) -> String {
    let mut t = Table::new(&["#", "TICK", "FIRED", "TRIGGER", "OUTCOME", "JOBS / WHY"]);
    for r in runs {
        let style = match r.outcome.as_str() {
            "submitted" | "cancelled_previous" => Style::Green,
            "failed" => Style::Red,
            _ => Style::Yellow,
        };
        let what = if r.jobs.is_empty() {
            r.reason.clone().unwrap_or_default()
        } else {
            let ids: Vec<String> = r.jobs.iter().map(|j| j.0.to_string()).collect();
            ids.join(" ")
        };
        let trigger = match &r.by {
            Some(by) => format!("manual ({by})"),
            None => r.trigger.clone(),
        };
        t.row(vec![
            r.seq.to_string().into(),
            fmt.at(r.tick).into(),
            fmt.at(r.at).into(),
            trigger.into(),
            Cell::styled(r.outcome.clone(), style),
            what.into(),
        ]);
    }
    t.render(fmt)
}

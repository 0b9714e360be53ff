//! The job commands: `gigafactory submit` and `gigafactory jobs ls | show | events | logs |
//! cancel | requeue | reject | retry` (`ship` and `request-changes` are `review.rs`,
//! `artifacts` and `download` are `artifacts.rs`, `explain` is `scheduling.rs`). `show` reads a job as people do (its state, why
//! it waits, its attempts and what it cost, by model and factory time, against its own cost
//! budget); `-o json` prints the API's answer as it came. `logs` and `submit --wait` follow
//! jobs to their end (`follow.rs`).

use std::path::Path;

use anyhow::{Context, Result};
use clap::builder::PossibleValuesParser;
use gigafactory_core::budget::format_usd;
use gigafactory_core::job::JobState;
use gigafactory_core::wire::{ActionBody, Event, JobPage, JobView, ManifestResponse, urlencode};
use serde_json::Value;

use super::output::{Cell, Fmt, Style, Table, View, print_json};
use crate::Remote;
use crate::client::Client;

#[derive(clap::Subcommand)]
pub enum JobsCmd {
    /// List jobs, a page at a time (`--cursor` for the next).
    Ls {
        /// Only jobs in this state.
        #[arg(long, value_parser = PossibleValuesParser::new(JobState::NAMES))]
        state: Option<String>,
        #[arg(long)]
        product: Option<String>,
        /// Substring of the title or key.
        #[arg(long)]
        q: Option<String>,
        /// Only jobs waiting for an operator's answer to their question.
        #[arg(long)]
        waiting_for_input: bool,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Start after this job: the cursor the previous page printed.
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        view: View,
    },
    /// Show one job: its state and for how long, why it waits, its attempts and what it cost.
    Show {
        id: String,
        #[command(flatten)]
        view: View,
    },
    /// Why a job is not running: the reason, every factory with what keeps it from the job
    /// and its score, and with `--weight age=2` what other weights would change.
    Explain {
        id: String,
        #[arg(long = "weight", value_name = "NAME=VALUE")]
        weights: Vec<String>,
        #[command(flatten)]
        view: View,
    },
    /// A job's timeline: every transition, when, by whom.
    Events {
        id: String,
        #[command(flatten)]
        view: View,
    },
    /// A job's output (its stderr on stderr); `-f` follows it live, across coordinator
    /// restarts, and exits 0 if the job succeeded, non-zero if it ended dead, cancelled or
    /// rejected.
    Logs {
        id: String,
        #[arg(short, long)]
        follow: bool,
    },
    /// Stop a job for good: a leased or running attempt is told to stop, a waiting job never
    /// runs, and its pending children are cancelled with it. Applies to any job that has not
    /// ended (`retry` brings a cancelled one back).
    Cancel {
        id: String,
        #[command(flatten)]
        why: Why,
        #[command(flatten)]
        view: View,
    },
    /// Put a job back in the queue now, from any state but pending or queued, without
    /// counting a failure: a leased or running job is taken from its factory (told to stop),
    /// a failed one skips its backoff, a job in review runs again, an ended one starts a new
    /// life. For a job stuck on a bad machine, or to run it again.
    Requeue {
        id: String,
        #[command(flatten)]
        why: Why,
        #[command(flatten)]
        view: View,
    },
    /// Approve a job in review as your token; the last approval it needs ships it.
    Ship {
        id: String,
        #[command(flatten)]
        why: Why,
        #[command(flatten)]
        view: View,
    },
    /// End a job in review as rejected.
    Reject {
        id: String,
        #[command(flatten)]
        why: Why,
        #[command(flatten)]
        view: View,
    },
    /// Send a job in review back for a new attempt, which gets the reason as
    /// GF_REVIEW_FEEDBACK.
    RequestChanges {
        id: String,
        /// What to change (1 to 2000 bytes).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        view: View,
    },
    /// Give a job that failed, died, was cancelled or rejected a new life with its failure
    /// count reset (a failed one skips its backoff). Unlike requeue, it never takes a job
    /// from a factory: a running job or one in review is refused.
    Retry {
        id: String,
        #[command(flatten)]
        why: Why,
        #[command(flatten)]
        view: View,
    },
    /// Answer a job's open question: one of its choices (or free text when it offers none).
    Answer {
        id: String,
        answer: String,
        /// A note kept with the answer in the job's timeline.
        #[arg(long)]
        note: Option<String>,
        /// The id of the question answered (as `jobs show --output json` shows it); without
        /// it, the question open now, read first. Refused if the job asks another by then.
        #[arg(long = "question", value_name = "ID")]
        question: Option<String>,
        #[command(flatten)]
        view: View,
    },
    /// A job's artifacts: every attempt's files.
    Artifacts {
        id: String,
        #[command(flatten)]
        view: View,
    },
    /// Save one of a job's artifacts (the latest attempt's, unless --attempt).
    Download {
        id: String,
        name: String,
        #[arg(long)]
        attempt: Option<u32>,
        /// Where to save it (`-` for standard output); by default its name, here. An existing
        /// file is never overwritten.
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
    },
}

pub async fn submit(remote: &Remote, view: &View, file: &Path, wait: bool) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let media_type = if text.trim_start().starts_with('{') {
        "application/json"
    } else {
        "application/toml"
    };
    let c = Client::new(remote)?;
    let answer: Value = c.post_raw("/v1/manifests", media_type, text).await?;
    let made: ManifestResponse =
        serde_json::from_value(answer.clone()).context("unexpected answer")?;
    if view.json() {
        print_json(&answer)?;
    } else {
        let mut t = Table::new(&["ID", "KEY"]);
        for (key, id) in &made.jobs {
            t.row(vec![id.to_string().into(), key.as_str().into()]);
        }
        print!("{}", t.render(&view.fmt()));
    }
    if wait {
        let ids: Vec<String> = made.jobs.iter().map(|(_, id)| id.to_string()).collect();
        super::follow::wait_for_all(&c, &ids).await?;
    }
    Ok(())
}

/// Jobs under a header: id, state (coloured), stage, priority, attempts, last change, title.
pub(super) fn jobs_table(fmt: &Fmt, jobs: &[JobView]) -> String {
    let mut t = Table::new(&[
        "ID", "STATE", "STAGE", "PRI", "ATTEMPTS", "UPDATED", "TITLE",
    ])
    .right(&[3, 4]);
    for j in jobs {
        t.row(vec![
            j.id.to_string().into(),
            Cell::styled(super::questions::state_cell(j), Style::of_state(&j.state)),
            j.stage.as_deref().unwrap_or("-").into(),
            j.priority.to_string().into(),
            format!("{}/{}", j.attempts, j.max_attempts).into(),
            fmt.at(j.updated_at).into(),
            j.title.as_str().into(),
        ]);
    }
    t.render(fmt)
}

/// An action's answer: the job as it is now.
pub(super) fn print_job(view: &View, answer: Value) -> Result<()> {
    view.print(answer, |fmt, j: &JobView| {
        jobs_table(fmt, std::slice::from_ref(j))
    })
}

pub async fn jobs(remote: &Remote, cmd: JobsCmd) -> Result<()> {
    let c = Client::new(remote)?;
    match cmd {
        JobsCmd::Ls {
            state,
            product,
            q,
            waiting_for_input,
            limit,
            cursor,
            view,
        } => {
            let mut query = vec![format!("limit={limit}")];
            if waiting_for_input {
                query.push("waiting_for_input=true".into());
            }
            for (k, v) in [
                ("state", state),
                ("product", product),
                ("q", q),
                ("cursor", cursor),
            ] {
                if let Some(v) = v {
                    query.push(format!("{k}={}", urlencode(&v)));
                }
            }
            let answer: Value = c.get(&format!("/v1/jobs?{}", query.join("&"))).await?;
            let next = answer["next_cursor"].as_str().map(str::to_owned);
            view.print(answer, |fmt, page: &JobPage| jobs_table(fmt, &page.jobs))?;
            // On stderr, so a pipe of the table (or of the JSON, which has it) stays clean.
            if let Some(next) = next {
                eprintln!("(more: --cursor {next})");
            }
        }
        JobsCmd::Show { id, view } => {
            let answer: Value = c.get(&format!("/v1/jobs/{id}")).await?;
            view.print(answer, describe)?;
        }
        JobsCmd::Events { id, view } => {
            let answer: Value = c.get(&format!("/v1/jobs/{id}/events")).await?;
            view.print(answer, |fmt, events: &Vec<Event>| timeline(fmt, events))?;
        }
        JobsCmd::Explain { id, weights, view } => {
            super::scheduling::explain(&c, &view, &id, &weights).await?
        }
        JobsCmd::Logs { id, follow } => super::follow::logs(&c, &id, follow).await?,
        JobsCmd::Cancel { id, why, view } => action(&c, &view, &id, "cancel", why).await?,
        JobsCmd::Requeue { id, why, view } => action(&c, &view, &id, "requeue", why).await?,
        JobsCmd::Ship { id, why, view } => super::review::ship(&c, &view, &id, why).await?,
        JobsCmd::RequestChanges { id, reason, view } => {
            super::review::request_changes(&c, &view, &id, reason).await?
        }
        JobsCmd::Reject { id, why, view } => action(&c, &view, &id, "reject", why).await?,
        JobsCmd::Retry { id, why, view } => action(&c, &view, &id, "retry", why).await?,
        JobsCmd::Answer {
            id,
            answer,
            note,
            question,
            view,
        } => super::questions::answer(&c, &view, &id, question, answer, note).await?,
        JobsCmd::Artifacts { id, view } => super::artifacts::list(&c, &view, &id).await?,
        JobsCmd::Download {
            id,
            name,
            attempt,
            output,
        } => super::artifacts::download(&c, &id, &name, attempt, output).await?,
    }
    Ok(())
}

/// A job's events under a header, each with when (relative, or UTC with `--utc`).
fn timeline(fmt: &Fmt, events: &[Event]) -> String {
    let mut t =
        Table::new(&["SEQ", "AT", "EVENT", "EPOCH", "STATE", "BY", "DETAIL"]).right(&[0, 3]);
    for e in events {
        t.row(vec![
            e.seq.to_string().into(),
            fmt.at(e.at).into(),
            e.kind.to_string().into(),
            e.epoch.to_string().into(),
            Cell::styled(&e.state, Style::of_state(&e.state)),
            e.actor.to_string().into(),
            e.detail.clone().unwrap_or_default().into(),
        ]);
    }
    t.render(fmt)
}

/// A job as `jobs show` prints it: one fact a line, the cost last.
fn describe(fmt: &Fmt, j: &JobView) -> String {
    let mut lines: Vec<(&str, String)> = vec![
        ("job", format!("{}  {}", j.id, j.title)),
        ("key", format!("{} (product {})", j.key, j.product)),
    ];
    if !j.labels.is_empty() {
        lines.push(("labels", j.labels.join(", ")));
    }
    let stage = j
        .stage
        .as_ref()
        .map(|s| format!(", stage {s}"))
        .unwrap_or_default();
    lines.push((
        "state",
        format!(
            "{} {}{stage}, priority {}",
            fmt.paint(Style::of_state(&j.state), &j.state),
            state_since(fmt, j),
            j.priority
        ),
    ));
    lines.push(("created", fmt.at(j.created_at)));
    if let Some(at) = j.ready_at.filter(|at| *at > fmt.now) {
        lines.push(("ready", format!("may be placed {}", fmt.at(at))));
    }
    if let Some(review) = super::review::review_line(fmt, j) {
        lines.push(("review", review));
    }
    if let Some(feedback) = &j.review_feedback {
        lines.push(("feedback", feedback.clone()));
    }
    if let Some(question) = super::questions::question_line(fmt, j) {
        lines.push(("question", question));
    }
    match (&j.held, &j.waiting) {
        (Some(held), _) => lines.push(("held", held.clone())),
        (None, Some(waiting)) => lines.push(("waiting", waiting.clone())),
        (None, None) => {}
    }
    lines.push((
        "attempts",
        format!(
            "{} of {} ({} failed), epoch {}",
            j.attempts, j.max_attempts, j.failures, j.epoch
        ),
    ));
    if j.sandbox != gigafactory_core::sandbox::SandboxSpec::default() {
        lines.push(("sandbox", j.sandbox.to_string()));
    }
    if let Some(repo) = &j.repo {
        lines.push(("repo", repo.to_string()));
    }
    if let Some(l) = &j.lease {
        lines.push((
            "lease",
            format!(
                "factory {}, epoch {}, granted {}, expires {}",
                l.factory_id,
                l.epoch,
                fmt.at(l.granted_at),
                fmt.at(l.expires_at)
            ),
        ));
    }
    if let Some(error) = &j.last_error {
        let code = j
            .exit_code
            .map(|c| format!(" (exit {c})"))
            .unwrap_or_default();
        lines.push(("error", format!("{error}{code}")));
    }
    if let Some(checkpoint) = &j.checkpoint {
        lines.push(("checkpoint", checkpoint.clone()));
    }
    let cap = match j.cost_budget_micros {
        Some(cap) => format!(" of its {} cost budget", format_usd(cap)),
        None => " (no cost budget)".to_owned(),
    };
    lines.push(("cost", format!("{}{cap}", format_usd(j.cost.total_micros))));
    let mut out: String = lines
        .iter()
        .map(|(label, value)| format!("{label:<10} {value}\n"))
        .collect();
    for m in &j.cost.models {
        out.push_str(&format!(
            "  {:<24} {:>12} tokens in {:>12} out {:>12}\n",
            m.model,
            m.input_tokens,
            m.output_tokens,
            format_usd(m.micros)
        ));
    }
    out.push_str(&format!(
        "  {:<24} {:>39} {:>12}\n",
        "factory time",
        "",
        format_usd(j.cost.factory_micros)
    ));
    out
}

/// How long a job has been in its state: an attempt since its lease was granted, a job
/// that ended since its last change ("3m ago"), any other since its last change ("for 2m").
fn state_since(fmt: &Fmt, j: &JobView) -> String {
    match (&j.lease, super::follow::ended(&j.state)) {
        (Some(l), _) => fmt.since(l.granted_at),
        (None, Some(_)) if fmt.utc => format!("at {}", fmt.at(j.updated_at)),
        (None, Some(_)) => fmt.at(j.updated_at),
        (None, None) => fmt.since(j.updated_at),
    }
}

async fn action(c: &Client, view: &View, id: &str, name: &str, why: Why) -> Result<()> {
    let answer: Value = c
        .post(
            &format!("/v1/jobs/{id}/actions/{name}"),
            why.body()?.as_ref(),
        )
        .await?;
    print_job(view, answer)
}

/// Why an operator acts: kept in the action's event, shown on the job's timeline.
#[derive(clap::Args, Debug)]
pub struct Why {
    /// Why you act, up to 1000 bytes; the job's timeline shows it.
    #[arg(long)]
    reason: Option<String>,
}

impl Why {
    /// The action's body: none without a reason.
    pub fn body(self) -> Result<Option<Value>> {
        self.reason
            .map(|reason| {
                serde_json::to_value(ActionBody {
                    reason: Some(reason),
                })
            })
            .transpose()
            .map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(extra: Value) -> JobView {
        let mut v = serde_json::json!({
            "id": "0190a0b0-0000-7000-8000-000000000001", "key": "fix-1", "title": "fix the bug",
            "product": "ops", "state": "queued", "priority": 50, "capabilities": [],
            "payload": {"command": "true"}, "parents": [], "epoch": 3, "attempts": 1,
            "failures": 1, "max_attempts": 3, "preemptible": false, "review": false,
            "created_at": 0, "updated_at": 0
        });
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn shows_a_jobs_cost_by_model_and_factory_time_against_its_budget() {
        let shown = describe(
            &Fmt::plain(0),
            &job(serde_json::json!({
                "cost_budget_micros": 5_000_000,
                "cost": {
                    "total_micros": 1_504_200, "factory_micros": 1_500_000,
                    "models": [{"model": "sonnet", "input_tokens": 1200, "output_tokens": 300,
                                "micros": 4_200}]
                }
            })),
        );
        assert!(
            shown.contains("cost       $1.5042 of its $5.00 cost budget\n"),
            "{shown}"
        );
        let sonnet = shown.lines().find(|l| l.contains("sonnet")).unwrap();
        let factory = shown.lines().find(|l| l.contains("factory time")).unwrap();
        assert!(sonnet.contains("1200 tokens in") && sonnet.contains("300 out"));
        assert!(sonnet.ends_with("$0.0042") && factory.ends_with("$1.50"));
        assert_eq!(sonnet.len(), factory.len(), "amounts line up:\n{shown}");
        assert!(!shown.contains("held"), "{shown}");
    }

    #[test]
    fn shows_a_sandbox_only_when_it_differs_from_the_default() {
        let tight = job(serde_json::json!({
            "sandbox": {"network": false, "memory_mib": 64, "cpu_millis": 1500}
        }));
        let shown = describe(&Fmt::plain(0), &tight);
        assert!(
            shown.contains("sandbox    network off · 64 MiB · 1.5 CPU\n"),
            "{shown}"
        );
        assert!(!describe(&Fmt::plain(0), &job(serde_json::json!({}))).contains("sandbox"));
    }

    #[test]
    fn shows_the_repository_and_revision_a_job_works_at() {
        let shown = describe(
            &Fmt::plain(0),
            &job(serde_json::json!({
                "repo": {"url": "https://example.com/acme/api.git", "rev": "main"}
            })),
        );
        assert!(
            shown.contains("repo       https://example.com/acme/api.git @ main\n"),
            "{shown}"
        );
        assert!(!describe(&Fmt::plain(0), &job(serde_json::json!({}))).contains("repo"));
    }

    #[test]
    fn says_why_a_held_job_waits() {
        let why = "budget ops-daily exhausted: $50.00 of $50.00, resets 2026-12-03 00:00 UTC";
        let shown = describe(&Fmt::plain(0), &job(serde_json::json!({ "held": why })));
        assert!(shown.contains(&format!("held       {why}\n")), "{shown}");
        assert!(
            shown.contains("cost       $0.00 (no cost budget)\n"),
            "{shown}"
        );
    }

    #[test]
    fn shows_how_long_a_job_has_been_in_its_state_never_epoch_milliseconds() {
        let now = 1_796_225_400_000;
        let queued =
            job(serde_json::json!({ "created_at": now - 300_000, "updated_at": now - 130_000 }));
        let shown = describe(&Fmt::plain(now), &queued);
        assert!(
            shown.contains("state      queued for 2m 10s, priority 50\n"),
            "{shown}"
        );
        assert!(shown.contains("created    5m ago\n"), "{shown}");
        let running = job(serde_json::json!({
            "state": "running", "stage": "coding", "created_at": now - 60_000, "updated_at": now,
            "lease": {"factory_id": "0190a0b0-0000-7000-8000-000000000002", "epoch": 3,
                      "granted_at": now - 42_000, "expires_at": now + 8_000}
        }));
        let shown = describe(&Fmt::plain(now), &running);
        assert!(
            shown.contains("state      running for 42s, stage coding, priority 50"),
            "{shown}"
        );
        assert!(shown.contains("granted 42s ago, expires in 8s"), "{shown}");
        let utc = Fmt {
            utc: true,
            ..Fmt::plain(now)
        };
        let shown = describe(
            &utc,
            &job(serde_json::json!({ "state": "dead", "updated_at": now })),
        );
        assert!(
            shown.contains("state      dead at 2026-12-02T15:30:00Z, priority 50"),
            "{shown}"
        );
        assert!(!shown.contains(&now.to_string()), "{shown}");
    }
}

//! The job commands: `gigafactory submit` and `gigafactory jobs ls | show | events | logs |
//! cancel | requeue | reject | retry` (`ship` and `request-changes` are `review.rs`,
//! `artifacts` and `download` are `artifacts.rs`, `explain` is `scheduling.rs`). `show` reads a job as people do (its state, why
//! it waits, its attempts and what it cost, by model and factory time, against its own cost
//! budget); `--json` prints the API's answer as it came.

use std::path::Path;

use anyhow::{Context, Result};
use gigafactory_core::budget::{format_usd, format_utc};
use gigafactory_core::wire::{Event, JobPage, JobView, ManifestResponse};
use serde_json::Value;

use crate::Remote;
use gigafactory_core::wire::urlencode;

use crate::client::Client;

#[derive(clap::Subcommand)]
pub enum JobsCmd {
    /// List jobs.
    Ls {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        product: Option<String>,
        /// Substring of the title or key.
        #[arg(long)]
        q: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show one job: its state, why it waits, its attempts and what it cost.
    Show {
        id: String,
        /// Print the API's JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Why a job is not running: the reason, every factory with what keeps it from the job
    /// and its score, and with `--weight age=2` what other weights would change.
    Explain {
        id: String,
        #[arg(long = "weight", value_name = "NAME=VALUE")]
        weights: Vec<String>,
        /// Print the API's JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// A job's timeline.
    Events {
        id: String,
    },
    /// A job's output; `-f` follows it live.
    Logs {
        id: String,
        #[arg(short, long)]
        follow: bool,
    },
    Cancel {
        id: String,
    },
    Requeue {
        id: String,
    },
    /// Approve a job in review as your token; the last approval it needs ships it.
    Ship {
        id: String,
    },
    /// End a job in review as rejected.
    Reject {
        id: String,
    },
    /// Send a job in review back for a new attempt, which gets the reason as
    /// GF_REVIEW_FEEDBACK.
    RequestChanges {
        id: String,
        /// What to change (1 to 2000 bytes).
        #[arg(long)]
        reason: String,
    },
    Retry {
        id: String,
    },
    /// A job's artifacts: every attempt's files.
    Artifacts {
        id: String,
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

pub async fn submit(remote: &Remote, file: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let media_type = if text.trim_start().starts_with('{') {
        "application/json"
    } else {
        "application/toml"
    };
    let made: ManifestResponse = Client::new(remote)?
        .post_raw("/v1/manifests", media_type, text)
        .await?;
    for (key, id) in made.jobs {
        println!("{id}  {key}");
    }
    Ok(())
}

pub(super) fn print_job_line(j: &JobView) {
    println!(
        "{}  {:<10} {:<10} p{:<4} {}",
        j.id,
        j.state,
        j.stage.as_deref().unwrap_or("-"),
        j.priority,
        j.title
    );
}

pub async fn jobs(remote: &Remote, cmd: JobsCmd) -> Result<()> {
    let c = Client::new(remote)?;
    match cmd {
        JobsCmd::Ls {
            state,
            product,
            q,
            limit,
        } => {
            let mut query = vec![format!("limit={limit}")];
            for (k, v) in [("state", state), ("product", product), ("q", q)] {
                if let Some(v) = v {
                    query.push(format!("{k}={}", urlencode(&v)));
                }
            }
            let page: JobPage = c.get(&format!("/v1/jobs?{}", query.join("&"))).await?;
            for j in &page.jobs {
                print_job_line(j);
            }
            if let Some(next) = page.next_cursor {
                eprintln!("(more: --cursor {next})");
            }
        }
        JobsCmd::Show { id, json: true } => {
            let j: Value = c.get(&format!("/v1/jobs/{id}")).await?;
            println!("{}", serde_json::to_string_pretty(&j)?);
        }
        JobsCmd::Show { id, json: false } => {
            let j: JobView = c.get(&format!("/v1/jobs/{id}")).await?;
            print!("{}", describe(&j));
        }
        JobsCmd::Events { id } => {
            let events: Vec<Event> = c.get(&format!("/v1/jobs/{id}/events")).await?;
            for e in events {
                println!(
                    "{:>4} {} {:<16} epoch {:<3} {:<10} {} {}",
                    e.seq,
                    e.at,
                    e.kind,
                    e.epoch,
                    e.state,
                    e.actor,
                    e.detail.unwrap_or_default()
                );
            }
        }
        JobsCmd::Explain { id, weights, json } => {
            super::scheduling::explain(&c, &id, &weights, json).await?
        }
        JobsCmd::Logs { id, follow } => logs(&c, &id, follow).await?,
        JobsCmd::Cancel { id } => action(&c, &id, "cancel").await?,
        JobsCmd::Requeue { id } => action(&c, &id, "requeue").await?,
        JobsCmd::Ship { id } => super::review::ship(&c, &id).await?,
        JobsCmd::RequestChanges { id, reason } => {
            super::review::request_changes(&c, &id, reason).await?
        }
        JobsCmd::Reject { id } => action(&c, &id, "reject").await?,
        JobsCmd::Retry { id } => action(&c, &id, "retry").await?,
        JobsCmd::Artifacts { id } => super::artifacts::list(&c, &id).await?,
        JobsCmd::Download {
            id,
            name,
            attempt,
            output,
        } => super::artifacts::download(&c, &id, &name, attempt, output).await?,
    }
    Ok(())
}

/// A job as `jobs show` prints it: one fact a line, the cost last.
fn describe(j: &JobView) -> String {
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
        format!("{}{stage}, priority {}", j.state, j.priority),
    ));
    if let Some(review) = super::review::review_line(j) {
        lines.push(("review", review));
    }
    if let Some(feedback) = &j.review_feedback {
        lines.push(("feedback", feedback.clone()));
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
    if let Some(l) = &j.lease {
        lines.push((
            "lease",
            format!(
                "factory {}, epoch {}, expires {}",
                l.factory_id,
                l.epoch,
                format_utc(l.expires_at)
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

async fn action(c: &Client, id: &str, name: &str) -> Result<()> {
    let j: JobView = c
        .post(&format!("/v1/jobs/{id}/actions/{name}"), None)
        .await?;
    print_job_line(&j);
    Ok(())
}

#[derive(serde::Deserialize)]
struct Line {
    attempt: u32,
    seq: u64,
    data: String,
}

/// Prints stored output, page after page (a page is bounded in bytes); with `follow`, polls
/// for new lines until the job is terminal.
async fn logs(c: &Client, id: &str, follow: bool) -> Result<()> {
    let mut after: Option<(u32, u64)> = None;
    loop {
        let path = match after {
            Some((a, s)) => format!("/v1/jobs/{id}/logs?after={a}:{s}"),
            None => format!("/v1/jobs/{id}/logs"),
        };
        let lines: Vec<Line> = c.get(&path).await?;
        for l in &lines {
            print!("{}", l.data);
            after = Some((l.attempt, l.seq));
        }
        if lines.is_empty() {
            if !follow {
                return Ok(());
            }
            let j: JobView = c.get(&format!("/v1/jobs/{id}")).await?;
            if matches!(
                j.state.as_str(),
                "succeeded" | "shipped" | "rejected" | "dead" | "cancelled" | "review"
            ) {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
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
        let shown = describe(&job(serde_json::json!({
            "cost_budget_micros": 5_000_000,
            "cost": {
                "total_micros": 1_504_200, "factory_micros": 1_500_000,
                "models": [{"model": "sonnet", "input_tokens": 1200, "output_tokens": 300,
                            "micros": 4_200}]
            }
        })));
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
    fn says_why_a_held_job_waits() {
        let why = "budget ops-daily exhausted: $50.00 of $50.00, resets 2026-12-03 00:00 UTC";
        let shown = describe(&job(serde_json::json!({ "held": why })));
        assert!(shown.contains(&format!("held       {why}\n")), "{shown}");
        assert!(
            shown.contains("cost       $0.00 (no cost budget)\n"),
            "{shown}"
        );
    }
}

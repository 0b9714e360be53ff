//! The tracker commands: `gigafactory intake test SOURCE FILE` (what a payload would create,
//! creating nothing), `intake items SOURCE`, `intake item SOURCE ID` (an item with its jobs
//! and what its tracker was told) and `intake redeliver DELIVERY` (a dead letter sent again).

use std::path::PathBuf;

use anyhow::{Context, Result};
use gigafactory_core::manifest::JobSpec;
use gigafactory_core::tracker::{Delivery, DeliveryStatus, ItemRecord};
use gigafactory_core::wire::{JobView, urlencode};
use serde::Deserialize;
use serde_json::Value;

use super::output::{Fmt, Table, View};
use crate::Remote;
use crate::client::Client;

#[derive(clap::Subcommand)]
pub enum IntakeCmd {
    /// Show the jobs a tracker payload (the webhook's JSON body) would create; nothing is created.
    Test { source: String, file: PathBuf },
    /// A source's items, with their state and jobs.
    Items {
        source: String,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One item: its link, its jobs, and each delivery to its tracker.
    Item { source: String, id: String },
    /// Send a dead-lettered delivery again (same idempotency key).
    Redeliver { delivery: String },
}

#[derive(Deserialize)]
struct ItemView {
    item: ItemRecord,
    jobs: Vec<JobView>,
    deliveries: Vec<Delivery>,
}

pub async fn intake(remote: &Remote, view: &View, cmd: IntakeCmd) -> Result<()> {
    let c = Client::new(remote)?;
    match cmd {
        IntakeCmd::Test { source, file } => {
            let body = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let path = format!("/v1/intake/{}/test", urlencode(&source));
            let answer: Value = c.post_raw(&path, "application/json", body).await?;
            view.print(answer, |_, specs: &Vec<JobSpec>| describe_plan(specs))?;
        }
        IntakeCmd::Items { source, limit } => {
            let path = format!("/v1/items/{}?limit={limit}", urlencode(&source));
            let answer: Value = c.get(&path).await?;
            view.print(answer, |fmt, items: &Vec<ItemRecord>| {
                let mut t = Table::new(&["ID", "STATE", "JOBS", "UPDATED", "TITLE"]).right(&[2]);
                for i in items {
                    let state = if i.open { "open" } else { "closed" };
                    t.row(vec![
                        i.id.as_str().into(),
                        state.into(),
                        i.jobs.len().to_string().into(),
                        fmt.at(i.updated_at).into(),
                        i.title.as_str().into(),
                    ]);
                }
                t.render(fmt)
            })?;
        }
        IntakeCmd::Item { source, id } => {
            let path = format!("/v1/items/{}/{}", urlencode(&source), urlencode(&id));
            let answer: Value = c.get(&path).await?;
            view.print(answer, describe_item)?;
        }
        IntakeCmd::Redeliver { delivery } => {
            let path = format!("/v1/deliveries/{}/redeliver", urlencode(&delivery));
            let answer: Value = c.post(&path, None).await?;
            view.print(answer, |_, d: &Delivery| {
                format!("{} queued again ({} tries so far)\n", d.id, d.tries)
            })?;
        }
    }
    Ok(())
}

/// The jobs a payload would create, one per line with what places them.
fn describe_plan(specs: &[JobSpec]) -> String {
    let mut out = format!("{} job(s) would be created:\n", specs.len());
    for s in specs {
        out.push_str(&format!(
            "  {:<16} {}  product {}, priority {}",
            s.key, s.title, s.product, s.priority
        ));
        if !s.capabilities.is_empty() {
            out.push_str(&format!(", needs {}", s.capabilities.join(",")));
        }
        if !s.deps.is_empty() {
            out.push_str(&format!(", after {}", s.deps.join(",")));
        }
        if s.review {
            out.push_str(", review");
        }
        out.push('\n');
    }
    out
}

fn describe_item(fmt: &Fmt, v: &ItemView) -> String {
    let i = &v.item;
    let state = if i.open { "open" } else { "closed" };
    let mut out = format!(
        "{}:{}  {state}  {}\n  {}\n  revision {}, updated {}\n",
        i.source,
        i.id,
        i.title,
        i.url,
        i.revision,
        fmt.at(i.updated_at)
    );
    out.push_str("jobs:\n");
    for j in &v.jobs {
        out.push_str(&format!("  {}  {:<10} {}\n", j.id, j.state, j.title));
    }
    out.push_str("deliveries:\n");
    for d in &v.deliveries {
        let status = match d.status {
            DeliveryStatus::Pending => format!("pending, next try {}", fmt.at(d.next_at)),
            DeliveryStatus::Delivered => "delivered".to_owned(),
            DeliveryStatus::DeadLetter => "dead letter (intake redeliver ID)".to_owned(),
        };
        out.push_str(&format!(
            "  {}  {:<10} {status}; {} tries, last answer: {}\n",
            d.id,
            d.echo.event,
            d.tries,
            d.last_answer.as_deref().unwrap_or("-")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_lists_each_job_with_what_places_it() {
        let spec: JobSpec = serde_json::from_value(serde_json::json!({
            "key": "fix", "title": "Fix #42", "product": "app", "priority": 70,
            "payload": {"prompt": "fix it"}, "capabilities": ["linux", "rust"],
            "review": true
        }))
        .unwrap();
        let text = describe_plan(&[spec]);
        assert!(text.starts_with("1 job(s) would be created:\n"), "{text}");
        assert!(
            text.contains(
                "fix              Fix #42  product app, priority 70, needs linux,rust, review"
            ),
            "{text}"
        );
    }
}

//! The CLI's client commands: thin calls of the REST API that print what comes back. An error
//! response prints its `error` code and message and exits non-zero.

use std::path::Path;

use anyhow::{Context, Result, bail};
use gigafactory_core::wire::{ErrorBody, Event, JobPage, JobView, ManifestResponse};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Remote;

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
    /// Show one job.
    Show {
        id: String,
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
    Ship {
        id: String,
    },
    Reject {
        id: String,
    },
    Retry {
        id: String,
    },
}

#[derive(clap::Subcommand)]
pub enum FactoriesCmd {
    Ls,
    /// Replace a factory's token (prints the new one).
    Rotate {
        id: String,
    },
    Revoke {
        id: String,
    },
    Drain {
        id: String,
    },
}

#[derive(clap::Subcommand)]
pub enum TokensCmd {
    /// Mint a token for admin, operator, viewer or enrollment.
    Create {
        #[arg(long)]
        role: String,
        #[arg(long)]
        name: String,
    },
    /// Mint an enrollment token for a new factory.
    Enrollment,
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(remote: &Remote) -> Self {
        Client {
            http: reqwest::Client::new(),
            base: remote.coordinator.trim_end_matches('/').to_string(),
            token: remote.token.clone(),
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn send<T: DeserializeOwned>(&self, r: reqwest::RequestBuilder) -> Result<T> {
        let resp = r
            .send()
            .await
            .with_context(|| format!("cannot reach the coordinator at {}", self.base))?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            match serde_json::from_str::<ErrorBody>(&text) {
                Ok(e) => {
                    let details = e
                        .details
                        .iter()
                        .map(|d| format!("\n  {d}"))
                        .collect::<String>();
                    bail!("{} ({}): {}{details}", e.error, status.as_u16(), e.message)
                }
                Err(_) => bail!("{status}: {text}"),
            }
        }
        let text = if text.is_empty() {
            "null".to_string()
        } else {
            text
        };
        serde_json::from_str(&text).with_context(|| format!("unexpected answer: {text}"))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.req(reqwest::Method::GET, path)).await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: Option<&Value>) -> Result<T> {
        let r = self.req(reqwest::Method::POST, path);
        let r = match body {
            Some(b) => r.json(b),
            None => r,
        };
        self.send(r).await
    }

    pub async fn post_text<T: DeserializeOwned>(&self, path: &str, body: String) -> Result<T> {
        self.send(
            self.req(reqwest::Method::POST, path)
                .header("content-type", "text/plain")
                .body(body),
        )
        .await
    }
}

pub async fn submit(remote: &Remote, file: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let made: ManifestResponse = Client::new(remote).post_text("/v1/manifests", text).await?;
    for (key, id) in made.jobs {
        println!("{id}  {key}");
    }
    Ok(())
}

fn print_job_line(j: &JobView) {
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
    let c = Client::new(remote);
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
        JobsCmd::Show { id } => {
            let j: Value = c.get(&format!("/v1/jobs/{id}")).await?;
            println!("{}", serde_json::to_string_pretty(&j)?);
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
        JobsCmd::Logs { id, follow } => logs(&c, &id, follow).await?,
        JobsCmd::Cancel { id } => action(&c, &id, "cancel").await?,
        JobsCmd::Requeue { id } => action(&c, &id, "requeue").await?,
        JobsCmd::Ship { id } => action(&c, &id, "ship").await?,
        JobsCmd::Reject { id } => action(&c, &id, "reject").await?,
        JobsCmd::Retry { id } => action(&c, &id, "retry").await?,
    }
    Ok(())
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

/// Prints stored output; with `follow`, polls for new lines until the job is terminal.
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
        if !follow {
            return Ok(());
        }
        if lines.is_empty() {
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

pub async fn factories(remote: &Remote, cmd: FactoriesCmd) -> Result<()> {
    let c = Client::new(remote);
    match cmd {
        FactoriesCmd::Ls => {
            let fs: Vec<Value> = c.get("/v1/factories").await?;
            for f in fs {
                println!(
                    "{}  {:<9} {}/{} slots  {}  [{}]",
                    f["id"].as_str().unwrap_or_default(),
                    f["status"].as_str().unwrap_or_default(),
                    f["slots_busy"],
                    f["slots"],
                    f["name"].as_str().unwrap_or_default(),
                    f["capabilities"]
                        .as_array()
                        .map(|a| a
                            .iter()
                            .filter_map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join(","))
                        .unwrap_or_default()
                );
            }
        }
        FactoriesCmd::Rotate { id } => {
            let t: Value = c.post(&format!("/v1/factories/{id}/rotate"), None).await?;
            println!("{}", t["token"].as_str().unwrap_or_default());
        }
        FactoriesCmd::Revoke { id } => {
            c.post::<Value>(&format!("/v1/factories/{id}/revoke"), None)
                .await?;
        }
        FactoriesCmd::Drain { id } => {
            c.post::<Value>(&format!("/v1/factories/{id}/drain"), None)
                .await?;
        }
    }
    Ok(())
}

pub async fn tokens(remote: &Remote, cmd: TokensCmd) -> Result<()> {
    let c = Client::new(remote);
    let t: Value = match cmd {
        TokensCmd::Create { role, name } => {
            c.post(
                "/v1/tokens",
                Some(&serde_json::json!({ "role": role, "name": name })),
            )
            .await?
        }
        TokensCmd::Enrollment => {
            c.post("/v1/enrollment-tokens", Some(&serde_json::json!({})))
                .await?
        }
    };
    println!("{}", t["token"].as_str().unwrap_or_default());
    Ok(())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

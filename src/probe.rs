//! `gigafactory probe <url>`: a health check for images and units without curl. Exits 0 when
//! the URL answers `200`, non-zero with a sentence saying what it got otherwise (no answer, a
//! timeout, another status), so a container's `HEALTHCHECK` or a readiness script can use the
//! binary it already ships.

use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::TlsArgs;

/// How many bytes of a failing answer's body the message quotes (a `/readyz` says why).
const BODY_QUOTE_MAX_BYTES: usize = 200;

#[derive(clap::Args)]
pub struct ProbeArgs {
    /// The URL to fetch (`http://127.0.0.1:7070/healthz`).
    url: String,
    /// Seconds before giving up on an answer.
    #[arg(long, default_value_t = 5)]
    timeout_secs: u64,
    #[command(flatten)]
    tls: TlsArgs,
}

pub async fn run(args: ProbeArgs) -> Result<()> {
    let http = args
        .tls
        .client_tls()
        .apply(reqwest::Client::builder())?
        .timeout(Duration::from_secs(args.timeout_secs.max(1)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the http client")?;
    let resp = http.get(&args.url).send().await.map_err(|e| {
        anyhow::anyhow!(
            "{} did not answer: {}",
            args.url,
            gigafactory_factory::tls::explain(&e)
        )
    })?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    let quote: String = body.chars().take(BODY_QUOTE_MAX_BYTES).collect();
    if status != reqwest::StatusCode::OK {
        bail!("{} answered {status}: {}", args.url, quote.trim());
    }
    println!("{}: {}", args.url, quote.trim());
    Ok(())
}

//! The artifact commands: `gigafactory jobs artifacts ID` lists every attempt's files and
//! `gigafactory jobs download ID NAME` saves one (the latest attempt's unless `--attempt`),
//! streamed to a file or to standard output, never over a file that exists.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use gigafactory_core::wire::{ArtifactView, urlencode};
use serde_json::Value;

use super::output::{Table, View};
use crate::client::Client;

pub async fn list(c: &Client, view: &View, id: &str) -> Result<()> {
    let answer: Value = c
        .get(&format!("/v1/jobs/{}/artifacts", urlencode(id)))
        .await?;
    view.print(answer, |fmt, all: &Vec<ArtifactView>| {
        if all.is_empty() {
            return "no artifacts\n".to_owned();
        }
        let mut t = Table::new(&["ATTEMPT", "KIND", "SIZE", "SAVED", "NAME"]).right(&[0, 2]);
        for a in all {
            t.row(vec![
                a.attempt.to_string().into(),
                a.kind.name().into(),
                human_size(a.size).into(),
                fmt.at(a.created_at).into(),
                a.name.as_str().into(),
            ]);
        }
        t.render(fmt)
    })
}

/// Saves artifact `name` of `id` to `output` (`-` for standard output; the name by default).
pub async fn download(
    c: &Client,
    id: &str,
    name: &str,
    attempt: Option<u32>,
    output: Option<PathBuf>,
) -> Result<()> {
    let all: Vec<ArtifactView> = c
        .get(&format!("/v1/jobs/{}/artifacts", urlencode(id)))
        .await?;
    let Some(found) = all
        .iter()
        .filter(|a| a.name == name && attempt.is_none_or(|n| a.attempt == n))
        .max_by_key(|a| a.attempt)
    else {
        let named: Vec<_> = all
            .iter()
            .map(|a| format!("{} (attempt {})", a.name, a.attempt))
            .collect();
        bail!(
            "job {id} has no artifact {name:?}; it has: {}",
            if named.is_empty() {
                "none".into()
            } else {
                named.join(", ")
            }
        );
    };
    let path = format!(
        "/v1/jobs/{}/artifacts/{}/{}",
        urlencode(id),
        found.attempt,
        urlencode(name)
    );
    let mut resp = c.get_stream(&path).await?;
    let output = output.unwrap_or_else(|| PathBuf::from(name));
    let mut sink: Box<dyn Write> = if output.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&output)
            .with_context(|| format!("creating {} (it must not exist)", output.display()))?;
        Box::new(file)
    };
    let mut written = 0u64;
    while let Some(chunk) = resp.chunk().await? {
        sink.write_all(&chunk)?;
        written += chunk.len() as u64;
    }
    sink.flush()?;
    if written != found.size {
        bail!(
            "the download stopped after {written} of {} bytes",
            found.size
        );
    }
    if output.as_os_str() != "-" {
        eprintln!(
            "saved {} ({}) to {}",
            name,
            human_size(written),
            output.display()
        );
    }
    Ok(())
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_read_in_the_unit_that_fits() {
        assert_eq!(human_size(17), "17 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(6 << 20), "6.0 MiB");
    }
}

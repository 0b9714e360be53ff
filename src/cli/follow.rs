//! Following jobs to their end. `jobs logs ID` prints a job's stored output, its standard
//! output on ours and its standard error on ours, with a line between attempts; `-f` streams
//! it live (SSE), reconnects across a coordinator restart with `Last-Event-ID` so no line is
//! lost or repeated, and exits with the job's outcome. `submit --wait` waits for a manifest's
//! jobs the same way. The outcome: exit 0 when the job succeeded or shipped, or finished its
//! run and waits in review; non-zero, with a line saying how it ended, when it ended dead,
//! cancelled or rejected.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gigafactory_core::wire::{JobView, LogLine, LogStream};

use super::sse::next_event;
use crate::client::{Client, Unreachable, unreachable};

/// How often a follower reads the job's state to learn that it ended.
const STATE_POLL_MS: u64 = 1_000;
/// The wait between attempts to reach a coordinator that went away.
const RECONNECT_WAIT_MS: u64 = 500;
/// How long a follower keeps trying to reach a coordinator before it gives up.
const RECONNECT_GIVE_UP_SECS: u64 = 600;

/// Where a job stands for someone waiting on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Succeeded or shipped.
    Well,
    /// Its run finished; it waits for a reviewer to ship or reject it.
    InReview,
    /// Dead, cancelled or rejected.
    Badly,
}

/// Whether a job in `state` has ended, and how; `None` while it may still run (a `failed`
/// job waits out its backoff before its next attempt).
pub fn ended(state: &str) -> Option<Ended> {
    match state {
        "succeeded" | "shipped" => Some(Ended::Well),
        "review" => Some(Ended::InReview),
        "dead" | "cancelled" | "rejected" => Some(Ended::Badly),
        _ => None,
    }
}

/// One line saying how `j` ended: "job fix (ID) succeeded after 1 attempt", or "job fix (ID)
/// ended dead after 3 attempts: exit status 1".
pub fn how_it_ended(j: &JobView) -> String {
    let attempts = match j.attempts {
        1 => "1 attempt".to_owned(),
        n => format!("{n} attempts"),
    };
    let error = j
        .last_error
        .as_ref()
        .map(|e| format!(": {e}"))
        .unwrap_or_default();
    match ended(&j.state) {
        Some(Ended::Well) => format!("job {} ({}) {} after {attempts}", j.key, j.id, j.state),
        Some(Ended::InReview) => format!(
            "job {} ({}) finished after {attempts} and waits in review (jobs ship | reject)",
            j.key, j.id
        ),
        Some(Ended::Badly) | None => {
            format!(
                "job {} ({}) ended {} after {attempts}{error}",
                j.key, j.id, j.state
            )
        }
    }
}

/// Counts how long the coordinator has been out of reach, says so once, and gives up after
/// [`RECONNECT_GIVE_UP_SECS`]. Only a coordinator reached once is waited for: one never
/// reached is more likely a wrong address than a restart.
#[derive(Default)]
struct Reconnect {
    reached_once: bool,
    lost_at: Option<Instant>,
}

impl Reconnect {
    /// After `e`: waits to try again if the coordinator, reached before, is out of reach;
    /// else returns `e`.
    async fn wait_or_fail(&mut self, e: anyhow::Error) -> Result<()> {
        if !unreachable(&e) || !self.reached_once {
            return Err(e);
        }
        let lost_at = *self.lost_at.get_or_insert_with(|| {
            eprintln!("lost the coordinator ({e:#}); reconnecting");
            Instant::now()
        });
        if lost_at.elapsed() > Duration::from_secs(RECONNECT_GIVE_UP_SECS) {
            return Err(e.context(format!(
                "no coordinator for {RECONNECT_GIVE_UP_SECS} s; giving up"
            )));
        }
        tokio::time::sleep(Duration::from_millis(RECONNECT_WAIT_MS)).await;
        Ok(())
    }

    fn reached(&mut self) {
        self.reached_once = true;
        if self.lost_at.take().is_some() {
            eprintln!("reconnected");
        }
    }
}

/// Prints log lines where they belong and remembers the last one, from which a reconnect
/// resumes.
#[derive(Default)]
struct Printer {
    last: Option<(u32, u64)>,
}

impl Printer {
    fn print(&mut self, l: &LogLine) -> Result<()> {
        if let Some((attempt, _)) = self.last
            && attempt != l.attempt
        {
            eprintln!("--- attempt {} ---", l.attempt);
        }
        match l.stream {
            LogStream::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(l.data.as_bytes())?;
                out.flush()?;
            }
            LogStream::Stderr => eprint!("{}", l.data),
        }
        self.last = Some((l.attempt, l.seq));
        Ok(())
    }

    /// The position after the last line printed, as the logs route takes it.
    fn position(&self) -> Option<String> {
        self.last.map(|(a, s)| format!("{a}:{s}"))
    }

    /// Prints every stored line after the last one printed, page after page.
    async fn catch_up(&mut self, c: &Client, id: &str) -> Result<()> {
        loop {
            let path = match self.position() {
                Some(p) => format!("/v1/jobs/{id}/logs?after={p}"),
                None => format!("/v1/jobs/{id}/logs"),
            };
            let lines: Vec<LogLine> = c.get(&path).await?;
            if lines.is_empty() {
                return Ok(());
            }
            for l in &lines {
                self.print(l)?;
            }
        }
    }
}

/// `jobs logs ID [-f]`.
pub async fn logs(c: &Client, id: &str, follow: bool) -> Result<()> {
    let mut printer = Printer::default();
    if !follow {
        return printer.catch_up(c, id).await;
    }
    let mut reconnect = Reconnect::default();
    let job = loop {
        let streamed = match c
            .get_events(
                &format!("/v1/jobs/{id}/logs"),
                printer.position().as_deref(),
            )
            .await
        {
            Ok(stream) => {
                reconnect.reached();
                stream_until_ended(c, id, stream, &mut printer).await
            }
            Err(e) => Err(e),
        };
        match streamed {
            Ok(job) => break job,
            Err(e) => reconnect.wait_or_fail(e).await?,
        }
    };
    // The job has ended: what it wrote last may not have been streamed yet.
    printer.catch_up(c, id).await?;
    conclude(&job)
}

/// Prints how `j` ended: on standard error when it ended well, as the error otherwise.
fn conclude(j: &JobView) -> Result<()> {
    match ended(&j.state) {
        Some(Ended::Well | Ended::InReview) => {
            eprintln!("{}", how_it_ended(j));
            Ok(())
        }
        _ => bail!("{}", how_it_ended(j)),
    }
}

/// Prints the stream's lines until the job has ended (read every [`STATE_POLL_MS`]); the
/// job as it ended. A stream cut off or a coordinator out of reach is [`Unreachable`].
async fn stream_until_ended(
    c: &Client,
    id: &str,
    mut stream: reqwest::Response,
    printer: &mut Printer,
) -> Result<JobView> {
    let mut buf: Vec<u8> = Vec::new();
    let mut poll = tokio::time::interval(Duration::from_millis(STATE_POLL_MS));
    loop {
        tokio::select! {
            chunk = stream.chunk() => {
                let chunk = chunk
                    .map_err(|e| Unreachable(format!("the log stream broke: {e}")))?
                    .ok_or_else(|| Unreachable("the log stream ended".into()))?;
                buf.extend_from_slice(&chunk);
                while let Some(event) = next_event(&mut buf) {
                    match event.kind.as_str() {
                        "log" => printer.print(
                            &serde_json::from_str(&event.data)
                                .with_context(|| format!("a log event: {}", event.data))?,
                        )?,
                        // The node lost its store: another read (or node) may do better.
                        "error" => return Err(Unreachable(event.data).into()),
                        _ => {}
                    }
                }
            }
            _ = poll.tick() => {
                let j: JobView = c.get(&format!("/v1/jobs/{id}")).await?;
                if ended(&j.state).is_some() {
                    return Ok(j);
                }
            }
        }
    }
}

/// `submit --wait`: reads each job until it has ended, printing a line as each does; an
/// error naming those that ended badly.
pub async fn wait_for_all(c: &Client, jobs: &[String]) -> Result<()> {
    let mut waiting: Vec<&String> = jobs.iter().collect();
    let mut badly = Vec::new();
    // The submit that made the jobs reached it.
    let mut reconnect = Reconnect {
        reached_once: true,
        lost_at: None,
    };
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for id in waiting {
            match c.get::<JobView>(&format!("/v1/jobs/{id}")).await {
                Ok(j) => {
                    reconnect.reached();
                    match ended(&j.state) {
                        None => still.push(id),
                        Some(how) => {
                            eprintln!("{}", how_it_ended(&j));
                            if how == Ended::Badly {
                                badly.push(j.key.clone());
                            }
                        }
                    }
                }
                Err(e) => {
                    reconnect.wait_or_fail(e).await?;
                    still.push(id);
                }
            }
        }
        waiting = still;
        if !waiting.is_empty() {
            tokio::time::sleep(Duration::from_millis(STATE_POLL_MS)).await;
        }
    }
    if !badly.is_empty() {
        bail!(
            "{} of {} jobs did not succeed: {}",
            badly.len(),
            jobs.len(),
            badly.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_succeeded_shipped_and_review_count_as_ending_well() {
        assert_eq!(ended("succeeded"), Some(Ended::Well));
        assert_eq!(ended("shipped"), Some(Ended::Well));
        assert_eq!(ended("review"), Some(Ended::InReview));
        for bad in ["dead", "cancelled", "rejected"] {
            assert_eq!(ended(bad), Some(Ended::Badly), "{bad}");
        }
        for going in [
            "pending",
            "queued",
            "failed",
            "leased",
            "running",
            "preempting",
        ] {
            assert_eq!(ended(going), None, "{going}");
        }
    }
}

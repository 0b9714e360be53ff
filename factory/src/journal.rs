//! The agent's journal (`--journal FILE`): one JSON line per request sent to a coordinator and
//! the answer it got ([`gigafactory_core::journal::Exchange`]). Off unless asked for; the chaos
//! suite turns it on to check the lease invariants from the factories' side.
//!
//! Each line goes to the file in one `write` on a descriptor opened for appending, unbuffered,
//! so a SIGKILLed agent leaves every line it finished and at most a torn last one, which
//! readers skip; the next agent to open the file ends that line first, so its own lines start
//! clean.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use gigafactory_core::job::Millis;
use gigafactory_core::journal::Exchange;
use tracing::warn;

use crate::error::{AgentError, Result};

#[derive(Debug)]
pub struct Journal {
    file: Mutex<File>,
    /// A failed write is reported once, not once per request.
    failed: AtomicBool,
}

impl Journal {
    /// Opens (creating it, appending to it) the journal at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let opened = |e| AgentError::io(format!("opening the journal {}", path.display()), e);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(opened)?;
        if ends_torn(&mut file).map_err(opened)? {
            file.write_all(b"\n").map_err(opened)?;
        }
        Ok(Journal {
            file: Mutex::new(file),
            failed: AtomicBool::new(false),
        })
    }

    /// Appends one exchange. A journal that cannot be written does not stop the agent.
    pub fn record(&self, exchange: &Exchange) {
        let Ok(mut line) = serde_json::to_vec(exchange) else {
            return;
        };
        line.push(b'\n');
        let written = self
            .file
            .lock()
            .map_err(|_| std::io::Error::other("journal lock poisoned"))
            .and_then(|mut f| f.write_all(&line));
        if let Err(e) = written
            && !self.failed.swap(true, Ordering::Relaxed)
        {
            warn!(error = %e, "cannot write the journal; requests are no longer recorded");
        }
    }
}

/// Whether the file's last line lacks its newline (a writer was killed mid-line).
fn ends_torn(file: &mut File) -> std::io::Result<bool> {
    if file.seek(SeekFrom::End(0))? == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

/// Wall-clock milliseconds, the clock the coordinator stamps its events with.
pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_recorded_exchange_is_one_line_that_parses_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let j = Journal::open(&path).unwrap();
        for status in [200, 409] {
            j.record(&Exchange {
                sent_at: 1,
                answered_at: 2,
                node: "http://127.0.0.1:1".into(),
                path: "/v1/claims".into(),
                write: None,
                status,
                error: None,
                leases: Vec::new(),
                answer: None,
            });
        }
        drop(j);
        // Reopening appends rather than truncating.
        Journal::open(&path).unwrap().record(&Exchange {
            sent_at: 3,
            answered_at: 4,
            node: String::new(),
            path: String::new(),
            write: None,
            status: 0,
            error: Some("connection refused".into()),
            leases: Vec::new(),
            answer: None,
        });
        // A writer killed mid-line: the next one starts on a line of its own.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"sent_at\":")
            .unwrap();
        Journal::open(&path).unwrap().record(&Exchange {
            sent_at: 5,
            answered_at: 6,
            node: String::new(),
            path: String::new(),
            write: None,
            status: 204,
            error: None,
            leases: Vec::new(),
            answer: None,
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Exchange> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        assert_eq!(
            lines.iter().map(|e| e.status).collect::<Vec<_>>(),
            [200, 409, 0, 204]
        );
        assert_eq!(text.lines().count(), 5, "only the torn line is lost");
    }
}

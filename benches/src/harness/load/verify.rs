//! The count the store must agree with: after a run, the store must hold as succeeded every
//! job the bench saw complete (each once), and every job it submitted unless the run stopped
//! early. The figures are printed whatever the verdict; a run that does not add up then fails
//! the command.

use std::collections::HashSet;
use std::time::Instant;

use serde::Deserialize;
use uuid::Uuid;

use super::{BENCH_PRODUCT, Measured, Shared};
use crate::harness::error::{Error, Result};

/// Jobs per page of the final verification (the API's maximum).
const VERIFY_PAGE_JOBS: usize = 500;

#[derive(Deserialize)]
struct Page {
    jobs: Vec<Listed>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct Listed {
    id: Uuid,
}

/// How many of `ids` the store holds as succeeded, asking the first node and listing
/// `product=bench` from just before the oldest id (ids are UUIDv7 and the list is in id order,
/// so a pre-load or an earlier run is skipped, not paged).
pub(crate) async fn count_succeeded(
    sh: &Shared,
    ids: &HashSet<Uuid>,
    deadline: Instant,
) -> Result<u64> {
    let Some(oldest) = ids.iter().min() else {
        return Ok(0);
    };
    let mut cursor = Uuid::from_u128(oldest.as_u128().saturating_sub(1)).to_string();
    let mut found = 0;
    loop {
        if Instant::now() >= deadline {
            return Err(Error::Check(format!(
                "verification: not finished in time ({found} found so far)"
            )));
        }
        let path = format!(
            "/v1/jobs?state=succeeded&product={BENCH_PRODUCT}&limit={VERIFY_PAGE_JOBS}&cursor={cursor}"
        );
        let page: Page = sh.read("list jobs", &path).await?;
        found += page.jobs.iter().filter(|j| ids.contains(&j.id)).count() as u64;
        match page.next_cursor {
            Some(next) => cursor = next,
            None => return Ok(found),
        }
    }
}

/// The line that says whether a run adds up: the store must hold as succeeded every job the
/// bench saw complete (each once), and every job it submitted unless the run stopped early.
pub(crate) fn check(m: &Measured, stored: &Result<u64>) -> String {
    let stopped_early = m.timed_out || m.fatal.is_some();
    match stored {
        Ok(_) if m.completed_twice > 0 => format!(
            "MISMATCH: {} jobs completed more than once",
            m.completed_twice
        ),
        Ok(n) if *n == m.completed && (stopped_early || *n == m.submitted()) => {
            format!("OK: the store holds {n} succeeded bench jobs")
        }
        Ok(n) => format!(
            "MISMATCH: the store holds {n} succeeded of {} submitted, the bench counted {} \
             completed",
            m.submitted(),
            m.completed
        ),
        Err(e) => format!("FAILED: {e}"),
    }
}

/// Fails the command for a run that stopped early or does not add up, after its figures were
/// printed.
pub(crate) fn verdict(m: &Measured, stored: Result<u64>, timeout_secs: u64) -> Result<()> {
    if let Some(why) = &m.fatal {
        return Err(Error::Check(format!("the run stopped on an error: {why}")));
    }
    if m.timed_out {
        return Err(Error::Check(format!(
            "timed out after {timeout_secs} s: {} of {} jobs completed",
            m.completed, m.asked
        )));
    }
    let stored = stored?;
    if m.completed_twice > 0 || stored != m.completed || stored != m.submitted() {
        return Err(Error::Check(format!(
            "count mismatch: {} submitted, {} completed ({} more than once), {stored} succeeded \
             in the store",
            m.submitted(),
            m.completed,
            m.completed_twice
        )));
    }
    Ok(())
}

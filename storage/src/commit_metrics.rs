//! What the store tells `/metrics` about its commits, labelled by engine: how long a commit
//! that writes takes, and how many commits met a conflict or ended with an unknown outcome.
//! Recorded around `AnyTxn::commit`, the one commit every coordinator transaction makes; a
//! transaction that only read sends nothing to its engine and is not timed.

use std::time::Duration;

use crate::error::{Error, Result};

/// Histogram: seconds from asking a writing transaction to commit to its answer.
pub const STORE_COMMIT_SECONDS: &str = "gigafactory_store_commit_seconds";
/// Counter: commits refused for a conflict (`transact!` retries them).
pub const STORE_CONFLICTS_TOTAL: &str = "gigafactory_store_conflicts_total";
/// Counter: commits whose outcome is unknown (the caller re-reads before retrying).
pub const STORE_COMMIT_UNKNOWN_TOTAL: &str = "gigafactory_store_commit_unknown_total";

/// Describes the store's series and registers them for `engine` at 0, so they are on the
/// first scrape of a node that has not committed yet.
pub fn describe(engine: &'static str) {
    metrics::describe_histogram!(
        STORE_COMMIT_SECONDS,
        metrics::Unit::Seconds,
        "Time a store commit of a transaction that writes takes, by engine."
    );
    metrics::describe_counter!(
        STORE_CONFLICTS_TOTAL,
        metrics::Unit::Count,
        "Store commits refused for a conflict (retried with backoff), by engine."
    );
    metrics::describe_counter!(
        STORE_COMMIT_UNKNOWN_TOTAL,
        metrics::Unit::Count,
        "Store commits whose outcome is unknown (may or may not have applied), by engine."
    );
    // A histogram is registered by asking for its handle; counters by adding nothing.
    let _ = metrics::histogram!(STORE_COMMIT_SECONDS, "engine" => engine);
    metrics::counter!(STORE_CONFLICTS_TOTAL, "engine" => engine).increment(0);
    metrics::counter!(STORE_COMMIT_UNKNOWN_TOTAL, "engine" => engine).increment(0);
}

/// Records one commit on `engine`: its time when it wrote (`None` for a read-only one), and
/// a conflict or an unknown outcome.
pub(crate) fn record(engine: &'static str, took: Option<Duration>, outcome: &Result<()>) {
    if let Some(took) = took {
        metrics::histogram!(STORE_COMMIT_SECONDS, "engine" => engine).record(took.as_secs_f64());
    }
    match outcome {
        Err(Error::Conflict) => {
            metrics::counter!(STORE_CONFLICTS_TOTAL, "engine" => engine).increment(1)
        }
        Err(Error::CommitUnknown(_)) => {
            metrics::counter!(STORE_COMMIT_UNKNOWN_TOTAL, "engine" => engine).increment(1)
        }
        _ => {}
    }
}

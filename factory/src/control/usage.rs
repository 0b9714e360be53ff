//! Usage reports in the control directory. `gigafactory job usage` writes each report as a
//! file of its own in `$GF_CONTROL_DIR/usage/`, with the request id it gets at that moment;
//! the agent sends the files in the order they were written, each under its id, and removes a
//! file once the coordinator took it (or refused it for good). While the job runs each goes
//! alone; those still waiting when the attempt ends ride on its end (`complete`, `fail`,
//! `release`), which applies them first in its own transaction ([`split_for_end`]). However
//! often a report is sent (retries, alone and then carried, an agent restarted after a crash),
//! it goes with the same id, and the coordinator counts it once.
//!
//! The format, shared by the two sides of one binary: a file named
//! `<written at, ns since the Unix epoch, 20 digits>-<request id>.json` (so names sort in the
//! order written), holding one JSON object `{"request_id", "model", "input_tokens",
//! "output_tokens", "cost_micros"}` (`cost_micros` null when the job gave no dollars). Written
//! atomically (a hidden temporary file, then a rename), so the agent never reads half a
//! report.

use std::path::{Path, PathBuf};

use gigafactory_core::budget::{Micros, format_usd};
use gigafactory_core::usage::{CARRIED_REPORTS_MAX, REPORT_MAX_MICROS, TOKENS_MAX};
use gigafactory_core::wire::{UsageReport, UsageWrite};
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::{control_dir_from_env, open_queue, queue_stamp, validate, waiting, write_atomically};
use crate::error::{AgentError, Result};

/// The directory under the control directory that holds the reports not yet sent.
pub const USAGE_DIR: &str = "usage";
/// Reports waiting unsent past which `gigafactory job usage` refuses more: the agent is not
/// taking them (it is not running, or cannot reach a coordinator), and a job must not fill the
/// disk with them. Also the most the agent reads in one pass.
pub const USAGE_PENDING_MAX: usize = 1_000;
/// Longest model name, in bytes: the coordinator's limit in characters is at least this many
/// bytes, so a name that passes here passes there.
const MODEL_MAX_BYTES: usize = gigafactory_core::usage::MODEL_LEN_MAX;
/// What a report file's name ends with; anything else in the directory is not a report.
const REPORT_SUFFIX: &str = ".json";

/// A report file's content.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportFile {
    request_id: String,
    model: String,
    input_tokens: u64,
    output_tokens: u64,
    cost_micros: Option<Micros>,
}

/// A report written by the job and not yet sent.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingUsage {
    pub path: PathBuf,
    /// The id the report got when written: every send of it carries this one.
    pub request_id: String,
    pub report: UsageReport,
}

impl PendingUsage {
    /// The report as an end carries it, under its own request id.
    pub fn carried(&self) -> UsageWrite {
        UsageWrite {
            request_id: self.request_id.clone(),
            report: self.report.clone(),
        }
    }

    /// Forgets the report: the coordinator took it, or refused it for good.
    pub fn remove(&self) {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                warn!(error = %e, path = %self.path.display(), "cannot remove a sent usage report")
            }
        }
    }
}

/// Splits the reports left at an attempt's end (oldest first) into those that go alone, first,
/// and those its end carries: the newest [`CARRIED_REPORTS_MAX`], so the order written holds.
pub fn split_for_end(mut pending: Vec<PendingUsage>) -> (Vec<PendingUsage>, Vec<PendingUsage>) {
    let carried = pending.split_off(pending.len().saturating_sub(CARRIED_REPORTS_MAX));
    (pending, carried)
}

/// Records what the calling job spent on a model (`gigafactory job usage`): the agent sends it
/// to the coordinator, with the lease's epoch, within a quarter of a second, or with the job's
/// end if that comes first. Returns the report's request id.
pub fn write_usage(report: &UsageReport) -> Result<String> {
    write_usage_in(&control_dir_from_env()?, report)
}

/// [`write_usage`] into an explicit control directory.
pub fn write_usage_in(control_dir: &Path, report: &UsageReport) -> Result<String> {
    let report = checked(report)?;
    let (dir, pending) = open_queue(control_dir, USAGE_DIR, REPORT_SUFFIX)?;
    if pending >= USAGE_PENDING_MAX {
        return Err(AgentError::Backlog {
            what: "usage reports",
            pending,
            dir,
        });
    }
    let request_id = uuid::Uuid::now_v7().to_string();
    let file = ReportFile {
        request_id: request_id.clone(),
        model: report.model,
        input_tokens: report.input_tokens,
        output_tokens: report.output_tokens,
        cost_micros: report.cost_micros,
    };
    let bytes = serde_json::to_vec(&file).expect("a report always serializes");
    let name = format!("{}-{request_id}{REPORT_SUFFIX}", queue_stamp());
    write_atomically(&dir, &name, &bytes)?;
    Ok(request_id)
}

/// The report as it will be sent, or why it cannot be: the coordinator's own bounds, checked
/// here so that the job hears of a bad report at once rather than its agent later.
fn checked(report: &UsageReport) -> Result<UsageReport> {
    let model = validate("model name", &report.model, MODEL_MAX_BYTES)?;
    let refuse = |reason: String| {
        Err(AgentError::InvalidValue {
            what: "usage report",
            reason,
        })
    };
    for (what, tokens) in [
        ("input tokens", report.input_tokens),
        ("output tokens", report.output_tokens),
    ] {
        if tokens > TOKENS_MAX {
            return refuse(format!(
                "{tokens} {what} is over the limit of {TOKENS_MAX} per report"
            ));
        }
    }
    match report.cost_micros {
        Some(cost) if cost > REPORT_MAX_MICROS => {
            return refuse(format!(
                "a cost of {} is over the limit of {} per report",
                format_usd(cost),
                format_usd(REPORT_MAX_MICROS)
            ));
        }
        None if report.input_tokens == 0 && report.output_tokens == 0 => {
            return refuse("nothing to report: no tokens and no cost".into());
        }
        _ => {}
    }
    Ok(UsageReport {
        model: model.to_owned(),
        ..report.clone()
    })
}

/// The reports waiting in `control_dir`, oldest first (at most [`USAGE_PENDING_MAX`]). A file
/// no writer could have produced (edited by hand) cannot be sent: it is removed, with a warning.
pub fn pending_usage(control_dir: &Path) -> Vec<PendingUsage> {
    let (dir, names) = waiting(
        control_dir,
        USAGE_DIR,
        REPORT_SUFFIX,
        USAGE_PENDING_MAX,
        "usage reports",
    );
    let mut pending = Vec::with_capacity(names.len());
    for name in names {
        let path = dir.join(&name);
        let parsed = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<ReportFile>(&b).map_err(|e| e.to_string()));
        match parsed {
            Ok(f) => pending.push(PendingUsage {
                path,
                request_id: f.request_id,
                report: UsageReport {
                    model: f.model,
                    input_tokens: f.input_tokens,
                    output_tokens: f.output_tokens,
                    cost_micros: f.cost_micros,
                },
            }),
            Err(e) => {
                warn!(error = %e, path = %path.display(), "removing a usage report that does not read");
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    pending
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(model: &str, input: u64, output: u64, cost: Option<Micros>) -> UsageReport {
        UsageReport {
            model: model.into(),
            input_tokens: input,
            output_tokens: output,
            cost_micros: cost,
        }
    }

    #[test]
    fn reports_read_back_in_the_order_written_each_with_its_own_id() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(pending_usage(dir.path()), []);
        let first = write_usage_in(dir.path(), &report(" sonnet\n", 1_200, 300, None)).unwrap();
        let second = write_usage_in(dir.path(), &report("haiku", 0, 0, Some(4_200))).unwrap();
        assert_ne!(first, second);
        let pending = pending_usage(dir.path());
        let ids: Vec<&str> = pending.iter().map(|p| p.request_id.as_str()).collect();
        assert_eq!(ids, [first.as_str(), second.as_str()]);
        assert_eq!(pending[0].report, report("sonnet", 1_200, 300, None));
        assert_eq!(pending[1].report, report("haiku", 0, 0, Some(4_200)));
        uuid::Uuid::parse_str(&first).expect("the request id is a UUID");

        pending[0].remove();
        pending[0].remove();
        assert_eq!(pending_usage(dir.path()), pending[1..]);
    }

    #[test]
    fn an_end_carries_the_newest_reports_and_the_older_go_alone_first() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = (0..CARRIED_REPORTS_MAX + 2)
            .map(|_| write_usage_in(dir.path(), &report("m", 0, 0, Some(1))).unwrap())
            .collect();
        let (alone, carried) = split_for_end(pending_usage(dir.path()));
        let alone: Vec<&str> = alone.iter().map(|p| p.request_id.as_str()).collect();
        assert_eq!(alone, [ids[0].as_str(), ids[1].as_str()]);
        let carried: Vec<UsageWrite> = carried.iter().map(PendingUsage::carried).collect();
        assert_eq!(carried.len(), CARRIED_REPORTS_MAX);
        assert_eq!(carried[0].request_id, ids[2]);
        assert_eq!(carried[0].report, report("m", 0, 0, Some(1)));

        let (alone, carried) = split_for_end(pending_usage(dir.path()).split_off(60));
        assert_eq!((alone.len(), carried.len()), (0, ids.len() - 60));
    }

    #[test]
    fn a_report_file_holds_the_documented_fields() {
        let dir = tempfile::tempdir().unwrap();
        let id = write_usage_in(dir.path(), &report("sonnet", 5, 6, Some(7))).unwrap();
        let names = super::super::queued_names(&dir.path().join(USAGE_DIR), REPORT_SUFFIX).unwrap();
        let [name] = names.as_slice() else {
            panic!("one file: {names:?}")
        };
        let (written_ns, rest) = name.split_once('-').unwrap();
        assert_eq!(written_ns.len(), 20);
        assert!(written_ns.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(rest, format!("{id}.json"));
        let text = std::fs::read_to_string(dir.path().join(USAGE_DIR).join(name)).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "request_id": id, "model": "sonnet", "input_tokens": 5, "output_tokens": 6,
                "cost_micros": 7
            })
        );
    }

    #[test]
    fn refuses_reports_the_coordinator_would_refuse_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            report("", 1, 1, None),
            report("two\nlines", 1, 1, None),
            report(&"m".repeat(MODEL_MAX_BYTES + 1), 1, 1, None),
            report("sonnet", TOKENS_MAX + 1, 0, None),
            report("sonnet", 0, TOKENS_MAX + 1, None),
            report("sonnet", 0, 0, Some(REPORT_MAX_MICROS + 1)),
            report("sonnet", 0, 0, None),
        ] {
            let err = write_usage_in(dir.path(), &bad).unwrap_err();
            assert!(
                matches!(err, AgentError::InvalidValue { .. }),
                "{bad:?}: {err}"
            );
        }
        assert_eq!(pending_usage(dir.path()), []);
        write_usage_in(dir.path(), &report("sonnet", 0, 0, Some(0)))
            .expect("a zero cost is a cost");
        write_usage_in(
            dir.path(),
            &report("sonnet", TOKENS_MAX, 0, Some(REPORT_MAX_MICROS)),
        )
        .expect("the limits themselves are allowed");
    }

    #[test]
    fn says_what_is_wrong_with_a_refused_report() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_usage_in(dir.path(), &report("m", 0, 0, Some(REPORT_MAX_MICROS + 1)));
        assert_eq!(
            err.unwrap_err().to_string(),
            "invalid usage report: a cost of $10,000.000001 is over the limit of $10,000.00 per report"
        );
    }

    #[test]
    fn refuses_more_reports_while_too_many_wait_unsent() {
        let dir = tempfile::tempdir().unwrap();
        let usage = dir.path().join(USAGE_DIR);
        std::fs::create_dir(&usage).unwrap();
        for i in 0..USAGE_PENDING_MAX {
            std::fs::write(usage.join(format!("{i:020}-x.json")), "{}").unwrap();
        }
        let err = write_usage_in(dir.path(), &report("m", 1, 1, None)).unwrap_err();
        assert!(
            matches!(
                err,
                AgentError::Backlog {
                    pending: USAGE_PENDING_MAX,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_missing_control_directory_is_an_error_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nowhere");
        let err = write_usage_in(&missing, &report("m", 1, 1, None)).unwrap_err();
        assert!(matches!(err, AgentError::Io { .. }), "{err}");
        assert!(!missing.exists());
    }

    #[test]
    fn a_report_that_does_not_read_is_removed_and_temporary_files_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let id = write_usage_in(dir.path(), &report("sonnet", 1, 1, None)).unwrap();
        let usage = dir.path().join(USAGE_DIR);
        std::fs::write(usage.join("00000000000000000000-edited.json"), "{not json").unwrap();
        std::fs::write(usage.join(".99999999999999999999-x.json.12.tmp"), "{").unwrap();
        let pending = pending_usage(dir.path());
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].request_id, id);
        assert!(!usage.join("00000000000000000000-edited.json").exists());
        assert!(usage.join(".99999999999999999999-x.json.12.tmp").exists());
    }
}

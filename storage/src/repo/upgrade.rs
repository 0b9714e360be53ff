//! Reading records written by older versions. Each older shape is declared here as it was,
//! field for field (bincode is not self-describing: the order is the format), and converted
//! to the current one.

use gigafactory_core::job::{Job, JobId, JobState, Lease, Millis};
use gigafactory_core::manifest::JobSpec;
use gigafactory_core::scoring::ScoreBreakdown;
use serde::Deserialize;

use crate::codec::decode_payload;
use crate::error::{Error, Result};

/// A job as schema 1 stored it: `Cancelled` carried no cause.
#[derive(Deserialize)]
struct JobV1 {
    id: JobId,
    spec: JobSpec,
    parents: Vec<JobId>,
    state: JobStateV1,
    stage: Option<String>,
    epoch: u64,
    attempts: u32,
    failures: u32,
    checkpoint: Option<String>,
    placement: Option<ScoreBreakdown>,
    last_error: Option<String>,
    exit_code: Option<i32>,
    run_ms: u64,
    created_at: Millis,
    updated_at: Millis,
    rev: u64,
}

#[derive(Deserialize)]
enum JobStateV1 {
    Pending,
    Queued {
        not_before: Millis,
    },
    Failed {
        retry_at: Millis,
    },
    Leased {
        lease: Lease,
    },
    Running {
        lease: Lease,
    },
    Preempting {
        lease: Lease,
        by: Option<JobId>,
        deadline: Millis,
    },
    Review,
    Succeeded,
    Shipped,
    Rejected,
    Dead,
    Cancelled,
}

impl From<JobStateV1> for JobState {
    fn from(s: JobStateV1) -> Self {
        match s {
            JobStateV1::Pending => JobState::Pending,
            JobStateV1::Queued { not_before } => JobState::Queued { not_before },
            JobStateV1::Failed { retry_at } => JobState::Failed { retry_at },
            JobStateV1::Leased { lease } => JobState::Leased { lease },
            JobStateV1::Running { lease } => JobState::Running { lease },
            JobStateV1::Preempting {
                lease,
                by,
                deadline,
            } => JobState::Preempting {
                lease,
                by,
                deadline,
            },
            JobStateV1::Review => JobState::Review,
            JobStateV1::Succeeded => JobState::Succeeded,
            JobStateV1::Shipped => JobState::Shipped,
            JobStateV1::Rejected => JobState::Rejected,
            JobStateV1::Dead => JobState::Dead,
            // Before schema 2 only operators cancelled.
            JobStateV1::Cancelled => JobState::Cancelled { by_parent: None },
        }
    }
}

/// Reads a job stored with an older `schema`.
pub(super) fn job(schema: u16, payload: &[u8]) -> Result<Job> {
    match schema {
        1 => {
            let v1: JobV1 = decode_payload(payload)?;
            Ok(Job {
                id: v1.id,
                spec: v1.spec,
                parents: v1.parents,
                state: v1.state.into(),
                stage: v1.stage,
                epoch: v1.epoch,
                attempts: v1.attempts,
                failures: v1.failures,
                checkpoint: v1.checkpoint,
                placement: v1.placement,
                last_error: v1.last_error,
                exit_code: v1.exit_code,
                run_ms: v1.run_ms,
                created_at: v1.created_at,
                updated_at: v1.updated_at,
                rev: v1.rev,
            })
        }
        _ => Err(Error::Codec(format!(
            "job schema {schema} is not readable by this version"
        ))),
    }
}

//! The review of a finished job: who may decide (`spec.reviewers`, or any operator when it is
//! empty), how many distinct approvals ship it (`spec.approvals`), and what a request for
//! changes must say. `apply` calls these; they read the job and never change its state. It
//! keeps, with `apply`:
//!
//! - **R1** a job ships only with `spec.approvals` approvals, each by a different reviewer
//!   allowed by `spec.reviewers`;
//! - **R2** approvals exist only in `review`, `shipped` and `rejected`: a job that leaves
//!   review for a new attempt (changes requested, cancelled, requeued) starts without any.

use super::{Approval, Job, JobError, Millis};

/// Longest reason a reviewer may give when asking for changes, in bytes.
pub const REASON_MAX_BYTES: usize = 2_000;

/// The reason of a request for changes as kept: trimmed, not empty, at most
/// [`REASON_MAX_BYTES`] bytes.
pub fn reason(raw: &str) -> Result<String, JobError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(JobError::InvalidReason(
            "a request for changes needs a reason".into(),
        ));
    }
    if trimmed.len() > REASON_MAX_BYTES {
        return Err(JobError::InvalidReason(format!(
            "the reason is {} bytes; at most {REASON_MAX_BYTES}",
            trimmed.len()
        )));
    }
    Ok(trimmed.to_owned())
}

/// Whether `by` may decide `job`'s review.
pub fn check_reviewer(job: &Job, by: &str) -> Result<(), JobError> {
    let reviewers = &job.spec.reviewers;
    if reviewers.is_empty() || reviewers.iter().any(|r| r == by) {
        Ok(())
    } else {
        Err(JobError::NotAReviewer {
            by: by.to_owned(),
            reviewers: reviewers.join(", "),
        })
    }
}

/// Records `by`'s approval of `next` (a job in review): refused from someone who may not
/// review it or who approved it already. Returns whether the job now has enough (R1).
pub(super) fn approve(next: &mut Job, by: String, now: Millis) -> Result<bool, JobError> {
    check_reviewer(next, &by)?;
    if next.approvals.iter().any(|a| a.by == by) {
        return Err(JobError::AlreadyApproved {
            by,
            given: next.approvals.len(),
            required: next.spec.approvals,
        });
    }
    next.approvals.push(Approval { by, at: now });
    Ok(approved(next))
}

/// Whether `job` has the approvals its review needs.
pub fn approved(job: &Job) -> bool {
    job.approvals.len() >= job.spec.approvals as usize
}

/// What the timeline says of the approval just given: "approved by ana (1 of 2)".
pub fn approval_note(job: &Job) -> Option<String> {
    let last = job.approvals.last()?;
    Some(format!(
        "approved by {} ({} of {})",
        last.by,
        job.approvals.len(),
        job.spec.approvals
    ))
}

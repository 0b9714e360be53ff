//! Review decisions from the CLI: `gigafactory jobs ship ID` (an approval; it prints how far
//! the review got) and `gigafactory jobs request-changes ID --reason TEXT`, and the review's
//! line of `jobs show` ("1 of 2 approvals: ana (3m ago)").

use anyhow::Result;
use gigafactory_core::wire::{ActionBody, JobView};
use serde_json::Value;

use super::output::{Fmt, View};
use crate::client::Client;

/// Approves job `id` as the caller's token and says how far its review got.
pub async fn ship(c: &Client, view: &View, id: &str, why: super::jobs::Why) -> Result<()> {
    let answer: Value = c
        .post(&format!("/v1/jobs/{id}/actions/ship"), why.body()?.as_ref())
        .await?;
    view.print(answer, |fmt, j: &JobView| {
        format!(
            "{}{}\n",
            super::jobs::jobs_table(fmt, std::slice::from_ref(j)),
            progress(j)
        )
    })
}

/// Sends job `id`, in review, back for a new attempt that is handed `reason`.
pub async fn request_changes(c: &Client, view: &View, id: &str, reason: String) -> Result<()> {
    let body = serde_json::to_value(ActionBody {
        reason: Some(reason),
    })?;
    let answer: Value = c
        .post(
            &format!("/v1/jobs/{id}/actions/request_changes"),
            Some(&body),
        )
        .await?;
    view.print(answer, |fmt, j: &JobView| {
        format!(
            "{}changes requested: the job runs again with GF_REVIEW_FEEDBACK set\n",
            super::jobs::jobs_table(fmt, std::slice::from_ref(j))
        )
    })
}

/// After an approval: "shipped with 2 of 2 approvals: ana, bo", or "1 of 2 approvals: ana;
/// waiting for 1 more".
fn progress(j: &JobView) -> String {
    let names: Vec<&str> = j.approvals.iter().map(|a| a.by.as_str()).collect();
    let given = j.approvals.len();
    let required = j.approvals_required as usize;
    let counted = format!("{given} of {required} approvals: {}", names.join(", "));
    if j.state == "shipped" {
        format!("shipped with {counted}")
    } else {
        let more = required.saturating_sub(given);
        format!("{counted}; waiting for {more} more")
    }
}

/// The review's line of `jobs show`, for a job in review: "1 of 2 approvals: ana (time)",
/// with who may review when the job names its reviewers.
pub fn review_line(fmt: &Fmt, j: &JobView) -> Option<String> {
    if j.state != "review" {
        return None;
    }
    let given: Vec<String> = j
        .approvals
        .iter()
        .map(|a| format!("{} ({})", a.by, fmt.at(a.at)))
        .collect();
    let mut line = format!("{} of {} approvals", given.len(), j.approvals_required);
    if !given.is_empty() {
        line.push_str(&format!(": {}", given.join(", ")));
    }
    if !j.reviewers.is_empty() {
        line.push_str(&format!(" (reviewers: {})", j.reviewers.join(", ")));
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: &str, approvals: serde_json::Value, reviewers: &[&str]) -> JobView {
        serde_json::from_value(serde_json::json!({
            "id": "0190a0b0-0000-7000-8000-000000000001", "key": "fix-1", "title": "fix",
            "product": "ops", "state": state, "priority": 50, "capabilities": [],
            "payload": {"command": "true"}, "parents": [], "epoch": 1, "attempts": 1,
            "failures": 0, "max_attempts": 3, "preemptible": false, "review": true,
            "approvals_required": 2, "approvals": approvals, "reviewers": reviewers,
            "created_at": 0, "updated_at": 0
        }))
        .unwrap()
    }

    #[test]
    fn a_job_in_review_shows_who_approved_of_how_many() {
        let ana = serde_json::json!([{"by": "ana", "at": 86_400_000}]);
        let j = job("review", ana.clone(), &["ana", "bo"]);
        assert_eq!(
            review_line(&Fmt::plain(2 * 86_400_000), &j).unwrap(),
            "1 of 2 approvals: ana (1d ago) (reviewers: ana, bo)"
        );
        assert_eq!(progress(&j), "1 of 2 approvals: ana; waiting for 1 more");
        let none = job("review", serde_json::json!([]), &[]);
        assert_eq!(
            review_line(&Fmt::plain(0), &none).unwrap(),
            "0 of 2 approvals"
        );
        assert_eq!(review_line(&Fmt::plain(0), &job("queued", ana, &[])), None);
    }

    #[test]
    fn the_last_approval_says_the_job_shipped() {
        let both = serde_json::json!([{"by": "ana", "at": 1}, {"by": "bo", "at": 2}]);
        assert_eq!(
            progress(&job("shipped", both, &[])),
            "shipped with 2 of 2 approvals: ana, bo"
        );
    }
}

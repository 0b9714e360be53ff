//! The review case by case (approvals, reviewers, requests for changes), and R1–R2 by
//! property over the random runs of `props.rs`.

use super::props::{REVIEWERS, play, run};
use super::*;

/// A job in review that needs `approvals` from `reviewers` (anyone when empty), attempt 1
/// done by `A` at epoch 1.
fn in_review(approvals: u32, reviewers: &[&str]) -> Job {
    let spec = JobSpec {
        approvals,
        reviewers: reviewers.iter().map(|r| r.to_string()).collect(),
        ..spec_with(3, true, true)
    };
    let review = ok(&leased(spec, A), complete(A, 1), T0 + 1).0;
    assert_eq!(review.state, JobState::Review);
    review
}

#[test]
fn a_review_needing_two_approvals_ships_with_the_second_reviewers() {
    let review = in_review(2, &["ana", "bo"]);
    let (once, effects) = ok(&review, ship("ana"), T0 + 2);
    assert_eq!((&once.state, effects), (&JobState::Review, vec![]));
    assert_eq!(
        once.approvals,
        [Approval {
            by: "ana".into(),
            at: T0 + 2
        }]
    );
    assert_eq!(
        crate::job::review::approval_note(&once).as_deref(),
        Some("approved by ana (1 of 2)")
    );
    let (shipped, effects) = ok(&once, ship("bo"), T0 + 3);
    assert_eq!(
        (&shipped.state, effects),
        (&JobState::Shipped, vec![Effect::Finished])
    );
    assert_eq!(shipped.approvals.len(), 2, "who approved stays on record");
    assert_eq!(
        crate::job::review::approval_note(&shipped).as_deref(),
        Some("approved by bo (2 of 2)")
    );
}

#[test]
fn the_same_reviewer_approving_twice_is_refused() {
    let once = ok(&in_review(2, &[]), ship("ana"), T0 + 2).0;
    assert_eq!(
        refused(&once, ship("ana"), T0 + 3),
        JobError::AlreadyApproved {
            by: "ana".into(),
            given: 1,
            required: 2
        }
    );
    assert_eq!(ok(&once, ship("bo"), T0 + 3).0.state, JobState::Shipped);
}

#[test]
fn a_caller_not_among_the_reviewers_decides_nothing() {
    let review = in_review(1, &["ana", "bo"]);
    let not_a_reviewer = JobError::NotAReviewer {
        by: "cy".into(),
        reviewers: "ana, bo".into(),
    };
    for cmd in [
        ship("cy"),
        reject("cy"),
        request_changes("cy", "more tests"),
    ] {
        assert_eq!(refused(&review, cmd, T0 + 2), not_a_reviewer);
    }
    assert_eq!(
        ok(&review, reject("bo"), T0 + 2).0.state,
        JobState::Rejected
    );
}

#[test]
fn without_reviewers_any_operator_decides_and_one_approval_ships_by_default() {
    let review = in_review(1, &[]);
    assert_eq!(
        ok(&review, ship("insecure-dev"), T0 + 2).0.state,
        JobState::Shipped
    );
}

#[test]
fn requesting_changes_sends_the_job_back_with_the_reason_for_its_next_attempts() {
    let once = ok(&in_review(2, &["ana", "bo"]), ship("ana"), T0 + 2).0;
    let (back, effects) = ok(
        &once,
        request_changes("bo", "  cover the empty case \n"),
        T0 + 3,
    );
    assert_eq!(back.state, JobState::Queued { not_before: T0 + 3 });
    assert_eq!(effects, [Effect::Ready { at: T0 + 3 }]);
    assert!(back.approvals.is_empty(), "R2: the next review starts over");
    assert_eq!(
        back.review_feedback.as_deref(),
        Some("cover the empty case")
    );
    // Not a failure: the attempts left and the fence stay as they were.
    assert_eq!(
        (back.failures, back.attempts, back.epoch),
        (once.failures, once.attempts, once.epoch)
    );
    // The feedback outlives a failed attempt, and is done with once one completes.
    let second = ok(&back, claim(B), T0 + 4).0;
    let failed = ok(&second, fail(B, 2, true, 0.5), T0 + 5).0;
    assert_eq!(
        failed.review_feedback.as_deref(),
        Some("cover the empty case")
    );
    let third = ok(&failed, claim(B), T0 + 60_000).0;
    assert_eq!(
        third.review_feedback.as_deref(),
        Some("cover the empty case")
    );
    let again = ok(&third, complete(B, 3), T0 + 60_001).0;
    assert_eq!(
        (again.state, again.review_feedback),
        (JobState::Review, None)
    );
}

#[test]
fn a_request_for_changes_needs_a_reason_of_at_most_two_thousand_bytes() {
    let review = in_review(1, &[]);
    for bad in ["", "   \n\t"] {
        assert!(matches!(
            refused(&review, request_changes("ana", bad), T0 + 2),
            JobError::InvalidReason(m) if m.contains("needs a reason")
        ));
    }
    let long = "x".repeat(crate::job::review::REASON_MAX_BYTES + 1);
    assert!(matches!(
        refused(&review, request_changes("ana", &long), T0 + 2),
        JobError::InvalidReason(m) if m.contains("at most 2000")
    ));
    let longest = "é".repeat(crate::job::review::REASON_MAX_BYTES / 2);
    let back = ok(&review, request_changes("ana", &longest), T0 + 2).0;
    assert_eq!(back.review_feedback, Some(longest));
}

#[test]
fn leaving_review_any_other_way_drops_the_approvals() {
    let once = ok(&in_review(2, &[]), ship("ana"), T0 + 2).0;
    let cancelled = ok(&once, Command::Cancel { reason: None }, T0 + 3).0;
    assert!(cancelled.approvals.is_empty());
    let rejected = ok(&once, reject("bo"), T0 + 3).0;
    assert_eq!(rejected.approvals.len(), 1, "kept with the decision");
    let requeued = ok(&rejected, Command::Requeue { reason: None }, T0 + 4).0;
    assert!(requeued.approvals.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// R1: whatever the sequence of commands, a job ships only with the approvals its spec
    /// asks for, each by a different reviewer its spec allows; and an approval is accepted
    /// only from such a reviewer, once.
    #[test]
    fn r1_a_job_never_ships_without_its_approvals_from_distinct_allowed_reviewers(run in run()) {
        play(&run, |step| {
            let job = step.after();
            let distinct: std::collections::BTreeSet<&str> =
                job.approvals.iter().map(|a| a.by.as_str()).collect();
            prop_assert_eq!(distinct.len(), job.approvals.len(), "R1: a reviewer counted twice");
            let allowed = &job.spec.reviewers;
            for a in &job.approvals {
                prop_assert!(allowed.is_empty() || allowed.contains(&a.by), "R1: {} not allowed", a.by);
                prop_assert!(REVIEWERS.contains(&a.by.as_str()));
            }
            if job.state == JobState::Shipped && step.before.state != JobState::Shipped {
                prop_assert_eq!(job.approvals.len(), job.spec.approvals as usize, "R1");
            }
            if job.state == JobState::Review {
                prop_assert!(job.approvals.len() < job.spec.approvals as usize, "R1: enough, yet in review");
            }
            Ok(())
        })?;
    }

    /// R2: approvals are held only in review and by the decision that ended it.
    #[test]
    fn r2_approvals_exist_only_in_review_shipped_or_rejected(run in run()) {
        play(&run, |step| {
            let job = step.after();
            if !job.approvals.is_empty() {
                prop_assert!(
                    matches!(job.state, JobState::Review | JobState::Shipped | JobState::Rejected),
                    "R2: approvals on a {} job after {:?}", job.state.name(), step.cmd
                );
            }
            Ok(())
        })?;
    }
}

//! `allowed_actions` against the state machine: over the random runs of `props.rs`, every
//! action it allows is one `apply` accepts, and every other one `apply` refuses.

use super::props::{REVIEWERS, play, run};
use super::*;

/// `action` as the command an operator sends, decided (for a review) by a reviewer who may
/// decide `job`'s review and has not approved it yet (in review there is one, by R1; in other
/// states every reviewer may have approved the review that ended it).
fn command(job: &Job, action: Action) -> Command {
    let by = REVIEWERS
        .iter()
        .chain(&["zed"])
        .map(|r| r.to_string())
        .find(|r| {
            (job.spec.reviewers.is_empty() || job.spec.reviewers.contains(r))
                && !job.approvals.iter().any(|a| &a.by == r)
        })
        .unwrap_or_else(|| REVIEWERS[0].to_string());
    let reason = Some("from the test".to_string());
    match action {
        Action::Requeue => Command::Requeue { reason },
        Action::Retry => Command::Retry { reason },
        Action::Cancel => Command::Cancel { reason },
        Action::Ship => Command::Ship { by, reason },
        Action::Reject => Command::Reject { by, reason },
        Action::RequestChanges => request_changes(&by, "add a test"),
    }
}

proptest! {
    #[test]
    fn allowed_actions_are_exactly_those_apply_accepts(run in run()) {
        play(&run, |step| {
            let job = step.before;
            let allowed = allowed_actions(job);
            for action in Action::ALL {
                let result = apply(job, command(job, action), step.now, &backoff(), Readiness::Ready);
                prop_assert_eq!(
                    result.is_ok(),
                    allowed.contains(&action),
                    "{} on a {} job: {:?}",
                    action.name(),
                    job.state.name(),
                    result.err()
                );
                // Parents that stay ended refuse a new life, never make a disallowed action
                // acceptable.
                let blocked = Readiness::Blocked { parent: JobId(Uuid::from_u128(7)), state: "dead" };
                if !allowed.contains(&action) {
                    prop_assert!(apply(job, command(job, action), step.now, &backoff(), blocked).is_err());
                }
            }
            Ok(())
        })?;
    }
}

#[test]
fn each_state_allows_the_actions_an_operator_expects() {
    let names =
        |job: &Job| -> Vec<&str> { allowed_actions(job).iter().map(|a| a.name()).collect() };
    let queued_job = queued(spec());
    assert_eq!(names(&queued_job), ["cancel"]);
    let running = leased(spec(), A);
    assert_eq!(names(&running), ["requeue", "cancel"]);
    let dead = ok(&running, fail(A, 1, false, 0.0), T0 + 1).0;
    assert_eq!(names(&dead), ["retry", "requeue"]);
    let review = ok(&leased(spec_with(3, true, true), A), complete(A, 1), T0 + 1).0;
    assert_eq!(
        names(&review),
        ["ship", "request_changes", "reject", "requeue", "cancel"]
    );
    let succeeded = ok(&running, complete(A, 1), T0 + 1).0;
    assert_eq!(names(&succeeded), ["requeue"]);
}

#[test]
fn a_job_past_its_cost_budget_is_not_offered_a_new_life() {
    let capped = JobSpec {
        cost_budget_micros: Some(1),
        ..spec()
    };
    let mut dead = ok(&leased(capped, A), fail(A, 1, false, 0.0), T0 + 1).0;
    dead.cost.add("m", 1, 1, 2);
    assert_eq!(allowed_actions(&dead), Vec::<Action>::new());
}

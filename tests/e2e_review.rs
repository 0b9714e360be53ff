//! Reviews with several reviewers against a real coordinator and factory process: a job that
//! needs two approvals from `ana` and `bo` stays in review after the first, refuses a second
//! approval by the same reviewer and any decision by someone else, refuses a request for
//! changes without a usable reason and changes nothing, runs again with `bo`'s reason in
//! `GF_REVIEW_FEEDBACK` when he asks for changes, and ships once both approved. Tokens are
//! named operator tokens; decisions go through the CLI and the API.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// An operator token named `name`.
fn mint_operator(coord: &Coordinator, name: &str) -> String {
    let (status, v) = post(
        coord,
        "/v1/tokens",
        &json!({"role": "operator", "name": name}).to_string(),
    );
    assert_eq!(status, 200, "{v}");
    v["token"].as_str().unwrap().to_owned()
}

/// An action on job `id` as `token`, with `body` (none: no body).
fn act(
    coord: &Coordinator,
    token: &str,
    id: &str,
    action: &str,
    body: Option<&str>,
) -> (u16, Value) {
    call(
        "POST",
        &format!("{}/v1/jobs/{id}/actions/{action}", coord.url),
        Some(token),
        body,
    )
}

fn expect(got: (u16, Value), status: u16, code: &str, says: &str) {
    assert_eq!(
        (got.0, got.1["error"].as_str()),
        (status, Some(code)),
        "{}",
        got.1
    );
    let message = got.1["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "{message:?} does not say {says:?}");
}

/// What attempt `attempt` of job `id` printed.
fn output(coord: &Coordinator, id: &str, attempt: u64) -> String {
    get(coord, &format!("/v1/jobs/{id}/logs"))
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["attempt"].as_u64() == Some(attempt))
        .map(|l| l["data"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until job `id` is in review after `attempt` attempts, with `printed` in its output.
fn wait_for_review(coord: &Coordinator, id: &str, attempt: u64, printed: &str) {
    wait_for(Duration::from_secs(30), "the job up for review", || {
        let j = job(coord, id);
        j["state"] == "review" && j["attempts"] == attempt
    });
    wait_for(Duration::from_secs(10), "the attempt's output", || {
        output(coord, id, attempt).contains(printed)
    });
}

fn approvers(coord: &Coordinator, id: &str) -> Vec<String> {
    job(coord, id)["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["by"].as_str().unwrap().to_owned())
        .collect()
}

const MANIFEST: &str = r#"
product = "e2e-review"

[[jobs]]
key = "fix"
title = "Fix it, reviewed twice"
command = "echo \"attempt $GF_ATTEMPT, feedback: ${GF_REVIEW_FEEDBACK:-none}\""
review = true
approvals = 2
reviewers = ["ana", "bo"]
"#;

#[test]
fn two_reviewers_approve_a_job_after_one_sent_it_back_with_feedback() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);
    let _factory = Factory::start(&coord, "review-factory", 1, "linux", &dir.path().join("f"));
    let ana = mint_operator(&coord, "ana");
    let bo = mint_operator(&coord, "bo");
    let cy = mint_operator(&coord, "cy");
    let id = submit_manifest(&coord, MANIFEST)[0].1.clone();
    wait_for_review(&coord, &id, 1, "attempt 1, feedback: none");
    let view = job(&coord, &id);
    assert_eq!(view["approvals_required"], 2);
    assert_eq!(view["reviewers"], json!(["ana", "bo"]));

    // ana's approval is one of two: the job waits for another.
    let shipped = cli_as_ok(&coord, &ana, &["jobs", "ship", &id]);
    assert!(
        shipped.contains("1 of 2 approvals: ana; waiting for 1 more"),
        "{shipped}"
    );
    assert_eq!(state(&coord, &id), "review");
    let shown = cli_ok(&coord, &["jobs", "show", &id]);
    assert!(
        shown.contains("review     1 of 2 approvals: ana (")
            && shown.contains("reviewers: ana, bo"),
        "{shown}"
    );

    // A second approval by ana, and any decision by someone who is not a reviewer, are
    // refused and change nothing.
    expect(
        act(&coord, &ana, &id, "ship", None),
        409,
        "already_approved",
        "ana approved this job already (1 of 2 approvals)",
    );
    let (ok, _, err) = cli_as(&coord, &ana, &["jobs", "ship", &id]);
    assert!(!ok && err.contains("already_approved"), "{err}");
    for action in ["ship", "reject"] {
        expect(
            act(&coord, &cy, &id, action, None),
            403,
            "forbidden",
            "cy is not a reviewer of this job (its reviewers: ana, bo)",
        );
    }
    expect(
        act(&coord, &coord.admin, &id, "ship", None),
        403,
        "forbidden",
        "admin is not a reviewer",
    );

    // A request for changes needs a reason of 1 to 2000 bytes in a JSON body.
    let too_long = json!({ "reason": "x".repeat(2001) }).to_string();
    for (body, code, says) in [
        (
            None,
            "malformed_request",
            "request_changes takes a JSON body",
        ),
        (
            Some(r#"{"why": "x"}"#),
            "malformed_request",
            "unknown field",
        ),
        (
            Some(r#"{"reason": " \n "}"#),
            "invalid_request",
            "needs a reason",
        ),
        (Some(too_long.as_str()), "invalid_request", "at most 2000"),
    ] {
        expect(
            act(&coord, &bo, &id, "request_changes", body),
            400,
            code,
            says,
        );
    }
    expect(
        act(
            &coord,
            &cy,
            &id,
            "request_changes",
            Some(r#"{"reason": "no"}"#),
        ),
        403,
        "forbidden",
        "cy is not a reviewer",
    );
    assert_eq!(state(&coord, &id), "review");
    assert_eq!(approvers(&coord, &id), ["ana"]);

    // bo sends it back: the next attempt reads his reason, and the review starts over.
    let asked = cli_as_ok(
        &coord,
        &bo,
        &[
            "jobs",
            "request-changes",
            &id,
            "--reason",
            "handle the empty input",
        ],
    );
    assert!(asked.contains("changes requested"), "{asked}");
    wait_for_review(
        &coord,
        &id,
        2,
        "attempt 2, feedback: handle the empty input",
    );
    let view = job(&coord, &id);
    assert_eq!(view["approvals"], json!([]), "{view}");
    assert_eq!(view["failures"], 0, "a review round is not a failure");
    let timeline = events(&coord, &id);
    let said = |kind: &str| -> Vec<(String, String)> {
        timeline
            .iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| {
                (
                    e["actor"].as_str().unwrap().to_owned(),
                    e["detail"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        said("ship"),
        [(
            "operator:ana".to_owned(),
            "approved by ana (1 of 2)".to_owned()
        )]
    );
    assert_eq!(
        said("request_changes"),
        [(
            "operator:bo".to_owned(),
            "handle the empty input".to_owned()
        )]
    );

    // Both approve: the second approval ships it.
    cli_as_ok(&coord, &bo, &["jobs", "ship", &id]);
    assert_eq!(state(&coord, &id), "review");
    let last = cli_as_ok(&coord, &ana, &["jobs", "ship", &id]);
    assert!(
        last.contains("shipped with 2 of 2 approvals: bo, ana"),
        "{last}"
    );
    assert_eq!(state(&coord, &id), "shipped");
    assert_eq!(approvers(&coord, &id), ["bo", "ana"]);

    // The actions route names every action when asked for one it does not know.
    expect(
        act(&coord, &ana, &id, "approve", None),
        400,
        "invalid_request",
        "use ship, request_changes, reject, retry, requeue, cancel",
    );
}

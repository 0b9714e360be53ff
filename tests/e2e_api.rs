//! Bad input and wrong credentials against a real coordinator process: each gets a clear 4xx
//! with a stable `error` code, and nothing changes.

mod common;

use std::time::Duration;

use common::*;

fn jobs_count(coord: &Coordinator) -> usize {
    get(coord, "/v1/jobs?limit=500")["jobs"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn bad_input_and_wrong_tokens_get_clear_errors_and_change_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);
    let url = |p: &str| format!("{}{p}", coord.url);
    let admin = Some(coord.admin.as_str());
    let job_body =
        r#"{"key": "k", "title": "t", "product": "e2e", "payload": {"command": "sleep 30"}}"#;

    // Authentication and roles.
    expect_error(
        &call("GET", &url("/v1/jobs"), None, None),
        401,
        "unauthorized",
    );
    expect_error(
        &call("GET", &url("/v1/jobs"), Some("gf_not-a-token"), None),
        401,
        "unauthorized",
    );
    let viewer = post(&coord, "/v1/tokens", r#"{"role": "viewer", "name": "v"}"#).1["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(call("GET", &url("/v1/jobs"), Some(&viewer), None).0, 200);
    expect_error(
        &call("POST", &url("/v1/jobs"), Some(&viewer), Some(job_body)),
        403,
        "forbidden",
    );
    expect_error(
        &call(
            "POST",
            &url("/v1/tokens"),
            Some(&viewer),
            Some(r#"{"role": "admin", "name": "x"}"#),
        ),
        403,
        "forbidden",
    );
    expect_error(
        &post(&coord, "/v1/tokens", r#"{"role": "god", "name": "x"}"#),
        400,
        "invalid_request",
    );

    // Malformed, unknown and oversized bodies.
    expect_error(
        &call("POST", &url("/v1/jobs"), admin, Some("{not json")),
        400,
        "malformed_request",
    );
    expect_error(
        &call(
            "POST",
            &url("/v1/jobs"),
            admin,
            Some(
                r#"{"key": "k", "title": "t", "product": "e2e", "payload": {"command": "true"}, "colour": "red"}"#,
            ),
        ),
        400,
        "malformed_request",
    );
    let huge = format!(
        r#"{{"key": "k", "title": "t", "product": "e2e", "payload": {{"command": "{}"}}}}"#,
        "x".repeat(9 * 1024 * 1024)
    );
    expect_error(
        &call("POST", &url("/v1/jobs"), admin, Some(&huge)),
        413,
        "payload_too_large",
    );
    let (status, v) = call(
        "POST",
        &url("/v1/manifests"),
        admin,
        Some("product = \"e2e\"\n[[jobs]]\nkey = \"bad key!\"\ntitle = \"\"\npriority = 5000\n"),
    );
    assert_eq!(
        (status, v["error"].as_str()),
        (422, Some("invalid_manifest")),
        "{v}"
    );
    let details: Vec<&str> = v["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(
        details.len() >= 3 && details.iter().all(|d| d.contains("jobs[0]")),
        "every problem, with its location: {details:?}"
    );
    expect_error(
        &call("GET", &url("/v1/jobs/not-a-uuid"), admin, None),
        400,
        "malformed_request",
    );
    expect_error(
        &call(
            "GET",
            &url("/v1/jobs/01a21e40-ef79-7509-9f0c-dfccbc9a3f6b"),
            admin,
            None,
        ),
        404,
        "not_found",
    );
    expect_error(
        &call("GET", &url("/v1/nowhere"), admin, None),
        404,
        "not_found",
    );
    assert_eq!(jobs_count(&coord), 0, "no refused request made a job");

    // Weights: out of range is refused whole; a valid override is what placement then uses.
    expect_error(
        &call(
            "PUT",
            &url("/v1/products/e2e/weights"),
            admin,
            Some(r#"{"priority": 20.0}"#),
        ),
        400,
        "invalid_request",
    );
    expect_error(
        &call(
            "PUT",
            &url("/v1/products/e2e/weights"),
            admin,
            Some(r#"{"colour": 1.0}"#),
        ),
        400,
        "malformed_request",
    );
    expect_error(
        &call(
            "PUT",
            &url("/v1/products/e2e/weights"),
            Some(&viewer),
            Some(r#"{"age": 2.0}"#),
        ),
        403,
        "forbidden",
    );
    assert_eq!(
        get(&coord, "/v1/products/e2e/weights")["effective"]["age"],
        0.5,
        "refused writes changed nothing"
    );
    let (s, w) = call(
        "PUT",
        &url("/v1/products/e2e/weights"),
        admin,
        Some(r#"{"age": 2.0}"#),
    );
    assert_eq!(s, 200, "{w}");
    let w = get(&coord, "/v1/products/e2e/weights");
    assert_eq!(
        (
            w["effective"]["age"].as_f64(),
            w["effective"]["priority"].as_f64()
        ),
        (Some(2.0), Some(1.0))
    );

    // Paths changed outside a job's scope become a warning event, never a failure.
    let scoped = r#"{"key": "scoped", "title": "scoped", "product": "e2e", "payload": {"command": "true"}, "allowed_scope": ["src/**"]}"#;
    let scoped_id = post(&coord, "/v1/jobs", scoped).1["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, f0) = call(
        "POST",
        &url("/v1/factories/enroll"),
        Some(&enrollment_token(&coord)),
        Some(r#"{"name": "f0", "os": "linux", "arch": "x86_64", "slots": 1}"#),
    );
    let f0_token = f0["token"].as_str().unwrap().to_string();
    let (_, c) = call(
        "POST",
        &url("/v1/claims"),
        Some(&f0_token),
        Some(r#"{"max_jobs": 1, "wait_ms": 2000}"#),
    );
    assert_eq!(c["jobs"][0]["job_id"].as_str(), Some(scoped_id.as_str()));
    let done = format!(
        r#"{{"epoch": {}, "request_id": "c1", "changed_paths": ["src/a.rs", "secrets.txt"]}}"#,
        c["jobs"][0]["epoch"]
    );
    assert_eq!(
        call(
            "POST",
            &url(&format!("/v1/jobs/{scoped_id}/complete")),
            Some(&f0_token),
            Some(&done)
        )
        .0,
        200
    );
    assert_eq!(state(&coord, &scoped_id), "succeeded");
    let warning = events(&coord, &scoped_id)
        .into_iter()
        .find(|e| e["kind"] == "scope_warning")
        .expect("a scope warning event");
    let detail = warning["detail"].as_str().unwrap();
    assert!(
        detail.contains("secrets.txt") && !detail.contains("src/a.rs"),
        "{detail}"
    );

    // Illegal transitions.
    let (status, made) = post(&coord, "/v1/jobs", job_body);
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_str().unwrap().to_string();
    expect_error(
        &post(&coord, &format!("/v1/jobs/{id}/actions/ship"), ""),
        409,
        "illegal_transition",
    );
    expect_error(
        &post(&coord, &format!("/v1/jobs/{id}/actions/explode"), ""),
        400,
        "invalid_request",
    );
    assert_eq!(state(&coord, &id), "queued");

    // Factories: enrollment is spent once; a factory acts only on its own leases.
    let enroll = enrollment_token(&coord);
    let enroll_body =
        r#"{"name": "manual", "os": "linux", "arch": "x86_64", "slots": 1, "capabilities": []}"#;
    let (s, f1) = call(
        "POST",
        &url("/v1/factories/enroll"),
        Some(&enroll),
        Some(enroll_body),
    );
    assert_eq!(s, 200, "{f1}");
    expect_error(
        &call(
            "POST",
            &url("/v1/factories/enroll"),
            Some(&enroll),
            Some(enroll_body),
        ),
        401,
        "unauthorized",
    );
    let (f1_id, f1_token) = (
        f1["factory_id"].as_str().unwrap().to_string(),
        f1["token"].as_str().unwrap().to_string(),
    );
    expect_error(
        &call("GET", &url("/v1/jobs"), Some(&f1_token), None),
        403,
        "forbidden",
    );
    let (s, claimed) = call(
        "POST",
        &url("/v1/claims"),
        Some(&f1_token),
        Some(r#"{"max_jobs": 1, "wait_ms": 2000}"#),
    );
    assert_eq!(s, 200, "{claimed}");
    let epoch = claimed["jobs"][0]["epoch"].as_u64().unwrap();
    let (_, f2) = call(
        "POST",
        &url("/v1/factories/enroll"),
        Some(&enrollment_token(&coord)),
        Some(enroll_body),
    );
    let f2_token = f2["token"].as_str().unwrap().to_string();
    let renew = format!(r#"{{"epoch": {epoch}, "request_id": "r1"}}"#);
    expect_error(
        &call(
            "POST",
            &url(&format!("/v1/jobs/{id}/renew")),
            Some(&f2_token),
            Some(&renew),
        ),
        403,
        "not_lease_holder",
    );
    expect_error(
        &call(
            "POST",
            &url(&format!("/v1/factories/{f1_id}/heartbeat")),
            Some(&f2_token),
            Some(r#"{"slots_busy": 0}"#),
        ),
        403,
        "forbidden",
    );
    let stale = format!(r#"{{"epoch": {}, "request_id": "r2"}}"#, epoch + 5);
    let fenced = call(
        "POST",
        &url(&format!("/v1/jobs/{id}/complete")),
        Some(&f1_token),
        Some(&stale),
    );
    expect_error(&fenced, 409, "fenced");
    assert_eq!(fenced.1["current_epoch"].as_u64(), Some(epoch));
    assert_eq!(
        state(&coord, &id),
        "leased",
        "refused writes changed nothing"
    );

    // A retried write with the same request id gets the same answer.
    let first = call(
        "POST",
        &url(&format!("/v1/jobs/{id}/renew")),
        Some(&f1_token),
        Some(&renew),
    );
    assert_eq!(first.0, 200, "{}", first.1);
    let again = call(
        "POST",
        &url(&format!("/v1/jobs/{id}/renew")),
        Some(&f1_token),
        Some(&renew),
    );
    assert_eq!(again.0, 200);
    assert_eq!(
        events(&coord, &id)
            .iter()
            .filter(|e| e["kind"] == "stage" || e["kind"] == "complete")
            .count(),
        0
    );

    // Rotation and revocation take effect at once.
    let rotated = post(&coord, &format!("/v1/factories/{f1_id}/rotate"), "").1["token"]
        .as_str()
        .unwrap()
        .to_string();
    expect_error(
        &call(
            "POST",
            &url(&format!("/v1/jobs/{id}/renew")),
            Some(&f1_token),
            Some(&renew),
        ),
        401,
        "unauthorized",
    );
    let renew2 = format!(r#"{{"epoch": {epoch}, "request_id": "r3"}}"#);
    assert_eq!(
        call(
            "POST",
            &url(&format!("/v1/jobs/{id}/renew")),
            Some(&rotated),
            Some(&renew2)
        )
        .0,
        200
    );
    assert_eq!(
        post(&coord, &format!("/v1/factories/{f1_id}/revoke"), "").0,
        204
    );
    expect_error(
        &call(
            "POST",
            &url(&format!("/v1/jobs/{id}/renew")),
            Some(&rotated),
            Some(&renew2),
        ),
        401,
        "unauthorized",
    );
    wait_for(
        Duration::from_secs(30),
        "the revoked factory's lease to be reaped",
        || state(&coord, &id) != "leased" && state(&coord, &id) != "running",
    );
}

/// Found by the API contract check (`scripts/api-contract`): serde reads a struct from an
/// array of its fields in order, so `PUT weights` with `[null, null]` reset a product's
/// weights with 200; and an artifact's attempt that is not a number was refused in plain text.
#[test]
fn a_body_that_is_not_an_object_and_an_attempt_that_is_not_a_number_get_json_errors() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);
    let url = |p: &str| format!("{}{p}", coord.url);
    let admin = Some(coord.admin.as_str());
    let weights = url("/v1/products/p/weights");
    assert_eq!(call("PUT", &weights, admin, Some(r#"{"age": 2}"#)).0, 200);
    expect_error(
        &call("PUT", &weights, admin, Some("[null, null]")),
        400,
        "malformed_request",
    );
    assert_eq!(
        get(&coord, "/v1/products/p/weights")["override"]["age"],
        2.0
    );
    let spec_as_array = r#"["k", "t", "e2e", {"command": "true"}]"#;
    expect_error(
        &call("POST", &url("/v1/jobs"), admin, Some(spec_as_array)),
        400,
        "malformed_request",
    );
    assert_eq!(jobs_count(&coord), 0);
    let job = "0190aaaa-0000-7000-8000-000000000000";
    expect_error(
        &call(
            "GET",
            &url(&format!("/v1/jobs/{job}/artifacts/first/out.txt")),
            admin,
            None,
        ),
        400,
        "malformed_request",
    );
}

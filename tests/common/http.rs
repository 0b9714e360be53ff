//! HTTP calls the end-to-end tests make with curl (so a test speaks to the coordinator as any
//! client does, over the test CA when TLS is on): a status and a JSON body, or the answer's
//! headers too, and the check every error answer must pass.

use std::collections::HashMap;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::curl_command;

/// One HTTP call: status and JSON body (Null when empty or not JSON). The body goes through
/// stdin, so it may be larger than an argument list allows.
pub fn call(method: &str, url: &str, token: Option<&str>, body: Option<&str>) -> (u16, Value) {
    let mut cmd = curl_command();
    cmd.args(["-X", method]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if method != "GET" {
        // Every write says it is JSON, as the API requires (a cross-site form cannot).
        cmd.args(["-H", "content-type: application/json"]);
    }
    if body.is_some() {
        cmd.args(["--data-binary", "@-"]);
    }
    cmd.arg(url);
    curl(cmd, body.unwrap_or_default().as_bytes())
}

/// Runs `cmd` (a curl with its method, headers and URL) with `body` on its stdin: the status
/// and the JSON body (Null when empty or not JSON).
pub fn curl(mut cmd: Command, body: &[u8]) -> (u16, Value) {
    use std::io::Write;
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("curl");
    let mut stdin = child.stdin.take().unwrap();
    // The server may answer (413) before reading it all; a broken pipe is fine then.
    let _ = stdin.write_all(body);
    drop(stdin);
    let out = child.wait_with_output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// Asserts an error answer: its status, its stable `error` code, and a message saying why.
#[track_caller]
pub fn expect_error(got: &(u16, Value), status: u16, code: &str) {
    assert_eq!(
        (got.0, got.1["error"].as_str()),
        (status, Some(code)),
        "{}",
        got.1
    );
    assert!(
        !got.1["message"].as_str().unwrap_or_default().is_empty(),
        "every error says why: {}",
        got.1
    );
}

/// Like [`call`], with extra headers and no token (a tracker's webhook, say).
pub fn call_with(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let mut cmd = curl_command();
    cmd.args(["-X", method, "-H", "content-type: application/json"]);
    for (name, value) in headers {
        cmd.args(["-H", &format!("{name}: {value}")]);
    }
    cmd.args(["--data-binary", "@-", url]);
    curl(cmd, body.as_bytes())
}

/// One HTTP call with `headers` (and no others but curl's own): status, answer headers
/// (lower-cased names) and JSON body (Null when empty or not JSON).
pub fn raw(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, HashMap<String, String>, Value) {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("headers");
    let mut cmd = curl_command();
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, "-D"])
        .arg(&dump);
    for (name, value) in headers {
        cmd.args(["-H", &format!("{name}: {value}")]);
    }
    if let Some(b) = body {
        cmd.args(["--data-binary", b]);
    }
    let out = cmd.arg(url).stdout(Stdio::piped()).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let answer_headers = std::fs::read_to_string(&dump)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (
        code.trim().parse().unwrap_or(0),
        answer_headers,
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

//! Artifacts over HTTP for end-to-end tests: a factory's upload (with or without a length,
//! through curl), a download, and the SHA-256 the coordinator names blobs by.

use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};

pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Bytes no compressor or dedup would shorten, `len` of them.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `PUT /v1/jobs/{id}/artifacts/{name}` with `bytes` as the body: with a `Content-Length`,
/// or chunked (no length known up front) when `chunked`.
#[allow(clippy::too_many_arguments)]
pub fn upload(
    url: &str,
    token: &str,
    id: &str,
    name: &str,
    epoch: u64,
    kind: &str,
    bytes: &[u8],
    chunked: bool,
) -> (u16, Value) {
    let sha = sha256(bytes);
    let target = format!(
        "{url}/v1/jobs/{id}/artifacts/{name}?epoch={epoch}&request_id=up-{epoch}-{sha}&kind={kind}&sha256={sha}"
    );
    put_bytes(&target, token, bytes, chunked)
}

/// `PUT` of `bytes` (an artifact's, `application/octet-stream`) to `target` with `token`:
/// status and JSON body.
pub fn put_bytes(target: &str, token: &str, bytes: &[u8], chunked: bool) -> (u16, Value) {
    let mut cmd = Command::new("curl");
    // With `Expect: 100-continue` a body goes only once the server asks for it: a refusal
    // sent before reading (a stale epoch, 413) then never races a body still being written
    // into a connection the server closes, which curl would report as no answer at all.
    cmd.args(["-X", "PUT"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", "content-type: application/octet-stream"])
        .args(["-H", "Expect: 100-continue"]);
    if chunked {
        cmd.args(["-H", "Transfer-Encoding: chunked", "-T", "-"]);
    } else {
        cmd.args(["--data-binary", "@-"]);
    }
    cmd.arg(target);
    super::curl(cmd, bytes)
}

/// `GET` of an artifact's bytes: status, headers (lower-cased names) and body.
pub fn download(url: &str, token: &str, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (body, headers) = (dir.path().join("body"), dir.path().join("headers"));
    let out = Command::new("curl")
        .args(["-s", "-w", "%{http_code}", "-o"])
        .arg(&body)
        .arg("-D")
        .arg(&headers)
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("{url}{path}"))
        .output()
        .expect("curl");
    let code = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let headers = std::fs::read_to_string(&headers)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (code, headers, std::fs::read(&body).unwrap_or_default())
}

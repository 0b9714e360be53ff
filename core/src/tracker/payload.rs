//! Tracker deliveries as they arrive: the signature each source sends (HMAC-SHA256 of the raw
//! body with the source's secret, compared in constant time) and the three payload shapes —
//! GitHub's issue events, Linear's issue webhooks, and a generic JSON item — read into one
//! [`TrackerItem`].

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::{IntakeError, SourceKind, TrackerItem};
use crate::wire::hex;

/// The header that carries a source's signature.
pub fn signature_header(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Github => "x-hub-signature-256",
        SourceKind::Linear => "linear-signature",
        SourceKind::Generic => "x-gigafactory-signature",
    }
}

/// `sha256=<hex>` of `body` under `secret`: what GitHub and the generic source send, and what
/// our callbacks carry.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex(&mac(secret, body)))
}

fn mac(secret: &[u8], body: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Whether `header` (the value of [`signature_header`]) signs `body` with `secret`. Linear
/// sends the bare hex digest, the others `sha256=<hex>`. The comparison takes the same time
/// whatever the digest, so it leaks nothing about the expected one.
pub fn signature_ok(kind: SourceKind, secret: &[u8], header: Option<&str>, body: &[u8]) -> bool {
    let Some(header) = header.map(str::trim) else {
        return false;
    };
    let hex_part = match kind {
        SourceKind::Linear => header,
        SourceKind::Github | SourceKind::Generic => match header.strip_prefix("sha256=") {
            Some(h) => h,
            None => return false,
        },
    };
    let Some(given) = unhex(hex_part) else {
        return false;
    };
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(body);
    m.verify_slice(&given).is_ok()
}

/// Reads a delivery's body as its source shapes it.
pub fn parse_item(kind: SourceKind, body: &[u8]) -> Result<TrackerItem, IntakeError> {
    let bad = |e: serde_json::Error| IntakeError::Payload(e.to_string());
    match kind {
        SourceKind::Github => {
            let p: GithubEvent = serde_json::from_slice(body).map_err(bad)?;
            let repo = p.repository.map(|r| r.full_name).unwrap_or_default();
            Ok(TrackerItem {
                id: format!("{repo}#{}", p.issue.number),
                revision: format!("{}:{}", p.issue.updated_at, p.action),
                title: p.issue.title,
                body: p.issue.body.unwrap_or_default(),
                url: p.issue.html_url,
                labels: p.issue.labels.into_iter().map(|l| l.name).collect(),
                open: p.issue.state == "open",
            })
        }
        SourceKind::Linear => {
            let p: LinearEvent = serde_json::from_slice(body).map_err(bad)?;
            if p.kind != "Issue" {
                return Err(IntakeError::Payload(format!(
                    "a Linear {} is not an issue",
                    p.kind
                )));
            }
            let closed = p.action == "remove"
                || matches!(p.data.state.kind.as_str(), "completed" | "canceled");
            Ok(TrackerItem {
                id: p.data.identifier.unwrap_or(p.data.id),
                revision: format!("{}:{}", p.data.updated_at, p.action),
                title: p.data.title,
                body: p.data.description.unwrap_or_default(),
                url: p.data.url,
                labels: p.data.labels.into_iter().map(|l| l.name).collect(),
                open: !closed,
            })
        }
        SourceKind::Generic => {
            let p: GenericItem = serde_json::from_slice(body).map_err(bad)?;
            Ok(TrackerItem {
                id: p.id,
                revision: p.revision,
                title: p.title,
                body: p.body,
                url: p.url,
                labels: p.labels,
                open: p.state != "closed",
            })
        }
    }
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
struct GithubEvent {
    action: String,
    issue: GithubIssue,
    repository: Option<GithubRepo>,
}

#[derive(Deserialize)]
struct GithubIssue {
    number: u64,
    title: String,
    body: Option<String>,
    html_url: String,
    #[serde(default)]
    labels: Vec<Named>,
    state: String,
    updated_at: String,
}

#[derive(Deserialize)]
struct GithubRepo {
    full_name: String,
}

#[derive(Deserialize)]
struct LinearEvent {
    action: String,
    #[serde(rename = "type")]
    kind: String,
    data: LinearIssue,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LinearIssue {
    id: String,
    identifier: Option<String>,
    title: String,
    description: Option<String>,
    url: String,
    #[serde(default)]
    labels: Vec<Named>,
    state: LinearState,
    updated_at: String,
}

#[derive(Deserialize)]
struct LinearState {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct GenericItem {
    id: String,
    revision: String,
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default = "open")]
    state: String,
}

fn open() -> String {
    "open".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_with_its_secret_and_body() {
        let body = br#"{"id": "1"}"#;
        let sig = sign(b"s3cret", body);
        assert!(sig.starts_with("sha256="));
        assert!(signature_ok(
            SourceKind::Github,
            b"s3cret",
            Some(&sig),
            body
        ));
        assert!(!signature_ok(
            SourceKind::Github,
            b"other",
            Some(&sig),
            body
        ));
        assert!(!signature_ok(
            SourceKind::Github,
            b"s3cret",
            Some(&sig),
            b"{}"
        ));
        assert!(!signature_ok(SourceKind::Github, b"s3cret", None, body));
        assert!(!signature_ok(
            SourceKind::Github,
            b"s3cret",
            Some("sha256=zz"),
            body
        ));
        let bare = sig.trim_start_matches("sha256=");
        assert!(signature_ok(
            SourceKind::Linear,
            b"s3cret",
            Some(bare),
            body
        ));
        assert!(
            !signature_ok(SourceKind::Generic, b"s3cret", Some(bare), body),
            "prefix needed"
        );
    }

    #[test]
    fn the_three_payload_shapes_read_as_one_item() {
        let gh = br#"{"action": "opened", "repository": {"full_name": "acme/app"},
            "issue": {"number": 42, "title": "Crash on start", "body": "stack trace",
            "html_url": "https://github.com/acme/app/issues/42", "state": "open",
            "updated_at": "2026-12-02T10:00:00Z", "labels": [{"name": "bug"}]}}"#;
        let item = parse_item(SourceKind::Github, gh).unwrap();
        assert_eq!(item.id, "acme/app#42");
        assert_eq!(item.revision, "2026-12-02T10:00:00Z:opened");
        assert_eq!((item.labels, item.open), (vec!["bug".to_string()], true));

        let linear = br#"{"action": "update", "type": "Issue", "data": {"id": "uuid-1",
            "identifier": "ENG-7", "title": "Slow page", "description": null,
            "url": "https://linear.app/acme/issue/ENG-7", "labels": [],
            "state": {"type": "completed"}, "updatedAt": "2026-12-02T11:00:00Z"}}"#;
        let item = parse_item(SourceKind::Linear, linear).unwrap();
        assert_eq!(
            (item.id.as_str(), item.open, item.body.as_str()),
            ("ENG-7", false, "")
        );

        let generic = br#"{"id": "T-1", "revision": "3", "title": "Do it", "state": "closed"}"#;
        let item = parse_item(SourceKind::Generic, generic).unwrap();
        assert_eq!(
            (item.id.as_str(), item.revision.as_str(), item.open),
            ("T-1", "3", false)
        );

        assert!(matches!(
            parse_item(SourceKind::Generic, b"{}"),
            Err(IntakeError::Payload(_))
        ));
    }
}

//! The audit log's entries: who (the caller's role and token name) did what (the route's
//! action) to what (its target), when, and how it ended (the answer's HTTP status); and the
//! filter readers page through it with.

use serde::{Deserialize, Serialize};

use crate::job::Millis;

/// One operator or admin request that could change something, as it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditEntry {
    pub at: Millis,
    /// The caller's role (`admin`, `operator`, `viewer`, `enrollment`).
    pub role: String,
    /// The caller's token name (`insecure-dev` for a token-less caller of a development node).
    pub caller: String,
    /// The route as `METHOD /path/{param}`: `POST /v1/factories/{id}/drain`.
    pub action: String,
    /// What it acted on: the route's parameters, or what the route names (a minted token's id).
    pub target: String,
    /// The HTTP status it was answered with: a refusal is recorded too.
    pub status: u16,
}

/// Longest text of an entry's action or target, in bytes (longer ones are cut).
pub const AUDIT_TEXT_MAX_BYTES: usize = 512;

/// Which entries a reader wants: every given part must match, as a substring.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub action: Option<String>,
    /// Matches the caller's name or `role:name`.
    pub caller: Option<String>,
}

impl AuditFilter {
    pub fn matches(&self, e: &AuditEntry) -> bool {
        let action = self.action.as_ref().is_none_or(|a| e.action.contains(a));
        let caller = self
            .caller
            .as_ref()
            .is_none_or(|c| format!("{}:{}", e.role, e.caller).contains(c));
        action && caller
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
pub fn clip(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> AuditEntry {
        AuditEntry {
            at: 1,
            role: "admin".into(),
            caller: "alice".into(),
            action: "POST /v1/factories/{id}/drain".into(),
            target: "id=f1".into(),
            status: 204,
        }
    }

    #[test]
    fn a_filter_matches_only_when_every_given_part_does() {
        let f = |action: Option<&str>, caller: Option<&str>| AuditFilter {
            action: action.map(Into::into),
            caller: caller.map(Into::into),
        };
        assert!(f(None, None).matches(&entry()));
        assert!(f(Some("drain"), Some("alice")).matches(&entry()));
        assert!(f(None, Some("admin:alice")).matches(&entry()));
        assert!(!f(Some("revoke"), Some("alice")).matches(&entry()));
        assert!(!f(Some("drain"), Some("operator:")).matches(&entry()));
    }

    #[test]
    fn clipping_keeps_whole_characters() {
        assert_eq!(clip("héllo", 2), "h");
        assert_eq!(clip("héllo", 3), "hé");
        assert_eq!(clip("abc", 10), "abc");
    }
}

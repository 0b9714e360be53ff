//! What a job asks to work in: a git repository (`url`) at a revision (`rev`). The factory
//! keeps one mirror per URL and checks the revision out as the job's working directory; here
//! are the spec and its bounds, as plain functions.

use serde::{Deserialize, Serialize};

/// Longest repository URL accepted, in bytes.
pub const REPO_URL_MAX_BYTES: usize = 2_048;
/// Longest revision accepted, in bytes (git's ref names are bounded by paths anyway).
pub const REPO_REV_MAX_BYTES: usize = 255;

/// A repository and the revision the job works at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepoSpec {
    /// What `git clone` accepts: `https://…`, `ssh://…`, `file://…` or a path on the factory.
    pub url: String,
    /// A branch, a tag or a commit.
    #[serde(default = "default_rev")]
    pub rev: String,
}

fn default_rev() -> String {
    "HEAD".to_owned()
}

impl RepoSpec {
    /// Every problem with the spec, as `(field, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Err(message) = check_url(&self.url) {
            out.push(("url", message));
        }
        if let Err(message) = check_rev(&self.rev) {
            out.push(("rev", message));
        }
        out
    }

    /// The affinity a job with this repository has when it names none: the URL, when it reads
    /// as a `kind:value` key (a URL's scheme is its kind), so the scheduler prefers factories
    /// whose mirror of it is warm.
    pub fn default_affinity(&self) -> Option<&str> {
        crate::limits::check_key(&self.url)
            .is_ok()
            .then_some(self.url.as_str())
    }
}

fn check_url(url: &str) -> Result<(), String> {
    if url.is_empty() || url.len() > REPO_URL_MAX_BYTES {
        return Err(format!(
            "must be 1 to {REPO_URL_MAX_BYTES} bytes, got {}",
            url.len()
        ));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not hold spaces or control characters".into());
    }
    // git would read it as an option.
    if url.starts_with('-') {
        return Err("must not start with '-'".into());
    }
    Ok(())
}

/// A branch, tag or commit name as git allows it (`git check-ref-format`, in short): no `..`,
/// no leading `-` (an option), no spaces, control characters or `~^:?*[\`.
fn check_rev(rev: &str) -> Result<(), String> {
    if rev.is_empty() || rev.len() > REPO_REV_MAX_BYTES {
        return Err(format!(
            "must be 1 to {REPO_REV_MAX_BYTES} bytes, got {}",
            rev.len()
        ));
    }
    if rev.starts_with('-') {
        return Err("must not start with '-'".into());
    }
    if rev.contains("..") || rev.contains("@{") || rev.ends_with('/') || rev.ends_with(".lock") {
        return Err(format!("is not a branch, tag or commit name: {rev:?}"));
    }
    if rev
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c))
    {
        return Err(format!("is not a branch, tag or commit name: {rev:?}"));
    }
    Ok(())
}

/// One line: `https://example.com/acme/api.git @ main` (what the CLI and the job page show).
impl std::fmt::Display for RepoSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} @ {}", self.url, self.rev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(url: &str, rev: &str) -> RepoSpec {
        RepoSpec {
            url: url.into(),
            rev: rev.into(),
        }
    }

    #[test]
    fn a_url_and_a_branch_tag_or_commit_are_accepted() {
        for rev in ["main", "v1.2.0", "feature/x", "0123456789abcdef", "HEAD"] {
            assert!(repo("https://example.com/a.git", rev).problems().is_empty());
        }
        assert!(repo("/srv/git/a", "main").problems().is_empty());
        let read: RepoSpec = serde_json::from_str(r#"{"url": "file:///srv/a"}"#).unwrap();
        assert_eq!(read.rev, "HEAD");
    }

    #[test]
    fn bad_urls_and_revs_are_named() {
        let fields = |r: RepoSpec| r.problems().into_iter().map(|p| p.0).collect::<Vec<_>>();
        assert_eq!(fields(repo("", "main")), ["url"]);
        assert_eq!(fields(repo("-uhack", "main")), ["url"]);
        assert_eq!(fields(repo("https://a\n", "main")), ["url"]);
        assert_eq!(
            fields(repo(&"a".repeat(REPO_URL_MAX_BYTES + 1), "x")),
            ["url"]
        );
        for rev in [
            "", "-x", "a..b", "a b", "a\u{7}", "a~1", "x^", "@{u}", "a:b", "x/",
        ] {
            assert_eq!(fields(repo("https://a", rev)), ["rev"], "{rev:?}");
        }
        assert!(serde_json::from_str::<RepoSpec>(r#"{"url": "x", "branch": "y"}"#).is_err());
    }

    #[test]
    fn the_default_affinity_is_the_url_when_it_reads_as_a_key() {
        let r = repo("https://example.com/acme/api.git", "main");
        assert_eq!(
            r.default_affinity(),
            Some("https://example.com/acme/api.git")
        );
        // A plain path has no kind: no default, rather than an affinity no heartbeat carries.
        assert_eq!(repo("/srv/git/a", "main").default_affinity(), None);
        assert_eq!(r.to_string(), "https://example.com/acme/api.git @ main");
    }
}

//! Artifacts: files an attempt of a job saves (a patch, a report, a link, any file), named by
//! the SHA-256 of their bytes. What a name and a digest may be, what media type a file is
//! shown as, whether one more file fits the job's limits, and when retention ends it. The
//! bytes live in a blob store; this is only the arithmetic and the rules.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::job::Millis;

/// Most artifacts one job may be configured to keep.
pub const JOB_COUNT_MAX: usize = 1_000;

/// Longest artifact name, in bytes.
pub const NAME_MAX_BYTES: usize = 200;

/// What an artifact is, which decides how it is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactKind {
    /// Any file.
    #[default]
    File,
    /// A diff, shown with its additions and removals.
    Patch,
    /// A document for a reviewer (Markdown, text, HTML).
    Report,
    /// A URL (a pull request, a dashboard): the file holds the link.
    Link,
}

impl ArtifactKind {
    pub const ALL: [ArtifactKind; 4] = [
        ArtifactKind::File,
        ArtifactKind::Patch,
        ArtifactKind::Report,
        ArtifactKind::Link,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ArtifactKind::File => "file",
            ArtifactKind::Patch => "patch",
            ArtifactKind::Report => "report",
            ArtifactKind::Link => "link",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("kind must be one of file, patch, report, link (got {s:?})"))
    }
}

/// A file a job saves: what the factory's write says of it once its bytes are stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactFile {
    pub name: String,
    pub kind: ArtifactKind,
    pub size: u64,
    /// Lower-case hex SHA-256 of the bytes: the blob's name.
    pub sha256: String,
    pub media_type: String,
}

/// One saved file of one attempt, as the job keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub file: ArtifactFile,
    /// The attempt (the nth lease of the job) that saved it.
    pub attempt: u32,
    /// The lease's epoch under which it was saved.
    pub epoch: u64,
    pub created_at: Millis,
}

/// Bounds on what one job keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactLimits {
    pub file_max_bytes: u64,
    /// Every attempt's artifacts together.
    pub job_max_bytes: u64,
    pub job_max_count: usize,
}

impl Default for ArtifactLimits {
    fn default() -> Self {
        ArtifactLimits {
            file_max_bytes: 100 << 20,
            job_max_bytes: 1 << 30,
            job_max_count: JOB_COUNT_MAX,
        }
    }
}

/// Why an artifact was not kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    /// The file alone, or the job's artifacts with it, pass their limit.
    #[error("the {scope} passes its limit of {limit_bytes} bytes")]
    TooLarge {
        /// `artifact` or `job's artifacts`.
        scope: &'static str,
        limit_bytes: u64,
    },
    #[error("the job keeps at most {limit} artifacts")]
    TooMany { limit: usize },
}

/// A name is one path segment: no separators, nothing hidden by the terminal, not `.` or `..`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > NAME_MAX_BYTES {
        return Err(format!("name must be 1 to {NAME_MAX_BYTES} bytes"));
    }
    if name == "." || name == ".." {
        return Err("name must not be . or ..".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '/' | '\\') || c.is_control())
    {
        return Err(format!("name must not contain {c:?}"));
    }
    Ok(())
}

/// A digest is 64 lower-case hex digits.
pub fn check_digest(sha256: &str) -> Result<(), String> {
    if sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err("sha256 must be 64 lower-case hex digits".into())
    }
}

/// Where a blob lives in the blob store: fanned out by its first two digits.
pub fn blob_path(sha256: &str) -> String {
    format!("sha256/{}/{sha256}", &sha256[..2])
}

/// Longest link an artifact of kind `link` may hold, in bytes.
pub const LINK_MAX_BYTES: usize = 4_096;

/// The kind a file is saved as when the job does not say: patches and diffs by their
/// extension, documents a reviewer reads as reports, anything else as a file.
pub fn kind_for(name: &str) -> ArtifactKind {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "patch" | "diff" => ArtifactKind::Patch,
        "md" | "markdown" | "html" | "htm" => ArtifactKind::Report,
        _ => ArtifactKind::File,
    }
}

/// Whether `url` may be saved as a link: an absolute http(s) URL on one line. The control
/// plane opens nothing else.
pub fn check_link(url: &str) -> Result<(), String> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return Err(format!(
            "a link must start with http:// or https:// (got {url:?})"
        ));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("a link must name a host (got {url:?})"));
    }
    if url.len() > LINK_MAX_BYTES {
        return Err(format!("a link must be at most {LINK_MAX_BYTES} bytes"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a link must not hold spaces or control characters".into());
    }
    Ok(())
}

/// Names for files a job's `artifacts` globs matched (workspace-relative paths with `/`):
/// each is saved under its file name when no other match shares it and it is not `taken`
/// already; the others under their whole path with `/` as `_`, and should that clash too,
/// with `~2`, `~3`... before the extension. Plain names are given first, so a path name never
/// takes one a file has by right. A path that makes no valid name gets none.
pub fn names_for_paths<'a>(
    paths: &'a [String],
    taken: &std::collections::BTreeSet<String>,
) -> Vec<(&'a str, Option<String>)> {
    let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_owned();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for p in paths {
        *seen.entry(base(p)).or_default() += 1;
    }
    let mut used = taken.clone();
    let plain: Vec<Option<String>> = paths
        .iter()
        .map(|p| {
            let short = base(p);
            let free =
                seen[&short] == 1 && check_name(&short).is_ok() && used.insert(short.clone());
            free.then_some(short)
        })
        .collect();
    paths
        .iter()
        .zip(plain)
        .map(|(p, plain)| {
            let name = plain.or_else(|| {
                let long = p.replace('/', "_");
                let (stem, ext) = match long.rsplit_once('.') {
                    Some((stem, ext)) if !stem.is_empty() => (stem.to_owned(), format!(".{ext}")),
                    _ => (long.clone(), String::new()),
                };
                std::iter::once(long)
                    .chain((2..=JOB_COUNT_MAX + 1).map(|n| format!("{stem}~{n}{ext}")))
                    .find(|n| check_name(n).is_ok() && !used.contains(n))
                    .inspect(|n| {
                        used.insert(n.clone());
                    })
            });
            (p.as_str(), name)
        })
        .collect()
}

/// The media type a file is served and shown as: by kind, then by extension.
pub fn media_type(name: &str, kind: ArtifactKind) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match (kind, ext.as_str()) {
        (ArtifactKind::Patch, _) | (_, "patch" | "diff") => "text/x-diff",
        (ArtifactKind::Link, _) => "text/uri-list",
        (_, "md" | "markdown") => "text/markdown; charset=utf-8",
        (_, "txt" | "log" | "csv" | "toml" | "yaml" | "yml" | "rs" | "py" | "go" | "sh") => {
            "text/plain; charset=utf-8"
        }
        (_, "json") => "application/json",
        (_, "html" | "htm") => "text/html; charset=utf-8",
        (_, "png") => "image/png",
        (_, "jpg" | "jpeg") => "image/jpeg",
        (_, "gif") => "image/gif",
        (_, "webp") => "image/webp",
        (_, "svg") => "image/svg+xml",
        (_, "pdf") => "application/pdf",
        (ArtifactKind::Report, _) => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Whether `new`, saved by `attempt`, fits beside the job's `existing` artifacts. One with
/// the same attempt and name replaces the old one, whose bytes stop counting.
pub fn admit(
    existing: &[Artifact],
    new: &ArtifactFile,
    attempt: u32,
    limits: &ArtifactLimits,
) -> Result<(), ArtifactError> {
    if new.size > limits.file_max_bytes {
        return Err(ArtifactError::TooLarge {
            scope: "artifact",
            limit_bytes: limits.file_max_bytes,
        });
    }
    let others = existing
        .iter()
        .filter(|a| !(a.attempt == attempt && a.file.name == new.name));
    let (count, bytes) = others.fold((0usize, 0u64), |(n, b), a| (n + 1, b + a.file.size));
    if count + 1 > limits.job_max_count {
        return Err(ArtifactError::TooMany {
            limit: limits.job_max_count,
        });
    }
    if bytes.saturating_add(new.size) > limits.job_max_bytes {
        return Err(ArtifactError::TooLarge {
            scope: "job's artifacts",
            limit_bytes: limits.job_max_bytes,
        });
    }
    Ok(())
}

/// Whether retention ends an artifact saved at `created_at` (`retention_ms` 0 keeps it).
pub fn expired(created_at: Millis, now: Millis, retention_ms: u64) -> bool {
    retention_ms > 0 && now.saturating_sub(created_at) >= retention_ms
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn file(name: &str, size: u64) -> ArtifactFile {
        ArtifactFile {
            name: name.into(),
            kind: ArtifactKind::File,
            size,
            sha256: "0".repeat(64),
            media_type: "application/octet-stream".into(),
        }
    }

    fn art(attempt: u32, name: &str, size: u64) -> Artifact {
        Artifact {
            file: file(name, size),
            attempt,
            epoch: u64::from(attempt),
            created_at: 0,
        }
    }

    #[test]
    fn names_are_one_visible_path_segment() {
        for ok in ["report.md", "a b.txt", "ünïcode.diff", ".hidden"] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        let long = "x".repeat(NAME_MAX_BYTES + 1);
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a\\b",
            "a\nb",
            "\u{1b}[31m",
            long.as_str(),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn digests_are_lower_case_hex_of_sha256_length() {
        assert_eq!(check_digest(&"ab".repeat(32)), Ok(()));
        assert!(check_digest(&"AB".repeat(32)).is_err());
        assert!(check_digest(&"ab".repeat(31)).is_err());
        assert!(check_digest(&"zz".repeat(32)).is_err());
        assert_eq!(
            blob_path(&"ab".repeat(32)),
            format!("sha256/ab/{}", "ab".repeat(32))
        );
    }

    #[test]
    fn media_types_follow_the_kind_then_the_extension() {
        assert_eq!(media_type("x", ArtifactKind::Patch), "text/x-diff");
        assert_eq!(media_type("fix.DIFF", ArtifactKind::File), "text/x-diff");
        assert_eq!(media_type("pr", ArtifactKind::Link), "text/uri-list");
        assert_eq!(media_type("shot.PNG", ArtifactKind::File), "image/png");
        assert_eq!(
            media_type("notes", ArtifactKind::Report),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            media_type("blob.bin", ArtifactKind::File),
            "application/octet-stream"
        );
        assert_eq!(
            ArtifactKind::parse("patch"),
            Ok(ArtifactKind::Patch),
            "kinds read back"
        );
        assert!(ArtifactKind::parse("zip").is_err());
    }

    #[test]
    fn a_file_past_either_limit_is_refused_with_the_limit_it_passed() {
        let limits = ArtifactLimits {
            file_max_bytes: 10,
            job_max_bytes: 15,
            job_max_count: 2,
        };
        assert_eq!(
            admit(&[], &file("a", 11), 1, &limits),
            Err(ArtifactError::TooLarge {
                scope: "artifact",
                limit_bytes: 10
            })
        );
        assert_eq!(
            admit(&[art(1, "a", 10)], &file("b", 6), 1, &limits),
            Err(ArtifactError::TooLarge {
                scope: "job's artifacts",
                limit_bytes: 15
            })
        );
        assert_eq!(
            admit(&[art(1, "a", 1), art(1, "b", 1)], &file("a", 1), 2, &limits),
            Err(ArtifactError::TooMany { limit: 2 })
        );
        // The same name in the same attempt replaces: its old bytes stop counting.
        assert_eq!(
            admit(&[art(1, "a", 10)], &file("a", 10), 1, &limits),
            Ok(())
        );
    }

    #[test]
    fn kinds_follow_the_extension_when_the_job_gives_none() {
        assert_eq!(kind_for("fix.PATCH"), ArtifactKind::Patch);
        assert_eq!(kind_for("a.diff"), ArtifactKind::Patch);
        assert_eq!(kind_for("report.md"), ArtifactKind::Report);
        assert_eq!(kind_for("coverage.html"), ArtifactKind::Report);
        assert_eq!(kind_for("build.tar"), ArtifactKind::File);
        assert_eq!(kind_for("Makefile"), ArtifactKind::File);
    }

    #[test]
    fn links_are_absolute_http_urls_on_one_line() {
        for ok in [
            "https://github.com/acme/app/pull/7",
            "HTTP://ci.local:8080/x?y=1",
        ] {
            assert_eq!(check_link(ok), Ok(()), "{ok}");
        }
        let long = format!("https://h/{}", "x".repeat(LINK_MAX_BYTES));
        for bad in [
            "",
            "javascript:alert(1)",
            "ftp://host/x",
            "https://",
            "https:///path",
            "https://host/a b",
            "https://host/\nx",
            long.as_str(),
        ] {
            assert!(check_link(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn globbed_files_keep_their_name_unless_it_is_shared_or_taken() {
        let paths: Vec<String> = [
            "out/report.md",
            "a/log.txt",
            "b/log.txt",
            "notes.md",
            "x/...",
            "a_log.txt",
            "c/b.txt",
        ]
        .map(String::from)
        .into();
        let taken = ["notes.md".to_owned(), "b.txt".to_owned()].into();
        let named = names_for_paths(&paths, &taken);
        assert_eq!(
            named,
            [
                ("out/report.md", Some("report.md".to_owned())),
                // The plain `a_log.txt` below keeps its name; this one steps aside.
                ("a/log.txt", Some("a_log~2.txt".to_owned())),
                ("b/log.txt", Some("b_log.txt".to_owned())),
                ("notes.md", Some("notes~2.md".to_owned())),
                ("x/...", Some("...".to_owned())),
                ("a_log.txt", Some("a_log.txt".to_owned())),
                ("c/b.txt", Some("c_b.txt".to_owned())),
            ]
        );
    }

    #[test]
    fn retention_of_zero_keeps_forever() {
        assert!(!expired(0, u64::MAX, 0));
        assert!(!expired(100, 199, 100));
        assert!(expired(100, 200, 100));
    }

    proptest! {
        /// Whatever was admitted before, what `admit` lets in keeps the job within its limits.
        #[test]
        fn admitted_artifacts_never_pass_the_limits(
            sizes in proptest::collection::vec((0u32..3, 0u8..4, 0u64..40), 0..30),
            file_max in 1u64..30,
            job_max in 1u64..100,
            count_max in 1usize..8,
        ) {
            let limits = ArtifactLimits { file_max_bytes: file_max, job_max_bytes: job_max, job_max_count: count_max };
            let mut kept: Vec<Artifact> = Vec::new();
            for (attempt, name, size) in sizes {
                let new = art(attempt, &name.to_string(), size);
                if admit(&kept, &new.file, attempt, &limits).is_ok() {
                    kept.retain(|a| !(a.attempt == attempt && a.file.name == new.file.name));
                    kept.push(new);
                }
                let total: u64 = kept.iter().map(|a| a.file.size).sum();
                prop_assert!(total <= job_max);
                prop_assert!(kept.len() <= count_max);
                prop_assert!(kept.iter().all(|a| a.file.size <= file_max));
            }
        }

        /// Globbed files never get a name twice, nor one already taken, nor an invalid one;
        /// and a file whose path makes a valid name always gets one.
        #[test]
        fn globbed_names_are_unique_valid_free_and_never_dropped(
            paths in proptest::collection::btree_set("[ab/._]{1,6}", 0..12),
            taken in proptest::collection::btree_set("[ab._~2]{1,6}", 0..6),
        ) {
            let paths: Vec<String> = paths.into_iter().collect();
            let named = names_for_paths(&paths, &taken);
            prop_assert_eq!(named.len(), paths.len());
            let names: Vec<&String> = named.iter().filter_map(|(_, n)| n.as_ref()).collect();
            let unique: std::collections::BTreeSet<&String> = names.iter().copied().collect();
            prop_assert_eq!(unique.len(), names.len());
            for n in names {
                prop_assert!(check_name(n).is_ok() && !taken.contains(n), "{}", n);
            }
            for (path, name) in &named {
                if check_name(&path.replace('/', "_")).is_ok() {
                    prop_assert!(name.is_some(), "{} got no name", path);
                }
            }
        }
    }
}

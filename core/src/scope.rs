//! Path globs over a job's workspace: which changed paths fall outside its `allowed_scope`
//! (reported: the agent logs it, the coordinator records a warning event, never a failure),
//! and which files its `artifacts` globs collect at its end.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// The changed paths that no `allowed` glob matches. No globs means no restriction. A glob
/// that does not parse is reported in the second list and matches nothing.
///
/// Globs follow gitignore-like rules: `*` stays within one path component, `**` crosses them.
pub fn out_of_scope(allowed: &[String], paths: &[String]) -> (Vec<String>, Vec<String>) {
    if allowed.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let (set, invalid) = glob_set(allowed);
    let outside = paths
        .iter()
        .filter(|p| !set.is_match(p.as_str()))
        .cloned()
        .collect();
    (outside, invalid)
}

/// The paths some glob matches (a job's `artifacts`, collected at its end), by the same rules;
/// the globs that do not parse are in the second list.
pub fn matching(globs: &[String], paths: &[String]) -> (Vec<String>, Vec<String>) {
    if globs.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let (set, invalid) = glob_set(globs);
    let matched = paths
        .iter()
        .filter(|p| set.is_match(p.as_str()))
        .cloned()
        .collect();
    (matched, invalid)
}

/// The globs that parse as one set (empty if none does), and the errors of those that do not.
fn glob_set(globs: &[String]) -> (GlobSet, Vec<String>) {
    let mut builder = GlobSetBuilder::new();
    let mut invalid = Vec::new();
    for pattern in globs {
        match GlobBuilder::new(pattern).literal_separator(true).build() {
            Ok(glob) => {
                builder.add(glob);
            }
            Err(e) => invalid.push(format!("{pattern}: {e}")),
        }
    }
    // Each glob was built alone already: the set of them builds too.
    let set = builder.build().unwrap_or_else(|_| GlobSet::empty());
    (set, invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_globs_keep_single_stars_within_a_component() {
        let allowed = vec!["src/**".to_owned(), "docs/*.md".to_owned()];
        let paths: Vec<String> = ["src/a/b.rs", "docs/x.md", "docs/sub/y.md", "Cargo.toml"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (outside, invalid) = out_of_scope(&allowed, &paths);
        assert_eq!(outside, ["docs/sub/y.md", "Cargo.toml"]);
        assert!(invalid.is_empty());
    }

    #[test]
    fn no_scope_means_no_restriction_and_bad_globs_are_reported() {
        let paths = vec!["anything".to_owned()];
        assert_eq!(out_of_scope(&[], &paths), (vec![], vec![]));
        let (outside, invalid) = out_of_scope(&["src/[".to_owned()], &paths);
        assert_eq!(outside, paths);
        assert_eq!(invalid.len(), 1);
    }

    #[test]
    fn artifact_globs_collect_what_they_match_and_name_the_bad_ones() {
        let paths: Vec<String> = ["out/a.patch", "out/sub/b.patch", "report.md", "src/x.rs"]
            .map(String::from)
            .into();
        let globs = ["out/*.patch".to_owned(), "*.md".to_owned(), "[".to_owned()];
        let (matched, invalid) = matching(&globs, &paths);
        assert_eq!(matched, ["out/a.patch", "report.md"]);
        assert_eq!(invalid.len(), 1);
        assert_eq!(matching(&[], &paths), (vec![], vec![]));
    }
}

//! Path scope: which changed paths fall outside a job's `allowed_scope` globs. Leaving the scope
//! is reported (the agent logs it, the coordinator records a warning event), never a failure.

use globset::{GlobBuilder, GlobSetBuilder};

/// The changed paths that no `allowed` glob matches. No globs means no restriction. A glob
/// that does not parse is reported in the second list and matches nothing.
///
/// Globs follow gitignore-like rules: `*` stays within one path component, `**` crosses them.
pub fn out_of_scope(allowed: &[String], paths: &[String]) -> (Vec<String>, Vec<String>) {
    if allowed.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let mut builder = GlobSetBuilder::new();
    let mut invalid = Vec::new();
    for pattern in allowed {
        match GlobBuilder::new(pattern).literal_separator(true).build() {
            Ok(glob) => {
                builder.add(glob);
            }
            Err(e) => invalid.push(format!("{pattern}: {e}")),
        }
    }
    let Ok(set) = builder.build() else {
        return (paths.to_vec(), invalid);
    };
    let outside = paths
        .iter()
        .filter(|p| !set.is_match(p.as_str()))
        .cloned()
        .collect();
    (outside, invalid)
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
}

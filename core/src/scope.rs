//! Path globs over a job's workspace: which changed paths fall outside its `allowed_scope`
//! (reported: the agent logs it, the coordinator records a warning event, never a failure),
//! and which files its `artifacts` globs collect at its end.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// Most changed paths one end (complete or fail) may report.
pub const CHANGED_PATHS_MAX: usize = 10_000;
/// Longest changed path one end may report, in bytes. Bounded where a report is accepted so
/// that the scope warning it may cause always fits one stored event (the store's values are
/// at most 100 KB): a job can always end, whatever its workspace holds.
pub const CHANGED_PATH_MAX_BYTES: usize = 1_024;
/// Paths a scope warning lists; its text says how many more there were.
pub const SCOPE_WARNING_PATHS_MAX: usize = 20;

/// Checks the changed paths an end reports: at most [`CHANGED_PATHS_MAX`], each at most
/// [`CHANGED_PATH_MAX_BYTES`] long. The message says why, so an agent can be fixed.
pub fn check_changed_paths(paths: &[String]) -> Result<(), String> {
    if paths.len() > CHANGED_PATHS_MAX {
        return Err(format!(
            "at most {CHANGED_PATHS_MAX} changed paths, got {}",
            paths.len()
        ));
    }
    if let Some((i, p)) = paths
        .iter()
        .enumerate()
        .find(|(_, p)| p.len() > CHANGED_PATH_MAX_BYTES)
    {
        return Err(format!(
            "changed_paths[{i}] is {} bytes; each changed path is at most \
             {CHANGED_PATH_MAX_BYTES} bytes, so that the job's scope warning fits its timeline \
             and the job can end",
            p.len()
        ));
    }
    Ok(())
}

/// The scope warning's text for the paths outside a job's scope: the count and the first
/// [`SCOPE_WARNING_PATHS_MAX`] of them. With paths checked by [`check_changed_paths`] it is
/// at most about 21 KB.
pub fn scope_warning(outside: &[String]) -> String {
    let listed: Vec<&str> = outside
        .iter()
        .take(SCOPE_WARNING_PATHS_MAX)
        .map(String::as_str)
        .collect();
    format!(
        "{} changed path(s) outside allowed_scope: {}",
        outside.len(),
        listed.join(", ")
    )
}

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
    fn changed_paths_are_bounded_in_count_and_length_with_the_reason_said() {
        let at_max = vec!["a".repeat(CHANGED_PATH_MAX_BYTES); 3];
        assert_eq!(check_changed_paths(&at_max), Ok(()));
        let mut long = at_max.clone();
        long.push("b".repeat(CHANGED_PATH_MAX_BYTES + 1));
        let why = check_changed_paths(&long).unwrap_err();
        assert!(
            why.contains("changed_paths[3]") && why.contains("can end"),
            "{why}"
        );
        let many = vec!["p".to_string(); CHANGED_PATHS_MAX + 1];
        assert!(check_changed_paths(&many).is_err());
    }

    #[test]
    fn the_largest_scope_warning_fits_one_stored_value_with_room_to_spare() {
        let outside = vec!["x".repeat(CHANGED_PATH_MAX_BYTES); CHANGED_PATHS_MAX];
        let text = scope_warning(&outside);
        assert!(text.starts_with("10000 changed path(s)"), "{}", &text[..40]);
        assert!(text.len() < 32 * 1024, "{} bytes", text.len());
    }

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

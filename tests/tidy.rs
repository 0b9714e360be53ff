//! Tidy checks over the source tree, the way rust-analyzer keeps its map true: every file
//! opens with a `//!` doc saying what its room is for, no file grows past one room, and the
//! architecture's import rules hold (ARCHITECTURE.md states each as an invariant).

use std::path::{Path, PathBuf};

/// Lines of code (before a file's unit tests) past which a file holds more than one room.
const FILE_CODE_LINES_MAX: usize = 650;

/// Every Rust source file of the workspace, outside `target` and `node_modules`.
fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                if !matches!(name.as_ref(), "target" | "node_modules" | ".git" | "fuzz") {
                    walk(&path, out);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new(env!("CARGO_MANIFEST_DIR")), &mut out);
    out.sort();
    assert!(out.len() > 50, "the walk found the tree");
    out
}

fn relative(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap()
        .display()
        .to_string()
}

/// Whether the file is test code (an integration test, its helpers, a fixture, or a unit
/// test module kept in its own `tests.rs`).
fn is_test_code(path: &str) -> bool {
    path.starts_with("tests/") || path.contains("/tests/") || path.ends_with("/tests.rs")
}

#[test]
fn every_source_file_opens_with_its_room_doc() {
    let missing: Vec<String> = sources()
        .iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            !text.trim_start().starts_with("//!")
        })
        .map(|p| relative(p))
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` doc saying what they are for: {missing:#?}"
    );
}

#[test]
fn no_source_file_holds_more_than_one_room() {
    let long: Vec<String> = sources()
        .iter()
        .map(|p| (relative(p), std::fs::read_to_string(p).unwrap()))
        .filter(|(path, _)| !is_test_code(path))
        .filter_map(|(path, text)| {
            let code = text
                .lines()
                .take_while(|l| !l.starts_with("#[cfg(test)]"))
                .count();
            (code > FILE_CODE_LINES_MAX).then(|| format!("{path}: {code} lines"))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these by concern (at most {FILE_CODE_LINES_MAX} lines before the tests): {long:#?}"
    );
}

/// The lines of a room's non-test code that name `needle`.
fn uses(dir: &str, needle: &str) -> Vec<String> {
    sources()
        .iter()
        .map(|p| (relative(p), std::fs::read_to_string(p).unwrap()))
        .filter(|(path, _)| path.starts_with(dir) && !is_test_code(path))
        .flat_map(|(path, text)| {
            text.lines()
                .take_while(|l| !l.starts_with("#[cfg(test)]"))
                .enumerate()
                .filter(|(_, l)| l.contains(needle) && !l.trim_start().starts_with("//"))
                .map(|(n, l)| format!("{path}:{}: {}", n + 1, l.trim()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn actors_reach_the_store_only_through_the_repository() {
    for needle in ["keys::", "codec::"] {
        let found = uses("actors/", needle);
        assert!(
            found.is_empty(),
            "actors read the key layout or codec: {found:#?}"
        );
    }
}

#[test]
fn only_the_core_spells_a_factory_as_an_author() {
    let found: Vec<String> = ["actors/", "api/", "storage/", "chaos/", "factory/", "src/"]
        .iter()
        .flat_map(|dir| uses(dir, "\"factory:"))
        .collect();
    assert!(found.is_empty(), "use core::event::Author: {found:#?}");
}

#[test]
fn only_storage_knows_the_engines() {
    for needle in ["redb::", "etcd_client::", "foundationdb::"] {
        let found: Vec<String> = ["core/", "actors/", "api/", "factory/", "chaos/", "src/"]
            .iter()
            .flat_map(|dir| uses(dir, needle))
            .collect();
        assert!(found.is_empty(), "{needle} outside storage: {found:#?}");
    }
}

#[test]
fn only_api_knows_http() {
    for needle in ["axum::", "reqwest::"] {
        let found: Vec<String> = ["core/", "storage/", "actors/"]
            .iter()
            .flat_map(|dir| uses(dir, needle))
            .collect();
        assert!(found.is_empty(), "{needle} below the api: {found:#?}");
    }
}

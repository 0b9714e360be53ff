//! What a node leaves open to other users of its machine and network: its store directory
//! and admin-token file are its owner's only, the admin token is not printed when it goes to a
//! file, and `--insecure-dev` refuses to listen beyond loopback.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_store_and_an_existing_token_file_become_private_and_the_token_is_not_printed() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, "").unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let coord = Coordinator::start(dir.path(), 5_000);
    assert!(!coord.admin.is_empty());
    assert_eq!(mode(&token_file), 0o600);
    assert_eq!(mode(&dir.path().join("store")), 0o700);
    let log = coord.log();
    assert!(!log.contains(&coord.admin), "the token was printed: {log}");
    assert!(log.contains(&format!("{}", token_file.display())), "{log}");
}

#[test]
fn insecure_dev_refuses_to_listen_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--insecure-dev",
            "--listen",
            "0.0.0.0:0",
            "--store",
        ])
        .arg(format!("embedded:{}", dir.path().join("store").display()))
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("loopback only"), "{err}");
    assert!(!dir.path().join("store").exists(), "it opened the store");
}

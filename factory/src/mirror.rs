//! The factory's git mirrors and the checkouts it gives jobs from them. One bare mirror per
//! repository URL lives at `<workdir>/mirrors/<sha256 of the URL>.git`: cloned with
//! `git clone --mirror` the first time, brought up to date with `git fetch --prune` before
//! every checkout. A job's working directory is a detached `git worktree` of the mirror at
//! the job's revision, removed (`git worktree remove --force`, then `prune`) when the attempt
//! ends, however it ends. One job at a time works on a mirror (a lock per URL), so two jobs
//! of the same repository never fetch at once.
//!
//! git runs with a clean environment (no `GIT_DIR` or `GIT_WORK_TREE` from the agent's, no
//! prompt for credentials) and a timeout; its last lines of stderr are what a failure says.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gigafactory_core::checkout::RepoSpec;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

/// The directory under the work directory holding the mirrors.
pub const MIRRORS_DIR: &str = "mirrors";
/// How long one git command may take (a first clone of a big repository is the long one).
pub const GIT_TIMEOUT_MS: u64 = 15 * 60 * 1_000;
/// Lines of git's stderr kept in a failure's reason.
const STDERR_LINES_MAX: usize = 5;
/// Environment variables git is given from the agent's; everything else (`GIT_DIR`,
/// `GIT_WORK_TREE`, `GIT_INDEX_FILE`...) stays out.
const GIT_ENV_KEPT: &[&str] = &["PATH", "HOME", "SSH_AUTH_SOCK", "LANG", "TMPDIR"];

/// Why a checkout failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// git failed (the network, the disk, a timeout): another attempt may succeed.
    #[error("{0}")]
    Git(String),
    /// The repository has no such branch, tag or commit: no attempt will find it.
    #[error("the repository {url} has no revision {rev:?}")]
    UnknownRev { url: String, rev: String },
}

/// The factory's mirrors, and the lock each is worked on under.
pub struct Mirrors {
    dir: PathBuf,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A job's checkout: its working directory is a worktree of `mirror` at `commit`. Dropping
/// it removes the worktree.
pub struct Checkout {
    pub mirror: PathBuf,
    /// The worktree's administrative directory in the mirror (`<mirror>/worktrees/<name>`):
    /// its `HEAD` and index.
    pub admin: PathBuf,
    pub path: PathBuf,
    /// The commit `rev` resolved to, in full.
    pub commit: String,
}

impl Mirrors {
    pub fn new(workdir: &Path) -> Self {
        Mirrors {
            dir: workdir.join(MIRRORS_DIR),
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// Where the mirror of `url` lives.
    pub fn path(&self, url: &str) -> PathBuf {
        let digest = Sha256::digest(url.as_bytes());
        let name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{name}.git"))
    }

    fn lock(&self, url: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().expect("mirror locks");
        locks.entry(url.to_owned()).or_default().clone()
    }

    /// Brings the mirror of `repo.url` up to date and checks `repo.rev` out, detached, at
    /// `dest` (absent or an empty directory).
    pub async fn checkout(&self, repo: &RepoSpec, dest: &Path) -> Result<Checkout, CheckoutError> {
        let lock = self.lock(&repo.url);
        let _held = lock.lock().await;
        let mirror = self.path(&repo.url);
        if mirror.join("HEAD").exists() {
            // Worktrees of attempts that ended without removing theirs (a crash) go first.
            git(&mirror, &["worktree", "prune"]).await?;
            git(&mirror, &["fetch", "--prune", "--quiet", "origin"]).await?;
        } else {
            clone(&self.dir, &mirror, &repo.url).await?;
        }
        let spec = format!("{}^{{commit}}", repo.rev);
        let commit = match git(&mirror, &["rev-parse", "--verify", "--quiet", &spec]).await {
            Ok(out) => out.trim().to_owned(),
            Err(_) => {
                return Err(CheckoutError::UnknownRev {
                    url: repo.url.clone(),
                    rev: repo.rev.clone(),
                });
            }
        };
        let dest_arg = dest.display().to_string();
        git(
            &mirror,
            &["worktree", "add", "--detach", "--quiet", &dest_arg, &commit],
        )
        .await?;
        let admin = admin_dir(dest).map_err(CheckoutError::Git)?;
        info!(url = %repo.url, rev = %repo.rev, %commit, "checked out");
        Ok(Checkout {
            mirror,
            admin,
            path: dest.to_path_buf(),
            commit,
        })
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        let (mirror, path) = (self.mirror.clone(), self.path.clone());
        let remove = move || {
            let path_arg = path.display().to_string();
            for args in [
                &["worktree", "remove", "--force", path_arg.as_str()][..],
                &["worktree", "prune"][..],
            ] {
                let status = git_command_std(&mirror, args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                if !status.is_ok_and(|s| s.success()) {
                    warn!(worktree = %path.display(), ?args, "cannot remove the job's checkout");
                }
            }
        };
        // A runtime's worker must not wait on git; outside one (a test) waiting is fine.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

/// The worktree's administrative directory, from the `gitdir:` line of its `.git` file.
fn admin_dir(worktree: &Path) -> Result<PathBuf, String> {
    let file = worktree.join(".git");
    let text =
        std::fs::read_to_string(&file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    text.strip_prefix("gitdir:")
        .map(|rest| PathBuf::from(rest.trim()))
        .ok_or_else(|| format!("{} names no gitdir", file.display()))
}

/// Clones `url` into `mirror` by way of a temporary directory, so that a clone cut short is
/// never taken for a mirror.
async fn clone(dir: &Path, mirror: &Path, url: &str) -> Result<(), CheckoutError> {
    let io = |e: std::io::Error| CheckoutError::Git(format!("preparing {}: {e}", dir.display()));
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    let partial = mirror.with_extension("partial");
    match tokio::fs::remove_dir_all(&partial).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    let partial_arg = partial.display().to_string();
    git(
        dir,
        &["clone", "--mirror", "--quiet", "--", url, &partial_arg],
    )
    .await?;
    tokio::fs::rename(&partial, mirror).await.map_err(io)?;
    Ok(())
}

fn git_command_std(dir: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new("git");
    cmd.current_dir(dir).args(args).env_clear();
    for key in GIT_ENV_KEPT {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    cmd
}

/// Runs git in `dir`; its stdout, or a failure with the last lines of its stderr.
async fn git(dir: &Path, args: &[&str]) -> Result<String, CheckoutError> {
    let mut cmd = tokio::process::Command::from(git_command_std(dir, args));
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let what = format!("git {}", args.first().copied().unwrap_or_default());
    let run = tokio::time::timeout(Duration::from_millis(GIT_TIMEOUT_MS), cmd.output());
    let out = match run.await {
        Err(_) => {
            return Err(CheckoutError::Git(format!(
                "{what} took more than {GIT_TIMEOUT_MS} ms"
            )));
        }
        Ok(Err(e)) => return Err(CheckoutError::Git(format!("cannot run {what}: {e}"))),
        Ok(Ok(out)) => out,
    };
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(STDERR_LINES_MAX)..].join("\n");
    Err(CheckoutError::Git(format!(
        "{what} failed ({}): {tail}",
        out.status
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_url_has_one_mirror_path_of_its_own() {
        let m = Mirrors::new(Path::new("/w"));
        let a = m.path("https://example.com/a.git");
        assert_eq!(a, m.path("https://example.com/a.git"));
        assert_ne!(a, m.path("https://example.com/b.git"));
        assert!(a.starts_with("/w/mirrors"));
        assert_eq!(a.extension().unwrap(), "git");
    }

    #[tokio::test]
    async fn a_failed_git_command_says_what_git_said() {
        let dir = tempfile::tempdir().unwrap();
        let err = git(dir.path(), &["rev-parse", "--no-such-flag-here"])
            .await
            .unwrap_err();
        let CheckoutError::Git(why) = err else {
            panic!("a git failure")
        };
        assert!(why.starts_with("git rev-parse failed"), "{why}");
    }
}

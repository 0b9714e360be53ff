//! The bubblewrap command line that isolates a job: the machine read-only, a private `/tmp`,
//! `/dev` and `/proc`, the agent's work directory (its identity, other jobs' workspaces)
//! hidden, and only this attempt's workspace writable, with `HOME` inside it. Without the
//! network, the job gets a network namespace with loopback only.

use std::path::Path;

use crate::process::Launch;
use crate::workspace::Workspace;

/// `launch` run inside bubblewrap (`bwrap`, the program at `bwrap`).
pub fn wrap(bwrap: &Path, launch: Launch, workdir: &Path, ws: &Workspace, network: bool) -> Launch {
    let home = ws.root.join("home");
    let mut args: Vec<String> = Vec::new();
    let mut push = |parts: &[&str]| args.extend(parts.iter().map(|s| s.to_string()));
    push(&[
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
    ]);
    // The agent's directory holds the factory's token: mask it, then put back this attempt's
    // workspace alone (bwrap creates the mount points inside the mask).
    let root = ws.root.display().to_string();
    push(&[
        "--tmpfs",
        &workdir.display().to_string(),
        "--bind",
        &root,
        &root,
    ]);
    // The job's secret files, read-only, at the path `$GF_SECRETS_DIR` names.
    if let Some(dir) = &ws.secrets {
        let dir = dir.display().to_string();
        push(&["--ro-bind", &dir, &dir]);
    }
    // A checkout's `.git` points into the factory's mirror: the mirror read-only (other jobs
    // share it), the worktree's own directory writable (its `HEAD`, index and locks).
    if let Some(git) = &ws.git {
        let (mirror, admin) = (
            git.mirror.display().to_string(),
            git.admin.display().to_string(),
        );
        push(&["--ro-bind", &mirror, &mirror, "--bind", &admin, &admin]);
    }
    push(&["--unshare-pid", "--unshare-ipc", "--unshare-uts"]);
    if !network {
        push(&["--unshare-net"]);
    }
    push(&["--setenv", "HOME", &home.display().to_string()]);
    push(&["--setenv", "TMPDIR", "/tmp"]);
    push(&["--chdir", &launch.cwd.display().to_string(), "--"]);
    args.push(launch.program);
    args.extend(launch.args);
    Launch {
        program: bwrap.display().to_string(),
        args,
        ..launch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn launch(cwd: &Path) -> Launch {
        Launch {
            program: "sh".into(),
            args: vec!["-c".into(), "echo hi".into()],
            cwd: cwd.into(),
            env: vec![("GF_JOB_ID".into(), "j".into())],
            stdin: None,
        }
    }

    #[test]
    fn the_workspace_is_bound_after_the_agent_directory_is_masked_and_the_command_runs_last() {
        let ws = Workspace::path(
            Path::new("/w"),
            gigafactory_core::job::JobId(uuid::Uuid::nil()),
            1,
        );
        let wrapped = wrap(
            Path::new("/usr/bin/bwrap"),
            launch(&ws.work),
            Path::new("/w"),
            &ws,
            false,
        );
        let a = &wrapped.args;
        let pos = |s: &str| a.iter().position(|x| x == s).unwrap();
        let mask = a.windows(2).position(|w| w == ["--tmpfs", "/w"]).unwrap();
        let root = ws.root.display().to_string();
        let bind = a
            .windows(3)
            .position(|w| w == ["--bind", &root, &root])
            .unwrap();
        assert!(mask < bind);
        assert!(a.contains(&"--unshare-net".to_string()));
        assert_eq!(&a[pos("--") + 1..], ["sh", "-c", "echo hi"]);
        assert_eq!(wrapped.program, "/usr/bin/bwrap");
        assert_eq!(wrapped.env, launch(&ws.work).env);
        let with_net = wrap(
            Path::new("bwrap"),
            launch(&PathBuf::from("/")),
            Path::new("/w"),
            &ws,
            true,
        );
        assert!(!with_net.args.contains(&"--unshare-net".to_string()));
    }

    #[test]
    fn the_secrets_directory_is_bound_read_only_after_the_mask() {
        let mut ws = Workspace::path(
            Path::new("/w"),
            gigafactory_core::job::JobId(uuid::Uuid::nil()),
            1,
        );
        let wrapped = wrap(
            Path::new("bwrap"),
            launch(&ws.work),
            Path::new("/w"),
            &ws,
            true,
        );
        let ro_binds = |args: &[String]| args.iter().filter(|a| *a == "--ro-bind").count();
        assert_eq!(ro_binds(&wrapped.args), 1, "only / without secrets");
        ws.secrets = Some(PathBuf::from("/w/secrets/j-1"));
        let wrapped = wrap(
            Path::new("bwrap"),
            launch(&ws.work),
            Path::new("/w"),
            &ws,
            true,
        );
        let a = &wrapped.args;
        let mask = a.windows(2).position(|w| w == ["--tmpfs", "/w"]).unwrap();
        let bind = a
            .windows(3)
            .position(|w| w == ["--ro-bind", "/w/secrets/j-1", "/w/secrets/j-1"])
            .expect("the secrets directory is bound read-only");
        assert!(mask < bind, "bound after the agent's directory is masked");
    }

    #[test]
    fn a_checkouts_mirror_is_bound_read_only_and_its_worktree_directory_writable() {
        let mut ws = Workspace::path(
            Path::new("/w"),
            gigafactory_core::job::JobId(uuid::Uuid::nil()),
            1,
        );
        ws.git = Some(crate::workspace::GitDirs {
            mirror: PathBuf::from("/w/mirrors/m.git"),
            admin: PathBuf::from("/w/mirrors/m.git/worktrees/work"),
        });
        let wrapped = wrap(
            Path::new("bwrap"),
            launch(&ws.work),
            Path::new("/w"),
            &ws,
            true,
        );
        let a = &wrapped.args;
        let at = |w: [&str; 3]| a.windows(3).position(|x| x == w).expect("bound");
        let mask = a.windows(2).position(|w| w == ["--tmpfs", "/w"]).unwrap();
        let mirror = at(["--ro-bind", "/w/mirrors/m.git", "/w/mirrors/m.git"]);
        let admin = at([
            "--bind",
            "/w/mirrors/m.git/worktrees/work",
            "/w/mirrors/m.git/worktrees/work",
        ]);
        assert!(mask < mirror && mirror < admin, "{a:?}");
    }
}

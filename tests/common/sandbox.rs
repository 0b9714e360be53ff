//! Whether this machine lets bubblewrap isolate a job: the sandbox's tests (and others that
//! run jobs sandboxed) skip, saying why, where it does not.

use std::process::Command;

/// Why bubblewrap cannot isolate here, if it cannot. On CI it must be installed.
pub fn bwrap_refused() -> Option<String> {
    let out = Command::new("bwrap")
        .args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"])
        .args(["--unshare-pid", "--unshare-net", "--", "true"])
        .output();
    match out {
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("bubblewrap must be installed on CI (.ci/run installs it): {e}")
        }
        Err(e) => Some(format!("bubblewrap is not installed: {e}")),
        Ok(o) if !o.status.success() => Some(format!(
            "this machine refuses bubblewrap's namespaces: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) => None,
    }
}

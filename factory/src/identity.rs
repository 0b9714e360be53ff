//! Who this factory is to the coordinator. A machine enrolls once with an enrollment token and
//! keeps the factory id and factory token it got in `<workdir>/.gigafactory/identity.json`
//! (mode 0600), so a restart is the same factory, not a new one. A stored token the
//! coordinator refuses is never replaced silently: re-enrolling is an operator's decision.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gigafactory_core::job::FactoryId;
use gigafactory_core::wire::{EnrollRequest, EnrollResponse};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::AgentConfig;
use crate::client::{CallError, Coordinator, REQUEST_TIMEOUT_MS, Retry};
use crate::error::{AgentError, Result};

/// The agent's state directory inside the work directory.
pub const STATE_DIR: &str = ".gigafactory";
/// The identity file inside [`STATE_DIR`].
pub const IDENTITY_FILE: &str = "identity.json";

/// The factory id and secret the coordinator issued at enrollment.
#[derive(Clone, Serialize, Deserialize)]
pub struct Identity {
    pub factory_id: FactoryId,
    pub token: String,
}

impl std::fmt::Debug for Identity {
    // The token is a secret: it must not end up in logs through a `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("factory_id", &self.factory_id)
            .finish_non_exhaustive()
    }
}

/// Where the identity of the factory working in `workdir` is kept.
pub fn identity_path(workdir: &Path) -> PathBuf {
    workdir.join(STATE_DIR).join(IDENTITY_FILE)
}

/// The stored identity, if this machine enrolled before.
pub fn load(path: &Path) -> Result<Option<Identity>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| AgentError::CorruptIdentity {
                    path: path.to_owned(),
                    source,
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AgentError::io(format!("reading {}", path.display()), e)),
    }
}

/// Stores `identity` atomically, readable by this user only: a crash leaves the old file or the
/// new one, never half of one.
pub fn store(path: &Path, identity: &Identity) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| AgentError::io(format!("creating {}", dir.display()), e))?;
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(identity).expect("an identity always serializes");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let write = || -> std::io::Result<()> {
        let mut file = options.open(&tmp)?;
        // A tmp file left by an older run may have wider permissions: `mode` only applies at
        // creation.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| AgentError::io(format!("writing {}", path.display()), e))
}

/// The stored identity, or a new one from enrolling with the coordinator (stored before it is
/// returned, so the enrollment is never lost).
pub async fn load_or_enroll(config: &AgentConfig, coordinator: &Coordinator) -> Result<Identity> {
    let path = identity_path(&config.workdir);
    if let Some(identity) = load(&path)? {
        info!(factory_id = %identity.factory_id, "using the stored factory identity");
        return Ok(identity);
    }
    let request = EnrollRequest {
        name: config.name.clone().unwrap_or_else(host_name),
        os: std::env::consts::OS.into(),
        arch: std::env::consts::ARCH.into(),
        capabilities: config.capabilities.clone(),
        engine_classes: config.engine_classes.clone(),
        slots: config.slots,
        cost_per_hour_usd: config.cost_per_hour_usd,
    };
    let timeout = Duration::from_millis(REQUEST_TIMEOUT_MS);
    // Retried while the coordinator is down: a factory started before its coordinator should
    // wait for it, not exit.
    let answer = coordinator
        .post::<_, EnrollResponse>(
            "/v1/factories/enroll",
            &config.enroll_token,
            &request,
            timeout,
            Retry::Forever,
        )
        .await;
    let response = match answer {
        Ok(Some(r)) => r,
        Ok(None) => {
            return Err(AgentError::EnrollRefused(
                "the coordinator answered 204 to enroll".into(),
            ));
        }
        Err(CallError::Status {
            status: 401 | 403,
            body,
        }) => {
            return Err(AgentError::EnrollRefused(format!(
                "{}: {}",
                body.error, body.message
            )));
        }
        Err(e) => return Err(e.into_refused("the enrollment")),
    };
    let identity = Identity {
        factory_id: response.factory_id,
        token: response.token,
    };
    store(&path, &identity)?;
    info!(factory_id = %identity.factory_id, name = %request.name, "enrolled");
    Ok(identity)
}

/// This machine's host name, the default factory name.
pub fn host_name() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its whole length; gethostname writes at most that
        // much and we read only up to the first NUL.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            let name = String::from_utf8_lossy(&buf[..end]).into_owned();
            if !name.is_empty() {
                return name;
            }
        }
    }
    std::env::var("COMPUTERNAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "factory".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_loads_an_identity_readable_only_by_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = identity_path(dir.path());
        assert!(load(&path).unwrap().is_none());
        let identity = Identity {
            factory_id: FactoryId(uuid::Uuid::new_v4()),
            token: "secret".into(),
        };
        store(&path, &identity).unwrap();
        let loaded = load(&path).unwrap().unwrap();
        assert_eq!(loaded.factory_id, identity.factory_id);
        assert_eq!(loaded.token, "secret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(
            !format!("{loaded:?}").contains("secret"),
            "Debug must not print the token"
        );
    }

    #[test]
    fn a_corrupt_identity_is_an_error_not_a_new_enrollment() {
        let dir = tempfile::tempdir().unwrap();
        let path = identity_path(dir.path());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            load(&path),
            Err(AgentError::CorruptIdentity { .. })
        ));
    }
}

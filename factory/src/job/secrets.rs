//! A job's secrets on this machine. They are fetched with the lease's epoch just before the
//! job starts — fresh at every lease, so a rotation reaches the next lease and never the
//! running one — and reach the job as environment variables, or as files (mode 0400) in a
//! directory of this attempt's (mode 0700) outside its workspace, named by `$GF_SECRETS_DIR`
//! and removed when the attempt ends. Their values also make the job's redactor, which every
//! report to the coordinator passes through (`redacted`). No value is logged or journaled.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gigafactory_core::job::JobId;
use gigafactory_core::redact::Redactor;
use gigafactory_core::secrets::SecretDelivery;
use gigafactory_core::wire::{ClaimedJob, JobSecret, JobSecrets, SecretFetch};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::client::{CallError, Retry};
use crate::context::Shared;

/// The variable naming the directory of the job's file secrets.
pub const SECRETS_DIR_ENV: &str = "GF_SECRETS_DIR";
/// `<workdir>/secrets/<job>-<attempt>`: beside the jobs' workspaces, never inside one.
const SECRETS_DIR: &str = "secrets";
/// How long one send of a fetch may take.
const FETCH_TIMEOUT_MS: u64 = 10_000;

/// The secrets of the job, for the lease the factory holds. Retried through an outage like
/// every report (an outage costs no attempt); a refusal (`409`: the lease is gone, or the
/// coordinator has no key; `500 secrets_unreadable`: its key does not open them) ends it, and
/// so does the lease's end, which a coordinator that keeps failing (`5xx`) leads to.
pub(super) async fn fetch(shared: &Shared, job: &ClaimedJob) -> Result<Vec<JobSecret>, CallError> {
    let answer: Option<JobSecrets> = shared
        .coordinator
        .post(
            &format!("/v1/jobs/{}/secrets", job.job_id),
            &shared.identity.token,
            &SecretFetch { epoch: job.epoch },
            Duration::from_millis(FETCH_TIMEOUT_MS),
            Retry::Forever,
        )
        .await?;
    let secrets = answer.map(|a| a.secrets).unwrap_or_default();
    if !secrets.is_empty() {
        let names: Vec<String> = secrets
            .iter()
            .map(|s| format!("{}@v{}", s.name, s.version))
            .collect();
        info!(secrets = %names.join(","), "secrets fetched for the lease");
    }
    Ok(secrets)
}

/// The redactor of the job's reports.
pub(super) fn redactor(secrets: &[JobSecret]) -> Redactor {
    Redactor::new(secrets.iter().map(|s| (s.name.as_str(), s.value.as_str())))
}

/// `body` as the JSON it is sent as, every string in it redacted.
pub(super) fn redacted<T: Serialize>(redactor: &Redactor, body: &T) -> Value {
    let mut value = serde_json::to_value(body).unwrap_or(Value::Null);
    if !redactor.is_empty() {
        redact_value(redactor, &mut value);
    }
    value
}

fn redact_value(redactor: &Redactor, value: &mut Value) {
    match value {
        Value::String(s) => *s = redactor.redact(s),
        Value::Array(items) => items.iter_mut().for_each(|v| redact_value(redactor, v)),
        Value::Object(fields) => fields.values_mut().for_each(|v| redact_value(redactor, v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The variables the job gets: its environment secrets, and where its file secrets are.
pub(super) fn env(secrets: &[JobSecret], files: &SecretFiles) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = secrets
        .iter()
        .filter(|s| s.delivery == SecretDelivery::Env)
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();
    if let Some(dir) = files.dir() {
        env.push((SECRETS_DIR_ENV.into(), dir.display().to_string()));
    }
    env
}

/// This attempt's file secrets; the directory goes when this does.
pub(super) struct SecretFiles {
    dir: Option<PathBuf>,
}

impl SecretFiles {
    /// Writes the file secrets of `secrets` (none: no directory).
    pub fn write(
        workdir: &Path,
        job_id: JobId,
        attempt: u32,
        secrets: &[JobSecret],
    ) -> std::io::Result<SecretFiles> {
        let files: Vec<&JobSecret> = secrets
            .iter()
            .filter(|s| s.delivery == SecretDelivery::File)
            .collect();
        if files.is_empty() {
            return Ok(SecretFiles { dir: None });
        }
        let parent = workdir.join(SECRETS_DIR);
        std::fs::create_dir_all(&parent)?;
        let dir = parent.join(format!("{job_id}-{attempt}"));
        // Whatever an earlier agent left for the same attempt goes first.
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir)?;
        let out = SecretFiles {
            dir: Some(dir.clone()),
        };
        for s in files {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o400);
            let mut file = options.open(dir.join(&s.name))?;
            std::io::Write::write_all(&mut file, s.value.as_bytes())?;
        }
        Ok(out)
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}

impl Drop for SecretFiles {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir
            && let Err(e) = std::fs::remove_dir_all(dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            warn!(dir = %dir.display(), error = %e, "cannot remove the job's secret files");
        }
    }
}

/// Removes the secret files a previous agent left (its jobs were killed as orphans).
pub fn clear_leftovers(workdir: &Path) {
    let dir = workdir.join(SECRETS_DIR);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            warn!(dir = %dir.display(), error = %e, "cannot remove secret files left by a previous agent");
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, delivery: SecretDelivery) -> JobSecret {
        JobSecret {
            name: name.into(),
            version: 1,
            delivery,
            value: format!("value-of-{name}"),
        }
    }

    #[test]
    fn file_secrets_are_private_files_that_go_with_the_attempt() {
        let workdir = tempfile::tempdir().unwrap();
        let secrets = [
            secret("A", SecretDelivery::Env),
            secret("B", SecretDelivery::File),
        ];
        let files =
            SecretFiles::write(workdir.path(), JobId(uuid::Uuid::nil()), 1, &secrets).unwrap();
        let dir = files.dir().unwrap().to_path_buf();
        assert!(!dir.starts_with(workdir.path().join(crate::workspace::JOBS_DIR)));
        assert_eq!(
            std::fs::read_to_string(dir.join("B")).unwrap(),
            "value-of-B"
        );
        assert!(!dir.join("A").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&dir.join("B")), 0o400);
        }
        let env = env(&secrets, &files);
        assert_eq!(
            env,
            [
                ("A".to_string(), "value-of-A".to_string()),
                (SECRETS_DIR_ENV.to_string(), dir.display().to_string())
            ]
        );
        drop(files);
        assert!(!dir.exists());
    }

    #[test]
    fn every_string_of_a_report_is_redacted() {
        let r = redactor(&[secret("KEY", SecretDelivery::Env)]);
        let body =
            serde_json::json!({"stage": "using value-of-KEY", "n": 1, "list": ["value-of-KEY"]});
        assert_eq!(
            redacted(&r, &body),
            serde_json::json!({"stage": "using [secret KEY]", "n": 1, "list": ["[secret KEY]"]})
        );
    }
}

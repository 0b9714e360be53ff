//! Secrets at the coordinator's edge: values are checked and sealed with the operator's key
//! before they reach the store, listed without their values, and opened only for the factory
//! holding a job's lease at its current epoch — the fence checked inside the transaction that
//! reads them (J3), which also appends the use to the audit log (job, factory, epoch, names
//! and versions; never a value). Nothing here logs a value.

use gigafactory_core::audit::{AUDIT_TEXT_MAX_BYTES, AuditEntry, clip};
use gigafactory_core::job::{FactoryId, JobId, check_fence};
use gigafactory_core::secrets::{
    self, SECRETS_PER_PRODUCT_MAX, SecretMeta, SecretScope, sealed_with,
};
use gigafactory_core::wire::{JobSecret, JobSecrets, SecretSet};
use gigafactory_storage::repo::{self, SecretRecord};
use gigafactory_storage::transact;
use uuid::Uuid;

use super::Coordinator;
use crate::error::{CoordError, Result};
use crate::sealing::{SealError, SecretsKey};

/// The action a factory's fetch is recorded under in the audit log.
pub const FETCH_ACTION: &str = "POST /v1/jobs/{id}/secrets";

fn invalid(e: secrets::SecretError) -> CoordError {
    CoordError::Invalid(e.to_string())
}

fn unreadable(meta: &SecretMeta, e: SealError) -> CoordError {
    let profile = meta.scope.profile.as_deref().unwrap_or("-");
    CoordError::SecretsUnreadable(format!(
        "secret {} of product {} (profile {profile}) v{}: {e}",
        meta.name, meta.scope.product, meta.version
    ))
}

/// The secrets of `product` (or of every product), refused when there are more than one
/// answer holds rather than cut short.
async fn stored<T: gigafactory_storage::Transaction>(
    tx: &mut T,
    product: Option<&str>,
) -> Result<Vec<SecretRecord>> {
    repo::secrets(tx, product).await?.ok_or_else(|| {
        CoordError::Invalid(format!(
            "more than {} secrets: list them by product (?product=P)",
            repo::SECRETS_LIST_MAX
        ))
    })
}

impl Coordinator {
    fn secrets_key(&self) -> Result<&SecretsKey> {
        self.ctx.secrets_key.as_deref().ok_or_else(|| {
            CoordError::SecretsNotConfigured(
                "this node has no secrets key: start it with --secrets-key-file FILE or \
                 GIGAFACTORY_SECRETS_KEY (make one with `gigafactory secrets keygen`)"
                    .into(),
            )
        })
    }

    /// What is known of the secrets of `product`, or of every product; never a value.
    pub async fn secrets(&self, product: Option<&str>) -> Result<Vec<SecretMeta>> {
        let records = transact!(self.ctx.store, |tx| stored(tx, product).await)?;
        Ok(records.iter().map(SecretRecord::meta).collect())
    }

    /// Sets (or rotates) a secret: its version is one more than the one it replaces. Jobs
    /// leased from now on get the new value; running ones keep theirs.
    pub async fn set_secret(
        &self,
        scope: SecretScope,
        name: &str,
        body: SecretSet,
        set_by: String,
    ) -> Result<SecretMeta> {
        secrets::check_scope(&scope).map_err(invalid)?;
        secrets::check_name(name).map_err(invalid)?;
        secrets::check_value(&body.value).map_err(invalid)?;
        let key = self.secrets_key()?;
        let now = self.now();
        transact!(self.ctx.store, |tx| {
            let mine = stored(tx, Some(&scope.product)).await?;
            let old = mine
                .iter()
                .find(|r| r.name == name && r.profile == scope.profile);
            if old.is_none() && mine.len() >= SECRETS_PER_PRODUCT_MAX {
                return Err(CoordError::Invalid(format!(
                    "a product holds at most {SECRETS_PER_PRODUCT_MAX} secrets; remove one first"
                )));
            }
            let meta = SecretMeta {
                name: name.to_string(),
                scope: scope.clone(),
                delivery: body.delivery,
                version: old.map_or(1, |o| o.version + 1),
                set_by: set_by.clone(),
                set_at: now,
            };
            let (nonce, sealed) = key
                .seal(&sealed_with(&meta), body.value.as_bytes())
                .map_err(|e| CoordError::Internal(e.to_string()))?;
            repo::save_secret(
                tx,
                &SecretRecord {
                    name: meta.name.clone(),
                    product: scope.product.clone(),
                    profile: scope.profile.clone(),
                    delivery: meta.delivery,
                    version: meta.version,
                    set_by: meta.set_by.clone(),
                    set_at: now,
                    nonce,
                    sealed,
                },
            )?;
            Ok::<_, CoordError>(meta)
        })
    }

    pub async fn delete_secret(&self, scope: SecretScope, name: &str) -> Result<()> {
        secrets::check_scope(&scope).map_err(invalid)?;
        secrets::check_name(name).map_err(invalid)?;
        let existed = transact!(self.ctx.store, |tx| repo::delete_secret(tx, &scope, name)
            .await)?;
        match existed {
            true => Ok(()),
            false => {
                let profile = scope
                    .profile
                    .as_ref()
                    .map_or(String::new(), |p| format!(" (profile {p})"));
                Err(CoordError::NotFound(format!(
                    "secret {name} of product {}{profile}",
                    scope.product
                )))
            }
        }
    }

    /// The secrets of job `id` (its profile's over its product's), opened, for the factory
    /// holding its lease at `epoch`; a stale epoch or another holder gets nothing (J3). The
    /// use is in the audit log, written in the transaction that checked the fence.
    pub async fn job_secrets(
        &self,
        factory: FactoryId,
        id: JobId,
        epoch: u64,
    ) -> Result<JobSecrets> {
        let now = self.now();
        let secrets = transact!(self.ctx.store, |tx| {
            let job = repo::load_job(tx, id)
                .await?
                .ok_or_else(|| CoordError::NotFound(format!("job {id}")))?;
            check_fence(&job, factory, epoch)?;
            let records = stored(tx, Some(&job.spec.product)).await?;
            let chosen = secrets::for_job(
                job.spec.profile.as_deref(),
                records.into_iter().map(|r| (r.meta(), r)).collect(),
            );
            if chosen.is_empty() {
                return Ok(Vec::new());
            }
            let key = self.secrets_key()?;
            let mut out = Vec::with_capacity(chosen.len());
            for (meta, record) in &chosen {
                let plain = key
                    .open(&sealed_with(meta), &record.nonce, &record.sealed)
                    .map_err(|e| unreadable(meta, e))?;
                let value = String::from_utf8(plain)
                    .map_err(|_| unreadable(meta, SealError::Unreadable))?;
                out.push(JobSecret {
                    name: meta.name.clone(),
                    version: meta.version,
                    delivery: meta.delivery,
                    value,
                });
            }
            let used: Vec<String> = chosen
                .iter()
                .map(|(m, _)| match &m.scope.profile {
                    Some(p) => format!("{}@v{} (profile {p})", m.name, m.version),
                    None => format!("{}@v{}", m.name, m.version),
                })
                .collect();
            let entry = AuditEntry {
                at: now,
                role: "factory".into(),
                caller: factory.to_string(),
                action: FETCH_ACTION.into(),
                // The count first: past the entry's bound the list is cut, the count is not.
                target: clip(
                    &format!(
                        "job={id} epoch={epoch} count={} secrets={}",
                        used.len(),
                        used.join(",")
                    ),
                    AUDIT_TEXT_MAX_BYTES,
                ),
                status: 200,
            };
            repo::record_audit(tx, Uuid::now_v7(), &entry)?;
            Ok::<_, CoordError>(out)
        })?;
        if !secrets.is_empty() {
            tracing::info!(job_id = %id, epoch, factory_id = %factory, count = secrets.len(), "secrets handed to the lease holder");
        }
        Ok(JobSecrets { secrets })
    }
}

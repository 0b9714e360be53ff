//! Artifacts in the store: each one's record under its job, the artifacts that keep each blob
//! (so the sweeper deletes only blobs nobody names), and their age for retention. The bytes
//! are in the blob store (`blobs.rs`). A record is written after its blob is in place, in the
//! transaction of the job's fenced `artifact` write, which refuses a blob the sweeper is
//! deleting: the sweeper marks a blob in a transaction that reads its references, so of the
//! two, whichever commits second sees the other.

use gigafactory_core::artifact::{self, Artifact, ArtifactFile, ArtifactLimits};
use gigafactory_core::job::{JobId, Millis};
use uuid::Uuid;

use super::RepoError;
use crate::codec::{self, Record};
use crate::error::Error;
use crate::keys;
use crate::txn::{RangeOptions, Transaction};

impl Record for Artifact {
    const KIND: &'static str = "artifact";
    const SCHEMA: u16 = 1;
}

/// One job's artifacts, by attempt then name.
pub async fn artifacts_of<T: Transaction>(tx: &mut T, job: JobId) -> Result<Vec<Artifact>, Error> {
    let rows = tx
        .get_range(
            &keys::artifacts_of(job.0),
            RangeOptions::limit(artifact::JOB_COUNT_MAX),
        )
        .await?;
    rows.iter().map(|(_, v)| codec::decode(v)).collect()
}

pub async fn load_artifact<T: Transaction>(
    tx: &mut T,
    job: JobId,
    attempt: u32,
    name: &str,
) -> Result<Option<Artifact>, Error> {
    match tx.get(&keys::artifact(job.0, attempt, name)).await? {
        Some(v) => Ok(Some(codec::decode(&v)?)),
        None => Ok(None),
    }
}

/// Keeps `file` as an artifact of the job's current attempt, if it fits the job's `limits`
/// and its blob is not being collected; one of the same attempt and name is replaced.
pub(super) async fn keep<T: Transaction>(
    tx: &mut T,
    job: JobId,
    attempt: u32,
    epoch: u64,
    file: &ArtifactFile,
    limits: &ArtifactLimits,
    now: Millis,
) -> Result<(), RepoError> {
    if tx.get(&keys::blob_gone(&file.sha256)).await?.is_some() {
        return Err(RepoError::BlobCollected);
    }
    let existing = artifacts_of(tx, job).await?;
    artifact::admit(&existing, file, attempt, limits)?;
    if let Some(old) = existing
        .iter()
        .find(|a| a.attempt == attempt && a.file.name == file.name)
    {
        unindex(tx, job.0, old)?;
    }
    let kept = Artifact {
        file: file.clone(),
        attempt,
        epoch,
        created_at: now,
    };
    let name = &kept.file.name;
    tx.set(
        &keys::artifact(job.0, attempt, name),
        &codec::encode(&kept)?,
    )?;
    tx.set(
        &keys::artifact_ref(&kept.file.sha256, job.0, attempt, name),
        &[],
    )?;
    tx.set(&keys::artifact_age(now, job.0, attempt, name), &[])?;
    Ok(())
}

fn unindex<T: Transaction>(tx: &mut T, job: Uuid, a: &Artifact) -> Result<(), Error> {
    tx.clear(&keys::artifact_ref(
        &a.file.sha256,
        job,
        a.attempt,
        &a.file.name,
    ))?;
    tx.clear(&keys::artifact_age(
        a.created_at,
        job,
        a.attempt,
        &a.file.name,
    ))
}

/// Artifacts saved before `before`, oldest first, at most `limit`: `(job, attempt, name)`.
pub async fn artifacts_saved_before<T: Transaction>(
    tx: &mut T,
    before: Millis,
    limit: usize,
) -> Result<Vec<(JobId, u32, String)>, Error> {
    let rows = tx
        .get_range(
            &keys::artifacts_saved_before(before),
            RangeOptions::limit(limit).snapshot(),
        )
        .await?;
    rows.iter()
        .map(|(k, _)| keys::artifact_age_parts(k).map(|(j, a, n)| (JobId(j), a, n)))
        .collect()
}

/// Forgets one artifact (its blob stays until the sweeper finds nobody keeps it).
pub async fn delete_artifact<T: Transaction>(
    tx: &mut T,
    job: JobId,
    attempt: u32,
    name: &str,
) -> Result<Option<Artifact>, Error> {
    let Some(old) = load_artifact(tx, job, attempt, name).await? else {
        return Ok(None);
    };
    tx.clear(&keys::artifact(job.0, attempt, name))?;
    unindex(tx, job.0, &old)?;
    Ok(Some(old))
}

/// Marks the blob `sha256` as being deleted, if no artifact keeps it: the sweeper's claim on
/// it. Returns whether it was marked.
pub async fn mark_blob_gone<T: Transaction>(tx: &mut T, sha256: &str) -> Result<bool, Error> {
    let refs = tx
        .get_range(&keys::artifact_refs(sha256), RangeOptions::limit(1))
        .await?;
    if !refs.is_empty() {
        return Ok(false);
    }
    tx.set(&keys::blob_gone(sha256), &[])?;
    Ok(true)
}

/// The blob is deleted: artifacts may name it again.
pub fn clear_blob_gone<T: Transaction>(tx: &mut T, sha256: &str) -> Result<(), Error> {
    tx.clear(&keys::blob_gone(sha256))
}

/// Blobs marked for deletion (a sweeper that stopped midway left them), at most `limit`.
pub async fn blobs_gone<T: Transaction>(tx: &mut T, limit: usize) -> Result<Vec<String>, Error> {
    let rows = tx
        .get_range(&keys::blobs_gone(), RangeOptions::limit(limit).snapshot())
        .await?;
    rows.iter().map(|(k, _)| keys::blob_gone_sha(k)).collect()
}

//! Artifacts: files a job's attempt saves, uploaded by the factory holding its lease and read
//! by anyone who may read the job. An upload is checked against the lease before a byte is
//! stored, streamed into the blob store under its digest, and then kept by a fenced write of
//! the job (the one path, `commit.rs`), which checks the lease again and the job's limits in
//! the transaction that records it.

use std::fmt::Display;

use bytes::Bytes;
use futures_util::Stream;
use gigafactory_core::artifact::{self, ArtifactError, ArtifactFile};
use gigafactory_core::job::{Command, FactoryId, JobId, check_fence};
use gigafactory_core::metric_labels::FenceRoute;
use gigafactory_core::wire::{ArtifactUpload, ArtifactView, LeaseAnswer};
use gigafactory_storage::blobs::BlobStream;
use gigafactory_storage::{BlobError, repo, transact};

use super::Coordinator;
use crate::error::{CoordError, Result};

impl Coordinator {
    /// Stores `body` as the artifact `name` of the attempt `factory` holds on job `id`. A
    /// stale lease is refused before anything is stored; a body past the per-file limit (as
    /// `declared_size` says, or as it streams) is refused with nothing kept.
    pub async fn upload_artifact<S, E>(
        &self,
        factory: FactoryId,
        id: JobId,
        name: &str,
        upload: ArtifactUpload,
        declared_size: Option<u64>,
        body: S,
    ) -> Result<LeaseAnswer>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + Unpin,
        E: Display,
    {
        artifact::check_name(name).map_err(CoordError::Invalid)?;
        artifact::check_digest(&upload.sha256).map_err(CoordError::Invalid)?;
        let limits = self.ctx.config.artifacts;
        if declared_size.is_some_and(|n| n > limits.file_max_bytes) {
            return Err(too_large(limits.file_max_bytes));
        }
        let media_type = artifact::media_type(name, upload.kind).to_owned();
        let mut file = ArtifactFile {
            name: name.to_owned(),
            kind: upload.kind,
            size: declared_size.unwrap_or(0),
            media_type,
            sha256: upload.sha256,
        };
        // Refused before a byte is stored: a stale lease, or a length past the job's limits.
        let admitted = transact!(self.ctx.store, |tx| {
            let job = repo::load_job(tx, id)
                .await?
                .ok_or_else(|| CoordError::NotFound(format!("job {id}")))?;
            check_fence(&job, factory, upload.epoch)?;
            let existing = repo::artifacts_of(tx, id).await?;
            artifact::admit(&existing, &file, job.attempts, &limits)
                .map_err(|e| CoordError::ArtifactLimit(e.to_string()))
        });
        crate::metrics::count_fenced(FenceRoute::Artifact, &admitted);
        admitted?;
        file.size = self
            .ctx
            .blobs
            .put(&file.sha256, body, limits.file_max_bytes)
            .await
            .map_err(|e| match e {
                BlobError::TooLarge { limit_bytes } => too_large(limit_bytes),
                e @ (BlobError::DigestMismatch { .. } | BlobError::Body(_)) => {
                    CoordError::Invalid(e.to_string())
                }
                e => CoordError::Unavailable(e.to_string()),
            })?;
        metrics::counter!("gigafactory_artifact_bytes_uploaded_total").increment(file.size);
        let sha256 = file.sha256.clone();
        let cmd = Command::Artifact {
            factory,
            epoch: upload.epoch,
            file: Box::new(file),
            limits,
        };
        let written = self
            .factory_write(id, cmd, upload.request_id, Vec::new(), Vec::new())
            .await;
        if let Err(e) = &written
            && !e.may_have_committed()
        {
            // Refused (the lease lost meanwhile, the job's limits): its bytes go unless
            // another artifact keeps them; if this fails, the sweeper does it later.
            if let Err(why) = crate::sweeper::collect_blob(&self.ctx, &sha256).await {
                tracing::warn!(job = %id, error = %why, "a refused upload's blob stays for the sweeper");
            }
        }
        written
    }

    /// A job's artifacts, by attempt then name.
    pub async fn artifacts(&self, id: JobId) -> Result<Vec<ArtifactView>> {
        let kept = transact!(self.ctx.store, |tx| {
            if repo::load_job(tx, id).await?.is_none() {
                return Err(CoordError::NotFound(format!("job {id}")));
            }
            Ok(repo::artifacts_of(tx, id).await?)
        })?;
        Ok(kept.iter().map(ArtifactView::from).collect())
    }

    /// One artifact and its bytes.
    pub async fn artifact(
        &self,
        id: JobId,
        attempt: u32,
        name: &str,
    ) -> Result<(ArtifactView, BlobStream)> {
        let kept = transact!(self.ctx.store, |tx| {
            repo::load_artifact(tx, id, attempt, name).await
        })?
        .ok_or_else(|| {
            CoordError::NotFound(format!("artifact {name} of attempt {attempt} of job {id}"))
        })?;
        let (_, bytes) = self
            .ctx
            .blobs
            .get(&kept.file.sha256)
            .await
            .map_err(|e| match e {
                // Retention removed it since the record was read.
                BlobError::NotFound(_) => CoordError::NotFound(format!("the bytes of {name}")),
                e => CoordError::Unavailable(e.to_string()),
            })?;
        Ok((ArtifactView::from(&kept), bytes))
    }
}

fn too_large(limit_bytes: u64) -> CoordError {
    let e = ArtifactError::TooLarge {
        scope: "artifact",
        limit_bytes,
    };
    CoordError::ArtifactLimit(e.to_string())
}

//! `SweeperActor`: keeps the blob store to what the jobs keep. Every
//! `artifact_sweep_interval_ms`, on the node that owns shard 0 (every node on a store of its
//! own), it forgets artifacts older than `artifact_retention_ms`, then deletes blobs no
//! artifact names once they are `artifact_orphan_grace_ms` old (uploads whose write was
//! refused or never came, and blobs whose artifacts retention removed), and uploads left
//! unfinished as long. A blob is deleted only after a transaction that found no artifact
//! naming it marked it gone; an upload of the same bytes that commits later sees the mark and
//! is asked to come again, so a kept artifact never loses its bytes. The grace only spares
//! uploads in flight the work of coming again: safety does not rest on a clock.

use std::sync::Arc;
use std::time::Duration;

use gigafactory_storage::{repo, transact};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::context::Context;

/// Artifacts forgotten, or blobs examined, per transaction or listing.
const SWEEP_BATCH: usize = 256;

pub(crate) enum SweeperMsg {
    SweepTick,
}

pub(crate) struct SweeperActor;

impl Actor for SweeperActor {
    type Msg = SweeperMsg;
    type State = Arc<Context>;
    type Arguments = Arc<Context>;

    async fn pre_start(
        &self,
        myself: ActorRef<SweeperMsg>,
        ctx: Arc<Context>,
    ) -> Result<Arc<Context>, ActorProcessingErr> {
        let every = Duration::from_millis(ctx.config.artifact_sweep_interval_ms.max(1));
        myself.send_interval(every, || SweeperMsg::SweepTick);
        Ok(ctx)
    }

    async fn handle(
        &self,
        _: ActorRef<SweeperMsg>,
        msg: SweeperMsg,
        ctx: &mut Arc<Context>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SweeperMsg::SweepTick => {
                if ctx.owned_shards().is_some_and(|o| !o.contains(&0)) {
                    return Ok(());
                }
                if let Err(e) = sweep(ctx).await {
                    tracing::warn!(error = %e, "artifact sweep stopped early; the next one resumes");
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SweepError {
    #[error(transparent)]
    Store(#[from] gigafactory_storage::Error),
    #[error(transparent)]
    Blobs(#[from] gigafactory_storage::BlobError),
}

async fn sweep(ctx: &Arc<Context>) -> Result<(), SweepError> {
    let now = ctx.now();
    let retention = ctx.config.artifact_retention_ms;
    if retention > 0 {
        let expired = forget_expired(ctx, now.saturating_sub(retention)).await?;
        metrics::counter!("gigafactory_artifacts_expired_total").increment(expired);
    }
    // Marks a sweep that stopped midway left: those blobs are nobody's already.
    let marked = transact!(ctx.store, |tx| repo::blobs_gone(tx, SWEEP_BATCH).await)?;
    for sha in marked {
        delete_marked(ctx, &sha).await?;
    }
    let before = now.saturating_sub(ctx.config.artifact_orphan_grace_ms);
    let mut collected = 0;
    for sha in ctx.blobs.blobs_before(before, SWEEP_BATCH).await? {
        if collect_blob(ctx, &sha).await? {
            collected += 1;
        }
    }
    metrics::counter!("gigafactory_artifact_blobs_collected_total").increment(collected);
    let uploads = ctx.blobs.delete_uploads_before(before, SWEEP_BATCH).await?;
    metrics::counter!("gigafactory_artifact_uploads_collected_total").increment(uploads as u64);
    Ok(())
}

/// Forgets artifacts saved before `before`, a batch per transaction. Returns how many.
async fn forget_expired(ctx: &Arc<Context>, before: u64) -> Result<u64, SweepError> {
    let mut total = 0;
    loop {
        let n = transact!(ctx.store, |tx| {
            let old = repo::artifacts_saved_before(tx, before, SWEEP_BATCH).await?;
            for (job, attempt, name) in &old {
                repo::delete_artifact(tx, *job, *attempt, name).await?;
            }
            Ok::<_, gigafactory_storage::Error>(old.len())
        })?;
        total += n as u64;
        if n < SWEEP_BATCH {
            return Ok(total);
        }
    }
}

/// Deletes the blob `sha256` unless an artifact keeps it: an upload whose write was refused
/// leaves nothing behind. Returns whether it was deleted.
pub(crate) async fn collect_blob(ctx: &Arc<Context>, sha: &str) -> Result<bool, SweepError> {
    let marked = transact!(ctx.store, |tx| repo::mark_blob_gone(tx, sha).await)?;
    if marked {
        delete_marked(ctx, sha).await?;
    }
    Ok(marked)
}

async fn delete_marked(ctx: &Arc<Context>, sha: &str) -> Result<(), SweepError> {
    ctx.blobs.delete(sha).await?;
    transact!(ctx.store, |tx| repo::clear_blob_gone(tx, sha))?;
    Ok(())
}

//! Submissions: one job, a child of a job, or a manifest of many (all or nothing). A
//! submission is one transaction; what it created is then announced and queued like any
//! other change (`commit::adopt`). Refused while the scheduler is far behind.

use std::collections::BTreeMap;

use gigafactory_core::event::Author;
use gigafactory_core::event::Transition;
use gigafactory_core::job::{self, Job, JobId};
use gigafactory_core::manifest::{self, JobSpec};
use gigafactory_core::tracker::ItemRef;
use gigafactory_storage::repo::{self, Submitted};
use gigafactory_storage::{Transaction, transact};
use std::sync::atomic::Ordering;
use uuid::Uuid;

use super::Coordinator;
use crate::commit;
use crate::error::{CoordError, Result};

impl Coordinator {
    /// Submits one job; `parents` must exist, and none may have ended badly. With an
    /// idempotency key used before, returns the job made then (`created` false).
    pub async fn submit(
        &self,
        spec: JobSpec,
        parents: Vec<JobId>,
        author: &Author,
    ) -> Result<(Job, bool)> {
        manifest::validate_job_spec(&spec).map_err(|e| {
            CoordError::InvalidManifest(e.0.iter().map(|p| p.to_string()).collect())
        })?;
        self.admit_submission()?;
        let now = self.now();
        let job = job::new_job(JobId(Uuid::now_v7()), spec, parents.clone(), now);
        let made = transact!(self.ctx.store, |tx| {
            for p in &parents {
                if repo::load_job(tx, *p).await?.is_none() {
                    return Err(CoordError::Invalid(format!(
                        "parent job {p} does not exist"
                    )));
                }
            }
            Ok::<_, CoordError>(repo::submit(tx, &job, author).await?)
        })?;
        match made {
            Submitted::Made(t) => {
                metrics::counter!(crate::metrics::JOBS_SUBMITTED_TOTAL).increment(1);
                let job = t.job.clone();
                commit::adopt(&self.ctx, &[*t]).await;
                Ok((job, true))
            }
            Submitted::Repeat(id) => Ok((self.job(id).await?, false)),
            Submitted::Conflict { key, existing } => {
                Err(CoordError::IdempotencyConflict(vec![conflict(
                    None, &key, existing,
                )]))
            }
        }
    }

    /// Submits a job that depends on `parent`.
    pub async fn add_child(
        &self,
        parent: JobId,
        spec: JobSpec,
        author: &Author,
    ) -> Result<(Job, bool)> {
        self.job(parent).await?;
        self.submit(spec, vec![parent], author).await
    }

    /// Submits a manifest, all or nothing: every job or none. Returns each job's key and id
    /// (the earlier job's, for an idempotent repeat).
    pub async fn submit_manifest(
        &self,
        text: &str,
        author: &Author,
    ) -> Result<Vec<(String, JobId)>> {
        let m = manifest::parse_manifest(text).map_err(|e| {
            CoordError::InvalidManifest(e.0.iter().map(|p| p.to_string()).collect())
        })?;
        self.submit_specs(m.jobs, None, author).await
    }

    /// Submits resolved specs (parents first, dependencies by key), all or nothing, each
    /// linked to `origin` when it came from a tracker item. A job whose idempotency key
    /// another job holds with another spec refuses the whole submission, every such job
    /// named; except from a tracker, where the item's first jobs stand (as a later revision
    /// of the item leaves them: `Decision::Update`), so a delivery retried after a change of
    /// the item is answered with them.
    pub(super) async fn submit_specs(
        &self,
        specs: Vec<JobSpec>,
        origin: Option<ItemRef>,
        author: &Author,
    ) -> Result<Vec<(String, JobId)>> {
        self.admit_submission()?;
        let jobs = prepare(specs, origin.clone(), self.now());
        let keep_first = origin.is_some();
        let (made, created) = transact!(self.ctx.store, |tx| {
            submit_in(tx, &jobs, keep_first, author).await
        })?;
        metrics::counter!(crate::metrics::JOBS_SUBMITTED_TOTAL).increment(created.len() as u64);
        commit::adopt(&self.ctx, &created).await;
        Ok(made)
    }

    /// Refuses new work while the scheduler is far behind (`overloaded`, with `Retry-After`):
    /// the backpressure that keeps its mailbox bounded.
    pub(super) fn admit_submission(&self) -> Result<()> {
        let backlog = self.ctx.actors.scheduler_backlog.load(Ordering::Relaxed);
        if backlog > self.ctx.config.scheduler_backlog_max {
            metrics::counter!("gigafactory_submissions_refused_total").increment(1);
            return Err(CoordError::Overloaded(format!(
                "the scheduler has {backlog} messages waiting"
            )));
        }
        Ok(())
    }
}

/// The jobs of `specs` (parents first, dependencies by key), each with a new id and linked to
/// `origin`.
pub(super) fn prepare(specs: Vec<JobSpec>, origin: Option<ItemRef>, now: u64) -> Vec<Job> {
    let ids: BTreeMap<String, JobId> = specs
        .iter()
        .map(|j| (j.key.clone(), JobId(Uuid::now_v7())))
        .collect();
    specs
        .iter()
        .map(|spec| {
            let parents = spec.deps.iter().map(|d| ids[d]).collect();
            Job {
                origin: origin.clone(),
                ..job::new_job(ids[&spec.key], spec.clone(), parents, now)
            }
        })
        .collect()
}

/// Submits `jobs` inside `tx`: each job's key with the id stored (the earlier job's, for an
/// idempotent repeat), and the transitions of those made. A conflicting idempotency key
/// refuses the whole submission, every such job named (the caller drops the transaction);
/// with `keep_first`, the earlier job stands instead.
pub(super) async fn submit_in<T: Transaction>(
    tx: &mut T,
    jobs: &[Job],
    keep_first: bool,
    author: &Author,
) -> Result<(Vec<(String, JobId)>, Vec<Transition>)> {
    let mut made = Vec::with_capacity(jobs.len());
    let mut created = Vec::new();
    let mut conflicts = Vec::new();
    // Keys resolve to the ids actually stored, which differ for idempotent repeats.
    let mut resolved: BTreeMap<JobId, JobId> = BTreeMap::new();
    for j in jobs {
        let mut j = j.clone();
        j.parents = j
            .parents
            .iter()
            .map(|p| resolved.get(p).copied().unwrap_or(*p))
            .collect();
        let id = match repo::submit(tx, &j, author).await? {
            Submitted::Made(t) => {
                created.push(*t);
                j.id
            }
            Submitted::Repeat(id) => id,
            Submitted::Conflict { existing, .. } if keep_first => existing,
            Submitted::Conflict { key, existing } => {
                conflicts.push(conflict(Some(&j.spec.key), &key, existing));
                existing
            }
        };
        resolved.insert(j.id, id);
        made.push((j.spec.key.clone(), id));
    }
    if !conflicts.is_empty() {
        return Err(CoordError::IdempotencyConflict(conflicts));
    }
    Ok((made, created))
}

/// One idempotency conflict: where (a manifest's job by key), the key, and the job it is.
fn conflict(job_key: Option<&str>, key: &str, existing: JobId) -> String {
    let at = job_key.map_or(String::new(), |k| {
        format!("jobs[key={k}].idempotency_key: ")
    });
    format!("{at}idempotency key {key:?} is job {existing}, submitted with another spec")
}

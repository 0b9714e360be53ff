//! Work in from trackers: a signed delivery becomes jobs once (by its item's revision, and by
//! the jobs' idempotency keys if a delivery is repeated midway), a closed item cancels its
//! open jobs, a reopened one brings them back; and what an item made and what its tracker
//! was told, with a redeliver for a dead letter. Each step is idempotent, so a delivery the
//! tracker repeats after a crash finishes what the first one started.

use gigafactory_core::event::Author;
use gigafactory_core::job::{Command, Job, JobState};
use gigafactory_core::manifest::JobSpec;
use gigafactory_core::tracker::{
    self, Decision, Delivery, DeliveryStatus, ITEM_ID_MAX_BYTES, ItemRecord, ItemRef, SourceConfig,
    TrackerItem,
};
use gigafactory_storage::{repo, transact};
use schemars::JsonSchema;

use super::Coordinator;
use crate::commit::{self, JobWrite};
use crate::error::{CoordError, Result};

/// What a delivery did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, JsonSchema)]
pub struct IntakeOutcome {
    pub source: String,
    pub item_id: String,
    /// `created`, `duplicate`, `closed`, `reopened` or `updated`.
    pub decision: &'static str,
    /// The item's jobs: key and id.
    pub jobs: Vec<(String, gigafactory_core::job::JobId)>,
}

impl Coordinator {
    /// A configured source (its secrets are never serialized).
    pub fn intake_source(&self, source: &str) -> Result<&SourceConfig> {
        self.ctx
            .config
            .intake
            .get(source)
            .ok_or_else(|| CoordError::NotFound(format!("intake source {source:?}")))
    }

    /// Verifies and reads a delivery: the item it describes.
    fn read_delivery(
        &self,
        source: &str,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(&SourceConfig, TrackerItem)> {
        let cfg = self.intake_source(source)?;
        if !tracker::signature_ok(cfg.kind, cfg.secret.as_bytes(), signature, body) {
            return Err(CoordError::Unauthorized(format!(
                "missing or bad {} signature",
                tracker::signature_header(cfg.kind)
            )));
        }
        let item =
            tracker::parse_item(cfg.kind, body).map_err(|e| CoordError::Invalid(e.to_string()))?;
        if item.id.is_empty()
            || item.id.len() > ITEM_ID_MAX_BYTES
            || item.revision.len() > ITEM_ID_MAX_BYTES
        {
            return Err(CoordError::Invalid(format!(
                "an item id and revision are 1 to {ITEM_ID_MAX_BYTES} bytes"
            )));
        }
        Ok((cfg, item))
    }

    /// What a delivery would create, without creating it (`gigafactory intake test`).
    pub fn plan_intake(&self, source: &str, body: &[u8]) -> Result<Vec<JobSpec>> {
        let cfg = self.intake_source(source)?;
        let item =
            tracker::parse_item(cfg.kind, body).map_err(|e| CoordError::Invalid(e.to_string()))?;
        tracker::plan_jobs(source, cfg, &item).map_err(|e| CoordError::Invalid(e.to_string()))
    }

    /// Takes a signed delivery from tracker `source`.
    pub async fn intake(
        &self,
        source: &str,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<IntakeOutcome> {
        let (cfg, item) = self.read_delivery(source, signature, body)?;
        let stored = transact!(self.ctx.store, |tx| repo::load_item(tx, source, &item.id)
            .await)?;
        let decision = tracker::decide(stored.as_ref(), &item);
        let author = Author::Tracker(source.to_owned());
        let origin = ItemRef {
            source: source.to_owned(),
            id: item.id.clone(),
        };
        let mut jobs = stored.as_ref().map(|s| s.jobs.clone()).unwrap_or_default();
        let name = match decision {
            Decision::Duplicate => "duplicate",
            Decision::Create => {
                let specs = tracker::plan_jobs(source, cfg, &item)
                    .map_err(|e| CoordError::Invalid(e.to_string()))?;
                let made = self
                    .submit_specs(specs, Some(origin.clone()), &author)
                    .await?;
                jobs = made.into_iter().map(|(_, id)| id).collect();
                "created"
            }
            Decision::Close => {
                let cancels = jobs
                    .iter()
                    .map(|id| {
                        (
                            *id,
                            Command::Cancel {
                                reason: Some("its tracker item was closed".into()),
                            },
                        )
                    })
                    .collect();
                commit::commit(&self.ctx, JobWrite::batch(author.clone(), cancels)).await?;
                "closed"
            }
            Decision::Reopen => {
                let mut retries = Vec::new();
                for id in &jobs {
                    let job = self.job(*id).await?;
                    // The jobs the closing cancelled; their descendants come back with them.
                    if job.state == (JobState::Cancelled { by_parent: None }) {
                        retries.push((
                            *id,
                            Command::Retry {
                                reason: Some("its tracker item was reopened".into()),
                            },
                        ));
                    }
                }
                commit::commit(&self.ctx, JobWrite::batch(author.clone(), retries)).await?;
                "reopened"
            }
            Decision::Update => "updated",
        };
        if decision != Decision::Duplicate {
            let now = self.now();
            let record = ItemRecord {
                source: source.to_owned(),
                id: item.id.clone(),
                title: item.title.clone(),
                url: item.url.clone(),
                labels: item.labels.clone(),
                open: item.open,
                revision: item.revision.clone(),
                jobs: jobs.clone(),
                created_at: stored.as_ref().map_or(now, |s| s.created_at),
                updated_at: now,
            };
            transact!(self.ctx.store, |tx| repo::save_item(tx, &record))?;
        }
        tracing::info!(source, item = %item.id, decision = name, jobs = jobs.len(), "tracker delivery");
        let mut keyed = Vec::with_capacity(jobs.len());
        for id in jobs {
            keyed.push((self.job(id).await?.spec.key, id));
        }
        Ok(IntakeOutcome {
            source: source.to_owned(),
            item_id: item.id,
            decision: name,
            jobs: keyed,
        })
    }

    /// A source's items, by id.
    pub async fn items(&self, source: &str, limit: usize) -> Result<Vec<ItemRecord>> {
        self.intake_source(source)?;
        Ok(transact!(self.ctx.store, |tx| repo::items(
            tx, source, limit
        )
        .await)?)
    }

    /// An item with its jobs and what its tracker was told.
    pub async fn item(
        &self,
        source: &str,
        id: &str,
    ) -> Result<(ItemRecord, Vec<Job>, Vec<Delivery>)> {
        let (item, deliveries) = transact!(self.ctx.store, |tx| {
            let item = repo::load_item(tx, source, id).await?;
            let deliveries = repo::deliveries_of(tx, source, id).await?;
            Ok::<_, gigafactory_storage::Error>((item, deliveries))
        })?;
        let item = item.ok_or_else(|| CoordError::NotFound(format!("item {source}:{id}")))?;
        let mut jobs = Vec::with_capacity(item.jobs.len());
        for j in &item.jobs {
            jobs.push(self.job(*j).await?);
        }
        Ok((item, jobs, deliveries))
    }

    /// Sends a dead-lettered delivery again, with the same idempotency key, from its first try.
    pub async fn redeliver(&self, id: &str) -> Result<Delivery> {
        let now = self.now();
        transact!(self.ctx.store, |tx| {
            let Some(old) = repo::load_delivery(tx, id).await? else {
                return Err(CoordError::NotFound(format!("delivery {id}")));
            };
            if old.status != DeliveryStatus::DeadLetter {
                return Err(CoordError::IllegalTransition {
                    subject: "delivery",
                    command: "redeliver",
                    state: match old.status {
                        DeliveryStatus::Pending => "pending",
                        _ => "delivered",
                    },
                });
            }
            let new = Delivery {
                status: DeliveryStatus::Pending,
                tries: 0,
                next_at: now,
                updated_at: now,
                ..old.clone()
            };
            repo::settle_delivery(tx, &old, &new)?;
            Ok(new)
        })
    }
}

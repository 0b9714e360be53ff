//! What operators do: act on jobs (requeue, cancel, retry, and review decisions: ship,
//! reject, request changes) and set each product's scoring weights and fair share.

use std::collections::BTreeMap;

use gigafactory_core::event::Author;
use gigafactory_core::fair_share;
use gigafactory_core::job::{Command, Job, JobId};
use gigafactory_core::scoring::{self, Weights, WeightsOverride};
use gigafactory_storage::{repo, transact};

use super::Coordinator;
use crate::error::{CoordError, Result};
use crate::job_actor::JobMsg;
use crate::scheduler::SchedulerMsg;

/// Longest product name, in bytes.
const PRODUCT_MAX_BYTES: usize = 128;

/// An operator's action on a job. `Ship`, `Reject` and `RequestChanges` decide a review: the
/// caller's token name is the reviewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorAction {
    Requeue,
    Reject,
    Cancel,
    /// Approve; the last approval the review needs ships the job.
    Ship,
    Retry,
    /// Send the job back for a new attempt, which is handed `reason`.
    RequestChanges {
        reason: String,
    },
}

impl OperatorAction {
    /// Every action's name, as routes and the CLI spell it.
    pub const NAMES: [&str; 6] = [
        "requeue",
        "reject",
        "cancel",
        "ship",
        "retry",
        "request_changes",
    ];

    /// The action named `name`, for the actions that take nothing more (not
    /// `request_changes`, which takes a reason).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "requeue" => OperatorAction::Requeue,
            "reject" => OperatorAction::Reject,
            "cancel" => OperatorAction::Cancel,
            "ship" => OperatorAction::Ship,
            "retry" => OperatorAction::Retry,
            _ => return None,
        })
    }

    fn command(self, author: &Author) -> Result<Command> {
        Ok(match self {
            OperatorAction::Requeue => Command::Requeue,
            OperatorAction::Cancel => Command::Cancel,
            OperatorAction::Retry => Command::Retry,
            OperatorAction::Reject => Command::Reject {
                by: reviewer(author)?,
            },
            OperatorAction::Ship => Command::Ship {
                by: reviewer(author)?,
            },
            OperatorAction::RequestChanges { reason } => Command::RequestChanges {
                by: reviewer(author)?,
                reason,
            },
        })
    }
}

/// The reviewer an author is: the name of its operator or admin token (`insecure-dev` for
/// a caller without one on an insecure development node).
fn reviewer(author: &Author) -> Result<String> {
    match author {
        Author::Admin(name) | Author::Operator(name) => Ok(name.clone()),
        other => Err(CoordError::Forbidden(format!(
            "{other} cannot review a job: it needs an operator or admin token"
        ))),
    }
}

impl Coordinator {
    /// Applies an operator's action to a job, through the job's actor.
    pub async fn act(&self, id: JobId, action: OperatorAction, author: &Author) -> Result<Job> {
        let cmd = action.command(author)?;
        self.ctx
            .ask_job(id, |reply| JobMsg::Apply {
                cmd: cmd.clone(),
                author: author.clone(),
                reply,
            })
            .await
    }

    /// A product's weights: its override (empty when none) and the resolved set the scheduler
    /// uses.
    pub async fn weights(&self, product: &str) -> Result<(WeightsOverride, Weights)> {
        let o = transact!(self.ctx.store, |tx| repo::load_weights(tx, product).await)?
            .unwrap_or_default();
        let w = scoring::resolve_weights(&Weights::default(), Some(&o), None)
            .map_err(|e| CoordError::Invalid(e.to_string()))?;
        Ok((o, w))
    }

    /// Replaces a product's weights override; refused whole if any weight is out of range.
    pub async fn set_weights(&self, product: &str, o: WeightsOverride) -> Result<Weights> {
        check_product(product)?;
        let w = scoring::resolve_weights(&Weights::default(), Some(&o), None)
            .map_err(|e| CoordError::Invalid(e.to_string()))?;
        transact!(self.ctx.store, |tx| repo::save_weights(tx, product, &o))?;
        self.ctx
            .tell_scheduler(SchedulerMsg::WeightsChanged(product.to_string(), w));
        Ok(w)
    }
}

/// A product name as settings take it.
fn check_product(product: &str) -> Result<()> {
    if product.is_empty()
        || product.len() > PRODUCT_MAX_BYTES
        || !product
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(CoordError::Invalid(format!(
            "{product:?} is not a product name"
        )));
    }
    Ok(())
}

impl Coordinator {
    /// Every product's fair share that is not the default: configured, or set through the
    /// API (which wins); and whether fair share is on.
    pub async fn shares(&self) -> Result<(bool, BTreeMap<String, u32>)> {
        let stored = transact!(self.ctx.store, |tx| repo::all_shares(tx).await)?;
        let mut shares = self.ctx.config.shares.clone();
        shares.extend(stored);
        Ok((self.ctx.config.fair_share, shares))
    }

    /// Sets a product's fair share (1..=1000); every node's scheduler takes it within its
    /// fleet refresh, this node's at once.
    pub async fn set_share(&self, product: &str, share: u64) -> Result<u32> {
        check_product(product)?;
        let share =
            fair_share::check_share(share).map_err(|e| CoordError::Invalid(e.to_string()))?;
        transact!(self.ctx.store, |tx| repo::save_share(tx, product, share))?;
        self.ctx
            .tell_scheduler(SchedulerMsg::ShareChanged(product.to_string(), share));
        Ok(share)
    }
}

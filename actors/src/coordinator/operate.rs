//! What operators do: act on jobs (requeue, cancel, retry, and review decisions: ship,
//! reject, request changes) and set each product's scoring weights and fair share.

use std::collections::BTreeMap;

use gigafactory_core::event::Author;
use gigafactory_core::fair_share;
use gigafactory_core::job::{self, Action, Command, Job, JobId};
use gigafactory_core::scoring::{self, Weights, WeightsOverride};
use gigafactory_storage::{repo, transact};

use super::Coordinator;
use crate::error::{CoordError, Result};
use crate::job_actor::JobMsg;
use crate::scheduler::SchedulerMsg;

/// Longest product name, in bytes.
const PRODUCT_MAX_BYTES: usize = 128;

/// An operator's action on a job with the reason given, if any (`request_changes` needs
/// one). `Ship`, `Reject` and `RequestChanges` decide a review: the caller's token name is the
/// reviewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorAction {
    pub action: Action,
    pub reason: Option<String>,
}

impl From<Action> for OperatorAction {
    fn from(action: Action) -> Self {
        OperatorAction {
            action,
            reason: None,
        }
    }
}

impl OperatorAction {
    /// The command the state machine takes. An optional reason is checked here
    /// (`job::action_reason`), before anything is read or written; a request for changes'
    /// by `apply` (`review::reason`).
    fn command(self, author: &Author) -> Result<Command> {
        let by = || reviewer(author);
        let reason = || job::action_reason(self.reason.as_deref());
        Ok(match self.action {
            Action::Requeue => Command::Requeue { reason: reason()? },
            Action::Cancel => Command::Cancel { reason: reason()? },
            Action::Retry => Command::Retry { reason: reason()? },
            Action::Reject => Command::Reject {
                by: by()?,
                reason: reason()?,
            },
            Action::Ship => Command::Ship {
                by: by()?,
                reason: reason()?,
            },
            Action::RequestChanges => Command::RequestChanges {
                by: by()?,
                reason: self.reason.clone().unwrap_or_default(),
            },
        })
    }
}

/// The reviewer an author is: the name of its operator or admin token (`insecure-dev` for
/// a caller without one on an insecure development node).
pub(super) fn reviewer(author: &Author) -> Result<String> {
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

//! Concurrency and rate limits as operators set them (`PUT /v1/limits/{key}`), list and
//! remove them; the claim transaction enforces them (storage) and `held_by` says when one
//! holds a job.

use gigafactory_core::limits::{self, LimitSpec};
use gigafactory_storage::repo::{self, LimitState};
use gigafactory_storage::transact;

use super::Coordinator;
use crate::error::{CoordError, Result};

impl Coordinator {
    /// Every limit with how many leases hold a slot and when its next start may be.
    pub async fn limits(&self) -> Result<Vec<LimitState>> {
        let now = self.now();
        Ok(transact!(self.ctx.store, |tx| repo::limits(tx, now).await)?)
    }

    /// Sets the limit on `key`; refused whole when the key or a value is bad. A lower
    /// `max_running` than runs now stops no lease: new ones wait until the count is below.
    pub async fn set_limit(&self, key: &str, spec: LimitSpec) -> Result<LimitState> {
        limits::check_key(key).map_err(|e| CoordError::Invalid(e.to_string()))?;
        spec.validate()
            .map_err(|e| CoordError::Invalid(e.to_string()))?;
        let now = self.now();
        if let Some(until) = spec.throttled_until {
            limits::check_throttle(until, now).map_err(|e| CoordError::Invalid(e.to_string()))?;
        }
        let state = transact!(self.ctx.store, |tx| {
            if repo::limits(tx, now).await?.len() >= repo::LIMITS_MAX
                && repo::load_limit(tx, key, now).await?.is_none()
            {
                return Err(CoordError::Invalid(format!(
                    "at most {} limits; remove one first",
                    repo::LIMITS_MAX
                )));
            }
            repo::save_limit(tx, key, &spec)?;
            Ok::<_, CoordError>(repo::load_limit(tx, key, now).await?)
        })?;
        state.ok_or_else(|| CoordError::Unavailable("limit read back empty".into()))
    }

    pub async fn delete_limit(&self, key: &str) -> Result<()> {
        let existed = transact!(self.ctx.store, |tx| repo::delete_limit(tx, key).await)?;
        if existed {
            Ok(())
        } else {
            Err(CoordError::NotFound(format!("limit {key}")))
        }
    }
}

//! The fleet of factories: enrollment, token rotation, revocation, draining, listing, and the
//! heartbeats factories send (handled by each factory's actor).

use gigafactory_core::fleet::{self, Factory, FactoryStatus, Role, Token, TokenRefusal};
use gigafactory_core::job::FactoryId;
use gigafactory_core::wire::{EnrollRequest, EnrollResponse, HeartbeatRequest, HeartbeatResponse};
use gigafactory_storage::{repo, transact};
use uuid::Uuid;

use super::Coordinator;
use crate::auth;
use crate::error::{CoordError, Result};
use crate::factory_actor::FactoryMsg;

/// Most slots one factory may offer.
const SLOTS_MAX: u32 = 1024;
/// Longest factory name, in bytes.
const NAME_MAX_BYTES: usize = 128;

impl Coordinator {
    /// Spends an enrollment token to register a factory; returns its id and own token.
    pub async fn enroll(
        &self,
        enrollment_secret: &str,
        req: EnrollRequest,
    ) -> Result<EnrollResponse> {
        if req.slots == 0 || req.slots > SLOTS_MAX {
            return Err(CoordError::Invalid(format!(
                "slots must be within 1..={SLOTS_MAX}"
            )));
        }
        if req.name.trim().is_empty() || req.name.len() > NAME_MAX_BYTES {
            return Err(CoordError::Invalid(format!(
                "name must be 1 to {NAME_MAX_BYTES} characters"
            )));
        }
        if !req.cost_per_hour_usd.is_finite() || req.cost_per_hour_usd < 0.0 {
            return Err(CoordError::Invalid(
                "cost_per_hour_usd must be a non-negative number".into(),
            ));
        }
        fleet::check_description(&req.os, &req.arch, &req.capabilities, &req.engine_classes)
            .map_err(|problems| CoordError::Invalid(problems.join("; ")))?;
        let enroll_hash = auth::hash_secret(enrollment_secret);
        let id = FactoryId(Uuid::now_v7());
        let secret = auth::new_secret();
        let hash = auth::hash_secret(&secret);
        let now = self.now();
        let mut capabilities = req.capabilities.clone();
        capabilities.sort();
        capabilities.dedup();
        let factory = Factory {
            id,
            name: req.name.clone(),
            os: req.os.clone(),
            arch: req.arch.clone(),
            capabilities,
            engine_classes: req.engine_classes.clone(),
            slots: req.slots,
            cost_per_hour_micros: (req.cost_per_hour_usd * 1e6) as u64,
            status: FactoryStatus::Online,
            enrolled_at: now,
            last_heartbeat: now,
            slots_busy: 0,
            token_hash: hash,
            warm: Vec::new(),
        };
        transact!(self.ctx.store, |tx| {
            let mut t = repo::load_token(tx, &enroll_hash)
                .await?
                .ok_or(CoordError::UnknownToken)?;
            match t.check(now) {
                Err(TokenRefusal::Revoked) => {
                    return Err(CoordError::Unauthorized(
                        "enrollment token already used or revoked".into(),
                    ));
                }
                Err(e) => return Err(CoordError::Unauthorized(e.to_string())),
                Ok(()) if t.role != Role::Enrollment => {
                    return Err(CoordError::Forbidden("not an enrollment token".into()));
                }
                Ok(()) => {}
            }
            t.revoked = true;
            repo::save_token(tx, &enroll_hash, &t)?;
            repo::save_factory(tx, &factory)?;
            repo::save_token(
                tx,
                &hash,
                &Token {
                    role: Role::Factory(id),
                    name: req.name.clone(),
                    created_at: now,
                    revoked: false,
                    expires_at: None,
                    created_by: None,
                },
            )?;
            Ok(())
        })?;
        tracing::info!(factory_id = %id, name = %req.name, slots = req.slots, "factory enrolled");
        Ok(EnrollResponse {
            factory_id: id,
            token: secret,
        })
    }

    /// Replaces a factory's token; the old one stops working at once.
    pub async fn rotate_factory(&self, id: FactoryId) -> Result<String> {
        let secret = auth::new_secret();
        let hash = auth::hash_secret(&secret);
        let now = self.now();
        transact!(self.ctx.store, |tx| {
            let mut f = repo::load_factory(tx, id)
                .await?
                .ok_or_else(|| CoordError::NotFound(format!("factory {id}")))?;
            if f.status == FactoryStatus::Revoked {
                return Err(CoordError::IllegalTransition {
                    subject: "factory",
                    command: "rotate",
                    state: "revoked",
                });
            }
            if let Some(mut old) = repo::load_token(tx, &f.token_hash).await? {
                old.revoked = true;
                repo::save_token(tx, &f.token_hash, &old)?;
            }
            f.token_hash = hash;
            repo::save_factory(tx, &f)?;
            repo::save_token(
                tx,
                &hash,
                &Token {
                    role: Role::Factory(id),
                    name: f.name.clone(),
                    created_at: now,
                    revoked: false,
                    expires_at: None,
                    created_by: None,
                },
            )?;
            Ok(())
        })?;
        Ok(secret)
    }

    /// Revokes a factory: its token stops working at once; its leases expire and are reaped.
    pub async fn revoke_factory(&self, id: FactoryId) -> Result<()> {
        transact!(self.ctx.store, |tx| {
            let mut f = repo::load_factory(tx, id)
                .await?
                .ok_or_else(|| CoordError::NotFound(format!("factory {id}")))?;
            if let Some(mut t) = repo::load_token(tx, &f.token_hash).await? {
                t.revoked = true;
                repo::save_token(tx, &f.token_hash, &t)?;
            }
            f.status = FactoryStatus::Revoked;
            repo::save_factory(tx, &f)?;
            Ok::<_, CoordError>(())
        })
    }

    /// Stops giving the factory new work; it finishes what it runs.
    pub async fn drain_factory(&self, id: FactoryId) -> Result<()> {
        let actor = self.ctx.factory_actor(id).await?;
        ractor::call!(actor, FactoryMsg::Drain)
            .map_err(|e| CoordError::Unavailable(format!("factory actor: {e}")))?
    }

    /// Gives a draining factory new work again; refused (changing nothing) unless it drains.
    pub async fn undrain_factory(&self, id: FactoryId) -> Result<()> {
        let actor = self.ctx.factory_actor(id).await?;
        ractor::call!(actor, FactoryMsg::Undrain)
            .map_err(|e| CoordError::Unavailable(format!("factory actor: {e}")))?
    }

    pub async fn factories(&self) -> Result<Vec<Factory>> {
        Ok(transact!(self.ctx.store, |tx| repo::factories(tx).await)?)
    }

    pub async fn factory(&self, id: FactoryId) -> Result<Factory> {
        transact!(self.ctx.store, |tx| repo::load_factory(tx, id).await)?
            .ok_or_else(|| CoordError::NotFound(format!("factory {id}")))
    }

    pub async fn heartbeat(
        &self,
        id: FactoryId,
        req: HeartbeatRequest,
    ) -> Result<HeartbeatResponse> {
        if let Some(warm) = &req.warm {
            if warm.len() > gigafactory_core::fleet::WARM_KEYS_MAX {
                return Err(CoordError::Invalid(format!(
                    "at most {} warm keys, got {}",
                    gigafactory_core::fleet::WARM_KEYS_MAX,
                    warm.len()
                )));
            }
            for key in warm {
                gigafactory_core::limits::check_key(key)
                    .map_err(|e| CoordError::Invalid(format!("warm key: {e}")))?;
            }
        }
        let actor = self.ctx.factory_actor(id).await?;
        ractor::call!(actor, FactoryMsg::Heartbeat, req)
            .map_err(|e| CoordError::Unavailable(format!("factory actor: {e}")))?
    }
}

//! Access tokens: the first admin token, minting (with an optional expiry), listing without
//! secrets, revoking by id, and authenticating a bearer secret; and the audit log that records
//! who did what. Secrets are shown once and stored only as hashes (`auth`).

use gigafactory_core::audit::{AuditEntry, AuditFilter};
use gigafactory_core::fleet::{Role, SESSION_OF, Token, TokenRefusal, session_expiry, token_id};
use gigafactory_core::job::Millis;
use gigafactory_storage::{repo, transact};
use uuid::Uuid;

use super::Coordinator;
use crate::auth;
use crate::error::{CoordError, Result};

/// Who is calling, once their token checked out.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub role: Role,
    pub name: String,
}

/// A token as admins see it: never its secret.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct TokenInfo {
    /// The public id (`token_id`): what `DELETE /v1/tokens/{id}` takes.
    pub id: String,
    pub role: &'static str,
    /// The factory, for a factory's token.
    pub factory_id: Option<gigafactory_core::job::FactoryId>,
    pub name: String,
    pub created_at: Millis,
    pub created_by: Option<String>,
    pub expires_at: Option<Millis>,
    /// `active`, `revoked` or `expired`.
    pub status: &'static str,
}

/// A browser session just opened: its secret (for the cookie only), who it is and when it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub secret: String,
    /// The session's own token id (admins see and may revoke it on the token list).
    pub id: String,
    pub role: Role,
    pub name: String,
    pub expires_at: Millis,
}

/// A token just minted: its secret (shown this once), its id and its expiry.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Minted {
    pub token: String,
    pub id: String,
    pub expires_at: Option<Millis>,
}

impl Coordinator {
    /// On the first start only: mints the admin token and returns its secret (shown once).
    pub async fn bootstrap_admin(&self) -> Result<Option<String>> {
        let secret = auth::new_secret();
        let hash = auth::hash_secret(&secret);
        let now = self.now();
        let made = transact!(self.ctx.store, |tx| {
            if repo::admin_bootstrapped_at(tx).await?.is_some() {
                return Ok::<_, CoordError>(false);
            }
            repo::mark_admin_bootstrapped(tx, now)?;
            repo::save_token(
                tx,
                &hash,
                &Token {
                    role: Role::Admin,
                    name: "admin".into(),
                    created_at: now,
                    revoked: false,
                    expires_at: None,
                    created_by: None,
                },
            )?;
            Ok(true)
        })?;
        Ok(made.then_some(secret))
    }

    /// Mints a token for `role` (admin, operator, viewer or enrollment), refused from
    /// `expires_at` on when given; `created_by` names the minter.
    pub async fn mint_token(
        &self,
        role: Role,
        name: &str,
        expires_at: Option<Millis>,
        created_by: Option<String>,
    ) -> Result<Minted> {
        if matches!(role, Role::Factory(_)) {
            return Err(CoordError::Invalid(
                "factory tokens come from enrollment".into(),
            ));
        }
        let secret = auth::new_secret();
        let hash = auth::hash_secret(&secret);
        let token = Token {
            role,
            name: name.into(),
            created_at: self.now(),
            revoked: false,
            expires_at,
            created_by,
        };
        transact!(self.ctx.store, |tx| repo::save_token(tx, &hash, &token))?;
        tracing::info!(token_id = %token_id(&hash), role = role.name(), name, "token minted");
        Ok(Minted {
            token: secret,
            id: token_id(&hash),
            expires_at,
        })
    }

    /// Every token without its secret, newest first; revoked ones only with `revoked`.
    pub async fn tokens(&self, revoked: bool) -> Result<Vec<TokenInfo>> {
        let now = self.now();
        let all = transact!(self.ctx.store, |tx| repo::tokens(tx).await)?;
        let mut out: Vec<TokenInfo> = all
            .into_iter()
            .filter(|(_, t)| revoked || !t.revoked)
            .map(|(hash, t)| TokenInfo {
                id: token_id(&hash),
                role: t.role.name(),
                factory_id: match t.role {
                    Role::Factory(id) => Some(id),
                    _ => None,
                },
                status: match t.check(now) {
                    Ok(()) => "active",
                    Err(TokenRefusal::Revoked) => "revoked",
                    Err(TokenRefusal::Expired(_)) => "expired",
                },
                name: t.name,
                created_at: t.created_at,
                created_by: t.created_by,
                expires_at: t.expires_at,
            })
            .collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Revokes the token with public id `id`: it stops working at once. Revoking a revoked
    /// token changes nothing. A factory's token is revoked with its factory, and the last
    /// working admin token is kept, so the store is never left without an admin.
    pub async fn revoke_token(&self, id: &str) -> Result<()> {
        let now = self.now();
        transact!(self.ctx.store, |tx| {
            let all = repo::tokens(tx).await?;
            let (hash, mut t) = all
                .iter()
                .find(|(h, _)| token_id(h) == id)
                .cloned()
                .ok_or_else(|| CoordError::NotFound(format!("token {id}")))?;
            if t.revoked {
                return Ok(());
            }
            if let Role::Factory(f) = t.role {
                return Err(CoordError::Invalid(format!(
                    "a factory's token is revoked with its factory: factories revoke {f}"
                )));
            }
            // Sessions do not count: they end with their token.
            let working_admins = all
                .iter()
                .filter(|(_, t)| {
                    t.role == Role::Admin && t.check(now).is_ok() && t.session_of().is_none()
                })
                .count();
            if t.role == Role::Admin && t.check(now).is_ok() && working_admins == 1 {
                return Err(CoordError::Invalid(
                    "this is the last working admin token: mint another admin token first".into(),
                ));
            }
            t.revoked = true;
            repo::save_token(tx, &hash, &t)?;
            for (session_hash, mut session) in all {
                if session.session_of() == Some(id) && !session.revoked {
                    session.revoked = true;
                    repo::save_token(tx, &session_hash, &session)?;
                }
            }
            Ok::<_, CoordError>(())
        })?;
        tracing::info!(token_id = id, "token revoked, with its sessions");
        Ok(())
    }

    /// Opens a browser session for the holder of `secret` (an admin, operator or viewer
    /// token that works): a new token of the same role and name, ending after the session's
    /// lifetime or with its token, and revoked with it.
    pub async fn open_session(&self, secret: &str) -> Result<Session> {
        let parent_hash = auth::hash_secret(secret);
        let now = self.now();
        let session_secret = auth::new_secret();
        let hash = auth::hash_secret(&session_secret);
        let token = transact!(self.ctx.store, |tx| {
            let parent = repo::load_token(tx, &parent_hash)
                .await?
                .ok_or(CoordError::UnknownToken)?;
            parent
                .check(now)
                .map_err(|e| CoordError::Unauthorized(e.to_string()))?;
            if !parent.role.can_view() || parent.session_of().is_some() {
                return Err(CoordError::Forbidden(
                    "sign in with an admin, operator or viewer token".into(),
                ));
            }
            let token = Token {
                role: parent.role,
                name: parent.name,
                created_at: now,
                revoked: false,
                expires_at: Some(session_expiry(now, parent.expires_at)),
                created_by: Some(format!("{SESSION_OF}{}", token_id(&parent_hash))),
            };
            repo::save_token(tx, &hash, &token)?;
            Ok::<_, CoordError>(token)
        })?;
        tracing::info!(token_id = %token_id(&hash), role = token.role.name(), name = %token.name, "session opened");
        Ok(Session {
            secret: session_secret,
            id: token_id(&hash),
            role: token.role,
            name: token.name,
            expires_at: token.expires_at.unwrap_or(now),
        })
    }

    /// Ends the session whose secret is `secret`: its cookie stops working at once. Only a
    /// session's secret is accepted (a token is revoked by id, by an admin); an ended session
    /// stays ended.
    pub async fn close_session(&self, secret: &str) -> Result<()> {
        let hash = auth::hash_secret(secret);
        transact!(self.ctx.store, |tx| {
            let mut t = repo::load_token(tx, &hash)
                .await?
                .ok_or(CoordError::UnknownToken)?;
            if t.session_of().is_none() {
                return Err(CoordError::Invalid("not a session".into()));
            }
            if !t.revoked {
                t.revoked = true;
                repo::save_token(tx, &hash, &t)?;
            }
            Ok::<_, CoordError>(())
        })?;
        tracing::info!(token_id = %token_id(&hash), "session closed");
        Ok(())
    }

    /// Who holds `secret`; revoked, expired and unknown tokens are refused at once.
    pub async fn authenticate(&self, secret: &str) -> Result<Principal> {
        let hash = auth::hash_secret(secret);
        let token = transact!(self.ctx.store, |tx| repo::load_token(tx, &hash).await)?;
        let t = token.ok_or(CoordError::UnknownToken)?;
        t.check(self.now())
            .map_err(|e| CoordError::Unauthorized(e.to_string()))?;
        Ok(Principal {
            role: t.role,
            name: t.name,
        })
    }

    /// Appends `entry` to the audit log.
    pub async fn record_audit(&self, entry: AuditEntry) -> Result<()> {
        let id = Uuid::now_v7();
        transact!(self.ctx.store, |tx| repo::record_audit(tx, id, &entry))?;
        Ok(())
    }

    /// A page of the audit log, newest first, and where the next one starts.
    pub async fn audit(
        &self,
        before: Option<repo::AuditCursor>,
        filter: &AuditFilter,
        limit: usize,
    ) -> Result<(Vec<AuditEntry>, Option<repo::AuditCursor>)> {
        Ok(transact!(self.ctx.store, |tx| {
            repo::audit_page(tx, before, filter, limit).await
        })?)
    }
}

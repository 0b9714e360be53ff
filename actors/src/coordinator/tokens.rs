//! Access tokens: the first admin token, minting, and authenticating a bearer secret. Secrets
//! are shown once and stored only as hashes (`auth`).

use gigafactory_core::fleet::{Role, Token};
use gigafactory_storage::{repo, transact};

use super::Coordinator;
use crate::auth;
use crate::error::{CoordError, Result};

/// Who is calling, once their token checked out.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub role: Role,
    pub name: String,
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
                },
            )?;
            Ok(true)
        })?;
        Ok(made.then_some(secret))
    }

    /// Mints a token for `role` (admin, operator, viewer or enrollment).
    pub async fn mint_token(&self, role: Role, name: &str) -> Result<String> {
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
        };
        transact!(self.ctx.store, |tx| repo::save_token(tx, &hash, &token))?;
        Ok(secret)
    }

    /// Who holds `secret`; revoked and unknown tokens are refused at once.
    pub async fn authenticate(&self, secret: &str) -> Result<Principal> {
        let hash = auth::hash_secret(secret);
        let token = transact!(self.ctx.store, |tx| repo::load_token(tx, &hash).await)?;
        match token {
            Some(t) if !t.revoked => Ok(Principal {
                role: t.role,
                name: t.name,
            }),
            Some(_) => Err(CoordError::Unauthorized("token revoked".into())),
            None => Err(CoordError::Unauthorized("unknown token".into())),
        }
    }
}

//! Authentication: the bearer token of every request, checked against the store once per
//! request by the gate (`guard::gate`, so a revoked or expired token stops working at once) —
//! or, without one, a browser's session cookie (`session`), checked the same way —
//! and the role checks routes ask for. A token-less caller of an `--insecure-dev` node is an
//! operator, never an admin: it can act on jobs and the fleet, not mint tokens.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use gigafactory_actors::CoordError;
use gigafactory_core::event::Author;
use gigafactory_core::fleet::Role;
use gigafactory_core::job::FactoryId;

use crate::AppState;
use crate::error::ApiError;

/// The caller, authenticated.
#[derive(Clone)]
pub(crate) struct Caller {
    pub role: Role,
    pub name: String,
    /// The bearer secret as presented (enrollment spends it).
    pub secret: Option<String>,
}

/// The name a token-less caller of an insecure development node goes by.
pub(crate) const INSECURE_DEV_CALLER: &str = "insecure-dev";

/// What the request's credentials came to, found once by the gate for the route's [`Caller`].
#[derive(Clone)]
pub(crate) enum Credentials {
    Caller(Caller),
    Refused(CoordError),
}

impl Credentials {
    /// Checks the `Authorization` header, else the session cookie (neither: an operator on an
    /// insecure development node, else refused).
    pub async fn of(headers: &HeaderMap, state: &AppState) -> Credentials {
        let secret = match headers.get(header::AUTHORIZATION) {
            Some(v) => v
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(|s| s.trim().to_string()),
            None => crate::session::cookie(headers).map(str::to_string),
        };
        match secret {
            Some(s) => match state.coord.authenticate(&s).await {
                Ok(p) => Credentials::Caller(Caller {
                    role: p.role,
                    name: p.name,
                    secret: Some(s),
                }),
                Err(e) => Credentials::Refused(e),
            },
            None if state.opts.insecure_dev => Credentials::Caller(Caller {
                role: Role::Operator,
                name: INSECURE_DEV_CALLER.into(),
                secret: None,
            }),
            None => Credentials::Refused(CoordError::Unauthorized("missing bearer token".into())),
        }
    }
}

impl Caller {
    /// Who the timeline says did what this caller does: only admins and operators change
    /// jobs (routes check the role before they act).
    pub fn author(&self) -> Result<Author, ApiError> {
        match self.role {
            Role::Admin => Ok(Author::Admin(self.name.clone())),
            Role::Operator => Ok(Author::Operator(self.name.clone())),
            Role::Factory(id) => Ok(Author::Factory(id)),
            Role::Viewer | Role::Enrollment => Err(forbidden("needs an operator or admin token")),
        }
    }

    /// `role:name`, as logs and records name the caller.
    pub fn describe(&self) -> String {
        format!("{}:{}", self.role.name(), self.name)
    }

    pub fn require_view(&self) -> Result<(), ApiError> {
        if self.role.can_view() {
            Ok(())
        } else {
            Err(forbidden("needs a viewer, operator or admin token"))
        }
    }

    pub fn require_operate(&self) -> Result<(), ApiError> {
        if self.role.can_operate() {
            Ok(())
        } else {
            Err(forbidden("needs an operator or admin token"))
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(forbidden("needs an admin token"))
        }
    }

    /// The factory this caller is; only a factory token qualifies.
    pub fn factory(&self) -> Result<FactoryId, ApiError> {
        match self.role {
            Role::Factory(id) => Ok(id),
            _ => Err(forbidden("needs a factory token")),
        }
    }
}

fn forbidden(why: &str) -> ApiError {
    ApiError::Coord(CoordError::Forbidden(why.into()))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Every route passes the gate, which found the credentials once; a route outside it
        // (none today) checks them here.
        let credentials = match parts.extensions.get::<Credentials>() {
            Some(c) => c.clone(),
            None => Credentials::of(&parts.headers, state).await,
        };
        match credentials {
            Credentials::Caller(c) => Ok(c),
            Credentials::Refused(e) => Err(ApiError::Coord(e)),
        }
    }
}

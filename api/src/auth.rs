//! Authentication: the bearer token of every request, checked against the store on every
//! request (a revoked or rotated token stops working at once), and the role checks routes ask
//! for.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use gigafactory_actors::CoordError;
use gigafactory_core::event::Author;
use gigafactory_core::fleet::Role;
use gigafactory_core::job::FactoryId;

use crate::AppState;
use crate::error::ApiError;

/// The caller, authenticated.
pub(crate) struct Caller {
    pub role: Role,
    pub name: String,
    /// The bearer secret as presented (enrollment spends it).
    pub secret: Option<String>,
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
        let secret = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|s| s.trim().to_string());
        match secret {
            Some(s) => {
                let p = state.coord.authenticate(&s).await?;
                Ok(Caller {
                    role: p.role,
                    name: p.name,
                    secret: Some(s),
                })
            }
            None if state.opts.insecure_dev => Ok(Caller {
                role: Role::Admin,
                name: "insecure-dev".into(),
                secret: None,
            }),
            None => Err(ApiError::Coord(CoordError::Unauthorized(
                "missing bearer token".into(),
            ))),
        }
    }
}

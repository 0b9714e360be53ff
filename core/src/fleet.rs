//! Factories and access tokens: who may talk to the coordinator, and as what.

use serde::{Deserialize, Serialize};

use crate::job::{FactoryId, Millis};

/// A worker machine known to the coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Factory {
    pub id: FactoryId,
    pub name: String,
    pub os: String,
    pub arch: String,
    /// Sorted, deduplicated.
    pub capabilities: Vec<String>,
    pub engine_classes: Vec<String>,
    pub slots: u32,
    pub cost_per_hour_micros: u64,
    pub status: FactoryStatus,
    pub enrolled_at: Millis,
    pub last_heartbeat: Millis,
    pub slots_busy: u32,
    /// Hash of the factory's current token (rotation replaces it).
    pub token_hash: [u8; 32],
    /// What the factory holds warm (repositories, cache keys), as its last heartbeat said:
    /// jobs whose `affinity` names one score higher there.
    pub warm: Vec<String>,
}

/// Warm keys a factory may report.
pub const WARM_KEYS_MAX: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FactoryStatus {
    Online,
    /// Finishes what it runs, takes nothing new.
    Draining,
    /// Missed its heartbeat window.
    Offline,
    /// Its token no longer works; it can only enroll again.
    Revoked,
}

impl FactoryStatus {
    pub fn name(self) -> &'static str {
        match self {
            FactoryStatus::Online => "online",
            FactoryStatus::Draining => "draining",
            FactoryStatus::Offline => "offline",
            FactoryStatus::Revoked => "revoked",
        }
    }
}

/// What a token lets its bearer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Everything, including minting tokens.
    Admin,
    /// Submit jobs and act on them.
    Operator,
    /// Read only.
    Viewer,
    /// Enroll one factory (then it is spent).
    Enrollment,
    /// One factory's own token: its heartbeats, claims and its own leases only.
    Factory(FactoryId),
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Enrollment => "enrollment",
            Role::Factory(_) => "factory",
        }
    }

    /// Whether the role may read operator data (jobs, events, factories).
    pub fn can_view(self) -> bool {
        matches!(self, Role::Admin | Role::Operator | Role::Viewer)
    }

    /// Whether the role may submit jobs and take operator actions.
    pub fn can_operate(self) -> bool {
        matches!(self, Role::Admin | Role::Operator)
    }
}

/// A stored token: only the hash of its secret is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub role: Role,
    /// Who or what it was made for, for audit events.
    pub name: String,
    pub created_at: Millis,
    pub revoked: bool,
}

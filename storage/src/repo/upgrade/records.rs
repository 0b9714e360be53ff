//! Reading records other than jobs written by older versions, declared as they were stored
//! (see the parent module). Ready entries: schema 1 had no labels, schemas up to 2 no
//! concurrency key or affinity. Fleet events: schema 1 had no detail. Factories: schema 1 had
//! no warm keys. Tokens: schema 1 had no expiry or minter.

use gigafactory_core::event::{Author, EventKind};
use gigafactory_core::job::{JobId, Millis};
use gigafactory_core::wire::FleetEvent;
use serde::Deserialize;

use crate::codec::decode_payload;
use crate::error::{Error, Result};
use crate::repo::ReadyEntry;

/// A ready entry as schema 1 stored it: no labels.
#[derive(Deserialize)]
struct ReadyEntryV1 {
    id: JobId,
    priority: u32,
    created_at: Millis,
    not_before: Millis,
    product: String,
    capabilities: Vec<String>,
    engine_class: Option<String>,
    preemptible: bool,
}

/// A ready entry as schema 2 stored it: no concurrency key, no affinity.
#[derive(Deserialize)]
struct ReadyEntryV2 {
    id: JobId,
    priority: u32,
    created_at: Millis,
    not_before: Millis,
    product: String,
    capabilities: Vec<String>,
    labels: Vec<String>,
    engine_class: Option<String>,
    preemptible: bool,
}

/// Reads a ready entry stored with an older `schema`.
pub(in crate::repo) fn ready_entry(schema: u16, payload: &[u8]) -> Result<ReadyEntry> {
    match schema {
        2 => {
            let e: ReadyEntryV2 = decode_payload(payload)?;
            Ok(ReadyEntry {
                id: e.id,
                priority: e.priority,
                created_at: e.created_at,
                not_before: e.not_before,
                product: e.product,
                capabilities: e.capabilities,
                labels: e.labels,
                engine_class: e.engine_class,
                preemptible: e.preemptible,
                concurrency_key: None,
                affinity: None,
            })
        }
        1 => {
            let e: ReadyEntryV1 = decode_payload(payload)?;
            Ok(ReadyEntry {
                id: e.id,
                priority: e.priority,
                created_at: e.created_at,
                not_before: e.not_before,
                product: e.product,
                capabilities: e.capabilities,
                labels: Vec::new(),
                engine_class: e.engine_class,
                preemptible: e.preemptible,
                concurrency_key: None,
                affinity: None,
            })
        }
        _ => Err(Error::Codec(format!(
            "ready entry schema {schema} is not readable by this version"
        ))),
    }
}

/// A fleet event as schema 1 stored it: no detail.
#[derive(Deserialize)]
struct FleetEventV1 {
    seq: u64,
    node: uuid::Uuid,
    at: Millis,
    job_id: JobId,
    title: String,
    product: String,
    kind: EventKind,
    state: String,
    actor: Author,
    epoch: u64,
}

/// Reads a fleet event stored with an older `schema`.
pub(in crate::repo) fn fleet_event(schema: u16, payload: &[u8]) -> Result<FleetEvent> {
    match schema {
        1 => {
            let e: FleetEventV1 = decode_payload(payload)?;
            Ok(FleetEvent {
                seq: e.seq,
                node: e.node,
                at: e.at,
                job_id: e.job_id,
                title: e.title,
                product: e.product,
                kind: e.kind,
                state: e.state,
                actor: e.actor,
                epoch: e.epoch,
                detail: None,
            })
        }
        _ => Err(Error::Codec(format!(
            "fleet event schema {schema} is not readable by this version"
        ))),
    }
}

/// A factory as schema 1 stored it: no warm keys.
#[derive(Deserialize)]
struct FactoryV1 {
    id: gigafactory_core::job::FactoryId,
    name: String,
    os: String,
    arch: String,
    capabilities: Vec<String>,
    engine_classes: Vec<String>,
    slots: u32,
    cost_per_hour_micros: u64,
    status: gigafactory_core::fleet::FactoryStatus,
    enrolled_at: Millis,
    last_heartbeat: Millis,
    slots_busy: u32,
    token_hash: [u8; 32],
}

/// Reads a factory stored with an older `schema`.
pub(in crate::repo) fn factory(
    schema: u16,
    payload: &[u8],
) -> Result<gigafactory_core::fleet::Factory> {
    match schema {
        1 => {
            let f: FactoryV1 = decode_payload(payload)?;
            Ok(gigafactory_core::fleet::Factory {
                id: f.id,
                name: f.name,
                os: f.os,
                arch: f.arch,
                capabilities: f.capabilities,
                engine_classes: f.engine_classes,
                slots: f.slots,
                cost_per_hour_micros: f.cost_per_hour_micros,
                status: f.status,
                enrolled_at: f.enrolled_at,
                last_heartbeat: f.last_heartbeat,
                slots_busy: f.slots_busy,
                token_hash: f.token_hash,
                warm: Vec::new(),
            })
        }
        _ => Err(Error::Codec(format!(
            "factory schema {schema} is not readable by this version"
        ))),
    }
}

/// A token as schema 1 stored it: no expiry, no minter.
#[derive(Deserialize)]
struct TokenV1 {
    role: gigafactory_core::fleet::Role,
    name: String,
    created_at: Millis,
    revoked: bool,
}

/// Reads a token stored with an older `schema`.
pub(in crate::repo) fn token(
    schema: u16,
    payload: &[u8],
) -> Result<gigafactory_core::fleet::Token> {
    match schema {
        1 => {
            let t: TokenV1 = decode_payload(payload)?;
            Ok(gigafactory_core::fleet::Token {
                role: t.role,
                name: t.name,
                created_at: t.created_at,
                revoked: t.revoked,
                expires_at: None,
                created_by: None,
            })
        }
        _ => Err(Error::Codec(format!(
            "token schema {schema} is not readable by this version"
        ))),
    }
}

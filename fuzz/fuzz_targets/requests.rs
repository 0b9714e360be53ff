//! The API's JSON request bodies on any bytes: each body type the routes take (submit, enroll,
//! heartbeat, claim, the fenced writes, usage, budgets, limits, weights, review) and the
//! trackers' webhook payloads. Decoding never panics; a body that decodes serializes and
//! decodes back to the same value (so what the agent and CLI send is what the coordinator
//! reads); and the checks the coordinator runs on a decoded body (`core`'s validators) never
//! panic.
#![no_main]

use std::fmt::Debug;

use gigafactory_core::artifact::{check_digest, check_name};
use gigafactory_core::budget::{self, ALERT_PERCENT_DEFAULT, BudgetSpec, Policy};
use gigafactory_core::fair_share::check_share;
use gigafactory_core::limits::{LimitSpec, check_key};
use gigafactory_core::manifest::{JobSpec, validate_job_spec};
use gigafactory_core::scoring::WeightsOverride;
use gigafactory_core::tracker::{SourceKind, parse_item};
use gigafactory_core::wire::{
    ActionBody, ArtifactUpload, BudgetBody, ClaimRequest, Complete, EnrollRequest, Fail, FencedWrite,
    HeartbeatRequest, LogChunk, PauseBody, Release, Renew, Stage,
    UsageReport,
};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// `data` as a `T`, when it is one; then checks it survives a round trip through JSON.
fn body<T: DeserializeOwned + Serialize + PartialEq + Debug>(data: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(data).ok()?;
    let json = serde_json::to_vec(&value).expect("a decoded body serializes");
    let again: T = serde_json::from_slice(&json).unwrap_or_else(|e| {
        panic!(
            "{} re-encoded as {} is refused: {e}",
            std::any::type_name::<T>(),
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(again, value, "{} changed on a round trip", std::any::type_name::<T>());
    Some(value)
}

fuzz_target!(|data: &[u8]| {
    if let Some(spec) = body::<JobSpec>(data) {
        let _ = validate_job_spec(&spec);
    }
    body::<EnrollRequest>(data);
    body::<HeartbeatRequest>(data);
    body::<ClaimRequest>(data);
    body::<FencedWrite<Renew>>(data);
    if let Some(w) = body::<FencedWrite<Stage>>(data) {
        let _ = w.body.stage.trim();
    }
    body::<FencedWrite<LogChunk>>(data);
    body::<FencedWrite<Complete>>(data);
    body::<FencedWrite<Fail>>(data);
    body::<FencedWrite<Release>>(data);
    body::<FencedWrite<UsageReport>>(data);
    body::<ActionBody>(data);
    body::<PauseBody>(data);
    if let Some(b) = body::<BudgetBody>(data) {
        let _ = budget::validate(&BudgetSpec {
            name: "fuzz".into(),
            product: b.product,
            label: b.label,
            period: b.period,
            limit_micros: b.limit_micros,
            alert_percent: b.alert_percent.unwrap_or(ALERT_PERCENT_DEFAULT),
            policy: b.policy.unwrap_or(Policy::Finish),
        });
    }
    if let Some(l) = body::<LimitSpec>(data) {
        let _ = l.validate();
    }
    if let Some(w) = body::<WeightsOverride>(data) {
        let _ = w.validate();
    }
    if let Some(u) = body::<ArtifactUpload>(data) {
        let _ = check_digest(&u.sha256);
        let _ = check_name(&u.request_id);
    }
    if let Ok(share) = serde_json::from_slice::<u64>(data) {
        let _ = check_share(share);
    }
    if let Ok(key) = std::str::from_utf8(data) {
        let _ = check_key(key);
    }
    for kind in [SourceKind::Github, SourceKind::Linear, SourceKind::Generic] {
        let _ = parse_item(kind, data);
    }
});

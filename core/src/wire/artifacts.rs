//! The REST API's bodies for artifacts: an upload's parameters (the bytes are the request's
//! body) and an artifact as listings show it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::artifact::{Artifact, ArtifactKind};
use crate::job::Millis;

/// The query of `PUT /v1/jobs/{id}/artifacts/{name}`: the lease it is written under, what
/// the file is, and the SHA-256 of its bytes (checked against the body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactUpload {
    pub epoch: u64,
    pub request_id: String,
    #[serde(default)]
    pub kind: ArtifactKind,
    pub sha256: String,
}

/// One artifact, as `GET /v1/jobs/{id}/artifacts` lists it. Its bytes are at
/// `/v1/jobs/{id}/artifacts/{attempt}/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ArtifactView {
    pub name: String,
    pub kind: ArtifactKind,
    pub attempt: u32,
    pub epoch: u64,
    pub size: u64,
    pub sha256: String,
    pub media_type: String,
    pub created_at: Millis,
}

impl From<&Artifact> for ArtifactView {
    fn from(a: &Artifact) -> Self {
        ArtifactView {
            name: a.file.name.clone(),
            kind: a.file.kind,
            attempt: a.attempt,
            epoch: a.epoch,
            size: a.file.size,
            sha256: a.file.sha256.clone(),
            media_type: a.file.media_type.clone(),
            created_at: a.created_at,
        }
    }
}

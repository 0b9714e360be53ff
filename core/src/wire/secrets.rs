//! The bodies of the secrets routes: an operator sets a value (write-only: no read answers
//! it), and a factory fetches the values of a job it holds the lease of, with the epoch.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::secrets::SecretDelivery;

/// `PUT /v1/secrets/{product}/{name}[?profile=P]`: the value and how the job receives it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretSet {
    /// 8 bytes to 64 KiB of UTF-8 without NUL. Never shown again by any read.
    pub value: String,
    #[serde(default)]
    pub delivery: SecretDelivery,
}

/// Never prints the value.
impl std::fmt::Debug for SecretSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretSet")
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

/// `?profile=P` of the secret routes: the secret applies to that profile's jobs only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretProfileQuery {
    pub profile: Option<String>,
}

/// `GET /v1/secrets[?product=P]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretListQuery {
    pub product: Option<String>,
}

/// `POST /v1/jobs/{id}/secrets`: the lease the factory holds the job under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretFetch {
    pub epoch: u64,
}

/// One secret as the job receives it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct JobSecret {
    pub name: String,
    pub version: u64,
    pub delivery: SecretDelivery,
    pub value: String,
}

/// Never prints the value, so no `{:?}` of a secret reaches a log.
impl std::fmt::Debug for JobSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobSecret")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

/// The answer to a fetch: the job's secrets (its profile's over its product's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct JobSecrets {
    pub secrets: Vec<JobSecret>,
}

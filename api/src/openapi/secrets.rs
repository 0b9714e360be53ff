//! The secrets routes in the OpenAPI document (`crate::secrets`).

use gigafactory_core::secrets::SecretMeta;
use gigafactory_core::wire::{
    JobSecrets, SecretFetch, SecretListQuery, SecretProfileQuery, SecretSet,
};
use serde_json::json;

use super::{Access, Doc};

pub(super) fn describe(d: &mut Doc) {
    use Access::*;
    let name = json!({"type": "string", "pattern": "^[A-Z_][A-Z0-9_]*$"});
    d.get(
        "/v1/secrets",
        "Secrets' names, scopes, versions and who set them when; never a value",
        Viewer,
    )
    .query::<SecretListQuery>()
    .answers::<Vec<SecretMeta>>(200, "every secret (of the product)");
    d.put(
        "/v1/secrets/{product}/{name}",
        "Set or rotate a secret (sealed with the node's key; the version goes up by one); \
         profile narrows it to that profile's jobs. Jobs leased from now on get it",
        Operator,
    )
    .param("product", json!({"type": "string"}))
    .param("name", name.clone())
    .query::<SecretProfileQuery>()
    .json::<SecretSet>()
    .answers::<SecretMeta>(200, "the secret now, without its value");
    d.delete(
        "/v1/secrets/{product}/{name}",
        "Remove a secret (of the profile, with profile)",
        Operator,
    )
    .param("product", json!({"type": "string"}))
    .param("name", name)
    .query::<SecretProfileQuery>()
    .empty(204, "removed");
    d.post(
        "/v1/jobs/{id}/secrets",
        "The job's secrets with their values, for the factory holding its lease at this epoch \
         (fenced); the use is in the audit log",
        Factory,
    )
    .param("id", json!({"type": "string", "format": "uuid"}))
    .json::<SecretFetch>()
    .answers::<JobSecrets>(200, "the job's secrets (its profile's over its product's)");
}

//! Secrets' rules: what a secret's name and value may be, where it applies (a product, or one
//! profile of it), which secrets a job gets (a profile's secret shadows the product's of the
//! same name), and the associated data that binds a sealed value to its record so a ciphertext
//! cannot be moved to another secret. Values are sealed and opened at the coordinator's edge;
//! nothing here sees a key.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::job::Millis;

/// Longest secret name, in characters.
pub const SECRET_NAME_MAX: usize = 128;
/// Largest secret value, in bytes.
pub const SECRET_VALUE_MAX_BYTES: usize = 64 * 1024;
/// Shortest secret value, in bytes. Redaction replaces every occurrence of a value and of its
/// encodings in a job's output; a shorter value would match ordinary words (and its base64
/// forms, a few characters long, would match inside any base64 text), so it is refused.
pub const SECRET_VALUE_MIN_BYTES: usize = 8;
/// Secrets one product may hold, its profiles' included: a job's fetch reads them all.
pub const SECRETS_PER_PRODUCT_MAX: usize = 100;
/// Prefixes of the names the job's own variables (`GF_`) and the agent's settings
/// (`GIGAFACTORY_`) use; a secret may not shadow them.
pub const RESERVED_PREFIXES: [&str; 2] = ["GF_", "GIGAFACTORY_"];
/// Variables the factory or its sandbox sets for every job: a secret named so would break it.
pub const RESERVED_NAMES: [&str; 3] = ["PATH", "HOME", "TMPDIR"];

/// Where a secret applies: every job of `product`, or only those of `product` whose
/// `spec.profile` is `profile`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct SecretScope {
    pub product: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// How a job receives a secret.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Hash)]
#[serde(rename_all = "snake_case")]
pub enum SecretDelivery {
    /// An environment variable named as the secret.
    #[default]
    Env,
    /// A file named as the secret in the directory `$GF_SECRETS_DIR` names (mode 0400).
    File,
}

/// What is known of a secret without its value: all that any read shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretMeta {
    pub name: String,
    #[serde(flatten)]
    pub scope: SecretScope,
    pub delivery: SecretDelivery,
    /// 1 at the first set, one more at every set after it.
    pub version: u64,
    /// Who set this version (`operator:NAME`, `admin:NAME`).
    pub set_by: String,
    pub set_at: Millis,
}

/// Why a secret is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error(
        "a secret's name is an environment variable name: 1 to {SECRET_NAME_MAX} characters \
         from [A-Z0-9_], not starting with a digit, got {0:?}"
    )]
    BadName(String),
    #[error(
        "{0} is reserved: PATH, HOME, TMPDIR and names starting with GF_ or GIGAFACTORY_ are \
         the job's own variables"
    )]
    ReservedName(String),
    #[error(
        "a secret's value is {SECRET_VALUE_MIN_BYTES} to {SECRET_VALUE_MAX_BYTES} bytes \
         (shorter values cannot be redacted from logs reliably), got {0} bytes"
    )]
    BadLength(usize),
    #[error("a secret's value cannot hold a NUL byte (it could not be an environment variable)")]
    NulByte,
    #[error("{what} {value:?}: {why}")]
    BadScope {
        what: &'static str,
        value: String,
        why: String,
    },
}

/// Checks a secret's name: an environment variable name the job's own `GF_` variables cannot
/// be shadowed by.
pub fn check_name(name: &str) -> Result<(), SecretError> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !first_ok || !rest_ok || name.len() > SECRET_NAME_MAX {
        return Err(SecretError::BadName(crate::audit::clip(name, 64)));
    }
    if RESERVED_NAMES.contains(&name) || RESERVED_PREFIXES.iter().any(|p| name.starts_with(p)) {
        return Err(SecretError::ReservedName(name.to_string()));
    }
    Ok(())
}

/// Checks a secret's value: bounded both ways, and fit for an environment variable.
pub fn check_value(value: &str) -> Result<(), SecretError> {
    let n = value.len();
    if !(SECRET_VALUE_MIN_BYTES..=SECRET_VALUE_MAX_BYTES).contains(&n) {
        return Err(SecretError::BadLength(n));
    }
    if value.contains('\0') {
        return Err(SecretError::NulByte);
    }
    Ok(())
}

/// Checks a scope's names as a manifest checks a product's and a profile's.
pub fn check_scope(scope: &SecretScope) -> Result<(), SecretError> {
    let bad = |what, value: &str, why| SecretError::BadScope {
        what,
        value: crate::audit::clip(value, 64),
        why,
    };
    crate::manifest::check_product_name(&scope.product)
        .map_err(|why| bad("product", &scope.product, why))?;
    if let Some(p) = &scope.profile {
        crate::manifest::check_product_name(p).map_err(|why| bad("profile", p, why))?;
    }
    Ok(())
}

/// The secrets a job of `profile` gets from its product's: each name once, the profile's own
/// secret over the product-wide one. Secrets of other profiles are left out.
pub fn for_job<T>(profile: Option<&str>, secrets: Vec<(SecretMeta, T)>) -> Vec<(SecretMeta, T)> {
    let mut chosen: BTreeMap<String, (SecretMeta, T)> = BTreeMap::new();
    for (meta, value) in secrets {
        let mine = match meta.scope.profile.as_deref() {
            None => false,
            Some(p) if Some(p) == profile => true,
            Some(_) => continue,
        };
        let shadowed = chosen
            .get(&meta.name)
            .is_some_and(|(kept, _)| kept.scope.profile.is_some());
        if mine || !shadowed {
            chosen.insert(meta.name.clone(), (meta, value));
        }
    }
    chosen.into_values().collect()
}

/// The associated data a value is sealed with: its record's identity. Opening with another
/// record's (a ciphertext copied to another name, scope or version) fails.
pub fn sealed_with(meta: &SecretMeta) -> Vec<u8> {
    // Length-prefixed, so no two identities share bytes ("a"+"bc" vs "ab"+"c").
    let mut out = b"gigafactory-secret-v1".to_vec();
    for part in [
        meta.scope.product.as_str(),
        meta.scope.profile.as_deref().unwrap_or(""),
        meta.name.as_str(),
    ] {
        out.extend_from_slice(&(part.len() as u32).to_le_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out.push(u8::from(meta.scope.profile.is_some()));
    out.extend_from_slice(&meta.version.to_le_bytes());
    out.extend_from_slice(&meta.set_at.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, profile: Option<&str>) -> SecretMeta {
        SecretMeta {
            name: name.into(),
            scope: SecretScope {
                product: "acme".into(),
                profile: profile.map(Into::into),
            },
            delivery: SecretDelivery::Env,
            version: 1,
            set_by: "operator:o".into(),
            set_at: 5,
        }
    }

    #[test]
    fn names_are_environment_variable_names_outside_the_jobs_own() {
        for ok in [
            "ANTHROPIC_API_KEY",
            "_X",
            "A1",
            &"A".repeat(SECRET_NAME_MAX),
        ] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "1A",
            "lower",
            "A-B",
            "A B",
            "É",
            &"A".repeat(SECRET_NAME_MAX + 1),
        ] {
            assert!(
                matches!(check_name(bad), Err(SecretError::BadName(_))),
                "{bad}"
            );
        }
        for reserved in ["GF_JOB_ID", "GIGAFACTORY_TOKEN", "PATH", "HOME", "TMPDIR"] {
            assert!(
                matches!(check_name(reserved), Err(SecretError::ReservedName(_))),
                "{reserved}"
            );
        }
        assert_eq!(check_name("PATH_EXTRA"), Ok(()));
    }

    #[test]
    fn values_are_bounded_and_fit_an_environment_variable() {
        assert_eq!(check_value("12345678"), Ok(()));
        assert_eq!(check_value(""), Err(SecretError::BadLength(0)));
        assert_eq!(check_value("1234567"), Err(SecretError::BadLength(7)));
        let big = "x".repeat(SECRET_VALUE_MAX_BYTES + 1);
        assert_eq!(
            check_value(&big),
            Err(SecretError::BadLength(SECRET_VALUE_MAX_BYTES + 1))
        );
        assert_eq!(check_value("1234\u{0}5678"), Err(SecretError::NulByte));
    }

    #[test]
    fn a_scope_names_a_product_and_maybe_a_profile_as_manifests_do() {
        let scope = |product: &str, profile: Option<&str>| SecretScope {
            product: product.into(),
            profile: profile.map(Into::into),
        };
        assert!(check_scope(&scope("acme", Some("agent"))).is_ok());
        assert!(check_scope(&scope("", None)).is_err());
        assert!(check_scope(&scope("acme", Some("a b"))).is_err());
    }

    #[test]
    fn a_profiles_secret_shadows_the_products_and_other_profiles_are_left_out() {
        let all = vec![
            (meta("A", Some("agent")), "agent-a"),
            (meta("A", None), "product-a"),
            (meta("B", None), "product-b"),
            (meta("C", Some("other")), "other-c"),
        ];
        let values = |p: Option<&str>| -> Vec<&str> {
            for_job(p, all.clone())
                .into_iter()
                .map(|(_, v)| v)
                .collect()
        };
        assert_eq!(values(Some("agent")), ["agent-a", "product-b"]);
        assert_eq!(values(None), ["product-a", "product-b"]);
        assert_eq!(values(Some("other")), ["product-a", "product-b", "other-c"]);
        // The order the store gives them in does not matter.
        let mut reversed = all.clone();
        reversed.reverse();
        let got: Vec<&str> = for_job(Some("agent"), reversed)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(got, ["agent-a", "product-b"]);
    }

    #[test]
    fn the_sealing_context_differs_for_every_part_of_a_records_identity() {
        let base = meta("A", None);
        let mut variants = vec![base.clone()];
        let mut m = base.clone();
        m.name = "B".into();
        variants.push(m);
        let mut m = base.clone();
        m.scope.profile = Some(String::new());
        variants.push(m);
        let mut m = base.clone();
        m.scope.product = "acm".into();
        variants.push(m);
        let mut m = base.clone();
        m.version = 2;
        variants.push(m);
        let mut m = base.clone();
        m.set_at = 6;
        variants.push(m);
        let contexts: std::collections::BTreeSet<Vec<u8>> =
            variants.iter().map(sealed_with).collect();
        assert_eq!(contexts.len(), variants.len());
        // Who set it and how it is delivered are shown, not bound: they change nothing the
        // ciphertext means.
        let mut m = base.clone();
        m.set_by = "admin:x".into();
        assert_eq!(sealed_with(&m), sealed_with(&base));
    }
}

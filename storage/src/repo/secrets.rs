//! Secrets in the store: one record per secret under `("secret", product, profile, name)`
//! (an empty profile for a product-wide one), holding what is known of it and its value as
//! sealed by the coordinator. The store never sees a key or a plain value; a product's
//! secrets, its profiles' included, read in one bounded range.

use gigafactory_core::job::Millis;
use gigafactory_core::secrets::{SECRETS_PER_PRODUCT_MAX, SecretDelivery, SecretMeta, SecretScope};
use serde::{Deserialize, Serialize};

use crate::codec::{self, Record};
use crate::error::Error;
use crate::keys;
use crate::txn::{RangeOptions, Transaction};

/// Most secrets a listing of every product reads.
pub const SECRETS_LIST_MAX: usize = 10_000;

/// A secret as stored: its description and its sealed value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRecord {
    pub name: String,
    pub product: String,
    pub profile: Option<String>,
    pub delivery: SecretDelivery,
    pub version: u64,
    pub set_by: String,
    pub set_at: Millis,
    /// The AEAD nonce the value was sealed with (random per value).
    pub nonce: Vec<u8>,
    /// The value sealed with the operator's key, its tag appended.
    pub sealed: Vec<u8>,
}

/// Shows no sealed bytes: they are not secret, but they are noise in a log.
impl std::fmt::Debug for SecretRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRecord")
            .field("meta", &self.meta())
            .finish_non_exhaustive()
    }
}

impl SecretRecord {
    pub fn meta(&self) -> SecretMeta {
        SecretMeta {
            name: self.name.clone(),
            scope: SecretScope {
                product: self.product.clone(),
                profile: self.profile.clone(),
            },
            delivery: self.delivery,
            version: self.version,
            set_by: self.set_by.clone(),
            set_at: self.set_at,
        }
    }
}

impl Record for SecretRecord {
    const KIND: &'static str = "secret";
    const SCHEMA: u16 = 1;
}

fn key(scope: &SecretScope, name: &str) -> Vec<u8> {
    keys::secret(&scope.product, scope.profile.as_deref().unwrap_or(""), name)
}

pub async fn load_secret<T: Transaction>(
    tx: &mut T,
    scope: &SecretScope,
    name: &str,
) -> Result<Option<SecretRecord>, Error> {
    match tx.get(&key(scope, name)).await? {
        Some(v) => Ok(Some(codec::decode(&v)?)),
        None => Ok(None),
    }
}

pub fn save_secret<T: Transaction>(tx: &mut T, record: &SecretRecord) -> Result<(), Error> {
    let scope = SecretScope {
        product: record.product.clone(),
        profile: record.profile.clone(),
    };
    tx.set(&key(&scope, &record.name), &codec::encode(record)?)
}

/// Deletes the secret; whether it existed.
pub async fn delete_secret<T: Transaction>(
    tx: &mut T,
    scope: &SecretScope,
    name: &str,
) -> Result<bool, Error> {
    let k = key(scope, name);
    let existed = tx.get(&k).await?.is_some();
    if existed {
        tx.clear(&k)?;
    }
    Ok(existed)
}

/// The secrets of `product` (every profile's too), or of every product, in key order; `None`
/// when there are more than a read may hold (every product's past [`SECRETS_LIST_MAX`]). A
/// product holds at most [`SECRETS_PER_PRODUCT_MAX`], so a product's read is bounded.
pub async fn secrets<T: Transaction>(
    tx: &mut T,
    product: Option<&str>,
) -> Result<Option<Vec<SecretRecord>>, Error> {
    let max = match product {
        Some(_) => SECRETS_PER_PRODUCT_MAX,
        None => SECRETS_LIST_MAX,
    };
    let rows = tx
        .get_range(&keys::secrets_of(product), RangeOptions::limit(max + 1))
        .await?;
    if rows.len() > max {
        return Ok(None);
    }
    let records: Result<Vec<SecretRecord>, Error> =
        rows.iter().map(|(_, v)| codec::decode(v)).collect();
    records.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EmbeddedStore, Store};

    fn record(product: &str, profile: Option<&str>, name: &str) -> SecretRecord {
        SecretRecord {
            name: name.into(),
            product: product.into(),
            profile: profile.map(Into::into),
            delivery: SecretDelivery::File,
            version: 3,
            set_by: "operator:ops".into(),
            set_at: 1_700_000_000_000,
            nonce: vec![7; 12],
            sealed: vec![1, 2, 3],
        }
    }

    #[test]
    fn a_secrets_stored_bytes_are_pinned() {
        let bytes = codec::encode(&record("acme", Some("agent"), "API_KEY")).unwrap();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/golden/secret.hex");
        let hex = gigafactory_core::wire::hex(&bytes);
        if std::env::var_os("GOLDEN_UPDATE").is_some() {
            std::fs::write(&path, hex.clone() + "\n").unwrap();
        }
        let golden = std::fs::read_to_string(&path).expect("golden secret.hex");
        assert_eq!(hex, golden.trim(), "the stored shape of a secret changed");
        assert_eq!(
            codec::decode::<SecretRecord>(&bytes).unwrap(),
            record("acme", Some("agent"), "API_KEY")
        );
    }

    #[tokio::test]
    async fn a_products_secrets_read_together_apart_from_other_products() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let mut tx = store.begin().await.unwrap();
        for r in [
            record("acme", None, "A"),
            record("acme", Some("agent"), "A"),
            record("acme2", None, "B"),
        ] {
            save_secret(&mut tx, &r).unwrap();
        }
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        let names = |rs: Vec<SecretRecord>| -> Vec<(String, Option<String>)> {
            rs.into_iter().map(|r| (r.product, r.profile)).collect()
        };
        assert_eq!(
            names(secrets(&mut tx, Some("acme")).await.unwrap().unwrap()),
            [("acme".into(), None), ("acme".into(), Some("agent".into()))]
        );
        assert_eq!(secrets(&mut tx, None).await.unwrap().unwrap().len(), 3);
        let scope = SecretScope {
            product: "acme".into(),
            profile: Some("agent".into()),
        };
        assert!(delete_secret(&mut tx, &scope, "A").await.unwrap());
        assert!(!delete_secret(&mut tx, &scope, "A").await.unwrap());
        assert!(load_secret(&mut tx, &scope, "A").await.unwrap().is_none());
    }
}

//! Secrets through the coordinator's handle on a real store: a value set is sealed (the
//! store's record does not hold it), listed without it, rotated with a new version, and opened
//! for the lease holder; a sealed value moved onto another secret's record, or a record whose
//! identity was changed, does not open (a clear error, not a wrong value); a node without a key
//! refuses to set one.

use std::sync::Arc;

use gigafactory_actors::sealing::SecretsKey;
use gigafactory_actors::{Config, CoordError, Coordinator, Edges, SystemClock};
use gigafactory_core::event::Author;
use gigafactory_core::job::JobId;
use gigafactory_core::manifest::JobSpec;
use gigafactory_core::secrets::{SecretDelivery, SecretScope};
use gigafactory_core::wire::SecretSet;
use gigafactory_storage::repo::{self, SecretRecord};
use gigafactory_storage::{AnyStore, transact};

mod common;

fn scope() -> SecretScope {
    SecretScope {
        product: "t".into(),
        profile: None,
    }
}

fn value(v: &str) -> SecretSet {
    SecretSet {
        value: v.into(),
        delivery: SecretDelivery::Env,
    }
}

async fn start(dir: &std::path::Path, keyed: bool) -> (Coordinator, AnyStore) {
    let store = AnyStore::open(&format!("embedded:{}", dir.display())).unwrap();
    let mut edges = Edges::with_clock(Arc::new(SystemClock));
    if keyed {
        let key = SecretsKey::from_base64(&SecretsKey::generate().unwrap()).unwrap();
        edges.secrets_key = Some(Arc::new(key));
    }
    let coord = Coordinator::start_with(store.clone(), Config::default(), edges)
        .await
        .unwrap();
    (coord, store)
}

async fn submit(coord: &Coordinator) -> JobId {
    let spec: JobSpec = serde_json::from_value(serde_json::json!({
        "key": "k", "title": "k", "product": "t", "payload": {"command": "true"}
    }))
    .unwrap();
    let author = Author::Operator("test".into());
    coord.submit(spec, vec![], &author).await.unwrap().0.id
}

async fn record(store: &AnyStore, name: &str) -> SecretRecord {
    let scope = scope();
    let found = transact!(store, |tx| repo::load_secret(tx, &scope, name).await);
    found.unwrap().expect("stored")
}

async fn save(store: &AnyStore, r: &SecretRecord) {
    let saved: Result<(), gigafactory_storage::Error> =
        transact!(store, |tx| repo::save_secret(tx, r));
    saved.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_value_opens_only_on_its_own_record_for_the_lease_holder() {
    let dir = tempfile::tempdir().unwrap();
    let (coord, store) = start(dir.path(), true).await;
    let by = "operator:test".to_string();
    coord
        .set_secret(scope(), "A", value("value-of-a-1"), by.clone())
        .await
        .unwrap();
    coord
        .set_secret(scope(), "B", value("value-of-b-1"), by.clone())
        .await
        .unwrap();
    let rotated = coord
        .set_secret(scope(), "B", value("value-of-b-2"), by.clone())
        .await
        .unwrap();
    assert_eq!(rotated.version, 2);
    let stored = record(&store, "B").await;
    assert!(
        !stored.sealed.windows(8).any(|w| w == b"value-of"),
        "the store holds the value sealed"
    );
    let listed = serde_json::to_string(&coord.secrets(Some("t")).await.unwrap()).unwrap();
    assert!(!listed.contains("value-of"), "{listed}");

    let f = common::enroll(&coord, 1, 0.0).await.factory_id;
    let id = submit(&coord).await;
    let epoch = coord.claim(f, 1, 1_000).await.unwrap()[0].epoch;
    let opened = coord.job_secrets(f, id, epoch).await.unwrap();
    let values: Vec<(&str, u64, &str)> = opened
        .secrets
        .iter()
        .map(|s| (s.name.as_str(), s.version, s.value.as_str()))
        .collect();
    assert_eq!(values, [("A", 1, "value-of-a-1"), ("B", 2, "value-of-b-2")]);
    assert!(matches!(
        coord.job_secrets(f, id, epoch + 1).await,
        Err(CoordError::Fenced { .. })
    ));

    // A's sealed value copied onto B's record: B no longer opens, and says which secret.
    let a = record(&store, "A").await;
    let moved = SecretRecord {
        nonce: a.nonce.clone(),
        sealed: a.sealed.clone(),
        ..stored.clone()
    };
    save(&store, &moved).await;
    let err = coord.job_secrets(f, id, epoch).await.unwrap_err();
    assert!(
        matches!(&err, CoordError::SecretsUnreadable(m) if m.contains("secret B")),
        "{err:?}"
    );
    // B's own bytes under a changed identity (an older version claimed) do not open either.
    let relabelled = SecretRecord {
        version: 1,
        ..stored.clone()
    };
    save(&store, &relabelled).await;
    assert!(matches!(
        coord.job_secrets(f, id, epoch).await,
        Err(CoordError::SecretsUnreadable(_))
    ));
    save(&store, &stored).await;
    assert_eq!(
        coord.job_secrets(f, id, epoch).await.unwrap().secrets.len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_key_refuses_to_set_a_secret_and_a_bad_one_is_refused_first() {
    let dir = tempfile::tempdir().unwrap();
    let (coord, _store) = start(dir.path(), false).await;
    let by = "operator:test".to_string();
    let set = coord
        .set_secret(scope(), "A", value("value-of-a-1"), by.clone())
        .await;
    assert!(
        matches!(set, Err(CoordError::SecretsNotConfigured(m)) if m.contains("--secrets-key-file"))
    );
    let bad = coord
        .set_secret(scope(), "a", value("value-of-a-1"), by)
        .await;
    assert!(matches!(bad, Err(CoordError::Invalid(_))), "{bad:?}");
    assert!(coord.secrets(None).await.unwrap().is_empty());
}

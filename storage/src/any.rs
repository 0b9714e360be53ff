//! `AnyStore`: the engine chosen at run time from a store URL, behind the same `Store`
//! contract. The binary and the coordinator use this; tests use the engines directly.
//!
//! | URL | engine |
//! | --- | --- |
//! | `embedded:PATH[?cache_mib=N&flush_mib=N]` (or a bare path) | [`EmbeddedStore`] in directory `PATH`, with its page cache and memtable bounded as asked ([`EmbeddedOptions`]) |
//! | `etcd://host:port,host:port[/namespace]` | [`crate::EtcdStore`] (feature `etcd`) |
//! | `fdb:CLUSTER_FILE[#namespace]` | [`crate::FdbStore`] (feature `fdb`) |

use std::time::Instant;

use crate::commit_metrics;
use crate::error::{Error, Result};
use crate::txn::{KeyRange, KeyValue, RangeOptions, Store, Transaction, Watch, WatchTarget};
use crate::{Buffered, EmbeddedOptions, EmbeddedStore};

/// The default store URL: a data directory next to where the coordinator runs.
pub const DEFAULT_STORE_URL: &str = "embedded:./gigafactory-data";

/// The directory of an embedded store's URL (`embedded:PATH[?options]`, or a bare path);
/// `None` for another engine.
pub fn embedded_dir(url: &str) -> Option<&str> {
    let rest = match url.split_once(':') {
        Some(("etcd" | "fdb", _)) => return None,
        Some(("embedded", rest)) => rest,
        _ => url,
    };
    Some(rest.split_once('?').map_or(rest, |(dir, _)| dir))
}

/// One of the compiled-in engines.
#[derive(Clone)]
pub enum AnyStore {
    Embedded(EmbeddedStore),
    #[cfg(feature = "etcd")]
    Etcd(crate::EtcdStore),
    #[cfg(feature = "fdb")]
    Fdb(crate::FdbStore),
}

/// A transaction of whichever engine an [`AnyStore`] holds.
pub enum AnyTxn {
    Embedded(Buffered<crate::engine::embedded::EmbeddedSource>),
    #[cfg(feature = "etcd")]
    Etcd(Buffered<crate::engine::etcd::EtcdSource>),
    #[cfg(feature = "fdb")]
    Fdb(crate::engine::fdb::FdbTxn),
}

impl AnyStore {
    /// Opens the store a URL names; an engine not compiled in is a configuration error that
    /// says which cargo feature it needs.
    pub fn open(url: &str) -> Result<Self> {
        let (scheme, rest) = match url.split_once(':') {
            Some((s, r)) if ["embedded", "etcd", "fdb"].contains(&s) => (s, r),
            _ => ("embedded", url),
        };
        if rest.is_empty() {
            return Err(Error::Config(format!(
                "store URL {url:?} names no location"
            )));
        }
        match scheme {
            "embedded" => {
                let (dir, query) = rest.split_once('?').unwrap_or((rest, ""));
                let options = EmbeddedOptions::parse(query)?;
                Ok(AnyStore::Embedded(EmbeddedStore::open_with(dir, options)?))
            }
            "etcd" => Self::open_etcd(rest.trim_start_matches("//")),
            _ => Self::open_fdb(rest),
        }
    }

    #[cfg(feature = "etcd")]
    fn open_etcd(rest: &str) -> Result<Self> {
        Ok(AnyStore::Etcd(crate::EtcdStore::from_url_rest(rest)?))
    }

    #[cfg(not(feature = "etcd"))]
    fn open_etcd(_: &str) -> Result<Self> {
        Err(Error::Config(
            "this build has no etcd engine: build with --features etcd".into(),
        ))
    }

    #[cfg(feature = "fdb")]
    fn open_fdb(rest: &str) -> Result<Self> {
        let store = match rest.split_once('#') {
            Some((cluster_file, namespace)) => {
                crate::FdbStore::with_namespace(cluster_file, namespace.as_bytes())?
            }
            None => crate::FdbStore::open(rest)?,
        };
        // The one prefix the coordinator watches: nodes relay each other's fleet feeds.
        Ok(AnyStore::Fdb(store.with_watch_prefixes(vec![
            crate::keys::fleet_feed_prefix(),
        ])))
    }

    #[cfg(not(feature = "fdb"))]
    fn open_fdb(_: &str) -> Result<Self> {
        Err(Error::Config(
            "this build has no FoundationDB engine: build with --features fdb".into(),
        ))
    }

    /// The engine's name, for logs and `/readyz`.
    pub fn engine(&self) -> &'static str {
        match self {
            AnyStore::Embedded(_) => "embedded",
            #[cfg(feature = "etcd")]
            AnyStore::Etcd(_) => "etcd",
            #[cfg(feature = "fdb")]
            AnyStore::Fdb(_) => "fdb",
        }
    }
}

impl AnyTxn {
    /// The engine's name, the `engine` label of the store's metrics.
    fn engine(&self) -> &'static str {
        match self {
            AnyTxn::Embedded(_) => "embedded",
            #[cfg(feature = "etcd")]
            AnyTxn::Etcd(_) => "etcd",
            #[cfg(feature = "fdb")]
            AnyTxn::Fdb(_) => "fdb",
        }
    }
}

/// Calls the same method on whichever engine's value `$self` holds.
macro_rules! dispatch {
    ($enum:ident, $self:expr, $v:ident => $call:expr) => {
        match $self {
            $enum::Embedded($v) => $call,
            #[cfg(feature = "etcd")]
            $enum::Etcd($v) => $call,
            #[cfg(feature = "fdb")]
            $enum::Fdb($v) => $call,
        }
    };
}

impl Store for AnyStore {
    type Txn = AnyTxn;

    async fn begin(&self) -> Result<AnyTxn> {
        Ok(match self {
            AnyStore::Embedded(s) => AnyTxn::Embedded(s.begin().await?),
            #[cfg(feature = "etcd")]
            AnyStore::Etcd(s) => AnyTxn::Etcd(s.begin().await?),
            #[cfg(feature = "fdb")]
            AnyStore::Fdb(s) => AnyTxn::Fdb(s.begin().await?),
        })
    }
}

impl Transaction for AnyTxn {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        dispatch!(AnyTxn, self, t => t.get(key).await)
    }

    async fn get_snapshot(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        dispatch!(AnyTxn, self, t => t.get_snapshot(key).await)
    }

    async fn get_range(&mut self, range: &KeyRange, opts: RangeOptions) -> Result<Vec<KeyValue>> {
        dispatch!(AnyTxn, self, t => t.get_range(range, opts).await)
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        dispatch!(AnyTxn, self, t => t.set(key, value))
    }

    fn clear(&mut self, key: &[u8]) -> Result<()> {
        dispatch!(AnyTxn, self, t => t.clear(key))
    }

    fn clear_range(&mut self, range: &KeyRange) -> Result<()> {
        dispatch!(AnyTxn, self, t => t.clear_range(range))
    }

    fn atomic_add(&mut self, key: &[u8], delta: i64) -> Result<()> {
        dispatch!(AnyTxn, self, t => t.atomic_add(key, delta))
    }

    async fn watch(&mut self, target: WatchTarget) -> Result<Watch> {
        dispatch!(AnyTxn, self, t => t.watch(target).await)
    }

    async fn commit(self) -> Result<()> {
        let engine = self.engine();
        let started = dispatch!(AnyTxn, &self, t => t.writes()).then(Instant::now);
        let outcome = dispatch!(AnyTxn, self, t => t.commit().await);
        commit_metrics::record(engine, started.map(|s| s.elapsed()), &outcome);
        outcome
    }

    fn must_retry(&self) -> bool {
        dispatch!(AnyTxn, self, t => t.must_retry())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls_pick_an_engine_or_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("embedded:{}", dir.path().join("a").display());
        let store = AnyStore::open(&url).unwrap();
        assert_eq!(store.engine(), "embedded");
        crate::transact!(store, |tx| tx.set(b"k", b"v")).unwrap();
        assert!(matches!(AnyStore::open("embedded:"), Err(Error::Config(_))));
        let tuned = format!(
            "embedded:{}?cache_mib=8&flush_mib=2",
            dir.path().join("b").display()
        );
        assert_eq!(AnyStore::open(&tuned).unwrap().engine(), "embedded");
        assert!(
            dir.path()
                .join("b")
                .join(crate::engine::embedded::FILE_NAME)
                .exists()
        );
        assert_eq!(
            embedded_dir(&tuned),
            Some(&*dir.path().join("b").display().to_string())
        );
        assert_eq!(embedded_dir("etcd://127.0.0.1:2379"), None);
        for bad in ["cache_mib=0", "cache_mib=lots", "flush_mib", "size=3"] {
            let url = format!("embedded:{}?{bad}", dir.path().join("c").display());
            let refused = AnyStore::open(&url).err().map(|e| e.to_string());
            assert!(
                refused
                    .as_deref()
                    .is_some_and(|m| m.contains("store option")),
                "{bad}: {refused:?}"
            );
        }
        #[cfg(not(feature = "fdb"))]
        assert!(
            matches!(AnyStore::open("fdb:/etc/fdb.cluster"), Err(Error::Config(m)) if m.contains("--features fdb"))
        );
        #[cfg(feature = "etcd")]
        assert!(matches!(
            AnyStore::open("etcd://nohost"),
            Err(Error::Config(_))
        ));
    }
}

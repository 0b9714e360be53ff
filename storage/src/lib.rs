//! Gigafactory's storage room: an ordered key-value store with serializable transactions (the
//! model FoundationDB gives), three engines behind one contract, the key layout and the record
//! codec; and the blob store that keeps artifacts' bytes (`blobs`). Everything the coordinator
//! persists goes through here.
//!
//! Architecture invariant: only this crate knows redb, etcd, FoundationDB or object_store.

mod any;
pub mod blobs;
mod buffer;
pub mod codec;
pub mod commit_metrics;
pub mod engine;
pub mod error;
mod guard;
pub mod keys;
pub mod limits;
pub mod repo;
mod txn;

pub use any::{AnyStore, AnyTxn, DEFAULT_STORE_URL, embedded_dir};
pub use blobs::{BlobError, BlobStore};
pub use buffer::Buffered;
pub use engine::embedded::{EmbeddedOptions, EmbeddedStore};
#[cfg(feature = "etcd")]
pub use engine::etcd::EtcdStore;
#[cfg(feature = "etcd")]
pub use engine::etcd_cluster::LocalEtcdCluster;
#[cfg(feature = "fdb")]
pub use engine::fdb::FdbStore;
pub use error::{Error, Result};
pub use txn::{
    Attempt, Attempts, KeyRange, KeyValue, RangeOptions, RetryPolicy, Store, Transaction, Watch,
    WatchTarget, prefix_end,
};

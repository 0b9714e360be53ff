//! The FoundationDB engine: each `FdbTxn` is one FoundationDB transaction, so FoundationDB
//! itself provides what the other engines build by hand: read-your-writes, read-conflict
//! tracking (a limited range read depends only on the part it returned), serializable commits
//! and atomic adds that never conflict. This module adds the namespace, the shared guard, one
//! error vocabulary and prefix watches.
//!
//! Keys live under a namespace prefix (`gigafactory/` unless told otherwise, at most
//! [`NAMESPACE_MAX_BYTES`](crate::limits::NAMESPACE_MAX_BYTES) long), so a cluster can hold
//! other data; range reads strip it from the keys they return. Namespaces must not nest. Inside
//! a namespace, keys from `0xff` up are reserved, as on every engine ([`crate::limits`]): this
//! engine keeps its prefix-watch counters and their registry there (`registry.rs`).
//!
//! Limits: every operation passes the shared guard first, exactly as on the other engines, so
//! the same code fails the same way everywhere. The guard charges an upper bound of what
//! FoundationDB counts (namespace and conflict ranges included), so FoundationDB's own
//! `transaction_too_large` is not expected; it would still be `TransactionTooLarge`.
//!
//! Every transaction carries FoundationDB's `timeout` option, a second longer than the guard's
//! age limit: without one a request to an unreachable cluster waits forever, and with the
//! guard's own limit a commit started just inside it would be cut off with an unknown outcome.
//! No retry-limit option is set: it only bounds `on_error`, which this engine never calls,
//! since `transact!` retries with a fresh transaction. FoundationDB's errors map onto the
//! store's in `errors.rs`, one pure function.
//!
//! Every store opened on one cluster file in a process shares one FoundationDB `Database`
//! (`network.rs`).
//!
//! `errors.rs` and `registry.rs` do not touch FoundationDB, so they are built and tested
//! without the `fdb` feature; the rest needs libfdb_c to link.

mod errors;
#[cfg(feature = "fdb")]
mod network;
mod registry;
#[cfg(feature = "fdb")]
mod store;
#[cfg(feature = "fdb")]
mod watches;

#[cfg(feature = "fdb")]
pub use store::{DEFAULT_NAMESPACE, FdbStore, FdbTxn};

//! The engines behind the `Store` contract.

pub mod embedded;
#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "etcd")]
pub mod etcd_cluster;
// Without the feature, only the engine's pure parts, for their tests.
#[cfg(any(feature = "fdb", test))]
pub mod fdb;

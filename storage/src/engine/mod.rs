//! The engines behind the `Store` contract.

pub mod embedded;
#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "etcd")]
pub mod etcd_cluster;
#[cfg(feature = "fdb")]
pub mod fdb;

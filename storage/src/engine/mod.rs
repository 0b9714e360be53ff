//! The engines behind the `Store` contract.

pub mod embedded;

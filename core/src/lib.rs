//! Gigafactory's domain: jobs and their state machine, manifests and profiles, the dependency
//! DAG, placement scoring and preemption, retry backoff and budgets, and the wire types of the
//! REST API. Pure functions over values, with time passed in.
//!
//! Architecture invariant: `core` does no I/O, spawns nothing and reads no clock.

pub mod backoff;
pub mod budget;
pub mod cluster;
pub mod dag;
pub mod fleet;
pub mod job;
pub mod journal;
pub mod manifest;
pub mod scope;
pub mod scoring;
pub mod wire;

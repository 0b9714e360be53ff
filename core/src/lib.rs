//! Gigafactory's domain: jobs and their state machine, the rules between parents and
//! children, manifests and profiles, the dependency DAG, placement policy, scoring and
//! preemption, retry backoff and budgets, event kinds and authors, and the wire types of the
//! REST API. Pure functions over values, with time passed in.
//!
//! Architecture invariant: `core` does no I/O, spawns nothing and reads no clock.

pub mod artifact;
pub mod audit;
pub mod autoscale;
pub mod backoff;
pub mod budget;
pub mod checkout;
pub mod cluster;
pub mod dag;
pub mod event;
pub mod fair_share;
pub mod fleet;
pub mod hearing;
pub mod job;
pub mod journal;
pub mod limits;
pub mod load;
pub mod manifest;
pub mod metric_labels;
pub mod outcomes;
pub mod parents;
pub mod placement;
pub mod query;
pub mod redact;
pub mod sandbox;
pub mod schedule;
pub mod scope;
pub mod scoring;
pub mod secrets;
pub mod throttle;
pub mod tracker;
pub mod usage;
pub mod waiting;
pub mod wire;

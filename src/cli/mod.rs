//! The CLI's client commands, one file per concern: jobs (`jobs.rs`, with `submit`), the fleet
//! (`fleet.rs`: factories and tokens) and money (`budgets.rs`). Each is a thin caller of the
//! REST API through `crate::client`, printing what comes back for people to read.

pub mod budgets;
pub mod fleet;
pub mod jobs;

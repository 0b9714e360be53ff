//! The CLI's client commands, one file per concern: jobs (`jobs.rs`, with `submit`), their
//! review decisions (`review.rs`) and their artifacts (`artifacts.rs`), the fleet (`fleet.rs`: factories and tokens), money
//! (`budgets.rs`), trackers (`intake.rs`) and scheduling (`scheduling.rs`: why a job waits,
//! products' shares and weights). Each is a thin caller of the
//! REST API through `crate::client`, printing what comes back for people to read.

pub mod artifacts;
pub mod budgets;
pub mod fleet;
pub mod intake;
pub mod jobs;
pub mod review;
pub mod scheduling;

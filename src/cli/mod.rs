//! The CLI's client commands, one file per concern: jobs (`jobs.rs`, with `submit`), following
//! them to their end (`follow.rs`: `logs -f`, `submit --wait`), their review decisions
//! (`review.rs`), their artifacts (`artifacts.rs`) and questions (`ask.rs`: a job's `job ask`;
//! `questions.rs`: answering one), the fleet (`fleet.rs`: factories and
//! tokens), secrets (`secrets.rs`), money (`budgets.rs`), trackers (`intake.rs`), cron schedules (`schedules.rs`), scheduling (`scheduling.rs`: why a
//! job waits, products' shares and weights) and scaling hints (`scale.rs`); `top/` is the live
//! terminal view of the fleet, and `sse.rs` reads the event streams that `logs -f` and `top`
//! follow. Each is a thin caller of the REST API through `crate::client`, printing what comes
//! back through `output.rs`: tables for people (colour on a terminal, relative times) or, with
//! `-o json`, the API's answer.

pub mod artifacts;
pub mod ask;
pub mod budgets;
pub mod fleet;
pub mod follow;
pub mod intake;
pub mod jobs;
pub mod output;
pub mod questions;
pub mod review;
pub mod scale;
pub mod schedules;
pub mod scheduling;
pub mod secrets;
pub mod sse;
pub mod top;

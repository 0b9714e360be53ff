//! Gigafactory's benchmarks: the store benchmark (`benches/store.rs`, on the helpers exported
//! here) and the whole-system load harness that `gigafactory bench` runs ([`harness`]). Both
//! read latencies the same way ([`Percentiles`]) and report the machine's load beside their
//! figures ([`load_average`]), since the machine they run on is often shared.

pub mod harness;
mod procfs;
mod stats;

pub use procfs::load_average;
pub use stats::Percentiles;

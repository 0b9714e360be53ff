//! Time for the coordinator. Leases expire by this clock; that is liveness only: safety comes
//! from epochs (DESIGN §4), so a wrong clock can delay or hurry a requeue but never admit a
//! stale write. Every part of a node reads the clock it was started with, so tests drive
//! expiry, backoff and budgets with a [`ManualClock`] instead of waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;
}

/// The machine's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// A clock that stands still until told to move: tests set the time a node sees, exactly.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    pub fn at(ms: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(ms)))
    }

    /// Moves the clock on by `ms` (never back: time a node saw stays seen).
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let c = ManualClock::at(1_000);
        let seen_by_node = c.clone();
        assert_eq!(seen_by_node.now_ms(), 1_000);
        c.advance(250);
        assert_eq!(seen_by_node.now_ms(), 1_250);
    }
}

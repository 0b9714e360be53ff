//! Throttling of failed authentication per peer address: after `failures_max` failures
//! within `window_ms`, the peer is refused for `block_ms` before its token is even looked
//! at, so guessing secrets costs time. At most `peers_max` peers are tracked: a full table
//! first forgets peers that are neither blocked nor inside a window, then the unblocked peer
//! whose window began first (a blocked one only when every peer is blocked), so the memory is bounded whatever the number of addresses.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::job::Millis;

/// The bounds of the throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleLimits {
    pub failures_max: u32,
    pub window_ms: u64,
    pub block_ms: u64,
    pub peers_max: usize,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        ThrottleLimits {
            failures_max: 20,
            window_ms: 60_000,
            block_ms: 60_000,
            peers_max: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Peer {
    window_start: Millis,
    failures: u32,
    /// Refused until this time (0: not blocked).
    blocked_until: Millis,
}

/// What the throttle knows about recent failures, by peer.
#[derive(Debug, Default)]
pub struct AuthThrottle {
    limits: ThrottleLimits,
    peers: HashMap<IpAddr, Peer>,
}

impl AuthThrottle {
    pub fn new(limits: ThrottleLimits) -> Self {
        debug_assert!(limits.failures_max > 0 && limits.peers_max > 0);
        AuthThrottle {
            limits,
            peers: HashMap::new(),
        }
    }

    /// How long `peer` must still wait (ms), if it is blocked at `now`.
    pub fn blocked_for(&self, peer: IpAddr, now: Millis) -> Option<u64> {
        self.peers
            .get(&peer)
            .map(|p| p.blocked_until.saturating_sub(now))
            .filter(|wait| *wait > 0)
    }

    /// Counts one failed authentication of `peer` at `now`; blocks it when that makes one too
    /// many within the window.
    pub fn fail(&mut self, peer: IpAddr, now: Millis) {
        if !self.peers.contains_key(&peer) && self.peers.len() >= self.limits.peers_max {
            self.make_room(now);
        }
        let limits = self.limits;
        let p = self.peers.entry(peer).or_insert(Peer {
            window_start: now,
            failures: 0,
            blocked_until: 0,
        });
        if now.saturating_sub(p.window_start) >= limits.window_ms {
            p.window_start = now;
            p.failures = 0;
        }
        p.failures += 1;
        if p.failures >= limits.failures_max {
            p.blocked_until = now + limits.block_ms;
            p.window_start = now;
            p.failures = 0;
        }
        debug_assert!(self.peers.len() <= limits.peers_max);
    }

    /// Peers tracked now.
    pub fn tracked(&self) -> usize {
        self.peers.len()
    }

    fn make_room(&mut self, now: Millis) {
        let window = self.limits.window_ms;
        self.peers
            .retain(|_, p| p.blocked_until > now || now.saturating_sub(p.window_start) < window);
        if self.peers.len() >= self.limits.peers_max
            && let Some(oldest) = self
                .peers
                .iter()
                .min_by_key(|(_, p)| (p.blocked_until > now, p.window_start))
                .map(|(ip, _)| *ip)
        {
            self.peers.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ThrottleLimits {
        ThrottleLimits {
            failures_max: 3,
            window_ms: 1_000,
            block_ms: 5_000,
            peers_max: 2,
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn a_peer_is_blocked_after_too_many_failures_in_a_window_and_then_let_go() {
        let mut t = AuthThrottle::new(limits());
        t.fail(ip(1), 0);
        t.fail(ip(1), 10);
        assert_eq!(t.blocked_for(ip(1), 20), None);
        t.fail(ip(1), 20);
        assert_eq!(t.blocked_for(ip(1), 20), Some(5_000));
        assert_eq!(t.blocked_for(ip(1), 4_020), Some(1_000));
        assert_eq!(t.blocked_for(ip(1), 5_020), None);
        assert_eq!(
            t.blocked_for(ip(2), 20),
            None,
            "other peers are not blocked"
        );
    }

    #[test]
    fn failures_spread_over_more_than_a_window_do_not_block() {
        let mut t = AuthThrottle::new(limits());
        for at in [0, 600, 1_200, 1_800, 2_400] {
            t.fail(ip(1), at);
        }
        assert_eq!(t.blocked_for(ip(1), 2_400), None);
    }

    #[test]
    fn the_table_never_tracks_more_peers_than_its_bound_and_keeps_blocked_ones() {
        let mut t = AuthThrottle::new(limits());
        for _ in 0..3 {
            t.fail(ip(1), 0);
        }
        for n in 2..200 {
            t.fail(ip(n), 100 + u64::from(n));
            assert!(t.tracked() <= 2);
        }
        assert!(
            t.blocked_for(ip(1), 300).is_some(),
            "a blocked peer stays blocked"
        );
    }
}

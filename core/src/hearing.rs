//! When the coordinator could hear renewals. Every node records, every
//! `hearing_interval_ms`, that it serves; a gap longer than the outage bound between two such
//! records means no node could hear a factory's renewals in between (all were down, or cut
//! off from the store). A lease that ran out in such a gap was not given up by its factory,
//! which kept trying to renew: it gets one lease TTL from the coordinator's return to be
//! renewed before the reaper may take it, and if it is taken after all, that does not count
//! against the job's attempts. Only liveness depends on these clocks: the reaper alone moves
//! an epoch, so a late reap or a late renewal is never unsafe.

use serde::{Deserialize, Serialize};

use crate::job::Millis;

/// A stretch during which no node was heard serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outage {
    /// The last time a node was heard before it.
    pub from: Millis,
    /// When a node was heard again.
    pub until: Millis,
}

/// What the store keeps of the coordinator's hearing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Hearing {
    /// The last time a node was heard serving; 0 before the first.
    pub heard_at: Millis,
    /// The latest outage, if there was one.
    pub outage: Option<Outage>,
}

impl Hearing {
    /// The record once a node serving at `now` was heard: a silence longer than `gap_ms` since
    /// the last time anyone was heard was an outage. A clock that went back records nothing
    /// new about outages (the later time is kept).
    pub fn heard(self, now: Millis, gap_ms: u64) -> Hearing {
        if self.heard_at == 0 {
            return Hearing {
                heard_at: now,
                outage: self.outage,
            };
        }
        let outage = if now > self.heard_at.saturating_add(gap_ms) {
            Some(Outage {
                from: self.heard_at,
                until: now,
            })
        } else {
            self.outage
        };
        let heard = Hearing {
            heard_at: now.max(self.heard_at),
            outage,
        };
        debug_assert!(heard.heard_at >= self.heard_at, "heard_at never goes back");
        heard
    }

    /// When the reaper may take a lease that ran out at `expires_at`: not before its factory
    /// had `ttl_ms` of a coordinator that could hear it since the last outage.
    pub fn reap_at(&self, expires_at: Millis, ttl_ms: u64) -> Millis {
        match self.outage {
            Some(o) if expires_at < o.until.saturating_add(ttl_ms) => {
                expires_at.max(o.until.saturating_add(ttl_ms))
            }
            _ => expires_at,
        }
    }

    /// Whether taking a lease that ran out at `expires_at` counts as a failure of the job:
    /// not when it ran out while no node could hear its renewals.
    pub fn blames_job(&self, expires_at: Millis) -> bool {
        !self
            .outage
            .is_some_and(|o| expires_at >= o.from && expires_at <= o.until)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const GAP: u64 = 3_000;
    const TTL: u64 = 15_000;

    #[test]
    fn the_first_record_is_no_outage() {
        let h = Hearing::default().heard(1_000_000, GAP);
        assert_eq!(h.heard_at, 1_000_000);
        assert_eq!(h.outage, None);
    }

    #[test]
    fn a_silence_longer_than_the_gap_is_an_outage() {
        let h = Hearing::default().heard(10_000, GAP).heard(40_000, GAP);
        assert_eq!(
            h.outage,
            Some(Outage {
                from: 10_000,
                until: 40_000
            })
        );
        assert_eq!(h.heard_at, 40_000);
    }

    #[test]
    fn records_within_the_gap_keep_the_last_outage() {
        let h = Hearing::default().heard(10_000, GAP).heard(40_000, GAP);
        let later = h.heard(41_000, GAP).heard(43_500, GAP);
        assert_eq!(later.outage, h.outage);
        assert_eq!(later.heard_at, 43_500);
    }

    #[test]
    fn a_lease_that_ran_out_in_an_outage_gets_a_ttl_from_the_return() {
        let h = Hearing::default().heard(10_000, GAP).heard(40_000, GAP);
        assert_eq!(h.reap_at(20_000, TTL), 55_000);
        assert!(!h.blames_job(20_000));
    }

    #[test]
    fn a_lease_that_runs_out_just_after_the_return_waits_a_ttl_from_it() {
        let h = Hearing::default().heard(10_000, GAP).heard(40_000, GAP);
        assert_eq!(h.reap_at(41_000, TTL), 55_000);
        assert!(h.blames_job(41_000), "it could be heard since 40 000");
    }

    #[test]
    fn leases_that_run_out_long_after_the_outage_are_reaped_on_time_and_blamed() {
        let h = Hearing::default().heard(10_000, GAP).heard(40_000, GAP);
        assert_eq!(h.reap_at(90_000, TTL), 90_000);
        assert!(h.blames_job(90_000));
        let quiet = Hearing::default().heard(10_000, GAP);
        assert_eq!(quiet.reap_at(12_000, TTL), 12_000);
        assert!(quiet.blames_job(12_000));
    }

    proptest! {
        /// A lease is never reaped before it ran out, nor before its factory had a TTL to renew
        /// it from the coordinator's return; and never later than both.
        #[test]
        fn reap_at_is_the_later_of_expiry_and_a_ttl_after_the_return(
            heard in 1u64..1_000_000, silence in 0u64..100_000, expires in 0u64..2_000_000,
        ) {
            let h = Hearing::default().heard(heard, GAP).heard(heard + silence, GAP);
            let at = h.reap_at(expires, TTL);
            prop_assert!(at >= expires);
            match h.outage {
                Some(o) => {
                    prop_assert!(silence > GAP);
                    prop_assert!(at >= expires.min(o.until + TTL));
                    prop_assert!(at <= expires.max(o.until + TTL));
                    if expires < o.until + TTL {
                        prop_assert_eq!(at, o.until + TTL);
                    }
                }
                None => prop_assert_eq!(at, expires),
            }
        }

        /// The heard time never goes back, whatever order the nodes' clocks record in.
        #[test]
        fn heard_at_never_goes_back(times in proptest::collection::vec(1u64..1_000_000, 1..20)) {
            let mut h = Hearing::default();
            for t in times {
                let next = h.heard(t, GAP);
                prop_assert!(next.heard_at >= h.heard_at);
                h = next;
            }
        }
    }
}

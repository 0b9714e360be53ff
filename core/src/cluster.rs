//! Cluster membership maths: which node should own which shard. Work that wants one owner
//! (reaping a shard of the lease index) is split into `SHARDS` shards; each live node takes its
//! fair share of the free ones and releases the extra. Ownership is a lease in the store with
//! an epoch; it only avoids duplicate work — correctness comes from the fenced transactions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::job::Millis;

/// How many shards the lease index is split into.
pub const SHARDS: u32 = 16;

/// A coordinator node as the store records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeRecord {
    pub id: Uuid,
    /// Where its API listens, for operators.
    pub addr: String,
    pub started_at: Millis,
    pub heartbeat_at: Millis,
    /// Dead after this, unless it heartbeats again.
    pub expires_at: Millis,
}

/// A shard's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ShardLease {
    pub owner: Uuid,
    /// Bumped at every change of owner.
    pub epoch: u64,
    pub expires_at: Millis,
}

/// The shard a job belongs to. UUIDv7's low bits are random, so shards fill evenly.
pub fn shard_of(job: Uuid) -> u32 {
    (job.as_u128() % u128::from(SHARDS)) as u32
}

/// What node `me` should do with the shards at time `now`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardPlan {
    /// Free or expired shards to take.
    pub take: Vec<u32>,
    /// Own shards to renew.
    pub renew: Vec<u32>,
    /// Own shards beyond the fair share, to give up.
    pub release: Vec<u32>,
}

/// Plans `me`'s shards given the live nodes (`me` among them) and every shard's lease. The fair
/// share is `ceil(SHARDS / live)`; a node first keeps what it owns (up to the share), then takes
/// free shards in order. Deterministic: the same inputs give the same plan.
pub fn plan_shards(
    me: Uuid,
    live: &[Uuid],
    leases: &[(u32, Option<ShardLease>)],
    now: Millis,
) -> ShardPlan {
    let live_count = live.len().max(1) as u32;
    let share = SHARDS.div_ceil(live_count) as usize;
    let mut plan = ShardPlan::default();
    let mut owned: Vec<u32> = leases
        .iter()
        .filter(|(_, l)| l.is_some_and(|l| l.owner == me && l.expires_at > now))
        .map(|(s, _)| *s)
        .collect();
    owned.sort_unstable();
    for (i, s) in owned.iter().enumerate() {
        if i < share {
            plan.renew.push(*s)
        } else {
            plan.release.push(*s)
        }
    }
    let mut free: Vec<u32> = leases
        .iter()
        .filter(|(_, l)| l.is_none_or(|l| l.expires_at <= now || !live.contains(&l.owner)))
        .filter(|(_, l)| l.is_none_or(|l| l.owner != me || l.expires_at <= now))
        .map(|(s, _)| *s)
        .collect();
    free.sort_unstable();
    let room = share.saturating_sub(plan.renew.len());
    plan.take = free.into_iter().take(room).collect();
    debug_assert!(plan.renew.len() + plan.take.len() <= share);
    plan
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    /// Runs every node's plan in turn, as serialized transactions would, until nothing changes.
    fn settle(live: &[Uuid], leases: &mut [(u32, Option<ShardLease>)], now: Millis) {
        for _ in 0..8 {
            for me in live {
                let plan = plan_shards(*me, live, leases, now);
                for (s, l) in leases.iter_mut() {
                    if plan.take.contains(s) {
                        let epoch = l.map_or(1, |l| l.epoch + 1);
                        *l = Some(ShardLease {
                            owner: *me,
                            epoch,
                            expires_at: now + 3_000,
                        });
                    } else if plan.release.contains(s) {
                        *l = None;
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn live_nodes_end_up_owning_every_shard_fairly(nodes in 1usize..6, dead_owner in any::<bool>()) {
            let live: Vec<Uuid> = (1..=nodes as u128).map(id).collect();
            let mut leases: Vec<(u32, Option<ShardLease>)> = (0..SHARDS)
                .map(|s| (s, dead_owner.then_some(ShardLease { owner: id(99), epoch: 1, expires_at: 10_000 })))
                .collect();
            // A dead node's unexpired leases are taken over all the same: it is not live.
            settle(&live, &mut leases, 1_000);
            let share = SHARDS.div_ceil(nodes as u32) as usize;
            for me in &live {
                let mine = leases.iter().filter(|(_, l)| l.is_some_and(|l| l.owner == *me)).count();
                prop_assert!(mine <= share);
            }
            prop_assert!(leases.iter().all(|(_, l)| l.is_some_and(|l| live.contains(&l.owner))));
        }
    }

    #[test]
    fn a_node_releases_shards_beyond_its_share_when_others_join() {
        let leases: Vec<(u32, Option<ShardLease>)> = (0..SHARDS)
            .map(|s| {
                (
                    s,
                    Some(ShardLease {
                        owner: id(1),
                        epoch: 1,
                        expires_at: 5_000,
                    }),
                )
            })
            .collect();
        let plan = plan_shards(id(1), &[id(1), id(2)], &leases, 1_000);
        assert_eq!(plan.renew.len(), 8);
        assert_eq!(plan.release.len(), 8);
        assert!(plan.take.is_empty());
        let other = plan_shards(id(2), &[id(1), id(2)], &leases, 1_000);
        assert!(
            other.take.is_empty(),
            "live owners keep their leases until they release them"
        );
    }

    #[test]
    fn shards_spread_job_ids() {
        let mut counts = [0u32; SHARDS as usize];
        for _ in 0..1_600 {
            counts[shard_of(Uuid::now_v7()) as usize] += 1;
        }
        assert!(counts.iter().all(|c| *c > 40), "{counts:?}");
    }
}

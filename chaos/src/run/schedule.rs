//! The fault schedule: which faults a run injects, when, on what and for how long, all drawn
//! from the seed before the run starts. A seed fixes the schedule (so a run can be reproduced
//! from its command line), and stops always outlast the lease TTL, so a stopped holder is
//! fenced. Network faults join the table only with `--netns`, leaving every other seed's
//! schedule unchanged.

use super::{Config, ETCD_MEMBERS, LEASE_TTL_MS};
use crate::rng::Rng;

/// Quiet time before the first fault, so the cluster has settled its shards and factories.
const WARMUP_MS: u64 = 3_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Kind {
    NodeKill,
    NodeStop,
    FactoryStop,
    FactoryCrash,
    EtcdRestart,
    PanicScheduler,
    PanicReaper,
    PanicJob,
    PanicFactory,
    NetPartition,
    NetFlap,
}

impl Kind {
    /// Relative weights in the schedule.
    const TABLE: [(Kind, u64); 9] = [
        (Kind::NodeKill, 2),
        (Kind::NodeStop, 2),
        (Kind::FactoryStop, 2),
        (Kind::FactoryCrash, 2),
        (Kind::EtcdRestart, 2),
        (Kind::PanicScheduler, 1),
        (Kind::PanicReaper, 1),
        (Kind::PanicJob, 1),
        (Kind::PanicFactory, 1),
    ];
    /// Added with `netns`. Without it the table, and so every seed's schedule, is unchanged.
    const NETWORK: [(Kind, u64); 2] = [(Kind::NetPartition, 2), (Kind::NetFlap, 2)];

    fn table(netns: bool) -> Vec<(Kind, u64)> {
        let network: &[(Kind, u64)] = if netns { &Self::NETWORK } else { &[] };
        Self::TABLE.iter().chain(network).copied().collect()
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::NodeKill => "node_kill",
            Kind::NodeStop => "node_stop",
            Kind::FactoryStop => "factory_stop",
            Kind::FactoryCrash => "factory_crash",
            Kind::EtcdRestart => "etcd_restart",
            Kind::PanicScheduler => "panic_scheduler",
            Kind::PanicReaper => "panic_reaper",
            Kind::PanicJob => "panic_job",
            Kind::PanicFactory => "panic_factory",
            Kind::NetPartition => "net_partition",
            Kind::NetFlap => "net_flap",
        }
    }
}

/// One fault of the schedule, fixed by the seed.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Planned {
    /// Milliseconds after the run's start.
    pub(super) at_ms: u64,
    pub(super) kind: Kind,
    /// The node, factory or etcd member it hits (for panics: the node asked to inject it).
    pub(super) target: usize,
    /// How long the fault lasts, in milliseconds.
    pub(super) hold_ms: u64,
    /// Picks the job or factory a panic hits among those known then.
    pub(super) pick: u64,
}

/// The run's faults, in the order they are due.
pub(super) fn plan(cfg: &Config) -> Vec<Planned> {
    let mut rng = Rng::new(cfg.seed);
    let span = (cfg.duration_secs * 1_000).saturating_sub(WARMUP_MS).max(1);
    let spacing = span / cfg.faults.max(1) as u64;
    let table = Kind::table(cfg.netns);
    let total: u64 = table.iter().map(|(_, w)| w).sum();
    (0..cfg.faults)
        .map(|i| {
            let at_ms = WARMUP_MS + i as u64 * spacing + rng.below(spacing / 2 + 1);
            let mut roll = rng.below(total);
            let kind = table
                .iter()
                .find(|(_, w)| {
                    let hit = roll < *w;
                    roll = roll.saturating_sub(*w);
                    hit
                })
                .map_or(Kind::NodeKill, |(k, _)| *k);
            let target = match kind {
                Kind::FactoryStop | Kind::FactoryCrash => rng.below(cfg.factories as u64),
                Kind::EtcdRestart => rng.below(ETCD_MEMBERS as u64),
                _ => rng.below(cfg.nodes as u64),
            } as usize;
            let hold_ms = match kind {
                Kind::NodeKill => rng.between(2_000, 5_000),
                Kind::NodeStop | Kind::FactoryStop => {
                    rng.between(LEASE_TTL_MS + 1_000, LEASE_TTL_MS + 3_000)
                }
                Kind::FactoryCrash => rng.between(500, 2_000),
                Kind::EtcdRestart => rng.between(1_000, 4_000),
                // Some partitions end within the lease TTL, some outlast it.
                Kind::NetPartition => rng.between(1_000, 2 * LEASE_TTL_MS + 2_000),
                Kind::NetFlap => rng.between(2_000, 6_000),
                _ => 0,
            };
            Planned {
                at_ms,
                kind,
                target,
                hold_ms,
                pick: rng.next_u64(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn cfg(seed: u64) -> Config {
        Config {
            seed,
            duration_secs: 60,
            faults: 10,
            nodes: 3,
            factories: 3,
            jobs_per_sec: 3.0,
            out: None,
            exe: PathBuf::from("gigafactory"),
            netns: false,
        }
    }

    #[test]
    fn a_seed_fixes_the_schedule() {
        assert_eq!(plan(&cfg(1)), plan(&cfg(1)));
        assert_ne!(plan(&cfg(1)), plan(&cfg(2)));
        let p = plan(&cfg(1));
        assert_eq!(p.len(), 10);
        assert!(p.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        assert!(p.iter().all(|f| f.at_ms >= WARMUP_MS && f.at_ms < 60_000));
    }

    #[test]
    fn network_faults_join_the_schedule_only_with_netns() {
        let kinds = |netns| {
            plan(&Config {
                faults: 300,
                netns,
                ..cfg(4)
            })
            .into_iter()
            .map(|f| f.kind)
            .collect::<Vec<_>>()
        };
        let with = kinds(true);
        assert!(with.contains(&Kind::NetPartition) && with.contains(&Kind::NetFlap));
        let without = kinds(false);
        assert!(!without.contains(&Kind::NetPartition) && !without.contains(&Kind::NetFlap));
        // The seed tests/e2e_chaos.rs runs with --netns: both network faults, and others.
        let e2e = plan(&Config {
            duration_secs: 45,
            faults: 8,
            netns: true,
            ..cfg(19)
        });
        assert!(e2e.iter().any(|f| f.kind == Kind::NetPartition));
        assert!(e2e.iter().any(|f| f.kind == Kind::NetFlap));
    }

    #[test]
    fn stops_outlast_the_lease_ttl() {
        for f in plan(&Config {
            faults: 200,
            ..cfg(3)
        }) {
            if matches!(f.kind, Kind::NodeStop | Kind::FactoryStop) {
                assert!(f.hold_ms > LEASE_TTL_MS);
            }
        }
    }
}

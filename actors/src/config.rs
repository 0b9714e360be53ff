//! Tunables of a coordinator node. Each bound names its unit.

use gigafactory_core::backoff::Backoff;
use std::collections::BTreeMap;

use gigafactory_core::artifact::ArtifactLimits;
use gigafactory_core::tracker::SourceConfig;
use gigafactory_core::usage::PriceTable;

#[derive(Debug, Clone)]
pub struct Config {
    /// A lease's life without renewal; factories renew at a third of it.
    pub lease_ttl_ms: u64,
    /// A factory with no heartbeat for this long is marked offline.
    pub heartbeat_window_ms: u64,
    /// How often the reaper looks for expired leases.
    pub reap_interval_ms: u64,
    /// How often each node records that it serves (`gigafactory_core::hearing`).
    pub hearing_interval_ms: u64,
    /// A silence longer than this between two such records was an outage: leases that ran
    /// out in it get a lease TTL from the return before they are reaped, and cost no attempt.
    pub outage_gap_ms: u64,
    /// Expired leases handled per reaper pass.
    pub reap_batch_max: usize,
    /// How often the reaper checks wall-clock budgets of leased jobs.
    pub budget_check_interval_ms: u64,
    /// How long a preempted job has to checkpoint and release.
    pub preempt_grace_ms: u64,
    /// A job may preempt only jobs at least this many priority points lower.
    pub preempt_min_priority_gap: u32,
    /// Longest long-poll a claim may ask for.
    pub claim_wait_max_ms: u64,
    /// Most jobs one claim may take.
    pub claim_batch_max: u32,
    /// Queued jobs the scheduler scores per placement (best by priority and age first).
    pub placement_candidates_max: usize,
    /// Idle time after which a job actor is passivated.
    pub job_idle_ms: u64,
    /// Commands that may wait in one job actor's mailbox before callers get `overloaded`.
    pub job_mailbox_max: usize,
    /// Scheduler messages that may wait before submissions are refused as `overloaded`.
    pub scheduler_backlog_max: usize,
    /// Claims that may wait for work at once.
    pub claim_waiters_max: usize,
    /// Restarts of one singleton actor within `restart_window_ms` before the node reports
    /// itself unhealthy.
    pub restart_max: u32,
    pub restart_window_ms: u64,
    pub backoff: Backoff,
    /// Other nodes write to the same store (etcd, FoundationDB): watch it for work they make
    /// ready, and share fleet events through it. An embedded store belongs to one process, so
    /// it needs neither.
    pub shared_store: bool,
    /// On a shared store: how often the scheduler re-reads the whole ready index (in the
    /// background, a page at a time) to learn of jobs other nodes made ready beyond the head
    /// its watch-driven refreshes re-read, and to forget jobs they took.
    pub resync_interval_ms: u64,
    /// A node that has not renewed its lease for this long is dead; its shards move.
    pub node_lease_ttl_ms: u64,
    /// This node's API address, shown in the cluster view.
    pub node_addr: String,
    /// How often the node samples throughput and placement latency for the overview's charts.
    pub stats_sample_interval_ms: u64,
    /// Samples kept: with the interval, how far back the charts reach (an hour by default).
    pub stats_history_samples: usize,
    /// Model prices, for usage reports that give tokens and no dollars.
    pub prices: PriceTable,
    /// How often the scheduler re-reads budgets (to learn of spend and changes made through
    /// other nodes, and of periods that rolled over).
    pub budget_refresh_ms: u64,
    /// Fair share across products (`core::fair_share`); off, products compete on score.
    pub fair_share: bool,
    /// Products' shares from the configuration; shares set through the API win.
    pub shares: BTreeMap<String, u32>,
    /// How often the scheduler re-reads running jobs, factories, weights and shares from the
    /// store (what other nodes started and changed; what ran before a restart).
    pub fleet_refresh_ms: u64,
    /// Trackers that deliver items (webhooks) and hear of their jobs, by source name.
    pub intake: BTreeMap<String, SourceConfig>,
    /// How often the outbox looks for deliveries due.
    pub outbox_interval_ms: u64,
    /// Deliveries one outbox pass sends at most, per shard.
    pub outbox_batch_max: usize,
    /// How long one try may take before it counts as failed.
    pub outbox_timeout_ms: u64,
    /// Waits between tries of a delivery (exponential, with jitter).
    pub outbox_backoff: Backoff,
    /// Tries of a delivery before it is dead-lettered.
    pub outbox_tries_max: u32,
    /// What one job's artifacts may hold.
    pub artifacts: ArtifactLimits,
    /// Artifacts older than this are deleted (0 keeps them).
    pub artifact_retention_ms: u64,
    /// A blob nobody keeps, or an unfinished upload, is collected once this old: longer than
    /// any upload takes.
    pub artifact_orphan_grace_ms: u64,
    /// How often the sweeper applies retention and collects orphans.
    pub artifact_sweep_interval_ms: u64,
    /// How often the schedule actor re-reads schedules when no tick is sooner (a schedule
    /// set on another node, or a shard taken over, is fired within this).
    pub schedule_refresh_ms: u64,
    /// How late a tick may fire and still count as on time; older ticks are missed and
    /// follow the schedule's missed-run policy.
    pub schedule_grace_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            lease_ttl_ms: 15_000,
            heartbeat_window_ms: 10_000,
            reap_interval_ms: 500,
            hearing_interval_ms: 1_000,
            outage_gap_ms: 3_000,
            reap_batch_max: 256,
            budget_check_interval_ms: 2_000,
            preempt_grace_ms: 30_000,
            preempt_min_priority_gap: 10,
            claim_wait_max_ms: 30_000,
            claim_batch_max: 64,
            placement_candidates_max: 32,
            job_idle_ms: 30_000,
            job_mailbox_max: 256,
            claim_waiters_max: 10_000,
            scheduler_backlog_max: 100_000,
            restart_max: 5,
            restart_window_ms: 60_000,
            backoff: Backoff::default(),
            shared_store: false,
            resync_interval_ms: 10_000,
            node_lease_ttl_ms: 3_000,
            node_addr: String::new(),
            stats_sample_interval_ms: 5_000,
            stats_history_samples: 720,
            prices: PriceTable::new(),
            budget_refresh_ms: 5_000,
            fair_share: true,
            shares: BTreeMap::new(),
            fleet_refresh_ms: 2_000,
            intake: BTreeMap::new(),
            outbox_interval_ms: 500,
            outbox_batch_max: 64,
            outbox_timeout_ms: 10_000,
            outbox_backoff: Backoff {
                base_ms: 1_000,
                cap_ms: 300_000,
            },
            outbox_tries_max: gigafactory_core::tracker::DELIVERY_TRIES_DEFAULT,
            artifacts: ArtifactLimits::default(),
            artifact_retention_ms: 30 * 24 * 3_600_000,
            artifact_orphan_grace_ms: 3_600_000,
            artifact_sweep_interval_ms: 600_000,
            schedule_refresh_ms: 1_000,
            schedule_grace_ms: 5_000,
        }
    }
}

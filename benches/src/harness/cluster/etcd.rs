//! etcd's own figures during a phase: each member's `/metrics` counters before and after, and
//! what all members did in between (RPCs, raft proposals, WAL fsync and backend commit
//! latency, peer round trips, database size).

use super::figures::Histogram;
use crate::harness::metrics::{get_text, sum_of};

/// One member's etcd counters at one moment.
#[derive(Clone, Default)]
pub(super) struct EtcdSample {
    range_rpcs: f64,
    txn_rpcs: f64,
    /// Bytes sent to clients (answers: mostly range reads).
    sent_bytes: f64,
    proposals_committed: f64,
    fsync: Histogram,
    backend_commit: Histogram,
    peer_rtt: Histogram,
    /// Size of the member's database file: it grows with every revision kept (nothing compacts
    /// during the bench).
    db_bytes: f64,
    is_leader: bool,
}

impl EtcdSample {
    fn parse(text: &str) -> EtcdSample {
        let rpcs = |method: &str| {
            sum_of(
                text,
                "grpc_server_handled_total",
                &format!("grpc_method=\"{method}\""),
            )
            .unwrap_or(0.0)
        };
        EtcdSample {
            range_rpcs: rpcs("Range"),
            txn_rpcs: rpcs("Txn"),
            sent_bytes: sum_of(text, "etcd_network_client_grpc_sent_bytes_total", "")
                .unwrap_or(0.0),
            proposals_committed: sum_of(text, "etcd_server_proposals_committed_total", "")
                .unwrap_or(0.0),
            fsync: Histogram::parse(text, "etcd_disk_wal_fsync_duration_seconds"),
            backend_commit: Histogram::parse(text, "etcd_disk_backend_commit_duration_seconds"),
            peer_rtt: Histogram::parse(text, "etcd_network_peer_round_trip_time_seconds"),
            db_bytes: sum_of(text, "etcd_mvcc_db_total_size_in_bytes", "").unwrap_or(0.0),
            is_leader: sum_of(text, "etcd_server_is_leader", "") == Some(1.0),
        }
    }
}

/// Every member's counters; a member that does not answer counts as zeros (and the figures
/// then say less than happened, never more).
pub(super) async fn scrape_etcd(http: &reqwest::Client, endpoints: &[String]) -> Vec<EtcdSample> {
    let mut out = Vec::with_capacity(endpoints.len());
    for e in endpoints {
        let text = get_text(http, &format!("http://{e}/metrics")).await;
        out.push(EtcdSample::parse(&text));
    }
    out
}

/// What etcd did during a phase, all members together.
pub(super) struct EtcdFigures {
    pub range_rpcs: f64,
    pub txn_rpcs: f64,
    pub sent_bytes: f64,
    /// Raft entries the leader committed.
    pub proposals: f64,
    pub fsync: Histogram,
    pub backend_commit: Histogram,
    pub peer_rtt: Histogram,
    /// The largest member's database at the end.
    pub db_bytes: f64,
}

impl EtcdFigures {
    pub fn between(before: &[EtcdSample], after: &[EtcdSample]) -> EtcdFigures {
        let mut f = EtcdFigures {
            range_rpcs: 0.0,
            txn_rpcs: 0.0,
            sent_bytes: 0.0,
            proposals: 0.0,
            fsync: Histogram::default(),
            backend_commit: Histogram::default(),
            peer_rtt: Histogram::default(),
            db_bytes: 0.0,
        };
        for (b, a) in before.iter().zip(after) {
            f.range_rpcs += a.range_rpcs - b.range_rpcs;
            f.txn_rpcs += a.txn_rpcs - b.txn_rpcs;
            f.sent_bytes += a.sent_bytes - b.sent_bytes;
            if a.is_leader {
                f.proposals = a.proposals_committed - b.proposals_committed;
            }
            f.fsync.add(&a.fsync.since(&b.fsync));
            f.backend_commit
                .add(&a.backend_commit.since(&b.backend_commit));
            f.peer_rtt.add(&a.peer_rtt.since(&b.peer_rtt));
            f.db_bytes = f.db_bytes.max(a.db_bytes);
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_etcd_members_counters() {
        let text = "\
etcd_server_is_leader 1
etcd_server_proposals_committed_total 42
grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 30
grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Txn\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 12
etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.001\"} 3
etcd_disk_wal_fsync_duration_seconds_bucket{le=\"+Inf\"} 4
etcd_disk_wal_fsync_duration_seconds_sum 0.01
etcd_disk_wal_fsync_duration_seconds_count 4
";
        let s = EtcdSample::parse(text);
        assert!(s.is_leader);
        assert_eq!((s.range_rpcs, s.txn_rpcs), (30.0, 12.0));
        assert_eq!(s.proposals_committed, 42.0);
        assert_eq!(s.fsync.count(), 4.0);
        let f = EtcdFigures::between(&[EtcdSample::default()], &[s]);
        assert_eq!((f.range_rpcs, f.txn_rpcs, f.proposals), (30.0, 12.0, 42.0));
        assert_eq!(f.fsync.quantile_at_most(0.5), Some(0.001));
    }
}

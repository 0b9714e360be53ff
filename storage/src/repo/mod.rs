//! Typed repository functions, read and written inside a caller's transaction: the one place
//! that knows how each record is stored (`codec`, `keys`). Jobs with their timelines and the
//! rules that carry a change to their descendants (`jobs`), their output (`logs`), and the
//! fleet and cluster records (`fleet`). Each keeps the secondary indexes in step with the
//! record (`save_job` derives them from the job's state), so an index can never disagree
//! with the job it points at.

mod artifacts;
mod audit;
mod budgets;
mod fleet;
mod jobs;
mod limits;
mod logs;
mod schedules;
mod secrets;
mod tracker;
mod upgrade;

use gigafactory_core::fleet::{Factory, Token};
use gigafactory_core::job::{Job, JobError, JobId, Millis};
use gigafactory_core::scoring::JobView;
use gigafactory_core::wire::{Event, FleetEvent, LeaseAnswer};

use crate::codec::Record;
use crate::error::Error;

pub use artifacts::{
    artifacts_of, artifacts_saved_before, blobs_gone, clear_blob_gone, delete_artifact,
    load_artifact, mark_blob_gone,
};
pub use audit::{AUDIT_PAGE_SCAN_MAX, AuditCursor, audit_page, record_audit};
pub use budgets::{
    BOOK_PRODUCTS_MAX, BUDGETS_MAX, BudgetBook, budgets, budgets_of, budgets_signal, charge,
    daily_spend, delete_budget, hold_of, load_budget, save_budget, spent, top_jobs,
};
pub use fleet::{
    admin_bootstrapped_at, all_shares, all_weights, append_fleet_feed, clear_shard_lease,
    factories, fleet_feed_after, fleet_feeds_signal, forget_node, hear, load_factory, load_token,
    load_weights, mark_admin_bootstrapped, nodes, ready_signal, save_factory, save_node,
    save_shard_lease, save_share, save_token, save_weights, shard_leases, tokens,
};
pub use jobs::{
    CHILDREN_MAX, QuestionEntry, Submitted, Writer, append_event, children, events, expired_leases,
    jobs_page, leased_jobs, load_job, note, open_questions, ready_page, remember_answer,
    remembered_answer, save_job, submit, transition, transitions,
};
pub use limits::{
    LIMITS_MAX, LimitState, delete_limit, limit_hold, limits, load_limit, save_limit,
};
pub use logs::{
    LOG_MAX_BYTES_PER_JOB, LOG_PAGE_MAX_BYTES, LogAppend, LogPage, append_log, logs_after,
    watch_logs,
};
pub use schedules::{
    append_run, delete_schedule, load_schedule, save_schedule, save_trigger_run,
    schedule_as_decided, schedule_at_cursor, schedule_runs, schedules, schedules_changed,
    schedules_signal, trigger_run,
};
pub use secrets::{
    SECRETS_LIST_MAX, SecretRecord, delete_secret, load_secret, save_secret, secrets,
};
pub use tracker::{
    deliveries_of, due_deliveries, enqueue_delivery, items, load_delivery, load_item, save_item,
    settle_delivery,
};

impl Record for Job {
    const KIND: &'static str = "job";
    /// 2: `Cancelled` names the parent that cancelled it. 3: labels in the spec, and cost.
    /// 4: the tracker item it came from. 5: artifact globs in the spec. 6: approvals,
    /// reviewers, concurrency key and affinity in the spec; limit slots and approvals. 7: the
    /// review's feedback. 8: the sandbox in the spec. 9: the question the job asked last.
    /// 10: the repository in the spec.
    const SCHEMA: u16 = 10;

    fn upgrade(schema: u16, payload: &[u8]) -> crate::Result<Self> {
        upgrade::job(schema, payload)
    }
}

impl Record for Event {
    const KIND: &'static str = "event";
    const SCHEMA: u16 = 1;
}

impl Record for FleetEvent {
    const KIND: &'static str = "fleet_event";
    /// 2: a detail.
    const SCHEMA: u16 = 2;

    fn upgrade(schema: u16, payload: &[u8]) -> crate::Result<Self> {
        upgrade::fleet_event(schema, payload)
    }
}

impl Record for Factory {
    const KIND: &'static str = "factory";
    /// 2: warm keys.
    const SCHEMA: u16 = 2;

    fn upgrade(schema: u16, payload: &[u8]) -> crate::Result<Self> {
        upgrade::factory(schema, payload)
    }
}

impl Record for Token {
    const KIND: &'static str = "token";
    /// 2: an expiry and who minted it.
    const SCHEMA: u16 = 2;

    fn upgrade(schema: u16, payload: &[u8]) -> crate::Result<Self> {
        upgrade::token(schema, payload)
    }
}

impl Record for gigafactory_core::audit::AuditEntry {
    const KIND: &'static str = "audit_entry";
    const SCHEMA: u16 = 1;
}

impl Record for gigafactory_core::scoring::WeightsOverride {
    const KIND: &'static str = "weights";
    const SCHEMA: u16 = 1;
}

impl Record for gigafactory_core::cluster::NodeRecord {
    const KIND: &'static str = "node";
    const SCHEMA: u16 = 1;
}

impl Record for gigafactory_core::hearing::Hearing {
    const KIND: &'static str = "hearing";
    const SCHEMA: u16 = 1;
}

impl Record for gigafactory_core::cluster::ShardLease {
    const KIND: &'static str = "shard_lease";
    const SCHEMA: u16 = 1;
}

impl Record for LeaseAnswer {
    const KIND: &'static str = "lease_answer";
    const SCHEMA: u16 = 1;
}

/// What the ready index holds for each queued job: enough to place it without loading it, so
/// a scheduler can rebuild its in-memory index from one range read.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReadyEntry {
    pub id: JobId,
    pub priority: u32,
    pub created_at: Millis,
    pub not_before: Millis,
    pub product: String,
    pub capabilities: Vec<String>,
    /// The job's labels: budgets narrowed to a label hold only its jobs.
    pub labels: Vec<String>,
    pub engine_class: Option<String>,
    pub preemptible: bool,
    /// The job's concurrency key: a limit on it holds the job.
    pub concurrency_key: Option<String>,
    /// What a factory may hold warm for the job.
    pub affinity: Option<String>,
}

impl ReadyEntry {
    pub fn of(job: &Job) -> Option<ReadyEntry> {
        Some(ReadyEntry {
            id: job.id,
            priority: job.spec.priority,
            created_at: job.created_at,
            not_before: job.state.ready_at()?,
            product: job.spec.product.clone(),
            capabilities: job.spec.capabilities.clone(),
            labels: job.spec.labels.clone(),
            engine_class: job.spec.engine_class.clone(),
            preemptible: job.spec.preemptible,
            concurrency_key: job.spec.concurrency_key.clone(),
            affinity: job.spec.affinity_key().map(str::to_owned),
        })
    }

    /// What placement knows of the job.
    pub fn view(&self) -> JobView {
        JobView {
            id: self.id.0.as_u128(),
            priority: self.priority,
            queued_at_ms: self.created_at,
            capabilities: self.capabilities.clone(),
            labels: self.labels.clone(),
            engine_class: self.engine_class.clone(),
            product: self.product.clone(),
            repo_hint: self.affinity.clone(),
            preemptible: self.preemptible,
        }
    }
}

impl Record for ReadyEntry {
    const KIND: &'static str = "ready_entry";
    /// 2: labels. 3: concurrency key and affinity.
    const SCHEMA: u16 = 3;

    fn upgrade(schema: u16, payload: &[u8]) -> crate::Result<Self> {
        upgrade::ready_entry(schema, payload)
    }
}

/// Why a repository call refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RepoError {
    /// No such job.
    #[error("job {0} not found")]
    NotFound(JobId),
    /// The state machine refused the command; nothing changed.
    #[error(transparent)]
    Job(#[from] JobError),
    /// A budget holds the job: it may not be leased now; nothing changed.
    #[error("{}", .0.message)]
    Held(gigafactory_core::budget::Hold),
    /// A concurrency or rate limit holds the job from a lease now.
    #[error("{}", .0.message())]
    Limited(gigafactory_core::limits::LimitHold),
    /// The artifact passes the job's limits; nothing changed.
    #[error(transparent)]
    Artifact(#[from] gigafactory_core::artifact::ArtifactError),
    /// The artifact's blob is being deleted by the sweeper: upload it again shortly.
    #[error("the artifact's blob is being collected; upload it again")]
    BlobCollected,
    /// The store failed; see [`Error`] for what to do.
    #[error(transparent)]
    Store(#[from] Error),
}

#[cfg(test)]
mod tests {
    //! Golden bytes of every stored record: a change of a record's shape fails here instead of
    //! silently breaking data already on disk. After a deliberate change (with a bumped
    //! `SCHEMA` and an `upgrade` for the old shape), regenerate with `GOLDEN_UPDATE=1`. And the
    //! fleet feed's bound and cursor on a real (embedded) store.

    use gigafactory_core::checkout::RepoSpec;
    use gigafactory_core::event::{Author, EventKind};
    use gigafactory_core::fleet::{FactoryStatus, Role};
    use gigafactory_core::job::{FactoryId, JobState, Lease};
    use gigafactory_core::limits::LimitSpec;
    use gigafactory_core::manifest::{JobSpec, Payload};
    use gigafactory_core::sandbox::SandboxSpec;
    use gigafactory_core::scoring::{Factor, ScoreBreakdown};
    use gigafactory_core::usage::{JobCost, ModelUsage};
    use gigafactory_core::wire::hex;
    use uuid::Uuid;

    use super::*;
    use crate::{EmbeddedStore, Store, Transaction, codec};

    fn spec() -> JobSpec {
        JobSpec {
            key: "build".into(),
            title: "Build".into(),
            product: "payments".into(),
            payload: Payload::Command("cargo build".into()),
            priority: 80,
            capabilities: vec!["linux".into(), "rust".into()],
            labels: vec!["team-a".into()],
            engine_class: Some("claude".into()),
            profile: Some("agent".into()),
            deps: vec!["plan".into()],
            idempotency_key: Some("payments/build".into()),
            allowed_scope: vec!["src/**".into()],
            artifacts: vec!["out/*.md".into()],
            max_attempts: 3,
            wall_clock_ms: Some(600_000),
            cost_budget_micros: Some(2_500_000),
            preemptible: true,
            review: true,
            approvals: 2,
            reviewers: vec!["ana".into()],
            concurrency_key: Some("repo:acme/payments".into()),
            affinity: Some("repo:acme/payments".into()),
            sandbox: SandboxSpec {
                network: false,
                memory_mib: Some(512),
                cpu_millis: Some(1_500),
            },
            repo: Some(RepoSpec {
                url: "https://example.com/acme/payments.git".into(),
                rev: "main".into(),
            }),
        }
    }

    /// What a spec of schema 5 or older reads as: one approval by anyone, no key, no
    /// affinity, and (the golden job's) no review.
    fn before_scheduling(spec: JobSpec) -> JobSpec {
        JobSpec {
            review: false,
            approvals: 1,
            reviewers: Vec::new(),
            concurrency_key: None,
            affinity: None,
            sandbox: SandboxSpec::default(),
            repo: None,
            ..spec
        }
    }

    fn job() -> Job {
        let factory = FactoryId(Uuid::from_u128(2));
        Job {
            id: JobId(Uuid::from_u128(1)),
            spec: spec(),
            parents: vec![JobId(Uuid::from_u128(3))],
            state: JobState::Running {
                lease: Lease {
                    epoch: 4,
                    factory,
                    granted_at: 1_000,
                    expires_at: 16_000,
                },
            },
            stage: Some("coding".into()),
            epoch: 4,
            attempts: 2,
            failures: 1,
            checkpoint: Some("ckpt".into()),
            placement: Some(ScoreBreakdown {
                total: 0.5,
                factors: vec![Factor {
                    name: "priority".into(),
                    raw: 0.5,
                    weight: 1.0,
                    contribution: 0.5,
                }],
            }),
            last_error: Some("exit status 1".into()),
            exit_code: Some(1),
            run_ms: 1234,
            created_at: 500,
            updated_at: 1_500,
            rev: 7,
            cost: JobCost {
                models: vec![ModelUsage {
                    model: "sonnet".into(),
                    input_tokens: 1_000,
                    output_tokens: 200,
                    micros: 6_000,
                }],
                factory_micros: 1_500,
                rate_micros_per_hour: 2_750_000,
                settled_at: 1_200,
            },
            origin: Some(gigafactory_core::tracker::ItemRef {
                source: "github".into(),
                id: "acme/app#42".into(),
            }),
            limit_slots: vec!["repo:acme/payments".into()],
            approvals: vec![gigafactory_core::job::Approval {
                by: "ana".into(),
                at: 1_400,
            }],
            review_feedback: Some("cover the empty case".into()),
            question: Some(gigafactory_core::job::question::Question {
                id: "q-1".into(),
                text: "Merge the migration now?".into(),
                choices: vec!["yes".into(), "no".into()],
                default: Some("no".into()),
                asked_at: 1_300,
                timeout_at: 1_801_300,
                outcome: Some(gigafactory_core::job::question::Outcome::Answered {
                    answer: "yes".into(),
                    by: "ana".into(),
                    note: Some("after the backup".into()),
                    at: 1_450,
                }),
            }),
        }
    }

    /// The golden job as schema 9 stored it: no repository in its spec.
    fn job_v9() -> Job {
        Job {
            spec: JobSpec {
                repo: None,
                ..spec()
            },
            ..job()
        }
    }

    /// The golden job as schema 8 stored it: no question either.
    fn job_v8() -> Job {
        Job {
            question: None,
            ..job_v9()
        }
    }

    /// The golden job as schema 7 stored it: no sandbox in its spec either.
    fn job_v7() -> Job {
        Job {
            spec: JobSpec {
                sandbox: SandboxSpec::default(),
                repo: None,
                ..spec()
            },
            ..job_v8()
        }
    }

    /// The golden job as schema 6 stored it: no review feedback either.
    fn job_v6() -> Job {
        Job {
            review_feedback: None,
            ..job_v7()
        }
    }

    /// The golden job as schemas up to 5 stored it.
    fn job_v5() -> Job {
        Job {
            spec: before_scheduling(spec()),
            limit_slots: Vec::new(),
            approvals: Vec::new(),
            ..job_v6()
        }
    }

    fn check<R: Record + std::fmt::Debug + PartialEq>(name: &str, record: &R) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/golden")
            .join(format!("{name}.hex"));
        let bytes = codec::encode(record).unwrap();
        if std::env::var_os("GOLDEN_UPDATE").is_some() {
            std::fs::write(&path, hex(&bytes) + "\n").unwrap();
        }
        let golden =
            std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("missing {}", path.display()));
        assert_eq!(
            hex(&bytes),
            golden.trim(),
            "{name}: the stored shape changed"
        );
        assert_eq!(&codec::decode::<R>(&bytes).unwrap(), record);
    }

    fn fleet_event(node: Uuid, seq: u64) -> FleetEvent {
        FleetEvent {
            seq,
            node,
            at: seq,
            job_id: JobId(Uuid::from_u128(1)),
            title: "t".into(),
            product: "p".into(),
            kind: EventKind::Claim,
            state: "leased".into(),
            actor: Author::Scheduler,
            epoch: 1,
            detail: None,
        }
    }

    async fn append(store: &EmbeddedStore, node: Uuid, seqs: impl Iterator<Item = u64>) {
        let events: Vec<FleetEvent> = seqs.map(|s| fleet_event(node, s)).collect();
        let mut tx = store.begin().await.unwrap();
        append_fleet_feed(&mut tx, node, &events, 5).unwrap();
        tx.commit().await.unwrap();
    }

    async fn read(store: &EmbeddedStore, node: Uuid, after: u64, limit: usize) -> Vec<u64> {
        let mut tx = store.begin().await.unwrap();
        let entries = fleet_feed_after(&mut tx, node, after, limit).await.unwrap();
        entries.iter().map(|e| e.seq).collect()
    }

    #[tokio::test]
    async fn a_fleet_feed_keeps_its_latest_entries_and_reads_after_a_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let (a, b) = (Uuid::from_u128(10), Uuid::from_u128(20));
        append(&store, a, 1..=4).await;
        append(&store, a, 5..=7).await;
        append(&store, b, 1..=1).await;
        assert_eq!(
            read(&store, a, 0, 100).await,
            [3, 4, 5, 6, 7],
            "only the latest five are kept"
        );
        assert_eq!(read(&store, a, 5, 1).await, [6]);
        assert_eq!(
            read(&store, b, 0, 100).await,
            [1],
            "feeds of different nodes are apart"
        );
    }

    fn golden_bytes(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/golden")
            .join(format!("{name}.hex"));
        let hex = std::fs::read_to_string(path).unwrap();
        (0..hex.trim().len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Found by fuzzing (`fuzz/`, target `record`): the spec shapes of older job schemas read
    /// capabilities and labels as stored, unsorted, where today's sorts and deduplicates them,
    /// so such a job changed the next time it was written and read back.
    #[test]
    fn a_job_of_an_older_schema_reads_its_capabilities_sorted_and_unique_as_today() {
        let golden = golden_bytes("job_v2");
        let mut as_stored = Vec::new();
        as_stored.extend_from_slice(&[2, 5]);
        as_stored.extend_from_slice(b"linux");
        as_stored.push(4);
        as_stored.extend_from_slice(b"rust");
        let at = golden
            .windows(as_stored.len())
            .position(|w| w == as_stored)
            .expect("the golden job's capabilities");
        let mut unsorted = vec![3, 4];
        unsorted.extend_from_slice(b"rust");
        unsorted.push(5);
        unsorted.extend_from_slice(b"linux");
        unsorted.push(4);
        unsorted.extend_from_slice(b"rust");
        let bytes = [
            &golden[..at],
            &unsorted[..],
            &golden[at + as_stored.len()..],
        ]
        .concat();
        let job = codec::decode::<Job>(&bytes).unwrap();
        assert_eq!(job.spec.capabilities, ["linux", "rust"]);
        let again = codec::decode::<Job>(&codec::encode(&job).unwrap()).unwrap();
        assert_eq!(again, job, "written and read back, the job is the same");
    }

    #[test]
    fn records_stored_with_older_schemas_read_back_as_today() {
        // The golden job of schemas 1 and 2 had no labels and no cost.
        let before_cost = Job {
            spec: JobSpec {
                labels: Vec::new(),
                artifacts: Vec::new(),
                ..before_scheduling(spec())
            },
            cost: JobCost::default(),
            origin: None,
            ..job_v5()
        };
        for name in ["job_v1", "job_v2"] {
            assert_eq!(
                codec::decode::<Job>(&golden_bytes(name)).unwrap(),
                before_cost
            );
        }
        assert_eq!(
            codec::decode::<Job>(&golden_bytes("job_v9")).unwrap(),
            job_v9()
        );
        assert_eq!(
            codec::decode::<Job>(&golden_bytes("job_v8")).unwrap(),
            job_v8()
        );
        assert_eq!(
            codec::decode::<Job>(&golden_bytes("job_v7")).unwrap(),
            job_v7()
        );
        assert_eq!(
            codec::decode::<Job>(&golden_bytes("job_v6")).unwrap(),
            job_v6()
        );
        assert_eq!(
            codec::decode::<Job>(&golden_bytes("job_v5")).unwrap(),
            job_v5()
        );
        let before_artifacts = Job {
            spec: JobSpec {
                artifacts: Vec::new(),
                ..before_scheduling(spec())
            },
            ..job_v5()
        };
        assert_eq!(
            codec::decode::<Job>(&golden_bytes("job_v4")).unwrap(),
            before_artifacts
        );
        let before_origin = Job {
            origin: None,
            ..before_artifacts
        };
        assert_eq!(
            codec::decode::<Job>(&golden_bytes("job_v3")).unwrap(),
            before_origin
        );
        let entry = ReadyEntry::of(&Job {
            state: JobState::Failed { retry_at: 42 },
            ..before_cost
        })
        .unwrap();
        assert_eq!(
            codec::decode::<ReadyEntry>(&golden_bytes("ready_entry_v1")).unwrap(),
            entry
        );
        let entry = ReadyEntry::of(&Job {
            state: JobState::Failed { retry_at: 42 },
            ..job_v5()
        })
        .unwrap();
        assert_eq!(
            codec::decode::<ReadyEntry>(&golden_bytes("ready_entry_v2")).unwrap(),
            entry
        );
        let factory = codec::decode::<Factory>(&golden_bytes("factory_v1")).unwrap();
        assert_eq!((factory.name.as_str(), factory.warm.len()), ("mac-1", 0));
        let event = codec::decode::<FleetEvent>(&golden_bytes("fleet_event_v1")).unwrap();
        assert_eq!((event.seq, event.detail), (12, None));
        let token = codec::decode::<Token>(&golden_bytes("token_v1")).unwrap();
        assert_eq!(
            (token.name.as_str(), token.expires_at, token.created_by),
            ("mac-1", None, None)
        );
        let limit = codec::decode::<LimitSpec>(&golden_bytes("limit_v1")).unwrap();
        assert_eq!(
            (limit.max_running, limit.per_minute, limit.throttled_until),
            (Some(3), Some(60), None)
        );
    }

    #[test]
    fn events_stored_with_string_kinds_and_authors_read_back_typed() {
        #[derive(serde::Serialize)]
        struct EventV1 {
            seq: u64,
            at: u64,
            kind: String,
            actor: String,
            epoch: u64,
            state: String,
            detail: Option<String>,
        }
        impl Record for EventV1 {
            const KIND: &'static str = "event";
            const SCHEMA: u16 = 1;
        }
        impl<'de> serde::Deserialize<'de> for EventV1 {
            fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
                unreachable!("only encoded")
            }
        }
        let f = FactoryId(Uuid::from_u128(2));
        let old = EventV1 {
            seq: 3,
            at: 9,
            kind: "parents_done".into(),
            actor: "factory:00000000-0000-0000-0000-000000000002".into(),
            epoch: 1,
            state: "queued".into(),
            detail: None,
        };
        let event: Event = codec::decode(&codec::encode(&old).unwrap()).unwrap();
        assert_eq!(event.kind, EventKind::ParentsDone);
        assert_eq!(event.actor, Author::Factory(f));
    }

    #[test]
    fn stored_records_match_their_golden_bytes() {
        let factory_id = FactoryId(Uuid::from_u128(2));
        check("job", &job());
        check(
            "limit",
            &LimitSpec {
                max_running: Some(3),
                per_minute: Some(60),
                throttled_until: Some(1_800),
            },
        );
        check(
            "event",
            &Event {
                seq: 7,
                at: 1_500,
                kind: EventKind::Stage,
                actor: Author::Factory(factory_id),
                epoch: 4,
                state: "running".into(),
                detail: Some("coding".into()),
            },
        );
        check(
            "factory",
            &Factory {
                id: factory_id,
                name: "mac-1".into(),
                os: "macos".into(),
                arch: "aarch64".into(),
                capabilities: vec!["rust".into()],
                engine_classes: vec!["claude".into()],
                slots: 4,
                cost_per_hour_micros: 1_500_000,
                status: FactoryStatus::Draining,
                enrolled_at: 10,
                last_heartbeat: 20,
                slots_busy: 1,
                token_hash: [9; 32],
                warm: vec!["repo:acme/api".into()],
            },
        );
        check(
            "token",
            &Token {
                role: Role::Factory(factory_id),
                name: "mac-1".into(),
                created_at: 10,
                revoked: false,
                expires_at: Some(90_000),
                created_by: Some("admin:alice".into()),
            },
        );
        check(
            "ready_entry",
            &ReadyEntry::of(&Job {
                state: JobState::Failed { retry_at: 42 },
                ..job()
            })
            .unwrap(),
        );
        check(
            "fleet_event",
            &FleetEvent {
                seq: 12,
                node: Uuid::from_u128(5),
                at: 1_500,
                job_id: JobId(Uuid::from_u128(1)),
                title: "Build".into(),
                product: "payments".into(),
                kind: EventKind::Claim,
                state: "leased".into(),
                actor: Author::Factory(factory_id),
                epoch: 4,
                detail: Some("budget ops-daily passed its alert".into()),
            },
        );
        check(
            "lease_answer",
            &LeaseAnswer {
                job_id: JobId(Uuid::from_u128(1)),
                epoch: 4,
                state: "preempting".into(),
                expires_at: Some(9),
                preempt_deadline: Some(8),
            },
        );
        check(
            "budget",
            &gigafactory_core::budget::BudgetRecord {
                spec: gigafactory_core::budget::BudgetSpec {
                    name: "ops-daily".into(),
                    product: "ops".into(),
                    label: Some("team-a".into()),
                    period: gigafactory_core::budget::Period::Day,
                    limit_micros: 50_000_000,
                    alert_percent: 80,
                    policy: gigafactory_core::budget::Policy::Stop,
                },
                paused: Some(gigafactory_core::budget::Pause {
                    by: Author::Admin("alice".into()),
                    reason: "runaway".into(),
                    at: 9,
                }),
                created_at: 1,
                updated_at: 9,
            },
        );
        check(
            "hearing",
            &gigafactory_core::hearing::Hearing {
                heard_at: 40_000,
                outage: Some(gigafactory_core::hearing::Outage {
                    from: 10_000,
                    until: 40_000,
                }),
            },
        );
        check(
            "audit_entry",
            &gigafactory_core::audit::AuditEntry {
                at: 1_500,
                role: "admin".into(),
                caller: "alice".into(),
                action: "POST /v1/factories/{id}/drain".into(),
                target: "id=f1".into(),
                status: 204,
            },
        );
        check(
            "artifact",
            &gigafactory_core::artifact::Artifact {
                file: gigafactory_core::artifact::ArtifactFile {
                    name: "fix.diff".into(),
                    kind: gigafactory_core::artifact::ArtifactKind::Patch,
                    size: 1_234,
                    sha256: "ab".repeat(32),
                    media_type: "text/x-diff".into(),
                },
                attempt: 2,
                epoch: 5,
                created_at: 1_500,
            },
        );
        schedule_records();
    }

    /// A schedule and one run of each outcome.
    fn schedule_records() {
        use gigafactory_core::schedule::{
            Missed, MissedTicks, Outcome, Overlap, Run, Schedule, ScheduleState, Target, Trigger,
        };
        let job = JobId(Uuid::from_u128(7));
        check(
            "schedule",
            &Schedule {
                name: "nightly".into(),
                cron: "0 3 * * *".into(),
                time_zone: "Europe/Paris".into(),
                overlap: Overlap::CancelPrevious,
                missed: Missed::RunOnce,
                catchup_window_s: 3_600,
                target: Target::Job("{}".into()),
                state: ScheduleState::Paused {
                    since: 5,
                    by: "admin:alice".into(),
                },
                cursor: 4,
                previous_jobs: vec![job],
                runs: 3,
                created_at: 1,
                updated_at: 2,
                updated_by: "admin:alice".into(),
            },
        );
        let outcomes = [
            Outcome::Submitted {
                jobs: vec![job],
                total: 1,
            },
            Outcome::Skipped {
                reason: "running".into(),
            },
            Outcome::CancelledPrevious {
                cancelled: vec![job],
                jobs: vec![job],
                total: 1,
            },
            Outcome::Missed(MissedTicks {
                count: 2,
                more: false,
                first: 1,
                last: 2,
            }),
            Outcome::Failed {
                error: "overloaded".into(),
            },
        ];
        for (i, outcome) in outcomes.into_iter().enumerate() {
            check(
                &format!("schedule_run_{}", outcome.name()),
                &Run {
                    seq: i as u64,
                    tick: 10,
                    at: 11,
                    node: Uuid::from_u128(3),
                    trigger: if i == 0 {
                        Trigger::Manual("operator:bob".into())
                    } else {
                        Trigger::Tick
                    },
                    outcome,
                },
            );
        }
    }
}

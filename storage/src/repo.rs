//! Typed repository functions: jobs, their events and logs, factories and tokens, the nodes'
//! fleet feeds, read and written inside a caller's transaction. Each keeps the secondary indexes in step with the
//! record (`save_job` derives them from the job's state), so an index can never disagree with
//! the job it points at.

use gigafactory_core::backoff::Backoff;
use gigafactory_core::fleet::{Factory, Token};
use gigafactory_core::job::{self, Command, Effect, FactoryId, Job, JobError, JobId, Millis};
use gigafactory_core::wire::{Event, FleetEvent, LeaseAnswer};

use crate::codec::{self, Record};
use crate::error::Error;
use crate::keys;
use crate::txn::{KeyRange, RangeOptions, Transaction};

impl Record for Job {
    const KIND: &'static str = "job";
    const SCHEMA: u16 = 1;
}

impl Record for Event {
    const KIND: &'static str = "event";
    const SCHEMA: u16 = 1;
}

impl Record for FleetEvent {
    const KIND: &'static str = "fleet_event";
    const SCHEMA: u16 = 1;
}

impl Record for Factory {
    const KIND: &'static str = "factory";
    const SCHEMA: u16 = 1;
}

impl Record for Token {
    const KIND: &'static str = "token";
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
    pub engine_class: Option<String>,
    pub preemptible: bool,
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
            engine_class: job.spec.engine_class.clone(),
            preemptible: job.spec.preemptible,
        })
    }
}

impl Record for ReadyEntry {
    const KIND: &'static str = "ready_entry";
    const SCHEMA: u16 = 1;
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
    /// The store failed; see [`Error`] for what to do.
    #[error(transparent)]
    Store(#[from] Error),
}

/// Most log bytes kept per job; later chunks are refused with an event saying so.
pub const LOG_MAX_BYTES_PER_JOB: i64 = 16 * 1024 * 1024;

pub async fn load_job<T: Transaction>(tx: &mut T, id: JobId) -> Result<Option<Job>, Error> {
    match tx.get(&keys::job(id.0)).await? {
        Some(v) => Ok(Some(codec::decode(&v)?)),
        None => Ok(None),
    }
}

/// Writes `new` (whose previous version is `old`) and moves its index entries: the ready
/// index holds exactly the queued and failed jobs, the lease-expiry index exactly the leased
/// ones. A job that became ready bumps the `ready` signal that waiting claims watch.
pub fn save_job<T: Transaction>(tx: &mut T, old: Option<&Job>, new: &Job) -> Result<(), Error> {
    tx.set(&keys::job(new.id.0), &codec::encode(new)?)?;
    let ready_key = |j: &Job| {
        j.state
            .ready_at()
            .map(|_| keys::ready(j.spec.priority, j.created_at, j.id.0))
    };
    let lease_key = |j: &Job| {
        j.state
            .lease()
            .map(|l| keys::lease_expiry(l.expires_at, j.id.0))
    };
    let (old_ready, new_ready) = (old.and_then(ready_key), ready_key(new));
    let became_ready =
        new_ready.is_some() && old.and_then(|o| o.state.ready_at()) != new.state.ready_at();
    if old_ready != new_ready || became_ready {
        if let Some(k) = &old_ready {
            tx.clear(k)?;
        }
        if let (Some(k), Some(entry)) = (&new_ready, ReadyEntry::of(new)) {
            tx.set(k, &codec::encode(&entry)?)?;
            tx.atomic_add(&keys::signal("ready"), 1)?;
        }
    }
    let (old_lease, new_lease) = (old.and_then(lease_key), lease_key(new));
    if old_lease != new_lease {
        if let Some(k) = &old_lease {
            tx.clear(k)?;
        }
        if let Some(k) = &new_lease {
            tx.set(k, &new.epoch.to_le_bytes())?;
        }
    }
    Ok(())
}

/// Appends the event of a write to the job's timeline. Its sequence is the job's `rev` at the
/// write, which grows with every write, so events of one job never collide.
pub fn append_event<T: Transaction>(
    tx: &mut T,
    job: &Job,
    kind: &str,
    actor: &str,
    detail: Option<String>,
    now: Millis,
) -> Result<(), Error> {
    append_event_n(tx, job, 0, kind, actor, detail, now)
}

/// Appends the `n`th event of the same write (a warning beside the transition's event).
pub fn append_event_n<T: Transaction>(
    tx: &mut T,
    job: &Job,
    n: u32,
    kind: &str,
    actor: &str,
    detail: Option<String>,
    now: Millis,
) -> Result<(), Error> {
    let event = Event {
        seq: job.rev,
        at: now,
        kind: kind.into(),
        actor: actor.into(),
        epoch: job.epoch,
        state: job.state.name().into(),
        detail,
    };
    tx.set(&keys::event(job.id.0, job.rev, n), &codec::encode(&event)?)
}

/// Submits a new job. With an idempotency key that was used before, returns the job made then
/// and writes nothing (`created` is false).
pub async fn submit<T: Transaction>(
    tx: &mut T,
    job: &Job,
    actor: &str,
) -> Result<(JobId, bool), Error> {
    if let Some(idem) = &job.spec.idempotency_key {
        let key = keys::idempotency(&job.spec.product, idem);
        if let Some(existing) = tx.get(&key).await? {
            let id = uuid::Uuid::from_slice(&existing).map_err(|e| Error::Codec(e.to_string()))?;
            return Ok((JobId(id), false));
        }
        tx.set(&key, job.id.0.as_bytes())?;
    }
    save_job(tx, None, job)?;
    for parent in &job.parents {
        tx.set(&keys::child(parent.0, job.id.0), &[])?;
    }
    append_event(tx, job, "submitted", actor, None, job.created_at)?;
    Ok((job.id, true))
}

/// Applies `cmd` to job `id` and persists the outcome with an event. Nothing is written when
/// the state machine refuses.
pub async fn transition<T: Transaction>(
    tx: &mut T,
    id: JobId,
    cmd: Command,
    actor: &str,
    now: Millis,
    backoff: &Backoff,
) -> Result<(Job, Vec<Effect>), RepoError> {
    let old = load_job(tx, id).await?.ok_or(RepoError::NotFound(id))?;
    let kind = cmd.name();
    let detail = match &cmd {
        Command::Stage { stage, .. } => Some(stage.clone()),
        Command::Fail { error, .. } => Some(error.clone()),
        Command::Claim { factory, .. } => Some(format!("factory {factory}")),
        Command::Preempt { by: Some(by), .. } => Some(format!("for job {by}")),
        _ => None,
    };
    let (new, effects) = job::apply(&old, cmd, now, backoff)?;
    save_job(tx, Some(&old), &new)?;
    // Renewals are frequent and say nothing new: keep them out of the timeline.
    if kind != "renew" {
        append_event(tx, &new, kind, actor, detail, now)?;
    }
    Ok((new, effects))
}

/// Leases that expired at or before `now`, oldest first: `(expires_at, job)`.
pub async fn expired_leases<T: Transaction>(
    tx: &mut T,
    now: Millis,
    limit: usize,
) -> Result<Vec<(Millis, JobId)>, Error> {
    let rows = tx
        .get_range(
            &keys::leases_expired_by(now),
            RangeOptions::limit(limit).snapshot(),
        )
        .await?;
    rows.iter()
        .map(|(k, _)| keys::lease_expiry_parts(k).map(|(at, id)| (at, JobId(id))))
        .collect()
}

/// A page of the ready index after `after` (a key from a previous page), in placement order.
pub async fn ready_page<T: Transaction>(
    tx: &mut T,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<(Vec<u8>, ReadyEntry)>, Error> {
    let mut range = keys::ready_all();
    if let Some(a) = after {
        range.begin = KeyRange::single(a).end;
    }
    let rows = tx
        .get_range(&range, RangeOptions::limit(limit).snapshot())
        .await?;
    rows.into_iter()
        .map(|(k, v)| codec::decode(&v).map(|e| (k, e)))
        .collect()
}

pub async fn events<T: Transaction>(
    tx: &mut T,
    id: JobId,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<Event>, Error> {
    let mut range = keys::events_of(id.0);
    if let Some(a) = after {
        range.begin = keys::event(id.0, a.saturating_add(1), 0);
    }
    let rows = tx
        .get_range(&range, RangeOptions::limit(limit).snapshot())
        .await?;
    rows.iter().map(|(_, v)| codec::decode(v)).collect()
}

/// Ids of the jobs that depend on `parent`.
pub async fn children<T: Transaction>(tx: &mut T, parent: JobId) -> Result<Vec<JobId>, Error> {
    let rows = tx
        .get_range(&keys::children_of(parent.0), RangeOptions::limit(10_000))
        .await?;
    rows.iter()
        .map(|(k, _)| keys::child_parts(k).map(|(_, c)| JobId(c)))
        .collect()
}

/// Moves every pending child of `parent` whose parents have all succeeded to the queue.
pub async fn release_children<T: Transaction>(
    tx: &mut T,
    parent: JobId,
    now: Millis,
    backoff: &Backoff,
) -> Result<Vec<JobId>, RepoError> {
    let mut released = Vec::new();
    for child in children(tx, parent).await? {
        let Some(c) = load_job(tx, child).await? else {
            continue;
        };
        if !matches!(c.state, job::JobState::Pending) {
            continue;
        }
        let mut all_done = true;
        for p in &c.parents {
            let done = load_job(tx, *p)
                .await?
                .is_some_and(|pj| pj.state.is_success());
            all_done &= done;
        }
        if all_done {
            transition(tx, child, Command::ParentsDone, "scheduler", now, backoff).await?;
            released.push(child);
        }
    }
    Ok(released)
}

/// The answer an earlier request with this id got, if any (a retried factory write).
pub async fn remembered_answer<T: Transaction>(
    tx: &mut T,
    job: JobId,
    request_id: &str,
) -> Result<Option<LeaseAnswer>, Error> {
    match tx.get(&keys::request(job.0, request_id)).await? {
        Some(v) => Ok(Some(codec::decode(&v)?)),
        None => Ok(None),
    }
}

/// Records the answer to a factory write so that a retry with the same id gets it again.
/// Answers of a job are dropped when it is next claimed (`forget_answers`).
pub fn remember_answer<T: Transaction>(
    tx: &mut T,
    job: JobId,
    request_id: &str,
    answer: &LeaseAnswer,
) -> Result<(), Error> {
    tx.set(&keys::request(job.0, request_id), &codec::encode(answer)?)
}

pub fn forget_answers<T: Transaction>(tx: &mut T, job: JobId) -> Result<(), Error> {
    tx.clear_range(&keys::requests_of(job.0))
}

/// Appends a log chunk unless the job's log is full; returns whether it was kept.
pub async fn append_log<T: Transaction>(
    tx: &mut T,
    job: JobId,
    attempt: u32,
    seq: u64,
    chunk: &[u8],
) -> Result<bool, Error> {
    let size_key = keys::log_bytes(job.0);
    let used = tx.get_snapshot(&size_key).await?.map_or(0, |v| {
        i64::from_le_bytes(v[..8].try_into().unwrap_or([0; 8]))
    });
    if used + chunk.len() as i64 > LOG_MAX_BYTES_PER_JOB {
        return Ok(false);
    }
    tx.set(&keys::log_chunk(job.0, attempt, seq), chunk)?;
    tx.atomic_add(&size_key, chunk.len() as i64)?;
    Ok(true)
}

pub async fn load_factory<T: Transaction>(
    tx: &mut T,
    id: FactoryId,
) -> Result<Option<Factory>, Error> {
    match tx.get(&keys::factory(id.0)).await? {
        Some(v) => Ok(Some(codec::decode(&v)?)),
        None => Ok(None),
    }
}

pub fn save_factory<T: Transaction>(tx: &mut T, f: &Factory) -> Result<(), Error> {
    tx.set(&keys::factory(f.id.0), &codec::encode(f)?)
}

pub async fn factories<T: Transaction>(tx: &mut T) -> Result<Vec<Factory>, Error> {
    let rows = tx
        .get_range(&keys::factories(), RangeOptions::limit(100_000).snapshot())
        .await?;
    rows.iter().map(|(_, v)| codec::decode(v)).collect()
}

/// Every node record.
pub async fn nodes<T: Transaction>(
    tx: &mut T,
) -> Result<Vec<gigafactory_core::cluster::NodeRecord>, Error> {
    let rows = tx
        .get_range(&keys::nodes(), RangeOptions::limit(10_000))
        .await?;
    rows.iter().map(|(_, v)| codec::decode(v)).collect()
}

/// Every shard's lease, absent ones as `None`, in shard order.
pub async fn shard_leases<T: Transaction>(
    tx: &mut T,
) -> Result<Vec<(u32, Option<gigafactory_core::cluster::ShardLease>)>, Error> {
    let rows = tx
        .get_range(&keys::shards(), RangeOptions::limit(10_000))
        .await?;
    let mut out: Vec<(u32, Option<gigafactory_core::cluster::ShardLease>)> = (0
        ..gigafactory_core::cluster::SHARDS)
        .map(|s| (s, None))
        .collect();
    for (k, v) in rows {
        let n = keys::shard_number(&k)?;
        if let Some(slot) = out.get_mut(n as usize) {
            slot.1 = Some(codec::decode(&v)?);
        }
    }
    Ok(out)
}

/// Appends fleet events that `node` committed (in sequence order) to its feed, and drops its
/// entries older than the latest `kept`. Only blind writes to the node's own keys: feeds of
/// different nodes never conflict, and writing the same events again changes nothing.
pub fn append_fleet_feed<T: Transaction>(
    tx: &mut T,
    node: uuid::Uuid,
    events: &[FleetEvent],
    kept: u64,
) -> Result<(), Error> {
    debug_assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    for e in events {
        tx.set(&keys::fleet_feed(node, e.seq), &codec::encode(e)?)?;
    }
    if let Some(last) = events.last() {
        let keep_from = (last.seq + 1).saturating_sub(kept);
        if keep_from > 0 {
            tx.clear_range(&keys::fleet_feed_below(node, keep_from))?;
        }
    }
    Ok(())
}

/// Entries of `node`'s feed numbered after `after`, oldest first, at most `limit`.
pub async fn fleet_feed_after<T: Transaction>(
    tx: &mut T,
    node: uuid::Uuid,
    after: u64,
    limit: usize,
) -> Result<Vec<FleetEvent>, Error> {
    let rows = tx
        .get_range(
            &keys::fleet_feed_from(node, after.saturating_add(1)),
            RangeOptions::limit(limit).snapshot(),
        )
        .await?;
    rows.iter().map(|(_, v)| codec::decode(v)).collect()
}

/// A product's scoring weights override (absent: the defaults).
pub async fn load_weights<T: Transaction>(
    tx: &mut T,
    product: &str,
) -> Result<Option<gigafactory_core::scoring::WeightsOverride>, Error> {
    match tx.get(&keys::weights(product)).await? {
        Some(v) => Ok(Some(codec::decode(&v)?)),
        None => Ok(None),
    }
}

pub fn save_weights<T: Transaction>(
    tx: &mut T,
    product: &str,
    w: &gigafactory_core::scoring::WeightsOverride,
) -> Result<(), Error> {
    tx.set(&keys::weights(product), &codec::encode(w)?)
}

/// Every product's weights override.
pub async fn all_weights<T: Transaction>(
    tx: &mut T,
) -> Result<Vec<(String, gigafactory_core::scoring::WeightsOverride)>, Error> {
    let rows = tx
        .get_range(
            &keys::weights_all(),
            RangeOptions::limit(100_000).snapshot(),
        )
        .await?;
    rows.iter()
        .map(|(k, v)| Ok((keys::weights_product(k)?, codec::decode(v)?)))
        .collect()
}

pub async fn load_token<T: Transaction>(
    tx: &mut T,
    hash: &[u8; 32],
) -> Result<Option<Token>, Error> {
    match tx.get(&keys::token(hash)).await? {
        Some(v) => Ok(Some(codec::decode(&v)?)),
        None => Ok(None),
    }
}

pub fn save_token<T: Transaction>(tx: &mut T, hash: &[u8; 32], token: &Token) -> Result<(), Error> {
    tx.set(&keys::token(hash), &codec::encode(token)?)
}

#[cfg(test)]
mod tests {
    //! Golden bytes of every stored record: a change of a record's shape fails here instead of
    //! silently breaking data already on disk. After a deliberate change (with a bumped
    //! `SCHEMA` and an `upgrade` for the old shape), regenerate with `GOLDEN_UPDATE=1`. And the
    //! fleet feed's bound and cursor on a real (embedded) store.

    use gigafactory_core::fleet::{FactoryStatus, Role};
    use gigafactory_core::job::{JobState, Lease};
    use gigafactory_core::manifest::{JobSpec, Payload};
    use gigafactory_core::scoring::{Factor, ScoreBreakdown};
    use uuid::Uuid;

    use super::*;
    use crate::{EmbeddedStore, Store};

    fn spec() -> JobSpec {
        JobSpec {
            key: "build".into(),
            title: "Build".into(),
            product: "payments".into(),
            payload: Payload::Command("cargo build".into()),
            priority: 80,
            capabilities: vec!["linux".into(), "rust".into()],
            engine_class: Some("claude".into()),
            profile: Some("agent".into()),
            deps: vec!["plan".into()],
            idempotency_key: Some("payments/build".into()),
            allowed_scope: vec!["src/**".into()],
            max_attempts: 3,
            wall_clock_ms: Some(600_000),
            cost_budget_micros: Some(2_500_000),
            preemptible: true,
            review: false,
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
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
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
            kind: "claim".into(),
            state: "leased".into(),
            actor: "scheduler".into(),
            epoch: 1,
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

    #[test]
    fn stored_records_match_their_golden_bytes() {
        let factory_id = FactoryId(Uuid::from_u128(2));
        check("job", &job());
        check(
            "event",
            &Event {
                seq: 7,
                at: 1_500,
                kind: "stage".into(),
                actor: "factory:x".into(),
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
            },
        );
        check(
            "token",
            &Token {
                role: Role::Factory(factory_id),
                name: "mac-1".into(),
                created_at: 10,
                revoked: false,
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
                kind: "claim".into(),
                state: "leased".into(),
                actor: "factory:x".into(),
                epoch: 4,
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
    }
}

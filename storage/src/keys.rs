//! The key layout: every key is an order-preserving tuple (FoundationDB's tuple encoding) whose
//! first element names its subspace. Ordering matters where it is read in order: the ready
//! index sorts by priority then age, the lease-expiry index by deadline, events and log
//! chunks by sequence. ARCHITECTURE.md lists the layout; change both together.

use foundationdb_tuple::{Subspace, Uuid, pack, unpack};

use crate::error::{Error, Result};
use crate::txn::KeyRange;

/// `("job", id)` → the job record.
pub fn job(id: Uuid) -> Vec<u8> {
    pack(&("job", id))
}

/// Prefix of every job record.
pub fn job_prefix() -> Vec<u8> {
    pack(&("job",))
}

/// `("idem", product, idempotency key)` → id of the job submitted with that key.
pub fn idempotency(product: &str, key: &str) -> Vec<u8> {
    pack(&("idem", product, key))
}

/// `("ready", priority_rank, created_ms, id)` → nothing. Queued jobs in placement order:
/// higher priority first (the rank is `u32::MAX - priority`), then older first.
pub fn ready(priority: u32, created_ms: u64, id: Uuid) -> Vec<u8> {
    pack(&("ready", u32::MAX - priority, created_ms, id))
}

/// Every entry of the ready index.
pub fn ready_all() -> KeyRange {
    subspace(&"ready")
}

/// The id in a ready-index key.
pub fn ready_id(key: &[u8]) -> Result<Uuid> {
    let (_, _, _, id): (String, u32, u64, Uuid) = unpack(key).map_err(tuple_error)?;
    Ok(id)
}

/// `("lease_exp", expires_ms, id)` → the lease epoch. Leases in deadline order, for the reaper.
pub fn lease_expiry(expires_ms: u64, id: Uuid) -> Vec<u8> {
    pack(&("lease_exp", expires_ms, id))
}

/// Leases that expire at or before `now_ms`.
pub fn leases_expired_by(now_ms: u64) -> KeyRange {
    KeyRange::new(pack(&("lease_exp",)), pack(&("lease_exp", now_ms + 1)))
}

/// Prefix of every lease-expiry key.
pub fn lease_expiry_prefix() -> Vec<u8> {
    pack(&("lease_exp",))
}

/// The deadline and id in a lease-expiry key.
pub fn lease_expiry_parts(key: &[u8]) -> Result<(u64, Uuid)> {
    let (_, at, id): (String, u64, Uuid) = unpack(key).map_err(tuple_error)?;
    Ok((at, id))
}

/// `("ask_due", timeout_ms, id)` → nothing. Open questions in timeout order, for the reaper.
pub fn question_due(timeout_ms: u64, id: Uuid) -> Vec<u8> {
    pack(&("ask_due", timeout_ms, id))
}

/// Open questions whose timeout is at or before `now_ms`.
pub fn questions_due_by(now_ms: u64) -> KeyRange {
    KeyRange::new(
        pack(&("ask_due",)),
        pack(&("ask_due", now_ms.saturating_add(1))),
    )
}

/// The timeout and job id in a question-timeout key.
pub fn question_due_parts(key: &[u8]) -> Result<(u64, Uuid)> {
    let (_, at, id): (String, u64, Uuid) = unpack(key).map_err(tuple_error)?;
    Ok((at, id))
}

/// `("event", job, seq, n)` → an event of the job's timeline: `seq` is the job's `rev` at the
/// write, `n` numbers the events one write appends (the transition's is 0).
pub fn event(job: Uuid, seq: u64, n: u32) -> Vec<u8> {
    pack(&("event", job, seq, n))
}

/// All events of one job, in order.
pub fn events_of(job: Uuid) -> KeyRange {
    subspace(&("event", job))
}

/// `("log", job, attempt, seq)` → one chunk of a job's output.
pub fn log_chunk(job: Uuid, attempt: u32, seq: u64) -> Vec<u8> {
    pack(&("log", job, attempt, seq))
}

/// The job, attempt and sequence in a log-chunk key.
pub fn log_chunk_parts(key: &[u8]) -> Result<(Uuid, u32, u64)> {
    let (_, job, attempt, seq): (String, Uuid, u32, u64) = unpack(key).map_err(tuple_error)?;
    Ok((job, attempt, seq))
}

/// All log chunks of one job, attempt by attempt.
pub fn logs_of(job: Uuid) -> KeyRange {
    subspace(&("log", job))
}

/// `("child", parent, child)` → nothing: the DAG's edges, read from the parent side.
pub fn child(parent: Uuid, child: Uuid) -> Vec<u8> {
    pack(&("child", parent, child))
}

pub fn children_of(parent: Uuid) -> KeyRange {
    subspace(&("child", parent))
}

/// The parent and child in a DAG edge key.
pub fn child_parts(key: &[u8]) -> Result<(Uuid, Uuid)> {
    let (_, p, c): (String, Uuid, Uuid) = unpack(key).map_err(tuple_error)?;
    Ok((p, c))
}

/// `("logsize", job)` → bytes of log kept for the job (atomic counter), for its bound.
pub fn log_bytes(job: Uuid) -> Vec<u8> {
    pack(&("logsize", job))
}

/// `("logcut", job)` → the attempt (u32 LE) whose output first passed the job's log bound, so
/// the timeline says so once per attempt.
pub fn log_cut(job: Uuid) -> Vec<u8> {
    pack(&("logcut", job))
}

/// `("req", job, factory, epoch, request id)` → the answer given to a factory write, so a
/// retry of it gets the same answer. Keyed by the writer and its lease as well as the id, so
/// only the write's own sender, under the lease it wrote under, can ever read it back (another
/// factory reusing the id meets the fence instead). Cleared when the job is next claimed.
/// (Schema 1 keyed by `(job, request id)` alone; those keys are cleared by the same range.)
pub fn request(job: Uuid, factory: Uuid, epoch: u64, request_id: &str) -> Vec<u8> {
    pack(&("req", job, factory, epoch, request_id))
}

pub fn requests_of(job: Uuid) -> KeyRange {
    subspace(&("req", job))
}

/// `("factory", id)` → the factory record.
pub fn factory(id: Uuid) -> Vec<u8> {
    pack(&("factory", id))
}

pub fn factories() -> KeyRange {
    subspace(&"factory")
}

/// `("token", sha256 of the secret)` → the token record (role, owner, revoked, expiry).
pub fn token(hash: &[u8; 32]) -> Vec<u8> {
    pack(&("token", hash.as_slice()))
}

/// Every token record.
pub fn tokens() -> KeyRange {
    subspace(&"token")
}

/// The secret's hash in a token key.
pub fn token_hash(key: &[u8]) -> Result<[u8; 32]> {
    let (_, hash): (String, foundationdb_tuple::Bytes) = unpack(key).map_err(tuple_error)?;
    hash.0
        .as_ref()
        .try_into()
        .map_err(|_| Error::Codec(format!("a token hash of {} bytes", hash.0.len())))
}

/// `("audit", at_ms, id)` → an audit entry, in time order (the id, a UUIDv7, keeps entries of
/// the same millisecond apart).
pub fn audit(at_ms: u64, id: Uuid) -> Vec<u8> {
    pack(&("audit", at_ms, id))
}

/// Audit entries before `(at_ms, id)` (every one without it), for reading newest first.
pub fn audit_before(before: Option<(u64, Uuid)>) -> KeyRange {
    let all = subspace(&"audit");
    match before {
        Some((at, id)) => KeyRange::new(all.begin, audit(at, id)),
        None => all,
    }
}

/// The time and id in an audit key.
pub fn audit_parts(key: &[u8]) -> Result<(u64, Uuid)> {
    let (_, at, id): (String, u64, Uuid) = unpack(key).map_err(tuple_error)?;
    Ok((at, id))
}

/// `("budget", name)` → the budget record.
pub fn budget(name: &str) -> Vec<u8> {
    pack(&("budget", name))
}

pub fn budgets_all() -> KeyRange {
    subspace(&("budget",))
}

/// `("budgetsv",)` → the version of the budgets' definitions (atomic counter): every change
/// of a budget record or of the product index adds one to it, and nothing else writes it
/// (spend does not). A node's `BudgetBook` keeps records under the version they were read at.
pub fn budgets_version() -> Vec<u8> {
    pack(&("budgetsv",))
}

/// `("budgetp", product, name)` → nothing: the budgets of a product, for placement's check.
pub fn budget_of(product: &str, name: &str) -> Vec<u8> {
    pack(&("budgetp", product, name))
}

pub fn budgets_of(product: &str) -> KeyRange {
    subspace(&("budgetp", product))
}

/// The budget name in a `budgetp` key.
pub fn budget_of_name(key: &[u8]) -> Result<String> {
    let (_, _, name): (String, String, String) = unpack(key).map_err(tuple_error)?;
    Ok(name)
}

/// `("spend", budget, period_start)` → spend in that period (atomic little-endian counter).
pub fn spend(budget: &str, period_start: u64) -> Vec<u8> {
    pack(&("spend", budget, period_start))
}

/// `("spendday", budget, day_start)` → spend on that UTC day (atomic counter): the burndown.
pub fn spend_day(budget: &str, day_start: u64) -> Vec<u8> {
    pack(&("spendday", budget, day_start))
}

/// The days of a budget's burndown from `from` (a day start) on.
pub fn spend_days_from(budget: &str, from: u64) -> KeyRange {
    let mut range = subspace(&("spendday", budget));
    range.begin = spend_day(budget, from);
    range
}

/// The day start in a `spendday` key.
pub fn spend_day_start(key: &[u8]) -> Result<u64> {
    let (_, _, day): (String, String, u64) = unpack(key).map_err(tuple_error)?;
    Ok(day)
}

/// `("spendjob", budget, period_start, job)` → the job's spend in that period (atomic
/// counter): the budget's top jobs.
pub fn spend_job(budget: &str, period_start: u64, job: Uuid) -> Vec<u8> {
    pack(&("spendjob", budget, period_start, job))
}

pub fn spend_jobs(budget: &str, period_start: u64) -> KeyRange {
    subspace(&("spendjob", budget, period_start))
}

/// The job in a `spendjob` key.
pub fn spend_job_id(key: &[u8]) -> Result<Uuid> {
    let (_, _, _, job): (String, String, u64, Uuid) = unpack(key).map_err(tuple_error)?;
    Ok(job)
}

/// `("budgetlvl", budget, period_start, level)` → nothing: the budget passed that level
/// (`alert`, `exhausted`) in that period, so it is announced once.
pub fn budget_level(budget: &str, period_start: u64, level: &str) -> Vec<u8> {
    pack(&("budgetlvl", budget, period_start, level))
}

/// Everything kept for one budget but its record and index entry: spend, days, jobs, levels.
pub fn budget_spend_all(budget: &str) -> [KeyRange; 4] {
    [
        subspace(&("spend", budget)),
        subspace(&("spendday", budget)),
        subspace(&("spendjob", budget)),
        subspace(&("budgetlvl", budget)),
    ]
}

/// `("weights", product)` → the product's scoring weights.
pub fn weights(product: &str) -> Vec<u8> {
    pack(&("weights", product))
}

pub fn weights_all() -> KeyRange {
    subspace(&"weights")
}

/// The product in a weights key.
pub fn weights_product(key: &[u8]) -> Result<String> {
    let (_, product): (String, String) = unpack(key).map_err(tuple_error)?;
    Ok(product)
}

/// `("sched", name)` → a schedule: what it submits, its state and its cursor.
pub fn schedule(name: &str) -> Vec<u8> {
    pack(&("sched", name))
}

pub fn schedules_all() -> KeyRange {
    subspace(&("sched",))
}

/// `("schedrun", name, seq)` → one run of a schedule's history, in order.
pub fn schedule_run(name: &str, seq: u64) -> Vec<u8> {
    pack(&("schedrun", name, seq))
}

pub fn schedule_runs(name: &str) -> KeyRange {
    subspace(&("schedrun", name))
}

/// `("schedtrig", name, key)` → the run a manual trigger with idempotency key `key` made.
pub fn schedule_trigger(name: &str, key: &str) -> Vec<u8> {
    pack(&("schedtrig", name, key))
}

pub fn schedule_triggers(name: &str) -> KeyRange {
    subspace(&("schedtrig", name))
}

/// `("limit", key)` → a concurrency or rate limit.
pub fn limit(key: &str) -> Vec<u8> {
    pack(&("limit", key))
}

pub fn limits_all() -> KeyRange {
    subspace(&"limit")
}

/// The key in a limit's key.
pub fn limit_key(key: &[u8]) -> Result<String> {
    let (_, k): (String, String) = unpack(key).map_err(tuple_error)?;
    Ok(k)
}

/// `("limitrun", key)` → leases holding a slot under the limit (u32 LE).
pub fn limit_running(key: &str) -> Vec<u8> {
    pack(&("limitrun", key))
}

/// `("limitnext", key)` → the earliest time (µs, u64 LE) the limit's next lease may start.
pub fn limit_next(key: &str) -> Vec<u8> {
    pack(&("limitnext", key))
}

/// `("limitsec", key, second)` → leases a counted rate started in that second (i64 LE).
pub fn limit_bucket(key: &str, second: u64) -> Vec<u8> {
    pack(&("limitsec", key, second))
}

/// `("secret", product, profile, name)` → a secret's sealed value and what is known of it;
/// `profile` is empty for a product-wide secret (a profile's name never is).
pub fn secret(product: &str, profile: &str, name: &str) -> Vec<u8> {
    pack(&("secret", product, profile, name))
}

/// Every secret of `product` (its profiles' too), or of every product.
pub fn secrets_of(product: Option<&str>) -> KeyRange {
    match product {
        Some(p) => subspace(&("secret", p)),
        None => subspace(&"secret"),
    }
}

/// `("share", product)` → the product's fair share, as set through the API.
pub fn share(product: &str) -> Vec<u8> {
    pack(&("share", product))
}

pub fn shares_all() -> KeyRange {
    subspace(&"share")
}

/// The product in a share key.
pub fn share_product(key: &[u8]) -> Result<String> {
    let (_, product): (String, String) = unpack(key).map_err(tuple_error)?;
    Ok(product)
}

/// `("signal", name)` → a counter bumped (atomic add, never a conflict) by every transaction
/// that makes something happen others wait for, such as a job becoming ready. Waiters watch
/// it instead of polling.
pub fn signal(name: &str) -> Vec<u8> {
    pack(&("signal", name))
}

/// `("hearing",)` → when a node was last heard serving, and the latest outage (`Hearing`).
pub fn hearing() -> Vec<u8> {
    pack(&("hearing",))
}

/// `("node", id)` → a coordinator node's record (its liveness lease).
pub fn node(id: Uuid) -> Vec<u8> {
    pack(&("node", id))
}

pub fn nodes() -> KeyRange {
    subspace(&"node")
}

/// `("shard", n)` → the lease of shard `n` (owner, epoch, expiry).
pub fn shard(n: u32) -> Vec<u8> {
    pack(&("shard", n))
}

pub fn shards() -> KeyRange {
    subspace(&"shard")
}

/// The shard number in a shard key.
pub fn shard_number(key: &[u8]) -> Result<u32> {
    let (_, n): (String, u32) = unpack(key).map_err(tuple_error)?;
    Ok(n)
}

/// `("fleet", node, seq)` → a fleet event the node committed (its `seq`th), on a store nodes
/// share: a bounded feed per node that the other nodes relay into their fleet streams.
pub fn fleet_feed(node: Uuid, seq: u64) -> Vec<u8> {
    pack(&("fleet", node, seq))
}

/// One node's feed entries numbered `first_seq` or later.
pub fn fleet_feed_from(node: Uuid, first_seq: u64) -> KeyRange {
    KeyRange::new(fleet_feed(node, first_seq), subspace(&("fleet", node)).end)
}

/// One node's feed entries numbered below `end_seq`.
pub fn fleet_feed_below(node: Uuid, end_seq: u64) -> KeyRange {
    KeyRange::new(subspace(&("fleet", node)).begin, fleet_feed(node, end_seq))
}

/// Every entry of one node's feed.
pub fn fleet_feed_of(node: Uuid) -> KeyRange {
    subspace(&("fleet", node))
}

/// Prefix of every node's feed: what a relaying node watches.
pub fn fleet_feed_prefix() -> Vec<u8> {
    pack(&("fleet",))
}

/// The node and sequence in a feed key.
pub fn fleet_feed_parts(key: &[u8]) -> Result<(Uuid, u64)> {
    let (_, node, seq): (String, Uuid, u64) = unpack(key).map_err(tuple_error)?;
    Ok((node, seq))
}

/// `("item", source, id)` → a tracker item and the jobs it made.
pub fn item(source: &str, id: &str) -> Vec<u8> {
    pack(&("item", source, id))
}

pub fn items_of(source: &str) -> KeyRange {
    subspace(&("item", source))
}

/// `("delivery", id)` → an echo of a job change on its way to a tracker.
pub fn delivery(id: &str) -> Vec<u8> {
    pack(&("delivery", id))
}

/// `("itemdlv", source, item, delivery)` → nothing: an item's deliveries, in order.
pub fn item_delivery(source: &str, item: &str, delivery: &str) -> Vec<u8> {
    pack(&("itemdlv", source, item, delivery))
}

pub fn item_deliveries(source: &str, item: &str) -> KeyRange {
    subspace(&("itemdlv", source, item))
}

/// The delivery id in an `itemdlv` key.
pub fn item_delivery_id(key: &[u8]) -> Result<String> {
    let (_, _, _, id): (String, String, String, String) = unpack(key).map_err(tuple_error)?;
    Ok(id)
}

/// `("outbox", next_at, shard, delivery)` → nothing: deliveries by when they are due, with
/// the shard whose owner delivers them.
pub fn outbox(next_at: u64, shard: u32, delivery: &str) -> Vec<u8> {
    pack(&("outbox", next_at, shard, delivery))
}

/// Deliveries due at or before `now`.
pub fn outbox_due(now: u64) -> KeyRange {
    let all = subspace(&("outbox",));
    KeyRange::new(all.begin, pack(&("outbox", now.saturating_add(1))))
}

/// The shard and delivery id in an `outbox` key.
pub fn outbox_parts(key: &[u8]) -> Result<(u32, String)> {
    let (_, _, shard, id): (String, u64, u32, String) = unpack(key).map_err(tuple_error)?;
    Ok((shard, id))
}

/// `("artifact", job, attempt, name)` → an artifact's record: a job's files by attempt.
pub fn artifact(job: Uuid, attempt: u32, name: &str) -> Vec<u8> {
    pack(&("artifact", job, attempt, name))
}

pub fn artifacts_of(job: Uuid) -> KeyRange {
    subspace(&("artifact", job))
}

/// `("artref", sha256, job, attempt, name)` → nothing: the artifacts that keep a blob.
pub fn artifact_ref(sha256: &str, job: Uuid, attempt: u32, name: &str) -> Vec<u8> {
    pack(&("artref", sha256, job, attempt, name))
}

pub fn artifact_refs(sha256: &str) -> KeyRange {
    subspace(&("artref", sha256))
}

/// `("artage", created_ms, job, attempt, name)` → nothing: artifacts oldest first, for
/// retention.
pub fn artifact_age(created_ms: u64, job: Uuid, attempt: u32, name: &str) -> Vec<u8> {
    pack(&("artage", created_ms, job, attempt, name))
}

/// Artifacts saved before `ms`.
pub fn artifacts_saved_before(ms: u64) -> KeyRange {
    KeyRange::new(pack(&("artage",)), pack(&("artage", ms)))
}

/// The job, attempt and name in an `artage` key.
pub fn artifact_age_parts(key: &[u8]) -> Result<(Uuid, u32, String)> {
    let (_, _, job, attempt, name): (String, u64, Uuid, u32, String) =
        unpack(key).map_err(tuple_error)?;
    Ok((job, attempt, name))
}

/// `("blobgone", sha256)` → nothing: the sweeper is deleting this blob; an artifact naming it
/// waits until it is gone and is uploaded again.
pub fn blob_gone(sha256: &str) -> Vec<u8> {
    pack(&("blobgone", sha256))
}

pub fn blobs_gone() -> KeyRange {
    subspace(&("blobgone",))
}

/// The digest in a `blobgone` key.
pub fn blob_gone_sha(key: &[u8]) -> Result<String> {
    let (_, sha): (String, String) = unpack(key).map_err(tuple_error)?;
    Ok(sha)
}

/// `("meta", name)` → store-wide facts (layout version, admin token created).
pub fn meta(name: &str) -> Vec<u8> {
    pack(&("meta", name))
}

fn subspace<T: foundationdb_tuple::TuplePack>(prefix: &T) -> KeyRange {
    let (begin, end) = Subspace::all().subspace(prefix).range();
    KeyRange::new(begin, end)
}

fn tuple_error(e: foundationdb_tuple::PackError) -> Error {
    Error::Codec(format!("malformed key: {e:?}"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    proptest! {
        #[test]
        fn ready_keys_sort_by_priority_then_age(
            a in (0u32..1000, 0u64..1u64 << 50, any::<u128>()),
            b in (0u32..1000, 0u64..1u64 << 50, any::<u128>()),
        ) {
            let ka = ready(a.0, a.1, id(a.2));
            let kb = ready(b.0, b.1, id(b.2));
            let want = b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2));
            prop_assert_eq!(ka.cmp(&kb), want);
            prop_assert!(ready_all().contains(&ka));
            prop_assert_eq!(ready_id(&ka).unwrap(), id(a.2));
        }

        #[test]
        fn question_due_keys_sort_by_timeout(t1 in 0u64..1 << 60, t2 in 0u64..1 << 60, n in any::<u128>()) {
            let (k1, k2) = (question_due(t1, id(n)), question_due(t2, id(n)));
            prop_assert_eq!(k1 < k2, t1 < t2);
            prop_assert_eq!(questions_due_by(t2).contains(&k1), t1 <= t2);
            prop_assert_eq!(question_due_parts(&k1).unwrap(), (t1, id(n)));
        }

        #[test]
        fn lease_expiry_keys_sort_by_deadline(t1 in 0u64..1 << 60, t2 in 0u64..1 << 60, n in any::<u128>()) {
            let (k1, k2) = (lease_expiry(t1, id(n)), lease_expiry(t2, id(n)));
            prop_assert_eq!(k1.cmp(&k2), t1.cmp(&t2));
            prop_assert_eq!(leases_expired_by(t2).contains(&k1), t1 <= t2);
            prop_assert_eq!(lease_expiry_parts(&k1).unwrap(), (t1, id(n)));
        }

        #[test]
        fn events_stay_inside_their_job(job in any::<u128>(), other in any::<u128>(), s1 in any::<u64>(), s2 in any::<u64>()) {
            prop_assert_eq!(event(id(job), s1, 0).cmp(&event(id(job), s2, 0)), s1.cmp(&s2));
            prop_assert!(event(id(job), s1, 0) < event(id(job), s1, 1));
            prop_assert!(events_of(id(job)).contains(&event(id(job), s1, 1)));
            prop_assert_eq!(events_of(id(other)).contains(&event(id(job), s1, 0)), job == other);
        }
    }

    proptest! {
        #[test]
        fn fleet_feed_keys_sort_by_sequence_within_their_node(
            node in any::<u128>(), other in any::<u128>(), s1 in any::<u64>(), s2 in any::<u64>(),
        ) {
            let (k1, k2) = (fleet_feed(id(node), s1), fleet_feed(id(node), s2));
            prop_assert_eq!(k1.cmp(&k2), s1.cmp(&s2));
            prop_assert_eq!(fleet_feed_parts(&k1).unwrap(), (id(node), s1));
            prop_assert!(KeyRange::prefix(&fleet_feed_prefix()).contains(&k1));
            prop_assert_eq!(fleet_feed_from(id(node), s2).contains(&k1), s1 >= s2);
            prop_assert_eq!(fleet_feed_below(id(node), s2).contains(&k1), s1 < s2);
            prop_assert_eq!(fleet_feed_of(id(other)).contains(&k1), node == other);
        }
    }

    #[test]
    fn malformed_keys_are_codec_errors() {
        assert!(matches!(ready_id(b"\x01nonsense"), Err(Error::Codec(_))));
        assert!(matches!(
            lease_expiry_parts(&job(id(1))),
            Err(Error::Codec(_))
        ));
    }
}

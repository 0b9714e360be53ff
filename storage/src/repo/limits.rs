//! Concurrency and rate limits in the store: each limit's record, the count of leases holding
//! a slot under it, and the earliest time its next lease may start. The claim transaction
//! reads them (`check_claim`) and counts the lease (`admit`); a lease's end gives its slots
//! back (`give_back`) in the transaction that ends it.
//!
//! Counts move by atomic adds, which never make two transactions conflict, and a claim reads a
//! count without a conflict while it is more than [`CONFLICT_MARGIN`] below the limit's max:
//! far from the max, claims and ends on one key do not abort each other. Within the margin the
//! claim reads the count with a conflict, so two nodes admitting at once conflict and one
//! retries: there the limit is exact. Passing the max from far below would take more than
//! `CONFLICT_MARGIN` claims of one key in flight at once, each read before any of them
//! committed. A spaced rate's next start is read and written by every start under it (the
//! next start depends on the last), so a slow rate orders its key's claims; a counted rate
//! (faster than `limits::RATE_SPACED_MAX` a minute) counts each second's starts the same way
//! as a concurrency count, against the second's quota. A batch of claims in one transaction
//! reads its own counts.

use gigafactory_core::job::{Job, Millis};
use gigafactory_core::limits::{self, LimitHold, LimitSpec};

use crate::codec::{self, Record};
use crate::error::Error;
use crate::keys;
use crate::txn::{RangeOptions, Transaction};

/// Limits a store may hold.
pub const LIMITS_MAX: usize = 10_000;
/// How far below its max a concurrency count is read with a conflict (see the file's doc).
pub const CONFLICT_MARGIN: u32 = 1_024;

impl Record for LimitSpec {
    const KIND: &'static str = "limit";
    /// 2: a throttle.
    const SCHEMA: u16 = 2;

    fn upgrade(schema: u16, payload: &[u8]) -> Result<Self, Error> {
        match schema {
            1 => {
                let (max_running, per_minute): (Option<u32>, Option<u32>) =
                    codec::decode_payload(payload)?;
                Ok(LimitSpec {
                    max_running,
                    per_minute,
                    throttled_until: None,
                })
            }
            _ => Err(Error::Codec(format!(
                "limit schema {schema} is not readable by this version"
            ))),
        }
    }
}

/// Throttles `key` until `until` in the releasing transaction (the later end wins; the key's
/// limits stay): no claim under it passes before then.
pub async fn throttle<T: Transaction>(tx: &mut T, key: &str, until: Millis) -> Result<(), Error> {
    let old = match tx.get(&keys::limit(key)).await? {
        Some(v) => Some(codec::decode::<LimitSpec>(&v)?),
        None => None,
    };
    save_limit(tx, key, &limits::throttled(old, until))
}

/// A limit with where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitState {
    pub key: String,
    pub spec: LimitSpec,
    /// Leases holding a slot under it now.
    pub running: u32,
    /// The earliest time (µs) its next lease may start; 0 when none started (a spaced rate).
    pub next_start_us: u64,
    /// Leases started in the current second (a counted rate).
    pub started_this_second: u32,
}

pub fn save_limit<T: Transaction>(tx: &mut T, key: &str, spec: &LimitSpec) -> Result<(), Error> {
    tx.set(&keys::limit(key), &codec::encode(spec)?)
}

/// Removes a limit; its count stays, so the leases holding slots still give them back.
pub async fn delete_limit<T: Transaction>(tx: &mut T, key: &str) -> Result<bool, Error> {
    let existed = tx.get(&keys::limit(key)).await?.is_some();
    tx.clear(&keys::limit(key))?;
    Ok(existed)
}

pub async fn load_limit<T: Transaction>(
    tx: &mut T,
    key: &str,
    now: Millis,
) -> Result<Option<LimitState>, Error> {
    let Some(v) = tx.get(&keys::limit(key)).await? else {
        return Ok(None);
    };
    state_of(tx, key.to_owned(), codec::decode(&v)?, now)
        .await
        .map(Some)
}

async fn state_of<T: Transaction>(
    tx: &mut T,
    key: String,
    spec: LimitSpec,
    now: Millis,
) -> Result<LimitState, Error> {
    let second = keys::limit_bucket(&key, limits::rate_bucket(now));
    Ok(LimitState {
        running: read_count(tx, &keys::limit_running(&key), false).await?,
        next_start_us: read_u64(tx, &keys::limit_next(&key)).await?,
        started_this_second: read_count(tx, &second, false).await?,
        spec,
        key,
    })
}

/// Every limit, by key, as it stands at `now`.
pub async fn limits<T: Transaction>(tx: &mut T, now: Millis) -> Result<Vec<LimitState>, Error> {
    let rows = tx
        .get_range(
            &keys::limits_all(),
            RangeOptions::limit(LIMITS_MAX).snapshot(),
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (k, v) in rows {
        out.push(state_of(tx, keys::limit_key(&k)?, codec::decode(&v)?, now).await?);
    }
    Ok(out)
}

/// What holds `job` from a lease at `now`, if a limit does (read only).
pub async fn limit_hold<T: Transaction>(
    tx: &mut T,
    job: &Job,
    now: Millis,
) -> Result<Option<LimitHold>, Error> {
    for key in limits::keys_of(&job.spec) {
        if let Some(state) = load_limit(tx, &key, now).await?
            && let Err(hold) = check(&state, now)
        {
            return Ok(Some(hold));
        }
    }
    Ok(None)
}

fn check(state: &LimitState, now: Millis) -> Result<(), LimitHold> {
    limits::throttle(&state.key, state.spec.throttled_until, now)?;
    if let Some(max) = state.spec.max_running {
        limits::concurrency(&state.key, state.running, max)?;
    }
    match state.spec.per_minute {
        Some(pm) if limits::rate_is_counted(pm) => {
            limits::counted_rate(&state.key, state.started_this_second, pm, now)
        }
        Some(pm) => limits::rate(&state.key, state.next_start_us, pm, now).map(drop),
        None => Ok(()),
    }
}

/// What a claim passed: the limits to count its lease under, once the lease is granted.
#[derive(Debug, Default)]
pub struct Admission {
    /// Concurrency limits whose count the lease takes a slot of.
    slots: Vec<String>,
    /// Spaced rates: key and the next start after this lease's.
    next_starts: Vec<(String, u64)>,
    /// Counted rates: key and the second the lease starts in.
    seconds: Vec<(String, u64)>,
}

impl Admission {
    /// The keys whose slots the lease will hold.
    pub fn slots(&self) -> Vec<String> {
        self.slots.clone()
    }
}

/// For a claim of `job` at `now`: checks every limit on its keys (reads only). Returns what
/// to count once the lease is granted ([`admit`]), or the first limit that holds the job.
/// Split in two so that a claim the state machine then refuses counts nothing.
pub async fn check_claim<T: Transaction>(
    tx: &mut T,
    job: &Job,
    now: Millis,
) -> Result<Result<Admission, LimitHold>, Error> {
    let mut admission = Admission::default();
    for key in limits::keys_of(&job.spec) {
        let Some(v) = tx.get(&keys::limit(&key)).await? else {
            continue;
        };
        let spec: LimitSpec = codec::decode(&v)?;
        if let Err(hold) = limits::throttle(&key, spec.throttled_until, now) {
            return Ok(Err(hold));
        }
        if let Some(max) = spec.max_running {
            let count = keys::limit_running(&key);
            let mut running = read_count(tx, &count, false).await?;
            if running.saturating_add(CONFLICT_MARGIN) >= max {
                // Near the max: read again with a conflict, so racing claims cannot both pass.
                running = read_count(tx, &count, true).await?;
            }
            if let Err(hold) = limits::concurrency(&key, running, max) {
                return Ok(Err(hold));
            }
            admission.slots.push(key.clone());
        }
        match spec.per_minute {
            Some(per_minute) if limits::rate_is_counted(per_minute) => {
                let second = limits::rate_bucket(now);
                let count = keys::limit_bucket(&key, second);
                let mut started = read_count(tx, &count, false).await?;
                if started.saturating_add(CONFLICT_MARGIN) >= limits::rate_quota(per_minute) {
                    started = read_count(tx, &count, true).await?;
                }
                if let Err(hold) = limits::counted_rate(&key, started, per_minute, now) {
                    return Ok(Err(hold));
                }
                admission.seconds.push((key, second));
            }
            Some(per_minute) => {
                let next = read_u64(tx, &keys::limit_next(&key)).await?;
                match limits::rate(&key, next, per_minute, now) {
                    Ok(next) => admission.next_starts.push((key, next)),
                    Err(hold) => return Ok(Err(hold)),
                }
            }
            None => {}
        }
    }
    Ok(Ok(admission))
}

/// Counts a granted lease under the limits `admission` passed.
pub fn admit<T: Transaction>(tx: &mut T, admission: &Admission) -> Result<(), Error> {
    for key in &admission.slots {
        tx.atomic_add(&keys::limit_running(key), 1)?;
    }
    for (key, next) in &admission.next_starts {
        tx.set(&keys::limit_next(key), &next.to_le_bytes())?;
    }
    for (key, second) in &admission.seconds {
        tx.atomic_add(&keys::limit_bucket(key, *second), 1)?;
        // The count of two seconds ago is no use to anyone any more.
        tx.clear(&keys::limit_bucket(key, second.saturating_sub(2)))?;
    }
    Ok(())
}

/// Gives back the slots `slots` held (a lease ended).
pub async fn give_back<T: Transaction>(tx: &mut T, slots: &[String]) -> Result<(), Error> {
    for key in slots {
        tx.atomic_add(&keys::limit_running(key), -1)?;
    }
    Ok(())
}

/// A count kept by atomic adds (an i64, little-endian), read with or without a conflict; a
/// count below 0 (it cannot be, as every slot taken is given back once) reads as 0.
async fn read_count<T: Transaction>(tx: &mut T, key: &[u8], conflict: bool) -> Result<u32, Error> {
    let v = if conflict {
        tx.get(key).await?
    } else {
        tx.get_snapshot(key).await?
    };
    let Some(v) = v else { return Ok(0) };
    let bytes: [u8; 8] = v
        .as_slice()
        .try_into()
        .map_err(|_| Error::Codec(format!("a limit count of {} bytes", v.len())))?;
    Ok(i64::from_le_bytes(bytes).clamp(0, i64::from(u32::MAX)) as u32)
}

async fn read_u64<T: Transaction>(tx: &mut T, key: &[u8]) -> Result<u64, Error> {
    match tx.get(key).await? {
        None => Ok(0),
        Some(v) => Ok(u64::from_le_bytes(v.as_slice().try_into().map_err(
            |_| Error::Codec(format!("a limit's next start of {} bytes", v.len())),
        )?)),
    }
}

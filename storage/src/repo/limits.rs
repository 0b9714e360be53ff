//! Concurrency and rate limits in the store: each limit's record, the count of leases holding
//! a slot under it, and the earliest time its next lease may start. The claim transaction
//! reads them (`check_claim`) and counts the lease (`admit`), so two nodes granting leases at once conflict on the
//! counter rather than both passing a full limit; a lease's end gives its slots back
//! (`give_back`) in the transaction that ends it. A batch of claims in one transaction reads
//! its own counts, so it cannot pass a limit either.

use gigafactory_core::job::{Job, Millis};
use gigafactory_core::limits::{self, LimitHold, LimitSpec};

use crate::codec::{self, Record};
use crate::error::Error;
use crate::keys;
use crate::txn::{RangeOptions, Transaction};

/// Limits a store may hold.
pub const LIMITS_MAX: usize = 10_000;

impl Record for LimitSpec {
    const KIND: &'static str = "limit";
    const SCHEMA: u16 = 1;
}

/// A limit with where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitState {
    pub key: String,
    pub spec: LimitSpec,
    /// Leases holding a slot under it now.
    pub running: u32,
    /// The earliest time (µs) its next lease may start; 0 when none started.
    pub next_start_us: u64,
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
) -> Result<Option<LimitState>, Error> {
    let Some(v) = tx.get(&keys::limit(key)).await? else {
        return Ok(None);
    };
    Ok(Some(LimitState {
        key: key.to_owned(),
        spec: codec::decode(&v)?,
        running: read_u32(tx, &keys::limit_running(key)).await?,
        next_start_us: read_u64(tx, &keys::limit_next(key)).await?,
    }))
}

/// Every limit, by key.
pub async fn limits<T: Transaction>(tx: &mut T) -> Result<Vec<LimitState>, Error> {
    let rows = tx
        .get_range(
            &keys::limits_all(),
            RangeOptions::limit(LIMITS_MAX).snapshot(),
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (k, v) in rows {
        let key = keys::limit_key(&k)?;
        out.push(LimitState {
            spec: codec::decode(&v)?,
            running: read_u32(tx, &keys::limit_running(&key)).await?,
            next_start_us: read_u64(tx, &keys::limit_next(&key)).await?,
            key,
        });
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
        if let Some(state) = load_limit(tx, &key).await?
            && let Err(hold) = check(&state, now)
        {
            return Ok(Some(hold));
        }
    }
    Ok(None)
}

fn check(state: &LimitState, now: Millis) -> Result<Option<u64>, LimitHold> {
    if let Some(max) = state.spec.max_running {
        limits::concurrency(&state.key, state.running, max)?;
    }
    state
        .spec
        .per_minute
        .map(|per_minute| limits::rate(&state.key, state.next_start_us, per_minute, now))
        .transpose()
}

/// What a claim passed: the limits to count its lease under, once the lease is granted.
#[derive(Debug, Default)]
pub struct Admission {
    /// Concurrency limits: key and the count with this lease.
    slots: Vec<(String, u32)>,
    /// Rates: key and the next start after this lease's.
    next_starts: Vec<(String, u64)>,
}

impl Admission {
    /// The keys whose slots the lease will hold.
    pub fn slots(&self) -> Vec<String> {
        self.slots.iter().map(|(k, _)| k.clone()).collect()
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
        let Some(state) = load_limit(tx, &key).await? else {
            continue;
        };
        match check(&state, now) {
            Ok(next) => {
                if state.spec.max_running.is_some() {
                    admission
                        .slots
                        .push((state.key.clone(), state.running.saturating_add(1)));
                }
                if let Some(next) = next {
                    admission.next_starts.push((state.key, next));
                }
            }
            Err(hold) => return Ok(Err(hold)),
        }
    }
    Ok(Ok(admission))
}

/// Counts a granted lease under the limits `admission` passed.
pub fn admit<T: Transaction>(tx: &mut T, admission: &Admission) -> Result<(), Error> {
    for (key, running) in &admission.slots {
        tx.set(&keys::limit_running(key), &running.to_le_bytes())?;
    }
    for (key, next) in &admission.next_starts {
        tx.set(&keys::limit_next(key), &next.to_le_bytes())?;
    }
    Ok(())
}

/// Gives back the slots `slots` held (a lease ended).
pub async fn give_back<T: Transaction>(tx: &mut T, slots: &[String]) -> Result<(), Error> {
    for key in slots {
        let running = read_u32(tx, &keys::limit_running(key)).await?;
        tx.set(
            &keys::limit_running(key),
            &running.saturating_sub(1).to_le_bytes(),
        )?;
    }
    Ok(())
}

async fn read_u32<T: Transaction>(tx: &mut T, key: &[u8]) -> Result<u32, Error> {
    match tx.get(key).await? {
        None => Ok(0),
        Some(v) => Ok(u32::from_le_bytes(v.as_slice().try_into().map_err(
            |_| Error::Codec(format!("a limit count of {} bytes", v.len())),
        )?)),
    }
}

async fn read_u64<T: Transaction>(tx: &mut T, key: &[u8]) -> Result<u64, Error> {
    match tx.get(key).await? {
        None => Ok(0),
        Some(v) => Ok(u64::from_le_bytes(v.as_slice().try_into().map_err(
            |_| Error::Codec(format!("a limit's next start of {} bytes", v.len())),
        )?)),
    }
}

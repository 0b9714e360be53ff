//! Schedules in the store: their records, by name, and each one's history of runs under
//! `("schedrun", name, seq)`, the latest `HISTORY_MAX` kept. S1 (`core::schedule`) is kept
//! here: [`schedule_at_cursor`] reads a schedule only while its cursor is where the caller's
//! decision started, with conflict, so of two nodes deciding the same ticks one commits and
//! the other finds the cursor moved.

use gigafactory_core::job::Millis;
use gigafactory_core::schedule::{HISTORY_MAX, Run, SCHEDULES_MAX, Schedule};

use crate::codec::{self, Record};
use crate::error::Error;
use crate::keys;
use crate::txn::{RangeOptions, Transaction};

impl Record for Schedule {
    const KIND: &'static str = "schedule";
    const SCHEMA: u16 = 1;
}

impl Record for Run {
    const KIND: &'static str = "schedule_run";
    const SCHEMA: u16 = 1;
}

pub async fn load_schedule<T: Transaction>(
    tx: &mut T,
    name: &str,
) -> Result<Option<Schedule>, Error> {
    match tx.get(&keys::schedule(name)).await? {
        Some(v) => Ok(Some(codec::decode(&v)?)),
        None => Ok(None),
    }
}

/// The schedule, if its cursor is still `cursor` (S1): `None` when it is gone or another
/// decision moved the cursor meanwhile, so the caller's decision must not be written.
pub async fn schedule_at_cursor<T: Transaction>(
    tx: &mut T,
    name: &str,
    cursor: Millis,
) -> Result<Option<Schedule>, Error> {
    Ok(load_schedule(tx, name)
        .await?
        .filter(|s| s.cursor == cursor))
}

/// Writes a schedule, and wakes every node's schedule actor.
pub fn save_schedule<T: Transaction>(tx: &mut T, s: &Schedule) -> Result<(), Error> {
    tx.set(&keys::schedule(&s.name), &codec::encode(s)?)?;
    tx.atomic_add(&keys::signal("schedules"), 1)
}

/// Removes a schedule and its history.
pub fn delete_schedule<T: Transaction>(tx: &mut T, name: &str) -> Result<(), Error> {
    tx.clear(&keys::schedule(name))?;
    tx.clear_range(&keys::schedule_runs(name))?;
    tx.atomic_add(&keys::signal("schedules"), 1)
}

/// Every schedule, by name (at most `SCHEDULES_MAX`), read without conflict.
pub async fn schedules<T: Transaction>(tx: &mut T) -> Result<Vec<Schedule>, Error> {
    let rows = tx
        .get_range(
            &keys::schedules_all(),
            RangeOptions::limit(SCHEDULES_MAX).snapshot(),
        )
        .await?;
    rows.iter().map(|(_, v)| codec::decode(v)).collect()
}

/// Appends `run` to `s`'s history under the next sequence number, forgetting the run that
/// falls out of the latest `HISTORY_MAX`. The caller saves `s` (its `runs` moved on).
pub fn append_run<T: Transaction>(tx: &mut T, s: &mut Schedule, mut run: Run) -> Result<(), Error> {
    run.seq = s.runs;
    tx.set(&keys::schedule_run(&s.name, run.seq), &codec::encode(&run)?)?;
    if let Some(old) = run.seq.checked_sub(HISTORY_MAX) {
        tx.clear(&keys::schedule_run(&s.name, old))?;
    }
    s.runs += 1;
    Ok(())
}

/// The latest `limit` runs of a schedule, newest first.
pub async fn schedule_runs<T: Transaction>(
    tx: &mut T,
    name: &str,
    limit: usize,
) -> Result<Vec<Run>, Error> {
    let rows = tx
        .get_range(
            &keys::schedule_runs(name),
            RangeOptions::limit(limit).snapshot().reverse(),
        )
        .await?;
    rows.iter().map(|(_, v)| codec::decode(v)).collect()
}

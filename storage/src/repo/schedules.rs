//! Schedules in the store: their records, by name, each one's history of runs under
//! `("schedrun", name, seq)`, the latest `HISTORY_MAX` kept, and the run each manual trigger
//! key made under `("schedtrig", name, key)`, kept while the schedule is. S1
//! (`core::schedule`) is kept here: [`schedule_as_decided`] reads a schedule, with conflict,
//! only while it is exactly the record the caller decided from, so of two nodes deciding the
//! same ticks one commits and the other finds the cursor moved, and a decision made before an
//! operator's edit (which may keep the cursor) is never written over it.

use gigafactory_core::job::Millis;
use gigafactory_core::schedule::{HISTORY_MAX, Run, SCHEDULES_MAX, Schedule};

use crate::codec::{self, Record};
use crate::error::Error;
use crate::keys;
use crate::txn::{RangeOptions, Transaction, WatchTarget};

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

/// The schedule, if it is still exactly `decided` (S1): `None` when it is gone, or another
/// decision moved its cursor, or an edit changed what it submits or how, so the caller's
/// decision must not be written. Read with conflict: a change committed before the caller's
/// commit makes it retry and find the change.
pub async fn schedule_as_decided<T: Transaction>(
    tx: &mut T,
    decided: &Schedule,
) -> Result<Option<Schedule>, Error> {
    Ok(load_schedule(tx, &decided.name)
        .await?
        .filter(|s| s == decided))
}

/// The run a manual trigger of `name` with idempotency key `key` made, if one did (read with
/// conflict: of two triggers with one key, one records its run and the other finds it).
pub async fn trigger_run<T: Transaction>(
    tx: &mut T,
    name: &str,
    key: &str,
) -> Result<Option<Run>, Error> {
    match tx.get(&keys::schedule_trigger(name, key)).await? {
        Some(v) => Ok(Some(codec::decode(&v)?)),
        None => Ok(None),
    }
}

/// Records `run` as the one a trigger with idempotency key `key` made.
pub fn save_trigger_run<T: Transaction>(
    tx: &mut T,
    name: &str,
    key: &str,
    run: &Run,
) -> Result<(), Error> {
    tx.set(&keys::schedule_trigger(name, key), &codec::encode(run)?)
}

/// Writes a schedule. An operator's change also calls [`schedules_changed`]; a run does not,
/// so firing wakes no actor.
pub fn save_schedule<T: Transaction>(tx: &mut T, s: &Schedule) -> Result<(), Error> {
    tx.set(&keys::schedule(&s.name), &codec::encode(s)?)
}

/// Wakes every node's schedule actor once the transaction commits (bumps the signal its
/// watch follows).
pub fn schedules_changed<T: Transaction>(tx: &mut T) -> Result<(), Error> {
    tx.atomic_add(&keys::signal("schedules"), 1)
}

/// What wakes the schedule actors: every change of a schedule bumps it.
pub fn schedules_signal() -> WatchTarget {
    WatchTarget::Key(keys::signal("schedules"))
}

/// Removes a schedule, its history and its triggers' keys.
pub fn delete_schedule<T: Transaction>(tx: &mut T, name: &str) -> Result<(), Error> {
    tx.clear(&keys::schedule(name))?;
    tx.clear_range(&keys::schedule_runs(name))?;
    tx.clear_range(&keys::schedule_triggers(name))?;
    schedules_changed(tx)
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

/// Appends `run` to `s`'s history under the next sequence number (set in `run`), forgetting
/// the run that falls out of the latest `HISTORY_MAX`. The caller saves `s` (its `runs` moved
/// on).
pub fn append_run<T: Transaction>(
    tx: &mut T,
    s: &mut Schedule,
    run: &mut Run,
) -> Result<(), Error> {
    run.seq = s.runs;
    tx.set(
        &keys::schedule_run(&s.name, run.seq),
        &codec::encode(&*run)?,
    )?;
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

#[cfg(test)]
mod tests {
    use gigafactory_core::schedule::{Missed, Overlap, ScheduleState, Target};

    use super::*;
    use crate::txn::Store;
    use crate::{EmbeddedStore, Error};

    fn schedule(cursor: Millis) -> Schedule {
        Schedule {
            name: "nightly".into(),
            cron: "0 3 * * *".into(),
            time_zone: "UTC".into(),
            overlap: Overlap::Skip,
            missed: Missed::Skip,
            catchup_window_s: 60,
            target: Target::Job("{}".into()),
            state: ScheduleState::Active,
            cursor,
            previous_jobs: Vec::new(),
            runs: 0,
            created_at: 0,
            updated_at: 0,
            updated_by: "admin:a".into(),
        }
    }

    /// A store holding `s`, and the directory it lives in.
    async fn store_with(s: &Schedule) -> (tempfile::TempDir, EmbeddedStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let mut tx = store.begin().await.unwrap();
        save_schedule(&mut tx, s).unwrap();
        tx.commit().await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn of_two_decisions_from_one_cursor_only_the_first_commits_s1() {
        let (_dir, store) = store_with(&schedule(10)).await;

        // Two nodes decide the ticks after cursor 10 at once, from the same record.
        let decided = schedule(10);
        let mut a = store.begin().await.unwrap();
        let mut b = store.begin().await.unwrap();
        let mut sa = schedule_as_decided(&mut a, &decided)
            .await
            .unwrap()
            .unwrap();
        let mut sb = schedule_as_decided(&mut b, &decided)
            .await
            .unwrap()
            .unwrap();
        sa.cursor = 20;
        sb.cursor = 20;
        save_schedule(&mut a, &sa).unwrap();
        save_schedule(&mut b, &sb).unwrap();
        a.commit().await.unwrap();
        assert!(matches!(b.commit().await, Err(Error::Conflict)));
        // Retried, the second finds the cursor moved and writes nothing.
        let mut retry = store.begin().await.unwrap();
        assert_eq!(
            schedule_as_decided(&mut retry, &decided).await.unwrap(),
            None
        );
        assert_eq!(
            schedule_at_cursor(&mut retry, "nightly", 10).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn a_decision_does_not_commit_over_an_edit_that_kept_the_cursor_s1() {
        let (_dir, store) = store_with(&schedule(10)).await;

        // A firing decides from the record, and its transaction reads it back...
        let decided = schedule(10);
        let mut firing = store.begin().await.unwrap();
        let mut s = schedule_as_decided(&mut firing, &decided)
            .await
            .unwrap()
            .unwrap();
        // ...while an operator's edit of the template (same cron: same cursor) commits.
        let mut edit = store.begin().await.unwrap();
        let mut edited = load_schedule(&mut edit, "nightly").await.unwrap().unwrap();
        edited.target = Target::Job(r#"{"title":"new"}"#.into());
        edited.updated_at = 5;
        save_schedule(&mut edit, &edited).unwrap();
        edit.commit().await.unwrap();

        s.cursor = 20;
        save_schedule(&mut firing, &s).unwrap();
        assert!(matches!(firing.commit().await, Err(Error::Conflict)));
        // Retried, the firing finds the record is not the one it decided from, though the
        // cursor is where the decision began: it writes nothing and decides again.
        let mut retry = store.begin().await.unwrap();
        assert_eq!(
            schedule_as_decided(&mut retry, &decided).await.unwrap(),
            None
        );
        assert_eq!(
            schedule_as_decided(&mut retry, &edited).await.unwrap(),
            Some(edited.clone())
        );
    }

    #[tokio::test]
    async fn a_trigger_key_names_its_run_until_the_schedule_is_removed() {
        use gigafactory_core::schedule::{Outcome, Trigger};
        let (_dir, store) = store_with(&schedule(0)).await;
        let run = Run {
            seq: 7,
            tick: 1,
            at: 1,
            node: uuid::Uuid::nil(),
            trigger: Trigger::Manual("admin:a".into()),
            outcome: Outcome::Skipped { reason: "r".into() },
        };
        let mut tx = store.begin().await.unwrap();
        save_trigger_run(&mut tx, "nightly", "k1", &run).unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            trigger_run(&mut tx, "nightly", "k1").await.unwrap(),
            Some(run)
        );
        assert_eq!(trigger_run(&mut tx, "nightly", "k2").await.unwrap(), None);
        delete_schedule(&mut tx, "nightly").unwrap();
        assert_eq!(trigger_run(&mut tx, "nightly", "k1").await.unwrap(), None);
    }

    #[tokio::test]
    async fn history_keeps_the_latest_runs_newest_first() {
        use gigafactory_core::schedule::{Outcome, Trigger};
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let mut s = schedule(0);
        for tick in 0..(HISTORY_MAX + 3) {
            let mut tx = store.begin().await.unwrap();
            let mut run = Run {
                seq: 0,
                tick,
                at: tick,
                node: uuid::Uuid::nil(),
                trigger: Trigger::Tick,
                outcome: Outcome::Skipped { reason: "r".into() },
            };
            append_run(&mut tx, &mut s, &mut run).unwrap();
            assert_eq!(run.seq, tick);
            save_schedule(&mut tx, &s).unwrap();
            tx.commit().await.unwrap();
        }
        let mut tx = store.begin().await.unwrap();
        let runs = schedule_runs(&mut tx, "nightly", 1_000).await.unwrap();
        assert_eq!(runs.len() as u64, HISTORY_MAX);
        assert_eq!(runs[0].tick, HISTORY_MAX + 2);
        assert_eq!(runs.last().unwrap().seq, 3);
        delete_schedule(&mut tx, "nightly").unwrap();
        assert!(
            schedule_runs(&mut tx, "nightly", 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

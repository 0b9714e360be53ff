//! Budgets in the store: their records (and an index by product for placement's check),
//! their spend per period, per UTC day and per job, and the levels each period passed.
//! Spend is added with atomic adds in the transaction that accepted it, so it is exact across
//! nodes; each level is announced once per period through a marker key. Claims and charges
//! read the definitions through a [`BudgetBook`], which keeps them between transactions.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use gigafactory_core::budget::{self, BudgetRecord, Crossing, Hold, Level, Micros, day_start};
use gigafactory_core::job::{Job, JobId, Millis};

use crate::codec::{self, Record};
use crate::error::Error;
use crate::keys;
use crate::txn::{RangeOptions, Transaction, WatchTarget};

/// Budgets a store may hold.
pub const BUDGETS_MAX: usize = 10_000;
/// Products whose budgets a [`BudgetBook`] keeps at once; past it, it starts over.
pub const BOOK_PRODUCTS_MAX: usize = 4_096;
/// Jobs a budget's top list reads in one period.
pub const TOP_JOBS_READ_MAX: usize = 100_000;

impl Record for BudgetRecord {
    const KIND: &'static str = "budget";
    const SCHEMA: u16 = 1;
}

pub async fn load_budget<T: Transaction>(
    tx: &mut T,
    name: &str,
) -> Result<Option<BudgetRecord>, Error> {
    match tx.get(&keys::budget(name)).await? {
        Some(v) => Ok(Some(codec::decode(&v)?)),
        None => Ok(None),
    }
}

/// Writes a budget (and its product index entry; `old` is what it was, if anything, so a
/// budget moved to another product leaves the old product's index). Other nodes'
/// schedulers hear of it through the `budgets` signal, and every node's [`BudgetBook`]
/// through the version it bumps (B3). Not in a transaction that reads budgets through a book.
pub fn save_budget<T: Transaction>(
    tx: &mut T,
    old: Option<&BudgetRecord>,
    record: &BudgetRecord,
) -> Result<(), Error> {
    let name = &record.spec.name;
    if let Some(o) = old
        && o.spec.product != record.spec.product
    {
        tx.clear(&keys::budget_of(&o.spec.product, name))?;
    }
    tx.set(&keys::budget(name), &codec::encode(record)?)?;
    tx.set(&keys::budget_of(&record.spec.product, name), &[])?;
    tx.atomic_add(&keys::budgets_version(), 1)?;
    tx.atomic_add(&keys::signal("budgets"), 1)
}

/// Removes a budget with everything kept for it (bumping the version, B3). Not in a
/// transaction that reads budgets through a book.
pub fn delete_budget<T: Transaction>(tx: &mut T, record: &BudgetRecord) -> Result<(), Error> {
    let name = &record.spec.name;
    tx.clear(&keys::budget(name))?;
    tx.clear(&keys::budget_of(&record.spec.product, name))?;
    for range in keys::budget_spend_all(name) {
        tx.clear_range(&range)?;
    }
    tx.atomic_add(&keys::budgets_version(), 1)?;
    tx.atomic_add(&keys::signal("budgets"), 1)
}

/// Every budget, by name.
pub async fn budgets<T: Transaction>(tx: &mut T) -> Result<Vec<BudgetRecord>, Error> {
    let rows = tx
        .get_range(
            &keys::budgets_all(),
            RangeOptions::limit(BUDGETS_MAX).snapshot(),
        )
        .await?;
    rows.iter().map(|(_, v)| codec::decode(v)).collect()
}

/// The budgets of `product`, read with conflict: a claim that checks them conflicts with a
/// concurrent pause or change, so once a pause is acknowledged no claim leases past it.
pub async fn budgets_of<T: Transaction>(
    tx: &mut T,
    product: &str,
) -> Result<Vec<BudgetRecord>, Error> {
    let rows = tx
        .get_range(&keys::budgets_of(product), RangeOptions::limit(BUDGETS_MAX))
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (k, _) in rows {
        let name = keys::budget_of_name(&k)?;
        if let Some(b) = load_budget(tx, &name).await? {
            out.push(b);
        }
    }
    Ok(out)
}

/// The definitions of budgets (never their spend), kept in memory between transactions so
/// that a claim or a charge does not read and decode its product's budget records each time.
/// One per node and store.
///
/// B3 with a book: a transaction sees the budgets as they were at its read version, as
/// exactly as if it read the records themselves with conflict. Every change of a budget record
/// or of the product index (`save_budget`, `delete_budget`) adds one to `budgets_version` in
/// its own transaction, and nothing else writes that key. A transaction reads the version with
/// conflict and uses the records kept under the value it read: the version only grows, so
/// records read at two points where it had the same value are the same records; and a change
/// that commits after the transaction read the version conflicts with it, so it retries and
/// reads the new version. A stale book is therefore never used, only refilled. A transaction
/// that changes budgets must not read them through a book (it would read the version its own
/// uncommitted write made): the functions that change budgets take none.
///
/// Why a version of its own and not the `budgets` signal: spend that exhausts a budget bumps
/// the signal too, in a transaction that may read budgets again afterwards (a batch of expiries
/// charging several jobs) and then abort, leaving records kept under a value that a later
/// change of a budget would reach.
#[derive(Default)]
pub struct BudgetBook {
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    /// The version the records were read at.
    version: u64,
    /// Each product's budgets at that version (empty: the product has none).
    by_product: HashMap<String, Arc<[BudgetRecord]>>,
}

impl BudgetBook {
    fn get(&self, version: u64, product: &str) -> Option<Arc<[BudgetRecord]>> {
        let kept = self.kept.lock().expect("budget book poisoned");
        (kept.version == version)
            .then(|| kept.by_product.get(product).cloned())
            .flatten()
    }

    fn keep(&self, version: u64, product: &str, records: Arc<[BudgetRecord]>) {
        let mut kept = self.kept.lock().expect("budget book poisoned");
        // A transaction that read an older version must not put its records back.
        if version < kept.version {
            return;
        }
        if version > kept.version || kept.by_product.len() >= BOOK_PRODUCTS_MAX {
            kept.by_product.clear();
            kept.version = version;
        }
        kept.by_product.insert(product.to_owned(), records);
    }
}

/// The budgets of `product` at the transaction's read version, from `book` when it holds
/// them (B3), read with conflict otherwise.
async fn budgets_in_book<T: Transaction>(
    tx: &mut T,
    book: &BudgetBook,
    product: &str,
) -> Result<Arc<[BudgetRecord]>, Error> {
    let version = counter(tx.get(&keys::budgets_version()).await?);
    if let Some(records) = book.get(version, product) {
        return Ok(records);
    }
    let records: Arc<[BudgetRecord]> = budgets_of(tx, product).await?.into();
    book.keep(version, product, records.clone());
    Ok(records)
}

/// What `budget` spent in the period holding `now`. A snapshot read: spend only grows, and
/// readers that act on it (placement, alerts) tolerate a report committed concurrently.
pub async fn spent<T: Transaction>(
    tx: &mut T,
    record: &BudgetRecord,
    now: Millis,
) -> Result<Micros, Error> {
    let key = keys::spend(&record.spec.name, record.spec.period.start(now));
    Ok(counter(tx.get_snapshot(&key).await?))
}

fn counter(v: Option<Vec<u8>>) -> Micros {
    v.map_or(0, |v| {
        i64::from_le_bytes(v[..8].try_into().unwrap_or([0; 8])).max(0) as Micros
    })
}

/// Why the budgets covering `job` hold it at `now`, if one does.
pub async fn hold_of<T: Transaction>(
    tx: &mut T,
    book: &BudgetBook,
    job: &Job,
    now: Millis,
) -> Result<Option<Hold>, Error> {
    for record in budgets_in_book(tx, book, &job.spec.product).await?.iter() {
        if !record.spec.covers(&job.spec.product, &job.spec.labels) {
            continue;
        }
        let spent = spent(tx, record, now).await?;
        if let Some(hold) = budget::hold(record, spent, now) {
            return Ok(Some(hold));
        }
    }
    Ok(None)
}

/// Adds `amount` that `job` spent at `now` to every budget covering it (this period, today,
/// and the job's share), and returns the levels this took a budget past for the first time
/// in its period.
pub async fn charge<T: Transaction>(
    tx: &mut T,
    book: &BudgetBook,
    job: &Job,
    amount: Micros,
    now: Millis,
) -> Result<Vec<Crossing>, Error> {
    let mut crossed = Vec::new();
    if amount == 0 {
        return Ok(crossed);
    }
    let delta = i64::try_from(amount).unwrap_or(i64::MAX);
    // A job's cost never falls, and a share is written only in the transaction that saves
    // the job with the cost that grew it: a job whose whole cost is this charge has no share
    // under any budget yet.
    let first_spend = job.cost.total() == amount;
    for record in budgets_in_book(tx, book, &job.spec.product).await?.iter() {
        let spec = &record.spec;
        if !spec.covers(&job.spec.product, &job.spec.labels) {
            continue;
        }
        let start = spec.period.start(now);
        let before = spent(tx, record, now).await?;
        tx.atomic_add(&keys::spend(&spec.name, start), delta)?;
        tx.atomic_add(&keys::spend_day(&spec.name, day_start(now)), delta)?;
        let share = keys::spend_job(&spec.name, start, job.id.0);
        if first_spend {
            // No charge of this job wrote a share before: set, so the store's committer need
            // not look up a key that is not there (the common case: one report at the end).
            tx.set(&share, &delta.to_le_bytes())?;
        } else {
            tx.atomic_add(&share, delta)?;
        }
        let after = before.saturating_add(amount);
        for level in budget::crossings(spec, before, after) {
            // Read with conflict: of two reports that both think they crossed, one retries
            // and finds the marker, so the level is announced once.
            let marker = keys::budget_level(&spec.name, start, level.name());
            if tx.get(&marker).await?.is_some() {
                continue;
            }
            tx.set(&marker, &[])?;
            if level == Level::Exhausted {
                tx.atomic_add(&keys::signal("budgets"), 1)?;
            }
            crossed.push(Crossing {
                budget: spec.name.clone(),
                product: spec.product.clone(),
                label: spec.label.clone(),
                level,
                policy: spec.policy,
                spent_micros: after,
                limit_micros: spec.limit_micros,
                until: spec.period.end(now),
            });
        }
    }
    Ok(crossed)
}

/// A budget's spend per UTC day from `from` (a day start) on.
pub async fn daily_spend<T: Transaction>(
    tx: &mut T,
    name: &str,
    from: Millis,
) -> Result<BTreeMap<Millis, Micros>, Error> {
    let rows = tx
        .get_range(
            &keys::spend_days_from(name, from),
            RangeOptions::limit(400).snapshot(),
        )
        .await?;
    rows.into_iter()
        .map(|(k, v)| Ok((keys::spend_day_start(&k)?, counter(Some(v)))))
        .collect()
}

/// The jobs that spent most against a budget in the period starting `period_start`, most
/// first, at most `limit`.
pub async fn top_jobs<T: Transaction>(
    tx: &mut T,
    name: &str,
    period_start: Millis,
    limit: usize,
) -> Result<Vec<(JobId, Micros)>, Error> {
    let rows = tx
        .get_range(
            &keys::spend_jobs(name, period_start),
            RangeOptions::limit(TOP_JOBS_READ_MAX).snapshot(),
        )
        .await?;
    let mut jobs = rows
        .into_iter()
        .map(|(k, v)| Ok((JobId(keys::spend_job_id(&k)?), counter(Some(v)))))
        .collect::<Result<Vec<_>, Error>>()?;
    jobs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    jobs.truncate(limit);
    Ok(jobs)
}

/// What a scheduler watches to learn that budgets changed (set, paused, resumed, reached).
pub fn budgets_signal() -> WatchTarget {
    WatchTarget::Key(keys::signal("budgets"))
}

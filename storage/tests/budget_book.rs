//! Budget definitions kept between transactions (`repo::BudgetBook`, B3): a node that kept a
//! product's budgets sees a change another node made at once, and a claim that checked them
//! conflicts with a change committed after its read, exactly as when it read the records.

use gigafactory_core::budget::{BudgetRecord, BudgetSpec, Pause, Period, Policy};
use gigafactory_core::event::Author;
use gigafactory_core::job::{Job, JobId, new_job};
use gigafactory_core::manifest::{JobSpec, Payload};
use gigafactory_storage::repo::{self, BudgetBook};
use gigafactory_storage::{EmbeddedStore, Error, Store, Transaction, transact};
use uuid::Uuid;

const NOW: u64 = 1_800_000_000_000;

fn job(product: &str) -> Job {
    let spec = JobSpec {
        max_attempts: 1,
        ..JobSpec::new("j", "job", product, Payload::Command("true".into()))
    };
    new_job(JobId(Uuid::now_v7()), spec, Vec::new(), NOW)
}

fn budget(product: &str) -> BudgetRecord {
    BudgetRecord {
        spec: BudgetSpec {
            name: "ops-daily".into(),
            product: product.into(),
            label: None,
            period: Period::Day,
            limit_micros: 50_000_000,
            alert_percent: 80,
            policy: Policy::Finish,
        },
        paused: None,
        created_at: NOW,
        updated_at: NOW,
    }
}

fn paused(record: &BudgetRecord) -> BudgetRecord {
    BudgetRecord {
        paused: Some(Pause {
            by: Author::Admin("ops".into()),
            reason: "over forecast".into(),
            at: NOW,
        }),
        ..record.clone()
    }
}

async fn held(store: &EmbeddedStore, book: &BudgetBook, job: &Job) -> Option<String> {
    transact!(store, |tx| repo::hold_of(tx, book, job, NOW).await)
        .unwrap()
        .map(|h| h.message)
}

#[tokio::test]
async fn a_node_that_kept_the_budgets_sees_a_pause_another_node_made() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let (here, there) = (BudgetBook::default(), BudgetBook::default());
    let job = job("ops");
    assert_eq!(held(&store, &here, &job).await, None, "no budget yet");
    let record = budget("ops");
    transact!(store, |tx| repo::save_budget(tx, None, &record)).unwrap();
    assert_eq!(
        held(&store, &here, &job).await,
        None,
        "a new budget holds nothing"
    );
    let pause = paused(&record);
    transact!(store, |tx| repo::save_budget(tx, Some(&record), &pause)).unwrap();
    let expected = Some("budget ops-daily paused by admin:ops: over forecast".to_string());
    assert_eq!(held(&store, &here, &job).await, expected, "the kept book");
    assert_eq!(held(&store, &there, &job).await, expected, "a fresh book");
    transact!(store, |tx| repo::delete_budget(tx, &pause)).unwrap();
    assert_eq!(held(&store, &here, &job).await, None, "deleted");
}

#[tokio::test]
async fn a_claims_check_from_the_book_conflicts_with_a_pause_committed_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let book = BudgetBook::default();
    let job = job("ops");
    let record = budget("ops");
    transact!(store, |tx| repo::save_budget(tx, None, &record)).unwrap();
    // The book holds the budgets now: the check below reads no budget record.
    assert_eq!(held(&store, &book, &job).await, None);
    let mut claim = store.begin().await.unwrap();
    let hold = repo::hold_of(&mut claim, &book, &job, NOW).await.unwrap();
    assert!(hold.is_none());
    let pause = paused(&record);
    transact!(store, |tx| repo::save_budget(tx, Some(&record), &pause)).unwrap();
    claim.set(b"claimed", b"1").unwrap();
    assert_eq!(
        claim.commit().await,
        Err(Error::Conflict),
        "no claim leases past an acknowledged pause"
    );
}

/// What `job`'s report of `micros` charges: its cost grows by it, and so do the budgets.
async fn report(store: &EmbeddedStore, book: &BudgetBook, job: &mut Job, micros: u64) {
    job.cost.add("m", 0, 0, micros);
    let charged = job.clone();
    transact!(store, |tx| repo::charge(tx, book, &charged, micros, NOW)
        .await)
    .unwrap();
}

#[tokio::test]
async fn a_jobs_share_of_a_budget_sums_its_first_charge_and_every_later_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let book = BudgetBook::default();
    let record = budget("ops");
    transact!(store, |tx| repo::save_budget(tx, None, &record)).unwrap();
    let (mut first, mut second) = (job("ops"), job("ops"));
    // The first charge of a job writes its share whole; the later ones add to it.
    report(&store, &book, &mut first, 3_000_000).await;
    report(&store, &book, &mut second, 1_000_000).await;
    report(&store, &book, &mut first, 2_000_000).await;
    report(&store, &book, &mut first, 500_000).await;
    let start = Period::Day.start(NOW);
    let (top, spent) = transact!(store, |tx| {
        let top = repo::top_jobs(tx, "ops-daily", start, 10).await?;
        let spent = repo::spent(tx, &record, NOW).await?;
        Ok::<_, Error>((top, spent))
    })
    .unwrap();
    assert_eq!(top, vec![(first.id, 5_500_000), (second.id, 1_000_000)]);
    assert_eq!(spent, 6_500_000);
}

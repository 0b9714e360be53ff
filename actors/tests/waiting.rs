//! The listing of the jobs waiting for input is read from the index of open questions, not
//! from a scan of every job: a job that waits behind more jobs than a filtered page examines
//! (10,000) is still listed.

mod common;

use std::sync::Arc;

use gigafactory_actors::{Config, ManualClock};
use gigafactory_core::event::Author;
use gigafactory_core::job::{JobId, new_job};
use gigafactory_core::manifest::{JobSpec, Payload};
use gigafactory_core::query::JobFilter;
use gigafactory_core::wire::AskBody;
use gigafactory_storage::repo::{self, RepoError};
use gigafactory_storage::{EmbeddedStore, transact};
use uuid::Uuid;

const NOW: u64 = 1_000_000;
/// More jobs than a filtered listing page examines.
const JOBS: u128 = 10_500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waiting_behind_more_jobs_than_a_page_scans_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let last = JobId(Uuid::from_u128(JOBS));
    {
        // Written straight to the store: submitting 10,500 jobs one by one takes too long.
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let spec = JobSpec::new("j", "j", "p", Payload::Command("true".into()));
        let author = Author::Operator("ana".into());
        let ids: Vec<u128> = (1..=JOBS).collect();
        for chunk in ids.chunks(500) {
            transact!(store, |tx| {
                for n in chunk {
                    // The last one created goes first, so the factory below claims it.
                    let priority = if *n == JOBS { 900 } else { 10 };
                    let spec = JobSpec {
                        priority,
                        ..spec.clone()
                    };
                    let job = new_job(JobId(Uuid::from_u128(*n)), spec, vec![], NOW);
                    repo::submit(tx, &job, &author).await?;
                }
                Ok::<_, RepoError>(())
            })
            .unwrap();
        }
    }
    let clock = Arc::new(ManualClock::at(NOW));
    let coord = common::restart(dir.path(), Config::default(), clock).await;
    let f = common::enroll(&coord, 1, 0.0).await;
    let claimed = coord.claim(f.factory_id, 1, 1_000).await.unwrap();
    assert_eq!(claimed[0].job_id, last);
    let ask = AskBody {
        text: "Merge?".into(),
        choices: vec![],
        default: None,
        timeout_ms: Some(600_000),
    };
    let epoch = claimed[0].epoch;
    coord
        .ask(last, f.factory_id, epoch, "q1".into(), ask)
        .await
        .unwrap();

    let waiting = JobFilter {
        waiting_for_input: Some(true),
        ..JobFilter::default()
    };
    let (jobs, next) = coord.list_jobs(&waiting, None, 50).await.unwrap();
    let ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
    assert_eq!((ids, next), (vec![last], None));
    // The other filters still narrow it.
    let elsewhere = JobFilter {
        product: Some("other".into()),
        ..waiting
    };
    assert!(
        coord
            .list_jobs(&elsewhere, None, 50)
            .await
            .unwrap()
            .0
            .is_empty()
    );
}

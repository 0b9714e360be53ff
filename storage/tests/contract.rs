//! What the store keeps for the API's contract on a real (embedded) store: a factory write's
//! remembered answer is found only by the writer that got it, under the lease it wrote under;
//! an idempotency key reused with another spec is a conflict that writes nothing, and the same
//! spec is a repeat; a page of a job's output never passes its byte bound, however many lines
//! were asked, and the pages together give every chunk once, in order.

use gigafactory_core::event::Author;
use gigafactory_core::job::{FactoryId, JobId, new_job};
use gigafactory_core::manifest::{JobSpec, Payload};
use gigafactory_core::wire::{LeaseAnswer, LogChunk, LogStream};
use gigafactory_storage::repo::{self, LOG_PAGE_MAX_BYTES, LogAppend, Submitted, Writer};
use gigafactory_storage::{EmbeddedStore, transact};
use uuid::Uuid;

const NOW: u64 = 1_800_000_000_000;

fn spec(idempotency_key: Option<&str>) -> JobSpec {
    JobSpec {
        idempotency_key: idempotency_key.map(str::to_owned),
        ..JobSpec::new("j", "job", "p", Payload::Command("true".into()))
    }
}

async fn submit(store: &EmbeddedStore, spec: JobSpec) -> Submitted {
    let job = new_job(JobId(Uuid::now_v7()), spec, Vec::new(), NOW);
    transact!(store, |tx| repo::submit(tx, &job, &Author::Scheduler).await).unwrap()
}

#[tokio::test]
async fn a_remembered_answer_is_found_only_by_its_writer_under_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let job = JobId(Uuid::now_v7());
    let a = Writer {
        factory: FactoryId(Uuid::from_u128(0xA)),
        epoch: 3,
    };
    let answer = LeaseAnswer {
        job_id: job,
        epoch: 3,
        state: "succeeded".into(),
        expires_at: None,
        preempt_deadline: None,
    };
    transact!(store, |tx| repo::remember_answer(tx, job, a, "r1", &answer)).unwrap();

    let b = Writer {
        factory: FactoryId(Uuid::from_u128(0xB)),
        ..a
    };
    let a_later = Writer { epoch: 4, ..a };
    for (who, expected) in [(a, Some(&answer)), (b, None), (a_later, None)] {
        let found = transact!(store, |tx| repo::remembered_answer(tx, job, who, "r1")
            .await)
        .unwrap();
        assert_eq!(found.as_ref(), expected, "{who:?}");
    }
}

#[tokio::test]
async fn a_key_reused_with_another_spec_conflicts_and_the_same_spec_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let Submitted::Made(first) = submit(&store, spec(Some("k"))).await else {
        panic!("the first submission makes the job");
    };
    match submit(&store, spec(Some("k"))).await {
        Submitted::Repeat(id) => assert_eq!(id, first.job.id),
        other => panic!("the same spec again is a repeat: {other:?}"),
    }
    let other = JobSpec {
        title: "another job".into(),
        ..spec(Some("k"))
    };
    match submit(&store, other).await {
        Submitted::Conflict { key, existing } => {
            assert_eq!((key.as_str(), existing), ("k", first.job.id));
        }
        s => panic!("another spec under a taken key conflicts: {s:?}"),
    }
    let jobs = transact!(store, |tx| repo::jobs_page(tx, None, 10).await).unwrap();
    assert_eq!(
        jobs.len(),
        1,
        "neither the repeat nor the conflict wrote a job"
    );
}

#[tokio::test]
async fn a_log_page_never_passes_its_byte_bound_and_the_pages_give_every_chunk_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let Submitted::Made(t) = submit(&store, spec(None)).await else {
        panic!("made");
    };
    let job = t.job;
    // Short lines first (a page's first read learns little from them), then 64 KiB chunks:
    // 4 MiB in all, far more than a page holds.
    let mut sizes: Vec<usize> = vec![10; 100];
    sizes.extend(std::iter::repeat_n(64 * 1024, 64));
    for (seq, size) in sizes.iter().enumerate() {
        let chunk = LogChunk {
            seq: seq as u64,
            stream: LogStream::Stdout,
            data: "x".repeat(*size),
        };
        let kept = transact!(store, |tx| repo::append_log(tx, &job, &chunk, 0).await).unwrap();
        assert_eq!(kept, LogAppend::Kept);
    }

    let mut after = None;
    let mut read = Vec::new();
    let mut pages = 0;
    loop {
        let page = transact!(store, |tx| repo::logs_after(
            tx,
            job.id,
            after,
            10_000,
            usize::MAX
        )
        .await)
        .unwrap();
        let bytes: usize = page.lines.iter().map(|l| l.data.len() + 1).sum();
        assert!(bytes <= LOG_PAGE_MAX_BYTES, "a page of {bytes} bytes");
        pages += 1;
        let Some(last) = page.lines.last() else {
            assert!(!page.more);
            break;
        };
        after = Some((last.attempt, last.seq));
        read.extend(page.lines.iter().map(|l| (l.seq, l.data.len())));
        if !page.more {
            break;
        }
    }
    let expected: Vec<(u64, usize)> = sizes
        .iter()
        .enumerate()
        .map(|(seq, size)| (seq as u64, *size))
        .collect();
    assert_eq!(read, expected, "every chunk once, in order");
    assert!(pages >= 4, "{pages} pages for 4 MiB");
}

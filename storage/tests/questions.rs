//! The question-timeout index (`ask_due`) as `repo::transition` keeps it in a real (embedded)
//! store: it holds exactly the open questions, so an entry appears when a job asks, moves when
//! it asks again with another timeout, and goes away when the question is answered, times out,
//! or is closed with the lease that asked it. The reaper and the "waiting for input" listing
//! read only this index.

use gigafactory_core::event::Author;
use gigafactory_core::job::question::Ask;
use gigafactory_core::job::{Command, FactoryId, JobId, Millis, new_job};
use gigafactory_core::manifest::{JobSpec, Payload};
use gigafactory_storage::repo::{self, QuestionEntry, RepoError};
use gigafactory_storage::{EmbeddedStore, transact};
use uuid::Uuid;

mod common;

const FACTORY: FactoryId = FactoryId(Uuid::from_u128(0xF));

async fn apply(store: &EmbeddedStore, id: JobId, cmd: Command, now: Millis) {
    let author = match cmd {
        Command::Answer { .. } => Author::Operator("ana".into()),
        Command::QuestionTimeout => Author::Reaper,
        _ => Author::Factory(FACTORY),
    };
    let shown = format!("{cmd:?}");
    common::transition(store, id, cmd, &author, now)
        .await
        .unwrap_or_else(|e| panic!("{shown} refused: {e}"));
}

async fn index(store: &EmbeddedStore) -> Vec<QuestionEntry> {
    transact!(store, |tx| repo::open_questions(tx, None, Millis::MAX, 100)
        .await)
    .unwrap()
}

fn ask(id: &str, timeout_ms: u64) -> Command {
    Command::Ask {
        factory: FACTORY,
        epoch: 1,
        ask: Ask {
            id: id.into(),
            text: "Merge?".into(),
            choices: vec!["yes".into(), "no".into()],
            default: None,
            timeout_ms: Some(timeout_ms),
        },
    }
}

#[tokio::test]
async fn the_question_index_holds_exactly_the_open_questions() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let id = JobId(Uuid::now_v7());
    let spec = JobSpec::new("q", "q", "p", Payload::Command("true".into()));
    let author = Author::Operator("ana".into());
    transact!(store, |tx| {
        repo::submit(tx, &new_job(id, spec.clone(), Vec::new(), 1), &author).await?;
        Ok::<_, RepoError>(())
    })
    .unwrap();
    let claim = Command::Claim {
        factory: FACTORY,
        ttl_ms: 600_000,
        placement: None,
        rate_micros_per_hour: 0,
        limit_slots: Vec::new(),
    };
    apply(&store, id, claim, 1_000).await;
    assert_eq!(index(&store).await, vec![], "no question yet");

    apply(&store, id, ask("q1", 60_000), 2_000).await;
    assert_eq!(index(&store).await, vec![(62_000, id)], "asked");
    let answer = Command::Answer {
        question_id: "q1".into(),
        by: "ana".into(),
        answer: "yes".into(),
        note: None,
    };
    apply(&store, id, answer, 3_000).await;
    assert_eq!(index(&store).await, vec![], "answered");

    apply(&store, id, ask("q2", 10_000), 4_000).await;
    assert_eq!(
        index(&store).await,
        vec![(14_000, id)],
        "moved to the new timeout"
    );
    apply(&store, id, Command::QuestionTimeout, 14_000).await;
    assert_eq!(index(&store).await, vec![], "timed out");

    apply(&store, id, ask("q3", 10_000), 15_000).await;
    assert_eq!(index(&store).await, vec![(25_000, id)]);
    // The reaper reads only what is due by its clock.
    let due = |now: Millis| {
        let store = &store;
        async move { transact!(store, |tx| repo::open_questions(tx, None, now, 100).await).unwrap() }
    };
    assert_eq!(due(24_999).await, vec![], "not due yet");
    assert_eq!(due(25_000).await, vec![(25_000, id)], "due at its timeout");
    let release = Command::Release {
        factory: FACTORY,
        epoch: 1,
        checkpoint: None,
        throttled_until: None,
    };
    apply(&store, id, release, 16_000).await;
    assert_eq!(index(&store).await, vec![], "closed with the lease");
}

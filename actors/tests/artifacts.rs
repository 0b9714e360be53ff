//! Artifacts through a node on an embedded store and an in-memory blob store: a file the lease
//! holder uploads is kept once under its fenced write and reads back; a stale lease is refused
//! before anything is stored; the limits refuse with the limit passed and keep nothing; the
//! sweeper collects blobs nobody keeps and ends artifacts past retention (the clock moved by
//! hand); an upload whose blob the sweeper is deleting is asked to come again.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use gigafactory_actors::{Config, CoordError, Coordinator, Edges, ManualClock, NoCourier};
use gigafactory_core::artifact::{ArtifactKind, ArtifactLimits};
use gigafactory_core::event::{Author, EventKind};
use gigafactory_core::job::JobId;
use gigafactory_core::manifest::JobSpec;
use gigafactory_core::wire::{ArtifactUpload, EnrollResponse, LeaseAnswer};
use gigafactory_storage::{AnyStore, BlobStore, repo, transact};
use sha2::{Digest, Sha256};

const GRACE_MS: u64 = 60_000;
const RETENTION_MS: u64 = 3_600_000;
const DUE_WITHIN: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(10);

struct Node {
    coord: Coordinator,
    store: AnyStore,
    blobs: BlobStore,
    clock: ManualClock,
    factory: EnrollResponse,
}

async fn start(dir: &std::path::Path, sweep_interval_ms: u64) -> Node {
    let store = AnyStore::open(&format!("embedded:{}", dir.display())).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let clock = ManualClock::at(now.as_millis() as u64);
    let blobs = BlobStore::in_memory();
    let config = Config {
        artifacts: ArtifactLimits {
            file_max_bytes: 64 << 10,
            job_max_bytes: 100 << 10,
            job_max_count: 3,
        },
        artifact_retention_ms: RETENTION_MS,
        artifact_orphan_grace_ms: GRACE_MS,
        artifact_sweep_interval_ms: sweep_interval_ms,
        ..Config::default()
    };
    let edges = Edges {
        clock: Arc::new(clock.clone()),
        courier: Arc::new(NoCourier),
        blobs: blobs.clone(),
        secrets_key: None,
    };
    let coord = Coordinator::start_with(store.clone(), config, edges)
        .await
        .unwrap();
    let factory = common::enroll(&coord, 8, 0.0).await;
    Node {
        coord,
        store,
        blobs,
        clock,
        factory,
    }
}

fn operator() -> Author {
    Author::Operator("test".into())
}

/// Submits and claims a job: its id and epoch.
async fn leased(node: &Node, key: &str) -> (JobId, u64) {
    let spec: JobSpec = serde_json::from_value(serde_json::json!({
        "key": key, "title": key, "product": "ops", "payload": {"command": "true"}
    }))
    .unwrap();
    let (job, _) = node.coord.submit(spec, vec![], &operator()).await.unwrap();
    let claimed = node
        .coord
        .claim(node.factory.factory_id, 1, 0)
        .await
        .unwrap();
    assert_eq!(claimed[0].job_id, job.id);
    (job.id, claimed[0].epoch)
}

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn upload(
    node: &Node,
    job: JobId,
    epoch: u64,
    name: &str,
    bytes: &[u8],
    request_id: &str,
) -> Result<LeaseAnswer, CoordError> {
    let body = stream::iter(
        bytes
            .chunks(4096)
            .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let upload = ArtifactUpload {
        epoch,
        request_id: request_id.into(),
        kind: ArtifactKind::Patch,
        sha256: sha(bytes),
    };
    let factory = node.factory.factory_id;
    node.coord
        .upload_artifact(factory, job, name, upload, None, body)
        .await
}

async fn read(node: &Node, job: JobId, attempt: u32, name: &str) -> Vec<u8> {
    let (_, mut bytes) = node.coord.artifact(job, attempt, name).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = bytes.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

async fn stored(node: &Node) -> Vec<String> {
    node.blobs.blobs_before(u64::MAX, 100).await.unwrap()
}

async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    tokio::time::timeout(DUE_WITHIN, async {
        while !done().await {
            tokio::time::sleep(POLL).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} never happened"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_is_kept_once_under_its_fenced_write_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), 20).await;
    let (job, epoch) = leased(&node, "a").await;
    let diff = b"--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new\n".repeat(300);
    upload(&node, job, epoch, "fix.diff", &diff, "r1")
        .await
        .unwrap();
    // The answer was lost: the same request again keeps it once.
    upload(&node, job, epoch, "fix.diff", &diff, "r1")
        .await
        .unwrap();
    let listed = node.coord.artifacts(job).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let a = &listed[0];
    assert_eq!((a.attempt, a.epoch, a.size), (1, epoch, diff.len() as u64));
    assert_eq!(
        (a.kind, a.media_type.as_str()),
        (ArtifactKind::Patch, "text/x-diff")
    );
    assert_eq!(a.sha256, sha(&diff));
    assert_eq!(read(&node, job, 1, "fix.diff").await, diff);
    let events = node.coord.events(job, None, 100).await.unwrap();
    let kept: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::Artifact)
        .collect();
    assert_eq!(kept.len(), 1, "one artifact event: {events:?}");

    // A new lease: the old epoch's upload is refused before a byte is stored.
    node.coord
        .act(
            job,
            gigafactory_core::job::Action::Requeue.into(),
            &operator(),
        )
        .await
        .unwrap();
    let claimed = node
        .coord
        .claim(node.factory.factory_id, 1, 0)
        .await
        .unwrap();
    let current = claimed[0].epoch;
    assert!(current > epoch);
    let late = b"written after the lease was lost";
    let refused = upload(&node, job, epoch, "late.txt", late, "r2").await;
    assert!(
        matches!(refused, Err(CoordError::Fenced { presented, current }) if presented == epoch && current == claimed[0].epoch),
        "{refused:?}"
    );
    assert_eq!(node.coord.artifacts(job).await.unwrap().len(), 1);
    assert!(
        !stored(&node).await.contains(&sha(late)),
        "nothing of it kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_refuse_with_the_limit_passed_and_keep_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), 20).await;
    let (job, epoch) = leased(&node, "b").await;
    let big = vec![1u8; (64 << 10) + 1];
    let refused = upload(&node, job, epoch, "big.bin", &big, "r1").await;
    assert_eq!(
        refused.unwrap_err(),
        CoordError::ArtifactLimit("the artifact passes its limit of 65536 bytes".into())
    );
    assert!(
        stored(&node).await.is_empty(),
        "nothing of a refused body kept"
    );
    let sixty = vec![2u8; 60 << 10];
    upload(&node, job, epoch, "one.bin", &sixty, "r2")
        .await
        .unwrap();
    let more = vec![3u8; 60 << 10];
    let refused = upload(&node, job, epoch, "two.bin", &more, "r3").await;
    assert_eq!(
        refused.unwrap_err(),
        CoordError::ArtifactLimit("the job's artifacts passes its limit of 102400 bytes".into())
    );
    assert_eq!(
        stored(&node).await,
        [sha(&sixty)],
        "the refused file's bytes are gone"
    );
    // Replacing a name frees its old bytes.
    upload(&node, job, epoch, "one.bin", &more, "r4")
        .await
        .unwrap();
    upload(&node, job, epoch, "s1", b"1", "r5").await.unwrap();
    upload(&node, job, epoch, "s2", b"2", "r6").await.unwrap();
    let refused = upload(&node, job, epoch, "s3", b"3", "r7").await;
    assert_eq!(
        refused.unwrap_err(),
        CoordError::ArtifactLimit("the job keeps at most 3 artifacts".into())
    );
    let names: Vec<_> = node
        .coord
        .artifacts(job)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.name, a.size))
        .collect();
    assert_eq!(
        names,
        [
            ("one.bin".into(), 60 << 10),
            ("s1".into(), 1),
            ("s2".into(), 1)
        ]
    );
    for bad in ["", "a/b", ".."] {
        let refused = upload(&node, job, epoch, bad, b"x", "r8").await;
        assert!(matches!(refused, Err(CoordError::Invalid(_))), "{bad:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_collects_blobs_nobody_keeps_and_retention_ends_old_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), 20).await;
    let (job, epoch) = leased(&node, "c").await;
    let kept = b"kept".to_vec();
    upload(&node, job, epoch, "kept.txt", &kept, "r1")
        .await
        .unwrap();
    // Bytes stored whose write never came (the uploader died between the two).
    let orphan = b"orphan".to_vec();
    let body = stream::iter([Ok::<_, std::io::Error>(Bytes::from(orphan.clone()))]);
    node.blobs.put(&sha(&orphan), body, 100).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        stored(&node).await.len(),
        2,
        "nothing collected within the grace"
    );

    node.clock.advance(GRACE_MS + 1_000);
    eventually("the orphan collected", async || {
        stored(&node).await == [sha(&kept)]
    })
    .await;
    assert_eq!(read(&node, job, 1, "kept.txt").await, kept);

    node.clock.advance(RETENTION_MS);
    eventually("retention ends the artifact and its blob", async || {
        node.coord.artifacts(job).await.unwrap().is_empty() && stored(&node).await.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_of_a_blob_being_collected_is_asked_to_come_again() {
    let dir = tempfile::tempdir().unwrap();
    // The sweeper does not run here: the test plays it.
    let node = start(dir.path(), 3_600_000).await;
    let (job, epoch) = leased(&node, "d").await;
    let bytes = b"same bytes".to_vec();
    let digest = sha(&bytes);
    let marked = transact!(node.store, |tx| repo::mark_blob_gone(tx, &digest).await).unwrap();
    assert!(marked);
    let refused = upload(&node, job, epoch, "x.txt", &bytes, "r1").await;
    assert!(
        matches!(refused, Err(CoordError::Unavailable(_))),
        "{refused:?}"
    );
    assert!(node.coord.artifacts(job).await.unwrap().is_empty());
    // The sweeper (not running in this test) finishes the deletion.
    transact!(node.store, |tx| repo::clear_blob_gone(tx, &digest)).unwrap();
    upload(&node, job, epoch, "x.txt", &bytes, "r2")
        .await
        .unwrap();
    assert_eq!(read(&node, job, 1, "x.txt").await, bytes);
}

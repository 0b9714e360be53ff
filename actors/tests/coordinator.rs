//! The actor tree in one process on an embedded store: a job goes from submit to claim to
//! completion, placements record their score, and the scheduler rebuilds its index from the
//! store on start.

use std::sync::Arc;

use gigafactory_actors::{Config, Coordinator, SystemClock};
use gigafactory_core::fleet::Role;
use gigafactory_core::job::Command;
use gigafactory_core::manifest::{JobSpec, Payload};
use gigafactory_core::wire::EnrollRequest;
use gigafactory_storage::AnyStore;

fn spec(key: &str, priority: u32) -> JobSpec {
    let mut s: JobSpec = serde_json::from_value(serde_json::json!({
        "key": key, "title": key, "product": "t", "payload": {"command": "true"}
    }))
    .unwrap();
    s.priority = priority;
    s.payload = Payload::Command(format!("echo {key}"));
    s
}

/// Enrolls a factory with `slots` slots.
async fn enroll(coord: &Coordinator, slots: u32) -> gigafactory_core::wire::EnrollResponse {
    let token = coord.mint_token(Role::Enrollment, "t").await.unwrap();
    let req = EnrollRequest {
        name: "f".into(),
        os: "linux".into(),
        arch: "x86_64".into(),
        capabilities: vec![],
        engine_classes: vec![],
        slots,
        cost_per_hour_usd: 0.0,
    };
    coord.enroll(&token, req).await.unwrap()
}

async fn start(dir: &std::path::Path) -> Coordinator {
    let store = AnyStore::open(&format!("embedded:{}", dir.display())).unwrap();
    Coordinator::start(store, Config::default(), Arc::new(SystemClock))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_claimed_by_priority_completed_and_explained() {
    let dir = tempfile::tempdir().unwrap();
    let coord = start(dir.path()).await;
    let f = enroll(&coord, 2).await;
    let (low, _) = coord.submit(spec("low", 10), vec![], "test").await.unwrap();
    let (high, _) = coord
        .submit(spec("high", 900), vec![], "test")
        .await
        .unwrap();
    let claimed = coord.claim(f.factory_id, 1, 1_000).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].job_id, high.id, "the higher priority goes first");
    assert_eq!(claimed[0].epoch, 1);
    let placed = coord.job(high.id).await.unwrap();
    assert!(
        placed
            .placement
            .as_ref()
            .is_some_and(|b| !b.factors.is_empty()),
        "the placement is explained"
    );
    let cmd = Command::Complete {
        factory: f.factory_id,
        epoch: 1,
    };
    let answer = coord
        .factory_write(high.id, cmd, "r1".into(), vec![])
        .await
        .unwrap();
    assert_eq!(answer.state, "succeeded");
    let stale = Command::Renew {
        factory: f.factory_id,
        epoch: 0,
        ttl_ms: 1_000,
    };
    assert!(
        coord
            .factory_write(low.id, stale, "r2".into(), vec![])
            .await
            .is_err(),
        "no lease, no write"
    );
    let snap = coord.scheduler_snapshot().await.unwrap();
    assert_eq!(snap.queued, 1);
    coord.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_rebuilds_its_queue_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    {
        let coord = start(dir.path()).await;
        for n in 0..5 {
            coord
                .submit(spec(&format!("j{n}"), 50), vec![], "test")
                .await
                .unwrap();
        }
        coord.stop();
    }
    // The first node's store handle closes when its actors have stopped.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let coord = loop {
        match AnyStore::open(&format!("embedded:{}", dir.path().display())) {
            Ok(store) => {
                break Coordinator::start(store, Config::default(), Arc::new(SystemClock))
                    .await
                    .unwrap();
            }
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "store never released: {e}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(coord.scheduler_snapshot().await.unwrap().queued, 5);
    coord.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_actors_are_recovered_from_the_store() {
    use gigafactory_actors::FaultTarget;
    let dir = tempfile::tempdir().unwrap();
    let coord = start(dir.path()).await;
    let f = enroll(&coord, 1).await;
    let (job, _) = coord.submit(spec("j", 50), vec![], "test").await.unwrap();
    coord.inject_fault(FaultTarget::Scheduler).await.unwrap();
    coord.inject_fault(FaultTarget::Reaper).await.unwrap();
    // The restarted scheduler rebuilt its queue from the store.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Ok(s) = coord.scheduler_snapshot().await
            && s.queued == 1
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "scheduler never came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let claimed = coord.claim(f.factory_id, 1, 1_000).await.unwrap();
    assert_eq!(claimed[0].job_id, job.id);
    coord.inject_fault(FaultTarget::Job(job.id)).await.unwrap();
    coord
        .inject_fault(FaultTarget::Factory(f.factory_id))
        .await
        .unwrap();
    // The next commands re-activate fresh job and factory actors.
    let mut answer = None;
    for _ in 0..50 {
        let cmd = Command::Complete {
            factory: f.factory_id,
            epoch: 1,
        };
        match coord
            .factory_write(job.id, cmd, "done".into(), vec![])
            .await
        {
            Ok(a) => {
                answer = Some(a);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    assert_eq!(answer.expect("the job actor came back").state, "succeeded");
    let mut beat = false;
    for _ in 0..50 {
        let hb = gigafactory_core::wire::HeartbeatRequest {
            slots_busy: 0,
            running: vec![],
        };
        if coord.heartbeat(f.factory_id, hb).await.is_ok() {
            beat = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(beat, "the factory actor came back");
    coord.stop();
}

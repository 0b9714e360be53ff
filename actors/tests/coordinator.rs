//! The actor tree in one process on an embedded store: a job goes from submit to claim to
//! completion, placements record their score, and the scheduler rebuilds its index from the
//! store on start.

mod common;

use std::sync::Arc;

use gigafactory_actors::{Config, CoordError, Coordinator, SystemClock};
use gigafactory_core::event::{Author, EventKind};
use gigafactory_core::job::Command;
use gigafactory_core::manifest::{JobSpec, Payload};
use gigafactory_storage::AnyStore;

fn tester() -> Author {
    Author::Operator("test".into())
}

fn spec(key: &str, priority: u32) -> JobSpec {
    let mut s: JobSpec = serde_json::from_value(serde_json::json!({
        "key": key, "title": key, "product": "t", "payload": {"command": "true"}
    }))
    .unwrap();
    s.priority = priority;
    s.payload = Payload::Command(format!("echo {key}"));
    s
}

/// Two nodes in one process on one embedded store, treated as shared (as etcd would be).
async fn two_nodes(dir: &std::path::Path, config: Config) -> (Coordinator, Coordinator) {
    let store = AnyStore::open(&format!("embedded:{}", dir.display())).unwrap();
    let config = Config {
        shared_store: true,
        ..config
    };
    let a = Coordinator::start(store.clone(), config.clone(), Arc::new(SystemClock))
        .await
        .unwrap();
    let b = Coordinator::start(store, config, Arc::new(SystemClock))
        .await
        .unwrap();
    (a, b)
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
    let f = common::enroll(&coord, 2, 0.0).await;
    let (low, _) = coord
        .submit(spec("low", 10), vec![], &tester())
        .await
        .unwrap();
    let (high, _) = coord
        .submit(spec("high", 900), vec![], &tester())
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
        .factory_write(high.id, cmd, "r1".into(), vec![], vec![])
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
            .factory_write(low.id, stale, "r2".into(), vec![], vec![])
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
                .submit(spec(&format!("j{n}"), 50), vec![], &tester())
                .await
                .unwrap();
        }
        coord.stop();
    }
    // The first node's store handle closes when its actors have stopped.
    let coord = common::restart(dir.path(), Config::default(), Arc::new(SystemClock)).await;
    assert_eq!(coord.scheduler_snapshot().await.unwrap().queued, 5);
    coord.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_actors_are_recovered_from_the_store() {
    use gigafactory_actors::FaultTarget;
    let dir = tempfile::tempdir().unwrap();
    let coord = start(dir.path()).await;
    let f = common::enroll(&coord, 1, 0.0).await;
    let (job, _) = coord
        .submit(spec("j", 50), vec![], &tester())
        .await
        .unwrap();
    coord
        .inject_fault(FaultTarget::Scheduler, "test")
        .await
        .unwrap();
    coord
        .inject_fault(FaultTarget::Reaper, "test")
        .await
        .unwrap();
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
    coord
        .inject_fault(FaultTarget::Job(job.id), "test")
        .await
        .unwrap();
    coord
        .inject_fault(FaultTarget::Factory(f.factory_id), "test")
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
            .factory_write(job.id, cmd, "done".into(), vec![], vec![])
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
            warm: None,
            draining: false,
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

/// A crash loop (more than `restart_max` scheduler restarts within the window) makes the node
/// unready, and it is ready again once a whole window passes without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_is_ready_again_once_its_crash_loop_is_over() {
    use gigafactory_actors::{FaultTarget, ManualClock};
    let dir = tempfile::tempdir().unwrap();
    let store = AnyStore::open(&format!("embedded:{}", dir.path().display())).unwrap();
    let clock = ManualClock::at(1_000_000);
    let config = Config::default();
    let window = config.restart_window_ms;
    let coord = Coordinator::start(store, config.clone(), Arc::new(clock.clone()))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut faults = 0;
    while coord.ready().await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "{faults} faults never made a crash loop"
        );
        // A fault reaches only a running scheduler; between restarts it is refused.
        if coord
            .inject_fault(FaultTarget::Scheduler, "test")
            .await
            .is_ok()
        {
            faults += 1;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(faults > config.restart_max, "{faults} faults");
    clock.advance(window - 1);
    assert!(coord.ready().await.is_err(), "still inside the window");
    clock.advance(1);
    coord.ready().await.expect("ready once the window passed");
    coord.stop();
}

/// Two nodes on one store they treat as shared (as they would etcd): each node's fleet stream
/// shows the transitions committed through the other, once, in the stream's own numbering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_events_committed_through_one_node_reach_the_other_nodes_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(dir.path(), Config::default()).await;
    let (_, mut on_a) = a.follow_fleet(None);
    let (job, _) = b
        .submit(spec("via-b", 50), vec![], &tester())
        .await
        .unwrap();
    let relayed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let e = on_a.recv().await.unwrap();
            if e.job_id == job.id {
                break e;
            }
        }
    })
    .await
    .expect("node a relays node b's event");
    assert_eq!(
        relayed.node,
        b.node_id(),
        "the event names the node that committed it"
    );
    assert_eq!(relayed.kind, EventKind::Submitted);
    // Node b's own stream has it once, from itself, not relayed back.
    let (on_b, _) = b.follow_fleet(None);
    let mine: Vec<_> = on_b.iter().filter(|e| e.job_id == job.id).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].node, b.node_id());
    // A follower of node a resuming just before the relayed event gets it next.
    let before = gigafactory_actors::FleetEventId {
        node: a.node_id(),
        seq: relayed.seq - 1,
    };
    let (resumed, _) = a.follow_fleet(Some(before));
    assert_eq!(resumed.first().map(|e| e.job_id), Some(job.id));
    a.stop();
    b.stop();
}

/// The node samples its counters on a timer, so the overview can show the past on open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_history_samples_placements_as_they_happen() {
    let dir = tempfile::tempdir().unwrap();
    let store = AnyStore::open(&format!("embedded:{}", dir.path().display())).unwrap();
    let config = Config {
        stats_sample_interval_ms: 20,
        stats_history_samples: 1000,
        ..Config::default()
    };
    let coord = Coordinator::start(store, config, Arc::new(SystemClock))
        .await
        .unwrap();
    let f = common::enroll(&coord, 1, 0.0).await;
    coord
        .submit(spec("j", 50), vec![], &tester())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // A first sample, so the one after the claim has an interval to measure.
    while coord.stats_history(None).is_empty() {
        assert!(std::time::Instant::now() < deadline, "no sample taken");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(coord.claim(f.factory_id, 1, 1_000).await.unwrap().len(), 1);
    let (history, at) = loop {
        let history = coord.stats_history(None);
        if let Some(i) = history.iter().position(|s| s.claims_total == 1) {
            break (history, i);
        }
        assert!(std::time::Instant::now() < deadline, "{history:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let placed = history[at].clone();
    // The scheduler records the placement's latency when it commits, just before the claim
    // is answered and counted: in the sample that counts the claim or, on a busy machine, in
    // the one before it.
    assert!(
        history[at.saturating_sub(1)..=at]
            .iter()
            .any(|s| s.claim_latency_p50_ms.is_some()),
        "{history:?}"
    );
    assert!(placed.claims_per_s.is_some_and(|r| r > 0.0), "{placed:?}");
    assert!(
        coord
            .stats_history(Some(placed.at))
            .iter()
            .all(|s| s.at > placed.at)
    );
    coord.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_factory_gets_the_job_it_can_take_behind_thousands_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let coord = start(dir.path()).await;
    let f = common::enroll(&coord, 1, 0.0).await;
    // More high-priority jobs than one placement used to look at, none of which this factory
    // (no capabilities) can take, ahead of one low-priority job it can.
    let mut manifest = String::from("product = \"t\"\n");
    for n in 0..5_000 {
        manifest.push_str(&format!(
            "[[jobs]]\nkey = \"gpu{n}\"\ntitle = \"gpu{n}\"\ncommand = \"true\"\n\
             priority = 900\ncapabilities = [\"gpu\"]\n"
        ));
    }
    coord.submit_manifest(&manifest, &tester()).await.unwrap();
    let (plain, _) = coord
        .submit(spec("plain", 1), vec![], &tester())
        .await
        .unwrap();
    let claimed = coord.claim(f.factory_id, 1, 1_000).await.unwrap();
    assert_eq!(claimed.len(), 1, "the one job it can take is found");
    assert_eq!(claimed[0].job_id, plain.id);
    let snap = coord.scheduler_snapshot().await.unwrap();
    assert_eq!(snap.queued_by_capability.get("gpu"), Some(&5_000));
    coord.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_made_ready_on_another_node_behind_thousands_no_factory_takes_is_claimed_here() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        resync_interval_ms: 1_000,
        ..Config::default()
    };
    let (a, b) = two_nodes(dir.path(), config).await;
    // More jobs than a node re-reads from the head of the shared ready index, all ahead of the
    // plain job by priority and all needing a capability no factory has.
    for chunk in 0..2 {
        let mut manifest = String::from("product = \"t\"\n");
        for n in 0..5_500 {
            manifest.push_str(&format!(
                "[[jobs]]\nkey = \"never{chunk}-{n}\"\ntitle = \"n\"\ncommand = \"true\"\n\
                 priority = 900\ncapabilities = [\"never\"]\n"
            ));
        }
        b.submit_manifest(&manifest, &tester()).await.unwrap();
    }
    let f = common::enroll(&a, 1, 0.0).await;
    let (plain, _) = b.submit(spec("plain", 1), vec![], &tester()).await.unwrap();
    let claimed = a.claim(f.factory_id, 1, 20_000).await.unwrap();
    assert_eq!(
        claimed.len(),
        1,
        "node a learns of the job node b made ready"
    );
    assert_eq!(claimed[0].job_id, plain.id);
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_forgets_a_queued_job_another_node_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        resync_interval_ms: 500,
        ..Config::default()
    };
    let (a, b) = two_nodes(dir.path(), config).await;
    let queued_on_a = |n: usize| {
        let a = &a;
        async move {
            for _ in 0..100 {
                if a.scheduler_snapshot().await.unwrap().queued == n {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            false
        }
    };
    let (job, _) = b.submit(spec("x", 5), vec![], &tester()).await.unwrap();
    assert!(queued_on_a(1).await, "node a learns of the job");
    // A cancel makes nothing ready, so no refresh runs: only the resync drops it.
    b.act(
        job.id,
        gigafactory_core::job::Action::Cancel.into(),
        &tester(),
    )
    .await
    .unwrap();
    assert!(queued_on_a(0).await, "node a forgets the cancelled job");
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_is_served_at_once_though_the_last_heartbeat_said_every_slot_was_busy() {
    let dir = tempfile::tempdir().unwrap();
    let coord = start(dir.path()).await;
    let f = common::enroll(&coord, 1, 0.0).await;
    // The heartbeat went out while the factory's one slot was busy; the job then ended and
    // the factory asks for one job before its next heartbeat.
    let busy = gigafactory_core::wire::HeartbeatRequest {
        slots_busy: 1,
        running: vec![],
        warm: None,
        draining: false,
    };
    coord.heartbeat(f.factory_id, busy).await.unwrap();
    let (job, _) = coord
        .submit(spec("next", 5), vec![], &tester())
        .await
        .unwrap();
    // Without trusting the claim, it would wait out its long-poll and come back empty.
    let claimed = coord.claim(f.factory_id, 1, 2_000).await.unwrap();
    assert_eq!(claimed.len(), 1, "the free slot the claim names is used");
    assert_eq!(claimed[0].job_id, job.id);
    coord.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_keeps_valid_warm_keys_and_refuses_bad_ones_changing_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let coord = start(dir.path()).await;
    let f = common::enroll(&coord, 1, 0.0).await;
    let beat = |warm: Option<Vec<String>>| gigafactory_core::wire::HeartbeatRequest {
        slots_busy: 0,
        running: vec![],
        warm,
        draining: false,
    };
    let warm = coord.heartbeat(f.factory_id, beat(Some(vec!["repo:acme/api".into()])));
    warm.await.unwrap();
    let kept = |coord: &Coordinator| {
        let coord = coord.clone();
        async move { coord.factory(f.factory_id).await.unwrap().warm }
    };
    assert_eq!(kept(&coord).await, ["repo:acme/api"]);
    for bad in [
        vec!["no kind".to_owned()],
        (0..65).map(|n| format!("repo:r{n}")).collect(),
    ] {
        let refused = coord.heartbeat(f.factory_id, beat(Some(bad))).await;
        assert!(
            matches!(refused, Err(CoordError::Invalid(_))),
            "{refused:?}"
        );
        assert_eq!(
            kept(&coord).await,
            ["repo:acme/api"],
            "a refused heartbeat changes nothing"
        );
    }
    // No list: the warm keys stay as the last heartbeat said.
    coord.heartbeat(f.factory_id, beat(None)).await.unwrap();
    assert_eq!(kept(&coord).await, ["repo:acme/api"]);
    coord.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_factory_still_draining_after_an_undrain_is_told_again_from_the_stored_status() {
    use gigafactory_core::wire::FactoryCommand::{Drain, Undrain};
    let dir = tempfile::tempdir().unwrap();
    let coord = start(dir.path()).await;
    let f = common::enroll(&coord, 1, 0.0).await;
    let beat = |draining: bool| gigafactory_core::wire::HeartbeatRequest {
        slots_busy: 0,
        running: vec![],
        warm: None,
        draining,
    };
    let online = coord.heartbeat(f.factory_id, beat(false)).await.unwrap();
    assert!(online.commands.is_empty(), "{:?}", online.commands);
    coord.drain_factory(f.factory_id).await.unwrap();
    let drained = coord.heartbeat(f.factory_id, beat(false)).await.unwrap();
    assert_eq!(drained.commands, [Drain]);
    let still = coord.heartbeat(f.factory_id, beat(true)).await.unwrap();
    assert_eq!(
        still.commands,
        [Drain],
        "a draining factory is not undrained"
    );
    coord.undrain_factory(f.factory_id).await.unwrap();
    let undrained = coord.heartbeat(f.factory_id, beat(true)).await.unwrap();
    assert_eq!(undrained.commands, [Undrain]);
    // The command in memory is spent, as after a restart: the agent that says it still
    // drains is told again; one that took it is told nothing.
    let again = coord.heartbeat(f.factory_id, beat(true)).await.unwrap();
    assert_eq!(again.commands, [Undrain]);
    let done = coord.heartbeat(f.factory_id, beat(false)).await.unwrap();
    assert!(done.commands.is_empty(), "{:?}", done.commands);
    let refused = coord.undrain_factory(f.factory_id).await;
    assert!(
        matches!(refused, Err(CoordError::Invalid(_))),
        "{refused:?}"
    );
    coord.stop();
}

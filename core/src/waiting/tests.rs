//! Each waiting case gives its reason; the candidates list every factory; properties tie the
//! reason to the candidates.

use super::*;
use crate::job::{FactoryId, Lease, new_job};
use crate::manifest::JobSpec;
use proptest::prelude::*;
use uuid::Uuid;

const NOW: Millis = 1_000_000_000_000;

fn spec(caps: &[&str], engine: Option<&str>) -> JobSpec {
    JobSpec {
        key: "build".into(),
        capabilities: caps.iter().map(|c| c.to_string()).collect(),
        engine_class: engine.map(str::to_owned),
        ..JobSpec::sample()
    }
}

fn view_of(job: &Job) -> JobView {
    JobView {
        id: job.id.0.as_u128(),
        priority: job.spec.priority,
        queued_at_ms: job.created_at,
        capabilities: job.spec.capabilities.clone(),
        labels: Vec::new(),
        engine_class: job.spec.engine_class.clone(),
        product: job.spec.product.clone(),
        repo_hint: None,
        preemptible: true,
    }
}

fn factory(n: u128, caps: &[&str], status: FactoryStatus, busy: u32) -> FactoryFacts {
    FactoryFacts {
        view: FactoryView {
            id: n,
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
            engine_classes: vec!["claude".into()],
            slots: 2,
            slots_busy: busy,
            cost_per_hour_micros: 0,
            warm_repos: Vec::new(),
            success_by_product: Vec::new(),
        },
        name: format!("f{n}"),
        status,
    }
}

fn explain_with(
    job: &Job,
    factories: &[FactoryFacts],
    rivals: &[JobView],
    held: Option<&str>,
    parents: Vec<ParentWait>,
) -> Explanation {
    let view = view_of(job);
    let standing = Standing::default();
    explain(&Facts {
        job,
        job_view: &view,
        parents,
        factories,
        held: held.map(str::to_owned),
        rivals,
        weights: &HashMap::new(),
        standing: &standing,
        now: NOW,
    })
}

fn job(n: u128, caps: &[&str], engine: Option<&str>) -> Job {
    new_job(
        JobId(Uuid::from_u128(n)),
        spec(caps, engine),
        Vec::new(),
        NOW - 1_000,
    )
}

#[test]
fn a_job_needing_what_no_factory_has_names_it_and_the_closest_factories() {
    let j = job(1, &["macos", "xcode"], Some("codex"));
    let fleet = [
        factory(1, &["linux"], FactoryStatus::Online, 0),
        factory(2, &["macos"], FactoryStatus::Online, 0),
        factory(3, &["macos", "xcode"], FactoryStatus::Revoked, 0),
    ];
    let e = explain_with(&j, &fleet, &[], None, Vec::new());
    assert_eq!(
        e.reason,
        Reason::NoFactoryFits {
            capabilities: vec!["xcode".into()],
            engine: Some("codex".into()),
            closest: vec!["f2".into(), "f1".into()],
        }
    );
    assert_eq!(
        e.summary,
        "no factory has capability xcode, engine codex; closest: f2, f1"
    );
    assert_eq!(e.candidates.len(), 3, "every factory is a candidate");
    assert!(e.candidates.iter().all(|c| c.score.is_none()));
}

#[test]
fn fitting_factories_that_are_busy_draining_or_offline_are_named() {
    let j = job(1, &["gpu"], None);
    let fleet = [
        factory(1, &["gpu"], FactoryStatus::Draining, 0),
        factory(2, &["gpu"], FactoryStatus::Online, 2),
        factory(3, &["gpu"], FactoryStatus::Offline, 0),
        factory(4, &["linux"], FactoryStatus::Online, 0),
    ];
    let rival = view_of(&job(2, &["gpu"], None));
    let mut urgent = rival.clone();
    urgent.priority = 900;
    let e = explain_with(&j, &fleet, &[urgent], None, Vec::new());
    match &e.reason {
        Reason::FactoriesUnavailable {
            busy,
            draining,
            offline,
            ahead,
            ..
        } => {
            assert_eq!(busy, &["f2"]);
            assert_eq!(draining, &["f1"]);
            assert_eq!(offline, &["f3"]);
            assert_eq!(
                ahead,
                &[JobId(Uuid::from_u128(2))],
                "the higher priority goes first"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e.summary,
        "every factory that fits is unavailable (busy: f2; draining: f1; offline: f3); 1 job(s) ahead of it"
    );
    let f4 = e
        .candidates
        .iter()
        .find(|c| c.name == "f4")
        .expect("listed");
    assert_eq!(
        f4.refusals,
        [Refusal::MissingCapability {
            capability: "gpu".into()
        }]
    );
}

#[test]
fn a_free_slot_taken_by_jobs_ranked_ahead_is_outscored_else_placeable() {
    let j = job(1, &[], None);
    let mut fleet = [factory(1, &[], FactoryStatus::Online, 1)];
    let mut urgent = view_of(&job(2, &[], None));
    urgent.priority = 900;
    let e = explain_with(&j, &fleet, std::slice::from_ref(&urgent), None, Vec::new());
    assert_eq!(
        e.reason,
        Reason::Outscored {
            by: vec![JobId(Uuid::from_u128(2))],
            more: false,
            free_slots: 1
        }
    );
    fleet[0].view.slots_busy = 0;
    let e = explain_with(&j, &fleet, &[urgent], None, Vec::new());
    assert_eq!(
        e.reason,
        Reason::Placeable {
            factories: vec!["f1".into()]
        }
    );
    assert!(e.candidates[0].score.is_some());
    assert!(e.candidates[0].refusals.is_empty());
}

#[test]
fn state_parents_time_and_holds_come_before_the_factories() {
    let fleet = [factory(1, &[], FactoryStatus::Online, 0)];
    let mut j = job(1, &[], None);
    let parent = ParentWait {
        id: JobId(Uuid::from_u128(9)),
        key: "setup".into(),
        state: "running".into(),
    };
    j.state = JobState::Pending;
    let e = explain_with(&j, &fleet, &[], None, vec![parent.clone()]);
    assert_eq!(e.summary, "waiting for 1 parent(s): setup (running)");

    j.state = JobState::Failed {
        retry_at: NOW + 60_000,
    };
    let e = explain_with(&j, &fleet, &[], None, Vec::new());
    assert_eq!(
        e.reason,
        Reason::BackingOff {
            until: NOW + 60_000
        }
    );
    j.state = JobState::Failed { retry_at: NOW };
    let e = explain_with(&j, &fleet, &[], None, Vec::new());
    assert!(
        matches!(e.reason, Reason::Placeable { .. }),
        "its retry time passed"
    );

    j.state = JobState::Queued {
        not_before: NOW + 1,
    };
    let e = explain_with(&j, &fleet, &[], None, Vec::new());
    assert_eq!(e.reason, Reason::NotBefore { until: NOW + 1 });

    j.state = JobState::Queued { not_before: 0 };
    let e = explain_with(&j, &fleet, &[], Some("budget ops exhausted"), Vec::new());
    assert_eq!(e.summary, "held: budget ops exhausted");

    j.state = JobState::Running {
        lease: Lease {
            epoch: 1,
            factory: FactoryId(Uuid::from_u128(1)),
            granted_at: NOW,
            expires_at: NOW + 1,
        },
    };
    assert_eq!(
        explain_with(&j, &fleet, &[], None, Vec::new()).reason,
        Reason::Running {
            factory_id: FactoryId(Uuid::from_u128(1))
        }
    );
    j.state = JobState::Review;
    assert_eq!(
        explain_with(&j, &fleet, &[], None, Vec::new()).summary,
        "not waiting for placement: it is review"
    );
}

fn arb_factory(n: u128) -> impl Strategy<Value = FactoryFacts> {
    (
        prop::sample::subsequence(vec!["gpu", "linux", "macos"], 0..=3),
        0usize..4,
        0u32..3,
    )
        .prop_map(move |(caps, status, busy)| {
            let status = [
                FactoryStatus::Online,
                FactoryStatus::Draining,
                FactoryStatus::Offline,
                FactoryStatus::Revoked,
            ][status];
            factory(n, &caps, status, busy)
        })
}

proptest! {
    /// Every factory is listed once; a candidate has no refusal exactly when it is online
    /// and placement would find the job eligible there; the job is placeable only through such
    /// a factory, and "no factory fits" only when no factory that is not revoked fits.
    #[test]
    fn the_reason_agrees_with_the_candidates(
        caps in prop::sample::subsequence(vec!["gpu", "linux", "macos"], 0..=2),
        fleet in prop::collection::vec(arb_factory(0), 0..6),
    ) {
        let fleet: Vec<FactoryFacts> = fleet
            .into_iter()
            .enumerate()
            .map(|(i, mut f)| { f.view.id = i as u128 + 1; f.name = format!("f{}", i + 1); f })
            .collect();
        let j = job(100, &caps, None);
        let view = view_of(&j);
        let e = explain_with(&j, &fleet, &[], None, Vec::new());
        prop_assert_eq!(e.candidates.len(), fleet.len());
        for f in &fleet {
            let c = e.candidates.iter().find(|c| c.factory_id.0.as_u128() == f.view.id).expect("listed");
            let free = f.status == FactoryStatus::Online && scoring::eligible(&view, &f.view);
            prop_assert_eq!(c.refusals.is_empty(), free);
        }
        let fits_somewhere = fleet.iter().any(|f| {
            f.status != FactoryStatus::Revoked
                && scoring::fits(&view.capabilities, None, &f.view)
        });
        match &e.reason {
            Reason::Placeable { factories } => {
                prop_assert!(!factories.is_empty());
                for name in factories {
                    let c = e.candidates.iter().find(|c| &c.name == name).expect("listed");
                    prop_assert!(c.refusals.is_empty());
                }
            }
            Reason::NoFactoryFits { .. } => prop_assert!(!fits_somewhere),
            Reason::FactoriesUnavailable { .. } => {
                prop_assert!(fits_somewhere);
                prop_assert!(e.candidates.iter().all(|c| !c.refusals.is_empty()));
            }
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}

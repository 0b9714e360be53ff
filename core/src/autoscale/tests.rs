//! The scaling rule's examples and properties: monotonic in the queue, never below the
//! running jobs, zero for zero demand, one more factory after a long wait.

use proptest::prelude::*;

use super::*;

fn load(queued: usize, running: usize, age_s: u64, online: usize, slots: u32) -> ShapeLoad {
    ShapeLoad {
        shape: Shape::new(&["linux".to_string()], None),
        queued,
        runnable: queued,
        running,
        oldest_queued_age_ms: age_s * 1_000,
        factories_online: online,
        slots,
        slots_busy: 0,
    }
}

#[test]
fn the_queue_and_running_jobs_are_divided_by_the_factories_mean_slots() {
    // Two factories with 2 and 3 slots: a mean of 2 (rounded down), 5 jobs want 3 factories.
    let rule = ScaleRule::default();
    let l = load(3, 2, 0, 2, 5);
    assert_eq!(rule.slots_per_factory(&l), 2);
    assert_eq!(rule.desired(&l), (3, Reason::Demand));
}

#[test]
fn without_fitting_factories_the_default_slots_are_used_and_a_parameter_overrides_both() {
    assert_eq!(
        ScaleRule::default().desired(&load(3, 0, 0, 0, 0)),
        (3, Reason::Demand)
    );
    let four = ScaleRule::new(Some(4), None).unwrap();
    assert_eq!(four.desired(&load(3, 0, 0, 0, 0)), (1, Reason::Demand));
    assert_eq!(four.desired(&load(3, 6, 0, 9, 9)), (3, Reason::Demand));
}

#[test]
fn a_job_waiting_past_the_target_asks_for_one_factory_more_than_are_online() {
    let rule = ScaleRule::new(None, Some(60)).unwrap();
    // Four factories of 4 slots could hold the 2 queued jobs, yet they wait: busy elsewhere.
    let l = load(2, 0, 61, 4, 16);
    assert_eq!(rule.desired(&l), (5, Reason::Waited));
    // At the target exactly, not yet.
    assert_eq!(rule.desired(&load(2, 0, 60, 4, 16)), (1, Reason::Demand));
}

#[test]
fn nothing_queued_or_running_asks_for_none_even_with_factories_online() {
    assert_eq!(
        ScaleRule::default().desired(&load(0, 0, 0, 3, 6)),
        (0, Reason::Idle)
    );
}

#[test]
fn jobs_that_could_not_run_now_ask_for_no_factory() {
    // Ten jobs queued, all waiting out a provider's reset or held by a budget, for an hour.
    let held = ShapeLoad {
        runnable: 0,
        oldest_queued_age_ms: 0,
        ..load(10, 0, 3_600, 2, 4)
    };
    assert_eq!(ScaleRule::default().desired(&held), (0, Reason::Idle));
    let some = ShapeLoad {
        runnable: 3,
        ..load(10, 0, 0, 0, 0)
    };
    assert_eq!(ScaleRule::default().desired(&some), (3, Reason::Demand));
}

#[test]
fn parameters_out_of_range_are_refused() {
    assert_eq!(
        ScaleRule::new(Some(0), None),
        Err(HintError::SlotsPerFactory(0))
    );
    assert_eq!(
        ScaleRule::new(Some(SLOTS_PER_FACTORY_MAX + 1), None),
        Err(HintError::SlotsPerFactory(SLOTS_PER_FACTORY_MAX + 1))
    );
    assert_eq!(
        ScaleRule::new(None, Some(TARGET_WAIT_SECONDS_MAX + 1)),
        Err(HintError::TargetWait(TARGET_WAIT_SECONDS_MAX + 1))
    );
    assert!(ScaleRule::new(Some(1), Some(0)).is_ok());
}

#[test]
fn a_selection_reads_capabilities_in_any_order_and_any_as_none() {
    let gpu_linux = Shape::new(&["gpu".into(), "linux".into()], Some("claude"));
    assert_eq!(
        select(Some("linux, gpu,linux"), Some("claude")),
        Ok(Some(gpu_linux))
    );
    assert_eq!(select(Some("any"), None), Ok(Some(Shape::new(&[], None))));
    assert_eq!(select(None, None), Ok(None));
    assert_eq!(
        select(Some("gpu,,linux"), None),
        Err(HintError::EmptyCapability("gpu,,linux".into()))
    );
    assert_eq!(
        select(Some(""), None),
        Err(HintError::EmptyCapability("".into()))
    );
    assert_eq!(
        select(None, Some("claude")),
        Err(HintError::EngineClassAlone)
    );
}

fn any_load() -> impl Strategy<Value = ShapeLoad> {
    (
        0usize..500,
        0usize..500,
        0usize..500,
        0u64..2_000,
        0usize..50,
        0u32..64,
    )
        .prop_map(|(queued, held, running, age, online, per)| {
            // Factories online bring at least one slot each, as enrolled factories do.
            let slots = online as u32 * per.max(1);
            ShapeLoad {
                queued: queued + held,
                ..load(queued, running, age, online, slots)
            }
        })
}

fn any_rule() -> impl Strategy<Value = ScaleRule> {
    (prop::option::of(1u32..=SLOTS_PER_FACTORY_MAX), 0u64..1_000)
        .prop_map(|(s, w)| ScaleRule::new(s, Some(w)).unwrap())
}

proptest! {
    #[test]
    fn more_runnable_jobs_never_ask_for_fewer_factories(
        rule in any_rule(), l in any_load(), more in 1usize..100
    ) {
        let bigger = ShapeLoad { queued: l.queued + more, runnable: l.runnable + more, ..l.clone() };
        prop_assert!(rule.desired(&bigger).0 >= rule.desired(&l).0);
    }

    #[test]
    fn never_fewer_factories_than_the_running_jobs_need(rule in any_rule(), l in any_load()) {
        let s = rule.slots_per_factory(&l) as usize;
        prop_assert!(s >= 1);
        prop_assert!(rule.desired(&l).0 >= l.running.div_ceil(s));
    }

    #[test]
    fn the_factories_asked_for_hold_every_job_and_no_more_unless_a_job_waited(
        rule in any_rule(), l in any_load()
    ) {
        let s = rule.slots_per_factory(&l) as usize;
        let (desired, reason) = rule.desired(&l);
        let demand = (l.runnable + l.running).div_ceil(s);
        prop_assert!(desired * s >= l.runnable + l.running);
        match reason {
            Reason::Waited => prop_assert_eq!(desired, l.factories_online + 1),
            Reason::Demand => prop_assert_eq!(desired, demand),
            Reason::Idle => prop_assert_eq!(desired, 0),
        }
    }

    #[test]
    fn zero_demand_asks_for_zero(rule in any_rule(), l in any_load()) {
        let idle = ShapeLoad { runnable: 0, running: 0, ..l };
        prop_assert_eq!(rule.desired(&idle), (0, Reason::Idle));
    }

    #[test]
    fn a_job_waiting_past_the_target_asks_for_more_than_are_online(
        rule in any_rule(), l in any_load()
    ) {
        prop_assume!(l.runnable > 0 && l.oldest_queued_age_ms > rule.target_wait_seconds * 1_000);
        prop_assert!(rule.desired(&l).0 > l.factories_online);
    }

    #[test]
    fn the_hint_carries_the_load_and_the_rules_answer(rule in any_rule(), l in any_load()) {
        let h = rule.hint(&l);
        prop_assert_eq!((h.queued, h.runnable, h.running), (l.queued, l.runnable, l.running));
        prop_assert_eq!((h.factories_online, h.slots), (l.factories_online, l.slots));
        prop_assert_eq!(h.oldest_queued_age_seconds, l.oldest_queued_age_ms / 1_000);
        prop_assert_eq!((h.desired_factories, h.reason), rule.desired(&l));
    }
}

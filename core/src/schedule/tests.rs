//! The schedule rules: cron parsing, ticks in a zone across DST changes (with properties
//! against a brute force), the missed-run and overlap decisions, and the checks of a draft.

use chrono::{DateTime, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::policy::TICKS_SCAN_MAX;
use super::*;

fn ms(rfc3339: &str) -> Millis {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis() as Millis
}

fn next(cron: &str, zone: &str, after: &str) -> String {
    let c = Cron::parse(cron).unwrap();
    let z = parse_zone(zone).unwrap();
    format_in(z, c.next_tick(z, ms(after)).unwrap())
}

fn utc(at: Millis) -> NaiveDateTime {
    DateTime::from_timestamp_millis(at as i64)
        .unwrap()
        .naive_utc()
}

#[test]
fn parses_five_and_six_fields_names_steps_and_macros() {
    assert!(Cron::parse("*/5 * * * *").is_ok());
    assert!(Cron::parse("*/2 * * * * *").is_ok());
    assert!(Cron::parse("0 9 * JAN-MAR mon-fri").is_ok());
    assert!(Cron::parse("0 0 * * 7").is_ok());
    assert!(Cron::parse("@daily").is_ok());
    assert_eq!(Cron::parse("@daily"), Cron::parse("0 0 * * *"));
    assert_eq!(Cron::parse("0 0 * * 7"), Cron::parse("0 0 * * 0"));
}

#[test]
fn refuses_bad_expressions_naming_the_field() {
    let e = Cron::parse("61 * * * *").unwrap_err();
    assert!(e.starts_with("minute field"), "{e}");
    assert!(Cron::parse("* * * *").unwrap_err().contains("5 fields"));
    assert!(Cron::parse("* 24 * * *").unwrap_err().starts_with("hour"));
    assert!(Cron::parse("* * * * * * *").is_err());
    assert!(Cron::parse("*/0 * * * *").unwrap_err().contains("step"));
    assert!(
        Cron::parse("5-1 * * * *")
            .unwrap_err()
            .contains("backwards")
    );
    assert!(Cron::parse("* * * FOO *").unwrap_err().starts_with("month"));
    assert!(Cron::parse("@often").is_err());
}

#[test]
fn next_tick_is_the_next_matching_second_in_utc() {
    assert_eq!(
        next("*/2 * * * * *", "UTC", "2026-01-01T00:00:00Z"),
        "2026-01-01T00:00:02+00:00"
    );
    assert_eq!(
        next("*/2 * * * * *", "UTC", "2026-01-01T00:00:01.500Z"),
        "2026-01-01T00:00:02+00:00"
    );
    assert_eq!(
        next("0 9 * * MON", "UTC", "2026-01-01T00:00:00Z"),
        "2026-01-05T09:00:00+00:00"
    );
    // Both day fields restricted: either matches (1 January 2026 is a Thursday).
    assert_eq!(
        next("0 0 1 * FRI", "UTC", "2026-01-01T00:00:00Z"),
        "2026-01-02T00:00:00+00:00"
    );
    assert_eq!(
        next("0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z"),
        "2028-02-29T00:00:00+00:00"
    );
    // A stepped star is a star: odd days AND weekdays, not odd days OR weekdays (Saturday
    // 3 January is odd, Monday 5 January is both).
    assert_eq!(
        next("0 9 */2 * 1-5", "UTC", "2026-01-02T10:00:00Z"),
        "2026-01-05T09:00:00+00:00"
    );
}

#[test]
fn a_cron_that_never_matches_has_no_tick() {
    let c = Cron::parse("0 0 30 2 *").unwrap();
    assert_eq!(c.next_tick(Tz::UTC, 0), None);
}

#[test]
fn a_time_the_spring_change_skips_fires_once_at_the_end_of_the_gap() {
    // Paris skips 02:00-03:00 on 29 March 2026.
    assert_eq!(
        next("30 2 * * *", "Europe/Paris", "2026-03-28T12:00:00Z"),
        "2026-03-29T03:00:00+02:00"
    );
    assert_eq!(
        next("30 2 * * *", "Europe/Paris", "2026-03-29T01:00:00Z"),
        "2026-03-30T02:30:00+02:00"
    );
    // Every skipped quarter fires once, together, at 03:00; then the quarters go on.
    assert_eq!(
        next("*/15 * * * *", "Europe/Paris", "2026-03-29T00:45:00Z"),
        "2026-03-29T03:00:00+02:00"
    );
    assert_eq!(
        next("*/15 * * * *", "Europe/Paris", "2026-03-29T01:00:00Z"),
        "2026-03-29T03:15:00+02:00"
    );
}

#[test]
fn a_time_the_autumn_change_repeats_fires_once_at_its_first_occurrence() {
    // Paris repeats 02:00-03:00 on 25 October 2026.
    assert_eq!(
        next("30 2 * * *", "Europe/Paris", "2026-10-24T12:00:00Z"),
        "2026-10-25T02:30:00+02:00"
    );
    assert_eq!(
        next("30 2 * * *", "Europe/Paris", "2026-10-25T00:30:00Z"),
        "2026-10-26T02:30:00+01:00"
    );
    assert_eq!(
        next("0 * * * *", "Europe/Paris", "2026-10-25T00:00:00Z"),
        "2026-10-25T03:00:00+01:00"
    );
}

#[test]
fn ticks_in_a_zone_are_its_local_times() {
    assert_eq!(
        next("0 9 * * *", "America/New_York", "2026-07-01T00:00:00Z"),
        "2026-07-01T09:00:00-04:00"
    );
    assert_eq!(
        next("0 9 * * *", "Asia/Kolkata", "2026-07-01T00:00:00Z"),
        "2026-07-01T09:00:00+05:30"
    );
}

const CRONS: [&str; 6] = [
    "*/7 * * * * *",
    "0 */5 * * * *",
    "13 2/3 * * * *",
    "30 2 * * *",
    "*/15 * * * *",
    "0 0 * * 1-5",
];
const ZONES: [&str; 4] = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Australia/Lord_Howe",
];

proptest! {
    #[test]
    fn next_tick_is_strictly_later_and_monotone(
        c in 0..CRONS.len(), z in 0..ZONES.len(),
        a in 1_700_000_000_000u64..1_900_000_000_000, d in 0u64..10_000_000,
    ) {
        let cron = Cron::parse(CRONS[c]).unwrap();
        let zone = parse_zone(ZONES[z]).unwrap();
        let ta = cron.next_tick(zone, a).unwrap();
        let tb = cron.next_tick(zone, a + d).unwrap();
        prop_assert!(ta > a);
        prop_assert!(tb >= ta);
        // A tick is a matching local time, or the end of a gap that skipped one.
        let local = DateTime::from_timestamp_millis(ta as i64).unwrap().with_timezone(&zone);
        let gap_end = zone.offset_from_utc_datetime(&utc(ta - 1000)) != *local.offset();
        prop_assert!(cron.matches(local.naive_local()) || gap_end);
    }

    #[test]
    fn in_utc_no_matching_second_lies_between_a_time_and_its_next_tick(
        c in 0..3usize, a in 1_700_000_000_000u64..1_900_000_000_000,
    ) {
        let cron = Cron::parse(CRONS[c]).unwrap();
        let t = cron.next_tick(Tz::UTC, a).unwrap();
        prop_assert!(cron.matches(utc(t)));
        for s in (a / 1000 + 1)..(t / 1000) {
            prop_assert!(!cron.matches(utc(s * 1000)), "{s} matches before {t}");
        }
    }
}

fn every_two_seconds() -> Cron {
    Cron::parse("*/2 * * * * *").unwrap()
}

#[test]
fn an_on_time_tick_fires_and_moves_the_cursor() {
    let d = due(
        &every_two_seconds(),
        Tz::UTC,
        10_000,
        12_300,
        Missed::Skip,
        5_000,
        0,
    );
    assert_eq!(
        d,
        Due {
            fire: Some(12_000),
            missed: None,
            cursor: 12_000
        }
    );
    let none = due(
        &every_two_seconds(),
        Tz::UTC,
        12_000,
        13_900,
        Missed::Skip,
        5_000,
        0,
    );
    assert_eq!(none.fire, None);
    assert_eq!(none.cursor, 12_000);
}

#[test]
fn ticks_older_than_the_grace_are_missed_and_only_the_latest_on_time_one_fires() {
    let d = due(
        &every_two_seconds(),
        Tz::UTC,
        0,
        20_500,
        Missed::Skip,
        1_000,
        0,
    );
    assert_eq!(d.fire, Some(20_000));
    assert_eq!(
        d.missed,
        Some(MissedTicks {
            count: 9,
            more: false,
            first: 2_000,
            last: 18_000
        })
    );
    assert_eq!(d.cursor, 20_000);
}

#[test]
fn run_once_fires_the_latest_missed_tick_within_the_window_and_skip_does_not() {
    let daily = Cron::parse("0 3 * * *").unwrap();
    let cursor = ms("2026-01-01T03:00:00Z");
    let now = ms("2026-01-03T05:00:00Z");
    let skip = due(
        &daily,
        Tz::UTC,
        cursor,
        now,
        Missed::Skip,
        5_000,
        86_400_000,
    );
    assert_eq!(skip.fire, None);
    assert_eq!(skip.missed.unwrap().count, 2);
    assert_eq!(skip.cursor, ms("2026-01-03T03:00:00Z"));
    let once = due(
        &daily,
        Tz::UTC,
        cursor,
        now,
        Missed::RunOnce,
        5_000,
        86_400_000,
    );
    assert_eq!(once.fire, Some(ms("2026-01-03T03:00:00Z")));
    assert_eq!(once.missed.unwrap().count, 1);
    // Past the window, run_once fires nothing either.
    let late = due(
        &daily,
        Tz::UTC,
        cursor,
        now,
        Missed::RunOnce,
        5_000,
        3_600_000,
    );
    assert_eq!(late.fire, None);
    assert_eq!(late.missed.unwrap().count, 2);
}

#[test]
fn a_long_pause_of_a_per_second_cron_is_decided_without_walking_every_tick() {
    let every = Cron::parse("* * * * * *").unwrap();
    let week = 7 * 86_400_000;
    let d = due(&every, Tz::UTC, 0, week + 500, Missed::Skip, 2_000, 0);
    assert_eq!(d.fire, Some(week));
    let m = d.missed.unwrap();
    assert!(m.more);
    assert!(m.count < u64::from(TICKS_SCAN_MAX) + 10);
    assert_eq!(d.cursor, week);
}

#[test]
fn overlap_decides_by_policy_only_while_previous_jobs_run() {
    let running = [JobId(Uuid::from_u128(1))];
    assert_eq!(on_overlap(Overlap::Skip, &[]), OverlapDecision::Submit);
    assert!(matches!(
        on_overlap(Overlap::Skip, &running),
        OverlapDecision::Skip { reason } if reason.contains("still running")
    ));
    assert_eq!(
        on_overlap(Overlap::Queue, &running),
        OverlapDecision::Submit
    );
    assert_eq!(
        on_overlap(Overlap::CancelPrevious, &running),
        OverlapDecision::CancelThenSubmit {
            cancel: running.to_vec()
        }
    );
}

const JOB: &str =
    r#"{"key":"nightly","title":"Nightly","product":"p","payload":{"command":"true"}}"#;

#[test]
fn a_draft_is_refused_with_every_problem() {
    let draft = Draft {
        cron: "61 * * * *".into(),
        time_zone: Some("Mars/Olympus".into()),
        overlap: Some("sometimes".into()),
        missed: Some("never".into()),
        catchup_window_s: Some(CATCHUP_WINDOW_MAX_S + 1),
        job: None,
        manifest: None,
    };
    let problems = check(&draft, 0).unwrap_err();
    let fields: Vec<&str> = problems
        .iter()
        .map(|p| p.split(':').next().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "cron",
            "time_zone",
            "overlap",
            "missed",
            "catchup_window_s",
            "job"
        ],
        "{problems:?}"
    );
}

#[test]
fn a_good_draft_is_filled_with_defaults() {
    let draft = Draft {
        cron: " */2 * * * * * ".into(),
        job: Some(JOB.into()),
        overlap: Some("cancel-previous".into()),
        ..Draft::default()
    };
    let c = check(&draft, 0).unwrap();
    assert_eq!(c.time_zone, "UTC");
    assert_eq!(c.cron, "*/2 * * * * *");
    assert_eq!(c.overlap, Overlap::CancelPrevious);
    assert_eq!(c.missed, Missed::Skip);
    assert_eq!(c.target, Target::Job(JOB.into()));
}

#[test]
fn an_edit_of_the_clock_moves_the_cursor_to_now_and_any_other_edit_keeps_it() {
    let draft = Draft {
        cron: "0 3 * * *".into(),
        job: Some(JOB.into()),
        ..Draft::default()
    };
    let c = check(&draft, 0).unwrap();
    let fired_at_three = ms("2026-01-01T03:00:00Z");
    let s = Schedule {
        name: "nightly".into(),
        cron: c.cron.clone(),
        time_zone: c.time_zone.clone(),
        overlap: c.overlap,
        missed: c.missed,
        catchup_window_s: c.catchup_window_s,
        target: c.target,
        state: ScheduleState::Active,
        cursor: fired_at_three,
        previous_jobs: Vec::new(),
        runs: 1,
        created_at: 0,
        updated_at: 0,
        updated_by: "ops".into(),
    };
    let ten = ms("2026-01-01T10:00:00Z");
    // 09:00 is a tick of the new cron before the edit: it was never this schedule's.
    assert_eq!(s.cursor_after_edit("0 9 * * *", "UTC", ten), ten);
    assert_eq!(s.cursor_after_edit("0 3 * * *", "Europe/Paris", ten), ten);
    assert_eq!(s.cursor_after_edit("0 3 * * *", "UTC", ten), fired_at_three);
}

#[test]
fn a_template_with_its_own_idempotency_key_or_parents_is_refused() {
    let job = JOB.replace(
        "\"key\"",
        "\"idempotency_key\":\"k\",\"deps\":[\"x\"],\"key\"",
    );
    let draft = Draft {
        cron: "@daily".into(),
        job: Some(job),
        ..Draft::default()
    };
    let problems = check(&draft, 0).unwrap_err();
    assert!(
        problems.iter().any(|p| p.starts_with("job.deps")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("job.idempotency_key")),
        "{problems:?}"
    );
    let bad = Draft {
        cron: "0 0 30 2 *".into(),
        manifest: Some("jobs = 3".into()),
        ..Draft::default()
    };
    let problems = check(&bad, 0).unwrap_err();
    assert!(
        problems.iter().any(|p| p.contains("never fires")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with("manifest")),
        "{problems:?}"
    );
}

#[test]
fn each_tick_submits_under_its_own_keys() {
    let jobs = specs_for("nightly", &Target::Job(JOB.into()), "42").unwrap();
    assert_eq!(
        jobs[0].idempotency_key.as_deref(),
        Some("schedule:nightly:42")
    );
    let manifest = "product = \"p\"\n[[jobs]]\nkey = \"a\"\ntitle = \"A\"\ncommand = \"true\"\n";
    let jobs = specs_for("n", &Target::Manifest(manifest.into()), "7").unwrap();
    assert_eq!(jobs[0].idempotency_key.as_deref(), Some("schedule:n:7:a"));
}

#[test]
fn names_and_shards() {
    assert!(check_name("nightly-deps.v2").is_ok());
    assert!(check_name("Nightly").is_err());
    assert!(check_name("").is_err());
    assert!(check_name("-x").is_err());
    for name in ["a", "nightly", "weekly-audit"] {
        assert!(shard_of_schedule(name) < SHARDS);
        assert_eq!(shard_of_schedule(name), shard_of_schedule(name));
    }
}

proptest! {
    #[test]
    fn due_decides_every_tick_since_the_cursor_once(
        c in 0..3usize, z in 0..ZONES.len(), cursor in 1_700_000_000_000u64..1_800_000_000_000,
        span in 0u64..3_600_000, grace in 0u64..10_000, window in 0u64..100_000,
        run_once in any::<bool>(),
    ) {
        let cron = Cron::parse(CRONS[c]).unwrap();
        let zone = parse_zone(ZONES[z]).unwrap();
        let now = cursor + span;
        let policy = if run_once { Missed::RunOnce } else { Missed::Skip };
        let d = due(&cron, zone, cursor, now, policy, grace, window);
        let mut ticks = Vec::new();
        let mut at = cursor;
        while let Some(t) = cron.next_tick(zone, at).filter(|t| *t <= now) {
            ticks.push(t);
            at = t;
        }
        prop_assert_eq!(d.cursor, ticks.last().copied().unwrap_or(cursor));
        let missed = d.missed.map_or(0, |m| m.count);
        prop_assert_eq!(missed + u64::from(d.fire.is_some()), ticks.len() as u64);
        if let Some(t) = d.fire {
            prop_assert_eq!(Some(t), ticks.last().copied());
            let reach = if run_once { grace.max(window) } else { grace };
            prop_assert!(now - t <= reach, "{t} fired {} ms late", now - t);
        }
    }
}

#[test]
fn a_trigger_key_is_checked_and_never_reads_like_a_moment() {
    assert_eq!(
        check_trigger_key("0b6e7a4c-1f2d-4c1e-9a3b-2f6a1d9e8c7b"),
        Ok(())
    );
    assert_eq!(check_trigger_key("retry.1_A"), Ok(()));
    for bad in [
        "",
        "a:b",
        "a b",
        "é",
        &"k".repeat(TRIGGER_KEY_MAX_BYTES + 1),
    ] {
        let why = check_trigger_key(bad).unwrap_err();
        assert!(why.starts_with("Idempotency-Key: must be 1 to 64"), "{why}");
    }
    assert_eq!(manual_run(5, Some("5")), "trigger-5");
    assert_eq!(manual_run(5, None), "manual-5");
    assert_ne!(manual_run(5, Some("5")), manual_run(5, None));
}

//! The node's event series on `/metrics` (counters and histograms, kept by the process's
//! recorder): their names, help texts and histogram buckets in one place, their registration
//! at 0 with every label value they can take (so a fresh node exports each one before its first
//! event), and the recording of the lease events. State (jobs, queues, factories, the cluster)
//! is not recorded here: `coordinator::gauges` computes it at scrape time.

use gigafactory_core::job::{Job, Millis};
use gigafactory_core::metric_labels::{
    FINISHED_STATES, FenceRoute, PollOutcome, SCHEDULE_RUN_OUTCOMES,
};
use gigafactory_storage::commit_metrics;
use metrics::Unit;

use crate::error::CoordError;

pub const JOBS_SUBMITTED_TOTAL: &str = "gigafactory_jobs_submitted_total";
pub const JOBS_FINISHED_TOTAL: &str = "gigafactory_jobs_finished_total";
pub const CLAIMS_TOTAL: &str = "gigafactory_claims_total";
pub const CLAIM_LATENCY_SECONDS: &str = "gigafactory_claim_latency_seconds";
pub const CLAIM_COMMIT_SECONDS: &str = "gigafactory_claim_commit_seconds";
pub const CLAIM_LONG_POLL_SECONDS: &str = "gigafactory_claim_long_poll_seconds";
pub const PLACEMENTS_TOTAL: &str = "gigafactory_placements_total";
pub const PLACEMENT_LATENCY_SECONDS: &str = "gigafactory_placement_latency_seconds";
pub const LEASES_GRANTED_TOTAL: &str = "gigafactory_leases_granted_total";
pub const LEASES_RENEWED_TOTAL: &str = "gigafactory_leases_renewed_total";
pub const LEASES_EXPIRED_TOTAL: &str = "gigafactory_leases_expired_total";
pub const FENCED_WRITES_TOTAL: &str = "gigafactory_fenced_writes_total";
pub const PREEMPTIONS_TOTAL: &str = "gigafactory_preemptions_total";
pub const SHARDS_OWNED: &str = "gigafactory_shards_owned";
pub const ACTOR_FAILURES_TOTAL: &str = "gigafactory_actor_failures_total";
pub const ACTOR_RESTARTS_TOTAL: &str = "gigafactory_actor_restarts_total";
pub const QUEUED_JOBS: &str = "gigafactory_queued_jobs";
pub const BUDGET_SPEND_USD: &str = "gigafactory_budget_spend_usd";
pub const BUDGET_LIMIT_USD: &str = "gigafactory_budget_limit_usd";
pub const BUDGET_SPEND_RATIO: &str = "gigafactory_budget_spend_ratio";
pub const QUESTIONS_TOTAL: &str = "gigafactory_questions_total";
/// How a job's question to an operator changed: asked, then one of its ends.
const QUESTION_CHANGES: [&str; 5] = ["asked", "answered", "defaulted", "timed_out", "closed"];
pub const SCHEDULE_RUNS_TOTAL: &str = "gigafactory_schedule_runs_total";

/// Bounds for waits a person notices: a long-poll lasts up to `claim_wait_max_ms`.
const WAIT_BUCKETS_SECONDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];
/// Bounds for a store round trip: an embedded commit takes well under a millisecond, a
/// replicated one a few.
const COMMIT_BUCKETS_SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Bounds for a job's wait from submission to its first lease: from an idle fleet's
/// milliseconds to a backlog's day.
const PLACEMENT_BUCKETS_SECONDS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0,
    21600.0, 86400.0,
];

/// Every histogram with its bucket bounds, for the exporter: without bounds a histogram is
/// exported as a summary, which cannot be added up across nodes.
pub const HISTOGRAM_BUCKETS: [(&str, &[f64]); 5] = [
    (CLAIM_LATENCY_SECONDS, WAIT_BUCKETS_SECONDS),
    (CLAIM_LONG_POLL_SECONDS, WAIT_BUCKETS_SECONDS),
    (CLAIM_COMMIT_SECONDS, COMMIT_BUCKETS_SECONDS),
    (commit_metrics::STORE_COMMIT_SECONDS, COMMIT_BUCKETS_SECONDS),
    (PLACEMENT_LATENCY_SECONDS, PLACEMENT_BUCKETS_SECONDS),
];

/// Describes every event series and registers it at 0 with each label value it can take.
/// Call once the recorder is installed; registering adds nothing to a series that already
/// counted.
pub(crate) fn describe(engine: &'static str) {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    // Series without labels: described and registered at 0 in one pass.
    let counters: [(&'static str, &'static str); 9] = [
        (JOBS_SUBMITTED_TOTAL, "Jobs submitted through this node."),
        (
            CLAIMS_TOTAL,
            "Leases this node's claims granted (long-polls and ends).",
        ),
        (
            PLACEMENTS_TOTAL,
            "Jobs this node leased for the first time in their life.",
        ),
        (
            LEASES_GRANTED_TOTAL,
            "Leases this node granted, first or not.",
        ),
        (LEASES_RENEWED_TOTAL, "Lease renewals this node committed."),
        (LEASES_EXPIRED_TOTAL, "Leases this node's reaper expired."),
        (
            PREEMPTIONS_TOTAL,
            "Preemptions this node's scheduler asked for.",
        ),
        (
            ACTOR_FAILURES_TOTAL,
            "Job and factory actors that failed on this node.",
        ),
        (
            ACTOR_RESTARTS_TOTAL,
            "Singleton actors this node's supervisor restarted.",
        ),
    ];
    for (name, help) in counters {
        describe_counter!(name, Unit::Count, help);
        metrics::counter!(name).increment(0);
    }
    describe_counter!(
        JOBS_FINISHED_TOTAL,
        Unit::Count,
        "Jobs that reached a terminal state through this node, by state."
    );
    describe_counter!(
        FENCED_WRITES_TOTAL,
        Unit::Count,
        "Factory writes this node refused for a stale epoch, by route."
    );
    for state in FINISHED_STATES {
        metrics::counter!(JOBS_FINISHED_TOTAL, "state" => state).increment(0);
    }
    for route in FenceRoute::ALL {
        metrics::counter!(FENCED_WRITES_TOTAL, "route" => route.label()).increment(0);
    }
    describe_counter!(
        SCHEDULE_RUNS_TOTAL,
        Unit::Count,
        "Schedule runs this node recorded, by outcome (ticks fired, skipped, missed, ...)."
    );
    for outcome in SCHEDULE_RUN_OUTCOMES {
        metrics::counter!(SCHEDULE_RUNS_TOTAL, "outcome" => outcome).increment(0);
    }
    let histograms = [
        (
            CLAIM_LATENCY_SECONDS,
            "Time a claim's long-poll took on this node, whatever its outcome.",
        ),
        (
            CLAIM_COMMIT_SECONDS,
            "Time this node took to commit a claim's leases.",
        ),
        (
            PLACEMENT_LATENCY_SECONDS,
            "Time from a job's creation to its first lease, for leases this node granted.",
        ),
    ];
    for (name, help) in histograms {
        describe_histogram!(name, Unit::Seconds, help);
        let _ = metrics::histogram!(name);
    }
    describe_histogram!(
        CLAIM_LONG_POLL_SECONDS,
        Unit::Seconds,
        "Time a factory's claim waited on this node, by outcome (granted or empty)."
    );
    for outcome in PollOutcome::ALL {
        let _ = metrics::histogram!(CLAIM_LONG_POLL_SECONDS, "outcome" => outcome.label());
    }
    describe_gauge!(
        SHARDS_OWNED,
        Unit::Count,
        "Shards this node holds a lease on (0 on a store of its own, where it does all the work)."
    );
    metrics::gauge!(SHARDS_OWNED).increment(0.0);
    describe_gauge!(
        QUEUED_JOBS,
        Unit::Count,
        "Jobs in this node's scheduler index."
    );
    // Labelled by budget name: exported once a budget exists, so nothing to register here.
    describe_gauge!(
        BUDGET_SPEND_USD,
        "A budget's spend in its current period, in USD."
    );
    describe_gauge!(BUDGET_LIMIT_USD, "A budget's limit per period, in USD.");
    describe_gauge!(
        BUDGET_SPEND_RATIO,
        Unit::Percent,
        "A budget's spend over its limit (1 = the limit reached)."
    );
    describe_counter!(
        QUESTIONS_TOTAL,
        Unit::Count,
        "Jobs' questions to an operator committed through this node: asked, and how each ended."
    );
    for change in QUESTION_CHANGES {
        metrics::counter!(QUESTIONS_TOTAL, "change" => change).increment(0);
    }
    commit_metrics::describe(engine);
}

/// Counts a committed change of a job's question: an ask, an answer, a timeout, or the close
/// of an open question by the end of its lease (its outcome is dated this change).
pub(crate) fn question_changed(t: &gigafactory_core::event::Transition) {
    use gigafactory_core::event::EventKind;
    use gigafactory_core::job::question::Outcome;
    let Some(q) = &t.job.question else { return };
    let change = match (t.kind, &q.outcome) {
        (EventKind::Ask, _) => "asked",
        (EventKind::Answer | EventKind::QuestionTimeout, Some(o)) => o.name(),
        (_, Some(Outcome::Closed { at, .. })) if *at == t.at => "closed",
        _ => return,
    };
    metrics::counter!(QUESTIONS_TOTAL, "change" => change).increment(1);
}

/// A claim's leases, committed at `now`: each is a lease granted, and a job's first lease of
/// its life is a placement, timed from its creation. (A later attempt's wait from creation
/// would count its earlier runs as waiting.)
pub(crate) fn leases_granted(jobs: &[Job], now: Millis) {
    metrics::counter!(LEASES_GRANTED_TOTAL).increment(jobs.len() as u64);
    for job in jobs.iter().filter(|j| j.attempts == 1) {
        metrics::counter!(PLACEMENTS_TOTAL).increment(1);
        let waited_ms = now.saturating_sub(job.created_at);
        metrics::histogram!(PLACEMENT_LATENCY_SECONDS).record(waited_ms as f64 / 1_000.0);
    }
}

pub(crate) fn lease_renewed() {
    metrics::counter!(LEASES_RENEWED_TOTAL).increment(1);
}

/// Counts `outcome` if a stale epoch refused it: the one place a fenced refusal is counted,
/// by the route of the write.
pub(crate) fn count_fenced<T>(route: FenceRoute, outcome: &Result<T, CoordError>) {
    if let Err(CoordError::Fenced { .. }) = outcome {
        metrics::counter!(FENCED_WRITES_TOTAL, "route" => route.label()).increment(1);
    }
}

/// A claim's long-poll that took `waited`, and answered with `leases` leases unless the
/// scheduler restarted under it (`None`, an outcome of neither kind).
pub(crate) fn long_poll(leases: Option<usize>, waited: std::time::Duration) {
    let seconds = waited.as_secs_f64();
    metrics::histogram!(CLAIM_LATENCY_SECONDS).record(seconds);
    if let Some(leases) = leases {
        let outcome = PollOutcome::of(leases).label();
        metrics::histogram!(CLAIM_LONG_POLL_SECONDS, "outcome" => outcome).record(seconds);
    }
}

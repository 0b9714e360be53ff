//! Why a job is not running: one answer for the API, the CLI and the UI, made from what the
//! coordinator knows (the job, its parents, every factory, the holds in force and the queued
//! jobs it competes with) by a pure function. Every factory is listed as a candidate with
//! what keeps it from taking the job and what it would score, not only the one that won.
//!
//! The reason is the first that applies, in the order a job meets them: its state, its
//! parents, its time (backoff, `not_before`), a budget or limit that holds it, then the
//! factories: none fits, the fitting ones are busy, draining or offline, or the free slots go
//! to jobs ranked ahead of it (placement's own choice, replayed).

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fair_share::Standing;
use crate::fleet::FactoryStatus;
use crate::job::{FactoryId, Job, JobId, JobState, Millis};
use crate::placement;
use crate::scoring::{self, FactoryView, JobView, ScoreBreakdown, Weights};

/// Jobs ahead listed at most; the answer says when there are more.
pub const AHEAD_SHOWN_MAX: usize = 10;
/// Factories named as closest when none fits.
pub const CLOSEST_MAX: usize = 3;

/// A factory as the explanation sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct FactoryFacts {
    pub view: FactoryView,
    pub name: String,
    pub status: FactoryStatus,
}

/// A parent that has not succeeded yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ParentWait {
    pub id: JobId,
    pub key: String,
    pub state: String,
}

/// Why a candidate factory cannot take the job now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Refusal {
    MissingCapability { capability: String },
    MissingEngine { engine: String },
    NoFreeSlot { busy: u32, slots: u32 },
    Draining,
    Offline,
    Revoked,
}

impl Refusal {
    /// Whether the factory could never take the job as it is (not merely now).
    fn is_shape(&self) -> bool {
        matches!(
            self,
            Refusal::MissingCapability { .. } | Refusal::MissingEngine { .. }
        )
    }
}

/// One factory, what keeps it from the job, and what it would score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Candidate {
    pub factory_id: FactoryId,
    pub name: String,
    pub status: String,
    /// Empty when the factory could take the job now.
    pub refusals: Vec<Refusal>,
    /// What the job would score there; `None` when the factory lacks what the job needs.
    pub score: Option<ScoreBreakdown>,
}

/// Why the job is where it is, for a person; `summary` says it in one line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// Holding a lease: not waiting.
    Running {
        factory_id: FactoryId,
    },
    /// Finished, or waiting for a review: placement is done with it.
    NotWaiting {
        state: String,
    },
    WaitingForParents {
        parents: Vec<ParentWait>,
    },
    BackingOff {
        until: Millis,
    },
    NotBefore {
        until: Millis,
    },
    /// A budget, a concurrency limit or a rate limit holds it.
    Held {
        by: String,
    },
    /// No factory that is not revoked has what the job needs.
    NoFactoryFits {
        capabilities: Vec<String>,
        engine: Option<String>,
        /// The factories missing the fewest of them.
        closest: Vec<String>,
    },
    /// Factories fit, none is online with a free slot.
    FactoriesUnavailable {
        busy: Vec<String>,
        draining: Vec<String>,
        offline: Vec<String>,
        /// Queued jobs that would take a freed slot first.
        ahead: Vec<JobId>,
        ahead_more: bool,
    },
    /// Free slots fit, and jobs ranked ahead take them.
    Outscored {
        by: Vec<JobId>,
        more: bool,
        free_slots: u32,
    },
    /// Nothing holds it: the next claim from one of these factories takes it.
    Placeable {
        factories: Vec<String>,
    },
}

/// The whole answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Explanation {
    pub summary: String,
    #[serde(flatten)]
    pub reason: Reason,
    /// Every factory, those that could take the job first (best score first), then by how
    /// little keeps the others from it.
    pub candidates: Vec<Candidate>,
}

/// What [`explain`] reads.
pub struct Facts<'a> {
    pub job: &'a Job,
    pub job_view: &'a JobView,
    /// Its parents that have not succeeded.
    pub parents: Vec<ParentWait>,
    pub factories: &'a [FactoryFacts],
    /// What holds the job (a budget's or a limit's message), if anything does.
    pub held: Option<String>,
    /// Queued jobs it competes with, in any order (itself left out).
    pub rivals: &'a [JobView],
    /// Weights of the products that set their own; the rest use the defaults.
    pub weights: &'a HashMap<String, Weights>,
    pub standing: &'a Standing,
    pub now: Millis,
}

/// Why `facts.job` is not running, and every factory's part in it.
pub fn explain(facts: &Facts<'_>) -> Explanation {
    let candidates = candidates(facts);
    let reason = reason(facts, &candidates);
    Explanation {
        summary: summary(&reason),
        reason,
        candidates,
    }
}

fn candidates(facts: &Facts<'_>) -> Vec<Candidate> {
    let job = facts.job_view;
    let weights = weights_of(facts.weights, &job.product);
    let mut out: Vec<Candidate> = facts
        .factories
        .iter()
        .map(|f| {
            let mut refusals: Vec<Refusal> = job
                .capabilities
                .iter()
                .filter(|c| !f.view.capabilities.contains(c))
                .map(|c| Refusal::MissingCapability {
                    capability: c.clone(),
                })
                .collect();
            if let Some(engine) = &job.engine_class
                && !f.view.engine_classes.contains(engine)
            {
                refusals.push(Refusal::MissingEngine {
                    engine: engine.clone(),
                });
            }
            let fits = refusals.is_empty();
            match f.status {
                FactoryStatus::Online => {}
                FactoryStatus::Draining => refusals.push(Refusal::Draining),
                FactoryStatus::Offline => refusals.push(Refusal::Offline),
                FactoryStatus::Revoked => refusals.push(Refusal::Revoked),
            }
            if f.view.slots_busy >= f.view.slots {
                refusals.push(Refusal::NoFreeSlot {
                    busy: f.view.slots_busy,
                    slots: f.view.slots,
                });
            }
            let score = fits.then(|| scoring::score_candidate(job, &f.view, weights, facts.now));
            Candidate {
                factory_id: FactoryId(uuid::Uuid::from_u128(f.view.id)),
                name: f.name.clone(),
                status: f.status.name().to_owned(),
                refusals,
                score,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        let total = |c: &Candidate| c.score.as_ref().map(|s| s.total);
        a.refusals
            .len()
            .cmp(&b.refusals.len())
            .then_with(|| {
                total(b)
                    .unwrap_or(f64::NEG_INFINITY)
                    .total_cmp(&total(a).unwrap_or(f64::NEG_INFINITY))
            })
            .then_with(|| a.name.cmp(&b.name))
    });
    out
}

fn reason(facts: &Facts<'_>, candidates: &[Candidate]) -> Reason {
    let job = facts.job;
    match &job.state {
        JobState::Leased { lease }
        | JobState::Running { lease }
        | JobState::Preempting { lease, .. } => {
            return Reason::Running {
                factory_id: lease.factory,
            };
        }
        JobState::Pending if !facts.parents.is_empty() => {
            return Reason::WaitingForParents {
                parents: facts.parents.clone(),
            };
        }
        JobState::Failed { retry_at } if *retry_at > facts.now => {
            return Reason::BackingOff { until: *retry_at };
        }
        JobState::Queued { not_before } if *not_before > facts.now => {
            return Reason::NotBefore { until: *not_before };
        }
        JobState::Queued { .. } | JobState::Failed { .. } => {}
        other => {
            return Reason::NotWaiting {
                state: other.name().to_owned(),
            };
        }
    }
    if let Some(by) = &facts.held {
        return Reason::Held { by: by.clone() };
    }
    let usable: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| !c.refusals.contains(&Refusal::Revoked))
        .collect();
    let fitting: Vec<&&Candidate> = usable
        .iter()
        .filter(|c| !c.refusals.iter().any(Refusal::is_shape))
        .collect();
    if fitting.is_empty() {
        return no_factory_fits(facts.job_view, &usable);
    }
    let free: Vec<&&&Candidate> = fitting.iter().filter(|c| c.refusals.is_empty()).collect();
    let (ahead, more) = ahead(facts);
    if free.is_empty() {
        let named = |want: fn(&Refusal) -> bool| -> Vec<String> {
            fitting
                .iter()
                .filter(|c| c.refusals.iter().any(want))
                .map(|c| c.name.clone())
                .collect()
        };
        return Reason::FactoriesUnavailable {
            busy: named(|r| matches!(r, Refusal::NoFreeSlot { .. })),
            draining: named(|r| *r == Refusal::Draining),
            offline: named(|r| *r == Refusal::Offline),
            ahead,
            ahead_more: more,
        };
    }
    let free_slots: u32 = facts
        .factories
        .iter()
        .filter(|f| free.iter().any(|c| c.factory_id.0.as_u128() == f.view.id))
        .map(|f| f.view.slots - f.view.slots_busy)
        .sum();
    if ahead.len() as u32 >= free_slots {
        return Reason::Outscored {
            by: ahead,
            more,
            free_slots,
        };
    }
    Reason::Placeable {
        factories: free.iter().map(|c| c.name.clone()).collect(),
    }
}

fn no_factory_fits(job: &JobView, usable: &[&Candidate]) -> Reason {
    let offered =
        |want: &dyn Fn(&Refusal) -> bool| usable.iter().any(|c| !c.refusals.iter().any(want));
    let capabilities = job
        .capabilities
        .iter()
        .filter(|cap| {
            !offered(
                &|r| matches!(r, Refusal::MissingCapability { capability } if capability == *cap),
            )
        })
        .cloned()
        .collect::<Vec<_>>();
    let engine = job
        .engine_class
        .clone()
        .filter(|_| !offered(&|r| matches!(r, Refusal::MissingEngine { .. })));
    let mut by_gap: Vec<(usize, &str)> = usable
        .iter()
        .map(|c| {
            let gap = c.refusals.iter().filter(|r| r.is_shape()).count();
            (gap, c.name.as_str())
        })
        .collect();
    by_gap.sort();
    Reason::NoFactoryFits {
        capabilities,
        engine,
        closest: by_gap
            .into_iter()
            .take(CLOSEST_MAX)
            .map(|(_, n)| n.to_owned())
            .collect(),
    }
}

/// The rivals placement would pick before the job on the best factory that fits it, as if
/// that factory had endless free slots: placement's own choice, replayed until the job comes.
fn ahead(facts: &Facts<'_>) -> (Vec<JobId>, bool) {
    let job = facts.job_view;
    let Some(best) = facts
        .factories
        .iter()
        .filter(|f| f.status == FactoryStatus::Online)
        .filter(|f| scoring::fits(&job.capabilities, job.engine_class.as_ref(), &f.view))
        .max_by(|a, b| {
            let w = weights_of(facts.weights, &job.product);
            scoring::score_candidate(job, &a.view, w, facts.now)
                .total
                .total_cmp(&scoring::score_candidate(job, &b.view, w, facts.now).total)
                .then(b.view.id.cmp(&a.view.id))
        })
    else {
        return (Vec::new(), false);
    };
    let mut factory = best.view.clone();
    factory.slots_busy = 0;
    factory.slots = u32::MAX;
    let mut pool: Vec<JobView> = facts
        .rivals
        .iter()
        .filter(|r| r.id != job.id && scoring::eligible(r, &factory))
        .cloned()
        .collect();
    pool.push(job.clone());
    let mut standing = facts.standing.clone();
    let mut ahead = Vec::new();
    while let Some(choice) = placement::choose(
        &pool,
        &factory,
        |p| weights_of(facts.weights, p),
        &standing,
        facts.now,
    ) {
        let picked = pool.swap_remove(choice.index);
        if picked.id == job.id {
            return (ahead, false);
        }
        if ahead.len() == AHEAD_SHOWN_MAX {
            return (ahead, true);
        }
        standing.add(&picked.product);
        ahead.push(JobId(uuid::Uuid::from_u128(picked.id)));
    }
    (ahead, false)
}

/// A product's weights: its own, or the defaults.
pub fn weights_of<'w>(weights: &'w HashMap<String, Weights>, product: &str) -> &'w Weights {
    static DEFAULT: std::sync::OnceLock<Weights> = std::sync::OnceLock::new();
    weights
        .get(product)
        .unwrap_or_else(|| DEFAULT.get_or_init(Weights::default))
}

fn summary(reason: &Reason) -> String {
    let list = |v: &[String]| v.join(", ");
    match reason {
        Reason::Running { .. } => "running: it holds a lease".to_owned(),
        Reason::NotWaiting { state } => format!("not waiting for placement: it is {state}"),
        Reason::WaitingForParents { parents } => format!(
            "waiting for {} parent(s): {}",
            parents.len(),
            parents
                .iter()
                .map(|p| format!("{} ({})", p.key, p.state))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Reason::BackingOff { until } => {
            format!(
                "backing off after a failure until {}",
                crate::budget::format_utc(*until)
            )
        }
        Reason::NotBefore { until } => {
            format!("not to start before {}", crate::budget::format_utc(*until))
        }
        Reason::Held { by } => format!("held: {by}"),
        Reason::NoFactoryFits {
            capabilities,
            engine,
            closest,
        } => {
            let mut needs: Vec<String> = capabilities
                .iter()
                .map(|c| format!("capability {c}"))
                .collect();
            needs.extend(engine.iter().map(|e| format!("engine {e}")));
            let needs = if needs.is_empty() {
                "what it needs in one place".to_owned()
            } else {
                list(&needs)
            };
            if closest.is_empty() {
                format!("no factory has {needs}; no factory is enrolled")
            } else {
                format!("no factory has {needs}; closest: {}", list(closest))
            }
        }
        Reason::FactoriesUnavailable {
            busy,
            draining,
            offline,
            ahead,
            ahead_more,
        } => {
            let mut parts = Vec::new();
            for (what, names) in [("busy", busy), ("draining", draining), ("offline", offline)] {
                if !names.is_empty() {
                    parts.push(format!("{what}: {}", list(names)));
                }
            }
            let queue = match (ahead.len(), ahead_more) {
                (0, _) => String::new(),
                (n, false) => format!("; {n} job(s) ahead of it"),
                (n, true) => format!("; more than {n} jobs ahead of it"),
            };
            format!(
                "every factory that fits is unavailable ({}){queue}",
                parts.join("; ")
            )
        }
        Reason::Outscored {
            by,
            more,
            free_slots,
        } => format!(
            "outscored: {}{} job(s) ranked ahead take the {free_slots} free slot(s) that fit",
            if *more { "more than " } else { "" },
            by.len()
        ),
        Reason::Placeable { factories } => format!(
            "nothing holds it: the next claim from {} takes it",
            list(factories)
        ),
    }
}

#[cfg(test)]
mod tests;

//! Scaling hints: per capability shape, how many factories the queue asks for. An autoscaler
//! (KEDA's metrics-api scaler, a script) reads the figure and adds or removes factories of
//! that shape; Gigafactory never starts machines itself.
//!
//! # The rule
//!
//! For a shape with `runnable` queued jobs that could be placed now (not waiting out a
//! backoff or a provider's reset, not held by a budget or a limit: more factories would not
//! run those), `running` running ones, the oldest runnable job waiting `age` since it could
//! run, and `factories_online` online factories that fit it holding `slots` slots:
//!
//! 1. **Slots per factory** `s`: the `slots_per_factory` parameter when given; else the mean
//!    of the fitting factories' slots (rounded down, at least 1) when any are online; else
//!    `DEFAULT_SLOTS_PER_FACTORY`. Rounding down errs towards one factory too many rather
//!    than a job left waiting.
//! 2. **Demand**: `ceil((runnable + running) / s)` factories hold every job at once. Running
//!    jobs count, so a scale-down never asks for fewer factories than the running jobs need
//!    (`ceil(running / s)`).
//! 3. **Waited too long**: when a job is runnable and the oldest has waited longer than
//!    `target_wait_seconds`, the queue is not draining at the current size (the fitting
//!    factories may be busy with other shapes' jobs), so ask for at least one factory more
//!    than are online now: `max(demand, factories_online + 1)`.
//! 4. Nothing runnable and nothing running: zero, so a scaler may scale the shape to zero.
//!
//! The count is a hint for factories of exactly this shape; a factory fits every shape whose
//! requirements it meets, so the hints of overlapping shapes are not to be added up.

use crate::load::{Shape, ShapeLoad};
use schemars::JsonSchema;
use serde::Serialize;

/// Slots a factory is assumed to bring when none of the shape is online to measure.
pub const DEFAULT_SLOTS_PER_FACTORY: u32 = 1;
/// How long the oldest queued job may wait before one more factory is asked for.
pub const DEFAULT_TARGET_WAIT_SECONDS: u64 = 300;
/// Bounds of the parameters a caller may set.
pub const SLOTS_PER_FACTORY_MAX: u32 = 1_024;
pub const TARGET_WAIT_SECONDS_MAX: u64 = 7 * 24 * 3_600;

/// A parameter of the rule out of its range, or a shape that cannot be read: the caller fixes
/// the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HintError {
    #[error("capabilities {0:?} has an empty item: name them comma-separated, or `any` for none")]
    EmptyCapability(String),
    #[error("engine_class selects a shape only with capabilities (`any` for none)")]
    EngineClassAlone,
    #[error("name the shape: capabilities (comma-separated, `any` for none) and engine_class")]
    NoShape,
    #[error("slots_per_factory must be between 1 and {SLOTS_PER_FACTORY_MAX}, not {0}")]
    SlotsPerFactory(u32),
    #[error("target_wait_seconds must be at most {TARGET_WAIT_SECONDS_MAX}, not {0}")]
    TargetWait(u64),
}

/// The rule's parameters (see the module's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ScaleRule {
    /// Slots one factory brings; `None`: the fitting factories' mean, or the default.
    pub slots_per_factory: Option<u32>,
    /// Used without `slots_per_factory` when no fitting factory is online.
    pub default_slots_per_factory: u32,
    /// The oldest queued job waiting longer asks for one factory more than are online.
    pub target_wait_seconds: u64,
}

impl Default for ScaleRule {
    fn default() -> Self {
        ScaleRule {
            slots_per_factory: None,
            default_slots_per_factory: DEFAULT_SLOTS_PER_FACTORY,
            target_wait_seconds: DEFAULT_TARGET_WAIT_SECONDS,
        }
    }
}

/// Why a shape asks for the factories it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Nothing queued or running.
    Idle,
    /// Enough factories to hold every queued and running job.
    Demand,
    /// The oldest queued job waited past the target: one more than are online.
    Waited,
}

/// One shape's figures and the factories it asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ShapeHint {
    pub capabilities: Vec<String>,
    pub engine_class: Option<String>,
    /// Every queued job of the shape.
    pub queued: usize,
    /// Those that could be placed now: what the rule counts.
    pub runnable: usize,
    pub running: usize,
    pub oldest_queued_age_seconds: u64,
    /// Online (not draining) factories that fit the shape, and their slots.
    pub factories_online: usize,
    pub slots: u32,
    /// The `s` the rule used for this shape.
    pub slots_per_factory: u32,
    pub desired_factories: usize,
    pub reason: Reason,
}

impl ScaleRule {
    /// The rule with the caller's parameters, each checked against its bounds.
    pub fn new(
        slots_per_factory: Option<u32>,
        target_wait_seconds: Option<u64>,
    ) -> Result<Self, HintError> {
        if let Some(s) = slots_per_factory
            && !(1..=SLOTS_PER_FACTORY_MAX).contains(&s)
        {
            return Err(HintError::SlotsPerFactory(s));
        }
        if let Some(w) = target_wait_seconds
            && w > TARGET_WAIT_SECONDS_MAX
        {
            return Err(HintError::TargetWait(w));
        }
        let default = ScaleRule::default();
        Ok(ScaleRule {
            slots_per_factory,
            target_wait_seconds: target_wait_seconds.unwrap_or(default.target_wait_seconds),
            ..default
        })
    }

    /// Step 1: the slots one factory of the shape is taken to bring (at least 1).
    pub fn slots_per_factory(&self, load: &ShapeLoad) -> u32 {
        let measured = (load.factories_online > 0)
            .then(|| (load.slots as usize / load.factories_online) as u32);
        self.slots_per_factory
            .or(measured)
            .unwrap_or(self.default_slots_per_factory)
            .max(1)
    }

    /// Steps 2 to 4: the factories `load` asks for, and why.
    pub fn desired(&self, load: &ShapeLoad) -> (usize, Reason) {
        let s = self.slots_per_factory(load) as usize;
        // Jobs waiting out a backoff or a provider's reset, or held by a budget or a limit,
        // would not run on more factories: only the runnable ones ask for them.
        let demand = (load.runnable + load.running).div_ceil(s);
        let waited = load.runnable > 0
            && load.oldest_queued_age_ms > self.target_wait_seconds.saturating_mul(1_000);
        let answer = if waited && load.factories_online + 1 > demand {
            (load.factories_online + 1, Reason::Waited)
        } else if demand == 0 {
            (0, Reason::Idle)
        } else {
            (demand, Reason::Demand)
        };
        debug_assert!(
            answer.0 >= load.running.div_ceil(s),
            "below the running jobs"
        );
        answer
    }

    /// `load`'s figures beside what the rule asks for it.
    pub fn hint(&self, load: &ShapeLoad) -> ShapeHint {
        let (desired_factories, reason) = self.desired(load);
        ShapeHint {
            capabilities: load.shape.capabilities.clone(),
            engine_class: load.shape.engine_class.clone(),
            queued: load.queued,
            runnable: load.runnable,
            running: load.running,
            oldest_queued_age_seconds: load.oldest_queued_age_ms / 1_000,
            factories_online: load.factories_online,
            slots: load.slots,
            slots_per_factory: self.slots_per_factory(load),
            desired_factories,
            reason,
        }
    }
}

/// The one shape a caller asks about: `capabilities` comma-separated (`any` for none) and the
/// engine class, exactly (`gpu,linux` without an engine class is not `gpu,linux` with one).
/// `None` when neither is given: every shape.
pub fn select(
    capabilities: Option<&str>,
    engine_class: Option<&str>,
) -> Result<Option<Shape>, HintError> {
    let Some(list) = capabilities else {
        return match engine_class {
            Some(_) => Err(HintError::EngineClassAlone),
            None => Ok(None),
        };
    };
    let caps: Vec<String> = match list.trim() {
        "any" => Vec::new(),
        _ => list.split(',').map(|c| c.trim().to_string()).collect(),
    };
    if caps.iter().any(String::is_empty) {
        return Err(HintError::EmptyCapability(list.to_string()));
    }
    Ok(Some(Shape::new(&caps, engine_class)))
}

#[cfg(test)]
mod tests;

//! The REST API's bodies for money: a job's usage report and cost, budgets as operators set
//! and see them, and a budget's burndown. Amounts are integer micro-dollars (`*_micros`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::budget::{BudgetRecord, BudgetState, Burndown, Micros, Period, Policy};
use crate::event::Author;
use crate::job::{JobId, Millis};
use crate::usage::{JobCost, ModelUsage};

/// What a job spent on a model, as its factory reports it (`POST /v1/jobs/{id}/usage`, a
/// fenced write). Without `cost_micros` the coordinator prices the tokens from its table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageReport {
    pub model: String,
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cost_micros: Option<Micros>,
}

/// A usage report carried on a job's end (`complete`, `fail`, `release`), under the request id
/// it would have been sent with alone: the end applies it first, in the same transaction, and
/// counts it once per id whether it arrived alone, carried, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(from = "FlatUsageWrite", into = "FlatUsageWrite")]
pub struct UsageWrite {
    pub request_id: String,
    pub report: UsageReport,
}

/// [`UsageWrite`] on the wire: one flat object, `{"request_id", "model", ...}`. Spelled out
/// rather than flattened, since serde does not refuse unknown fields through `flatten`, and a
/// misspelt `cost_micros` must not be priced as if it were absent.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FlatUsageWrite {
    request_id: String,
    model: String,
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cost_micros: Option<Micros>,
}

impl From<FlatUsageWrite> for UsageWrite {
    fn from(w: FlatUsageWrite) -> Self {
        UsageWrite {
            request_id: w.request_id,
            report: UsageReport {
                model: w.model,
                input_tokens: w.input_tokens,
                output_tokens: w.output_tokens,
                cost_micros: w.cost_micros,
            },
        }
    }
}

impl From<UsageWrite> for FlatUsageWrite {
    fn from(w: UsageWrite) -> Self {
        FlatUsageWrite {
            request_id: w.request_id,
            model: w.report.model,
            input_tokens: w.report.input_tokens,
            output_tokens: w.report.output_tokens,
            cost_micros: w.report.cost_micros,
        }
    }
}

/// A job's cost as the API shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CostView {
    pub total_micros: Micros,
    /// Factory time settled so far.
    pub factory_micros: Micros,
    pub models: Vec<ModelUsage>,
}

impl From<&JobCost> for CostView {
    fn from(c: &JobCost) -> Self {
        CostView {
            total_micros: c.total(),
            factory_micros: c.factory_micros,
            models: c.models.clone(),
        }
    }
}

/// A budget as an operator sets it (`PUT /v1/budgets/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetBody {
    pub product: String,
    #[serde(default)]
    pub label: Option<String>,
    pub period: Period,
    pub limit_micros: Micros,
    #[serde(default)]
    pub alert_percent: Option<u8>,
    #[serde(default)]
    pub policy: Option<Policy>,
}

/// Why an operator pauses a budget (`POST /v1/budgets/{name}/pause`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseBody {
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PauseView {
    pub by: Author,
    pub reason: String,
    pub at: Millis,
}

/// A budget and where it stands in its current period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BudgetView {
    pub name: String,
    pub product: String,
    pub label: Option<String>,
    pub period: Period,
    pub limit_micros: Micros,
    pub alert_percent: u8,
    pub policy: Policy,
    /// `active`, `paused` or `exhausted`.
    pub state: String,
    pub paused: Option<PauseView>,
    pub spent_micros: Micros,
    pub period_start: Millis,
    /// When the period resets.
    pub period_end: Millis,
    /// Whether spend passed the alert threshold this period.
    pub alert_reached: bool,
    /// Why the budget holds its jobs, when it does, as the jobs say it.
    pub hold: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl BudgetView {
    /// `record` with `spent` in the period holding `now`.
    pub fn of(record: &BudgetRecord, spent: Micros, now: Millis) -> Self {
        let spec = &record.spec;
        BudgetView {
            name: spec.name.clone(),
            product: spec.product.clone(),
            label: spec.label.clone(),
            period: spec.period,
            limit_micros: spec.limit_micros,
            alert_percent: spec.alert_percent,
            policy: spec.policy,
            state: crate::budget::state(record, spent).name().into(),
            paused: record.paused.as_ref().map(|p| PauseView {
                by: p.by.clone(),
                reason: p.reason.clone(),
                at: p.at,
            }),
            spent_micros: spent,
            period_start: spec.period.start(now),
            period_end: spec.period.end(now),
            alert_reached: spent >= spec.alert_micros(),
            hold: crate::budget::hold(record, spent, now).map(|h| h.message),
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }

    pub fn is_exhausted(&self) -> bool {
        self.state == BudgetState::Exhausted.name()
    }
}

/// One job's spend in a budget's period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobSpend {
    pub job_id: JobId,
    pub title: String,
    pub spent_micros: Micros,
}

/// A budget with its burndown and its top jobs (`GET /v1/budgets/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct BudgetDetail {
    pub budget: BudgetView,
    pub burndown: Burndown,
    /// The jobs that spent most this period, most first.
    pub top_jobs: Vec<JobSpend>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Complete, FencedWrite};

    #[test]
    fn a_complete_carries_usage_reports_each_with_its_own_request_id() {
        let body = serde_json::json!({
            "epoch": 3, "request_id": "end", "changed_paths": ["a"],
            "usage": [
                {"request_id": "u1", "model": "sonnet", "input_tokens": 10, "cost_micros": 5},
                {"request_id": "u2", "model": "haiku", "output_tokens": 2}
            ]
        });
        let w: FencedWrite<Complete> = serde_json::from_value(body).unwrap();
        let ids: Vec<&str> = w.body.usage.iter().map(|u| u.request_id.as_str()).collect();
        assert_eq!(ids, ["u1", "u2"]);
        assert_eq!(
            w.body.usage[0].report,
            UsageReport {
                model: "sonnet".into(),
                input_tokens: 10,
                output_tokens: 0,
                cost_micros: Some(5),
            }
        );
        let again: FencedWrite<Complete> =
            serde_json::from_value(serde_json::to_value(&w).unwrap()).unwrap();
        assert_eq!(again, w);
    }

    #[test]
    fn an_end_without_usage_says_nothing_of_it_and_a_report_with_a_stray_field_is_refused() {
        let bare = serde_json::to_value(Complete::default()).unwrap();
        assert_eq!(bare, serde_json::json!({"changed_paths": []}));
        let stray = serde_json::json!({"request_id": "u1", "model": "m", "cost_micro": 1});
        assert!(serde_json::from_value::<UsageWrite>(stray).is_err());
        let flat = serde_json::to_value(UsageWrite {
            request_id: "u1".into(),
            report: UsageReport {
                model: "m".into(),
                input_tokens: 1,
                output_tokens: 2,
                cost_micros: None,
            },
        })
        .unwrap();
        assert_eq!(
            flat,
            serde_json::json!({
                "request_id": "u1", "model": "m", "input_tokens": 1, "output_tokens": 2,
                "cost_micros": null
            })
        );
    }
}

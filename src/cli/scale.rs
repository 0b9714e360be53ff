//! `gigafactory autoscale`: the scaling hints of `GET /v1/autoscale`, per capability shape, as
//! a table (with the rule's parameters above it) or, with `-o json`,
//! the API's answer.

use anyhow::Result;
use serde_json::Value;

use gigafactory_core::wire::urlencode;

use super::output::{Cell, Fmt, Style, Table, View, span};
use crate::Remote;
use crate::client::Client;

/// Which shape, and the rule's parameters; each left out takes the coordinator's default.
#[derive(clap::Args)]
pub struct AutoscaleArgs {
    /// Only this shape's capabilities, comma-separated (`any` for none).
    #[arg(long)]
    capabilities: Option<String>,
    /// Only this engine class (with --capabilities).
    #[arg(long)]
    engine_class: Option<String>,
    /// Slots one factory brings (default: the fitting factories' mean).
    #[arg(long)]
    slots_per_factory: Option<u32>,
    /// Seconds the oldest queued job may wait before one more factory is asked for.
    #[arg(long)]
    target_wait_seconds: Option<u64>,
}

pub async fn autoscale(remote: &Remote, view: &View, args: AutoscaleArgs) -> Result<()> {
    let c = Client::new(remote)?;
    let params = [
        ("capabilities", args.capabilities),
        ("engine_class", args.engine_class),
        (
            "slots_per_factory",
            args.slots_per_factory.map(|s| s.to_string()),
        ),
        (
            "target_wait_seconds",
            args.target_wait_seconds.map(|s| s.to_string()),
        ),
    ];
    let query: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", urlencode(v))))
        .collect();
    let answer: Value = c.get(&format!("/v1/autoscale?{}", query.join("&"))).await?;
    view.print(answer, |fmt, a: &Value| hints_table(fmt, a))
}

/// The rule on top, then one row per shape.
fn hints_table(fmt: &Fmt, a: &Value) -> String {
    let rule = &a["rule"];
    let slots = match rule["slots_per_factory"].as_u64() {
        Some(s) => s.to_string(),
        None => format!(
            "the fitting factories' mean (else {})",
            rule["default_slots_per_factory"]
        ),
    };
    let mut out = format!(
        "rule: slots per factory: {slots}; one more factory once a job waited {}s\n",
        rule["target_wait_seconds"]
    );
    let mut t = Table::new(&[
        "CAPABILITIES",
        "ENGINE",
        "QUEUED",
        "RUNNING",
        "OLDEST",
        "ONLINE",
        "SLOTS",
        "DESIRED",
        "WHY",
    ])
    .right(&[2, 3, 4, 5, 6, 7]);
    for h in a["shapes"].as_array().into_iter().flatten() {
        let caps: Vec<&str> = h["capabilities"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let desired = h["desired_factories"].as_u64().unwrap_or(0);
        let online = h["factories_online"].as_u64().unwrap_or(0);
        let style = match desired.cmp(&online) {
            std::cmp::Ordering::Greater => Style::Yellow,
            _ => Style::Plain,
        };
        t.row(vec![
            (if caps.is_empty() {
                "any".to_string()
            } else {
                caps.join(",")
            })
            .into(),
            h["engine_class"].as_str().unwrap_or("-").into(),
            format!("{} ({} runnable)", h["queued"], h["runnable"]).into(),
            h["running"].to_string().into(),
            match h["oldest_queued_age_seconds"].as_u64() {
                Some(age) if h["runnable"].as_u64() > Some(0) => span(age * 1_000),
                _ => "-".to_string(),
            }
            .into(),
            online.to_string().into(),
            h["slots"].to_string().into(),
            Cell::styled(desired.to_string(), style),
            h["reason"].as_str().unwrap_or("-").into(),
        ]);
    }
    if a["shapes"].as_array().is_none_or(|s| s.is_empty()) {
        out.push_str("nothing queued or running\n");
        return out;
    }
    out.push_str(&t.render(fmt));
    out
}

//! The budget commands: `gigafactory budgets ls | show | set | pause | resume | rm`. Amounts
//! are read as exact dollars (`core::budget::parse_usd`, never a float) and sent as integer
//! micro-dollars; they are shown with `format_usd`, moments relative to now (or in UTC with `--utc`), days as dates. The server checks
//! every value; a refusal prints its message.

use anyhow::Result;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use gigafactory_core::budget::{Micros, Period, Policy, format_usd, format_utc, parse_usd};
use gigafactory_core::job::Millis;
use gigafactory_core::wire::{BudgetBody, BudgetView, JobSpend, PauseBody};
use serde::Deserialize;

use gigafactory_core::wire::urlencode;
use serde_json::Value;

use super::output::{Cell, Fmt, Style, Table, View};
use crate::Remote;
use crate::client::Client;

#[derive(clap::Subcommand)]
pub enum BudgetsCmd {
    /// List budgets: state, spend against the limit this period, when it resets.
    Ls,
    /// One budget: its state, spend, the burndown of this period with its forecast, top jobs.
    Show { name: String },
    /// Create or change a budget.
    Set {
        name: String,
        /// The product whose jobs it counts and holds.
        #[arg(long)]
        product: String,
        /// Count and hold only the product's jobs with this label (a team, say).
        #[arg(long)]
        label: Option<String>,
        /// The UTC calendar period the limit applies to.
        #[arg(long, value_parser = PossibleValuesParser::new(["day", "week", "month"])
            .map(|p| Period::parse(&p).expect("one of the possible values")))]
        period: Period,
        /// The limit per period in USD, exactly (50, 12.50, 0.000001).
        #[arg(long, value_parser = parse_usd)]
        limit_usd: Micros,
        /// Warn once spend passes this percent of the limit (the server's default: 80).
        #[arg(long)]
        alert_percent: Option<u8>,
        /// What running jobs do when the limit is reached: let them finish (the default), or
        /// stop them with a checkpoint.
        #[arg(long, value_parser = PossibleValuesParser::new(["finish", "stop"])
            .map(|p| if p == "stop" { Policy::Stop } else { Policy::Finish }))]
        policy: Option<Policy>,
    },
    /// Pause a budget: its jobs get no new leases until it is resumed.
    Pause {
        name: String,
        /// Why, for whoever wonders why their jobs wait.
        #[arg(long)]
        reason: String,
    },
    /// Resume a paused budget: its waiting jobs may run at once.
    Resume { name: String },
    /// Remove a budget and what it counted.
    Rm { name: String },
}

/// A budget's burndown as `GET /v1/budgets/{name}` sends it.
#[derive(Deserialize)]
struct Burndown {
    period_end: Millis,
    days: Vec<BurndownDay>,
    forecast_micros: Micros,
}

#[derive(Deserialize)]
struct BurndownDay {
    day: Millis,
    spent_micros: Micros,
    cumulative_micros: Micros,
}

/// `GET /v1/budgets/{name}`.
#[derive(Deserialize)]
struct Detail {
    budget: BudgetView,
    burndown: Burndown,
    top_jobs: Vec<JobSpend>,
}

pub async fn budgets(remote: &Remote, view: &View, cmd: BudgetsCmd) -> Result<()> {
    let c = Client::new(remote)?;
    let path = |name: &str| format!("/v1/budgets/{}", urlencode(name));
    let one = |answer: Value| {
        view.print(answer, |fmt, b: &BudgetView| {
            table(fmt, std::slice::from_ref(b))
        })
    };
    match cmd {
        BudgetsCmd::Ls => {
            let answer: Value = c.get("/v1/budgets").await?;
            view.print(answer, |fmt, budgets: &Vec<BudgetView>| table(fmt, budgets))?;
        }
        BudgetsCmd::Show { name } => {
            let answer: Value = c.get(&path(&name)).await?;
            view.print(answer, describe)?;
        }
        BudgetsCmd::Set {
            name,
            product,
            label,
            period,
            limit_usd,
            alert_percent,
            policy,
        } => {
            let body = BudgetBody {
                product,
                label,
                period,
                limit_micros: limit_usd,
                alert_percent,
                policy,
            };
            one(c.put(&path(&name), &body).await?)?;
        }
        BudgetsCmd::Pause { name, reason } => {
            let body = serde_json::to_value(PauseBody { reason })?;
            one(c
                .post(&format!("{}/pause", path(&name)), Some(&body))
                .await?)?;
        }
        BudgetsCmd::Resume { name } => {
            one(c.post(&format!("{}/resume", path(&name)), None).await?)?;
        }
        BudgetsCmd::Rm { name } => c.delete(&path(&name)).await?,
    }
    Ok(())
}

/// Spend as a share of the limit, in whole percent (rounded down, so 100 % means reached).
fn percent(spent: Micros, limit: Micros) -> u128 {
    u128::from(spent) * 100 / u128::from(limit.max(1))
}

/// Whose jobs a budget counts: the product, or the product's jobs with the label.
fn scope(b: &BudgetView) -> String {
    match &b.label {
        Some(label) => format!("{}/{label}", b.product),
        None => b.product.clone(),
    }
}

/// One line a budget, under a header.
fn table(fmt: &Fmt, budgets: &[BudgetView]) -> String {
    let mut t = Table::new(&[
        "NAME",
        "PRODUCT/LABEL",
        "STATE",
        "SPENT OF LIMIT",
        "PERIOD",
        "RESETS",
    ])
    .right(&[3]);
    for b in budgets {
        let spend = format!(
            "{} of {} ({}%)",
            format_usd(b.spent_micros),
            format_usd(b.limit_micros),
            percent(b.spent_micros, b.limit_micros)
        );
        let style = match b.state.as_str() {
            "active" => Style::Green,
            "exhausted" => Style::Red,
            _ => Style::Yellow,
        };
        t.row(vec![
            b.name.as_str().into(),
            scope(b).into(),
            Cell::styled(b.state.to_string(), style),
            spend.into(),
            b.period.name().into(),
            fmt.at(b.period_end).into(),
        ]);
    }
    t.render(fmt)
}

/// A budget as `budgets show` prints it: where it stands, then its period day by day, the
/// forecast, and the jobs that spent most.
fn describe(fmt: &Fmt, d: &Detail) -> String {
    let b = &d.budget;
    let mut out = format!("budget     {} (jobs of {})\n", b.name, scope(b));
    out.push_str(&format!("state      {}\n", b.state));
    if let Some(p) = &b.paused {
        out.push_str(&format!(
            "paused     by {} {}: {}\n",
            p.by,
            fmt.at(p.at),
            p.reason
        ));
    }
    if let Some(hold) = &b.hold {
        out.push_str(&format!("holds      its jobs: {hold}\n"));
    }
    out.push_str(&format!(
        "spent      {} of {} ({}%); alert at {}%{}\n",
        format_usd(b.spent_micros),
        format_usd(b.limit_micros),
        percent(b.spent_micros, b.limit_micros),
        b.alert_percent,
        if b.alert_reached { " (reached)" } else { "" }
    ));
    out.push_str(&format!(
        "period     {} from {}, resets {}\n",
        b.period.name(),
        fmt.at(b.period_start),
        fmt.at(b.period_end)
    ));
    out.push_str(&format!(
        "policy     {} (running jobs at the limit)\n",
        b.policy.name()
    ));
    out.push_str(&format!(
        "burndown   {:<10} {:>16} {:>16}\n",
        "day", "spent", "cumulative"
    ));
    for day in &d.burndown.days {
        // `format_utc` reads `YYYY-MM-DD HH:MM UTC`: a day is its date.
        let date: String = format_utc(day.day).chars().take(10).collect();
        out.push_str(&format!(
            "           {date:<10} {:>16} {:>16}\n",
            format_usd(day.spent_micros),
            format_usd(day.cumulative_micros)
        ));
    }
    let over = if d.burndown.forecast_micros > b.limit_micros {
        ", over the limit"
    } else {
        ""
    };
    out.push_str(&format!(
        "forecast   {} by the period's end ({}) at the recent rate{over}\n",
        format_usd(d.burndown.forecast_micros),
        fmt.at(d.burndown.period_end)
    ));
    if d.top_jobs.is_empty() {
        out.push_str("top jobs   none spent this period\n");
    }
    for (i, j) in d.top_jobs.iter().enumerate() {
        let label = if i == 0 { "top jobs" } else { "" };
        out.push_str(&format!(
            "{label:<10} {} {:>14}  {}\n",
            j.job_id,
            format_usd(j.spent_micros),
            j.title
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use gigafactory_core::budget::{BudgetRecord, BudgetSpec, Pause};
    use gigafactory_core::event::Author;
    use gigafactory_core::job::JobId;

    /// 2026-12-02 15:30 UTC.
    const NOW: Millis = 1_796_225_400_000;
    const DAY_MS: Millis = 86_400_000;

    fn view(spent: Micros, paused: bool) -> BudgetView {
        let record = BudgetRecord {
            spec: BudgetSpec {
                name: "ops-daily".into(),
                product: "ops".into(),
                label: Some("team-a".into()),
                period: Period::Day,
                limit_micros: 50_000_000,
                alert_percent: 80,
                policy: Policy::Stop,
            },
            paused: paused.then(|| Pause {
                by: Author::Admin("alice".into()),
                reason: "runaway agent".into(),
                at: NOW,
            }),
            created_at: 0,
            updated_at: 0,
        };
        BudgetView::of(&record, spent, NOW)
    }

    #[test]
    fn lists_a_budget_with_its_spend_against_the_limit_and_when_it_resets() {
        let listed = table(&Fmt::plain(NOW), &[view(12_400_000, false)]);
        let line = listed.lines().nth(1).unwrap();
        for part in [
            "ops-daily",
            "ops/team-a",
            "active",
            "$12.40 of $50.00 (24%)",
            "day",
            "in 8h 30m",
        ] {
            assert!(line.contains(part), "{part:?} in {line:?}");
        }
    }

    #[test]
    fn shows_state_spend_burndown_forecast_and_top_jobs() {
        let detail = Detail {
            budget: view(50_000_000, false),
            burndown: Burndown {
                period_end: NOW - NOW % DAY_MS + DAY_MS,
                days: vec![BurndownDay {
                    day: NOW - NOW % DAY_MS,
                    spent_micros: 50_000_000,
                    cumulative_micros: 50_000_000,
                }],
                forecast_micros: 75_000_000,
            },
            top_jobs: vec![JobSpend {
                job_id: JobId(uuid::Uuid::nil()),
                title: "big refactor".into(),
                spent_micros: 30_000_000,
            }],
        };
        let shown = describe(&Fmt::plain(NOW), &detail);
        for line in [
            "state      exhausted",
            "holds      its jobs: budget ops-daily exhausted: $50.00 of $50.00, resets \
             2026-12-03 00:00 UTC",
            "spent      $50.00 of $50.00 (100%); alert at 80% (reached)",
            "period     day from 15h 30m ago, resets in 8h 30m",
            "policy     stop (running jobs at the limit)",
            "           2026-12-02           $50.00           $50.00",
            "forecast   $75.00 by the period's end (in 8h 30m) at the recent rate, over the limit",
        ] {
            assert!(shown.lines().any(|l| l == line), "{line:?} in\n{shown}");
        }
        let top = shown.lines().find(|l| l.starts_with("top jobs")).unwrap();
        assert!(
            top.contains("$30.00") && top.ends_with("big refactor"),
            "{top}"
        );
    }

    #[test]
    fn shows_who_paused_a_budget_and_why() {
        let detail = Detail {
            budget: view(0, true),
            burndown: Burndown {
                period_end: 0,
                days: Vec::new(),
                forecast_micros: 0,
            },
            top_jobs: Vec::new(),
        };
        let shown = describe(&Fmt::plain(NOW), &detail);
        assert!(
            shown.contains("paused     by admin:alice just now: runaway agent\n"),
            "{shown}"
        );
        assert!(
            shown.contains("top jobs   none spent this period\n"),
            "{shown}"
        );
    }
}

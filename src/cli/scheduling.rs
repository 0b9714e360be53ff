//! What scheduling shows and takes: `gigafactory jobs explain ID [--weight NAME=VALUE]` (why a
//! job is not running, every factory's part, and what other weights would change),
//! `gigafactory products shares | share PRODUCT N | weights PRODUCT [--set NAME=VALUE]` and
//! `gigafactory limits ls | set KEY [--max-running N] [--per-minute N] | rm KEY`.

use anyhow::{Context, Result, bail};
use gigafactory_core::wire::urlencode;
use serde_json::{Map, Value};

use super::output::{Fmt, Table, View};
use crate::Remote;
use crate::client::Client;

#[derive(clap::Subcommand)]
pub enum ProductsCmd {
    /// Every product's fair share that is not the default, and whether fair share is on.
    Shares,
    /// Set a product's fair share (1 to 1000; products without one have 1).
    Share { product: String, share: u64 },
    /// A product's scoring weights; `--set age=2` overrides one (0 to 10).
    Weights {
        product: String,
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
    },
}

#[derive(clap::Subcommand)]
pub enum LimitsCmd {
    /// Every limit: its values, the leases holding a slot, and its next start.
    Ls,
    /// Set the limit on KEY (`product:NAME`, `engine:CLASS`, or a jobs' `concurrency_key`
    /// such as `repo:acme/api`); it replaces the key's limit, a throttle included.
    Set {
        key: String,
        /// Leases at once under the key.
        #[arg(long)]
        max_running: Option<u32>,
        /// Leases started a minute, evenly spaced.
        #[arg(long)]
        per_minute: Option<u32>,
        /// No lease under the key before then: a time (`2026-12-02T14:05:00Z`) or a wait
        /// from now (`90s`, `5m`), as a provider's quota window would.
        #[arg(long, value_parser = crate::parse_until)]
        throttled_until: Option<u64>,
    },
    /// Remove the limit on KEY.
    Rm { key: String },
}

pub async fn limits(remote: &Remote, view: &View, cmd: LimitsCmd) -> Result<()> {
    let c = Client::new(remote)?;
    match cmd {
        LimitsCmd::Ls => {
            let answer: Value = c.get("/v1/limits").await?;
            view.print(answer, |fmt, list: &Vec<Value>| limits_table(fmt, list))?;
        }
        LimitsCmd::Set {
            key,
            max_running,
            per_minute,
            throttled_until,
        } => {
            let body = serde_json::json!({
                "max_running": max_running, "per_minute": per_minute,
                "throttled_until": throttled_until,
            });
            let answer: Value = c
                .put(&format!("/v1/limits/{}", urlencode(&key)), &body)
                .await?;
            view.print(answer, |fmt, v: &Value| {
                limits_table(fmt, std::slice::from_ref(v))
            })?;
        }
        LimitsCmd::Rm { key } => {
            c.delete(&format!("/v1/limits/{}", urlencode(&key))).await?;
            if !view.json() {
                println!("removed the limit on {key}");
            }
        }
    }
    Ok(())
}

fn limits_table(fmt: &Fmt, list: &[Value]) -> String {
    let mut t = Table::new(&[
        "KEY",
        "MAX RUNNING",
        "PER MINUTE",
        "RUNNING",
        "NEXT START",
        "THROTTLED UNTIL",
    ])
    .right(&[1, 2, 3]);
    let or_dash = |v: &Value| {
        v.as_u64()
            .map(|n| n.to_string())
            .unwrap_or_else(|| "-".into())
    };
    for l in list {
        t.row(vec![
            l["key"].as_str().unwrap_or("?").into(),
            or_dash(&l["max_running"]).into(),
            or_dash(&l["per_minute"]).into(),
            or_dash(&l["running"]).into(),
            fmt.at_value(&l["next_start_at"]).into(),
            fmt.at_value(&l["throttled_until"]).into(),
        ]);
    }
    t.render(fmt)
}

/// `NAME=VALUE` pairs as a JSON object of numbers.
fn weight_pairs(pairs: &[String]) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("{pair:?}: expected NAME=VALUE, such as age=2");
        };
        let value: f64 = value
            .parse()
            .with_context(|| format!("{pair:?}: {value:?} is not a number"))?;
        out.insert(name.to_owned(), value.into());
    }
    Ok(out)
}

pub async fn products(remote: &Remote, view: &View, cmd: ProductsCmd) -> Result<()> {
    let c = Client::new(remote)?;
    let answer: Value = match &cmd {
        ProductsCmd::Shares => c.get("/v1/products/shares").await?,
        ProductsCmd::Share { product, share } => {
            let path = format!("/v1/products/{}/share", urlencode(product));
            c.put(&path, &serde_json::json!({ "share": share })).await?
        }
        ProductsCmd::Weights { product, set } => {
            let path = format!("/v1/products/{}/weights", urlencode(product));
            if set.is_empty() {
                c.get(&path).await?
            } else {
                c.put(&path, &Value::Object(weight_pairs(set)?)).await?
            }
        }
    };
    view.print(answer, |fmt, v: &Value| match &cmd {
        ProductsCmd::Shares => shares(fmt, v),
        ProductsCmd::Share { product, .. } => format!("{product}: share {}\n", v["share"]),
        ProductsCmd::Weights { .. } => weights(fmt, v),
    })
}

fn shares(fmt: &Fmt, v: &Value) -> String {
    let on = v["enabled"].as_bool().unwrap_or(false);
    let mut out = format!(
        "fair share {}; products not listed have share {}\n",
        if on { "on" } else { "off" },
        v["default"]
    );
    let mut t = Table::new(&["PRODUCT", "SHARE"]).right(&[1]);
    for (product, share) in v["shares"].as_object().into_iter().flatten() {
        t.row(vec![product.as_str().into(), share.to_string().into()]);
    }
    out.push_str(&t.render(fmt));
    out
}

fn weights(fmt: &Fmt, v: &Value) -> String {
    let mut t = Table::new(&["WEIGHT", "DEFAULT", "SET", "IN USE"]).right(&[1, 2, 3]);
    for (name, used) in v["effective"].as_object().into_iter().flatten() {
        let set = v["override"][name]
            .as_f64()
            .map(|x| x.to_string())
            .unwrap_or_else(|| "-".into());
        t.row(vec![
            name.as_str().into(),
            v["defaults"][name].to_string().into(),
            set.into(),
            used.to_string().into(),
        ]);
    }
    t.render(fmt)
}

/// `jobs explain`: the reason, then every factory, then what the given weights would change.
pub async fn explain(c: &Client, view: &View, id: &str, weights: &[String]) -> Result<()> {
    let query: Vec<String> = weight_pairs(weights)?
        .into_iter()
        .map(|(name, value)| format!("{}={value}", urlencode(&name)))
        .collect();
    let path = if query.is_empty() {
        format!("/v1/jobs/{id}/explain")
    } else {
        format!("/v1/jobs/{id}/explain?{}", query.join("&"))
    };
    let answer: Value = c.get(&path).await?;
    view.print(answer, |_, v: &Value| describe(v))
}

fn describe(v: &Value) -> String {
    let mut out = format!("why        {}\n", v["summary"].as_str().unwrap_or("?"));
    out.push_str(&candidates(&v["candidates"]));
    if v["what_if"].is_object() {
        let w = &v["what_if"];
        out.push_str(&format!(
            "\nwith those weights: {}\n",
            w["summary"].as_str().unwrap_or("?")
        ));
        out.push_str(&candidates(&w["candidates"]));
    }
    out
}

fn candidates(list: &Value) -> String {
    let mut out = format!(
        "{:<24} {:<9} {:>7}  WHY NOT\n",
        "FACTORY", "STATUS", "SCORE"
    );
    for c in list.as_array().into_iter().flatten() {
        let score = c["score"]["total"]
            .as_f64()
            .map(|t| format!("{t:.3}"))
            .unwrap_or_else(|| "-".into());
        let why: Vec<String> = c["refusals"]
            .as_array()
            .into_iter()
            .flatten()
            .map(refusal)
            .collect();
        let why = if why.is_empty() {
            "could take it now".to_owned()
        } else {
            why.join("; ")
        };
        out.push_str(&format!(
            "{:<24} {:<9} {score:>7}  {why}\n",
            c["name"].as_str().unwrap_or("?"),
            c["status"].as_str().unwrap_or("?")
        ));
    }
    out
}

fn refusal(r: &Value) -> String {
    match r["kind"].as_str().unwrap_or("") {
        "missing_capability" => format!(
            "lacks capability {}",
            r["capability"].as_str().unwrap_or("?")
        ),
        "missing_engine" => format!("lacks engine {}", r["engine"].as_str().unwrap_or("?")),
        "no_free_slot" => format!("all {} slots busy", r["slots"]),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limits_table_shows_dashes_for_what_a_limit_does_not_set() {
        let shown = limits_table(
            &Fmt::plain(0),
            &[serde_json::json!({
                "key": "repo:acme/api", "max_running": 2, "per_minute": null, "running": 1,
                "next_start_at": null
            })],
        );
        let row = shown.lines().nth(1).unwrap();
        assert!(row.starts_with("repo:acme/api"), "{row}");
        assert!(
            row.ends_with("2           -        1  -           -"),
            "{row}"
        );
        assert!(shown.starts_with("KEY  "), "{shown}");
    }

    #[test]
    fn weight_pairs_take_numbers_and_name_a_bad_one() {
        let ok = weight_pairs(&["age=2".into(), "cost=0.5".into()]).unwrap();
        assert_eq!(ok["age"], 2.0);
        assert_eq!(ok["cost"], 0.5);
        let e = weight_pairs(&["age".into()]).unwrap_err().to_string();
        assert!(e.contains("expected NAME=VALUE"), "{e}");
        let e = weight_pairs(&["age=lots".into()]).unwrap_err().to_string();
        assert!(e.contains("is not a number"), "{e}");
    }

    #[test]
    fn an_explanation_lists_each_factory_with_what_keeps_it_from_the_job() {
        let v = serde_json::json!({
            "summary": "no factory has capability macos; closest: linux-1",
            "candidates": [
                {"name": "linux-1", "status": "online", "score": null,
                 "refusals": [{"kind": "missing_capability", "capability": "macos"}]},
                {"name": "gpu-1", "status": "draining", "score": {"total": 1.25},
                 "refusals": [{"kind": "draining"}, {"kind": "no_free_slot", "busy": 2, "slots": 2}]}
            ]
        });
        let shown = describe(&v);
        assert!(
            shown.starts_with("why        no factory has capability macos"),
            "{shown}"
        );
        let linux = shown.lines().find(|l| l.starts_with("linux-1")).unwrap();
        assert!(linux.ends_with("lacks capability macos"), "{linux}");
        let gpu = shown.lines().find(|l| l.starts_with("gpu-1")).unwrap();
        assert!(
            gpu.contains("1.250") && gpu.ends_with("draining; all 2 slots busy"),
            "{gpu}"
        );
    }
}

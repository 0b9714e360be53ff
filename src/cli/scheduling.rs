//! What scheduling shows and takes: `gigafactory jobs explain ID [--weight NAME=VALUE]` (why a
//! job is not running, every factory's part, and what other weights would change) and
//! `gigafactory products shares | share PRODUCT N | weights PRODUCT [--set NAME=VALUE]`.

use anyhow::{Context, Result, bail};
use gigafactory_core::wire::urlencode;
use serde_json::{Map, Value};

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

pub async fn products(remote: &Remote, cmd: ProductsCmd) -> Result<()> {
    let c = Client::new(remote);
    match cmd {
        ProductsCmd::Shares => {
            let v: Value = c.get("/v1/products/shares").await?;
            let on = v["enabled"].as_bool().unwrap_or(false);
            println!(
                "fair share {}; products not listed have share {}",
                if on { "on" } else { "off" },
                v["default"]
            );
            if let Some(shares) = v["shares"].as_object() {
                for (product, share) in shares {
                    println!("{product:<24} {share}");
                }
            }
        }
        ProductsCmd::Share { product, share } => {
            let path = format!("/v1/products/{}/share", urlencode(&product));
            let v: Value = c.put(&path, &serde_json::json!({ "share": share })).await?;
            println!("{product}: share {}", v["share"]);
        }
        ProductsCmd::Weights { product, set } => {
            let path = format!("/v1/products/{}/weights", urlencode(&product));
            let v: Value = if set.is_empty() {
                c.get(&path).await?
            } else {
                c.put(&path, &Value::Object(weight_pairs(&set)?)).await?
            };
            println!(
                "{:<10} {:>8} {:>8} {:>8}",
                "WEIGHT", "DEFAULT", "SET", "IN USE"
            );
            if let Some(effective) = v["effective"].as_object() {
                for (name, used) in effective {
                    let set = v["override"][name]
                        .as_f64()
                        .map(|x| x.to_string())
                        .unwrap_or_else(|| "-".into());
                    println!("{name:<10} {:>8} {set:>8} {used:>8}", v["defaults"][name]);
                }
            }
        }
    }
    Ok(())
}

/// `jobs explain`: the reason, then every factory, then what the given weights would change.
pub async fn explain(c: &Client, id: &str, weights: &[String], json: bool) -> Result<()> {
    let query: Vec<String> = weight_pairs(weights)?
        .into_iter()
        .map(|(name, value)| format!("{}={value}", urlencode(&name)))
        .collect();
    let path = if query.is_empty() {
        format!("/v1/jobs/{id}/explain")
    } else {
        format!("/v1/jobs/{id}/explain?{}", query.join("&"))
    };
    let v: Value = c.get(&path).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", describe(&v));
    }
    Ok(())
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

//! The fleet commands: `gigafactory factories ls | rotate | revoke | drain | undrain`, `gigafactory
//! tokens ls | mint | enrollment | revoke` and `gigafactory audit`, thin calls of the REST API
//! that print what comes back.

use anyhow::Result;
use serde_json::Value;

use gigafactory_core::wire::urlencode;

use super::output::{Cell, Fmt, Style, Table, View, print_json};
use crate::Remote;
use crate::client::Client;

#[derive(clap::Subcommand)]
pub enum FactoriesCmd {
    /// List factories: status, busy slots, last heartbeat, capabilities.
    Ls,
    /// Replace a factory's token (prints the new one, once); the old one stops working.
    Rotate { id: String },
    /// Shut a factory out for good: its token stops working, so the jobs it holds go back to
    /// the queue when their leases expire. A machine that should come back enrolls again.
    Revoke { id: String },
    /// Let a factory finish the jobs it runs but give it no new ones (before maintenance).
    Drain { id: String },
    /// Give a draining factory new work again (refused unless it drains).
    Undrain { id: String },
}

#[derive(clap::Subcommand)]
pub enum TokensCmd {
    /// List tokens (never their secrets): id, role, name, status, created, by whom, expiry.
    Ls {
        /// Also list revoked tokens (spent enrollment tokens, rotated factory tokens).
        #[arg(long)]
        all: bool,
    },
    /// Mint a token for admin, operator, viewer or enrollment (prints the secret, once).
    #[command(alias = "create")]
    Mint {
        #[arg(long)]
        role: String,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        expiry: Expiry,
    },
    /// Mint an enrollment token for a new factory.
    Enrollment {
        #[command(flatten)]
        expiry: Expiry,
    },
    /// Revoke a token by its id (from `tokens ls`): it stops working at once.
    Revoke { id: String },
}

/// When a minted token stops working.
#[derive(clap::Args)]
pub struct Expiry {
    /// After this long: 90d, 12h, 30m, 3600s.
    #[arg(long, conflicts_with = "expires_at")]
    expires_in: Option<String>,
    /// At this time, in ms since the epoch.
    #[arg(long)]
    expires_at: Option<u64>,
}

impl Expiry {
    fn insert_into(self, body: &mut Value) {
        if let Some(d) = self.expires_in {
            body["expires_in"] = d.into();
        }
        if let Some(at) = self.expires_at {
            body["expires_at"] = at.into();
        }
    }
}

/// `gigafactory audit`: who did what, newest first.
#[derive(clap::Args)]
pub struct AuditArgs {
    /// Only actions containing this (`drain`, `POST /v1/tokens`).
    #[arg(long)]
    action: Option<String>,
    /// Only callers whose `role:name` contains this.
    #[arg(long)]
    caller: Option<String>,
    /// Most entries shown.
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

pub async fn factories(remote: &Remote, view: &View, cmd: FactoriesCmd) -> Result<()> {
    let c = Client::new(remote)?;
    let (verb, id) = match cmd {
        FactoriesCmd::Ls => {
            let answer: Value = c.get("/v1/factories").await?;
            return view.print(answer, |fmt, fs: &Vec<Value>| factories_table(fmt, fs));
        }
        FactoriesCmd::Rotate { id } => {
            let t: Value = c.post(&format!("/v1/factories/{id}/rotate"), None).await?;
            if view.json() {
                return print_json(&t);
            }
            println!("{}", t["token"].as_str().unwrap_or_default());
            return Ok(());
        }
        FactoriesCmd::Revoke { id } => ("revoke", id),
        FactoriesCmd::Drain { id } => ("drain", id),
        FactoriesCmd::Undrain { id } => ("undrain", id),
    };
    let answer: Value = c.post(&format!("/v1/factories/{id}/{verb}"), None).await?;
    // Both answer `204` without a body: JSON output has nothing to print.
    if view.json() && !answer.is_null() {
        print_json(&answer)?;
    }
    Ok(())
}

/// Factories under a header: status coloured, busy slots of all, last heartbeat.
fn factories_table(fmt: &Fmt, fs: &[Value]) -> String {
    let mut t =
        Table::new(&["ID", "NAME", "STATUS", "SLOTS", "LAST SEEN", "CAPABILITIES"]).right(&[3]);
    for f in fs {
        let status = text(&f["status"]);
        let style = match status {
            "online" => Style::Green,
            "offline" | "revoked" => Style::Red,
            "draining" => Style::Yellow,
            _ => Style::Plain,
        };
        let capabilities: Vec<&str> = f["capabilities"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str())
            .collect();
        t.row(vec![
            text(&f["id"]).into(),
            text(&f["name"]).into(),
            Cell::styled(status, style),
            format!("{}/{}", f["slots_busy"], f["slots"]).into(),
            fmt.at_value(&f["last_heartbeat"]).into(),
            capabilities.join(",").into(),
        ]);
    }
    t.render(fmt)
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

pub async fn tokens(remote: &Remote, view: &View, cmd: TokensCmd) -> Result<()> {
    let c = Client::new(remote)?;
    let minted: Value = match cmd {
        TokensCmd::Ls { all } => {
            let answer: Value = c.get(&format!("/v1/tokens?all={all}")).await?;
            return view.print(answer, |fmt, ts: &Vec<Value>| {
                let mut t =
                    Table::new(&["ID", "ROLE", "STATUS", "NAME", "CREATED", "BY", "EXPIRES"]);
                for tok in ts {
                    t.row(vec![
                        text(&tok["id"]).into(),
                        text(&tok["role"]).into(),
                        text(&tok["status"]).into(),
                        text(&tok["name"]).into(),
                        fmt.at_value(&tok["created_at"]).into(),
                        text(&tok["created_by"]).into(),
                        fmt.at_value(&tok["expires_at"]).into(),
                    ]);
                }
                t.render(fmt)
            });
        }
        TokensCmd::Revoke { id } => {
            c.delete(&format!("/v1/tokens/{}", urlencode(&id))).await?;
            return Ok(());
        }
        TokensCmd::Mint { role, name, expiry } => {
            let mut body = serde_json::json!({ "role": role, "name": name });
            expiry.insert_into(&mut body);
            c.post("/v1/tokens", Some(&body)).await?
        }
        TokensCmd::Enrollment { expiry } => {
            let mut body = serde_json::json!({});
            expiry.insert_into(&mut body);
            c.post("/v1/enrollment-tokens", Some(&body)).await?
        }
    };
    if view.json() {
        return print_json(&minted);
    }
    let fmt = view.fmt();
    eprintln!(
        "token {} (expires {}); the secret is shown once:",
        text(&minted["id"]),
        fmt.at_value(&minted["expires_at"])
    );
    println!("{}", text(&minted["token"]));
    Ok(())
}

pub async fn audit(remote: &Remote, view: &View, args: AuditArgs) -> Result<()> {
    let c = Client::new(remote)?;
    let mut query = format!("limit={}", args.limit.clamp(1, 500));
    for (k, v) in [("action", &args.action), ("caller", &args.caller)] {
        if let Some(v) = v {
            query.push_str(&format!("&{k}={}", urlencode(v)));
        }
    }
    let answer: Value = c.get(&format!("/v1/audit?{query}")).await?;
    view.print(answer, |fmt, page: &Value| {
        let mut t = Table::new(&["AT", "WHO", "ACTION", "TARGET", "STATUS"]);
        for e in page["entries"].as_array().into_iter().flatten() {
            t.row(vec![
                fmt.at_value(&e["at"]).into(),
                format!("{}:{}", text(&e["role"]), text(&e["caller"])).into(),
                text(&e["action"]).into(),
                text(&e["target"]).into(),
                format!("-> {}", e["status"]).into(),
            ]);
        }
        t.render(fmt)
    })
}

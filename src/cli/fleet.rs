//! The fleet commands: `gigafactory factories ls | rotate | revoke | drain`, `gigafactory
//! tokens ls | mint | enrollment | revoke` and `gigafactory audit`, thin calls of the REST API
//! that print what comes back.

use anyhow::Result;
use serde_json::Value;

use gigafactory_core::wire::urlencode;

use crate::Remote;
use crate::client::Client;

#[derive(clap::Subcommand)]
pub enum FactoriesCmd {
    Ls,
    /// Replace a factory's token (prints the new one).
    Rotate {
        id: String,
    },
    Revoke {
        id: String,
    },
    Drain {
        id: String,
    },
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

pub async fn factories(remote: &Remote, cmd: FactoriesCmd) -> Result<()> {
    let c = Client::new(remote)?;
    match cmd {
        FactoriesCmd::Ls => {
            let fs: Vec<Value> = c.get("/v1/factories").await?;
            for f in fs {
                println!(
                    "{}  {:<9} {}/{} slots  {}  [{}]",
                    f["id"].as_str().unwrap_or_default(),
                    f["status"].as_str().unwrap_or_default(),
                    f["slots_busy"],
                    f["slots"],
                    f["name"].as_str().unwrap_or_default(),
                    f["capabilities"]
                        .as_array()
                        .map(|a| a
                            .iter()
                            .filter_map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join(","))
                        .unwrap_or_default()
                );
            }
        }
        FactoriesCmd::Rotate { id } => {
            let t: Value = c.post(&format!("/v1/factories/{id}/rotate"), None).await?;
            println!("{}", t["token"].as_str().unwrap_or_default());
        }
        FactoriesCmd::Revoke { id } => {
            c.post::<Value>(&format!("/v1/factories/{id}/revoke"), None)
                .await?;
        }
        FactoriesCmd::Drain { id } => {
            c.post::<Value>(&format!("/v1/factories/{id}/drain"), None)
                .await?;
        }
    }
    Ok(())
}

/// A time in ms since the epoch as people read it, or `-`.
fn when(ms: &Value) -> String {
    ms.as_u64()
        .map(gigafactory_core::budget::format_utc_seconds)
        .unwrap_or_else(|| "-".into())
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

pub async fn tokens(remote: &Remote, cmd: TokensCmd) -> Result<()> {
    let c = Client::new(remote)?;
    let minted: Value = match cmd {
        TokensCmd::Ls { all } => {
            let ts: Vec<Value> = c.get(&format!("/v1/tokens?all={all}")).await?;
            for t in ts {
                println!(
                    "{}  {:<10} {:<8} {:<24} created {} by {}  expires {}",
                    text(&t["id"]),
                    text(&t["role"]),
                    text(&t["status"]),
                    text(&t["name"]),
                    when(&t["created_at"]),
                    text(&t["created_by"]),
                    when(&t["expires_at"]),
                );
            }
            return Ok(());
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
    eprintln!(
        "token {} (expires {}); the secret is shown once:",
        text(&minted["id"]),
        when(&minted["expires_at"])
    );
    println!("{}", text(&minted["token"]));
    Ok(())
}

pub async fn audit(remote: &Remote, args: AuditArgs) -> Result<()> {
    let c = Client::new(remote)?;
    let mut query = format!("limit={}", args.limit.clamp(1, 500));
    for (k, v) in [("action", &args.action), ("caller", &args.caller)] {
        if let Some(v) = v {
            query.push_str(&format!("&{k}={}", urlencode(v)));
        }
    }
    let page: Value = c.get(&format!("/v1/audit?{query}")).await?;
    for e in page["entries"].as_array().into_iter().flatten() {
        println!(
            "{}  {}:{}  {}  {}  -> {}",
            when(&e["at"]),
            text(&e["role"]),
            text(&e["caller"]),
            text(&e["action"]),
            text(&e["target"]),
            e["status"]
        );
    }
    Ok(())
}

//! The fleet commands: `gigafactory factories ls | rotate | revoke | drain` and `gigafactory
//! tokens create | enrollment`, thin calls of the REST API that print what comes back.

use anyhow::Result;
use serde_json::Value;

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
    /// Mint a token for admin, operator, viewer or enrollment.
    Create {
        #[arg(long)]
        role: String,
        #[arg(long)]
        name: String,
    },
    /// Mint an enrollment token for a new factory.
    Enrollment,
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

pub async fn tokens(remote: &Remote, cmd: TokensCmd) -> Result<()> {
    let c = Client::new(remote)?;
    let t: Value = match cmd {
        TokensCmd::Create { role, name } => {
            c.post(
                "/v1/tokens",
                Some(&serde_json::json!({ "role": role, "name": name })),
            )
            .await?
        }
        TokensCmd::Enrollment => {
            c.post("/v1/enrollment-tokens", Some(&serde_json::json!({})))
                .await?
        }
    };
    println!("{}", t["token"].as_str().unwrap_or_default());
    Ok(())
}

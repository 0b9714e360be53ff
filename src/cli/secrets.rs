//! The secrets commands: `gigafactory secrets ls | set | rm | keygen`. A value is read from
//! stdin or a file, never from the command line (which shells keep in their history and `ps`
//! shows); no command ever prints one, since no route returns one.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use gigafactory_actors::sealing::SecretsKey;
use gigafactory_core::secrets::{SecretDelivery, SecretMeta};
use gigafactory_core::wire::{SecretSet, urlencode};
use serde_json::Value;

use super::output::{Fmt, Table, View};
use crate::Remote;
use crate::client::Client;

#[derive(clap::Subcommand)]
pub enum SecretsCmd {
    /// List secrets: name, product, profile, how the job gets it, version, who set it when.
    Ls {
        #[arg(long)]
        product: Option<String>,
    },
    /// Set or rotate a secret. The value comes from stdin (`printf %s "$KEY" | gigafactory
    /// secrets set ...`) or --from-file; jobs leased from now on get it.
    Set {
        /// The environment variable the job sees (`ANTHROPIC_API_KEY`).
        name: String,
        #[arg(long)]
        product: String,
        /// Only for jobs of this profile; it shadows the product's secret of the same name.
        #[arg(long)]
        profile: Option<String>,
        /// Give it to the job as a file in `$GF_SECRETS_DIR` (mode 0400), not a variable.
        #[arg(long)]
        as_file: bool,
        /// Read the value from this file instead of stdin (one trailing newline is dropped).
        #[arg(long)]
        from_file: Option<PathBuf>,
    },
    /// Remove a secret.
    Rm {
        name: String,
        #[arg(long)]
        product: String,
        #[arg(long)]
        profile: Option<String>,
    },
    /// Print a new random secrets key (base64 of 32 bytes) for `serve --secrets-key-file`.
    Keygen,
}

pub async fn secrets(remote: &Remote, view: &View, cmd: SecretsCmd) -> Result<()> {
    if let SecretsCmd::Keygen = cmd {
        println!("{}", SecretsKey::generate()?);
        return Ok(());
    }
    let c = Client::new(remote)?;
    let path = |product: &str, name: &str, profile: &Option<String>| {
        let q = profile
            .as_ref()
            .map_or(String::new(), |p| format!("?profile={}", urlencode(p)));
        format!("/v1/secrets/{}/{}{q}", urlencode(product), urlencode(name))
    };
    match cmd {
        SecretsCmd::Ls { product } => {
            let q = product
                .as_ref()
                .map_or(String::new(), |p| format!("?product={}", urlencode(p)));
            let answer: Value = c.get(&format!("/v1/secrets{q}")).await?;
            view.print(answer, |fmt, s: &Vec<SecretMeta>| table(fmt, s))?;
        }
        SecretsCmd::Set {
            name,
            product,
            profile,
            as_file,
            from_file,
        } => {
            let value = read_value(from_file)?;
            let body = SecretSet {
                value,
                delivery: if as_file {
                    SecretDelivery::File
                } else {
                    SecretDelivery::Env
                },
            };
            let answer: Value = c.put(&path(&product, &name, &profile), &body).await?;
            view.print(answer, |fmt, s: &SecretMeta| {
                table(fmt, std::slice::from_ref(s))
            })?;
        }
        SecretsCmd::Rm {
            name,
            product,
            profile,
        } => c.delete(&path(&product, &name, &profile)).await?,
        SecretsCmd::Keygen => unreachable!("answered above"),
    }
    Ok(())
}

/// The value from the file or stdin, less one trailing newline (what `echo` and editors add).
fn read_value(from_file: Option<PathBuf>) -> Result<String> {
    let mut value = match from_file {
        Some(path) => {
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?
        }
        None => {
            use std::io::IsTerminal as _;
            if std::io::stdin().is_terminal() {
                eprintln!("type the value, then Ctrl-D (it stays out of your shell history)");
            }
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the value from stdin")?;
            s
        }
    };
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    Ok(value)
}

fn table(fmt: &Fmt, secrets: &[SecretMeta]) -> String {
    let mut t = Table::new(&[
        "NAME", "PRODUCT", "PROFILE", "AS", "VERSION", "SET BY", "SET",
    ])
    .right(&[4]);
    for s in secrets {
        let delivery = match s.delivery {
            SecretDelivery::Env => "env",
            SecretDelivery::File => "file",
        };
        t.row(vec![
            s.name.as_str().into(),
            s.scope.product.as_str().into(),
            s.scope.profile.as_deref().unwrap_or("-").into(),
            delivery.into(),
            s.version.to_string().into(),
            s.set_by.as_str().into(),
            fmt.at(s.set_at).into(),
        ]);
    }
    t.render(fmt)
}

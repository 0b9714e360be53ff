//! `gigafactory serve`: one coordinator node. Settings come from flags, then the environment,
//! then a TOML file (`--config`), then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use gigafactory_actors::sealing::SecretsKey;
use gigafactory_actors::{Config, Coordinator, Edges, SystemClock};
use gigafactory_api::ApiOptions;
use gigafactory_api::listener::TlsReloader;
use gigafactory_core::tracker::SourceConfig;
use gigafactory_core::usage::Price;
use gigafactory_core::{artifact, budget};
use gigafactory_storage::{AnyStore, BlobStore, DEFAULT_STORE_URL};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;

use crate::network::{self, FileListener, FileTls, Network, NetworkArgs};

#[derive(clap::Args, Default)]
pub struct ServeArgs {
    /// TOML file with any of: store, listen, insecure_dev, admin_token_file, lease_ttl_ms;
    /// model prices as `[prices.MODEL]` tables of `input_usd_per_mtok` and
    /// `output_usd_per_mtok` (dollars per million tokens); trackers as `[intake.SOURCE]`
    /// (README: "Trackers"); `[outbox]` retries of their callbacks; `[artifacts]` (README:
    /// "Artifacts"); `[scheduling]`: `fair_share` (default true) and `[scheduling.shares]`
    /// (README: "Scheduling"); `[schedules]`: `grace_ms` (how late a tick still fires, default
    /// 5000) and `refresh_ms` (how often schedules are re-read, default 1000); `[tls]`: `cert`, `key`, `client_ca`, `client_cert_required`;
    /// and `[listener]`: `header_read_timeout_ms`, `idle_timeout_ms`, `connections_max`.
    #[arg(long, env = "GIGAFACTORY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Store URL: embedded:PATH, etcd://host:port,...[/namespace], or fdb:CLUSTER_FILE[#namespace].
    #[arg(long, env = "GIGAFACTORY_STORE")]
    pub store: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "GIGAFACTORY_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Serve operator routes without a token (local development only): token-less callers
    /// are operators, only loopback addresses are listened on, and only loopback `Host` names
    /// from no page or the node's own are served.
    #[arg(long, env = "GIGAFACTORY_INSECURE_DEV")]
    pub insecure_dev: bool,
    /// Serve `/v1/admin/faults`, which makes actors fail on an admin's request (chaos testing).
    #[arg(long, env = "GIGAFACTORY_ENABLE_FAULT_INJECTION")]
    pub enable_fault_injection: bool,
    /// On the first start, write the new admin token to this file (mode 0600) instead of
    /// printing it.
    #[arg(long, env = "GIGAFACTORY_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Lease time-to-live in milliseconds; factories renew at a third of it.
    #[arg(long, env = "GIGAFACTORY_LEASE_TTL_MS")]
    pub lease_ttl_ms: Option<u64>,
    /// Where artifacts' bytes go: an absolute directory (`file:///dir`), or
    /// `s3://bucket/prefix` (build with `--features s3`). Every node of a cluster must reach
    /// the same one. By default `artifacts/` beside an embedded store.
    #[arg(long, env = "GIGAFACTORY_ARTIFACTS")]
    pub artifacts: Option<String>,
    /// A file holding the secrets key (base64 of 32 random bytes: `gigafactory secrets
    /// keygen > FILE`, mode 0600). `GIGAFACTORY_SECRETS_KEY` may hold the key itself instead.
    /// Without a key, secrets cannot be set or handed to jobs; the rest works.
    #[arg(long, env = "GIGAFACTORY_SECRETS_KEY_FILE")]
    pub secrets_key_file: Option<PathBuf>,
    /// `GIGAFACTORY_SECRETS_KEY`, taken out of the environment by `main` before any thread
    /// starts ([`take_secrets_key_env`]).
    #[arg(skip)]
    pub secrets_key_env: Option<String>,
    #[command(flatten)]
    pub network: NetworkArgs,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    store: Option<String>,
    listen: Option<SocketAddr>,
    insecure_dev: Option<bool>,
    admin_token_file: Option<PathBuf>,
    lease_ttl_ms: Option<u64>,
    #[serde(default)]
    prices: BTreeMap<String, FilePrice>,
    /// Trackers, by source name: `[intake.github]` with `kind`, `secret`, `callback_url`,
    /// `[[intake.github.rules]]` and `[intake.github.templates]`.
    #[serde(default)]
    intake: BTreeMap<String, SourceConfig>,
    outbox: Option<FileOutbox>,
    artifacts: Option<FileArtifacts>,
    scheduling: Option<FileScheduling>,
    schedules: Option<FileSchedules>,
    tls: Option<FileTls>,
    listener: Option<FileListener>,
}

/// Fair share across products.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileScheduling {
    fair_share: Option<bool>,
    #[serde(default)]
    shares: BTreeMap<String, u64>,
}

/// How cron schedules fire (README: "Scheduling").
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSchedules {
    grace_ms: Option<u64>,
    refresh_ms: Option<u64>,
}

/// Where artifacts go and how much is kept.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileArtifacts {
    store: Option<String>,
    file_max_bytes: Option<u64>,
    job_max_bytes: Option<u64>,
    job_max_count: Option<usize>,
    /// 0 keeps artifacts for ever.
    retention_days: Option<u64>,
    orphan_grace_secs: Option<u64>,
    sweep_interval_secs: Option<u64>,
}

/// How tracker callbacks are retried.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOutbox {
    backoff_base_ms: Option<u64>,
    backoff_cap_ms: Option<u64>,
    tries_max: Option<u32>,
    timeout_ms: Option<u64>,
}

/// A model's price as the config file gives it, in dollars per million tokens.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePrice {
    input_usd_per_mtok: Dollars,
    output_usd_per_mtok: Dollars,
}

/// Dollars as TOML writes them: a number (`3.0`) or a string (`"3.00"`), read exactly as the
/// decimal written.
#[derive(Deserialize)]
#[serde(untagged)]
enum Dollars {
    Number(f64),
    Text(String),
}

impl FilePrice {
    fn input_micros(&self) -> Result<u64> {
        self.input_usd_per_mtok.micros()
    }

    fn output_micros(&self) -> Result<u64> {
        self.output_usd_per_mtok.micros()
    }
}

impl Dollars {
    fn micros(&self) -> Result<u64> {
        // A float's shortest display is the decimal the file wrote.
        let text = match self {
            Dollars::Number(n) => n.to_string(),
            Dollars::Text(t) => t.clone(),
        };
        Ok(budget::parse_usd(&text)?)
    }
}

/// The settings of a node, resolved.
pub struct Settings {
    pub store: String,
    pub listen: SocketAddr,
    pub insecure_dev: bool,
    pub fault_injection: bool,
    pub admin_token_file: Option<PathBuf>,
    /// The blob store's URL.
    pub artifacts: String,
    pub network: Network,
    pub config: Config,
    /// Seals secrets' values; `None` without `--secrets-key-file` or `GIGAFACTORY_SECRETS_KEY`.
    pub secrets_key: Option<Arc<SecretsKey>>,
}

impl ServeArgs {
    pub fn resolve(self) -> Result<Settings> {
        let file: FileConfig = match &self.config {
            Some(p) => toml::from_str(
                &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("parsing {}", p.display()))?,
            None => FileConfig::default(),
        };
        let mut config = Config::default();
        if let Some(ttl) = self.lease_ttl_ms.or(file.lease_ttl_ms) {
            anyhow::ensure!(
                (1_000..=3_600_000).contains(&ttl),
                "lease_ttl_ms must be within 1000..=3600000"
            );
            config.lease_ttl_ms = ttl;
        }
        config.intake = file.intake;
        if let Some(sch) = file.scheduling {
            config.fair_share = sch.fair_share.unwrap_or(config.fair_share);
            for (product, share) in sch.shares {
                let share = gigafactory_core::fair_share::check_share(share)
                    .with_context(|| format!("scheduling.shares.{product}"))?;
                config.shares.insert(product, share);
            }
        }
        if let Some(sc) = file.schedules {
            if let Some(g) = sc.grace_ms {
                anyhow::ensure!(g <= 3_600_000, "schedules.grace_ms must be at most 3600000");
                config.schedule_grace_ms = g;
            }
            if let Some(r) = sc.refresh_ms {
                anyhow::ensure!(
                    (50..=60_000).contains(&r),
                    "schedules.refresh_ms must be within 50..=60000"
                );
                config.schedule_refresh_ms = r;
            }
        }
        if let Some(o) = file.outbox {
            let b = &mut config.outbox_backoff;
            b.base_ms = o.backoff_base_ms.unwrap_or(b.base_ms);
            b.cap_ms = o.backoff_cap_ms.unwrap_or(b.cap_ms);
            config.outbox_tries_max = o.tries_max.unwrap_or(config.outbox_tries_max);
            config.outbox_timeout_ms = o.timeout_ms.unwrap_or(config.outbox_timeout_ms);
        }
        let artifacts_url = self
            .artifacts
            .or(file.artifacts.as_ref().and_then(|a| a.store.clone()));
        if let Some(a) = &file.artifacts {
            artifact_limits(&mut config, a)?;
        }
        for (model, p) in &file.prices {
            let price = Price {
                input_micros_per_mtok: p
                    .input_micros()
                    .with_context(|| format!("prices.{model}"))?,
                output_micros_per_mtok: p
                    .output_micros()
                    .with_context(|| format!("prices.{model}"))?,
            };
            config.prices.insert(model.clone(), price);
        }
        let store = self
            .store
            .or(file.store)
            .unwrap_or_else(|| DEFAULT_STORE_URL.into());
        let artifacts = match artifacts_url {
            // A directory may be given relative to where the node starts.
            Some(url) if !url.contains(':') => std::path::absolute(&url)
                .with_context(|| format!("resolving {url}"))?
                .display()
                .to_string(),
            Some(url) => url,
            None => default_artifacts(&store)?,
        };
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:7070".parse().expect("valid address"));
        let insecure_dev = self.insecure_dev || file.insecure_dev.unwrap_or(false);
        network::check_insecure_dev(insecure_dev, listen)?;
        let network = self.network.resolve(file.tls, file.listener)?;
        let secrets_key = secrets_key(self.secrets_key_file.as_deref(), self.secrets_key_env)?;
        if secrets_key.is_some() && network.tls.is_none() && !listen.ip().is_loopback() {
            // The values go to factories in the fetch's answer: in clear on the network here.
            tracing::warn!(%listen, "secrets are handed to factories over plain HTTP on a non-loopback address: serve TLS (--tls-cert, --tls-key) or put a TLS proxy in front");
        }
        Ok(Settings {
            store,
            artifacts,
            listen,
            insecure_dev,
            fault_injection: self.enable_fault_injection,
            admin_token_file: self.admin_token_file.or(file.admin_token_file),
            network,
            config,
            secrets_key: secrets_key.map(Arc::new),
        })
    }
}

/// Takes `GIGAFACTORY_SECRETS_KEY` out of the process's environment, so no child process (a
/// job started on this machine, a hook) inherits the key and `/proc/<pid>/environ` no longer
/// shows it. Called by `main` before the runtime (or anything else) starts a thread.
pub fn take_secrets_key_env() -> Option<String> {
    let key = std::env::var("GIGAFACTORY_SECRETS_KEY").ok();
    if key.is_some() {
        // SAFETY: `main` calls this before building the runtime, while the process has one
        // thread: nothing reads or writes the environment concurrently.
        unsafe { std::env::remove_var("GIGAFACTORY_SECRETS_KEY") };
    }
    key
}

/// The secrets key from `file`, else from `GIGAFACTORY_SECRETS_KEY` (`env`); neither: none. A
/// bad key stops the start: a node that could not open its secrets would fail every job that
/// has one. So does a key file others than its owner may read: the key would be theirs too.
fn secrets_key(file: Option<&Path>, env: Option<String>) -> Result<Option<SecretsKey>> {
    let (text, from) = match file {
        Some(path) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = std::fs::metadata(path)
                    .with_context(|| format!("reading the secrets key {}", path.display()))?
                    .permissions()
                    .mode();
                anyhow::ensure!(
                    mode & 0o077 == 0,
                    "the secrets key file {} is open to others than its owner (mode {:o}): \
                     chmod 600 it",
                    path.display(),
                    mode & 0o777
                );
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the secrets key {}", path.display()))?;
            (text, path.display().to_string())
        }
        None => match env {
            Some(text) => (text, "GIGAFACTORY_SECRETS_KEY".to_string()),
            None => return Ok(None),
        },
    };
    let key = SecretsKey::from_base64(&text).with_context(|| format!("the secrets key {from}"))?;
    Ok(Some(key))
}

/// Applies `[artifacts]`' bounds, each checked.
fn artifact_limits(config: &mut Config, a: &FileArtifacts) -> Result<()> {
    let limits = &mut config.artifacts;
    limits.file_max_bytes = a.file_max_bytes.unwrap_or(limits.file_max_bytes);
    limits.job_max_bytes = a.job_max_bytes.unwrap_or(limits.job_max_bytes);
    limits.job_max_count = a.job_max_count.unwrap_or(limits.job_max_count);
    anyhow::ensure!(
        limits.file_max_bytes > 0 && limits.job_max_bytes > 0,
        "artifacts.file_max_bytes and artifacts.job_max_bytes must be above 0"
    );
    anyhow::ensure!(
        (1..=artifact::JOB_COUNT_MAX).contains(&limits.job_max_count),
        "artifacts.job_max_count must be within 1..={}",
        artifact::JOB_COUNT_MAX
    );
    if let Some(days) = a.retention_days {
        config.artifact_retention_ms = days.saturating_mul(86_400_000);
    }
    if let Some(s) = a.orphan_grace_secs {
        anyhow::ensure!(
            s >= 60,
            "artifacts.orphan_grace_secs must be at least 60: uploads in flight need the time"
        );
        config.artifact_orphan_grace_ms = s * 1_000;
    }
    if let Some(s) = a.sweep_interval_secs {
        anyhow::ensure!(s >= 1, "artifacts.sweep_interval_secs must be at least 1");
        config.artifact_sweep_interval_ms = s * 1_000;
    }
    Ok(())
}

/// `artifacts/` beside an embedded store's directory; other stores need it said.
fn default_artifacts(store: &str) -> Result<String> {
    let Some(dir) = gigafactory_storage::embedded_dir(store) else {
        anyhow::bail!(
            "a shared store needs --artifacts (or [artifacts] store): a location every node reaches"
        );
    };
    let dir = std::path::absolute(Path::new(dir).join("artifacts"))
        .with_context(|| format!("resolving {dir}/artifacts"))?;
    Ok(dir.display().to_string())
}

/// Where a first start's admin token goes: `--admin-token-file`; else the terminal (`None`);
/// else (stderr is a log) a 0600 file beside the store whose path is logged, so the token never
/// lands in a log a shipper may collect. A file is checked writable now, before the token
/// exists: once it is stored no later start makes another, so it must not be lost.
fn admin_token_destination(file: Option<&Path>, store: &str) -> Result<Option<PathBuf>> {
    use std::io::IsTerminal;
    let path = match file {
        Some(path) => path.to_path_buf(),
        None if std::io::stderr().is_terminal() => return Ok(None),
        None => {
            let dir = gigafactory_storage::embedded_dir(store).unwrap_or(".");
            std::path::absolute(Path::new(dir).join("admin-token"))
                .context("resolving the admin token's file")?
        }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "the admin token's file {}: creating its directory",
                path.display()
            )
        })?;
    }
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .with_context(|| format!("the admin token's file {} is not writable", path.display()))?;
    if !existed {
        let _ = std::fs::remove_file(&path);
    }
    Ok(Some(path))
}

/// Gives the first start's admin token to the operator, where [`admin_token_destination`]
/// said.
fn hand_over_admin_token(secret: &str, destination: Option<&Path>) -> Result<()> {
    let Some(path) = destination else {
        eprintln!(
            "\n  First start: the admin token is printed once, here. Keep it safe:\n\n    {secret}\n"
        );
        return Ok(());
    };
    network::write_secret(path, secret)?;
    // A log line like any other (JSON with `--log-format json`); the token is not in it.
    tracing::info!(path = %path.display(), "first start: the admin token is in its file (mode 0600)");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// A running node: its coordinator and the address it listens on.
pub struct Node {
    pub coord: Coordinator,
    pub addr: SocketAddr,
    pub admin_token: Option<String>,
    server: tokio::task::JoinHandle<()>,
}

impl Node {
    pub fn stop(self) {
        self.server.abort();
        self.coord.stop();
    }
}

/// How often the recorder folds recorded histogram samples into its buckets between scrapes,
/// so a node nobody scrapes keeps a bounded amount of them.
const METRICS_UPKEEP_SECS: u64 = 5;

/// The process's metrics recorder, installed by the first node started in it (a recorder is
/// global: a second node in one process shares it). Histograms get bucket bounds, so they
/// are exported as `_bucket` series that add up across nodes.
fn metrics_recorder() -> Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in gigafactory_actors::metrics::HISTOGRAM_BUCKETS {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.to_string()), buckets)
            .with_context(|| format!("bucket bounds of {name}"))?;
    }
    let handle = HANDLE.get_or_init(|| {
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::debug!("a metrics recorder was already installed");
        }
        let upkept = handle.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(METRICS_UPKEEP_SECS));
            loop {
                every.tick().await;
                upkept.run_upkeep();
            }
        });
        handle
    });
    Ok(handle.clone())
}

/// Opens the store, starts the actor tree and the HTTP server.
pub async fn start(settings: Settings) -> Result<Node> {
    network::private_store_dir(&settings.store)?;
    let tls = match settings.network.tls.clone() {
        Some(files) => Some(TlsReloader::load(files).context("loading the TLS certificate")?),
        None => None,
    };
    let store = AnyStore::open(&settings.store)
        .with_context(|| format!("opening store {}", settings.store))?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let mut config = settings.config;
    // Other nodes may share an etcd or FoundationDB store; an embedded one is this process's.
    config.shared_store = store.engine() != "embedded";
    let scheme = if tls.is_some() { "https" } else { "http" };
    config.node_addr = format!("{scheme}://{addr}");
    let courier = gigafactory_api::HttpCourier::new().context("building the callback client")?;
    let blobs = BlobStore::open(&settings.artifacts)
        .with_context(|| format!("opening the artifact store {}", settings.artifacts))?;
    let edges = Edges {
        clock: Arc::new(SystemClock),
        courier: Arc::new(courier),
        blobs,
        secrets_key: settings.secrets_key.clone(),
    };
    // Before the actors start, so nothing they count at start is lost.
    let handle = metrics_recorder()?;
    let destination =
        admin_token_destination(settings.admin_token_file.as_deref(), &settings.store)?;
    let coord = Coordinator::start_with(store, config, edges).await?;
    let admin_token = coord.bootstrap_admin().await?;
    if let Some(secret) = &admin_token {
        hand_over_admin_token(secret, destination.as_deref())?;
    }
    if settings.insecure_dev {
        tracing::warn!(
            "--insecure-dev: callers without a token act as operators; never use this outside a laptop"
        );
    }
    coord.describe_metrics();
    let app = gigafactory_api::router(
        coord.clone(),
        ApiOptions {
            insecure_dev: settings.insecure_dev,
            listen: Some(addr),
            fault_injection: settings.fault_injection,
            metrics: Some(handle),
            tls: tls.is_some(),
            ..ApiOptions::default()
        },
    );
    tracing::info!(%addr, scheme, store = %settings.store, "coordinator listening");
    let limits = settings.network.limits;
    let server = tokio::spawn(gigafactory_api::listener::serve(listener, app, limits, tls));
    Ok(Node {
        coord,
        addr,
        admin_token,
        server,
    })
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let node = start(args.resolve()?).await?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    node.stop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_file_sets_tls_and_the_listener_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gigafactory.toml");
        std::fs::write(
            &path,
            "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n\
             [listener]\nidle_timeout_ms = 5000\nconnections_max = 10\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            network: NetworkArgs {
                connections_max: Some(3),
                ..NetworkArgs::default()
            },
            ..ServeArgs::default()
        };
        let network = args.resolve().unwrap().network;
        assert_eq!(network.tls.unwrap().cert, Path::new("c.pem"));
        assert_eq!(
            network.limits.idle_timeout,
            std::time::Duration::from_secs(5)
        );
        assert_eq!(network.limits.connections_max, 3);
    }

    #[cfg(unix)]
    #[test]
    fn a_secrets_key_file_others_may_read_stops_the_start() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        std::fs::write(&path, SecretsKey::generate().unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = secrets_key(Some(&path), None).expect_err("refused");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(secrets_key(Some(&path), None).unwrap().is_some());
    }

    #[test]
    fn insecure_dev_from_the_config_file_refuses_a_public_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gigafactory.toml");
        std::fs::write(&path, "insecure_dev = true\nlisten = \"0.0.0.0:7070\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        let err = args.resolve().err().expect("refused");
        assert!(err.to_string().contains("loopback only"), "{err}");
    }
}

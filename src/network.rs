//! How a node meets the network and the disk it shares with other users: TLS and the
//! listener's limits (flags and the config file's `[tls]` and `[listener]`), the rule that
//! `--insecure-dev` listens on loopback only, a store directory only its owner can read, and a
//! secret written to a file only its owner can read.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use gigafactory_api::listener::{ListenerLimits, TlsFiles};
use serde::Deserialize;

#[derive(clap::Args, Default)]
pub struct NetworkArgs {
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key. The files are
    /// reloaded when they change; a pair that does not load keeps the one in use.
    #[arg(long, env = "GIGAFACTORY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "GIGAFACTORY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Ask clients for a certificate signed by this CA (PEM); one presented that does not
    /// chain to it is refused. Tokens still decide what a caller may do.
    #[arg(long, env = "GIGAFACTORY_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Refuse connections without such a client certificate (the CLI and browsers need one too).
    #[arg(long, env = "GIGAFACTORY_TLS_CLIENT_CERT_REQUIRED")]
    pub tls_client_cert_required: bool,
    /// Close a connection whose request head is not complete this long after its first byte
    /// (default 10000).
    #[arg(long, env = "GIGAFACTORY_HEADER_READ_TIMEOUT_MS")]
    pub header_read_timeout_ms: Option<u64>,
    /// Close a connection with no request in flight after this long (default 60000).
    #[arg(long, env = "GIGAFACTORY_IDLE_TIMEOUT_MS")]
    pub idle_timeout_ms: Option<u64>,
    /// Connections served at once; more wait to be accepted (default 4096).
    #[arg(long, env = "GIGAFACTORY_CONNECTIONS_MAX")]
    pub connections_max: Option<usize>,
}

/// The config file's `[tls]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    client_cert_required: Option<bool>,
}

/// The config file's `[listener]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileListener {
    header_read_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    connections_max: Option<usize>,
}

/// What the listener does, resolved.
#[derive(Default)]
pub struct Network {
    pub tls: Option<TlsFiles>,
    pub limits: ListenerLimits,
}

impl NetworkArgs {
    /// Flags first, then the file's tables, then the defaults.
    pub fn resolve(self, tls: Option<FileTls>, listener: Option<FileListener>) -> Result<Network> {
        let tls = tls.unwrap_or_default();
        let listener = listener.unwrap_or_default();
        let cert = self.tls_cert.or(tls.cert);
        let key = self.tls_key.or(tls.key);
        let client_ca = self.tls_client_ca.or(tls.client_ca);
        let client_cert_required =
            self.tls_client_cert_required || tls.client_cert_required.unwrap_or(false);
        let tls = match (cert, key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert,
                key,
                client_ca,
                client_cert_required,
            }),
            (None, None) => {
                anyhow::ensure!(
                    client_ca.is_none() && !client_cert_required,
                    "client certificates need TLS: give --tls-cert and --tls-key too"
                );
                None
            }
            _ => anyhow::bail!("TLS needs both a certificate and its key (--tls-cert, --tls-key)"),
        };
        let mut limits = ListenerLimits::default();
        if let Some(ms) = self
            .header_read_timeout_ms
            .or(listener.header_read_timeout_ms)
        {
            limits.header_read_timeout = positive_ms(ms, "header_read_timeout_ms")?;
        }
        if let Some(ms) = self.idle_timeout_ms.or(listener.idle_timeout_ms) {
            limits.idle_timeout = positive_ms(ms, "idle_timeout_ms")?;
        }
        if let Some(n) = self.connections_max.or(listener.connections_max) {
            anyhow::ensure!(n >= 1, "connections_max must be at least 1");
            limits.connections_max = n;
        }
        Ok(Network { tls, limits })
    }
}

fn positive_ms(ms: u64, name: &str) -> Result<Duration> {
    anyhow::ensure!(ms >= 1, "{name} must be at least 1");
    Ok(Duration::from_millis(ms))
}

/// `--insecure-dev` answers without tokens, so only this machine may reach it.
pub fn check_insecure_dev(insecure_dev: bool, listen: SocketAddr) -> Result<()> {
    anyhow::ensure!(
        !insecure_dev || listen.ip().is_loopback(),
        "--insecure-dev serves without tokens, so it listens on loopback only \
         (127.0.0.1 or [::1]), not {listen}"
    );
    Ok(())
}

/// Makes the directory of an embedded store (`embedded:PATH`) readable by its owner only:
/// created with mode 0700, or tightened to it (with a warning) when others could read it.
pub fn private_store_dir(store: &str) -> Result<()> {
    let dir = match store.split_once(':') {
        Some(("embedded", dir)) => Path::new(dir),
        _ => return Ok(()),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                dir = %dir.display(),
                "the store directory was open to other users (mode {mode:o}); it is now 0700"
            );
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("making {} private", dir.display()))?;
        }
    }
    Ok(())
}

/// Writes `secret` to `path`, readable and writable by its owner only, whether or not the file
/// was there before.
pub fn write_secret(path: &Path, secret: &str) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    // The mode above applies only to a file this call creates: an older one keeps its own.
    #[cfg(unix)]
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .with_context(|| format!("making {} private", path.display()))?;
    writeln!(f, "{secret}")?;
    Ok(())
}

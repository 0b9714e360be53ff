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
    let Some(dir) = gigafactory_storage::embedded_dir(store).map(Path::new) else {
        return Ok(());
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn insecure_dev_listens_on_loopback_only() {
        for addr in ["127.0.0.1:7070", "[::1]:7070"] {
            assert!(check_insecure_dev(true, addr.parse().unwrap()).is_ok());
        }
        for addr in ["0.0.0.0:7070", "[::]:7070", "192.0.2.1:7070"] {
            let err = check_insecure_dev(true, addr.parse().unwrap()).unwrap_err();
            assert!(err.to_string().contains("loopback only"), "{err}");
            assert!(check_insecure_dev(false, addr.parse().unwrap()).is_ok());
        }
    }

    #[test]
    fn a_secret_file_is_owner_only_even_when_it_was_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin-token");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_secret(&path, "new").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        let fresh = dir.path().join("fresh");
        write_secret(&fresh, "s").unwrap();
        assert_eq!(mode(&fresh), 0o600);
    }

    #[test]
    fn the_store_directory_is_created_private_and_tightened_when_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("a/store");
        private_store_dir(&format!("embedded:{}", store.display())).unwrap();
        assert_eq!(mode(&store), 0o700);
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_store_dir(&format!("embedded:{}", store.display())).unwrap();
        assert_eq!(mode(&store), 0o700);
        // Other stores have no directory here.
        private_store_dir("etcd://127.0.0.1:2379").unwrap();
    }

    #[test]
    fn tls_needs_a_certificate_and_its_key_and_client_certificates_need_tls() {
        let cert_only = NetworkArgs {
            tls_cert: Some("c.pem".into()),
            ..NetworkArgs::default()
        };
        assert!(cert_only.resolve(None, None).is_err());
        let ca_only = NetworkArgs {
            tls_client_ca: Some("ca.pem".into()),
            ..NetworkArgs::default()
        };
        assert!(ca_only.resolve(None, None).is_err());
        let from_file: FileTls = toml::from_str("cert = \"c.pem\"\nkey = \"k.pem\"").unwrap();
        let tls = NetworkArgs::default()
            .resolve(Some(from_file), None)
            .unwrap()
            .tls
            .unwrap();
        assert_eq!(tls.key, Path::new("k.pem"));
    }

    #[test]
    fn listener_limits_come_from_flags_then_the_file_then_defaults() {
        let file: FileListener =
            toml::from_str("header_read_timeout_ms = 500\nconnections_max = 8").unwrap();
        let flags = NetworkArgs {
            connections_max: Some(2),
            ..NetworkArgs::default()
        };
        let limits = flags.resolve(None, Some(file)).unwrap().limits;
        assert_eq!(limits.header_read_timeout, Duration::from_millis(500));
        assert_eq!(limits.connections_max, 2);
        assert_eq!(limits.idle_timeout, ListenerLimits::default().idle_timeout);
        let zero = NetworkArgs {
            connections_max: Some(0),
            ..NetworkArgs::default()
        };
        assert!(zero.resolve(None, None).is_err());
    }
}

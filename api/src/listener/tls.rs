//! The listener's TLS: a certificate chain and key (PEM files), and optionally a CA whose
//! client certificates the node asks for, loaded with rustls on the `ring` provider. The files
//! are read again before each handshake (a few kilobytes, next to a handshake's cost): when one
//! changed, the new pair is loaded and used from the next connection on; a pair that does not
//! load keeps the one in use, and says why once per change of the files. Contents are compared,
//! not modification times, which a quick rewrite of a file of the same size can leave as they
//! were.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

/// What the node serves TLS with.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// The private key of the leaf (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Client certificates are asked for, and one presented must chain to these CAs (PEM).
    pub client_ca: Option<PathBuf>,
    /// Refuse connections that present no client certificate (needs `client_ca`).
    pub client_cert_required: bool,
}

/// Why a certificate and key could not be used. The node keeps serving with the pair it had.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file is missing or unreadable: fix the path or its permissions.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file holds nothing of what was expected: give a PEM file of that kind.
    #[error("{path}: {what}")]
    Pem { path: PathBuf, what: String },
    /// rustls refused the pair (a key that does not match the certificate, say).
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    /// The client CA file gives no usable trust anchor.
    #[error("client certificate authorities: {0}")]
    ClientCa(String),
    /// `client_cert_required` without a CA to check certificates against.
    #[error("requiring client certificates needs a client CA file")]
    RequiredWithoutCa,
}

/// The server configuration in use and the state of the files it came from.
pub struct TlsReloader {
    files: TlsFiles,
    /// The files' contents when last looked at (`None`: unreadable).
    seen: Vec<Option<Vec<u8>>>,
    config: Arc<ServerConfig>,
}

impl TlsReloader {
    /// Loads the files; an error here stops the node from starting.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let seen = contents(&files);
        let config = Arc::new(server_config(&files)?);
        Ok(TlsReloader {
            files,
            seen,
            config,
        })
    }

    /// The configuration for the next handshake: reloaded first if a file changed since it was
    /// last looked at. A failed reload keeps the configuration in use and is logged; it is
    /// tried again when the files change again.
    pub fn current(&mut self) -> Arc<ServerConfig> {
        let now = contents(&self.files);
        if now != self.seen {
            self.seen = now;
            match server_config(&self.files) {
                Ok(config) => {
                    tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                    self.config = Arc::new(config);
                }
                Err(e) => tracing::warn!(
                    cert = %self.files.cert.display(),
                    "TLS files changed but cannot be used, keeping the certificate in use: {e}"
                ),
            }
        }
        self.config.clone()
    }
}

fn contents(files: &TlsFiles) -> Vec<Option<Vec<u8>>> {
    [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|p| std::fs::read(p).ok())
    .collect()
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |what: String| TlsError::Pem {
        path: path.to_path_buf(),
        what,
    };
    let certs = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// The rustls configuration the files describe: TLS 1.2 and 1.3 on `ring`, HTTP/1.1 only.
fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let certs = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?).map_err(|e| TlsError::Pem {
        path: files.key.clone(),
        what: format!("no private key: {e}"),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)?;
    let builder = match &files.client_ca {
        None if files.client_cert_required => return Err(TlsError::RequiredWithoutCa),
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if files.client_cert_required {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key)?;
    // Only HTTP/1.1 is served: a client offering h2 must not pick it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

//! TLS for clients of a coordinator, the agent's and the CLI's alike: rustls (on `ring`) with
//! the system's root certificates, plus a private CA's certificate when one is given, and a
//! client certificate to present when the coordinator asks for one.

use std::path::{Path, PathBuf};

use crate::error::AgentError;

/// What a client trusts and presents.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// More CA certificates to trust (PEM, one or more), for a coordinator whose certificate a
    /// private CA signed.
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain (PEM) and its key (PEM), presented when the coordinator asks.
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl ClientTls {
    /// `builder` set to trust and present what `self` says.
    pub fn apply(
        &self,
        mut builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, AgentError> {
        if let Some(path) = &self.ca_file {
            let certs = reqwest::Certificate::from_pem_bundle(&read(path)?)
                .map_err(|e| bad(path, &e.to_string()))?;
            if certs.is_empty() {
                return Err(bad(path, "no CERTIFICATE block"));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some((cert, key)) = &self.identity {
            // reqwest reads the key and the chain from one PEM buffer.
            let mut pem = read(cert)?;
            pem.push(b'\n');
            pem.extend(read(key)?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                AgentError::Config(format!(
                    "client certificate {} with key {}: {e}",
                    cert.display(),
                    key.display()
                ))
            })?;
            builder = builder.identity(identity);
        }
        Ok(builder)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, AgentError> {
    std::fs::read(path).map_err(|e| AgentError::io(format!("reading {}", path.display()), e))
}

fn bad(path: &Path, why: &str) -> AgentError {
    AgentError::Config(format!("{}: {why}", path.display()))
}

/// A transport error with its causes (reqwest's own message hides them), and what to do when
/// the cause is the coordinator's certificate.
pub fn explain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    // rustls's own words: "invalid peer certificate: ..." when the coordinator's certificate
    // fails the checks, a fatal alert from the coordinator when ours (or its absence) does.
    if text.contains("invalid peer certificate") {
        text.push_str(
            " (the coordinator's TLS certificate is not trusted: give its CA with --ca-file or GIGAFACTORY_CA_FILE)",
        );
    } else if ["CertificateRequired", "UnknownCA", "BadCertificate"]
        .iter()
        .any(|alert| text.contains(&format!("received fatal alert: {alert}")))
    {
        text.push_str(
            " (the coordinator refused this client's certificate or its absence: see --tls-client-cert and --tls-client-key)",
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with a cause, as reqwest nests hyper's and rustls's.
    #[derive(Debug)]
    struct Nested(&'static str, Option<Box<Nested>>);

    impl std::fmt::Display for Nested {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Nested {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn a_certificate_error_is_explained_with_what_to_do() {
        let untrusted = Nested(
            "error sending request",
            Some(Box::new(Nested(
                "invalid peer certificate: UnknownIssuer",
                None,
            ))),
        );
        let text = explain(&untrusted);
        assert!(text.starts_with("error sending request: invalid peer certificate"));
        assert!(text.contains("--ca-file"), "{text}");
        let refused = Nested("received fatal alert: CertificateRequired", None);
        assert!(explain(&refused).contains("--tls-client-cert"));
        let refused_conn = Nested("connection refused", None);
        assert_eq!(explain(&refused_conn), "connection refused");
    }
}

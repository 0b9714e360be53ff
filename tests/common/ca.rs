//! A certificate authority made at test time (rcgen, on `ring` as the listener and clients
//! are) and the leaves it signs, as PEM text or as files. Shared by the listener's tests in
//! `api` and the end-to-end TLS tests, which include this file by path.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

pub use rcgen::ExtendedKeyUsagePurpose as Purpose;

pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa { issuer }
    }

    /// The CA's own certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA's own certificate, DER.
    pub fn der(&self) -> Vec<u8> {
        self.issuer.der().to_vec()
    }

    /// Writes the CA's certificate to `path`, and gives `path` back.
    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.pem()).unwrap();
        path.to_path_buf()
    }

    /// A leaf for `names` (host names or IP addresses) used as `purpose`: certificate and
    /// key, PEM.
    pub fn leaf(&self, names: &[&str], purpose: ExtendedKeyUsagePurpose) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![purpose];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// [`Self::leaf`] written to `cert` and `key`, which are given back.
    pub fn leaf_files(
        &self,
        names: &[&str],
        purpose: ExtendedKeyUsagePurpose,
        cert: &Path,
        key: &Path,
    ) -> (PathBuf, PathBuf) {
        let (cert_pem, key_pem) = self.leaf(names, purpose);
        std::fs::write(cert, cert_pem).unwrap();
        std::fs::write(key, key_pem).unwrap();
        (cert.to_path_buf(), key.to_path_buf())
    }
}

//! Our own CA: root and issuing CA keys in the HSM, certificates with the qualified profile, and CRLs;
//! and the time-stamping authority, its key in the HSM and its certificate from the issuing CA.

pub mod ca;
pub mod cades;
pub(crate) mod certificate;
pub(crate) mod crl;
pub(crate) mod hsm_signer;
pub mod ocsp;
pub mod pades;
pub(crate) mod profile;
pub mod tsa;
// One struct per RFC structure, each field named as the RFC names it: the RFC is their documentation.
#[allow(missing_docs)]
pub mod tsp;

pub use ca::{CertificateAuthority, IssuedCertificate};
pub use hsm_signer::HsmSigner;

/// Why the CA could not build, sign or read a certificate or CRL.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The HSM refused or failed the signature.
    #[error(transparent)]
    Hsm(#[from] crate::hsm::HsmError),
    /// A DER encoding or decoding failed.
    #[error("certificate encoding: {0}")]
    Encoding(#[from] der::Error),
    /// The X.509 builder refused the certificate.
    #[error("certificate builder: {0}")]
    Builder(#[from] x509_cert::builder::Error),
    /// A value the CA will not put into a certificate, or a certificate it cannot use, in words.
    #[error("{0}")]
    Invalid(String),
}

/// What the PKI's unit tests share: a SoftHSM token of their own, and openssl as the independent judge.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use crate::hsm::KeyStore;

    /// A fresh SoftHSM token (the caller holds `crate::hsm::test_support::exclusive()`).
    pub(crate) fn keystore(label: &str) -> KeyStore {
        KeyStore::open(Path::new(crate::config::SOFTHSM_MODULE), label, &"1234".into(), 1, Some("12345678")).unwrap()
    }

    pub(crate) fn now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
    }

    /// Writes a DER certificate as PEM under `dir`; the PEM file's path.
    pub(crate) fn pem(dir: &Path, name: &str, certificate_der: &[u8]) -> PathBuf {
        let der_path = dir.join(format!("{name}.der"));
        let pem_path = dir.join(format!("{name}.pem"));
        std::fs::write(&der_path, certificate_der).unwrap();
        let out = Command::new("openssl")
            .args(["x509", "-inform", "DER", "-in"])
            .arg(&der_path)
            .arg("-out")
            .arg(&pem_path)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl x509: {}", String::from_utf8_lossy(&out.stderr));
        pem_path
    }

    /// `openssl cms -verify` of a DER SignedData against the root certificate, with the content given
    /// apart for a detached signature: the signed content, or None when openssl does not verify it.
    pub(crate) fn openssl_cms_verify(
        dir: &Path,
        name: &str,
        cms_der: &[u8],
        root_pem: &Path,
        detached: Option<&[u8]>,
    ) -> Option<Vec<u8>> {
        let path = dir.join(format!("{name}.p7m"));
        std::fs::write(&path, cms_der).unwrap();
        let mut command = Command::new("openssl");
        command.args(["cms", "-verify", "-inform", "DER", "-purpose", "any", "-binary", "-in"]).arg(&path);
        command.arg("-CAfile").arg(root_pem);
        if let Some(content) = detached {
            let content_path = dir.join(format!("{name}.content"));
            std::fs::write(&content_path, content).unwrap();
            command.arg("-content").arg(content_path);
        }
        let out = command.output().unwrap();
        let verified = out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Verification successful");
        verified.then_some(out.stdout)
    }
}

//! Our own CA: root and issuing CA keys in the HSM, certificates with the qualified profile, and CRLs.

pub mod ca;
pub(crate) mod certificate;
pub(crate) mod crl;
pub(crate) mod hsm_signer;
pub(crate) mod profile;

pub use ca::{CertificateAuthority, IssuedCertificate};
pub use hsm_signer::HsmSigner;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error(transparent)]
    Hsm(#[from] crate::hsm::HsmError),
    #[error("certificate encoding: {0}")]
    Encoding(#[from] der::Error),
    #[error("certificate builder: {0}")]
    Builder(#[from] x509_cert::builder::Error),
    #[error("{0}")]
    Invalid(String),
}

//! Our own CA: root and issuing CA keys in the HSM, certificates with the qualified profile, and CRLs;
//! and the time-stamping authority, its key in the HSM and its certificate from the issuing CA.

pub mod ca;
pub(crate) mod certificate;
pub(crate) mod crl;
pub(crate) mod hsm_signer;
pub mod ocsp;
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

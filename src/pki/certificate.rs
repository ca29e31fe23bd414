//! X.509 structures encoded by hand with `der`, and signing them with a CA key in the HSM.
//! (x509-cert 0.3 keeps its TBS fields private; these mirror RFC 5280 exactly.)

use der::asn1::{BitString, ObjectIdentifier};
use der::{Decode, Encode, Sequence};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::domain::{secrets, HashAlgorithm, KeyKind, SignatureScheme};
use crate::hsm::{KeyId, KeyStore};

use super::PkiError;

pub const ECDSA_WITH_SHA384: &str = "1.2.840.10045.4.3.3";
pub const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";

/// TBSCertificate (RFC 5280 §4.1), always version 3.
#[derive(Sequence)]
pub struct TbsCertificate {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    pub version: u8,
    pub serial_number: SerialNumber,
    pub signature: AlgorithmIdentifierOwned,
    pub issuer: Name,
    pub validity: Validity,
    pub subject: Name,
    pub subject_public_key_info: SubjectPublicKeyInfoOwned,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT")]
    pub extensions: Vec<Extension>,
}

#[derive(Sequence)]
struct Signed {
    tbs: der::Any,
    algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
}

/// A CA key in the HSM that signs certificates and CRLs.
pub struct CaSigner<'a> {
    pub keystore: &'a KeyStore,
    pub key: KeyId,
    pub kind: KeyKind,
}

impl CaSigner<'_> {
    pub fn algorithm(&self) -> AlgorithmIdentifierOwned {
        if self.kind.is_rsa() {
            AlgorithmIdentifierOwned {
                oid: ObjectIdentifier::new_unwrap(SHA256_WITH_RSA),
                parameters: Some(der::asn1::Null.into()),
            }
        } else {
            AlgorithmIdentifierOwned { oid: ObjectIdentifier::new_unwrap(ECDSA_WITH_SHA384), parameters: None }
        }
    }

    /// Hashes the to-be-signed structure in software and signs the digest in the HSM, then wraps
    /// both into the signed structure (Certificate or CertificateList share this shape).
    pub fn sign(&self, tbs: impl Encode) -> Result<Vec<u8>, PkiError> {
        let scheme = if self.kind.is_rsa() {
            SignatureScheme::RsaPkcs1(HashAlgorithm::Sha256)
        } else {
            SignatureScheme::Ecdsa(HashAlgorithm::Sha384)
        };
        let tbs_der = tbs.to_der()?;
        let digest = scheme.hash().digest(&tbs_der);
        let signature = self
            .keystore
            .sign_digests(&self.key, scheme, &[digest])?
            .pop()
            .ok_or_else(|| PkiError::Invalid("HSM returned no signature".into()))?;
        let signed = Signed {
            tbs: der::Any::from_der(&tbs_der)?,
            algorithm: self.algorithm(),
            signature: BitString::from_bytes(&signature)?,
        };
        Ok(signed.to_der()?)
    }
}

/// A positive 128-bit serial number.
pub fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = secrets::random_bytes::<16>();
    bytes[0] = (bytes[0] & 0x7f) | 0x10;
    Ok(SerialNumber::new(&bytes)?)
}

pub fn time(unix_seconds: i64) -> Result<Time, PkiError> {
    let duration = std::time::Duration::from_secs(
        u64::try_from(unix_seconds).map_err(|_| PkiError::Invalid("time before 1970".into()))?,
    );
    // UTCTime until 2049, GeneralizedTime after, as RFC 5280 requires.
    Ok(Time::try_from(std::time::UNIX_EPOCH + duration)?)
}

pub fn validity(not_before: i64, not_after: i64) -> Result<Validity, PkiError> {
    Ok(Validity::new(time(not_before)?, time(not_after)?))
}

//! Certificate revocation lists (RFC 5280 §5), signed by a CA key in the HSM.
//!
//! x509-cert 0.3.0 has a `CrlBuilder`, but it copies the authorityKeyIdentifier of the issuer's
//! *certificate* into the CRL. That names the issuer's issuer (for the issuing CA: the root), where
//! RFC 5280 §5.2.1 wants the key that signed the CRL. So the CRL is built here with the crate's
//! `TbsCertList`, through the crate's `Builder` trait, and signed by the same [`HsmSigner`] as certificates.

use der::asn1::BitString;
use der::referenced::OwnedToRef;
use der::Encode;
use signature::Keypair;
use spki::{DynSignatureAlgorithmIdentifier, EncodePublicKey, SubjectPublicKeyInfoOwned};
use x509_cert::builder::{self, Builder};
use x509_cert::certificate::Version;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber};
use x509_cert::ext::ToExtension;
use x509_cert::serial_number::SerialNumber;

use super::ca::CaLevel;
use super::certificate::time;
use super::PkiError;
use crate::db::credentials::RevokedCertificate;
use crate::domain::RevocationReason;
use crate::hsm::KeyStore;
use x509_cert::ext::pkix::crl::CrlReason;

/// What goes into one CRL besides its entries.
#[derive(Debug, Clone, Copy)]
pub struct CrlTimes {
    /// The CRL number (RFC 5280 §5.2.3), taken from the database so it only grows.
    pub number: i64,
    pub this_update: i64,
    pub next_update: i64,
}

/// A version 2 CRL before it is signed. Its extensions, authorityKeyIdentifier (of the signer's key)
/// then cRLNumber, both non-critical, are added when the signer is known.
struct UnsignedCrl {
    number: CrlNumber,
    tbs: TbsCertList,
}

impl Builder for UnsignedCrl {
    type Output = CertificateList;

    fn finalize<S>(&mut self, signer: &S) -> builder::Result<Vec<u8>>
    where
        S: Keypair + DynSignatureAlgorithmIdentifier,
        S::VerifyingKey: EncodePublicKey,
    {
        let signer_key = SubjectPublicKeyInfoOwned::from_key(&signer.verifying_key())?;
        let aki = AuthorityKeyIdentifier::try_from(signer_key.owned_to_ref())?;
        let issuer = &self.tbs.issuer;
        self.tbs.crl_extensions =
            Some(vec![(false, &aki).to_extension(issuer, &[])?, (false, &self.number).to_extension(issuer, &[])?]);
        self.tbs.signature = signer.signature_algorithm_identifier()?;
        Ok(self.tbs.to_der()?)
    }

    fn assemble<S>(self, signature: BitString, _signer: &S) -> builder::Result<CertificateList>
    where
        S: Keypair + DynSignatureAlgorithmIdentifier,
        S::VerifyingKey: EncodePublicKey,
    {
        let signature_algorithm = self.tbs.signature.clone();
        Ok(CertificateList { tbs_cert_list: self.tbs, signature_algorithm, signature })
    }
}

/// The CRL reason code of a revocation reason (RFC 5280 §5.3.1).
pub fn crl_reason(reason: RevocationReason) -> CrlReason {
    match reason {
        RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
        RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
        RevocationReason::Superseded => CrlReason::Superseded,
        RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
    }
}

/// A signed CRL listing `revoked`: each entry with its reasonCode, unless unspecified (RFC 5280 §5.3.1
/// wants it left out then).
pub fn build(
    keystore: &KeyStore,
    issuer: &CaLevel,
    revoked: &[RevokedCertificate],
    times: CrlTimes,
) -> Result<Vec<u8>, PkiError> {
    let number = u64::try_from(times.number)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| PkiError::Invalid(format!("CRL number {} is not positive", times.number)))?;
    let mut entries = Vec::with_capacity(revoked.len());
    for entry in revoked {
        let bytes = hex::decode(&entry.serial_hex).map_err(|e| PkiError::Invalid(format!("stored serial: {e}")))?;
        let reason = match entry.code {
            Some(code) => Some(vec![(false, &crl_reason(code)).to_extension(&issuer.name, &[])?]),
            None => None,
        };
        entries.push(RevokedCert {
            serial_number: SerialNumber::new(&bytes)?,
            revocation_date: time(entry.at)?,
            crl_entry_extensions: reason,
        });
    }
    let signer = issuer.signer(keystore)?;
    let crl = UnsignedCrl {
        number: CrlNumber::try_from(number)?,
        tbs: TbsCertList {
            version: Version::V2,
            // `finalize` sets it again from the signer that signs.
            signature: signer.algorithm().clone(),
            issuer: issuer.name.clone(),
            this_update: time(times.this_update)?,
            next_update: Some(time(times.next_update)?),
            revoked_certificates: if entries.is_empty() { None } else { Some(entries) },
            crl_extensions: None,
        },
    };
    Ok(signer.build(crl)?.to_der()?)
}

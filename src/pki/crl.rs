//! Certificate revocation lists (RFC 5280 §5), signed by a CA key in the HSM.

use const_oid::AssociatedOid;
use der::asn1::OctetString;
use der::{Encode, Sequence};
use spki::AlgorithmIdentifierOwned;
use x509_cert::crl::RevokedCert;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

use super::ca::CaLevel;
use super::certificate::time;
use super::PkiError;
use crate::hsm::KeyStore;

/// TBSCertList (RFC 5280 §5.1), version 2.
#[derive(Sequence)]
struct TbsCertList {
    version: u8,
    signature: AlgorithmIdentifierOwned,
    issuer: Name,
    this_update: Time,
    next_update: Option<Time>,
    revoked_certificates: Option<Vec<RevokedCert>>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    crl_extensions: Vec<Extension>,
}

/// What goes into one CRL besides its entries.
#[derive(Debug, Clone, Copy)]
pub struct CrlTimes {
    /// The CRL number (RFC 5280 §5.2.3), taken from the database so it only grows.
    pub number: i64,
    pub this_update: i64,
    pub next_update: i64,
}

/// A signed CRL listing `revoked` (serial as hex, revocation time).
pub fn build(
    keystore: &KeyStore,
    issuer: &CaLevel,
    revoked: &[(String, i64)],
    times: CrlTimes,
) -> Result<Vec<u8>, PkiError> {
    if times.number < 1 {
        return Err(PkiError::Invalid(format!("CRL number {} is not positive", times.number)));
    }
    let signer = issuer.signer(keystore);
    let mut entries = Vec::with_capacity(revoked.len());
    for (serial_hex, at) in revoked {
        let bytes = hex::decode(serial_hex).map_err(|e| PkiError::Invalid(format!("stored serial: {e}")))?;
        entries.push(RevokedCert {
            serial_number: SerialNumber::new(&bytes)?,
            revocation_date: time(*at)?,
            crl_entry_extensions: None,
        });
    }
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(issuer.key_identifier.clone())?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    let number = CrlNumber(der::asn1::Uint::new(&times.number.to_be_bytes())?);
    let extensions = vec![
        Extension {
            extn_id: AuthorityKeyIdentifier::OID,
            critical: false,
            extn_value: OctetString::new(aki.to_der()?)?,
        },
        Extension { extn_id: CrlNumber::OID, critical: false, extn_value: OctetString::new(number.to_der()?)? },
    ];
    let tbs = TbsCertList {
        version: 1,
        signature: signer.algorithm(),
        issuer: issuer.name.clone(),
        this_update: time(times.this_update)?,
        next_update: Some(time(times.next_update)?),
        revoked_certificates: if entries.is_empty() { None } else { Some(entries) },
        crl_extensions: extensions,
    };
    signer.sign(tbs)
}

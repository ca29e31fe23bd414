//! CAdES-B-LT (ETSI EN 319 122-1 §6.3, as the EU's DSS library makes it): the certificates and the
//! revocation values that validate a B-T signature later, without asking anyone, put in the SignedData's
//! unsigned `certificates` and `crls` fields (RFC 5652 §5.1). CRLs go in as themselves, OCSP responses as
//! `other` revocation information of format id-ri-ocsp-response (RFC 5940 §4.1). Nothing signed changes:
//! the SignerInfo, its signature and its time-stamp stay as they were.
//!
//! The cms crate's `OtherRevocationInfoFormat` writes its format as an AlgorithmIdentifier, where RFC
//! 5652 §10.2.1 has a bare OBJECT IDENTIFIER, so the SignedData is written again here with
//! [`RevocationValue`], the structure as the RFC defines it.

use std::cmp::Ordering;

use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{CertificateSet, DigestAlgorithmIdentifiers, EncapsulatedContentInfo, SignedData, SignerInfos};
use const_oid::db::rfc5911::ID_SIGNED_DATA;
use der::asn1::{ObjectIdentifier, SetOfVec};
use der::{Choice, Decode, Encode, Sequence, ValueOrd};
use x509_cert::crl::CertificateList;
use x509_cert::Certificate;

use super::super::PkiError;

/// id-ri-ocsp-response (RFC 5940 §4.1): an OCSPResponse as other revocation information.
pub const ID_RI_OCSP_RESPONSE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.16.2");

/// RevocationInfoChoice (RFC 5652 §10.2.1).
#[derive(Clone, Debug, Eq, PartialEq, Choice)]
#[allow(clippy::large_enum_variant)]
pub enum RevocationValue {
    /// A CRL.
    Crl(CertificateList),
    /// `other [1] IMPLICIT OtherRevocationInfoFormat`.
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true")]
    Other(OtherRevocationInfo),
}

/// OtherRevocationInfoFormat (RFC 5652 §10.2.1): the format's OID and the information.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct OtherRevocationInfo {
    /// otherRevInfoFormat.
    pub format: ObjectIdentifier,
    /// otherRevInfo.
    pub info: der::Any,
}

// A SET OF is written in the order of its elements' encodings (X.690 §11.6).
impl ValueOrd for RevocationValue {
    fn value_cmp(&self, other: &Self) -> der::Result<Ordering> {
        use der::DerOrd;
        self.to_der()?.der_cmp(&other.to_der()?)
    }
}

/// SignedData (RFC 5652 §5.1) with its `crls` as [`RevocationValue`]s: how to read a CAdES-B-LT that the
/// cms crate's `SignedData` cannot.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SignedDataWithRevocation {
    /// CMSVersion.
    pub version: CmsVersion,
    /// digestAlgorithms.
    pub digest_algorithms: DigestAlgorithmIdentifiers,
    /// encapContentInfo.
    pub encap_content_info: EncapsulatedContentInfo,
    /// certificates.
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub certificates: Option<CertificateSet>,
    /// crls: the revocation values.
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub crls: Option<SetOfVec<RevocationValue>>,
    /// signerInfos.
    pub signer_infos: SignerInfos,
}

/// Adds the validation data to a CMS SignedData: `certificates` (DER) not already carried,
/// `crls` (DER CertificateLists) and `ocsp` (DER OCSPResponses). The CMS must hold a signature
/// time-stamp already (B-LT extends B-T) and no revocation values yet.
pub fn with_validation_data(
    cms_der: &[u8],
    certificates: &[Vec<u8>],
    ocsp: &[Vec<u8>],
    crls: &[Vec<u8>],
) -> Result<Vec<u8>, PkiError> {
    let content_info = ContentInfo::from_der(cms_der)?;
    if content_info.content_type != ID_SIGNED_DATA {
        return Err(PkiError::Invalid("a CMS that is not SignedData".into()));
    }
    let signed_data: SignedData = content_info.content.decode_as()?;
    if signed_data.crls.is_some() {
        return Err(PkiError::Invalid("the SignedData holds revocation values already".into()));
    }
    if signed_data.signer_infos.0.len() != 1 {
        return Err(PkiError::Invalid("a SignedData without exactly one SignerInfo".into()));
    }
    let time_stamped = signed_data.signer_infos.0.iter().all(|info| {
        info.unsigned_attrs
            .as_ref()
            .is_some_and(|attrs| attrs.iter().any(|a| a.oid == super::SIGNATURE_TIME_STAMP_TOKEN))
    });
    if !time_stamped {
        return Err(PkiError::Invalid("CAdES-B-LT extends a signature time-stamped (B-T)".into()));
    }
    let mut carried: Vec<CertificateChoices> = signed_data.certificates.map(|set| set.0.into_vec()).unwrap_or_default();
    for der in certificates {
        let certificate = CertificateChoices::Certificate(Certificate::from_der(der)?);
        if !carried.contains(&certificate) {
            carried.push(certificate);
        }
    }
    let mut values = Vec::with_capacity(crls.len() + ocsp.len());
    for der in crls {
        values.push(RevocationValue::Crl(CertificateList::from_der(der)?));
    }
    for der in ocsp {
        values.push(RevocationValue::Other(OtherRevocationInfo {
            format: ID_RI_OCSP_RESPONSE,
            info: der::Any::from_der(der)?,
        }));
    }
    let with = SignedDataWithRevocation {
        // RFC 5652 §5.1: version 5 when crls holds `other` revocation information.
        version: if ocsp.is_empty() { signed_data.version } else { CmsVersion::V5 },
        digest_algorithms: signed_data.digest_algorithms,
        encap_content_info: signed_data.encap_content_info,
        certificates: Some(CertificateSet::try_from(carried)?),
        crls: Some(SetOfVec::try_from(values)?),
        signer_infos: signed_data.signer_infos,
    };
    Ok(ContentInfo { content_type: ID_SIGNED_DATA, content: der::Any::encode_from(&with)? }.to_der()?)
}

/// The revocation values a CMS carries, DER.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationValues {
    /// CertificateLists.
    pub crls: Vec<Vec<u8>>,
    /// OCSPResponses.
    pub ocsp: Vec<Vec<u8>>,
}

/// The revocation values of a CMS SignedData, as written by [`with_validation_data`].
pub fn revocation_values(cms_der: &[u8]) -> Result<RevocationValues, PkiError> {
    let content_info = ContentInfo::from_der(cms_der)?;
    let signed_data: SignedDataWithRevocation = content_info.content.decode_as()?;
    let mut values = RevocationValues::default();
    for value in signed_data.crls.map(SetOfVec::into_vec).unwrap_or_default() {
        match value {
            RevocationValue::Crl(crl) => values.crls.push(crl.to_der()?),
            RevocationValue::Other(other) if other.format == ID_RI_OCSP_RESPONSE => {
                values.ocsp.push(other.info.to_der()?)
            }
            RevocationValue::Other(_) => {}
        }
    }
    Ok(values)
}

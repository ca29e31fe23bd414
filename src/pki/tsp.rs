//! The ASN.1 of the Time-Stamp Protocol (RFC 3161 §2.4, as updated by RFC 5816) and of the ESS
//! signing-certificate attribute (RFC 5035 §3) that a time-stamp token's SignerInfo carries. The
//! crates rssp builds on have neither (`x509-tsp` is built on an older `der`): one struct per
//! structure of the RFC, in its field order.

use der::asn1::{BitString, GeneralizedTime, Int, ObjectIdentifier, OctetString, Uint};
use der::{Enumerated, Sequence};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::Extensions;
use x509_cert::serial_number::SerialNumber;

/// Object identifiers of RFC 3161, RFC 5035 and ETSI EN 319 422 (not in `const_oid::db`).
pub mod oid {
    use der::asn1::ObjectIdentifier;

    /// id-ct-TSTInfo (RFC 3161 §2.4.2): the eContentType of a time-stamp token.
    pub const TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
    /// id-aa-signingCertificateV2 (RFC 5035 §3).
    pub const SIGNING_CERTIFICATE_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
    /// esi4-qtstStatement-1 (ETSI EN 319 422 §9.1): the time-stamp is qualified (eIDAS art. 42).
    pub const QTST_STATEMENT: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.19422.1.1");
    /// best-practices-ts-policy (ETSI EN 319 421 §5.2), the default policy of rssp's TSA.
    pub const BEST_PRACTICES_TS_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.2023.1.1");
}

/// MessageImprint (RFC 3161 §2.4.1): the hash being time-stamped and its algorithm.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct MessageImprint {
    pub hash_algorithm: AlgorithmIdentifierOwned,
    pub hashed_message: OctetString,
}

/// TimeStampReq (RFC 3161 §2.4.1).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct TimeStampReq {
    /// v1(1).
    pub version: u8,
    pub message_imprint: MessageImprint,
    pub req_policy: Option<ObjectIdentifier>,
    /// Kept as sent (any length), to be echoed byte for byte.
    pub nonce: Option<Int>,
    #[asn1(default = "Default::default")]
    pub cert_req: bool,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub extensions: Option<Extensions>,
}

/// PKIStatus (RFC 3161 §2.4.2; RFC 4210).
#[derive(Clone, Copy, Debug, Eq, PartialEq, Enumerated)]
#[asn1(type = "INTEGER")]
#[repr(u8)]
pub enum PkiStatus {
    Granted = 0,
    GrantedWithMods = 1,
    Rejection = 2,
    Waiting = 3,
    RevocationWarning = 4,
    RevocationNotification = 5,
}

/// PKIFailureInfo (RFC 3161 §2.4.2): why a request was rejected, as a named bit.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum FailureInfo {
    /// Unrecognized or unsupported Algorithm Identifier.
    BadAlg = 0,
    /// Transaction not permitted or supported.
    BadRequest = 2,
    /// The data submitted has the wrong format.
    BadDataFormat = 5,
    /// The requested TSA policy is not supported by the TSA.
    UnacceptedPolicy = 15,
    /// The requested extension is not supported by the TSA.
    UnacceptedExtension = 16,
    /// The request cannot be handled due to system failure.
    SystemFailure = 25,
}

impl FailureInfo {
    /// The named bit as a DER BIT STRING: bits up to and including it, trailing zero bits removed.
    pub fn to_bit_string(self) -> der::Result<BitString> {
        let bit = self as usize;
        let mut bytes = vec![0u8; bit / 8 + 1];
        bytes[bit / 8] = 0x80 >> (bit % 8);
        BitString::new((7 - bit % 8) as u8, bytes)
    }

    /// The name RFC 3161 gives the bit.
    pub fn name(self) -> &'static str {
        match self {
            FailureInfo::BadAlg => "badAlg",
            FailureInfo::BadRequest => "badRequest",
            FailureInfo::BadDataFormat => "badDataFormat",
            FailureInfo::UnacceptedPolicy => "unacceptedPolicy",
            FailureInfo::UnacceptedExtension => "unacceptedExtension",
            FailureInfo::SystemFailure => "systemFailure",
        }
    }
}

/// PKIStatusInfo (RFC 3161 §2.4.2). statusString is PKIFreeText, a SEQUENCE OF UTF8String.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct PkiStatusInfo {
    pub status: PkiStatus,
    pub status_string: Option<Vec<String>>,
    pub fail_info: Option<BitString>,
}

/// TimeStampResp (RFC 3161 §2.4.2). The token is a CMS ContentInfo of SignedData.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct TimeStampResp {
    pub status: PkiStatusInfo,
    pub time_stamp_token: Option<cms::content_info::ContentInfo>,
}

/// Accuracy (RFC 3161 §2.4.2): how far genTime may be from the time of UTC.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct Accuracy {
    pub seconds: Option<u32>,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub millis: Option<u16>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub micros: Option<u16>,
}

/// TSTInfo (RFC 3161 §2.4.2): what the TSA signs. `ordering` is DEFAULT FALSE and rssp never sets it.
/// `tsa` is a GeneralName, a CHOICE, so its `[0]` tag is explicit.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct TstInfo {
    /// v1(1).
    pub version: u8,
    pub policy: ObjectIdentifier,
    pub message_imprint: MessageImprint,
    pub serial_number: Uint,
    pub gen_time: GeneralizedTime,
    pub accuracy: Option<Accuracy>,
    #[asn1(default = "Default::default")]
    pub ordering: bool,
    pub nonce: Option<Int>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub tsa: Option<GeneralName>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub extensions: Option<Extensions>,
}

/// IssuerSerial (RFC 5035 §4): the issuer and serial number of the signer's certificate.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct IssuerSerial {
    pub issuer: Vec<GeneralName>,
    pub serial_number: SerialNumber,
}

/// ESSCertIDv2 (RFC 5035 §4). hashAlgorithm DEFAULT id-sha256: rssp hashes with SHA-256 and so
/// omits it, as DER requires of a default value.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct EssCertIdV2 {
    pub cert_hash: OctetString,
    pub issuer_serial: Option<IssuerSerial>,
}

impl EssCertIdV2 {
    /// The ESSCertIDv2 of a certificate (`der`, its encoding): its SHA-256 hash, and its issuer and serial
    /// number, as a time-stamp token names its TSA's certificate (RFC 5816).
    pub fn of(certificate: &x509_cert::Certificate, der: &[u8]) -> der::Result<Self> {
        Ok(EssCertIdV2 {
            cert_hash: OctetString::new(crate::domain::HashAlgorithm::Sha256.digest(der))?,
            issuer_serial: Some(IssuerSerial {
                issuer: vec![GeneralName::DirectoryName(certificate.tbs_certificate().issuer().clone())],
                serial_number: certificate.tbs_certificate().serial_number().clone(),
            }),
        })
    }

    /// The ESSCertIDv2 of a certificate by its SHA-256 hash alone, as a baseline signature names its
    /// signer's certificate (ETSI EN 319 122-1 §6.3 g: issuerSerial should not be included).
    pub fn hash_only(der: &[u8]) -> der::Result<Self> {
        Ok(EssCertIdV2 {
            cert_hash: OctetString::new(crate::domain::HashAlgorithm::Sha256.digest(der))?,
            issuer_serial: None,
        })
    }
}

/// SigningCertificateV2 (RFC 5035 §3): binds the signature to the signer's certificate. rssp names
/// no policies.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SigningCertificateV2 {
    pub certs: Vec<EssCertIdV2>,
}

impl SigningCertificateV2 {
    /// The signed attribute naming one certificate.
    pub fn attribute(certificate: EssCertIdV2) -> der::Result<x509_cert::attr::Attribute> {
        let value = SigningCertificateV2 { certs: vec![certificate] };
        Ok(x509_cert::attr::Attribute {
            oid: oid::SIGNING_CERTIFICATE_V2,
            values: der::asn1::SetOfVec::try_from(vec![der::Any::encode_from(&value)?])?,
        })
    }
}

/// ObjectIdentifier of a statement and its optional info: a QCStatement (RFC 3739 §3.2.6), here the
/// qcStatements extension of a qualified time-stamp (ETSI EN 319 422 §9.1).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct QcStatement {
    pub statement_id: ObjectIdentifier,
    pub statement_info: Option<der::Any>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::{Decode, Encode};

    #[test]
    fn failure_bits_are_named_bits_without_trailing_zeros() {
        // RFC 3161 bit numbers: the bit string carries the bits up to the named one, and no more.
        let cases = [
            (FailureInfo::BadAlg, vec![0x03, 0x02, 0x07, 0x80]),
            (FailureInfo::BadRequest, vec![0x03, 0x02, 0x05, 0x20]),
            (FailureInfo::BadDataFormat, vec![0x03, 0x02, 0x02, 0x04]),
            (FailureInfo::UnacceptedPolicy, vec![0x03, 0x03, 0x00, 0x00, 0x01]),
            (FailureInfo::UnacceptedExtension, vec![0x03, 0x04, 0x07, 0x00, 0x00, 0x80]),
            (FailureInfo::SystemFailure, vec![0x03, 0x05, 0x06, 0x00, 0x00, 0x00, 0x40]),
        ];
        for (info, der) in cases {
            assert_eq!(info.to_bit_string().unwrap().to_der().unwrap(), der, "{}", info.name());
        }
    }

    #[test]
    fn a_request_from_openssl_decodes_and_defaults_are_not_encoded() {
        // `openssl ts -query -digest <32 zero bytes> -sha256 -cert` with a 64-bit nonce.
        let hex = "30440201013031300d060960864801650304020105000420\
                   0000000000000000000000000000000000000000000000000000000000000000\
                   020900d1a2b3c4d5e6f7080101ff";
        let der = hex::decode(hex.replace(' ', "")).unwrap();
        let request = TimeStampReq::from_der(&der).unwrap();
        assert_eq!(request.version, 1);
        assert!(request.cert_req);
        assert_eq!(request.nonce.as_ref().unwrap().as_bytes(), hex::decode("00d1a2b3c4d5e6f708").unwrap());
        assert_eq!(request.to_der().unwrap(), der);
        let without = TimeStampReq { cert_req: false, nonce: None, ..request };
        let encoded = without.to_der().unwrap();
        // certReq FALSE is the default, so neither it nor the nonce is in the encoding.
        assert_eq!(encoded.len(), der.len() - 11 - 3);
    }
}

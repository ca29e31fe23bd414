//! The time-stamping authority (RFC 3161 as updated by RFC 5816, profiled by ETSI EN 319 422): one
//! time-stamping unit, its key in the HSM and its certificate from the issuing CA, that signs TSTInfo
//! in a CMS SignedData carrying the ESS signingCertificateV2 attribute.

use cms::builder::SignerInfoBuilder;
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfos};
use const_oid::db::rfc5911::ID_SIGNED_DATA;
use der::asn1::{GeneralizedTime, Int, ObjectIdentifier, OctetString, SetOfVec, Uint};
use der::{Decode, Encode, Tagged};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::Extension;
use x509_cert::Certificate;

use super::ca::{distinguished_name, paths, CertificateAuthority};
use super::certificate::{self, random_serial, validity};
use super::hsm_signer::HsmSigner;
use super::profile::{CertificateKind, CertificateProfile, Publication};
use super::tsp::{
    oid, Accuracy, EssCertIdV2, FailureInfo, MessageImprint, PkiStatus, PkiStatusInfo, QcStatement,
    SigningCertificateV2, TimeStampReq, TimeStampResp, TstInfo,
};
use super::PkiError;
use crate::domain::{HashAlgorithm, KeyKind, SignatureScheme};
use crate::hsm::{AuthorityKeyLabel, KeyId, KeyStore};

/// How long a TSA certificate is valid (capped at the issuing CA's notAfter): its tokens must verify
/// long after they were made.
const TSA_CERTIFICATE_YEARS: i64 = 10;
const DAY: i64 = 24 * 3600;

/// The TSA key signs with SHA-256 (RSA PKCS#1 v1.5, or ECDSA on P-256), SHA-384 on P-384.
fn tsa_scheme(kind: KeyKind) -> SignatureScheme {
    match kind {
        KeyKind::Rsa2048 | KeyKind::Rsa3072 => SignatureScheme::RsaPkcs1(HashAlgorithm::Sha256),
        KeyKind::EcP256 => SignatureScheme::Ecdsa(HashAlgorithm::Sha256),
        KeyKind::EcP384 => SignatureScheme::Ecdsa(HashAlgorithm::Sha384),
    }
}

/// The time-stamping unit: its key in the HSM and its certificate.
#[derive(Debug, Clone)]
pub struct TimeStampingUnit {
    /// The key's id in the HSM.
    pub key: KeyId,
    /// The key's kind.
    pub kind: KeyKind,
    /// The TSA certificate, DER.
    pub certificate_der: Vec<u8>,
    certificate: Certificate,
    /// ESSCertIDv2 of the certificate: what every token's signingCertificateV2 names.
    ess_cert_id: EssCertIdV2,
    /// The certificate's validity, Unix seconds: no token is made outside it.
    valid: (i64, i64),
}

impl TimeStampingUnit {
    pub(crate) fn from_parts(key: KeyId, kind: KeyKind, certificate_der: Vec<u8>) -> Result<Self, PkiError> {
        let certificate = Certificate::from_der(&certificate_der)?;
        let ess_cert_id = EssCertIdV2::of(&certificate, &certificate_der)?;
        let validity = certificate.tbs_certificate().validity();
        let valid = (certificate::unix_seconds(&validity.not_before)?, certificate::unix_seconds(&validity.not_after)?);
        Ok(TimeStampingUnit { key, kind, certificate_der, certificate, ess_cert_id, valid })
    }

    /// Generates the TSA key in `keystore` and has the issuing CA certify it. A failure after the key
    /// was generated destroys it.
    pub fn create(
        keystore: &KeyStore,
        ca: &CertificateAuthority,
        kind: KeyKind,
        organization: &str,
        country: &str,
        public_url: &str,
        now: i64,
    ) -> Result<Self, PkiError> {
        let subject = distinguished_name(&format!("{organization} Time-Stamping Unit"), Some(organization), country)?;
        let key = keystore.generate_authority(kind, AuthorityKeyLabel::TimeStamping)?;
        let result = (|| {
            let spki = SubjectPublicKeyInfoOwned::from_der(&key.public_key_der)?;
            let not_after = now.saturating_add(TSA_CERTIFICATE_YEARS * 365 * DAY).min(ca.issuing.not_after);
            if not_after <= now {
                return Err(PkiError::Invalid("the issuing CA certificate has expired".into()));
            }
            let profile = CertificateProfile {
                issuer: ca.issuing.name.clone(),
                subject,
                kind: CertificateKind::TimeStamping {
                    published: Publication {
                        ocsp_url: Some(format!("{public_url}{}", paths::OCSP)),
                        issuer_cert_url: format!("{public_url}{}", paths::ISSUING_CERT),
                        crl_url: format!("{public_url}{}", paths::ISSUING_CRL),
                    },
                },
            };
            let der = certificate::issue(
                &ca.issuing.signer(keystore)?,
                profile,
                random_serial()?,
                validity(now - 60, not_after)?,
                spki,
            )?;
            TimeStampingUnit::from_parts(key.id.clone(), kind, der)
        })();
        if result.is_err() {
            super::ca::discard_keys(keystore, std::slice::from_ref(&key.id));
        }
        result
    }

    fn signer<'a>(&self, keystore: &'a KeyStore) -> Result<HsmSigner<'a>, PkiError> {
        let spki = self.certificate.tbs_certificate().subject_public_key_info().clone();
        HsmSigner::new(keystore, self.key.clone(), tsa_scheme(self.kind), spki)
    }

    /// The scheme the unit signs with (the benchmark compares with raw signing in it).
    pub fn scheme(&self) -> SignatureScheme {
        tsa_scheme(self.kind)
    }

    /// Whether its certificate is valid at `unix`: a token made outside it would not verify.
    pub fn valid_at(&self, unix: i64) -> bool {
        self.valid.0 <= unix && unix < self.valid.1
    }

    /// The certificate's subject, as tokens name the TSA.
    fn name(&self) -> GeneralName {
        GeneralName::DirectoryName(self.certificate.tbs_certificate().subject().clone())
    }
}

/// What every token states besides its request: the policy, the accuracy, and whether it is qualified.
#[derive(Debug, Clone)]
pub struct TsaPolicy {
    /// TSTInfo policy.
    pub policy: ObjectIdentifier,
    /// TSTInfo accuracy, in milliseconds.
    pub accuracy_millis: u32,
    /// Whether tokens carry the qcStatements extension with esi4-qtstStatement-1.
    pub qualified: bool,
}

/// A time-stamp request the TSA will answer.
#[derive(Debug, Clone)]
pub struct TimeStampQuery {
    /// The imprint, as the request wrote it: the token repeats it exactly (RFC 3161 §2.4.2).
    pub imprint: MessageImprint,
    /// The imprint's hash algorithm.
    pub hash: HashAlgorithm,
    /// The request's nonce, echoed as it came.
    pub nonce: Option<Int>,
    /// Whether the token carries the TSA certificate.
    pub cert_req: bool,
}

/// Why a request is rejected: the RFC 3161 failure bit and words for `statusString`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// PKIFailureInfo.
    pub failure: FailureInfo,
    /// statusString.
    pub text: String,
}

impl Rejection {
    fn new(failure: FailureInfo, text: impl Into<String>) -> Rejection {
        Rejection { failure, text: text.into() }
    }
}

/// The hash algorithm an imprint names, when the TSA accepts it: SHA-256, SHA-384 or SHA-512, with
/// absent or NULL parameters.
fn imprint_hash(algorithm: &AlgorithmIdentifierOwned) -> Option<HashAlgorithm> {
    let parameters_ok = algorithm.parameters.as_ref().is_none_or(|p| p.tag() == der::Tag::Null && p.value().is_empty());
    HashAlgorithm::from_oid(&algorithm.oid.to_string()).filter(|_| parameters_ok)
}

impl TimeStampQuery {
    /// A DER TimeStampReq, checked against what this TSA offers.
    pub fn from_der(der: &[u8], policy: &ObjectIdentifier) -> Result<TimeStampQuery, Rejection> {
        let request = TimeStampReq::from_der(der)
            .map_err(|_| Rejection::new(FailureInfo::BadDataFormat, "not a DER TimeStampReq"))?;
        if request.version != 1 {
            return Err(Rejection::new(FailureInfo::BadRequest, format!("version {} (only 1)", request.version)));
        }
        if request.req_policy.is_some_and(|p| p != *policy) {
            return Err(Rejection::new(
                FailureInfo::UnacceptedPolicy,
                format!("this TSA issues under policy {policy} only"),
            ));
        }
        if request.extensions.as_ref().is_some_and(|e| !e.is_empty()) {
            return Err(Rejection::new(FailureInfo::UnacceptedExtension, "no request extension is supported"));
        }
        TimeStampQuery::new(request.message_imprint, request.nonce, request.cert_req)
    }

    /// A request from its parts: the imprint is checked (algorithm and digest length).
    pub fn new(imprint: MessageImprint, nonce: Option<Int>, cert_req: bool) -> Result<TimeStampQuery, Rejection> {
        let hash = imprint_hash(&imprint.hash_algorithm).ok_or_else(|| {
            Rejection::new(
                FailureInfo::BadAlg,
                format!("hash algorithm {} is not accepted (SHA-256, SHA-384, SHA-512)", imprint.hash_algorithm.oid),
            )
        })?;
        if imprint.hashed_message.as_bytes().len() != hash.digest_len() {
            return Err(Rejection::new(
                FailureInfo::BadDataFormat,
                format!("a {} digest has {} bytes", hash.oid(), hash.digest_len()),
            ));
        }
        Ok(TimeStampQuery { imprint, hash, nonce, cert_req })
    }

    /// A request for `digest` made with `hash` (CSC `signatures/timestamp`): the imprint names the
    /// algorithm without parameters (RFC 5754 §2), and the token carries the TSA certificate, since a
    /// CSC client embeds the token as it is.
    pub fn for_digest(hash: HashAlgorithm, digest: &[u8], nonce: Option<Int>) -> Result<TimeStampQuery, Rejection> {
        let imprint = MessageImprint {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: hash.oid().parse().map_err(|_| Rejection::new(FailureInfo::BadAlg, "hash OID"))?,
                parameters: None,
            },
            hashed_message: OctetString::new(digest)
                .map_err(|_| Rejection::new(FailureInfo::BadDataFormat, "digest too long"))?,
        };
        TimeStampQuery::new(imprint, nonce, true)
    }
}

/// A nonce given as hex (CSC `nonce`): a non-negative integer of at most 64 bytes.
pub fn nonce_from_hex(text: &str) -> Option<Int> {
    if text.is_empty() || text.len() > 128 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let padded = if text.len() % 2 == 1 { format!("0{text}") } else { text.to_string() };
    let bytes = hex::decode(padded).ok()?;
    Int::from_der(&Uint::new(&bytes).ok()?.to_der().ok()?).ok()
}

/// A fresh TSTInfo serial number: 128 random bits, positive (RFC 3161 allows up to 160).
pub fn random_serial_number() -> Result<Uint, PkiError> {
    let mut bytes = crate::domain::secrets::random_bytes::<16>();
    bytes[0] = (bytes[0] & 0x7f) | 0x10;
    Ok(Uint::new(&bytes)?)
}

/// Makes and signs a time-stamp token: a CMS ContentInfo of SignedData over the TSTInfo, DER. When the
/// query asks for certificates, the token carries the TSA's, then `ca_chain` (DER, nearest first): a
/// token inside a signature carries the issuing CA too, so that a validator finds the TSA's path from
/// the signature alone.
pub fn time_stamp(
    keystore: &KeyStore,
    unit: &TimeStampingUnit,
    policy: &TsaPolicy,
    query: &TimeStampQuery,
    serial: Uint,
    gen_time: i64,
    ca_chain: &[Vec<u8>],
) -> Result<Vec<u8>, PkiError> {
    let gen_time = GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(
        u64::try_from(gen_time).map_err(|_| PkiError::Invalid("genTime before 1970".into()))?,
    ))?;
    let millis = policy.accuracy_millis;
    let accuracy = Accuracy {
        seconds: Some(millis / 1000).filter(|s| *s > 0),
        millis: u16::try_from(millis % 1000).ok().filter(|m| *m > 0),
        micros: None,
    };
    let extensions = if policy.qualified {
        let statements = vec![QcStatement { statement_id: oid::QTST_STATEMENT, statement_info: None }];
        Some(vec![Extension {
            extn_id: super::profile::oid::QC_STATEMENTS,
            critical: false,
            extn_value: OctetString::new(statements.to_der()?)?,
        }])
    } else {
        None
    };
    let tst_info = TstInfo {
        version: 1,
        policy: policy.policy,
        message_imprint: query.imprint.clone(),
        serial_number: serial,
        gen_time,
        accuracy: Some(accuracy),
        ordering: false,
        nonce: query.nonce.clone(),
        tsa: Some(unit.name()),
        extensions,
    };
    let content = EncapsulatedContentInfo {
        econtent_type: oid::TST_INFO,
        econtent: Some(der::Any::encode_from(&OctetString::new(tst_info.to_der()?)?)?),
    };
    let signer = unit.signer(keystore)?;
    let tbs = unit.certificate.tbs_certificate();
    let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
        issuer: tbs.issuer().clone(),
        serial_number: tbs.serial_number().clone(),
    });
    let mut signer_info = SignerInfoBuilder::new(sid, signer.digest_algorithm(), &content, None)
        .map_err(|e| PkiError::Invalid(format!("SignerInfo: {e}")))?;
    signer_info
        .add_signed_attribute(SigningCertificateV2::attribute(unit.ess_cert_id.clone())?)
        .map_err(|e| PkiError::Invalid(format!("SignerInfo: {e}")))?;
    // Signed through the HsmSigner, so an HSM that is busy or refuses stays a typed HSM error.
    let signer_info = signer.build(signer_info)?;
    let certificates = if query.cert_req {
        let mut certificates = vec![CertificateChoices::Certificate(unit.certificate.clone())];
        for ca in ca_chain {
            certificates.push(CertificateChoices::Certificate(Certificate::from_der(ca)?));
        }
        Some(CertificateSet::try_from(certificates)?)
    } else {
        None
    };
    let signed_data = SignedData {
        // RFC 5652 §5.1: version 3 because the eContentType is not id-data.
        version: CmsVersion::V3,
        digest_algorithms: SetOfVec::try_from(vec![signer.digest_algorithm()])?,
        encap_content_info: content,
        certificates,
        crls: None,
        signer_infos: SignerInfos::try_from(vec![signer_info])?,
    };
    let token = ContentInfo { content_type: ID_SIGNED_DATA, content: der::Any::encode_from(&signed_data)? };
    Ok(token.to_der()?)
}

/// A granted TimeStampResp carrying `token` (a DER ContentInfo from [`time_stamp`]).
pub fn granted(token: &[u8]) -> Result<Vec<u8>, PkiError> {
    let response = TimeStampResp {
        status: PkiStatusInfo { status: PkiStatus::Granted, status_string: None, fail_info: None },
        time_stamp_token: Some(ContentInfo::from_der(token)?),
    };
    Ok(response.to_der()?)
}

/// A TimeStampResp that rejects the request, saying why.
pub fn rejected(rejection: &Rejection) -> Result<Vec<u8>, PkiError> {
    let response = TimeStampResp {
        status: PkiStatusInfo {
            status: PkiStatus::Rejection,
            status_string: Some(vec![rejection.text.clone()]),
            fail_info: Some(rejection.failure.to_bit_string()?),
        },
        time_stamp_token: None,
    };
    Ok(response.to_der()?)
}

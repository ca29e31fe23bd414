//! OCSP (RFC 6960, the lightweight profile of RFC 5019, nonces per RFC 8954): requests parsed and
//! matched to the CA that issued the certificate asked about, responses signed in the HSM by a
//! delegated responder (certified by the issuing CA, `id-pkix-ocsp-nocheck`) or by the root itself for
//! the issuing CA's own certificates.

// One struct per RFC structure, each field named as the RFC names it: the RFC is their documentation.
#[allow(missing_docs)]
pub mod asn1;

use der::asn1::{BitString, GeneralizedTime, Null, OctetString};
use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::pkix::crl::CrlReason;
use x509_cert::ext::Extension;
use x509_cert::Certificate;

use self::asn1::{
    oid, BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, ResponderId,
    ResponseBytes, ResponseData, RevokedInfo, SingleResponse,
};
use super::ca::{distinguished_name, paths, CertificateAuthority};
use super::certificate::{self, random_serial, validity};
use super::hsm_signer::HsmSigner;
use super::profile::{CertificateKind, CertificateProfile, Publication};
use super::PkiError;
use crate::domain::{HashAlgorithm, KeyKind, SignatureScheme};
use crate::hsm::{AuthorityKeyLabel, KeyId, KeyStore};

/// The delegated responder's key: ECDSA P-256, quick to sign the responses that are not cached.
pub const RESPONDER_KEY_KIND: KeyKind = KeyKind::EcP256;
const DAY: i64 = 24 * 3600;
/// Most certificates one request may ask about.
pub const MAX_CERTIFICATES_PER_REQUEST: usize = 16;

/// The hash algorithms a CertID may use. SHA-1 is the default of most clients (openssl, RFC 5019) and
/// is safe here: it only names an issuer, it secures nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CertIdHash {
    Sha1,
    Sha2(HashAlgorithm),
}

impl CertIdHash {
    fn of(cert_id: &CertId) -> Option<CertIdHash> {
        let algorithm = &cert_id.hash_algorithm;
        let parameters_ok =
            algorithm.parameters.as_ref().is_none_or(|p| p.tag() == der::Tag::Null && p.value().is_empty());
        if !parameters_ok {
            return None;
        }
        let oid = algorithm.oid.to_string();
        if oid == "1.3.14.3.2.26" {
            return Some(CertIdHash::Sha1);
        }
        HashAlgorithm::from_oid(&oid).map(CertIdHash::Sha2)
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            CertIdHash::Sha1 => {
                use sha1::Digest;
                sha1::Sha1::digest(data).to_vec()
            }
            CertIdHash::Sha2(hash) => hash.digest(data),
        }
    }
}

use der::Tagged;

/// What identifies an issuer in a CertID: the DER of its subject name and its public key's bits.
#[derive(Debug, Clone)]
pub struct IssuerIdentity {
    name_der: Vec<u8>,
    key_bits: Vec<u8>,
}

impl IssuerIdentity {
    /// The identity of the CA whose certificate this is.
    pub fn of(certificate: &Certificate) -> Result<IssuerIdentity, PkiError> {
        let tbs = certificate.tbs_certificate();
        Ok(IssuerIdentity {
            name_der: tbs.subject().to_der()?,
            key_bits: tbs.subject_public_key_info().subject_public_key.raw_bytes().to_vec(),
        })
    }

    /// Whether `cert_id` names this issuer (with whichever accepted hash it uses).
    pub fn named_by(&self, cert_id: &CertId) -> bool {
        let Some(hash) = CertIdHash::of(cert_id) else { return false };
        hash.digest(&self.name_der) == cert_id.issuer_name_hash.as_bytes()
            && hash.digest(&self.key_bits) == cert_id.issuer_key_hash.as_bytes()
    }
}

/// The CertID (SHA-1, as RFC 5019 clients write it) of `certificate`, issued by `issuer`: how rssp asks
/// its own responder about a certificate whose status goes into a signature's validation data.
pub fn cert_id(certificate: &Certificate, issuer: &Certificate) -> Result<CertId, PkiError> {
    let tbs = issuer.tbs_certificate();
    Ok(CertId {
        hash_algorithm: spki::AlgorithmIdentifierOwned {
            oid: der::asn1::ObjectIdentifier::new_unwrap("1.3.14.3.2.26"),
            parameters: Some(Null.into()),
        },
        issuer_name_hash: OctetString::new(CertIdHash::Sha1.digest(&tbs.subject().to_der()?))?,
        issuer_key_hash: OctetString::new(
            CertIdHash::Sha1.digest(tbs.subject_public_key_info().subject_public_key.raw_bytes()),
        )?,
        serial_number: certificate.tbs_certificate().serial_number().clone(),
    })
}

/// A nonce request extension (RFC 9654) holding `nonce`.
pub fn nonce_extension(nonce: &[u8]) -> Result<Extension, PkiError> {
    Ok(Extension {
        extn_id: oid::NONCE,
        critical: false,
        extn_value: OctetString::new(OctetString::new(nonce)?.to_der()?)?,
    })
}

/// Whether a DER OCSPResponse says `successful` (it then carries a signed answer).
pub fn is_successful(response: &[u8]) -> bool {
    OcspResponse::from_der(response).is_ok_and(|r| r.response_status == OcspResponseStatus::Successful)
}

/// A request, parsed: the certificates asked about, and the nonce extension to echo.
#[derive(Debug, Clone)]
pub struct OcspQuery {
    /// The certificates asked about, in order.
    pub cert_ids: Vec<CertId>,
    /// The request's nonce extension, echoed as it came.
    pub nonce: Option<Extension>,
}

impl OcspQuery {
    /// A DER OCSPRequest; None when it is malformed (not DER, no or too many certificates, a CertID with
    /// an unknown hash, or a nonce outside RFC 9654's 1 to 128 octets).
    pub fn from_der(der: &[u8]) -> Option<OcspQuery> {
        let request = OcspRequest::from_der(der).ok()?;
        let tbs = request.tbs_request;
        if tbs.version != 0 || tbs.request_list.is_empty() || tbs.request_list.len() > MAX_CERTIFICATES_PER_REQUEST {
            return None;
        }
        let cert_ids: Vec<CertId> = tbs.request_list.into_iter().map(|r| r.req_cert).collect();
        if cert_ids.iter().any(|id| CertIdHash::of(id).is_none()) {
            return None;
        }
        let nonce = tbs.request_extensions.into_iter().flatten().find(|e| e.extn_id == oid::NONCE);
        if let Some(nonce) = &nonce {
            // The value is the DER of an OCTET STRING holding the nonce (RFC 8954 §2.1).
            let value = OctetString::from_der(nonce.extn_value.as_bytes()).ok()?;
            // RFC 9654 (which replaced RFC 8954): 1 to 128 octets.
            if !(1..=128).contains(&value.as_bytes().len()) {
                return None;
            }
        }
        Some(OcspQuery { cert_ids, nonce })
    }
}

/// The status of one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Issued and not revoked.
    Good,
    /// Revoked at `at` (Unix seconds), for `reason` when one was given.
    Revoked {
        /// Unix seconds.
        at: i64,
        /// The CRL reason; None for unspecified (RFC 5280 §5.3.1: then left out).
        reason: Option<CrlReason>,
    },
    /// Not a certificate this CA issued.
    Unknown,
}

/// One answer: the CertID as asked, its status, and the interval it holds for.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The CertID exactly as the request had it.
    pub cert_id: CertId,
    /// The certificate's status.
    pub status: Status,
    /// When the status was read, Unix seconds.
    pub this_update: i64,
    /// Until when a client may rely on it, Unix seconds.
    pub next_update: i64,
}

/// Who signs a response: a key in the HSM, named by the SHA-1 of its public key, with the certificate
/// a client needs to check it (a delegated responder's), or none (the CA itself).
pub struct ResponseSigner<'a> {
    /// The key that signs.
    pub signer: HsmSigner<'a>,
    /// SHA-1 of its public key (ResponderID byKey).
    pub key_hash: Vec<u8>,
    /// The certificate carried in responses (a delegated responder's).
    pub certificate: Option<Certificate>,
}

/// The ResponderID byKey of a public key: SHA-1 of its BIT STRING's bits (RFC 6960 §4.2.1).
pub fn key_hash(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    CertIdHash::Sha1.digest(spki.subject_public_key.raw_bytes())
}

fn generalized(unix: i64) -> Result<GeneralizedTime, PkiError> {
    let seconds = u64::try_from(unix).map_err(|_| PkiError::Invalid("time before 1970".into()))?;
    Ok(GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(seconds))?)
}

/// A successful response with `answers`, signed by `signer`, echoing `nonce`.
pub fn signed_response(
    signer: &ResponseSigner<'_>,
    produced_at: i64,
    answers: &[Answer],
    nonce: Option<&Extension>,
) -> Result<Vec<u8>, PkiError> {
    let mut responses = Vec::with_capacity(answers.len());
    for answer in answers {
        let cert_status = match answer.status {
            Status::Good => CertStatus::Good(Null),
            Status::Unknown => CertStatus::Unknown(Null),
            Status::Revoked { at, reason } => {
                CertStatus::Revoked(RevokedInfo { revocation_time: generalized(at)?, revocation_reason: reason })
            }
        };
        responses.push(SingleResponse {
            cert_id: answer.cert_id.clone(),
            cert_status,
            this_update: generalized(answer.this_update)?,
            next_update: Some(generalized(answer.next_update)?),
            single_extensions: None,
        });
    }
    let data = ResponseData {
        version: 0,
        responder_id: ResponderId::ByKey(OctetString::new(signer.key_hash.clone())?),
        produced_at: generalized(produced_at)?,
        responses,
        response_extensions: nonce.map(|n| vec![n.clone()]),
    };
    let signature = signer.signer.sign_message(&data.to_der()?)?;
    let basic = BasicOcspResponse {
        tbs_response_data: data,
        signature_algorithm: signer.signer.algorithm().clone(),
        signature: BitString::from_bytes(signature.as_bytes())?,
        certs: signer.certificate.clone().map(|c| vec![c]),
    };
    let response = OcspResponse {
        response_status: OcspResponseStatus::Successful,
        response_bytes: Some(ResponseBytes { response_type: oid::BASIC, response: OctetString::new(basic.to_der()?)? }),
    };
    Ok(response.to_der()?)
}

/// An unsuccessful response: only its status (malformedRequest, unauthorized, tryLater, internalError).
pub fn status_response(status: OcspResponseStatus) -> Vec<u8> {
    let response = OcspResponse { response_status: status, response_bytes: None };
    // Three bytes of a fixed shape: encoding cannot fail.
    response.to_der().unwrap_or_else(|_| vec![0x30, 0x03, 0x0a, 0x01, status as u8])
}

/// The delegated OCSP responder: its key in the HSM and its current certificate from the issuing CA.
#[derive(Debug, Clone)]
pub struct DelegatedResponder {
    /// The key's id in the HSM.
    pub key: KeyId,
    /// The key's kind.
    pub kind: KeyKind,
    /// The current certificate, DER.
    pub certificate_der: Vec<u8>,
    certificate: Certificate,
    key_hash: Vec<u8>,
    /// The certificate's notAfter, Unix seconds.
    pub not_after: i64,
}

impl DelegatedResponder {
    pub(crate) fn from_parts(key: KeyId, kind: KeyKind, certificate_der: Vec<u8>) -> Result<Self, PkiError> {
        let certificate = Certificate::from_der(&certificate_der)?;
        let key_hash = key_hash(certificate.tbs_certificate().subject_public_key_info());
        let not_after = certificate::unix_seconds(&certificate.tbs_certificate().validity().not_after)?;
        Ok(DelegatedResponder { key, kind, certificate_der, certificate, key_hash, not_after })
    }

    /// Generates the responder key and has the issuing CA certify it for `validity_days`.
    pub fn create(
        keystore: &KeyStore,
        ca: &CertificateAuthority,
        organization: &str,
        country: &str,
        public_url: &str,
        now: i64,
        validity_days: i64,
    ) -> Result<Self, PkiError> {
        let key = keystore.generate_authority(RESPONDER_KEY_KIND, AuthorityKeyLabel::OcspResponder)?;
        let result = (|| {
            let spki = SubjectPublicKeyInfoOwned::from_der(&key.public_key_der)?;
            let der = responder_certificate(keystore, ca, organization, country, public_url, spki, now, validity_days)?;
            DelegatedResponder::from_parts(key.id.clone(), RESPONDER_KEY_KIND, der)
        })();
        if result.is_err() {
            super::ca::discard_keys(keystore, std::slice::from_ref(&key.id));
        }
        result
    }

    /// A new certificate for the same key, valid from now for `validity_days`.
    pub fn renewed(
        &self,
        keystore: &KeyStore,
        ca: &CertificateAuthority,
        public_url: &str,
        now: i64,
        validity_days: i64,
    ) -> Result<Self, PkiError> {
        let tbs = self.certificate.tbs_certificate();
        let spki = tbs.subject_public_key_info().clone();
        let subject = tbs.subject().clone();
        let der = issue_responder(keystore, ca, subject, public_url, spki, now, validity_days)?;
        DelegatedResponder::from_parts(self.key.clone(), self.kind, der)
    }

    /// The signer of responses about certificates of the issuing CA.
    pub fn signer<'a>(&self, keystore: &'a KeyStore) -> Result<ResponseSigner<'a>, PkiError> {
        let spki = self.certificate.tbs_certificate().subject_public_key_info().clone();
        Ok(ResponseSigner {
            signer: HsmSigner::new(keystore, self.key.clone(), SignatureScheme::Ecdsa(HashAlgorithm::Sha256), spki)?,
            key_hash: self.key_hash.clone(),
            certificate: Some(self.certificate.clone()),
        })
    }

    /// The certificate's serial number, hex.
    pub fn serial_hex(&self) -> String {
        hex::encode(self.certificate.tbs_certificate().serial_number().as_bytes())
    }
}

/// The signer of responses about the root's certificates (the issuing CA's): the root itself.
pub fn root_signer<'a>(ca: &CertificateAuthority, keystore: &'a KeyStore) -> Result<ResponseSigner<'a>, PkiError> {
    Ok(ResponseSigner { signer: ca.root.signer(keystore)?, key_hash: key_hash(&ca.root.public_key), certificate: None })
}

#[allow(clippy::too_many_arguments)]
fn responder_certificate(
    keystore: &KeyStore,
    ca: &CertificateAuthority,
    organization: &str,
    country: &str,
    public_url: &str,
    spki: SubjectPublicKeyInfoOwned,
    now: i64,
    validity_days: i64,
) -> Result<Vec<u8>, PkiError> {
    let subject = distinguished_name(&format!("{organization} OCSP Responder"), Some(organization), country)?;
    issue_responder(keystore, ca, subject, public_url, spki, now, validity_days)
}

fn issue_responder(
    keystore: &KeyStore,
    ca: &CertificateAuthority,
    subject: x509_cert::name::Name,
    public_url: &str,
    spki: SubjectPublicKeyInfoOwned,
    now: i64,
    validity_days: i64,
) -> Result<Vec<u8>, PkiError> {
    let not_after = now.saturating_add(validity_days.saturating_mul(DAY)).min(ca.issuing.not_after);
    if not_after <= now {
        return Err(PkiError::Invalid("the issuing CA certificate has expired".into()));
    }
    let profile = CertificateProfile {
        issuer: ca.issuing.name.clone(),
        subject,
        kind: CertificateKind::OcspResponder {
            published: Publication {
                issuer_cert_url: format!("{public_url}{}", paths::ISSUING_CERT),
                crl_url: format!("{public_url}{}", paths::ISSUING_CRL),
                ocsp_url: None,
            },
        },
    };
    certificate::issue(&ca.issuing.signer(keystore)?, profile, random_serial()?, validity(now - 60, not_after)?, spki)
}

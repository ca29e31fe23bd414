//! CAdES baseline signatures (ETSI EN 319 122-1), level B-B: a CMS SignedData (RFC 5652) with one
//! SignerInfo whose signed attributes bind the content (content-type, message-digest), the signer's
//! certificate (signing-certificate-v2, RFC 5035) and, for CAdES, the claimed signing time; signed in the
//! HSM through [`HsmSigner`]. B-T adds the signature time-stamp as an unsigned attribute
//! ([`with_signature_time_stamp`]); B-LT adds the certificate and revocation values ([`long_term`]).
//!
//! The same SignedData without signing-time is what a PAdES signature embeds (ETSI EN 319 142-1 §5.4:
//! the time is the PDF's /M): [`Baseline`] says which of the two is made.

use cms::builder::SignerInfoBuilder;
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::db::rfc5911::{ID_DATA, ID_MESSAGE_DIGEST, ID_SIGNED_DATA, ID_SIGNING_TIME};
use der::asn1::{OctetString, SetOfVec};
use der::{DateTime, Decode, Encode};
use signature::Keypair;
use x509_cert::attr::Attribute;
use x509_cert::time::Time;
use x509_cert::Certificate;

pub mod long_term;

pub use long_term::with_validation_data;

use super::hsm_signer::HsmSigner;
use super::tsp::{EssCertIdV2, SigningCertificateV2};
use super::PkiError;

/// What the signature covers.
#[derive(Debug, Clone, Copy)]
pub enum Content<'a> {
    /// Detached (a `.p7s` beside the file, or a PDF's /ByteRange): only the content's digest, made with
    /// the signer's hash algorithm; the SignedData carries no content.
    Detached {
        /// The digest of the content.
        digest: &'a [u8],
    },
    /// Attached (enveloping): the content itself, inside the SignedData.
    Attached {
        /// The content.
        content: &'a [u8],
        /// Its digest as the caller authorised it (signer's hash algorithm): the message-digest the
        /// signature binds must be this one, or nothing is made.
        digest: &'a [u8],
    },
}

/// Which baseline signature the SignedData is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// CAdES-B-B (EN 319 122-1 §6.3): the claimed signing time (Unix seconds) in signing-time, required.
    Cades {
        /// The claimed signing time, Unix seconds.
        signing_time: i64,
    },
    /// The CMS of a PAdES signature (EN 319 142-1 §5.4): no signing-time; the time is the PDF's /M.
    PadesCms,
}

/// A baseline signature to make.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    /// The signer's certificate, DER: named by the signed signing-certificate-v2 attribute and carried
    /// in the SignedData.
    pub certificate_der: &'a [u8],
    /// The CA certificates above it, up to (not including) the root, DER, nearest first.
    pub chain_der: &'a [Vec<u8>],
    /// What is signed.
    pub content: Content<'a>,
    /// CAdES or the CMS of a PAdES signature.
    pub baseline: Baseline,
}

/// Makes a B-B signature: a DER ContentInfo of SignedData. The certificate must be the signer's (same
/// public key, in DER as it was issued), and a digest must be of the signer's hash algorithm.
pub fn sign_b_b(signer: &HsmSigner<'_>, signed: Signed<'_>) -> Result<Vec<u8>, PkiError> {
    let (signer_info, rest) = signer_info(signer, &signed)?;
    rest.encode(signer_info)
}

/// Makes a B-T signature: as [`sign_b_b`], with the signature time-stamp that `stamp` makes over the
/// signature value (it returns the TimeStampToken, DER), checked to cover it, in the unsigned attributes
/// before the SignedData is encoded once.
pub fn sign_b_t<E: From<PkiError>>(
    signer: &HsmSigner<'_>,
    signed: Signed<'_>,
    stamp: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<Vec<u8>, E> {
    let (mut signer_info, rest) = signer_info(signer, &signed)?;
    let token = stamp(signer_info.signature.as_bytes())?;
    attach_time_stamp(&mut signer_info, &token)?;
    Ok(rest.encode(signer_info)?)
}

/// What the SignedData holds besides its SignerInfo.
struct Envelope {
    encapsulated: EncapsulatedContentInfo,
    certificates: Vec<CertificateChoices>,
    digest_algorithm: spki::AlgorithmIdentifierOwned,
}

impl Envelope {
    fn encode(self, signer_info: SignerInfo) -> Result<Vec<u8>, PkiError> {
        let signed_data = SignedData {
            // RFC 5652 §5.1: version 1, as the content is id-data, the signer is named by issuer and serial
            // number and only X.509 certificates are carried.
            version: CmsVersion::V1,
            digest_algorithms: SetOfVec::try_from(vec![self.digest_algorithm])?,
            encap_content_info: self.encapsulated,
            certificates: Some(CertificateSet::try_from(self.certificates)?),
            crls: None,
            signer_infos: SignerInfos::try_from(vec![signer_info])?,
        };
        Ok(ContentInfo { content_type: ID_SIGNED_DATA, content: der::Any::encode_from(&signed_data)? }.to_der()?)
    }
}

/// The signed SignerInfo, and the rest of the SignedData.
fn signer_info(signer: &HsmSigner<'_>, signed: &Signed<'_>) -> Result<(SignerInfo, Envelope), PkiError> {
    let certificate = Certificate::from_der(signed.certificate_der)?;
    // signing-certificate-v2 hashes the bytes given; the SignedData carries the certificate re-encoded.
    if certificate.to_der()? != signed.certificate_der {
        return Err(PkiError::Invalid("the signer's certificate is not in DER".into()));
    }
    if certificate.tbs_certificate().subject_public_key_info() != signer.verifying_key().spki() {
        return Err(PkiError::Invalid("the certificate is not the signing key's".into()));
    }
    let (encapsulated, external_digest, authorised) = match signed.content {
        Content::Detached { digest } => {
            (EncapsulatedContentInfo { econtent_type: ID_DATA, econtent: None }, Some(digest), digest)
        }
        Content::Attached { content, digest } => {
            let econtent = der::Any::encode_from(&OctetString::new(content)?)?;
            (EncapsulatedContentInfo { econtent_type: ID_DATA, econtent: Some(econtent) }, None, digest)
        }
    };
    let expected = signer.hash().digest_len();
    if authorised.len() != expected {
        return Err(PkiError::Invalid(format!("a digest of {} bytes for a {}-byte hash", authorised.len(), expected)));
    }
    let tbs = certificate.tbs_certificate();
    let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
        issuer: tbs.issuer().clone(),
        serial_number: tbs.serial_number().clone(),
    });
    let mut builder = SignerInfoBuilder::new(sid, signer.digest_algorithm(), &encapsulated, external_digest)
        .map_err(|e| PkiError::Invalid(format!("SignerInfo: {e}")))?;
    builder
        .add_signed_attribute(SigningCertificateV2::attribute(EssCertIdV2::hash_only(signed.certificate_der)?)?)
        .map_err(|e| PkiError::Invalid(format!("SignerInfo: {e}")))?;
    if let Baseline::Cades { signing_time: at } = signed.baseline {
        builder.add_signed_attribute(signing_time(at)?).map_err(|e| PkiError::Invalid(format!("SignerInfo: {e}")))?;
    }
    // Signed through the HsmSigner, so that an HSM that is busy or refuses stays a typed HSM error.
    let signer_info = signer.build(builder)?;
    // The builder digests attached content itself: what it bound must be what the caller authorised.
    if message_digest(&signer_info).as_deref() != Some(authorised) {
        return Err(PkiError::Invalid("the signed message-digest is not the authorised digest".into()));
    }
    let mut certificates = vec![CertificateChoices::Certificate(certificate)];
    for ca in signed.chain_der {
        certificates.push(CertificateChoices::Certificate(Certificate::from_der(ca)?));
    }
    let envelope = Envelope { encapsulated, certificates, digest_algorithm: signer.digest_algorithm() };
    Ok((signer_info, envelope))
}

/// The message-digest signed attribute's value.
fn message_digest(signer_info: &SignerInfo) -> Option<Vec<u8>> {
    let attribute = signer_info.signed_attrs.as_ref()?.iter().find(|a| a.oid == ID_MESSAGE_DIGEST)?;
    let digest: OctetString = attribute.values.get(0)?.decode_as().ok()?;
    Some(digest.as_bytes().to_vec())
}

/// id-aa-signatureTimeStampToken (RFC 3161 appendix A, EN 319 122-1 §5.3): the unsigned attribute that
/// makes a B-B signature B-T.
pub const SIGNATURE_TIME_STAMP_TOKEN: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.14");

/// What a signature time-stamp covers: the signature value of the one SignerInfo (RFC 3161 appendix A).
pub fn signature_value(cms_der: &[u8]) -> Result<Vec<u8>, PkiError> {
    let (_, signed_data) = signed_data_of(cms_der)?;
    let signer_info = signed_data.signer_infos.0.get(0).ok_or_else(|| PkiError::Invalid("no SignerInfo".into()))?;
    Ok(signer_info.signature.as_bytes().to_vec())
}

/// Adds `token` (a TimeStampToken: DER ContentInfo of SignedData over a TSTInfo) to the one SignerInfo
/// of a CMS already made, as its signature time-stamp: B-B becomes B-T.
pub fn with_signature_time_stamp(cms_der: &[u8], token: &[u8]) -> Result<Vec<u8>, PkiError> {
    let (content_info, mut signed_data) = signed_data_of(cms_der)?;
    let mut signer_infos = signed_data.signer_infos.0.into_vec();
    let [signer_info] = signer_infos.as_mut_slice() else {
        return Err(PkiError::Invalid("a SignedData without exactly one SignerInfo".into()));
    };
    attach_time_stamp(signer_info, token)?;
    signed_data.signer_infos = SignerInfos::try_from(signer_infos)?;
    Ok(ContentInfo { content_type: content_info.content_type, content: der::Any::encode_from(&signed_data)? }
        .to_der()?)
}

/// Puts `token` in the SignerInfo's unsigned attributes as its signature time-stamp. The token must cover
/// that SignerInfo's signature value (its imprint is checked), so that a token for another signature is
/// never attached, and there must not be one already.
fn attach_time_stamp(signer_info: &mut SignerInfo, token: &[u8]) -> Result<(), PkiError> {
    let imprint = time_stamp_imprint(token)?;
    let hash = crate::domain::HashAlgorithm::from_oid(&imprint.hash_algorithm.oid.to_string())
        .ok_or_else(|| PkiError::Invalid("a time-stamp with a hash algorithm rssp does not use".into()))?;
    if imprint.hashed_message.as_bytes() != hash.digest(signer_info.signature.as_bytes()).as_slice() {
        return Err(PkiError::Invalid("the time-stamp does not cover this signature".into()));
    }
    let mut unsigned = signer_info.unsigned_attrs.take().map(|a| a.into_vec()).unwrap_or_default();
    if unsigned.iter().any(|a| a.oid == SIGNATURE_TIME_STAMP_TOKEN) {
        return Err(PkiError::Invalid("the signature already has a time-stamp".into()));
    }
    unsigned.push(Attribute {
        oid: SIGNATURE_TIME_STAMP_TOKEN,
        values: SetOfVec::try_from(vec![der::Any::from_der(token)?])?,
    });
    signer_info.unsigned_attrs = Some(SetOfVec::try_from(unsigned)?);
    Ok(())
}

/// The SignedData of a CMS rssp made before its B-LT values were added: the cms crate cannot read those
/// (see [`long_term::SignedDataWithRevocation`]), and nothing here needs to read one.
fn signed_data_of(cms_der: &[u8]) -> Result<(ContentInfo, SignedData), PkiError> {
    let content_info = ContentInfo::from_der(cms_der)?;
    if content_info.content_type != ID_SIGNED_DATA {
        return Err(PkiError::Invalid("a CMS that is not SignedData".into()));
    }
    let signed_data = content_info.content.decode_as()?;
    Ok((content_info, signed_data))
}

/// The message imprint of a TimeStampToken.
fn time_stamp_imprint(token: &[u8]) -> Result<super::tsp::MessageImprint, PkiError> {
    let (_, signed_data) = signed_data_of(token)?;
    let content = &signed_data.encap_content_info;
    if content.econtent_type != super::tsp::oid::TST_INFO {
        return Err(PkiError::Invalid("a time-stamp token without a TSTInfo".into()));
    }
    let econtent =
        content.econtent.as_ref().ok_or_else(|| PkiError::Invalid("a time-stamp token without content".into()))?;
    let octets: OctetString = econtent.decode_as()?;
    let tst_info = super::tsp::TstInfo::from_der(octets.as_bytes())?;
    Ok(tst_info.message_imprint)
}

/// The signing-time attribute (RFC 5652 §11.3): UTCTime up to 2049, GeneralizedTime after.
fn signing_time(unix: i64) -> Result<Attribute, PkiError> {
    let seconds = u64::try_from(unix).map_err(|_| PkiError::Invalid("a signing time before 1970".into()))?;
    let time = Time::from(DateTime::from_unix_duration(std::time::Duration::from_secs(seconds))?);
    Ok(Attribute { oid: ID_SIGNING_TIME, values: SetOfVec::try_from(vec![der::Any::encode_from(&time)?])? })
}

#[cfg(test)]
mod tests {
    use cms::signed_data::SignedData;
    use const_oid::db::rfc5911::ID_MESSAGE_DIGEST;
    use spki::SubjectPublicKeyInfoOwned;

    use super::*;
    use crate::domain::{HashAlgorithm, KeyKind, SignatureScheme};
    use crate::hsm::KeyStore;
    use crate::pki::ca::distinguished_name;
    use crate::pki::test_support::{keystore, now, openssl_cms_verify, pem};
    use crate::pki::tsp::oid::SIGNING_CERTIFICATE_V2;
    use crate::pki::CertificateAuthority;

    /// A person's key of `kind` with a certificate of the issuing CA: the signer (PKCS#1 v1.5 or ECDSA,
    /// SHA-256), and the certificate.
    fn person<'a>(keystore: &'a KeyStore, ca: &CertificateAuthority, kind: KeyKind) -> (HsmSigner<'a>, Vec<u8>) {
        let scheme = if kind.is_rsa() {
            SignatureScheme::RsaPkcs1(HashAlgorithm::Sha256)
        } else {
            SignatureScheme::Ecdsa(HashAlgorithm::Sha256)
        };
        person_signing_with(keystore, ca, kind, scheme)
    }

    /// [`person`] with the scheme given.
    fn person_signing_with<'a>(
        keystore: &'a KeyStore,
        ca: &CertificateAuthority,
        kind: KeyKind,
        scheme: SignatureScheme,
    ) -> (HsmSigner<'a>, Vec<u8>) {
        let key = keystore.generate(kind, &format!("cades-{}", kind.as_str())).unwrap();
        let subject = distinguished_name("CAdES Signer", None, "SI").unwrap();
        let issued =
            ca.issue_end_entity(keystore, &key.public_key_der, subject, "https://rssp.test", now(), 30).unwrap();
        let spki = SubjectPublicKeyInfoOwned::from_der(&key.public_key_der).unwrap();
        (HsmSigner::new(keystore, key.id, scheme, spki).unwrap(), issued.der)
    }

    /// The signed attributes of the one SignerInfo, by type.
    fn signed_attribute(cms_der: &[u8], oid: der::asn1::ObjectIdentifier) -> Option<der::Any> {
        let info = ContentInfo::from_der(cms_der).unwrap();
        let signed_data: SignedData = info.content.decode_as().unwrap();
        let signer_info = signed_data.signer_infos.0.get(0).unwrap().clone();
        let attributes = signer_info.signed_attrs.unwrap();
        attributes.iter().find(|a| a.oid == oid).map(|a| a.values.get(0).unwrap().clone())
    }

    /// A detached CAdES-B-B (`.p7s`) and an attached one, by an RSA and an EC person key, verify with
    /// `openssl cms -verify` up to the root; the detached one only against the very content signed; they
    /// carry the signer's certificate hash in signing-certificate-v2, the claimed time in signing-time
    /// (none when not asked: PAdES), and the content's digest in message-digest.
    #[test]
    fn cades_b_b_detached_and_attached_verify_with_openssl() {
        let _hsm = crate::hsm::test_support::exclusive();
        let keystore = keystore("pki-cades");
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::create(&keystore, "CAdES Test", "SI", "https://rssp.test", now()).unwrap();
        let root_pem = pem(dir.path(), "root", &ca.root.certificate_der);
        let chain = vec![ca.issuing.certificate_der.clone()];
        let document = b"%PDF-1.7 or anything else: the content a person approved".to_vec();
        let at = 1_796_000_000; // 2026-11-30

        for kind in [KeyKind::Rsa2048, KeyKind::EcP256] {
            let (signer, certificate_der) = person(&keystore, &ca, kind);
            let digest = HashAlgorithm::Sha256.digest(&document);
            let detached = sign_b_b(
                &signer,
                Signed {
                    certificate_der: &certificate_der,
                    chain_der: &chain,
                    content: Content::Detached { digest: &digest },
                    baseline: Baseline::Cades { signing_time: at },
                },
            )
            .unwrap();
            let name = format!("{}-detached", kind.as_str());
            assert_eq!(
                openssl_cms_verify(dir.path(), &name, &detached, &root_pem, Some(&document)),
                Some(document.clone())
            );
            let mut other = document.clone();
            other[0] ^= 1;
            assert_eq!(
                openssl_cms_verify(dir.path(), &format!("{name}-other"), &detached, &root_pem, Some(&other)),
                None
            );

            let certificate_hash = HashAlgorithm::Sha256.digest(&certificate_der);
            let signing_certificate: SigningCertificateV2 =
                signed_attribute(&detached, SIGNING_CERTIFICATE_V2).unwrap().decode_as().unwrap();
            assert_eq!(signing_certificate.certs[0].cert_hash.as_bytes(), &certificate_hash[..]);
            assert_eq!(signing_certificate.certs[0].issuer_serial, None, "EN 319 122-1 §6.3 g");
            let time = signed_attribute(&detached, ID_SIGNING_TIME).unwrap();
            assert_eq!(der::Tagged::tag(&time), der::Tag::UtcTime, "RFC 5652 §11.3: UTCTime before 2050");
            let time: Time = time.decode_as().unwrap();
            assert_eq!(time.to_unix_duration().as_secs(), at as u64);
            let message_digest: OctetString =
                signed_attribute(&detached, ID_MESSAGE_DIGEST).unwrap().decode_as().unwrap();
            assert_eq!(message_digest.as_bytes(), &digest[..]);

            let attached = sign_b_b(
                &signer,
                Signed {
                    certificate_der: &certificate_der,
                    chain_der: &chain,
                    content: Content::Attached { content: &document, digest: &digest },
                    baseline: Baseline::PadesCms,
                },
            )
            .unwrap();
            let name = format!("{}-attached", kind.as_str());
            assert_eq!(openssl_cms_verify(dir.path(), &name, &attached, &root_pem, None), Some(document.clone()));
            assert!(signed_attribute(&attached, ID_SIGNING_TIME).is_none(), "a PAdES CMS has no signing-time");
            assert!(signed_attribute(&attached, SIGNING_CERTIFICATE_V2).is_some());
        }
    }

    /// An RSASSA-PSS signature (SHA-256, MGF1-SHA-256, salt 32) names
    /// id-RSASSA-PSS with its parameters in the SignerInfo, and openssl verifies it.
    #[test]
    fn cades_b_b_with_rsassa_pss_verifies_with_openssl() {
        let _hsm = crate::hsm::test_support::exclusive();
        let keystore = keystore("pki-cades-pss");
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::create(&keystore, "CAdES Test", "SI", "https://rssp.test", now()).unwrap();
        let root_pem = pem(dir.path(), "root", &ca.root.certificate_der);
        let scheme = SignatureScheme::RsaPss { hash: HashAlgorithm::Sha256, salt_len: 32 };
        let (signer, certificate_der) = person_signing_with(&keystore, &ca, KeyKind::Rsa2048, scheme);
        let document = b"a document signed with RSASSA-PSS".to_vec();
        let digest = HashAlgorithm::Sha256.digest(&document);
        let cms_der = sign_b_b(
            &signer,
            Signed {
                certificate_der: &certificate_der,
                chain_der: std::slice::from_ref(&ca.issuing.certificate_der),
                content: Content::Detached { digest: &digest },
                baseline: Baseline::Cades { signing_time: now() },
            },
        )
        .unwrap();
        let verified = openssl_cms_verify(dir.path(), "pss", &cms_der, &root_pem, Some(&document));
        assert_eq!(verified, Some(document.clone()));
        let signed_data: SignedData = ContentInfo::from_der(&cms_der).unwrap().content.decode_as().unwrap();
        let algorithm = signed_data.signer_infos.0.get(0).unwrap().signature_algorithm.clone();
        assert_eq!(algorithm.oid, const_oid::db::rfc5912::ID_RSASSA_PSS);
        let params = algorithm.parameters.unwrap().to_der().unwrap();
        assert_eq!(params, crate::domain::algorithms::pss_params_der(HashAlgorithm::Sha256, 32).unwrap());
    }

    /// B-T: a token of rssp's TSA over the signature value, attached as the signature time-stamp: openssl
    /// still verifies the CMS, and `openssl ts -verify` the token against the signature value up to the
    /// root. A token over anything else, or a second one, is refused.
    #[test]
    fn a_signature_time_stamp_makes_b_t_and_only_one_over_this_signature_is_attached() {
        use crate::pki::tsa::{self, TimeStampQuery, TimeStampingUnit, TsaPolicy};
        let _hsm = crate::hsm::test_support::exclusive();
        let keystore = keystore("pki-cades-b-t");
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::create(&keystore, "CAdES Test", "SI", "https://rssp.test", now()).unwrap();
        let root_pem = pem(dir.path(), "root", &ca.root.certificate_der);
        let unit =
            TimeStampingUnit::create(&keystore, &ca, KeyKind::EcP256, "CAdES Test", "SI", "https://rssp.test", now())
                .unwrap();
        let policy = TsaPolicy {
            policy: crate::pki::tsp::oid::BEST_PRACTICES_TS_POLICY,
            accuracy_millis: 1000,
            qualified: false,
        };
        let stamp = |digest: &[u8]| {
            let query = TimeStampQuery::for_digest(HashAlgorithm::Sha256, digest, None).unwrap();
            let serial = tsa::random_serial_number().unwrap();
            let chain = std::slice::from_ref(&ca.issuing.certificate_der);
            tsa::time_stamp(&keystore, &unit, &policy, &query, serial, now(), chain).unwrap()
        };
        let (signer, certificate_der) = person(&keystore, &ca, KeyKind::EcP256);
        let document = b"a document signed at B-T".to_vec();
        let digest = HashAlgorithm::Sha256.digest(&document);
        let b_b = sign_b_b(
            &signer,
            Signed {
                certificate_der: &certificate_der,
                chain_der: std::slice::from_ref(&ca.issuing.certificate_der),
                content: Content::Detached { digest: &digest },
                baseline: Baseline::Cades { signing_time: now() },
            },
        )
        .unwrap();
        let value = signature_value(&b_b).unwrap();
        let token = stamp(&HashAlgorithm::Sha256.digest(&value));
        let b_t = with_signature_time_stamp(&b_b, &token).unwrap();
        assert_eq!(openssl_cms_verify(dir.path(), "b-t", &b_t, &root_pem, Some(&document)), Some(document.clone()));

        let signed_data: SignedData = ContentInfo::from_der(&b_t).unwrap().content.decode_as().unwrap();
        let signer_info = signed_data.signer_infos.0.get(0).unwrap();
        let unsigned = signer_info.unsigned_attrs.as_ref().unwrap();
        let attached = unsigned.iter().find(|a| a.oid == SIGNATURE_TIME_STAMP_TOKEN).unwrap();
        let attached = attached.values.get(0).unwrap().to_der().unwrap();
        assert_eq!(attached, token);
        std::fs::write(dir.path().join("token.der"), &attached).unwrap();
        let issuing_pem = pem(dir.path(), "issuing", &ca.issuing.certificate_der);
        let out = std::process::Command::new("openssl")
            .args(["ts", "-verify", "-token_in", "-digest"])
            .arg(hex::encode(HashAlgorithm::Sha256.digest(signer_info.signature.as_bytes())))
            .arg("-in")
            .arg(dir.path().join("token.der"))
            .arg("-CAfile")
            .arg(&root_pem)
            .arg("-untrusted")
            .arg(&issuing_pem)
            .output()
            .unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && said.contains("Verification: OK"), "openssl ts -verify: {said}");

        let other = stamp(&HashAlgorithm::Sha256.digest(b"another signature value"));
        let refused = with_signature_time_stamp(&b_b, &other).unwrap_err();
        assert!(refused.to_string().contains("does not cover this signature"), "{refused}");
        let twice = with_signature_time_stamp(&b_t, &token).unwrap_err();
        assert!(twice.to_string().contains("already has a time-stamp"), "{twice}");
    }

    /// A certificate of another key, or a digest of the wrong length, is refused before the HSM signs.
    #[test]
    fn cades_refuses_a_foreign_certificate_and_a_digest_of_the_wrong_length() {
        let _hsm = crate::hsm::test_support::exclusive();
        let keystore = keystore("pki-cades-refusals");
        let ca = CertificateAuthority::create(&keystore, "CAdES Test", "SI", "https://rssp.test", now()).unwrap();
        let (signer, own_certificate) = person(&keystore, &ca, KeyKind::EcP256);
        let (_, foreign_certificate) = person(&keystore, &ca, KeyKind::Rsa2048);
        let digest = HashAlgorithm::Sha256.digest(b"content");
        let signed = |certificate_der: &[u8], digest: &[u8]| {
            sign_b_b(
                &signer,
                Signed {
                    certificate_der,
                    chain_der: &[],
                    content: Content::Detached { digest },
                    baseline: Baseline::Cades { signing_time: now() },
                },
            )
        };
        let foreign = signed(&foreign_certificate, &digest).unwrap_err();
        assert!(foreign.to_string().contains("not the signing key's"), "{foreign}");
        assert!(signed(&ca.issuing.certificate_der, &digest).is_err(), "nor is the CA's certificate");
        assert!(signed(&own_certificate, &digest).is_ok());
        let short = signed(&own_certificate, &digest[..20]).unwrap_err();
        assert!(short.to_string().contains("a digest of 20 bytes for a 32-byte hash"), "{short}");
    }
}

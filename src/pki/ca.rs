//! The certificate authority: a self-signed root and an issuing CA, both keys in the HSM.

use std::str::FromStr;

use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::name::Name;
use x509_cert::Certificate;

use super::certificate::{self, random_serial, validity};
use super::hsm_signer::HsmSigner;
use super::profile::{self, CertificateKind, CertificateProfile, Publication};
use super::PkiError;
use crate::domain::{HashAlgorithm, KeyKind, SignatureScheme};
use crate::hsm::{AuthorityKeyLabel, KeyId, KeyStore};

/// CA keys are ECDSA P-384: strong, and cheap to sign with when certificates and CRLs are issued.
pub const CA_KEY_KIND: KeyKind = KeyKind::EcP384;
const ROOT_YEARS: i64 = 20;
const ISSUING_YEARS: i64 = 10;
const DAY: i64 = 24 * 3600;

/// How a CA key signs certificates and CRLs: RSA keys sha256WithRSAEncryption, EC keys ecdsa-with-SHA384.
fn ca_scheme(kind: KeyKind) -> SignatureScheme {
    if kind.is_rsa() {
        SignatureScheme::RsaPkcs1(HashAlgorithm::Sha256)
    } else {
        SignatureScheme::Ecdsa(HashAlgorithm::Sha384)
    }
}

/// Paths under the public URL where the CA publishes its certificates and CRLs (served by `api::pki`).
pub mod paths {
    pub(crate) const ROOT_CERT: &str = "/pki/root-ca.cer";
    pub(crate) const ISSUING_CERT: &str = "/pki/issuing-ca.cer";
    /// The root CA's CRL.
    pub const ROOT_CRL: &str = "/pki/root-ca.crl";
    /// The issuing CA's CRL.
    pub const ISSUING_CRL: &str = "/pki/issuing-ca.crl";
    /// The OCSP responder (POST, and GET with the request in the path).
    pub const OCSP: &str = "/ocsp";
}

/// One CA level: its key in the HSM and its certificate.
#[derive(Debug, Clone)]
pub struct CaLevel {
    /// The CA key's id in the HSM.
    pub key: KeyId,
    /// The CA key's kind.
    pub kind: KeyKind,
    /// The CA certificate, DER.
    pub certificate_der: Vec<u8>,
    /// The CA's subject name, as it signs as issuer.
    pub name: Name,
    /// The CA's public key, as its certificate carries it.
    pub public_key: SubjectPublicKeyInfoOwned,
    /// The CA certificate's notAfter: nothing it issues may outlive it.
    pub not_after: i64,
}

impl CaLevel {
    pub(crate) fn from_parts(key: KeyId, kind: KeyKind, certificate_der: Vec<u8>) -> Result<CaLevel, PkiError> {
        let cert = Certificate::from_der(&certificate_der)?;
        let name = cert.tbs_certificate().subject().clone();
        let public_key = cert.tbs_certificate().subject_public_key_info().clone();
        let not_after = certificate::unix_seconds(&cert.tbs_certificate().validity().not_after)?;
        Ok(CaLevel { key, kind, certificate_der, name, public_key, not_after })
    }

    /// The signer of this CA: its key in the HSM, with its public key from its certificate.
    pub fn signer<'a>(&self, keystore: &'a KeyStore) -> Result<HsmSigner<'a>, PkiError> {
        HsmSigner::new(keystore, self.key.clone(), ca_scheme(self.kind), self.public_key.clone())
    }
}

/// rssp's two-level CA: a root and the issuing CA that signs end-entity certificates and CRLs.
#[derive(Debug, Clone)]
pub struct CertificateAuthority {
    /// The root CA: signs the issuing CA's certificate and its own CRL.
    pub root: CaLevel,
    /// The issuing CA: signs subscriber certificates and their CRL.
    pub issuing: CaLevel,
    /// Whether end-entity certificates claim a QSCD (QcSSCD statement, QCP-n-qscd policy); resolved from
    /// the configuration at start (off on SoftHSM, which is no QSCD).
    pub qc_sscd: bool,
}

/// What the CA issued for an end entity.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Its serial number, hex.
    pub serial_hex: String,
    /// Its notAfter, Unix seconds.
    pub not_after: i64,
}

/// Subject names; values are limited to characters that need no escaping in RFC 4514.
pub fn distinguished_name(common_name: &str, organization: Option<&str>, country: &str) -> Result<Name, PkiError> {
    let plain = |s: &str| s.chars().all(|c| c.is_alphanumeric() || " .-_@".contains(c));
    if !plain(common_name) || !organization.is_none_or(plain) || !plain(country) {
        return Err(PkiError::Invalid(format!("name {common_name:?} has characters not allowed in a subject")));
    }
    let text = match organization {
        Some(o) => format!("CN={common_name},O={o},C={country}"),
        None => format!("CN={common_name},C={country}"),
    };
    Ok(Name::from_str(&text)?)
}

/// Who a qualified certificate for a natural person names (ETSI EN 319 412-2 §4.2.4).
#[derive(Debug, Clone)]
pub struct PersonSubject {
    /// givenName and surname; None for operator-provisioned signers whose names rssp does not know.
    pub names: Option<(String, String)>,
    /// What the certificate calls the person when there are no names (the operator's username).
    pub fallback_common_name: String,
    /// serialNumber: an identifier of the person, stable across their certificates.
    pub serial_number: String,
    /// countryName of the person (ISO 3166-1 alpha-2).
    pub country: String,
}

/// The serialNumber attribute of a person: an identifier rssp assigns, the same in all of the person's
/// certificates. ETSI EN 319 412-1 §5.1.3 semantics identifiers (PAS, IDC, PNO, TIN + country + "-", or a
/// national "XX:" scheme) name an official document or register; rssp records none of them, so it uses
/// its own identifier, `RSSP-` and the account id, in a form that cannot be read as one (no 3+2 letter
/// prefix, no colon), and adds no semanticsId-Natural QC statement.
pub fn provider_serial_number(user_id: &str) -> String {
    format!("RSSP-{}", user_id.to_uppercase())
}

/// The subject of a natural person's certificate: countryName, surname, givenName, serialNumber and
/// commonName ("given name surname"). Names are UTF8String; countryName and serialNumber PrintableString,
/// as X.520 requires.
pub fn person_name(person: &PersonSubject) -> Result<Name, PkiError> {
    use const_oid::db::rfc4519::{COMMON_NAME, COUNTRY_NAME, GIVEN_NAME, SERIAL_NUMBER, SURNAME};
    use der::asn1::{ObjectIdentifier, PrintableStringRef, Utf8StringRef};
    use x509_cert::attr::AttributeTypeAndValue;
    use x509_cert::name::{RdnSequence, RelativeDistinguishedName};

    let utf8 = |oid: ObjectIdentifier, value: &str| -> Result<AttributeTypeAndValue, PkiError> {
        if value.is_empty() || value.chars().count() > 64 || value.chars().any(char::is_control) {
            return Err(PkiError::Invalid(format!("subject attribute {oid}: 1 to 64 printable characters")));
        }
        Ok(AttributeTypeAndValue { oid, value: der::Any::encode_from(&Utf8StringRef::new(value)?)? })
    };
    let printable = |oid: ObjectIdentifier, value: &str| -> Result<AttributeTypeAndValue, PkiError> {
        Ok(AttributeTypeAndValue { oid, value: der::Any::encode_from(&PrintableStringRef::new(value)?)? })
    };
    let mut attributes = vec![printable(COUNTRY_NAME, &person.country)?];
    let common_name = match &person.names {
        Some((given_name, surname)) => {
            attributes.push(utf8(SURNAME, surname)?);
            attributes.push(utf8(GIVEN_NAME, given_name)?);
            format!("{given_name} {surname}")
        }
        None => person.fallback_common_name.clone(),
    };
    attributes.push(printable(SERIAL_NUMBER, &person.serial_number)?);
    attributes.push(utf8(COMMON_NAME, &common_name)?);
    let mut rdns = RdnSequence::default();
    for attribute in attributes {
        rdns.push(RelativeDistinguishedName::try_from(vec![attribute])?);
    }
    Ok(Name::from_der(&rdns.to_der()?)?)
}

/// Destroys authority keys (CA, TSA, OCSP responder) that were generated but never recorded: a
/// creation that failed, or that another node won. Best effort: a key left behind is unused and logged.
pub fn discard_keys(keystore: &KeyStore, keys: &[KeyId]) {
    for key in keys {
        if let Err(e) = keystore.destroy(key) {
            tracing::warn!(key = %key.to_hex(), error = %e, "could not destroy an authority key that nothing records");
        }
    }
}

/// What the issuing CA certificate publishes: where the root's certificate and CRL are.
fn issuing_publication(public_url: &str) -> Publication {
    Publication {
        ocsp_url: None,
        issuer_cert_url: format!("{public_url}{}", paths::ROOT_CERT),
        crl_url: format!("{public_url}{}", paths::ROOT_CRL),
    }
}

/// The issuing CA's certificate, signed by the root: the profile both creation and reissue use.
fn issuing_certificate(
    root: &CaLevel,
    keystore: &KeyStore,
    subject: Name,
    spki: SubjectPublicKeyInfoOwned,
    validity: x509_cert::time::Validity,
    public_url: &str,
) -> Result<Vec<u8>, PkiError> {
    let profile = CertificateProfile {
        issuer: root.name.clone(),
        subject,
        kind: CertificateKind::Ca { path_len: Some(0), published: Some(issuing_publication(public_url)) },
    };
    certificate::issue(&root.signer(keystore)?, profile, random_serial()?, validity, spki)
}

impl CertificateAuthority {
    /// Creates the root and the issuing CA: keys in the HSM, certificates signed there.
    pub fn create(
        keystore: &KeyStore,
        organization: &str,
        country: &str,
        public_url: &str,
        now: i64,
    ) -> Result<Self, PkiError> {
        let root_name = distinguished_name(&format!("{organization} Root CA"), Some(organization), country)?;
        let issuing_name =
            distinguished_name(&format!("{organization} Qualified Issuing CA"), Some(organization), country)?;
        // Keys generated here are recorded nowhere until the caller stores the CA: a failure half-way
        // destroys them, so a failed first start leaves no stray CA key on the token.
        let mut generated: Vec<KeyId> = Vec::new();
        let result = (|| {
            let root_key = keystore.generate_authority(CA_KEY_KIND, AuthorityKeyLabel::Root)?;
            generated.push(root_key.id.clone());
            let root_spki = SubjectPublicKeyInfoOwned::from_der(&root_key.public_key_der)?;
            // Self-signed: the root's own key signs, so its authority key identifier is its subject's.
            let root_signer = HsmSigner::new(keystore, root_key.id.clone(), ca_scheme(CA_KEY_KIND), root_spki.clone())?;
            let profile = CertificateProfile {
                issuer: root_name.clone(),
                subject: root_name,
                kind: CertificateKind::Ca { path_len: Some(1), published: None },
            };
            let root_validity = validity(now - 60, now + ROOT_YEARS * 365 * DAY)?;
            let root_der = certificate::issue(&root_signer, profile, random_serial()?, root_validity, root_spki)?;
            let root = CaLevel::from_parts(root_key.id.clone(), CA_KEY_KIND, root_der)?;

            let issuing_key = keystore.generate_authority(CA_KEY_KIND, AuthorityKeyLabel::Issuing)?;
            generated.push(issuing_key.id.clone());
            let issuing_spki = SubjectPublicKeyInfoOwned::from_der(&issuing_key.public_key_der)?;
            let validity = validity(now - 60, now + ISSUING_YEARS * 365 * DAY)?;
            let der = issuing_certificate(&root, keystore, issuing_name, issuing_spki, validity, public_url)?;
            let issuing = CaLevel::from_parts(issuing_key.id, CA_KEY_KIND, der)?;
            Ok(CertificateAuthority { root, issuing, qc_sscd: false })
        })();
        if result.is_err() {
            discard_keys(keystore, &generated);
        }
        result
    }

    /// The CA's two keys, for [`discard_keys`] when the CA could not be stored.
    pub fn key_ids(&self) -> [KeyId; 2] {
        [self.root.key.clone(), self.issuing.key.clone()]
    }

    /// A new certificate of the issuing CA for the same key and name, with the URLs of `public_url`,
    /// signed by the root. It keeps the validity period of the current one, so it validates exactly
    /// what the current one validates (also signatures made before today), and the key identifiers stay
    /// (same key): certificates and CRLs the issuing CA signed chain to either certificate.
    pub fn reissue_issuing(&self, keystore: &KeyStore, public_url: &str) -> Result<CaLevel, PkiError> {
        let current = Certificate::from_der(&self.issuing.certificate_der)?;
        let tbs = current.tbs_certificate();
        let der = issuing_certificate(
            &self.root,
            keystore,
            tbs.subject().clone(),
            tbs.subject_public_key_info().clone(),
            *tbs.validity(),
            public_url,
        )?;
        CaLevel::from_parts(self.issuing.key.clone(), self.issuing.kind, der)
    }

    /// The URLs the issuing CA certificate should publish for `public_url`, and those it does publish
    /// when they differ (the configuration changed since the certificate was made).
    pub fn issuing_urls_differ(&self, public_url: &str) -> Result<Option<(Publication, Publication)>, PkiError> {
        let current = profile::published_urls(&Certificate::from_der(&self.issuing.certificate_der)?)?;
        let wanted = issuing_publication(public_url);
        Ok(match current {
            Some(current) if current == wanted => None,
            Some(current) => Some((current, wanted)),
            None => {
                Some((Publication { issuer_cert_url: String::new(), crl_url: String::new(), ocsp_url: None }, wanted))
            }
        })
    }

    /// Issues a qualified signing certificate for a public key generated in the HSM. Its notAfter is
    /// capped at the issuing CA's notAfter: a certificate never outlives its issuer.
    pub fn issue_end_entity(
        &self,
        keystore: &KeyStore,
        public_key_der: &[u8],
        subject: Name,
        public_url: &str,
        now: i64,
        validity_days: i64,
    ) -> Result<IssuedCertificate, PkiError> {
        let spki = SubjectPublicKeyInfoOwned::from_der(public_key_der)?;
        let signer = self.issuing.signer(keystore)?;
        let serial = random_serial()?;
        let serial_hex = hex::encode(serial.as_bytes());
        let not_after = now.saturating_add(validity_days.saturating_mul(DAY)).min(self.issuing.not_after);
        if not_after <= now {
            return Err(PkiError::Invalid("the issuing CA certificate has expired".into()));
        }
        let published = Publication {
            ocsp_url: Some(format!("{public_url}{}", paths::OCSP)),
            issuer_cert_url: format!("{public_url}{}", paths::ISSUING_CERT),
            crl_url: format!("{public_url}{}", paths::ISSUING_CRL),
        };
        let profile = CertificateProfile {
            issuer: self.issuing.name.clone(),
            subject,
            kind: CertificateKind::QualifiedEndEntity { published, qc_sscd: self.qc_sscd },
        };
        let der = certificate::issue(&signer, profile, serial, validity(now - 60, not_after)?, spki)?;
        // Parse what was produced, so a malformed certificate never leaves the CA.
        Certificate::from_der(&der)?.to_der()?;
        crate::metrics::METRICS.certificates_issued.inc();
        Ok(IssuedCertificate { der, serial_hex, not_after })
    }
}

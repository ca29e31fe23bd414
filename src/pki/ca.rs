//! The certificate authority: a self-signed root and an issuing CA, both keys in the HSM.

use std::str::FromStr;

use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::name::Name;
use x509_cert::Certificate;

use super::certificate::{random_serial, validity, CaSigner, TbsCertificate};
use super::profile::{self, Publication};
use super::PkiError;
use crate::domain::KeyKind;
use crate::hsm::{CaKeyLabel, KeyId, KeyStore};

/// CA keys are ECDSA P-384: strong, and cheap to sign with when certificates and CRLs are issued.
pub const CA_KEY_KIND: KeyKind = KeyKind::EcP384;
const ROOT_YEARS: i64 = 20;
const ISSUING_YEARS: i64 = 10;
const DAY: i64 = 24 * 3600;

/// Paths under the public URL where the CA publishes its certificates and CRLs (served by `api::pki`).
pub mod paths {
    pub const ROOT_CERT: &str = "/pki/root-ca.cer";
    pub const ISSUING_CERT: &str = "/pki/issuing-ca.cer";
    pub const ROOT_CRL: &str = "/pki/root-ca.crl";
    pub const ISSUING_CRL: &str = "/pki/issuing-ca.crl";
}

/// One CA level: its key in the HSM and its certificate.
#[derive(Debug, Clone)]
pub struct CaLevel {
    pub key: KeyId,
    pub kind: KeyKind,
    pub certificate_der: Vec<u8>,
    pub name: Name,
    pub key_identifier: Vec<u8>,
    /// The CA certificate's notAfter: nothing it issues may outlive it.
    pub not_after: i64,
}

impl CaLevel {
    pub fn from_parts(key: KeyId, kind: KeyKind, certificate_der: Vec<u8>) -> Result<CaLevel, PkiError> {
        let cert = Certificate::from_der(&certificate_der)?;
        let name = cert.tbs_certificate().subject().clone();
        let key_identifier = profile::key_identifier(cert.tbs_certificate().subject_public_key_info());
        let not_after = cert
            .tbs_certificate()
            .validity()
            .not_after
            .to_system_time()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| PkiError::Invalid("CA certificate expires before 1970".into()))?
            .as_secs();
        let not_after = i64::try_from(not_after).map_err(|_| PkiError::Invalid("CA notAfter out of range".into()))?;
        Ok(CaLevel { key, kind, certificate_der, name, key_identifier, not_after })
    }

    pub fn signer<'a>(&self, keystore: &'a KeyStore) -> CaSigner<'a> {
        CaSigner { keystore, key: self.key.clone(), kind: self.kind }
    }
}

#[derive(Debug, Clone)]
pub struct CertificateAuthority {
    pub root: CaLevel,
    pub issuing: CaLevel,
    /// Whether end-entity certificates claim a QSCD (QcSSCD statement, QCP-n-qscd policy); resolved from
    /// the configuration at start (off on SoftHSM, which is no QSCD).
    pub qc_sscd: bool,
}

/// What the CA issued for an end entity.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    pub der: Vec<u8>,
    pub serial_hex: String,
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

mod attr {
    pub const COMMON_NAME: &str = "2.5.4.3";
    pub const SURNAME: &str = "2.5.4.4";
    pub const SERIAL_NUMBER: &str = "2.5.4.5";
    pub const COUNTRY_NAME: &str = "2.5.4.6";
    pub const GIVEN_NAME: &str = "2.5.4.42";
}

/// The subject of a natural person's certificate: countryName, surname, givenName, serialNumber and
/// commonName ("given name surname"). Names are UTF8String; countryName and serialNumber PrintableString,
/// as X.520 requires.
pub fn person_name(person: &PersonSubject) -> Result<Name, PkiError> {
    use der::asn1::{ObjectIdentifier, PrintableStringRef, Utf8StringRef};
    use x509_cert::attr::AttributeTypeAndValue;
    use x509_cert::name::{RdnSequence, RelativeDistinguishedName};

    let utf8 = |oid: &str, value: &str| -> Result<AttributeTypeAndValue, PkiError> {
        if value.is_empty() || value.chars().count() > 64 || value.chars().any(char::is_control) {
            return Err(PkiError::Invalid(format!("subject attribute {oid}: 1 to 64 printable characters")));
        }
        Ok(AttributeTypeAndValue {
            oid: ObjectIdentifier::new_unwrap(oid),
            value: der::Any::encode_from(&Utf8StringRef::new(value)?)?,
        })
    };
    let printable = |oid: &str, value: &str| -> Result<AttributeTypeAndValue, PkiError> {
        Ok(AttributeTypeAndValue {
            oid: ObjectIdentifier::new_unwrap(oid),
            value: der::Any::encode_from(&PrintableStringRef::new(value)?)?,
        })
    };
    let mut attributes = vec![printable(attr::COUNTRY_NAME, &person.country)?];
    let common_name = match &person.names {
        Some((given_name, surname)) => {
            attributes.push(utf8(attr::SURNAME, surname)?);
            attributes.push(utf8(attr::GIVEN_NAME, given_name)?);
            format!("{given_name} {surname}")
        }
        None => person.fallback_common_name.clone(),
    };
    attributes.push(printable(attr::SERIAL_NUMBER, &person.serial_number)?);
    attributes.push(utf8(attr::COMMON_NAME, &common_name)?);
    let mut rdns = RdnSequence::default();
    for attribute in attributes {
        rdns.push(RelativeDistinguishedName::try_from(vec![attribute])?);
    }
    Ok(Name::from_der(&rdns.to_der()?)?)
}

/// Destroys CA keys that were generated but never recorded (a CA creation that failed). Best effort:
/// a key left behind is unused and logged.
pub fn discard_keys(keystore: &KeyStore, keys: &[KeyId]) {
    for key in keys {
        if let Err(e) = keystore.destroy(key) {
            tracing::warn!(key = %key.to_hex(), error = %e, "could not destroy an unused CA key of a failed CA creation");
        }
    }
}

/// What the issuing CA certificate publishes: where the root's certificate and CRL are.
fn issuing_publication(public_url: &str) -> Publication {
    Publication {
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
    let root_signer = root.signer(keystore);
    let published = issuing_publication(public_url);
    let tbs = TbsCertificate {
        version: 2,
        serial_number: random_serial()?,
        signature: root_signer.algorithm(),
        issuer: root.name.clone(),
        validity,
        subject,
        extensions: profile::ca_extensions(&spki, &root.key_identifier, Some(0), Some(&published))?,
        subject_public_key_info: spki,
    };
    root_signer.sign(tbs)
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
            let root_key = keystore.generate_ca(CA_KEY_KIND, CaKeyLabel::Root)?;
            generated.push(root_key.id.clone());
            let root_spki = SubjectPublicKeyInfoOwned::from_der(&root_key.public_key_der)?;
            let root_key_id = profile::key_identifier(&root_spki);
            let root_signer = CaSigner { keystore, key: root_key.id.clone(), kind: CA_KEY_KIND };
            let tbs = TbsCertificate {
                version: 2,
                serial_number: random_serial()?,
                signature: root_signer.algorithm(),
                issuer: root_name.clone(),
                validity: validity(now - 60, now + ROOT_YEARS * 365 * DAY)?,
                subject: root_name,
                extensions: profile::ca_extensions(&root_spki, &root_key_id, Some(1), None)?,
                subject_public_key_info: root_spki,
            };
            let root = CaLevel::from_parts(root_key.id.clone(), CA_KEY_KIND, root_signer.sign(tbs)?)?;

            let issuing_key = keystore.generate_ca(CA_KEY_KIND, CaKeyLabel::Issuing)?;
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
            None => Some((Publication { issuer_cert_url: String::new(), crl_url: String::new() }, wanted)),
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
        let signer = self.issuing.signer(keystore);
        let serial = random_serial()?;
        let serial_hex = hex::encode(serial.as_bytes());
        let not_after = now.saturating_add(validity_days.saturating_mul(DAY)).min(self.issuing.not_after);
        if not_after <= now {
            return Err(PkiError::Invalid("the issuing CA certificate has expired".into()));
        }
        let published = Publication {
            issuer_cert_url: format!("{public_url}{}", paths::ISSUING_CERT),
            crl_url: format!("{public_url}{}", paths::ISSUING_CRL),
        };
        let tbs = TbsCertificate {
            version: 2,
            serial_number: serial,
            signature: signer.algorithm(),
            issuer: self.issuing.name.clone(),
            validity: validity(now - 60, not_after)?,
            subject,
            extensions: profile::qualified_end_entity_extensions(
                &spki,
                &self.issuing.key_identifier,
                &published,
                self.qc_sscd,
            )?,
            subject_public_key_info: spki,
        };
        let der = signer.sign(tbs)?;
        // Parse what was produced, so a malformed certificate never leaves the CA.
        Certificate::from_der(&der)?.to_der()?;
        crate::metrics::METRICS.certificates_issued.inc();
        Ok(IssuedCertificate { der, serial_hex, not_after })
    }
}

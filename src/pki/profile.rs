//! Certificate profiles as data: which extensions a CA and a qualified end-entity certificate carry.

use const_oid::AssociatedOid;
use der::asn1::{Ia5String, ObjectIdentifier, OctetString};
use der::{Encode, Sequence};
use sha1::{Digest, Sha1};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::pkix::certpolicy::PolicyInformation;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, CertificatePolicies,
    CrlDistributionPoints, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;

use super::PkiError;

/// ETSI EN 319 412-5 QC statements and ETSI EN 319 411-2 policy identifiers.
pub mod oid {
    pub const QC_STATEMENTS: &str = "1.3.6.1.5.5.7.1.3";
    pub const QC_COMPLIANCE: &str = "0.4.0.1862.1.1";
    pub const QC_SSCD: &str = "0.4.0.1862.1.4";
    pub const QC_TYPE: &str = "0.4.0.1862.1.6";
    pub const QC_TYPE_ESIGN: &str = "0.4.0.1862.1.6.1";
    /// QCP-n-qscd: qualified certificate for a natural person, key in a QSCD.
    pub const POLICY_QCP_N_QSCD: &str = "0.4.0.194112.1.2";
    /// QCP-n: qualified certificate for a natural person (no QSCD claimed).
    pub const POLICY_QCP_N: &str = "0.4.0.194112.1.0";
    pub const AD_CA_ISSUERS: &str = "1.3.6.1.5.5.7.48.2";
}

/// QCStatement ::= SEQUENCE { statementId OBJECT IDENTIFIER, statementInfo ANY OPTIONAL }
#[derive(Sequence)]
struct QcStatement {
    statement_id: ObjectIdentifier,
    statement_info: Option<der::Any>,
}

fn extension(oid: ObjectIdentifier, critical: bool, value: &impl Encode) -> Result<Extension, PkiError> {
    Ok(Extension { extn_id: oid, critical, extn_value: OctetString::new(value.to_der()?)? })
}

/// The key identifier of a public key: SHA-1 of the subjectPublicKey bits (RFC 5280 §4.2.1.2, method 1).
pub fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec()
}

fn uri(url: &str) -> Result<GeneralName, PkiError> {
    Ok(GeneralName::UniformResourceIdentifier(Ia5String::new(url)?))
}

/// Where the issuer's certificate and the CRL covering this certificate are published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub issuer_cert_url: String,
    pub crl_url: String,
}

fn key_ids(subject: &SubjectPublicKeyInfoOwned, issuer_key_id: &[u8]) -> Result<Vec<Extension>, PkiError> {
    let ski = SubjectKeyIdentifier(OctetString::new(key_identifier(subject))?);
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(issuer_key_id)?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    Ok(vec![extension(SubjectKeyIdentifier::OID, false, &ski)?, extension(AuthorityKeyIdentifier::OID, false, &aki)?])
}

fn publication(publication: &Publication) -> Result<Vec<Extension>, PkiError> {
    let aia = AuthorityInfoAccessSyntax(vec![AccessDescription {
        access_method: ObjectIdentifier::new_unwrap(oid::AD_CA_ISSUERS),
        access_location: uri(&publication.issuer_cert_url)?,
    }]);
    let cdp = CrlDistributionPoints(vec![DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![uri(&publication.crl_url)?])),
        reasons: None,
        crl_issuer: None,
    }]);
    Ok(vec![
        extension(AuthorityInfoAccessSyntax::OID, false, &aia)?,
        extension(CrlDistributionPoints::OID, false, &cdp)?,
    ])
}

/// The URLs a certificate publishes: its AIA caIssuers URI and its first CRL distribution point URI.
/// None when it carries neither (the root).
pub fn published_urls(cert: &x509_cert::Certificate) -> Result<Option<Publication>, PkiError> {
    use der::Decode;
    let mut issuer_cert_url = None;
    let mut crl_url = None;
    let first_uri = |names: &[GeneralName]| {
        names.iter().find_map(|name| match name {
            GeneralName::UniformResourceIdentifier(uri) => Some(uri.to_string()),
            _ => None,
        })
    };
    for ext in cert.tbs_certificate().extensions().into_iter().flatten() {
        if ext.extn_id == AuthorityInfoAccessSyntax::OID {
            let aia = AuthorityInfoAccessSyntax::from_der(ext.extn_value.as_bytes())?;
            issuer_cert_url = aia
                .0
                .iter()
                .filter(|d| d.access_method == ObjectIdentifier::new_unwrap(oid::AD_CA_ISSUERS))
                .find_map(|d| first_uri(std::slice::from_ref(&d.access_location)));
        } else if ext.extn_id == CrlDistributionPoints::OID {
            let cdp = CrlDistributionPoints::from_der(ext.extn_value.as_bytes())?;
            crl_url = cdp.0.iter().find_map(|dp| match &dp.distribution_point {
                Some(DistributionPointName::FullName(names)) => first_uri(names),
                _ => None,
            });
        }
    }
    Ok(match (issuer_cert_url, crl_url) {
        (None, None) => None,
        (a, c) => Some(Publication { issuer_cert_url: a.unwrap_or_default(), crl_url: c.unwrap_or_default() }),
    })
}

/// A CA certificate: basicConstraints CA (critical), keyCertSign and cRLSign (critical).
/// `issuer` is None for the self-signed root.
pub fn ca_extensions(
    subject: &SubjectPublicKeyInfoOwned,
    issuer_key_id: &[u8],
    path_len: Option<u8>,
    published: Option<&Publication>,
) -> Result<Vec<Extension>, PkiError> {
    let mut extensions = vec![
        extension(BasicConstraints::OID, true, &BasicConstraints { ca: true, path_len_constraint: path_len })?,
        extension(KeyUsage::OID, true, &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign))?,
    ];
    extensions.extend(key_ids(subject, issuer_key_id)?);
    if let Some(published) = published {
        extensions.extend(publication(published)?);
    }
    Ok(extensions)
}

/// A qualified end-entity signing certificate: nonRepudiation and digitalSignature (critical),
/// QC statements (QcCompliance, QcType esign, and QcSSCD only when `qc_sscd`), the QCP-n-qscd policy
/// (QCP-n without a QSCD), AKI/SKI, AIA and CDP.
pub fn qualified_end_entity_extensions(
    subject: &SubjectPublicKeyInfoOwned,
    issuer_key_id: &[u8],
    published: &Publication,
    qc_sscd: bool,
) -> Result<Vec<Extension>, PkiError> {
    let esign = vec![ObjectIdentifier::new_unwrap(oid::QC_TYPE_ESIGN)];
    let mut statements =
        vec![QcStatement { statement_id: ObjectIdentifier::new_unwrap(oid::QC_COMPLIANCE), statement_info: None }];
    // A key on SoftHSM is not in a qualified signature creation device: claiming one would be false.
    if qc_sscd {
        statements.push(QcStatement { statement_id: ObjectIdentifier::new_unwrap(oid::QC_SSCD), statement_info: None });
    }
    statements.push(QcStatement {
        statement_id: ObjectIdentifier::new_unwrap(oid::QC_TYPE),
        statement_info: Some(der::Any::encode_from(&esign)?),
    });
    let policy = if qc_sscd { oid::POLICY_QCP_N_QSCD } else { oid::POLICY_QCP_N };
    let policies = CertificatePolicies(vec![PolicyInformation {
        policy_identifier: ObjectIdentifier::new_unwrap(policy),
        policy_qualifiers: None,
    }]);
    let mut extensions = vec![
        extension(BasicConstraints::OID, false, &BasicConstraints { ca: false, path_len_constraint: None })?,
        extension(KeyUsage::OID, true, &KeyUsage(KeyUsages::DigitalSignature | KeyUsages::NonRepudiation))?,
        extension(CertificatePolicies::OID, false, &policies)?,
        extension(ObjectIdentifier::new_unwrap(oid::QC_STATEMENTS), false, &statements)?,
    ];
    extensions.extend(key_ids(subject, issuer_key_id)?);
    extensions.extend(publication(published)?);
    Ok(extensions)
}

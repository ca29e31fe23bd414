//! Certificate profiles as data: which extensions a CA and a qualified end-entity certificate carry.

use const_oid::db::rfc5280::{ID_AD_CA_ISSUERS, ID_AD_OCSP, ID_KP_OCSP_SIGNING, ID_KP_TIME_STAMPING};
use const_oid::AssociatedOid;
use der::asn1::{Ia5String, ObjectIdentifier};
use der::{Encode, Sequence};
use spki::SubjectPublicKeyInfoRef;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::pkix::certpolicy::PolicyInformation;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, CertificatePolicies,
    CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;

use super::PkiError;

/// ETSI EN 319 412-5 QC statements and ETSI EN 319 411-2 policy identifiers (not in `const_oid::db`).
pub mod oid {
    use der::asn1::ObjectIdentifier;

    /// id-pe-qcStatements (RFC 3739).
    pub const QC_STATEMENTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.3");
    pub const QC_COMPLIANCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.1862.1.1");
    pub const QC_SSCD: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.1862.1.4");
    pub const QC_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.1862.1.6");
    pub const QC_TYPE_ESIGN: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.1862.1.6.1");
    /// QCP-n-qscd: qualified certificate for a natural person, key in a QSCD.
    pub const POLICY_QCP_N_QSCD: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.194112.1.2");
    /// QCP-n: qualified certificate for a natural person (no QSCD claimed).
    pub const POLICY_QCP_N: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.194112.1.0");
}

/// QCStatement ::= SEQUENCE { statementId OBJECT IDENTIFIER, statementInfo ANY OPTIONAL }
#[derive(Sequence)]
struct QcStatement {
    statement_id: ObjectIdentifier,
    statement_info: Option<der::Any>,
}

/// QCStatements ::= SEQUENCE OF QCStatement (RFC 3739 §3.2.6), the value of the qcStatements extension.
struct QcStatements(Vec<QcStatement>);

impl AssociatedOid for QcStatements {
    const OID: ObjectIdentifier = oid::QC_STATEMENTS;
}

impl der::EncodeValue for QcStatements {
    fn value_len(&self) -> der::Result<der::Length> {
        self.0.value_len()
    }
    fn encode_value(&self, writer: &mut impl der::Writer) -> der::Result<()> {
        self.0.encode_value(writer)
    }
}

impl der::FixedTag for QcStatements {
    const TAG: der::Tag = der::Tag::Sequence;
}

/// An extension with the criticality the profile gives it (the crate's defaults are not all ours:
/// it marks basicConstraints critical even in an end-entity certificate).
fn extension<T: AssociatedOid + Encode>(critical: bool, value: &T, subject: &Name) -> der::Result<Extension> {
    (critical, value).to_extension(subject, &[])
}

fn uri(url: &str) -> der::Result<GeneralName> {
    Ok(GeneralName::UniformResourceIdentifier(Ia5String::new(url)?))
}

/// Where the issuer's certificate and the CRL covering this certificate are published, and the OCSP
/// responder that answers for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub issuer_cert_url: String,
    pub crl_url: String,
    pub ocsp_url: Option<String>,
}

/// subjectKeyIdentifier of the certified key and authorityKeyIdentifier of the key that signs, both
/// the SHA-1 of the subjectPublicKey bits (RFC 5280 §4.2.1.2, method 1).
fn key_ids(
    subject: &Name,
    subject_key: SubjectPublicKeyInfoRef<'_>,
    issuer_key: SubjectPublicKeyInfoRef<'_>,
) -> der::Result<Vec<Extension>> {
    let ski = SubjectKeyIdentifier::try_from(subject_key)?;
    let aki = AuthorityKeyIdentifier::try_from(issuer_key)?;
    Ok(vec![extension(false, &ski, subject)?, extension(false, &aki, subject)?])
}

fn publication(subject: &Name, publication: &Publication) -> der::Result<Vec<Extension>> {
    let mut access = Vec::new();
    if let Some(ocsp_url) = &publication.ocsp_url {
        access.push(AccessDescription { access_method: ID_AD_OCSP, access_location: uri(ocsp_url)? });
    }
    access.push(AccessDescription {
        access_method: ID_AD_CA_ISSUERS,
        access_location: uri(&publication.issuer_cert_url)?,
    });
    let aia = AuthorityInfoAccessSyntax(access);
    let cdp = CrlDistributionPoints(vec![DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![uri(&publication.crl_url)?])),
        reasons: None,
        crl_issuer: None,
    }]);
    Ok(vec![extension(false, &aia, subject)?, extension(false, &cdp, subject)?])
}

/// The URLs a certificate publishes: its AIA caIssuers URI and its first CRL distribution point URI.
/// None when it carries neither (the root).
pub fn published_urls(cert: &x509_cert::Certificate) -> Result<Option<Publication>, PkiError> {
    use der::Decode;
    let mut issuer_cert_url = None;
    let mut crl_url = None;
    let mut ocsp_url = None;
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
                .filter(|d| d.access_method == ID_AD_CA_ISSUERS)
                .find_map(|d| first_uri(std::slice::from_ref(&d.access_location)));
            ocsp_url = aia
                .0
                .iter()
                .filter(|d| d.access_method == ID_AD_OCSP)
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
        (a, c) => {
            Some(Publication { issuer_cert_url: a.unwrap_or_default(), crl_url: c.unwrap_or_default(), ocsp_url })
        }
    })
}

/// What a certificate is, for x509-cert's `CertificateBuilder`: its names and the extensions its
/// kind carries. The crate's own profiles are CA/Browser Forum TLS profiles; these are rssp's.
#[derive(Debug, Clone)]
pub struct CertificateProfile {
    pub issuer: Name,
    pub subject: Name,
    pub kind: CertificateKind,
}

#[derive(Debug, Clone)]
pub enum CertificateKind {
    /// A CA certificate: basicConstraints CA with `path_len` (critical), keyCertSign and cRLSign
    /// (critical), SKI/AKI, and where its issuer publishes (None for the self-signed root).
    Ca { path_len: Option<u8>, published: Option<Publication> },
    /// A qualified end-entity signing certificate: nonRepudiation and digitalSignature (critical),
    /// QC statements (QcCompliance, QcType esign, and QcSSCD only when `qc_sscd`), the QCP-n-qscd policy
    /// (QCP-n without a QSCD), SKI/AKI, AIA and CDP.
    QualifiedEndEntity { published: Publication, qc_sscd: bool },
    /// A time-stamping unit (RFC 3161 §2.3, ETSI EN 319 422 §7): extended key usage timeStamping alone
    /// and critical, digitalSignature (critical), SKI/AKI, AIA and CDP.
    TimeStamping { published: Publication },
    /// A delegated OCSP responder (RFC 6960 §4.2.2.2): extended key usage OCSPSigning, digitalSignature
    /// (critical), id-pkix-ocsp-nocheck (its own status is never asked: its validity is short), SKI/AKI,
    /// AIA and CDP.
    OcspResponder { published: Publication },
}

impl BuilderProfile for CertificateProfile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    /// `subject_key` is the certified key, `issuer_key` the public key of the signer: the key identifiers
    /// come from them.
    fn build_extensions(
        &self,
        subject_key: SubjectPublicKeyInfoRef<'_>,
        issuer_key: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let subject = &self.subject;
        let mut extensions = match &self.kind {
            CertificateKind::Ca { path_len, .. } => vec![
                extension(true, &BasicConstraints { ca: true, path_len_constraint: *path_len }, subject)?,
                extension(true, &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign), subject)?,
            ],
            CertificateKind::QualifiedEndEntity { qc_sscd, .. } => {
                let policy = if *qc_sscd { oid::POLICY_QCP_N_QSCD } else { oid::POLICY_QCP_N };
                let policies =
                    CertificatePolicies(vec![PolicyInformation { policy_identifier: policy, policy_qualifiers: None }]);
                vec![
                    extension(false, &BasicConstraints { ca: false, path_len_constraint: None }, subject)?,
                    extension(true, &KeyUsage(KeyUsages::DigitalSignature | KeyUsages::NonRepudiation), subject)?,
                    extension(false, &policies, subject)?,
                    extension(false, &qc_statements(*qc_sscd)?, subject)?,
                ]
            }
            CertificateKind::TimeStamping { .. } => vec![
                extension(false, &BasicConstraints { ca: false, path_len_constraint: None }, subject)?,
                extension(true, &KeyUsage(KeyUsages::DigitalSignature.into()), subject)?,
                extension(true, &ExtendedKeyUsage(vec![ID_KP_TIME_STAMPING]), subject)?,
            ],
            CertificateKind::OcspResponder { .. } => vec![
                extension(false, &BasicConstraints { ca: false, path_len_constraint: None }, subject)?,
                extension(true, &KeyUsage(KeyUsages::DigitalSignature.into()), subject)?,
                extension(false, &ExtendedKeyUsage(vec![ID_KP_OCSP_SIGNING]), subject)?,
                Extension {
                    extn_id: super::ocsp::asn1::oid::NOCHECK,
                    critical: false,
                    extn_value: der::asn1::OctetString::new(der::asn1::Null.to_der()?)?,
                },
            ],
        };
        extensions.extend(key_ids(subject, subject_key, issuer_key)?);
        let published = match &self.kind {
            CertificateKind::Ca { published, .. } => published.as_ref(),
            CertificateKind::QualifiedEndEntity { published, .. }
            | CertificateKind::TimeStamping { published }
            | CertificateKind::OcspResponder { published } => Some(published),
        };
        if let Some(published) = published {
            extensions.extend(publication(subject, published)?);
        }
        Ok(extensions)
    }
}

/// QcCompliance, QcSSCD when the key is in a QSCD, and QcType esign.
fn qc_statements(qc_sscd: bool) -> der::Result<QcStatements> {
    let mut statements = vec![QcStatement { statement_id: oid::QC_COMPLIANCE, statement_info: None }];
    // A key on SoftHSM is not in a qualified signature creation device: claiming one would be false.
    if qc_sscd {
        statements.push(QcStatement { statement_id: oid::QC_SSCD, statement_info: None });
    }
    statements.push(QcStatement {
        statement_id: oid::QC_TYPE,
        statement_info: Some(der::Any::encode_from(&vec![oid::QC_TYPE_ESIGN])?),
    });
    Ok(QcStatements(statements))
}

//! What a verifier needs to validate one of rssp's signatures years after it was made, without asking
//! rssp (AdES B-LT): the certificates up to the root, OCSP responses about the end-entity certificates
//! (the signer's, and the TSA's when the signature is time-stamped) and about the issuing CA's, and the
//! CRLs of both CAs, all from rssp's own trust services (the responder's cache included).

use super::ca::{current_crl, CrlIssuer};
use super::{ocsp, ServiceError, Services};

/// Validation data, each item DER.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationData {
    /// Certificates: the signer's, the issuing CA's, the root's, the TSA's (when time-stamped) and the
    /// OCSP responder's.
    pub certificates: Vec<Vec<u8>>,
    /// OCSPResponses: about the signer's certificate, the TSA's (when time-stamped) and the issuing CA's.
    pub ocsp: Vec<Vec<u8>>,
    /// CertificateLists: the issuing CA's CRL and the root's.
    pub crls: Vec<Vec<u8>>,
}

/// The validation data of a signature made with `signer_certificate` (DER), time-stamped or not, read
/// after the signature was made: the end-entity statuses are signed now.
pub fn for_signature(
    services: &Services,
    signer_certificate: &[u8],
    time_stamped: bool,
) -> Result<ValidationData, ServiceError> {
    let issuing = &services.ca.issuing.certificate_der;
    let root = &services.ca.root.certificate_der;
    let responder = services.ocsp.delegated().certificate_der.clone();
    let mut data = ValidationData {
        certificates: vec![signer_certificate.to_vec(), issuing.clone(), root.clone()],
        ocsp: vec![ocsp::response_about(services, signer_certificate, issuing, true)?],
        crls: vec![current_crl(services, CrlIssuer::Issuing)?, current_crl(services, CrlIssuer::Root)?],
    };
    if time_stamped {
        let tsa = &services.tsa.unit.certificate_der;
        data.certificates.push(tsa.clone());
        data.ocsp.push(ocsp::response_about(services, tsa, issuing, true)?);
    }
    data.certificates.push(responder);
    // The root answers about the issuing CA from its cache (it never signs on demand).
    data.ocsp.push(ocsp::response_about(services, issuing, root, false)?);
    Ok(data)
}

impl ValidationData {
    /// What a signature of rssp does not already carry (CSC `validationInfo`): its CMS holds the signer's
    /// and the issuing CA's certificates, a time-stamp token the TSA's and the issuing CA's; the
    /// revocation data is never inside below B-LT.
    pub fn beyond_the_signature(mut self, services: &Services) -> ValidationData {
        let signer = self.certificates.first().cloned();
        let carried =
            [signer.as_ref(), Some(&services.ca.issuing.certificate_der), Some(&services.tsa.unit.certificate_der)];
        self.certificates.retain(|c| !carried.iter().flatten().any(|carried| *carried == c));
        self
    }
}

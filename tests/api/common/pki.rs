//! Helpers of the PKI tests: registration with a country, CRLs and certificates taken apart.

use der::{Decode, Encode};
use x509_cert::crl::CertificateList;
use x509_cert::Certificate;

use super::journey::Person;
use super::TestServer;

/// A CRL, parsed.
#[derive(Debug, Clone)]
pub struct CrlFacts {
    pub number: u64,
    pub this_update: i64,
    pub next_update: i64,
    /// Revoked serials, lower-case hex without leading zeros.
    pub serials: Vec<String>,
}

fn unix(time: &x509_cert::time::Time) -> i64 {
    time.to_system_time().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

pub fn crl_facts(der_bytes: &[u8]) -> CrlFacts {
    let crl = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(der_bytes).expect("a DER CRL");
    let tbs = &crl.tbs_cert_list;
    let number_ext = tbs
        .crl_extensions
        .as_ref()
        .and_then(|exts| exts.iter().find(|e| e.extn_id.to_string() == "2.5.29.20"))
        .expect("a CRL number");
    let number = x509_cert::ext::pkix::CrlNumber::from_der(number_ext.extn_value.as_bytes()).unwrap();
    let number = number.0.as_bytes().iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
    let serials = tbs
        .revoked_certificates
        .iter()
        .flatten()
        .map(|r| normal_serial(&hex::encode(r.serial_number.as_bytes())))
        .collect();
    CrlFacts {
        number,
        this_update: unix(&tbs.this_update),
        next_update: unix(tbs.next_update.as_ref().expect("nextUpdate")),
        serials,
    }
}

pub fn normal_serial(hex: &str) -> String {
    hex.to_lowercase().trim_start_matches('0').to_string()
}

/// The DER SubjectPublicKeyInfo of a base64 certificate (as CSC `credentials/info` returns it).
pub fn spki_of(cert_b64: &str) -> Vec<u8> {
    let cert = Certificate::from_der(&super::unb64(cert_b64)).unwrap();
    cert.tbs_certificate().subject_public_key_info().to_der().unwrap()
}

/// Runs openssl; (success, stdout and stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("openssl").args(args).output().expect("openssl is installed");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// A DER certificate as PEM.
pub fn pem(der: &[u8]) -> String {
    let b64 = super::b64(der);
    let lines: Vec<String> = b64.as_bytes().chunks(64).map(|c| String::from_utf8(c.to_vec()).unwrap()).collect();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
}

pub fn not_after(certificate_der: &[u8]) -> i64 {
    let cert = Certificate::from_der(certificate_der).unwrap();
    unix(&cert.tbs_certificate().validity().not_after)
}

/// The DER of the value of the extension `oid`, if the certificate has it.
pub fn extension_value(certificate_der: &[u8], oid: &str) -> Option<Vec<u8>> {
    let cert = Certificate::from_der(certificate_der).unwrap();
    let extensions = cert.tbs_certificate().extensions()?;
    extensions.iter().find(|e| e.extn_id.to_string() == oid).map(|e| e.extn_value.as_bytes().to_vec())
}

/// The DER encoding of an object identifier (tag, length, value), to look for inside an extension.
pub fn oid_der(oid: &str) -> Vec<u8> {
    der::asn1::ObjectIdentifier::new_unwrap(oid).to_der().unwrap()
}

/// `openssl x509 -noout -subject -nameopt multiline` of a certificate.
pub fn openssl_subject(dir: &std::path::Path, certificate_der: &[u8]) -> String {
    let path = dir.join(format!("subject-{}.der", hex::encode(rssp::domain::secrets::random_bytes::<4>())));
    std::fs::write(&path, certificate_der).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["x509", "-inform", "DER", "-noout", "-subject", "-nameopt", "multiline", "-in"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl x509: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The value of `attribute` in openssl's multiline subject.
pub fn subject_attribute(multiline: &str, attribute: &str) -> Option<String> {
    multiline.lines().find_map(|line| {
        let (name, value) = line.split_once('=')?;
        (name.trim() == attribute).then(|| value.trim().to_string())
    })
}

impl TestServer {
    /// Registers with a country, activates and logs in (no authenticator yet).
    pub async fn enrol_with_country(&self, email: &str, phone: &str, country: &str) -> Person {
        self.enrol_in(email, phone, Some(country)).await
    }

    /// GET a DER document.
    pub async fn get_der(&self, path: &str) -> Vec<u8> {
        let response = self.http.get(format!("{}{path}", self.url)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "GET {path}");
        response.bytes().await.unwrap().to_vec()
    }

    /// The stored certificate of a credential.
    pub fn credential_certificate(&self, credential_id: &str) -> Vec<u8> {
        let mut conn = self.services().db.get().unwrap();
        rssp::db::credentials::by_id(&mut conn, credential_id).unwrap().expect("credential").certificate
    }
}

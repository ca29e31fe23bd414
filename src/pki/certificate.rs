//! Certificates made with x509-cert's `CertificateBuilder` and signed by a CA key in the HSM, and the
//! serial numbers and times they carry.

use der::Encode;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::builder::CertificateBuilder;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use super::hsm_signer::HsmSigner;
use super::profile::CertificateProfile;
use super::PkiError;
use crate::domain::secrets;

/// Builds the certificate `profile` describes for `subject_key` and signs it with `signer` (the
/// issuer's key): a version 3 certificate, DER-encoded.
pub fn issue(
    signer: &HsmSigner<'_>,
    profile: CertificateProfile,
    serial_number: SerialNumber,
    validity: Validity,
    subject_key: SubjectPublicKeyInfoOwned,
) -> Result<Vec<u8>, PkiError> {
    let builder = CertificateBuilder::new(profile, serial_number, validity, subject_key)?;
    Ok(signer.build(builder)?.to_der()?)
}

/// A positive 128-bit serial number.
pub fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = secrets::random_bytes::<16>();
    bytes[0] = (bytes[0] & 0x7f) | 0x10;
    Ok(SerialNumber::new(&bytes)?)
}

pub fn time(unix_seconds: i64) -> Result<Time, PkiError> {
    let duration = std::time::Duration::from_secs(
        u64::try_from(unix_seconds).map_err(|_| PkiError::Invalid("time before 1970".into()))?,
    );
    // UTCTime until 2049, GeneralizedTime after, as RFC 5280 requires.
    Ok(Time::try_from(std::time::UNIX_EPOCH + duration)?)
}

/// A certificate time as Unix seconds (a time before 1970 is refused: rssp never makes one).
pub fn unix_seconds(time: &Time) -> Result<i64, PkiError> {
    let seconds = time
        .to_system_time()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| PkiError::Invalid("certificate time before 1970".into()))?
        .as_secs();
    i64::try_from(seconds).map_err(|_| PkiError::Invalid("certificate time out of range".into()))
}

pub fn validity(not_before: i64, not_after: i64) -> Result<Validity, PkiError> {
    Ok(Validity::new(time(not_before)?, time(not_after)?))
}

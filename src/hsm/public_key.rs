//! A key pair's public key as a DER SubjectPublicKeyInfo, from the attributes PKCS#11 gives for it,
//! assembled with the `pkcs1` and `spki` types.

use const_oid::db::rfc5912::{ID_EC_PUBLIC_KEY, SECP_256_R_1, SECP_384_R_1};
use der::asn1::{BitString, ObjectIdentifier, OctetStringRef, UintRef};
use der::referenced::RefToOwned;
use der::{Decode, Encode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use crate::domain::KeyKind;

/// The named curve of an EC key kind (RFC 5480 §2.1.1.1); None for RSA.
pub(super) fn curve(kind: KeyKind) -> Option<ObjectIdentifier> {
    match kind {
        KeyKind::EcP256 => Some(SECP_256_R_1),
        KeyKind::EcP384 => Some(SECP_384_R_1),
        KeyKind::Rsa2048 | KeyKind::Rsa3072 => None,
    }
}

/// An RSA key (`CKA_MODULUS`, `CKA_PUBLIC_EXPONENT`): rsaEncryption with NULL parameters over the
/// PKCS#1 RSAPublicKey (RFC 3279 §2.3.1).
pub(super) fn rsa_spki(modulus: &[u8], public_exponent: &[u8]) -> der::Result<Vec<u8>> {
    let key = pkcs1::RsaPublicKey { modulus: UintRef::new(modulus)?, public_exponent: UintRef::new(public_exponent)? };
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: pkcs1::ALGORITHM_ID.ref_to_owned(),
        subject_public_key: BitString::from_bytes(&key.to_der()?)?,
    };
    spki.to_der()
}

/// An EC key (`CKA_EC_POINT`): id-ecPublicKey with the named curve over the uncompressed point
/// (RFC 5480 §2). PKCS#11 wraps the point in a DER OCTET STRING; some HSMs return it bare.
pub(super) fn ec_spki(curve: ObjectIdentifier, ec_point: &[u8]) -> der::Result<Vec<u8>> {
    let point = match <&OctetStringRef>::from_der(ec_point) {
        Ok(inner) if inner.as_bytes().first() == Some(&0x04) => inner.as_bytes(),
        _ => ec_point,
    };
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned { oid: ID_EC_PUBLIC_KEY, parameters: Some(der::Any::encode_from(&curve)?) },
        subject_public_key: BitString::from_bytes(point)?,
    };
    spki.to_der()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ec_point_reads_the_same_wrapped_in_an_octet_string_or_bare() {
        let mut point = vec![0x04];
        point.extend([0x11; 64]);
        let wrapped = OctetStringRef::new(&point).unwrap().to_der().unwrap();
        let spki = ec_spki(SECP_256_R_1, &wrapped).unwrap();
        assert_eq!(spki, ec_spki(SECP_256_R_1, &point).unwrap());
        let parsed = SubjectPublicKeyInfoOwned::from_der(&spki).unwrap();
        assert_eq!(parsed.algorithm.oid, ID_EC_PUBLIC_KEY);
        assert_eq!(parsed.algorithm.parameters.unwrap().decode_as::<ObjectIdentifier>().unwrap(), SECP_256_R_1);
        assert_eq!(parsed.subject_public_key.raw_bytes(), &point[..]);
    }

    #[test]
    fn an_rsa_key_is_rsa_encryption_with_null_parameters_over_pkcs1() {
        // PKCS#11 gives big-endian integers, possibly with a leading zero; DER wants them minimal.
        let modulus = [0x00, 0xc3, 0x01, 0x02, 0x03];
        let spki = SubjectPublicKeyInfoOwned::from_der(&rsa_spki(&modulus, &[1, 0, 1]).unwrap()).unwrap();
        assert_eq!(spki.algorithm.oid, pkcs1::ALGORITHM_OID);
        assert_eq!(spki.algorithm.parameters, Some(der::asn1::Null.into()));
        let key = pkcs1::RsaPublicKeyRef::from_der(spki.subject_public_key.raw_bytes()).unwrap();
        assert_eq!(key.modulus.as_bytes(), &modulus[1..]);
        assert_eq!(key.public_exponent.as_bytes(), &[1, 0, 1]);
    }
}

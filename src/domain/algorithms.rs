//! Hash and signature algorithms as CSC names them (dotted OIDs), and the rules that tie a
//! signature request to what the key can do.

use der::{asn1::ObjectIdentifier, Decode, Sequence};
use spki::AlgorithmIdentifierOwned;

use super::KeyKind;

/// Dotted OID strings used on the wire.
pub mod oid {
    pub const SHA256: &str = "2.16.840.1.101.3.4.2.1";
    pub const SHA384: &str = "2.16.840.1.101.3.4.2.2";
    pub const SHA512: &str = "2.16.840.1.101.3.4.2.3";
    pub const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
    pub const RSASSA_PSS: &str = "1.2.840.113549.1.1.10";
    pub const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
    pub const SHA384_WITH_RSA: &str = "1.2.840.113549.1.1.12";
    pub const SHA512_WITH_RSA: &str = "1.2.840.113549.1.1.13";
    pub const MGF1: &str = "1.2.840.113549.1.1.8";
    pub const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
    pub const ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
    pub const ECDSA_SHA512: &str = "1.2.840.10045.4.3.4";
    pub const P256: &str = "1.2.840.10045.3.1.7";
    pub const P384: &str = "1.3.132.0.34";
}

/// The digest algorithms signHash accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlgorithm {
    pub(crate) fn from_oid(oid: &str) -> Option<HashAlgorithm> {
        match oid {
            oid::SHA256 => Some(HashAlgorithm::Sha256),
            oid::SHA384 => Some(HashAlgorithm::Sha384),
            oid::SHA512 => Some(HashAlgorithm::Sha512),
            _ => None,
        }
    }

    /// The algorithm's OID, dotted (CSC `hashAlgo`).
    pub fn oid(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => oid::SHA256,
            HashAlgorithm::Sha384 => oid::SHA384,
            HashAlgorithm::Sha512 => oid::SHA512,
        }
    }

    /// Length of its digest in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha384 => 48,
            HashAlgorithm::Sha512 => 64,
        }
    }

    /// The DER prefix of a PKCS#1 v1.5 `DigestInfo` (AlgorithmIdentifier with NULL parameters,
    /// then the OCTET STRING header); the digest follows it.
    pub fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            HashAlgorithm::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
                0x04, 0x20,
            ],
            HashAlgorithm::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00,
                0x04, 0x30,
            ],
            HashAlgorithm::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00,
                0x04, 0x40,
            ],
        }
    }

    /// Software hash, for data rssp signs itself (certificates, CRLs).
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let mut hasher = self.hasher();
        hasher.update(data);
        hasher.finish()
    }

    /// A digest to be made piece by piece.
    pub fn hasher(self) -> Hasher {
        use sha2::Digest;
        match self {
            HashAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlgorithm::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            HashAlgorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
}

/// A digest being made piece by piece. A clone goes on from where the original stands: a PDF's
/// /ByteRange digest goes on from the digest of the PDF as it was sent, so that a document of tens of
/// megabytes is read once, not twice.
#[derive(Clone)]
pub enum Hasher {
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-384.
    Sha384(sha2::Sha384),
    /// SHA-512.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// Reads `data` after what was read before.
    pub fn update(&mut self, data: &[u8]) {
        use sha2::Digest;
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest of all that was read.
    pub fn finish(self) -> Vec<u8> {
        use sha2::Digest;
        match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Hasher::Sha256(_) => "SHA-256",
            Hasher::Sha384(_) => "SHA-384",
            Hasher::Sha512(_) => "SHA-512",
        };
        write!(f, "Hasher({name})")
    }
}

/// How one digest is turned into a signature value by the HSM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureScheme {
    /// RSASSA-PKCS1-v1_5: the DigestInfo is built here, the HSM pads and signs it.
    RsaPkcs1(HashAlgorithm),
    /// RSASSA-PSS with MGF1 over the same hash.
    RsaPss {
        /// The digest algorithm, also that of MGF1.
        hash: HashAlgorithm,
        /// Salt length in bytes.
        salt_len: u32,
    },
    /// ECDSA over the digest; the value returned to clients is a DER `ECDSA-Sig-Value`.
    Ecdsa(HashAlgorithm),
}

impl SignatureScheme {
    /// The digest algorithm the scheme signs over.
    pub fn hash(self) -> HashAlgorithm {
        match self {
            SignatureScheme::RsaPkcs1(h) | SignatureScheme::Ecdsa(h) => h,
            SignatureScheme::RsaPss { hash, .. } => hash,
        }
    }

    /// A short fixed name (scheme and hash), for metrics and logs.
    pub fn name(self) -> &'static str {
        use HashAlgorithm::*;
        match self {
            SignatureScheme::RsaPkcs1(Sha256) => "rsa_pkcs1_sha256",
            SignatureScheme::RsaPkcs1(Sha384) => "rsa_pkcs1_sha384",
            SignatureScheme::RsaPkcs1(Sha512) => "rsa_pkcs1_sha512",
            SignatureScheme::RsaPss { hash: Sha256, .. } => "rsa_pss_sha256",
            SignatureScheme::RsaPss { hash: Sha384, .. } => "rsa_pss_sha384",
            SignatureScheme::RsaPss { hash: Sha512, .. } => "rsa_pss_sha512",
            SignatureScheme::Ecdsa(Sha256) => "ecdsa_sha256",
            SignatureScheme::Ecdsa(Sha384) => "ecdsa_sha384",
            SignatureScheme::Ecdsa(Sha512) => "ecdsa_sha512",
        }
    }
}

/// Why a signature request's algorithms were refused. Each names the request field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlgorithmError {
    #[error("unknown or unsupported signature algorithm")]
    InvalidSignAlgo,
    #[error("the hash algorithm is required with rsaEncryption")]
    MissingHashAlgo,
    #[error("unknown hash algorithm, or one that contradicts the signature algorithm")]
    InvalidHashAlgo,
    #[error("RSASSA-PSS needs signAlgoParams")]
    MissingSignAlgoParams,
    #[error("unsupported RSASSA-PSS parameters")]
    InvalidSignAlgoParams,
}

/// Resolves the request's `signAlgo`, hash algorithm and `signAlgoParams` for a key into the scheme
/// the HSM runs. A hash OID that the signature algorithm already implies must agree with it.
pub fn resolve_scheme(
    key: KeyKind,
    sign_algo: &str,
    hash_algo: Option<&str>,
    sign_algo_params: Option<&[u8]>,
) -> Result<SignatureScheme, AlgorithmError> {
    if !key.signature_algorithms().contains(&sign_algo) {
        return Err(AlgorithmError::InvalidSignAlgo);
    }
    let requested_hash = match hash_algo {
        Some(oid) => Some(HashAlgorithm::from_oid(oid).ok_or(AlgorithmError::InvalidHashAlgo)?),
        None => None,
    };
    let implied = |hash: HashAlgorithm| match requested_hash {
        Some(h) if h != hash => Err(AlgorithmError::InvalidHashAlgo),
        _ => Ok(hash),
    };
    let scheme = match sign_algo {
        oid::RSA_ENCRYPTION => SignatureScheme::RsaPkcs1(requested_hash.ok_or(AlgorithmError::MissingHashAlgo)?),
        oid::SHA256_WITH_RSA => SignatureScheme::RsaPkcs1(implied(HashAlgorithm::Sha256)?),
        oid::SHA384_WITH_RSA => SignatureScheme::RsaPkcs1(implied(HashAlgorithm::Sha384)?),
        oid::SHA512_WITH_RSA => SignatureScheme::RsaPkcs1(implied(HashAlgorithm::Sha512)?),
        oid::ECDSA_SHA256 => SignatureScheme::Ecdsa(implied(HashAlgorithm::Sha256)?),
        oid::ECDSA_SHA384 => SignatureScheme::Ecdsa(implied(HashAlgorithm::Sha384)?),
        oid::ECDSA_SHA512 => SignatureScheme::Ecdsa(implied(HashAlgorithm::Sha512)?),
        oid::RSASSA_PSS => {
            let params = parse_pss_params(sign_algo_params.ok_or(AlgorithmError::MissingSignAlgoParams)?, key.bits())?;
            implied(params.hash())?;
            params
        }
        _ => return Err(AlgorithmError::InvalidSignAlgo),
    };
    Ok(scheme)
}

/// RSASSA-PSS-params (RFC 8017 A.2.3). Absent fields take the DER defaults (SHA-1, MGF1-SHA1, salt 20),
/// which are refused as too weak.
#[derive(Sequence)]
struct RsaPssParams {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    hash: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    mask_gen: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    salt_len: Option<u32>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    trailer_field: Option<u32>,
}

/// The salt length RSASSA-PSS-params name when they leave it out (RFC 8017 A.2.3).
const DEFAULT_PSS_SALT_LEN: u32 = 20;

/// The DER RSASSA-PSS-params of MGF1 over `hash` with `salt_len` (what a SignerInfo or certificate names
/// with id-RSASSA-PSS). DER leaves out a field at its default: the trailer field always, the salt
/// length at 20 (rssp's hashes are never the SHA-1 defaults). The hash identifiers carry NULL, as RFC
/// 4055 §2.1's sha*Identifier values and OpenSSL write them.
pub fn pss_params_der(hash: HashAlgorithm, salt_len: u32) -> der::Result<Vec<u8>> {
    use der::Encode;
    let hash_id = AlgorithmIdentifierOwned {
        oid: ObjectIdentifier::new_unwrap(hash.oid()),
        parameters: Some(der::asn1::Null.into()),
    };
    let mgf = AlgorithmIdentifierOwned {
        oid: ObjectIdentifier::new_unwrap(oid::MGF1),
        parameters: Some(der::Any::encode_from(&hash_id)?),
    };
    let salt_len = (salt_len != DEFAULT_PSS_SALT_LEN).then_some(salt_len);
    RsaPssParams { hash: Some(hash_id), mask_gen: Some(mgf), salt_len, trailer_field: None }.to_der()
}

/// The longest salt RSASSA-PSS allows for a modulus of `modulus_bits` and a hash (RFC 8017 §9.1.1:
/// emLen ≥ hLen + sLen + 2, emLen = ⌈(modBits − 1)/8⌉). pyHanko asks for exactly this maximum.
pub fn max_pss_salt_len(modulus_bits: u32, hash: HashAlgorithm) -> usize {
    let em_len = (modulus_bits as usize - 1).div_ceil(8);
    em_len.saturating_sub(hash.digest_len() + 2)
}

fn parse_pss_params(der_bytes: &[u8], modulus_bits: u32) -> Result<SignatureScheme, AlgorithmError> {
    let params = RsaPssParams::from_der(der_bytes).map_err(|_| AlgorithmError::InvalidSignAlgoParams)?;
    let hash_of = |alg: &AlgorithmIdentifierOwned| HashAlgorithm::from_oid(&alg.oid.to_string());
    let hash = params.hash.as_ref().and_then(hash_of).ok_or(AlgorithmError::InvalidSignAlgoParams)?;
    let mgf = params.mask_gen.ok_or(AlgorithmError::InvalidSignAlgoParams)?;
    let mgf1 = ObjectIdentifier::new_unwrap(oid::MGF1);
    let mgf_hash = mgf
        .parameters
        .filter(|_| mgf.oid == mgf1)
        .and_then(|any| any.decode_as::<AlgorithmIdentifierOwned>().ok())
        .and_then(|alg| hash_of(&alg));
    if mgf_hash != Some(hash) {
        return Err(AlgorithmError::InvalidSignAlgoParams);
    }
    let salt_len = params.salt_len.unwrap_or(DEFAULT_PSS_SALT_LEN);
    if salt_len as usize > max_pss_salt_len(modulus_bits, hash) || params.trailer_field.unwrap_or(1) != 1 {
        return Err(AlgorithmError::InvalidSignAlgoParams);
    }
    Ok(SignatureScheme::RsaPss { hash, salt_len })
}

/// Encodes a raw ECDSA signature `r‖s` (as PKCS#11 returns it) as a DER `ECDSA-Sig-Value`.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    use der::{asn1::UintRef, Encode};
    #[derive(Sequence)]
    struct EcdsaSigValue<'a> {
        r: UintRef<'a>,
        s: UintRef<'a>,
    }
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let value = EcdsaSigValue { r: UintRef::new(r).ok()?, s: UintRef::new(s).ok()? };
    value.to_der().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pss_params(hash: &str, mgf_hash: &str, salt: u32) -> Vec<u8> {
        use der::{asn1::AnyRef, Encode};
        let alg = |o: &str| AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap(o),
            parameters: Some(AnyRef::NULL.into()),
        };
        let mgf = AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap(oid::MGF1),
            parameters: Some(der::Any::encode_from(&alg(mgf_hash)).unwrap()),
        };
        RsaPssParams { hash: Some(alg(hash)), mask_gen: Some(mgf), salt_len: Some(salt), trailer_field: None }
            .to_der()
            .unwrap()
    }

    /// What rssp writes for a PSS signature of its own reads back as the same scheme; it is the encoding
    /// openssl writes (checked against `openssl genpkey`'s output: SHA-256, MGF1-SHA-256, salt 32); and
    /// the default salt length 20 is left out, as DER requires.
    #[test]
    fn pss_params_written_read_back_as_the_same_scheme() {
        for (hash, salt_len) in [
            (HashAlgorithm::Sha256, 32),
            (HashAlgorithm::Sha384, 48),
            (HashAlgorithm::Sha512, 0),
            (HashAlgorithm::Sha256, 20),
        ] {
            let written = pss_params_der(hash, salt_len).unwrap();
            assert_eq!(parse_pss_params(&written, 2048), Ok(SignatureScheme::RsaPss { hash, salt_len }));
        }
        let sha256_salt_32 = "3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120";
        assert_eq!(hex::encode(pss_params_der(HashAlgorithm::Sha256, 32).unwrap()), sha256_salt_32);
        let salt_20 = pss_params_der(HashAlgorithm::Sha256, 20).unwrap();
        assert_eq!(hex::encode(&salt_20), sha256_salt_32[..sha256_salt_32.len() - 10].replacen("3034", "302f", 1));
    }

    #[test]
    fn implied_hashes_must_agree() {
        assert_eq!(
            resolve_scheme(KeyKind::Rsa2048, oid::SHA256_WITH_RSA, Some(oid::SHA256), None),
            Ok(SignatureScheme::RsaPkcs1(HashAlgorithm::Sha256))
        );
        assert_eq!(
            resolve_scheme(KeyKind::Rsa2048, oid::SHA256_WITH_RSA, Some(oid::SHA512), None),
            Err(AlgorithmError::InvalidHashAlgo)
        );
        assert_eq!(
            resolve_scheme(KeyKind::Rsa2048, oid::RSA_ENCRYPTION, None, None),
            Err(AlgorithmError::MissingHashAlgo)
        );
        assert_eq!(
            resolve_scheme(KeyKind::EcP256, oid::SHA256_WITH_RSA, None, None),
            Err(AlgorithmError::InvalidSignAlgo)
        );
        assert_eq!(resolve_scheme(KeyKind::Rsa2048, "1.2.3", None, None), Err(AlgorithmError::InvalidSignAlgo));
    }

    #[test]
    fn pss_parameters_are_parsed_and_weak_ones_refused() {
        let good = pss_params(oid::SHA256, oid::SHA256, 32);
        assert_eq!(
            resolve_scheme(KeyKind::Rsa2048, oid::RSASSA_PSS, None, Some(&good)),
            Ok(SignatureScheme::RsaPss { hash: HashAlgorithm::Sha256, salt_len: 32 })
        );
        let mismatched = pss_params(oid::SHA256, oid::SHA512, 32);
        assert_eq!(
            resolve_scheme(KeyKind::Rsa2048, oid::RSASSA_PSS, None, Some(&mismatched)),
            Err(AlgorithmError::InvalidSignAlgoParams)
        );
        // An empty SEQUENCE means SHA-1 defaults.
        assert_eq!(
            resolve_scheme(KeyKind::Rsa2048, oid::RSASSA_PSS, None, Some(&[0x30, 0x00])),
            Err(AlgorithmError::InvalidSignAlgoParams)
        );
        assert_eq!(
            resolve_scheme(KeyKind::Rsa2048, oid::RSASSA_PSS, None, None),
            Err(AlgorithmError::MissingSignAlgoParams)
        );
    }

    #[test]
    fn every_pss_salt_length_rfc_8017_allows_is_accepted() {
        // RSA-2048 with SHA-256: emLen 256, at most 256 - 32 - 2 = 222 (what pyHanko's prefer_pss sends).
        assert_eq!(max_pss_salt_len(2048, HashAlgorithm::Sha256), 222);
        assert_eq!(max_pss_salt_len(3072, HashAlgorithm::Sha512), 384 - 64 - 2);
        for (key, hash, hash_oid) in [
            (KeyKind::Rsa2048, HashAlgorithm::Sha256, oid::SHA256),
            (KeyKind::Rsa3072, HashAlgorithm::Sha384, oid::SHA384),
        ] {
            let max = max_pss_salt_len(key.bits(), hash) as u32;
            for salt in [0, 20, hash.digest_len() as u32, max] {
                let params = pss_params(hash_oid, hash_oid, salt);
                assert_eq!(
                    resolve_scheme(key, oid::RSASSA_PSS, None, Some(&params)),
                    Ok(SignatureScheme::RsaPss { hash, salt_len: salt })
                );
            }
            let too_long = pss_params(hash_oid, hash_oid, max + 1);
            assert_eq!(
                resolve_scheme(key, oid::RSASSA_PSS, None, Some(&too_long)),
                Err(AlgorithmError::InvalidSignAlgoParams)
            );
        }
    }

    #[test]
    fn ecdsa_values_become_der() {
        let mut raw = vec![0u8; 64];
        raw[0] = 0x80; // high bit set: DER needs a leading zero
        raw[63] = 1;
        let der = ecdsa_raw_to_der(&raw).unwrap();
        assert_eq!(der[0], 0x30);
        assert_eq!(&der[2..5], &[0x02, 0x21, 0x00]);
    }
}

#[cfg(test)]
mod proptests;

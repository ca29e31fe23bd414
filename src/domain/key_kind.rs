//! The kinds of signing key rssp generates, and what each can do.

use std::fmt;
use std::str::FromStr;

use super::algorithms::oid;

/// The kind of key pair generated for a credential (or a CA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// RSA, 2048 bits.
    Rsa2048,
    /// RSA, 3072 bits.
    Rsa3072,
    /// ECDSA on NIST P-256.
    EcP256,
    /// ECDSA on NIST P-384.
    EcP384,
}

impl KeyKind {
    /// Every kind, in this order.
    pub const ALL: [KeyKind; 4] = [KeyKind::Rsa2048, KeyKind::Rsa3072, KeyKind::EcP256, KeyKind::EcP384];

    /// The name used on the command line and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Rsa2048 => "rsa-2048",
            KeyKind::Rsa3072 => "rsa-3072",
            KeyKind::EcP256 => "ec-p256",
            KeyKind::EcP384 => "ec-p384",
        }
    }

    /// RSA (as opposed to EC).
    pub fn is_rsa(self) -> bool {
        matches!(self, KeyKind::Rsa2048 | KeyKind::Rsa3072)
    }

    /// Key length in bits, as CSC `key.len` reports it.
    pub fn bits(self) -> u32 {
        match self {
            KeyKind::Rsa2048 => 2048,
            KeyKind::Rsa3072 => 3072,
            KeyKind::EcP256 => 256,
            KeyKind::EcP384 => 384,
        }
    }

    /// The named curve's OID, for EC keys (CSC `key.curve`).
    pub fn curve_oid(self) -> Option<&'static str> {
        match self {
            KeyKind::EcP256 => Some(oid::P256),
            KeyKind::EcP384 => Some(oid::P384),
            _ => None,
        }
    }

    /// The signature algorithm a document is signed with when the signer does not choose one (the
    /// portal's signing sessions): PKCS#1 v1.5 with SHA-256 for RSA, which every validator reads, and
    /// ECDSA with the hash of the curve's strength.
    pub fn document_signature_algorithm(self) -> &'static str {
        match self {
            KeyKind::Rsa2048 | KeyKind::Rsa3072 => oid::SHA256_WITH_RSA,
            KeyKind::EcP256 => oid::ECDSA_SHA256,
            KeyKind::EcP384 => oid::ECDSA_SHA384,
        }
    }

    /// Every signature algorithm OID this key can be used with (CSC `key.algo`).
    pub fn signature_algorithms(self) -> &'static [&'static str] {
        if self.is_rsa() {
            &[oid::RSA_ENCRYPTION, oid::SHA256_WITH_RSA, oid::SHA384_WITH_RSA, oid::SHA512_WITH_RSA, oid::RSASSA_PSS]
        } else {
            &[oid::ECDSA_SHA256, oid::ECDSA_SHA384, oid::ECDSA_SHA512]
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown key kind {0:?}: use rsa-2048, rsa-3072, ec-p256 or ec-p384")]
pub struct UnknownKeyKind(pub String);

impl FromStr for KeyKind {
    type Err = UnknownKeyKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| UnknownKeyKind(s.to_string()))
    }
}

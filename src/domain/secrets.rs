//! Random secrets handed to clients (tokens, SADs, TOTP seeds) and the digests stored in their place.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A fresh bearer secret: 256 random bits, base64url without padding.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database keeps of a token: its SHA-256, hex. Tokens carry 256 bits of entropy, so an
/// unsalted fast hash is enough, and it lets the lookup be an index lookup.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A TOTP seed: 160 random bits (the RFC 4226 recommendation; pyotp refuses under 112), as bytes.
pub fn new_totp_seed() -> Vec<u8> {
    let mut bytes = vec![0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

pub fn base32(bytes: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(bytes)
}

pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    data_encoding::BASE32_NOPAD.decode(text.trim_end_matches('=').as_bytes()).ok()
}

/// Random bytes, for ids and serial numbers.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

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

/// Base32 without padding (RFC 4648), as authenticator apps take TOTP seeds.
pub fn base32(bytes: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(bytes)
}

/// Decodes [`base32`], with or without padding; None when the text is not base32.
pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    data_encoding::BASE32_NOPAD.decode(text.trim_end_matches('=').as_bytes()).ok()
}

/// Random bytes, for ids and serial numbers.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// Checks a webhook signature header `sha256=<hex HMAC-SHA256(secret, body)>`, in constant time.
pub fn verify_webhook_signature(secret: &str, body: &[u8], header: &str) -> bool {
    use hmac::{Hmac, KeyInit, Mac};
    let Some(given) = header.trim().strip_prefix("sha256=").and_then(|h| hex::decode(h).ok()) else {
        return false;
    };
    // HMAC accepts keys of any length.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// The header value a webhook sender puts on `body` (used by tests, examples and the dev tooling).
pub fn webhook_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    // HMAC accepts keys of any length, so this cannot fail.
    #[allow(clippy::expect_used)]
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A six-digit code's stored form: bound to the row id, so equal codes give different digests.
pub fn code_digest(id: &str, code: &str) -> String {
    hex::encode(Sha256::digest(format!("{id}:{code}").as_bytes()))
}

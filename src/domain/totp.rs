//! TOTP (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps) and the rule that a code is accepted once:
//! the accepted time step must be strictly later than the last one accepted.

use hmac::{Hmac, KeyInit, Mac};
use subtle::ConstantTimeEq;

/// Length of a time step in seconds (RFC 6238 `X`).
pub const STEP_SECONDS: i64 = 30;
pub(crate) const DIGITS: u32 = 6;
/// Steps either side of now that are still accepted, for clock drift between phone and server.
const DRIFT_STEPS: i64 = 1;

/// The result of checking a code against a factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpCheck {
    /// The code matched this time step, which is later than any accepted before.
    Accepted {
        /// The step to record as the last accepted.
        step: i64,
    },
    /// The code matched, but its step was already used (or is older than one that was).
    Replayed,
    /// The code matches no step in the window.
    Wrong,
}

/// How a TOTP seed is kept in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedSeal {
    /// In clear: only rows written before sealing existed; the server seals them at start.
    Clear,
    /// Sealed in the HSM: AES-256-GCM under the non-extractable seal key, 96-bit random IV stored
    /// first, the user id bound as additional authenticated data.
    HsmAesGcmV1,
}

impl SeedSeal {
    /// The name stored in the database's `secret_seal` column.
    pub fn as_str(self) -> &'static str {
        match self {
            SeedSeal::Clear => "clear",
            SeedSeal::HsmAesGcmV1 => "hsm-aes-gcm-v1",
        }
    }

    /// The seal named by a `secret_seal` column; None for a name rssp does not know.
    pub fn parse(text: &str) -> Option<SeedSeal> {
        [SeedSeal::Clear, SeedSeal::HsmAesGcmV1].into_iter().find(|s| s.as_str() == text)
    }

    /// The additional authenticated data of a sealed seed: it belongs to this user and no other, so
    /// a sealed seed copied into another user's row does not open.
    pub fn aad(user_id: &str) -> Vec<u8> {
        let mut aad = b"rssp/totp-seed/v1/".to_vec();
        aad.extend_from_slice(user_id.as_bytes());
        aad
    }
}

/// The code for one time step.
pub fn code_at_step(secret: &[u8], step: i64) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    #[allow(clippy::expect_used)]
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[digest.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes([digest[offset] & 0x7f, digest[offset + 1], digest[offset + 2], digest[offset + 3]]);
    format!("{:0width$}", bin % 10u32.pow(DIGITS), width = DIGITS as usize)
}

/// The time step that `unix_seconds` falls in.
pub fn step_of(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP_SECONDS)
}

/// Checks `code` at `unix_seconds` against the secret, given the last accepted step.
pub fn check(secret: &[u8], code: &str, unix_seconds: i64, last_accepted_step: Option<i64>) -> TotpCheck {
    let now = step_of(unix_seconds);
    let mut matched = None;
    // Look at every step in the window, so the time taken does not tell which one matched.
    for step in (now - DRIFT_STEPS)..=(now + DRIFT_STEPS) {
        let expected = code_at_step(secret, step);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            matched = Some(step);
        }
    }
    match matched {
        None => TotpCheck::Wrong,
        Some(step) if last_accepted_step.is_some_and(|last| step <= last) => TotpCheck::Replayed,
        Some(step) => TotpCheck::Accepted { step },
    }
}

/// The `otpauth://` URI an authenticator app reads (usually from a QR code).
pub fn otpauth_uri(issuer: &str, account: &str, secret_base32: &str) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={}&period={}",
        enc(issuer),
        enc(account),
        secret_base32,
        enc(issuer),
        DIGITS,
        STEP_SECONDS
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_vectors() {
        // RFC 6238 appendix B, SHA-1 secret "12345678901234567890", last 6 of the 8 digits.
        let secret = b"12345678901234567890";
        assert_eq!(code_at_step(secret, step_of(59)), "287082");
        assert_eq!(code_at_step(secret, step_of(1111111109)), "081804");
        assert_eq!(code_at_step(secret, step_of(2000000000)), "279037");
    }

    #[test]
    fn a_code_is_accepted_once() {
        let secret = b"12345678901234567890";
        let now = 1_700_000_000;
        let code = code_at_step(secret, step_of(now));
        let TotpCheck::Accepted { step } = check(secret, &code, now, None) else { panic!("not accepted") };
        assert_eq!(check(secret, &code, now, Some(step)), TotpCheck::Replayed);
        assert_eq!(check(secret, "000000", now, Some(step)), TotpCheck::Wrong);
        let next = code_at_step(secret, step + 1);
        assert_eq!(check(secret, &next, now + 30, Some(step)), TotpCheck::Accepted { step: step + 1 });
    }
}

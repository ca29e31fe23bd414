//! The SAD policy: how many signatures an authorisation may cover, and which hashes (SCAL2).

/// A client's request to authorise a credential, checked against the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureActivationRequest {
    /// How many signatures the SAD is to authorise (CSC `numSignatures`).
    pub num_signatures: i32,
    /// The digests the SAD is bound to (SCAL2). Never empty.
    pub hashes: Vec<Vec<u8>>,
}

/// Why a SAD request is refused; the message is the refusal shown to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SadPolicyError {
    /// `numSignatures` is below 1 or above the credential's `multisign`.
    #[error("numSignatures must be between 1 and the credential's multisign")]
    NumSignaturesOutOfRange,
    /// A SCAL2 credential was asked for a SAD without the hashes it will sign.
    #[error("SCAL2 needs the hashes to be signed")]
    MissingHashes,
    /// More hashes than `numSignatures` allows.
    #[error("more hashes than numSignatures")]
    TooManyHashes,
    /// A hash whose length is no supported digest's (SHA-256, -384, -512).
    #[error("a hash has the wrong length for any supported digest")]
    BadHashLength,
}

/// Digest lengths a hash may have (SHA-256, SHA-384, SHA-512).
pub fn plausible_digest_len(len: usize) -> bool {
    matches!(len, 32 | 48 | 64)
}

impl SignatureActivationRequest {
    /// SCAL2 rules: 1 ≤ numSignatures ≤ multisign, and at least one and at most numSignatures hashes,
    /// each the length of a supported digest. Each hash signs once, so with fewer hashes than
    /// numSignatures the rest of the budget signs nothing (new hashes need a new code).
    pub fn new(num_signatures: i32, hashes: Vec<Vec<u8>>, multisign: i32) -> Result<Self, SadPolicyError> {
        if num_signatures < 1 || num_signatures > multisign {
            return Err(SadPolicyError::NumSignaturesOutOfRange);
        }
        if hashes.is_empty() {
            return Err(SadPolicyError::MissingHashes);
        }
        if hashes.len() > num_signatures as usize {
            return Err(SadPolicyError::TooManyHashes);
        }
        if !hashes.iter().all(|h| plausible_digest_len(h.len())) {
            return Err(SadPolicyError::BadHashLength);
        }
        Ok(SignatureActivationRequest { num_signatures, hashes })
    }
}

/// The stored form of a SAD's bound hashes: hex digests separated by commas.
pub fn encode_hashes(hashes: &[Vec<u8>]) -> String {
    hashes.iter().map(hex::encode).collect::<Vec<_>>().join(",")
}

pub(crate) fn decode_hashes(stored: &str) -> Vec<Vec<u8>> {
    stored.split(',').filter(|s| !s.is_empty()).filter_map(|h| hex::decode(h).ok()).collect()
}

/// The authorised hash occurrences left after spending one for each requested hash, or `None` when
/// the request is not covered. Coverage is a multiset: a hash authorised once signs once, so
/// `[H, H]` needs `H` authorised twice.
pub fn take(authorised: &[Vec<u8>], requested: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    let mut remaining = authorised.to_vec();
    for hash in requested {
        let at = remaining.iter().position(|h| h == hash)?;
        remaining.remove(at);
    }
    Some(remaining)
}

/// True when every requested hash occurrence is among the authorised ones (a sub-multiset).
pub fn covers(authorised: &[Vec<u8>], requested: &[Vec<u8>]) -> bool {
    take(authorised, requested).is_some()
}

/// When a renewed SAD expires: a fresh lifetime, but never past the end of the chain that the
/// one-time code started.
pub fn renewed_expiry(now: i64, lifetime: i64, chain_expires_at: i64) -> i64 {
    (now + lifetime).min(chain_expires_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        let h = vec![vec![1u8; 32]];
        assert!(SignatureActivationRequest::new(1, h.clone(), 1).is_ok());
        assert_eq!(SignatureActivationRequest::new(0, h.clone(), 5), Err(SadPolicyError::NumSignaturesOutOfRange));
        assert_eq!(SignatureActivationRequest::new(6, h.clone(), 5), Err(SadPolicyError::NumSignaturesOutOfRange));
        assert_eq!(SignatureActivationRequest::new(1, vec![], 5), Err(SadPolicyError::MissingHashes));
        assert_eq!(SignatureActivationRequest::new(1, vec![vec![1; 32]; 2], 5), Err(SadPolicyError::TooManyHashes));
        assert_eq!(SignatureActivationRequest::new(1, vec![vec![1; 20]], 5), Err(SadPolicyError::BadHashLength));
        let stored = encode_hashes(&[vec![1; 32], vec![2; 32]]);
        let back = decode_hashes(&stored);
        assert!(covers(&back, &[vec![2; 32]]));
        assert!(!covers(&back, &[vec![3; 32]]));
    }

    #[test]
    fn each_authorised_occurrence_is_spent_once() {
        let h = vec![7u8; 32];
        let g = vec![8u8; 32];
        let one = std::slice::from_ref(&h);
        assert_eq!(take(one, one), Some(vec![]));
        assert_eq!(take(one, &[h.clone(), h.clone()]), None);
        assert_eq!(take(&[h.clone(), h.clone(), g.clone()], &[h.clone(), h.clone()]), Some(vec![g.clone()]));
        assert_eq!(take(&[h.clone(), g.clone()], std::slice::from_ref(&g)), Some(vec![h.clone()]));
        assert_eq!(renewed_expiry(100, 300, 1000), 400);
        assert_eq!(renewed_expiry(900, 300, 1000), 1000);
    }
}

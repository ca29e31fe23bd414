//! Certificate lifetime rules: the rekey window, rekey notices, and the quota of a credential.

/// When a credential may be rekeyed: from issuance until `closes_hours` before it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RekeyWindow {
    pub closes_at: i64,
}

impl RekeyWindow {
    pub fn for_expiry(not_after: i64, closes_hours: i64) -> RekeyWindow {
        RekeyWindow { closes_at: not_after - closes_hours * 3600 }
    }

    pub fn is_open(&self, now: i64) -> bool {
        now < self.closes_at
    }
}

/// Which notice (days before expiry) is due now for a certificate, if any: the smallest configured
/// number of days that has been reached. Earlier notices that were missed are not sent late.
pub fn due_notice(not_after: i64, now: i64, notice_days: &[i64]) -> Option<i64> {
    if now >= not_after {
        return None;
    }
    notice_days.iter().copied().filter(|days| now >= not_after - days * 86_400).min()
}

/// What remains of a quota (None: no limit).
pub fn remaining(total: Option<i32>, used: i32) -> Option<i32> {
    total.map(|t| (t - used).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_and_window() {
        let day = 86_400;
        let expiry = 1_000 * day;
        assert_eq!(due_notice(expiry, expiry - 50 * day, &[45, 15]), None);
        assert_eq!(due_notice(expiry, expiry - 45 * day, &[45, 15]), Some(45));
        assert_eq!(due_notice(expiry, expiry - 10 * day, &[45, 15]), Some(15));
        assert_eq!(due_notice(expiry, expiry, &[45, 15]), None);
        let window = RekeyWindow::for_expiry(expiry, 72);
        assert!(window.is_open(expiry - 73 * 3600));
        assert!(!window.is_open(expiry - 72 * 3600));
        assert_eq!(remaining(Some(200), 150), Some(50));
        assert_eq!(remaining(None, 5), None);
    }
}

//! Account recovery rules: an authenticator reset soon after a password recovery or a phone change
//! needs a new identity verification, because whoever holds the mailbox and the SIM can do both.

/// Where an authenticator reset stands. Stored as text in `authenticator_resets.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetStatus {
    /// Outside the cooling-off period: the new authenticator works as soon as it is paired.
    NotRequired,
    /// Within the cooling-off period: the new authenticator may not authorise signatures until the
    /// identity check of this reset is accepted.
    PendingIdentity,
    /// The identity check was accepted.
    Verified,
    /// The identity check was rejected: signing stays blocked; a new reset needs a new check.
    Rejected,
    /// The person cancelled the reset through the link in its notice: the authenticator paired since
    /// is removed, none is restored, and signing stays blocked until a new reset is verified.
    Cancelled,
}

impl ResetStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ResetStatus::NotRequired => "not_required",
            ResetStatus::PendingIdentity => "pending_identity",
            ResetStatus::Verified => "verified",
            ResetStatus::Rejected => "rejected",
            ResetStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<ResetStatus> {
        [
            ResetStatus::NotRequired,
            ResetStatus::PendingIdentity,
            ResetStatus::Verified,
            ResetStatus::Rejected,
            ResetStatus::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// True while the reset keeps the account's authenticator from authorising signatures.
    pub fn blocks_signing(self) -> bool {
        matches!(self, ResetStatus::PendingIdentity | ResetStatus::Rejected | ResetStatus::Cancelled)
    }

    /// True while the person can still cancel it.
    pub fn cancellable(self) -> bool {
        !matches!(self, ResetStatus::Cancelled)
    }
}

/// The status a reset starts in: `PendingIdentity` when the last recovery (password recovery, phone
/// change, cancelled reset) was less than `cooling_off_secs` ago, or when the previous reset still
/// blocks signing (waiting out the period must not lift a block that only an identity check lifts).
pub fn initial_status(
    recovered_at: Option<i64>,
    previous: Option<ResetStatus>,
    now: i64,
    cooling_off_secs: i64,
) -> ResetStatus {
    if previous.is_some_and(ResetStatus::blocks_signing) {
        return ResetStatus::PendingIdentity;
    }
    match recovered_at {
        Some(at) if now.saturating_sub(at) < cooling_off_secs => ResetStatus::PendingIdentity,
        _ => ResetStatus::NotRequired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_within_the_cooling_off_period_needs_identity() {
        let week = 7 * 24 * 3600;
        let t = 1_000_000;
        assert_eq!(initial_status(None, None, t, week), ResetStatus::NotRequired);
        assert_eq!(initial_status(Some(t), None, t, week), ResetStatus::PendingIdentity);
        assert_eq!(initial_status(Some(t), None, t + week - 1, week), ResetStatus::PendingIdentity);
        assert_eq!(initial_status(Some(t), None, t + week, week), ResetStatus::NotRequired);
        assert_eq!(initial_status(Some(t), Some(ResetStatus::Verified), t + week, week), ResetStatus::NotRequired);
        for blocking in [ResetStatus::PendingIdentity, ResetStatus::Rejected, ResetStatus::Cancelled] {
            assert_eq!(initial_status(None, Some(blocking), t + 10 * week, week), ResetStatus::PendingIdentity);
        }
    }

    #[test]
    fn statuses_round_trip() {
        for s in ["not_required", "pending_identity", "verified", "rejected", "cancelled"] {
            assert_eq!(ResetStatus::parse(s).map(ResetStatus::as_str), Some(s));
        }
        assert_eq!(ResetStatus::parse("accepted"), None);
        assert!(ResetStatus::PendingIdentity.blocks_signing());
        assert!(ResetStatus::Rejected.blocks_signing());
        assert!(ResetStatus::Cancelled.blocks_signing());
        assert!(!ResetStatus::Verified.blocks_signing());
    }
}

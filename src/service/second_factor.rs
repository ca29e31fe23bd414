//! The person's second factor: the TOTP code (and a credential's PIN), with replay protection and
//! lock-out. Used by `credentials/authorize` and by every lifecycle step that asks for a code.

use crate::db::{self, users, DbConnection};
use crate::domain::totp::{self, TotpCheck};

use super::auth::verify_password;
use super::{totp_seal, ServiceError, Services};

/// Checks the lock, the PIN (`(stored hash, given)`) and the TOTP code. Wrong factors count toward the
/// lock-out; the counters are written whatever the outcome, so the caller must commit. The inner error
/// is the refusal.
pub(super) fn check(
    services: &Services,
    conn: &mut DbConnection,
    user_id: &str,
    otp: &str,
    pin: Option<(&str, &str)>,
    now: i64,
) -> Result<Result<(), ServiceError>, ServiceError> {
    let security = &services.config.security;
    // Lock the factor's row first, so concurrent guesses are counted one after the other.
    users::lock_totp(conn, user_id)?;
    let Some(factor) = users::totp(conn, user_id)? else {
        return Ok(Err(ServiceError::Forbidden("No authenticator is paired with this account".into())));
    };
    if let Some(until) = factor.locked_until.filter(|until| *until > now) {
        return Ok(Err(ServiceError::OtpLocked { until }));
    }
    let fail = |conn: &mut DbConnection, refusal: ServiceError| -> Result<Result<(), ServiceError>, ServiceError> {
        let lock_until = now + security.otp_lockout_secs;
        let failures = users::record_totp_failure(conn, user_id, security.otp_max_failures, lock_until)?;
        if failures >= security.otp_max_failures {
            return Ok(Err(ServiceError::OtpLocked { until: lock_until }));
        }
        Ok(Err(refusal))
    };
    if let Some((stored, given)) = pin {
        if !verify_password(given, stored) {
            return fail(conn, ServiceError::InvalidPin);
        }
    }
    // The seed is opened here and only here, and zeroed when the check is done.
    let seed = match totp_seal::open(&services.keystore, user_id, &factor.secret, &factor.secret_seal)? {
        Ok(seed) => seed,
        Err(refusal) => return Ok(Err(refusal)),
    };
    match totp::check(&seed, otp, now, factor.last_step) {
        TotpCheck::Wrong => fail(conn, ServiceError::InvalidOtp),
        // A code that was right but is used up is not a guess: refused, not counted toward the lock.
        TotpCheck::Replayed => Ok(Err(ServiceError::OtpReplayed)),
        TotpCheck::Accepted { step } => {
            // Conditional on the step moving forward: of two requests racing with one code, one wins.
            if users::accept_totp_step(conn, user_id, step)? {
                Ok(Ok(()))
            } else {
                Ok(Err(ServiceError::OtpReplayed))
            }
        }
    }
}

/// Checks a TOTP code in a transaction of its own, committing the counters; a refusal is the error.
/// A lifecycle step calls this before its own work: an accepted code is used up either way.
pub(super) fn verify_otp(
    services: &Services,
    conn: &mut DbConnection,
    user_id: &str,
    otp: &str,
) -> Result<(), ServiceError> {
    let now = services.now();
    db::write_transaction(conn, |c| check(services, c, user_id, otp, None, now))?
}

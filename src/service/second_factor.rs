//! The person's second factor: the TOTP code (and a credential's PIN), with replay protection and
//! lock-out. Used by `credentials/authorize` and by every lifecycle step that asks for a code.

use crate::db::{self, authenticators, DbConnection};
use crate::domain::totp::{self, TotpCheck};

use super::auth::verify_password;
use super::totp_seal::{self, OpenedSeed};
use super::{Committed, ServiceError, Services};

/// What the slow part of a factor check found, before any transaction is open: the seed opened in the
/// HSM and the PIN checked with Argon2. On SQLite a write transaction locks the whole database, so
/// neither may wait inside one.
pub(super) struct PreparedFactors {
    factor: Option<OpenedFactor>,
    pin_ok: bool,
}

/// The sealed seed as read, and what it opened to.
struct OpenedFactor {
    sealed: Vec<u8>,
    seed: OpenedSeed,
}

/// Opens the seed and checks the PIN (`(stored hash, given)`), outside any transaction.
pub(super) fn prepare(
    services: &Services,
    conn: &mut DbConnection,
    user_id: &str,
    pin: Option<(&str, &str)>,
) -> Result<PreparedFactors, ServiceError> {
    let factor = authenticators::factor(conn, user_id)?;
    prepare_factor(services, user_id, factor, pin)
}

/// [`prepare`] with the factor already read (`authenticators::factor`), None when none is paired.
pub(super) fn prepare_factor(
    services: &Services,
    user_id: &str,
    factor: Option<authenticators::TotpFactor>,
    pin: Option<(&str, &str)>,
) -> Result<PreparedFactors, ServiceError> {
    let factor = match factor {
        Some(factor) => {
            let seed = totp_seal::open(&services.keystore, user_id, &factor.secret, &factor.secret_seal)?;
            Some(OpenedFactor { sealed: factor.secret, seed })
        }
        None => None,
    };
    let pin_ok = pin.is_none_or(|(stored, given)| verify_password(given, stored));
    Ok(PreparedFactors { factor, pin_ok })
}

/// Checks the lock, the PIN and the TOTP code found by [`prepare`]. Wrong factors count toward the
/// lock-out; the counters are written whatever the outcome, so the caller must commit (see [`Committed`]).
/// A refusal is `Committed::Refused`; `Err` is the database's only.
pub(super) fn check(
    services: &Services,
    conn: &mut DbConnection,
    user_id: &str,
    otp: &str,
    prepared: PreparedFactors,
    now: i64,
) -> Result<Committed<()>, diesel::result::Error> {
    let security = &services.config.security;
    // Lock the factor's row as it is read, so concurrent guesses are counted one after the other.
    let (Some(factor), Some(OpenedFactor { sealed, seed })) =
        (authenticators::lock_factor(conn, user_id)?, prepared.factor)
    else {
        return Ok(Committed::Refused(ServiceError::Forbidden("No authenticator is paired with this account".into())));
    };
    // The authenticator was replaced between reading and locking: check nothing against the old one.
    if factor.secret != sealed {
        return Ok(Committed::Refused(ServiceError::Conflict("The authenticator changed meanwhile; try again".into())));
    }
    if let Some(until) = factor.locked_until.filter(|until| *until > now) {
        return Ok(Committed::Refused(ServiceError::OtpLocked { until }));
    }
    let fail = |conn: &mut DbConnection, refusal: ServiceError| -> Result<Committed<()>, diesel::result::Error> {
        let lock_until = now + security.otp_lockout_secs;
        let failures = authenticators::record_totp_failure(conn, user_id, security.otp_max_failures, lock_until)?;
        if failures >= security.otp_max_failures {
            return Ok(Committed::Refused(ServiceError::OtpLocked { until: lock_until }));
        }
        Ok(Committed::Refused(refusal))
    };
    if !prepared.pin_ok {
        return fail(conn, ServiceError::InvalidPin);
    }
    // The seed was opened (in the HSM) before the transaction, and is zeroed when the check is done.
    let seed = match seed.usable() {
        Ok(seed) => seed,
        Err(refusal) => return Ok(Committed::Refused(refusal)),
    };
    match totp::check(&seed, otp, now, factor.last_step) {
        TotpCheck::Wrong => fail(conn, ServiceError::InvalidOtp),
        // A code that was right but is used up is not a guess: refused, not counted toward the lock.
        TotpCheck::Replayed => Ok(Committed::Refused(ServiceError::OtpReplayed)),
        TotpCheck::Accepted { step } => {
            // Conditional on the step moving forward: of two requests racing with one code, one wins.
            if authenticators::accept_totp_step(conn, user_id, step)? {
                Ok(Committed::Done(()))
            } else {
                Ok(Committed::Refused(ServiceError::OtpReplayed))
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
    let prepared = prepare(services, conn, user_id, None)?;
    let checked: Committed<()> = db::write_transaction(conn, |c| check(services, c, user_id, otp, prepared, now))?;
    checked.into_result()
}

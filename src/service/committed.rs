//! The outcome of a transaction that must commit even when it refuses.

use super::ServiceError;

/// What a transaction returns when its refusal must not roll it back: a wrong TOTP code, PIN or
/// one-time code is counted (tries, lock-out) in the same transaction that checks it, and that count
/// has to survive the refusal, or guessing would cost nothing. So the transaction returns `Ok` with
/// `Refused` inside, commits, and only then is the refusal turned into the error
/// ([`Committed::into_result`]). An `Err` of the transaction itself is a failure and rolls back.
#[must_use]
#[derive(Debug)]
pub(crate) enum Committed<T> {
    /// The step was done; commit it.
    Done(T),
    /// The step was refused; commit the counters, then return this error.
    Refused(ServiceError),
}

impl<T> Committed<T> {
    /// After the commit: the value, or the refusal as the error.
    pub(crate) fn into_result(self) -> Result<T, ServiceError> {
        match self {
            Committed::Done(value) => Ok(value),
            Committed::Refused(refusal) => Err(refusal),
        }
    }
}

//! TOTP seeds at rest: sealed in the HSM with a non-extractable AES key, so that a reader of the
//! database (a backup, a replica, a stolen disk) holds no seed it can turn into codes. A seed is opened
//! only inside the code check and lives in memory (zeroed on drop) only while the code is checked.

use zeroize::Zeroizing;

use crate::db::{self, authenticators, DbConnection};
use crate::domain::totp::SeedSeal;
use crate::hsm::{HsmError, KeyStore};

use super::{ServiceError, StartError};

/// A seed ready for its row: the sealed bytes and how they are sealed.
pub(super) struct SealedSeed {
    pub secret: Vec<u8>,
    pub seal: String,
}

/// Seals a fresh seed for `user_id`'s row.
pub(super) fn seal(keystore: &KeyStore, user_id: &str, seed: &[u8]) -> Result<SealedSeed, ServiceError> {
    let secret = keystore.seal(&SeedSeal::aad(user_id), seed)?;
    Ok(SealedSeed { secret, seal: SeedSeal::HsmAesGcmV1.as_str().to_string() })
}

/// A stored seed after [`open`]. An unusable one is a refusal, not a failure: the caller decides when
/// to refuse (a code check first counts a wrong PIN).
pub(super) enum OpenedSeed {
    Usable(Zeroizing<Vec<u8>>),
    /// Never used: it does not open (altered, or copied from another user's row), or it was left in clear.
    Unusable,
}

impl OpenedSeed {
    /// The seed, or the refusal that sends the person to reset the authenticator.
    pub(super) fn usable(self) -> Result<Zeroizing<Vec<u8>>, ServiceError> {
        match self {
            OpenedSeed::Usable(seed) => Ok(seed),
            OpenedSeed::Unusable => Err(ServiceError::Forbidden(
                "The authenticator of this account cannot be used; reset the authenticator".into(),
            )),
        }
    }
}

/// Opens the seed stored in `user_id`'s row. The error is a failure (of the HSM); a seed that must not
/// be used is [`OpenedSeed::Unusable`].
pub(super) fn open(keystore: &KeyStore, user_id: &str, secret: &[u8], seal: &str) -> Result<OpenedSeed, ServiceError> {
    let unusable = || Ok(OpenedSeed::Unusable);
    match SeedSeal::parse(seal) {
        Some(SeedSeal::HsmAesGcmV1) => match keystore.unseal(&SeedSeal::aad(user_id), secret) {
            Ok(seed) => Ok(OpenedSeed::Usable(seed)),
            Err(HsmError::SealBroken) => {
                // Only a writer of the database can cause this: say so loudly (no secret in the line).
                tracing::error!(user_id, "a sealed TOTP seed does not open: altered or moved between rows");
                unusable()
            }
            Err(e) => Err(e.into()),
        },
        // Start seals every clear row, so one here was written behind this server's back.
        Some(SeedSeal::Clear) | None => {
            tracing::error!(user_id, seal, "a TOTP seed is not sealed; refused");
            unusable()
        }
    }
}

/// Seals every seed still stored in clear (rows from before sealing existed), once, at start. SQL
/// cannot call the HSM, so this is the migration's second half. Returns how many rows were sealed.
pub fn seal_clear_seeds(conn: &mut DbConnection, keystore: &KeyStore) -> Result<usize, StartError> {
    let clear = SeedSeal::Clear.as_str();
    let sealed_as = SeedSeal::HsmAesGcmV1.as_str();
    let factors = authenticators::totp_secrets_stored_as(conn, clear).map_err(db::DbError::from)?;
    let pairings = authenticators::pairing_secrets_stored_as(conn, clear).map_err(db::DbError::from)?;
    if factors.is_empty() && pairings.is_empty() {
        return Ok(0);
    }
    // Only the first start after the upgrade converts: once any seed is sealed, a clear one can only
    // have been written behind this server's back (a database writer planting a seed it knows), and
    // sealing it would make it a working factor. Such rows stay refused.
    let already_sealed = !authenticators::totp_secrets_stored_as(conn, SeedSeal::HsmAesGcmV1.as_str())
        .map_err(db::DbError::from)?
        .is_empty();
    if already_sealed {
        tracing::error!(
            factors = factors.len(),
            pairings = pairings.len(),
            "TOTP seeds stored in clear next to sealed ones: not sealed, refused (written behind rssp's back?)"
        );
        return Ok(0);
    }
    if let DbConnection::Sqlite(c) = conn {
        // Zero the freed space the clear seeds leave behind, on this connection.
        use diesel::connection::SimpleConnection;
        c.batch_execute("PRAGMA secure_delete = ON").map_err(db::DbError::from)?;
    }
    let mut count = 0;
    for (user_id, seed) in factors {
        let seed = Zeroizing::new(seed);
        let sealed = keystore.seal(&SeedSeal::aad(&user_id), &seed)?;
        // Conditional on the row still being clear: another node may have sealed it meanwhile.
        if authenticators::reseal_totp_secret(conn, &user_id, clear, &sealed, sealed_as).map_err(db::DbError::from)? {
            count += 1;
        }
    }
    for (user_id, seed) in pairings {
        let seed = Zeroizing::new(seed);
        let sealed = keystore.seal(&SeedSeal::aad(&user_id), &seed)?;
        if authenticators::reseal_pairing_secret(conn, &user_id, clear, &sealed, sealed_as)
            .map_err(db::DbError::from)?
        {
            count += 1;
        }
    }
    if let DbConnection::Sqlite(c) = conn {
        // Move the new pages into the database file and empty the WAL, so no old page copy stays in it.
        use diesel::connection::SimpleConnection;
        c.batch_execute("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA secure_delete = OFF").map_err(db::DbError::from)?;
    }
    tracing::info!(count, "sealed TOTP seeds that were stored in clear");
    Ok(count)
}

//! TOTP authenticators: the paired factor of a person (seed, last accepted step, lock-out) and a pairing
//! in progress. Seeds are stored sealed (see `service::totp_seal`).

use diesel::prelude::*;

use super::credentials::CredentialRow;
use super::schema::{access_tokens, credentials, totp_factors, totp_pairings};
use super::tokens::TokenRow;
use super::DbConnection;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = totp_factors)]
pub struct TotpFactor {
    pub user_id: String,
    pub secret: Vec<u8>,
    pub last_step: Option<i64>,
    pub failures: i32,
    pub locked_until: Option<i64>,
    /// How `secret` is stored: a `domain::totp::SeedSeal`, as text.
    pub secret_seal: String,
}

/// A bearer token's row, its user's credential (if found) and that user's TOTP factor (if paired).
pub(crate) type TokenCredentialFactor = (TokenRow, Option<CredentialRow>, Option<TotpFactor>);

/// The bearer token with this digest and, for the token's user, the credential with this id and the
/// user's TOTP factor: what `credentials/authorize` reads, in one statement. None when no token has this
/// digest; the factor is None when the credential is unknown or the user has none.
pub(crate) fn token_credential_with_factor(
    conn: &mut DbConnection,
    token_digest: &str,
    credential_id: &str,
) -> QueryResult<Option<TokenCredentialFactor>> {
    access_tokens::table
        .left_join(
            credentials::table
                .on(credentials::id.eq(credential_id.to_owned()).and(credentials::user_id.eq(access_tokens::user_id))),
        )
        .left_join(totp_factors::table.on(totp_factors::user_id.eq(credentials::user_id)))
        .filter(access_tokens::digest.eq(token_digest))
        .select((TokenRow::as_select(), Option::<CredentialRow>::as_select(), Option::<TotpFactor>::as_select()))
        .first(conn)
        .optional()
}

pub fn insert_totp(conn: &mut DbConnection, factor: &TotpFactor) -> QueryResult<()> {
    diesel::insert_into(totp_factors::table).values(factor).execute(conn).map(|_| ())
}

pub fn factor(conn: &mut DbConnection, user_id: &str) -> QueryResult<Option<TotpFactor>> {
    totp_factors::table.find(user_id).select(TotpFactor::as_select()).first(conn).optional()
}

/// The factor, its row locked for the rest of the transaction, so that concurrent checks of one
/// person's codes run one after the other: `SELECT … FOR NO KEY UPDATE` on PostgreSQL; on SQLite the write
/// transaction already excludes other writers.
pub fn lock_factor(conn: &mut DbConnection, user_id: &str) -> QueryResult<Option<TotpFactor>> {
    let factor = totp_factors::table.find(user_id);
    match conn {
        DbConnection::Pg(pg) => factor.select(TotpFactor::as_select()).for_no_key_update().first(pg).optional(),
        DbConnection::Sqlite(sqlite) => factor.select(TotpFactor::as_select()).first(sqlite).optional(),
    }
}

/// Records an accepted code. The update only happens when the step moves forward, so two requests
/// racing with the same code cannot both win: exactly one row changes for the winner.
/// Written out as a fixed statement (see `db::prepared`): it runs on every authorisation.
pub fn accept_totp_step(conn: &mut DbConnection, user_id: &str, step: i64) -> QueryResult<bool> {
    struct AcceptTotpStep;
    use super::prepared::Part::*;
    let parts = vec![
        Sql("UPDATE totp_factors SET last_step = "),
        Long(step),
        Sql(", failures = 0, locked_until = NULL WHERE user_id = "),
        Text(user_id),
        Sql(" AND (last_step IS NULL OR last_step < "),
        Long(step),
        Sql(")"),
    ];
    Ok(super::prepared::execute::<AcceptTotpStep>(conn, parts)? == 1)
}

/// Counts a wrong code; at `max_failures` the factor locks until `lock_until`. Returns the failures so far.
pub fn record_totp_failure(
    conn: &mut DbConnection,
    user_id: &str,
    max_failures: i32,
    lock_until: i64,
) -> QueryResult<i32> {
    diesel::update(totp_factors::table.find(user_id))
        .set(totp_factors::failures.eq(totp_factors::failures + 1))
        .execute(conn)?;
    let failures: i32 = totp_factors::table.find(user_id).select(totp_factors::failures).first(conn)?;
    if failures >= max_failures {
        diesel::update(totp_factors::table.find(user_id))
            .set((totp_factors::locked_until.eq(Some(lock_until)), totp_factors::failures.eq(0)))
            .execute(conn)?;
    }
    Ok(failures)
}

/// Factors whose seed is still stored as `seal` (the clear rows left from before sealing).
pub fn totp_secrets_stored_as(conn: &mut DbConnection, seal: &str) -> QueryResult<Vec<(String, Vec<u8>)>> {
    totp_factors::table
        .filter(totp_factors::secret_seal.eq(seal))
        .select((totp_factors::user_id, totp_factors::secret))
        .load(conn)
}

/// Replaces a factor's seed stored as `from` by its sealed form; false when the row changed meanwhile.
pub fn reseal_totp_secret(
    conn: &mut DbConnection,
    user_id: &str,
    from: &str,
    secret: &[u8],
    seal: &str,
) -> QueryResult<bool> {
    diesel::update(
        totp_factors::table.filter(totp_factors::user_id.eq(user_id)).filter(totp_factors::secret_seal.eq(from)),
    )
    .set((totp_factors::secret.eq(secret), totp_factors::secret_seal.eq(seal)))
    .execute(conn)
    .map(|n| n == 1)
}

/// True when any stored TOTP seed (paired or in a pairing) is sealed in the HSM.
pub fn any_totp_sealed(conn: &mut DbConnection) -> QueryResult<bool> {
    let sealed = crate::domain::totp::SeedSeal::HsmAesGcmV1.as_str();
    let factors: i64 = totp_factors::table.filter(totp_factors::secret_seal.eq(sealed)).count().get_result(conn)?;
    let pairings: i64 = totp_pairings::table.filter(totp_pairings::secret_seal.eq(sealed)).count().get_result(conn)?;
    Ok(factors + pairings > 0)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = totp_pairings)]
pub struct Pairing {
    pub user_id: String,
    pub secret: Vec<u8>,
    pub created_at: i64,
    /// How `secret` is stored: a `domain::totp::SeedSeal`, as text.
    pub secret_seal: String,
}

/// Starts a pairing, replacing one that was never confirmed.
pub fn start_pairing(conn: &mut DbConnection, pairing: &Pairing) -> QueryResult<()> {
    diesel::delete(totp_pairings::table.find(&pairing.user_id)).execute(conn)?;
    diesel::insert_into(totp_pairings::table).values(pairing).execute(conn).map(|_| ())
}

pub fn pairing(conn: &mut DbConnection, user_id: &str) -> QueryResult<Option<Pairing>> {
    totp_pairings::table.find(user_id).select(Pairing::as_select()).first(conn).optional()
}

pub fn end_pairing(conn: &mut DbConnection, user_id: &str) -> QueryResult<()> {
    diesel::delete(totp_pairings::table.find(user_id)).execute(conn).map(|_| ())
}

/// Removes the authenticator: its codes stop working at once.
pub fn remove_totp(conn: &mut DbConnection, user_id: &str) -> QueryResult<()> {
    diesel::delete(totp_factors::table.find(user_id)).execute(conn).map(|_| ())
}

pub fn has_totp(conn: &mut DbConnection, user_id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(totp_factors::table.find(user_id))).get_result(conn)
}

/// Pairings whose seed is still stored as `seal` (the clear rows left from before sealing).
pub fn pairing_secrets_stored_as(conn: &mut DbConnection, seal: &str) -> QueryResult<Vec<(String, Vec<u8>)>> {
    totp_pairings::table
        .filter(totp_pairings::secret_seal.eq(seal))
        .select((totp_pairings::user_id, totp_pairings::secret))
        .load(conn)
}

/// Replaces a pairing's seed stored as `from` by its sealed form; false when the row changed meanwhile.
pub fn reseal_pairing_secret(
    conn: &mut DbConnection,
    user_id: &str,
    from: &str,
    secret: &[u8],
    seal: &str,
) -> QueryResult<bool> {
    diesel::update(
        totp_pairings::table.filter(totp_pairings::user_id.eq(user_id)).filter(totp_pairings::secret_seal.eq(from)),
    )
    .set((totp_pairings::secret.eq(secret), totp_pairings::secret_seal.eq(seal)))
    .execute(conn)
    .map(|n| n == 1)
}

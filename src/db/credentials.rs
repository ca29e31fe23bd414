//! Credentials: a key in the HSM and its certificate, per user.

use diesel::prelude::*;

use super::schema::{credentials, rekey_notices};
use super::DbConnection;
use crate::domain::{CredentialStatus, RevocationReason};

/// A credential (`credentials`): a key pair in the HSM and its certificate.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = credentials)]
pub struct CredentialRow {
    /// The CSC `credentialID`.
    pub id: String,
    /// The owner.
    pub user_id: String,
    /// A [`crate::domain::KeyKind`] name (`rsa-2048`, `ec-p256`, ...).
    pub key_kind: String,
    /// The key pair's `CKA_ID` in the HSM, hex.
    pub key_id: String,
    /// The certificate, DER.
    pub certificate: Vec<u8>,
    /// The certificate's serial number, hex.
    pub serial_hex: String,
    /// The certificate's notAfter, Unix seconds.
    pub not_after: i64,
    pub(crate) pin_hash: Option<String>,
    /// Most signatures one SAD may cover (CSC `multisign`).
    pub multisign: i32,
    /// Whether the key may be used (CSC `key.status`); revocation is `revoked_at`.
    pub status: CredentialStatus,
    pub(crate) revoked_at: Option<i64>,
    pub(crate) created_at: i64,
    /// Signatures the credential may still make in all: the package's transactions (None: no limit).
    pub quota_total: Option<i32>,
    /// Signatures made so far (those a failure refunded excepted).
    pub quota_used: i32,
    /// The order it was issued for (None: provisioned by an operator).
    pub order_id: Option<String>,
    /// The credential that a rekey issued in its place.
    pub replaced_by: Option<String>,
    pub(crate) revocation_reason: Option<String>,
    /// The CRL reason of the revocation (None: unspecified).
    pub revocation_code: Option<RevocationReason>,
}

/// Stores a new credential.
pub fn insert(conn: &mut DbConnection, row: &CredentialRow) -> QueryResult<()> {
    diesel::insert_into(credentials::table).values(row).execute(conn).map(|_| ())
}

/// The credential, only if it belongs to `user_id`: a foreign credential looks exactly like a missing one.
pub fn owned_by(conn: &mut DbConnection, user_id: &str, credential_id: &str) -> QueryResult<Option<CredentialRow>> {
    credentials::table
        .filter(credentials::id.eq(credential_id))
        .filter(credentials::user_id.eq(user_id))
        .select(CredentialRow::as_select())
        .first(conn)
        .optional()
}

/// A page of the user's credential ids, in a stable order, starting after `after`.
pub fn ids_of_user(
    conn: &mut DbConnection,
    user_id: &str,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<String>> {
    let mut query = credentials::table.filter(credentials::user_id.eq(user_id)).select(credentials::id).into_boxed();
    if let Some(after) = after {
        query = query.filter(credentials::id.gt(after.to_string()));
    }
    query.order(credentials::id.asc()).limit(limit).load(conn)
}

/// The user's credentials in the same order as `ids_of_user`, at most `limit`.
pub fn of_user(conn: &mut DbConnection, user_id: &str, limit: i64) -> QueryResult<Vec<CredentialRow>> {
    credentials::table
        .filter(credentials::user_id.eq(user_id))
        .order(credentials::id.asc())
        .limit(limit)
        .select(CredentialRow::as_select())
        .load(conn)
}

/// A revoked certificate as a CRL lists it.
#[derive(Debug, Clone, Queryable)]
pub struct RevokedCertificate {
    /// Serial number, hex.
    pub serial_hex: String,
    /// Unix seconds.
    pub at: i64,
    /// The CRL reason (None: unspecified).
    pub code: Option<RevocationReason>,
}

pub(crate) fn revoked(conn: &mut DbConnection) -> QueryResult<Vec<RevokedCertificate>> {
    credentials::table
        .filter(credentials::revoked_at.is_not_null())
        .select((credentials::serial_hex, credentials::revoked_at.assume_not_null(), credentials::revocation_code))
        .load(conn)
}

/// The revocation of the certificate with serial `serial_hex` (lowercase hex): None when no credential
/// has it, Some((None, _)) when it is not revoked, Some((Some(time), reason)) when it is.
pub fn revocation_by_serial(
    conn: &mut DbConnection,
    serial_hex: &str,
) -> QueryResult<Option<(Option<i64>, Option<RevocationReason>)>> {
    credentials::table
        .filter(credentials::serial_hex.eq(serial_hex))
        .select((credentials::revoked_at, credentials::revocation_code))
        .first(conn)
        .optional()
}

/// How many certificates were issued and how many of them are revoked: both only grow, so a change
/// of either says that some certificate's status may have changed.
pub fn status_generation(conn: &mut DbConnection) -> QueryResult<(i64, i64)> {
    use diesel::dsl::{count, count_star};
    credentials::table.select((count_star(), count(credentials::revoked_at))).first(conn)
}

/// How many certificates are revoked (they never come back, so the count only grows).
pub fn revoked_count(conn: &mut DbConnection) -> QueryResult<i64> {
    credentials::table.filter(credentials::revoked_at.is_not_null()).count().get_result(conn)
}

/// The credential with this id, if any (whoever owns it).
pub fn by_id(conn: &mut DbConnection, id: &str) -> QueryResult<Option<CredentialRow>> {
    credentials::table.find(id).select(CredentialRow::as_select()).first(conn).optional()
}

/// Spends `count` of the credential's transactions only if it can sign at `now` (enabled, not revoked,
/// certificate not expired) and has them left: one conditional statement, so a revocation or another
/// spend committed in between is never overtaken. False (and nothing spent) otherwise.
/// Written out as a fixed statement (see `db::prepared`): it runs on every signature.
pub fn spend_quota_if_usable(conn: &mut DbConnection, id: &str, count: i32, now: i64) -> QueryResult<bool> {
    struct SpendQuotaIfUsable;
    use super::prepared::Part::*;
    let parts = vec![
        Sql("UPDATE credentials SET quota_used = quota_used + "),
        Int(count),
        Sql(" WHERE id = "),
        Text(id),
        Sql(" AND status = "),
        Text(CredentialStatus::Enabled.as_str()),
        Sql(" AND revoked_at IS NULL AND not_after > "),
        Long(now),
        Sql(" AND (quota_total IS NULL OR quota_used + "),
        Int(count),
        Sql(" <= quota_total)"),
    ];
    Ok(super::prepared::execute::<SpendQuotaIfUsable>(conn, parts)? == 1)
}

/// Gives back quota spent for signatures the HSM did not make.
pub fn refund_quota(conn: &mut DbConnection, id: &str, count: i32) -> QueryResult<()> {
    diesel::update(credentials::table.find(id).filter(credentials::quota_used.ge(count)))
        .set(credentials::quota_used.eq(credentials::quota_used - count))
        .execute(conn)
        .map(|_| ())
}

/// Revokes the credential; false when it was already revoked.
pub fn revoke(
    conn: &mut DbConnection,
    id: &str,
    reason: &str,
    code: Option<RevocationReason>,
    now: i64,
) -> QueryResult<bool> {
    let changed = diesel::update(credentials::table.find(id).filter(credentials::revoked_at.is_null()))
        .set((
            credentials::revoked_at.eq(Some(now)),
            credentials::revocation_reason.eq(Some(reason)),
            credentials::revocation_code.eq(code),
        ))
        .execute(conn)?;
    Ok(changed == 1)
}

/// Links the credential to its successor; false when it already has one (a concurrent rekey won).
pub fn set_replaced_by(conn: &mut DbConnection, id: &str, new_id: &str) -> QueryResult<bool> {
    let changed = diesel::update(credentials::table.find(id).filter(credentials::replaced_by.is_null()))
        .set(credentials::replaced_by.eq(Some(new_id)))
        .execute(conn)?;
    Ok(changed == 1)
}

/// Valid credentials (not revoked, not replaced) that expire between `from` and `until`.
pub fn expiring_between(conn: &mut DbConnection, from: i64, until: i64) -> QueryResult<Vec<CredentialRow>> {
    credentials::table
        .filter(credentials::revoked_at.is_null())
        .filter(credentials::replaced_by.is_null())
        .filter(credentials::not_after.gt(from))
        .filter(credentials::not_after.le(until))
        .select(CredentialRow::as_select())
        .load(conn)
}

/// Records a rekey notice; false when it was sent before.
pub fn first_rekey_notice(
    conn: &mut DbConnection,
    credential_id: &str,
    days_before: i32,
    now: i64,
) -> QueryResult<bool> {
    let sent: bool = diesel::select(diesel::dsl::exists(rekey_notices::table.find((credential_id, days_before))))
        .get_result(conn)?;
    if sent {
        return Ok(false);
    }
    diesel::insert_into(rekey_notices::table)
        .values((
            rekey_notices::credential_id.eq(credential_id),
            rekey_notices::days_before.eq(days_before),
            rekey_notices::sent_at.eq(now),
        ))
        .execute(conn)?;
    Ok(true)
}

//! The log of every time-stamp issued, and the credential a person's time-stamp is charged to.

use diesel::prelude::*;

use super::schema::{credentials, timestamps};
use super::DbConnection;
use crate::domain::{CredentialStatus, TimeStampRequester};

/// One time-stamp issued (`timestamps`).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = timestamps)]
pub struct NewTimeStamp<'a> {
    /// The sequence number of the token's audit record.
    pub seq: i64,
    /// TSTInfo serialNumber, lowercase hex.
    pub serial: &'a str,
    /// genTime, Unix seconds.
    pub gen_time: i64,
    /// The policy OID, dotted.
    pub policy: &'a str,
    /// The message imprint's hash algorithm, dotted OID.
    pub hash_algorithm: &'a str,
    /// The hashed message, lowercase hex.
    pub imprint: &'a str,
    /// Who asked.
    pub requester: TimeStampRequester,
    /// The operator's name or the person's id.
    pub requester_id: Option<&'a str>,
    /// The credential whose transaction it spent (a person's time-stamp).
    pub credential_id: Option<&'a str>,
}

/// A logged time-stamp, as an auditor reads it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = timestamps)]
pub struct TimeStampRow {
    /// Position in the log.
    pub seq: i64,
    /// TSTInfo serialNumber, lowercase hex.
    pub serial: String,
    /// genTime, Unix seconds.
    pub gen_time: i64,
    /// The policy OID, dotted.
    pub policy: String,
    /// The message imprint's hash algorithm, dotted OID.
    pub hash_algorithm: String,
    /// The hashed message, lowercase hex.
    pub imprint: String,
    /// Who asked.
    pub requester: TimeStampRequester,
    /// The operator's name or the person's id.
    pub requester_id: Option<String>,
    /// The credential whose transaction it spent.
    pub credential_id: Option<String>,
}

/// Records a time-stamp. A serial that is already logged fails (the primary key), so a token whose
/// serial repeats one is never handed out.
pub fn log(conn: &mut DbConnection, row: &NewTimeStamp<'_>) -> QueryResult<()> {
    diesel::insert_into(timestamps::table).values(row).execute(conn).map(|_| ())
}

/// Removes the log entry of a token that was never handed out (the HSM failed to sign it).
pub fn unlog(conn: &mut DbConnection, seq: i64) -> QueryResult<()> {
    diesel::delete(timestamps::table.find(seq)).execute(conn).map(|_| ())
}

/// Logged time-stamps oldest first, after sequence number `after`.
pub fn page(conn: &mut DbConnection, after: i64, limit: i64) -> QueryResult<Vec<TimeStampRow>> {
    timestamps::table
        .filter(timestamps::seq.gt(after))
        .order(timestamps::seq.asc())
        .limit(limit)
        .select(TimeStampRow::as_select())
        .load(conn)
}

/// The credential a person's time-stamp is counted against: of theirs that can sign now (enabled, not
/// revoked, certificate valid) and have a transaction left, the one whose certificate expires first
/// (the id breaks a tie). None when no credential qualifies.
pub fn credential_to_charge(conn: &mut DbConnection, user_id: &str, now: i64) -> QueryResult<Option<String>> {
    credentials::table
        .filter(credentials::user_id.eq(user_id))
        .filter(credentials::status.eq(CredentialStatus::Enabled))
        .filter(credentials::revoked_at.is_null())
        .filter(credentials::not_after.gt(now))
        .filter(
            credentials::quota_total
                .is_null()
                .or(credentials::quota_used.lt(credentials::quota_total.assume_not_null())),
        )
        .order((credentials::not_after.asc(), credentials::id.asc()))
        .select(credentials::id)
        .first(conn)
        .optional()
}

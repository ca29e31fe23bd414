use diesel::prelude::*;

use super::schema::credentials;
use super::DbConnection;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = credentials)]
pub struct CredentialRow {
    pub id: String,
    pub user_id: String,
    pub key_kind: String,
    pub key_id: String,
    pub certificate: Vec<u8>,
    pub serial_hex: String,
    pub not_after: i64,
    pub pin_hash: Option<String>,
    pub multisign: i32,
    pub status: String,
    pub revoked_at: Option<i64>,
    pub created_at: i64,
}

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

pub fn revoked(conn: &mut DbConnection) -> QueryResult<Vec<(String, i64)>> {
    credentials::table
        .filter(credentials::revoked_at.is_not_null())
        .select((credentials::serial_hex, credentials::revoked_at.assume_not_null()))
        .load(conn)
}

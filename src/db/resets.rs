//! Authenticator resets and the identity checks they need within the cooling-off period.

use diesel::prelude::*;

use super::schema::{authenticator_resets, users};
use super::DbConnection;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = authenticator_resets)]
pub struct ResetRow {
    pub id: String,
    pub user_id: String,
    pub status: String,
    pub reasons: Option<String>,
    pub decided_by: Option<String>,
    pub created_at: i64,
    pub decided_at: Option<i64>,
}

pub fn insert(conn: &mut DbConnection, row: &ResetRow) -> QueryResult<()> {
    diesel::insert_into(authenticator_resets::table).values(row).execute(conn).map(|_| ())
}

pub fn by_id(conn: &mut DbConnection, id: &str) -> QueryResult<Option<ResetRow>> {
    authenticator_resets::table.find(id).select(ResetRow::as_select()).first(conn).optional()
}

/// The user's newest reset: it decides whether the current authenticator may authorise signatures.
pub fn latest_of_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<Option<ResetRow>> {
    authenticator_resets::table
        .filter(authenticator_resets::user_id.eq(user_id))
        .order((authenticator_resets::created_at.desc(), authenticator_resets::id.desc()))
        .select(ResetRow::as_select())
        .first(conn)
        .optional()
}

/// Resets oldest first, optionally only those in one status.
pub fn list(conn: &mut DbConnection, status: Option<&str>, limit: i64) -> QueryResult<Vec<ResetRow>> {
    let mut query = authenticator_resets::table.select(ResetRow::as_select()).into_boxed();
    if let Some(status) = status {
        query = query.filter(authenticator_resets::status.eq(status.to_string()));
    }
    query.order((authenticator_resets::created_at.asc(), authenticator_resets::id.asc())).limit(limit).load(conn)
}

/// Moves a reset from `from` to `to`; false when it was no longer in `from` (someone got there first).
pub fn transition(
    conn: &mut DbConnection,
    id: &str,
    from: &str,
    to: &str,
    reasons: Option<&str>,
    decided_by: &str,
    now: i64,
) -> QueryResult<bool> {
    let changed = diesel::update(authenticator_resets::table.find(id).filter(authenticator_resets::status.eq(from)))
        .set((
            authenticator_resets::status.eq(to),
            authenticator_resets::reasons.eq(reasons),
            authenticator_resets::decided_by.eq(Some(decided_by)),
            authenticator_resets::decided_at.eq(Some(now)),
        ))
        .execute(conn)?;
    Ok(changed == 1)
}

/// Records a password recovery, phone change or cancelled reset: the cooling-off period starts now.
pub fn set_recovered_at(conn: &mut DbConnection, user_id: &str, now: i64) -> QueryResult<()> {
    diesel::update(users::table.find(user_id)).set(users::recovered_at.eq(Some(now))).execute(conn).map(|_| ())
}

pub fn recovered_at(conn: &mut DbConnection, user_id: &str) -> QueryResult<Option<i64>> {
    users::table.find(user_id).select(users::recovered_at).first(conn).optional().map(Option::flatten)
}

pub fn list_of_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<ResetRow>> {
    authenticator_resets::table
        .filter(authenticator_resets::user_id.eq(user_id))
        .order((authenticator_resets::created_at.asc(), authenticator_resets::id.asc()))
        .select(ResetRow::as_select())
        .load(conn)
}

//! One-time links and codes. Only digests are stored; using one is a conditional update, so a link
//! or code works once even when two requests race.

use diesel::prelude::*;

use super::schema::verifications;
use super::DbConnection;
use crate::domain::VerificationPurpose;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = verifications)]
pub struct Verification {
    pub id: String,
    pub user_id: String,
    pub purpose: VerificationPurpose,
    pub target: String,
    pub secret_digest: String,
    pub parent_id: Option<String>,
    pub payload: Option<String>,
    pub attempts: i32,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

pub fn insert(conn: &mut DbConnection, row: &Verification) -> QueryResult<()> {
    diesel::insert_into(verifications::table).values(row).execute(conn).map(|_| ())
}

pub fn by_digest(
    conn: &mut DbConnection,
    purpose: VerificationPurpose,
    digest: &str,
) -> QueryResult<Option<Verification>> {
    verifications::table
        .filter(verifications::secret_digest.eq(digest))
        .filter(verifications::purpose.eq(purpose))
        .select(Verification::as_select())
        .first(conn)
        .optional()
}

/// The newest verification of this purpose for the user (and under this parent, when given).
pub fn latest(
    conn: &mut DbConnection,
    user_id: &str,
    purpose: VerificationPurpose,
    parent_id: Option<&str>,
) -> QueryResult<Option<Verification>> {
    let mut query = verifications::table
        .filter(verifications::user_id.eq(user_id))
        .filter(verifications::purpose.eq(purpose))
        .select(Verification::as_select())
        .into_boxed();
    if let Some(parent) = parent_id {
        query = query.filter(verifications::parent_id.eq(parent.to_string()));
    }
    query.order((verifications::created_at.desc(), verifications::id.desc())).first(conn).optional()
}

/// How many codes or links went to this address since `since`.
pub fn sent_to_since(conn: &mut DbConnection, target: &str, since: i64) -> QueryResult<i64> {
    verifications::table
        .filter(verifications::target.eq(target))
        .filter(verifications::created_at.ge(since))
        .count()
        .get_result(conn)
}

/// Marks it used; false when it was already used (someone else got there first).
pub fn mark_used(conn: &mut DbConnection, id: &str, now: i64) -> QueryResult<bool> {
    let changed = diesel::update(verifications::table.find(id).filter(verifications::used_at.is_null()))
        .set(verifications::used_at.eq(Some(now)))
        .execute(conn)?;
    Ok(changed == 1)
}

/// Counts a wrong try; returns the tries so far.
pub fn record_attempt(conn: &mut DbConnection, id: &str) -> QueryResult<i32> {
    diesel::update(verifications::table.find(id))
        .set(verifications::attempts.eq(verifications::attempts + 1))
        .execute(conn)?;
    verifications::table.find(id).select(verifications::attempts).first(conn)
}

/// Uses up every open verification of these purposes for the user (e.g. when a new code replaces them).
pub fn retire_open(
    conn: &mut DbConnection,
    user_id: &str,
    purposes: &[VerificationPurpose],
    now: i64,
) -> QueryResult<()> {
    diesel::update(
        verifications::table
            .filter(verifications::user_id.eq(user_id))
            .filter(verifications::purpose.eq_any(purposes))
            .filter(verifications::used_at.is_null()),
    )
    .set(verifications::used_at.eq(Some(now)))
    .execute(conn)
    .map(|_| ())
}

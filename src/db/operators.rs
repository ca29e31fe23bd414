//! Operators of the admin API: a name and the digest of their API key.

use diesel::prelude::*;

use super::schema::operators;
use super::DbConnection;
use crate::domain::ApiKeyRole;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = operators)]
pub struct OperatorRow {
    pub id: String,
    pub name: String,
    pub key_digest: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub role: ApiKeyRole,
}

pub fn insert(conn: &mut DbConnection, row: &OperatorRow) -> QueryResult<()> {
    diesel::insert_into(operators::table).values(row).execute(conn).map(|_| ())
}

pub fn by_key_digest(conn: &mut DbConnection, digest: &str) -> QueryResult<Option<OperatorRow>> {
    operators::table.filter(operators::key_digest.eq(digest)).select(OperatorRow::as_select()).first(conn).optional()
}

pub fn by_name(conn: &mut DbConnection, name: &str) -> QueryResult<Option<OperatorRow>> {
    operators::table.filter(operators::name.eq(name)).select(OperatorRow::as_select()).first(conn).optional()
}

pub fn revoke(conn: &mut DbConnection, name: &str, role: ApiKeyRole, now: i64) -> QueryResult<bool> {
    let changed = diesel::update(
        operators::table
            .filter(operators::name.eq(name))
            .filter(operators::role.eq(role))
            .filter(operators::revoked_at.is_null()),
    )
    .set(operators::revoked_at.eq(Some(now)))
    .execute(conn)?;
    Ok(changed == 1)
}

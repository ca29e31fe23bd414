use diesel::prelude::*;

use super::schema::sads;
use super::DbConnection;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sads)]
pub struct SadRow {
    pub digest: String,
    pub user_id: String,
    pub credential_id: String,
    pub hashes: String,
    pub num_signatures: i32,
    pub used: i32,
    pub expires_at: i64,
    pub revoked: bool,
}

pub fn insert(conn: &mut DbConnection, row: &SadRow) -> QueryResult<()> {
    diesel::insert_into(sads::table).values(row).execute(conn).map(|_| ())
}

pub fn find(conn: &mut DbConnection, digest: &str) -> QueryResult<Option<SadRow>> {
    sads::table.find(digest).select(SadRow::as_select()).first(conn).optional()
}

/// Spends `n` signatures of the SAD's budget if, and only if, they are still there and the SAD is
/// live: a conditional update, so concurrent requests can never overspend. True when spent.
pub fn spend(conn: &mut DbConnection, digest: &str, n: i32, now: i64) -> QueryResult<bool> {
    let changed = diesel::update(
        sads::table
            .filter(sads::digest.eq(digest))
            .filter(sads::revoked.eq(false))
            .filter(sads::expires_at.gt(now))
            .filter((sads::used + n).le(sads::num_signatures)),
    )
    .set(sads::used.eq(sads::used + n))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Gives back signatures spent for a request that then failed in the HSM.
pub fn refund(conn: &mut DbConnection, digest: &str, n: i32) -> QueryResult<()> {
    diesel::update(sads::table.find(digest)).set(sads::used.eq(sads::used - n)).execute(conn).map(|_| ())
}

/// Retires a SAD (replaced through extendTransaction). True when it was live until now.
pub fn retire(conn: &mut DbConnection, digest: &str, now: i64) -> QueryResult<bool> {
    let changed = diesel::update(
        sads::table.filter(sads::digest.eq(digest)).filter(sads::revoked.eq(false)).filter(sads::expires_at.gt(now)),
    )
    .set(sads::revoked.eq(true))
    .execute(conn)?;
    Ok(changed == 1)
}

use diesel::prelude::*;

use super::schema::{audit_head, audit_log};
use super::DbConnection;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    pub seq: i64,
    pub(crate) at: i64,
    pub event: String,
    pub outcome: String,
    pub user_id: Option<String>,
    pub credential_id: Option<String>,
    pub detail: String,
    pub(crate) prev_hash: String,
    pub hash: String,
    /// The HTTP request that wrote the record (`X-Request-Id`); None for commands, jobs and older records.
    pub request_id: Option<String>,
}

/// Locks the head of the chain for this transaction and returns (last seq, last hash). The no-op update
/// takes the row lock on PostgreSQL; on SQLite the write transaction already excludes other writers.
pub fn lock_head(conn: &mut DbConnection) -> QueryResult<(i64, String)> {
    diesel::update(audit_head::table.find(1)).set(audit_head::seq.eq(audit_head::seq)).execute(conn)?;
    audit_head::table.find(1).select((audit_head::seq, audit_head::hash)).first(conn)
}

/// The end of the chain, without locking it.
pub fn head(conn: &mut DbConnection) -> QueryResult<(i64, String)> {
    audit_head::table.find(1).select((audit_head::seq, audit_head::hash)).first(conn)
}

pub(crate) fn append(conn: &mut DbConnection, row: &AuditRow) -> QueryResult<()> {
    diesel::insert_into(audit_log::table).values(row).execute(conn)?;
    diesel::update(audit_head::table.find(1))
        .set((audit_head::seq.eq(row.seq), audit_head::hash.eq(&row.hash)))
        .execute(conn)?;
    Ok(())
}

/// Records in order, `limit` at a time from `after`.
pub fn page(conn: &mut DbConnection, after: i64, limit: i64) -> QueryResult<Vec<AuditRow>> {
    audit_log::table
        .filter(audit_log::seq.gt(after))
        .order(audit_log::seq.asc())
        .limit(limit)
        .select(AuditRow::as_select())
        .load(conn)
}

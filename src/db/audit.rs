//! The audit trail's records and its head.

use diesel::prelude::*;

use super::schema::{audit_head, audit_log};
use super::DbConnection;

/// One record of the audit trail (`audit_log`), chained to the one before by its hash.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    /// Position in the chain, from 1.
    pub seq: i64,
    pub(crate) at: i64,
    /// See [`crate::audit::AuditEvent::event`].
    pub event: String,
    /// `success` or `refused`.
    pub outcome: String,
    /// The user it concerns, if any.
    pub user_id: Option<String>,
    /// The credential it concerns, if any.
    pub credential_id: Option<String>,
    /// Anything else worth keeping, in words.
    pub detail: String,
    pub(crate) prev_hash: String,
    /// SHA-256 (hex) over this record's fields and the previous record's hash.
    pub hash: String,
    /// The HTTP request that wrote the record (`X-Request-Id`); None for commands, jobs and older records.
    pub request_id: Option<String>,
}

/// Locks the head of the chain for this transaction and returns (last seq, last hash), in one statement:
/// `SELECT … FOR NO KEY UPDATE` on PostgreSQL (the lock an UPDATE takes); on SQLite the write transaction
/// already excludes other writers.
pub fn lock_head(conn: &mut DbConnection) -> QueryResult<(i64, String)> {
    let head = audit_head::table.find(1).select((audit_head::seq, audit_head::hash));
    match conn {
        DbConnection::Pg(pg) => head.for_no_key_update().first(pg),
        DbConnection::Sqlite(sqlite) => head.first(sqlite),
    }
}

/// The end of the chain, without locking it.
pub fn head(conn: &mut DbConnection) -> QueryResult<(i64, String)> {
    audit_head::table.find(1).select((audit_head::seq, audit_head::hash)).first(conn)
}

/// Inserts a record (inside the transaction that locked the head; [`move_head`] follows).
/// Written out as a fixed statement (see `db::prepared`): it runs on every signature.
pub(crate) fn insert_record(conn: &mut DbConnection, row: &AuditRow) -> QueryResult<()> {
    struct InsertAuditRecord;
    use super::prepared::{execute, Part::*};
    let record = vec![
        Sql("INSERT INTO audit_log (seq, at, event, outcome, user_id, credential_id, detail, prev_hash, hash, \
             request_id) VALUES ("),
        Long(row.seq),
        Sql(", "),
        Long(row.at),
        Sql(", "),
        Text(&row.event),
        Sql(", "),
        Text(&row.outcome),
        Sql(", "),
        OptionalText(row.user_id.as_deref()),
        Sql(", "),
        OptionalText(row.credential_id.as_deref()),
        Sql(", "),
        Text(&row.detail),
        Sql(", "),
        Text(&row.prev_hash),
        Sql(", "),
        Text(&row.hash),
        Sql(", "),
        OptionalText(row.request_id.as_deref()),
        Sql(")"),
    ];
    execute::<InsertAuditRecord>(conn, record).map(|_| ())
}

/// Moves the head to the last record inserted (inside the transaction that locked it).
pub(crate) fn move_head(conn: &mut DbConnection, seq: i64, hash: &str) -> QueryResult<()> {
    struct MoveAuditHead;
    use super::prepared::{execute, Part::*};
    let head = vec![Sql("UPDATE audit_head SET seq = "), Long(seq), Sql(", hash = "), Text(hash), Sql(" WHERE id = 1")];
    execute::<MoveAuditHead>(conn, head).map(|_| ())
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

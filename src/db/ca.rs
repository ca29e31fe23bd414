use diesel::prelude::*;

use super::schema::{ca_certificate_history, ca_keys};
use super::DbConnection;
use crate::domain::CaName;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ca_keys)]
pub struct CaKeyRow {
    pub name: CaName,
    pub key_kind: String,
    pub key_id: String,
    pub certificate: Vec<u8>,
    pub created_at: i64,
}

pub fn find(conn: &mut DbConnection, name: CaName) -> QueryResult<Option<CaKeyRow>> {
    ca_keys::table.find(name).select(CaKeyRow::as_select()).first(conn).optional()
}

pub fn insert(conn: &mut DbConnection, row: &CaKeyRow) -> QueryResult<()> {
    diesel::insert_into(ca_keys::table).values(row).execute(conn).map(|_| ())
}

/// Makes `certificate` the current certificate of the CA `name` (same key). Returns false when no
/// such CA is stored.
pub fn replace_certificate(conn: &mut DbConnection, name: CaName, certificate: &[u8]) -> QueryResult<bool> {
    diesel::update(ca_keys::table.find(name)).set(ca_keys::certificate.eq(certificate)).execute(conn).map(|n| n == 1)
}

/// A CA certificate that was current once and was replaced.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ca_certificate_history)]
pub struct HistoryRow {
    /// Serial number, lowercase hex.
    pub serial: String,
    pub ca_name: CaName,
    pub certificate: Vec<u8>,
    pub superseded_at: i64,
}

pub fn insert_history(conn: &mut DbConnection, row: &HistoryRow) -> QueryResult<()> {
    diesel::insert_into(ca_certificate_history::table).values(row).execute(conn).map(|_| ())
}

/// A replaced certificate of the CA `name` by its serial number (lowercase hex).
pub fn history_by_serial(conn: &mut DbConnection, name: CaName, serial: &str) -> QueryResult<Option<HistoryRow>> {
    ca_certificate_history::table
        .find(serial)
        .filter(ca_certificate_history::ca_name.eq(name))
        .select(HistoryRow::as_select())
        .first(conn)
        .optional()
}

use diesel::prelude::*;

use super::schema::ca_keys;
use super::DbConnection;

pub const ROOT: &str = "root";
pub const ISSUING: &str = "issuing";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ca_keys)]
pub struct CaKeyRow {
    pub name: String,
    pub key_kind: String,
    pub key_id: String,
    pub certificate: Vec<u8>,
    pub created_at: i64,
}

pub fn find(conn: &mut DbConnection, name: &str) -> QueryResult<Option<CaKeyRow>> {
    ca_keys::table.find(name).select(CaKeyRow::as_select()).first(conn).optional()
}

pub fn insert(conn: &mut DbConnection, row: &CaKeyRow) -> QueryResult<()> {
    diesel::insert_into(ca_keys::table).values(row).execute(conn).map(|_| ())
}

//! The mode a database was started in: a production start marks it, so that a development start
//! against it can be refused (see `service::installation`).

use diesel::prelude::*;

use super::schema::installation;
use super::DbConnection;

/// The one row's id.
const ROW: i32 = 1;
pub const PRODUCTION: &str = "production";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = installation)]
pub struct InstallationRow {
    pub id: i32,
    pub mode: String,
    pub marked_at: i64,
}

/// The recorded mode, if a production start recorded one.
pub fn mode(conn: &mut DbConnection) -> QueryResult<Option<InstallationRow>> {
    installation::table.filter(installation::id.eq(ROW)).select(InstallationRow::as_select()).first(conn).optional()
}

/// Records a production start (the first one's time is kept). Two nodes starting at once may both
/// try: the second's insert fails on the key, and finding the row then is success.
pub fn mark_production(conn: &mut DbConnection, now: i64) -> QueryResult<()> {
    if mode(conn)?.is_some_and(|row| row.mode == PRODUCTION) {
        return Ok(());
    }
    let row = InstallationRow { id: ROW, mode: PRODUCTION.to_string(), marked_at: now };
    match diesel::insert_into(installation::table).values(&row).execute(conn) {
        Ok(_) => Ok(()),
        Err(e) => match mode(conn)? {
            Some(found) if found.mode == PRODUCTION => Ok(()),
            _ => Err(e),
        },
    }
}

//! Stored CRLs and the per-issuer CRL number counter.

use diesel::prelude::*;

use super::schema::{crl_numbers, crls};
use super::DbConnection;
use crate::domain::CaName;

/// A CRL as issued (`crls`).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = crls)]
pub struct CrlRow {
    /// The CA that issued it.
    pub issuer: CaName,
    pub(crate) crl_number: i64,
    /// thisUpdate, Unix seconds.
    pub this_update: i64,
    /// nextUpdate, Unix seconds.
    pub next_update: i64,
    /// How many revoked certificates it lists.
    pub entries: i64,
    /// The CRL, DER.
    pub der: Vec<u8>,
}

/// Takes the next CRL number of `issuer`. Call it inside a write transaction: the counter row stays
/// locked until the transaction ends, so numbers only grow, whichever node takes them.
pub fn next_number(conn: &mut DbConnection, issuer: CaName) -> QueryResult<i64> {
    let changed = diesel::update(crl_numbers::table.find(issuer))
        .set(crl_numbers::last_number.eq(crl_numbers::last_number + 1))
        .execute(conn)?;
    if changed != 1 {
        return Err(diesel::result::Error::NotFound);
    }
    crl_numbers::table.find(issuer).select(crl_numbers::last_number).first(conn)
}

/// Stores an issued CRL.
pub fn insert(conn: &mut DbConnection, row: &CrlRow) -> QueryResult<()> {
    diesel::insert_into(crls::table).values(row).execute(conn).map(|_| ())
}

/// The CRL with the highest number: the one served.
pub fn latest(conn: &mut DbConnection, issuer: CaName) -> QueryResult<Option<CrlRow>> {
    crls::table
        .filter(crls::issuer.eq(issuer))
        .order(crls::crl_number.desc())
        .select(CrlRow::as_select())
        .first(conn)
        .optional()
}

/// The numbers of all stored CRLs of `issuer`, lowest first.
pub fn numbers(conn: &mut DbConnection, issuer: CaName) -> QueryResult<Vec<i64>> {
    crls::table.filter(crls::issuer.eq(issuer)).order(crls::crl_number.asc()).select(crls::crl_number).load(conn)
}

//! The keys of the trust services other than the CA (the TSA, the OCSP responder), each with its
//! current certificate from the issuing CA.

use diesel::prelude::*;

use super::schema::trust_service_keys;
use super::DbConnection;
use crate::domain::TrustServiceName;

/// A trust service's key in the HSM and its current certificate (`trust_service_keys`).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = trust_service_keys)]
pub struct TrustServiceKeyRow {
    /// Which trust service.
    pub name: TrustServiceName,
    /// A [`crate::domain::KeyKind`] name.
    pub key_kind: String,
    /// The key pair's `CKA_ID`, hex.
    pub key_id: String,
    /// The certificate, DER.
    pub certificate: Vec<u8>,
    /// When it was stored, Unix seconds.
    pub created_at: i64,
}

/// The key and certificate of trust service `name`, if stored.
pub fn find_key(conn: &mut DbConnection, name: TrustServiceName) -> QueryResult<Option<TrustServiceKeyRow>> {
    trust_service_keys::table.find(name).select(TrustServiceKeyRow::as_select()).first(conn).optional()
}

/// Stores the key of a trust service (a second one of the same name fails: the primary key).
pub fn insert_key(conn: &mut DbConnection, row: &TrustServiceKeyRow) -> QueryResult<()> {
    diesel::insert_into(trust_service_keys::table).values(row).execute(conn).map(|_| ())
}

/// Replaces the certificate of trust service `name` (same key) when it is still `current`; false when
/// another node replaced it first.
pub fn replace_certificate(
    conn: &mut DbConnection,
    name: TrustServiceName,
    current: &[u8],
    new: &[u8],
) -> QueryResult<bool> {
    let changed =
        diesel::update(trust_service_keys::table.find(name).filter(trust_service_keys::certificate.eq(current)))
            .set(trust_service_keys::certificate.eq(new))
            .execute(conn)?;
    Ok(changed == 1)
}

//! OAuth2 clients registered by operators; a confidential client's secret only as a digest.

use diesel::prelude::*;

use super::schema::{access_tokens, oauth_clients};
use super::DbConnection;
use crate::domain::ClientType;

/// A registered client (`oauth_clients`).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_clients)]
pub struct ClientRow {
    /// The `client_id`.
    pub id: String,
    pub name: String,
    pub client_type: ClientType,
    /// SHA-256 of a confidential client's secret, hex.
    pub secret_digest: Option<String>,
    /// The redirect URIs, a JSON array of strings.
    pub redirect_uris: String,
    /// The scopes it may ask for, space-separated.
    pub scopes: String,
    /// The account it may act for with the client_credentials grant.
    pub account_user_id: Option<String>,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

pub fn insert(conn: &mut DbConnection, row: &ClientRow) -> QueryResult<()> {
    diesel::insert_into(oauth_clients::table).values(row).execute(conn).map(|_| ())
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<ClientRow>> {
    oauth_clients::table.find(id).select(ClientRow::as_select()).first(conn).optional()
}

/// Every client, the most recently registered first.
pub fn list(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<ClientRow>> {
    oauth_clients::table
        .order((oauth_clients::created_at.desc(), oauth_clients::id))
        .limit(limit)
        .select(ClientRow::as_select())
        .load(conn)
}

/// Disables an enabled client and revokes every token issued to it; false when there is no enabled
/// client with this id.
pub fn disable(conn: &mut DbConnection, id: &str, now: i64) -> QueryResult<bool> {
    let changed = diesel::update(oauth_clients::table.find(id).filter(oauth_clients::disabled_at.is_null()))
        .set(oauth_clients::disabled_at.eq(Some(now)))
        .execute(conn)?;
    if changed == 1 {
        diesel::update(access_tokens::table.filter(access_tokens::client_id.eq(id)))
            .set(access_tokens::revoked.eq(true))
            .execute(conn)?;
    }
    Ok(changed == 1)
}

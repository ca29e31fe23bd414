//! OAuth2 clients registered by operators; a confidential client's secret only as a digest.

use diesel::prelude::*;

use super::schema::{access_tokens, oauth_assertions, oauth_clients};
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
    /// When its last token was issued.
    pub last_used_at: Option<i64>,
    pub disabled_at: Option<i64>,
    /// The public keys of a client that authenticates with `private_key_jwt`, a JWK Set.
    pub jwks: Option<String>,
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

/// Marks the client as used now, inside the transaction that issues its token, if it is still enabled;
/// false when it was disabled meanwhile. The update holds the client's row until the transaction ends, so
/// a [`disable`] running at the same time either comes first (and nothing is issued) or waits and then
/// revokes the token issued.
pub fn use_for_issue(conn: &mut DbConnection, id: &str, now: i64) -> QueryResult<bool> {
    let changed = diesel::update(oauth_clients::table.find(id).filter(oauth_clients::disabled_at.is_null()))
        .set(oauth_clients::last_used_at.eq(Some(now)))
        .execute(conn)?;
    Ok(changed == 1)
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

/// Records an accepted assertion's id for the client until it expires; false when it was recorded
/// before (a replay), also by a request on another node at the same moment (the primary key decides).
/// Forgets the client's expired ones first. Runs outside a transaction: each statement is its own.
pub fn remember_assertion(
    conn: &mut DbConnection,
    client_id: &str,
    jti: &str,
    expires_at: i64,
    now: i64,
) -> QueryResult<bool> {
    diesel::delete(
        oauth_assertions::table
            .filter(oauth_assertions::client_id.eq(client_id))
            .filter(oauth_assertions::expires_at.lt(now)),
    )
    .execute(conn)?;
    let inserted = diesel::insert_into(oauth_assertions::table)
        .values((
            oauth_assertions::client_id.eq(client_id),
            oauth_assertions::jti.eq(jti),
            oauth_assertions::expires_at.eq(expires_at),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(true),
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        Err(e) => Err(e),
    }
}

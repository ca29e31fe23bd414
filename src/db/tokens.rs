//! Access, refresh and lifecycle session tokens, stored only as digests.

use diesel::prelude::*;

use super::schema::access_tokens;
use super::DbConnection;

/// A CSC access token (`auth/login`).
pub const ACCESS: &str = "access";
/// A CSC refresh token.
pub const REFRESH: &str = "refresh";
/// A session of the lifecycle API (password and, once paired, a TOTP code); also valid on the CSC API.
pub const PORTAL: &str = "portal";
/// An OAuth2 access token of the `service` scope (`/oauth2/token`): valid on the CSC API like [`ACCESS`].
pub const OAUTH_SERVICE: &str = "oauth_service";

/// A bearer token (`access_tokens`).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = access_tokens)]
pub struct TokenRow {
    /// SHA-256 of the token (the token itself is never stored).
    pub digest: String,
    /// The user it was issued to.
    pub user_id: String,
    /// [`ACCESS`], [`REFRESH`], [`PORTAL`] or [`OAUTH_SERVICE`].
    pub kind: String,
    /// The refresh token an access token was minted with, if any.
    pub refresh_digest: Option<String>,
    /// When it expires, Unix seconds.
    pub expires_at: i64,
    /// Revoked (`auth/revoke`, logout, password change).
    pub revoked: bool,
    /// The OAuth2 client it was issued to (none for `auth/login` tokens and lifecycle sessions).
    pub client_id: Option<String>,
}

/// Stores a new token.
pub fn insert(conn: &mut DbConnection, row: &TokenRow) -> QueryResult<()> {
    diesel::insert_into(access_tokens::table).values(row).execute(conn).map(|_| ())
}

/// The token with this digest, if any.
pub fn find(conn: &mut DbConnection, digest: &str) -> QueryResult<Option<TokenRow>> {
    access_tokens::table.find(digest).select(TokenRow::as_select()).first(conn).optional()
}

/// Revokes one token; revoking a refresh token also revokes every access token minted with it.
pub fn revoke(conn: &mut DbConnection, digest: &str) -> QueryResult<()> {
    diesel::update(access_tokens::table.find(digest)).set(access_tokens::revoked.eq(true)).execute(conn)?;
    diesel::update(access_tokens::table.filter(access_tokens::refresh_digest.eq(digest)))
        .set(access_tokens::revoked.eq(true))
        .execute(conn)?;
    Ok(())
}

/// Revokes every token of the user (sessions and refresh tokens), except `keep` when given.
pub fn revoke_all_of_user(conn: &mut DbConnection, user_id: &str, keep: Option<&str>) -> QueryResult<()> {
    let mut query = diesel::update(access_tokens::table)
        .filter(access_tokens::user_id.eq(user_id))
        .filter(access_tokens::revoked.eq(false))
        .into_boxed();
    if let Some(keep) = keep {
        query = query.filter(access_tokens::digest.ne(keep.to_string()));
    }
    query.set(access_tokens::revoked.eq(true)).execute(conn).map(|_| ())
}

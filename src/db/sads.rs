//! Signature activation data (SADs) and what each still covers.

use diesel::prelude::*;

use super::credentials::CredentialRow;
use super::schema::{access_tokens, credentials, sads};
use super::tokens::TokenRow;
use super::DbConnection;

/// A signature activation data (`sads`): what one authorisation still covers.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sads)]
pub struct SadRow {
    /// SHA-256 of the SAD (it is stored only as a digest).
    pub digest: String,
    /// The user it was issued to.
    pub user_id: String,
    /// The credential it authorises.
    pub credential_id: String,
    /// The bound hashes not yet signed (SCAL2), as [`crate::domain::sad::encode_hashes`] writes them.
    pub hashes: String,
    /// Signatures it covers in all.
    pub num_signatures: i32,
    /// Signatures made with it so far.
    pub used: i32,
    /// When it expires, Unix seconds.
    pub expires_at: i64,
    /// Retired (replaced through extendTransaction) or revoked: signs nothing more.
    pub revoked: bool,
    /// The end of the chain of renewals that the one-time code started (`extendTransaction` never
    /// renews past it).
    pub chain_expires_at: i64,
    /// The OAuth2 client whose token authorised it (none for a person's own login): only a token of
    /// that client signs with it.
    pub client_id: Option<String>,
}

/// Stores a new SAD.
pub fn insert(conn: &mut DbConnection, row: &SadRow) -> QueryResult<()> {
    diesel::insert_into(sads::table).values(row).execute(conn).map(|_| ())
}

/// The SAD with this digest, if any.
pub fn find(conn: &mut DbConnection, digest: &str) -> QueryResult<Option<SadRow>> {
    sads::table.find(digest).select(SadRow::as_select()).first(conn).optional()
}

/// A bearer token's row, its user's credential (if found) and the SAD (if found and theirs).
pub type TokenCredentialSad = (TokenRow, Option<CredentialRow>, Option<SadRow>);

/// The bearer token with this digest and, with it, the token user's credential with this id and the SAD
/// with this digest when it was issued to that user for that credential: what `signatures/signHash` and
/// `signDoc` read, in one statement. None when no token has this digest; the credential is None when the
/// token's user has no such credential, and the SAD None when it is unknown or was issued for another
/// user or credential.
pub fn token_credential_with_sad(
    conn: &mut DbConnection,
    token_digest: &str,
    credential_id: &str,
    sad_digest: &str,
) -> QueryResult<Option<TokenCredentialSad>> {
    access_tokens::table
        .left_join(
            credentials::table
                .on(credentials::id.eq(credential_id.to_owned()).and(credentials::user_id.eq(access_tokens::user_id))),
        )
        .left_join(
            sads::table.on(sads::digest
                .eq(sad_digest.to_owned())
                .and(sads::credential_id.eq(credentials::id))
                .and(sads::user_id.eq(credentials::user_id))),
        )
        .filter(access_tokens::digest.eq(token_digest))
        .select((TokenRow::as_select(), Option::<CredentialRow>::as_select(), Option::<SadRow>::as_select()))
        .first(conn)
        .optional()
}

/// Spends one signature for each of the SAD's bound hash occurrences that a request uses: the budget
/// grows by `n` and the bound hashes become `remaining`, if, and only if, the SAD is live, the budget
/// covers them and nobody spent from it since `before` was read (a conditional update, so concurrent
/// requests can never overspend or sign one authorised hash twice). True when spent.
/// Written out as a fixed statement (see `db::prepared`): it runs on every signature.
pub fn spend(
    conn: &mut DbConnection,
    digest: &str,
    n: i32,
    before: &str,
    remaining: &str,
    now: i64,
) -> QueryResult<bool> {
    struct SpendSad;
    use super::prepared::Part::*;
    let parts = vec![
        Sql("UPDATE sads SET used = used + "),
        Int(n),
        Sql(", hashes = "),
        Text(remaining),
        Sql(" WHERE digest = "),
        Text(digest),
        Sql(" AND revoked = FALSE AND expires_at > "),
        Long(now),
        Sql(" AND hashes = "),
        Text(before),
        Sql(" AND used + "),
        Int(n),
        Sql(" <= num_signatures"),
    ];
    Ok(super::prepared::execute::<SpendSad>(conn, parts)? == 1)
}

/// Undoes a [`spend`] made earlier in the same transaction (the quota then refused the request): the
/// budget and the hashes as they were, only if nothing spent since.
/// Anything else (the row changed since) is an error, so that the transaction rolls back.
pub fn unspend(conn: &mut DbConnection, digest: &str, n: i32, before: &str, remaining: &str) -> QueryResult<()> {
    let changed = diesel::update(sads::table.find(digest).filter(sads::hashes.eq(remaining)))
        .set((sads::used.eq(sads::used - n), sads::hashes.eq(before)))
        .execute(conn)?;
    if changed == 1 {
        Ok(())
    } else {
        Err(diesel::result::Error::NotFound)
    }
}

/// Gives back what a request spent when the HSM then failed: the budget and the hash occurrences.
pub fn refund(conn: &mut DbConnection, digest: &str, n: i32, hashes: &str) -> QueryResult<()> {
    diesel::update(sads::table.find(digest))
        .set((sads::used.eq(sads::used - n), sads::hashes.eq(sads::hashes.concat(",").concat(hashes))))
        .execute(conn)
        .map(|_| ())
}

/// Retires a SAD (replaced through extendTransaction). True when it was live until now.
pub fn retire(conn: &mut DbConnection, digest: &str, now: i64) -> QueryResult<bool> {
    let changed = diesel::update(
        sads::table.filter(sads::digest.eq(digest)).filter(sads::revoked.eq(false)).filter(sads::expires_at.gt(now)),
    )
    .set(sads::revoked.eq(true))
    .execute(conn)?;
    Ok(changed == 1)
}

//! Document signing sessions and their files (`signing_sessions`, `signing_session_documents`). Every
//! read names the person and ignores expired sessions, so a session is never served to anyone else, nor
//! after its time, even before the scheduler deletes it.

use diesel::prelude::*;

use super::schema::{signing_session_documents as documents, signing_sessions as sessions};
use super::DbConnection;
use crate::domain::{SignedOutput, SigningSessionState};

/// A session (`signing_sessions`).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub credential_id: String,
    pub state: SigningSessionState,
    pub created_at: i64,
    /// When the sign request now holding it took it (state `signing`).
    pub claimed_at: Option<i64>,
    pub signed_at: Option<i64>,
    pub expires_at: i64,
}

/// What a PDF signature of a file shows and says: a visible signature's page (from 1) and rectangle in
/// points (all or none), its reason and location.
#[derive(Debug, Clone, Default, Queryable, Selectable, Insertable)]
#[diesel(table_name = documents)]
pub struct StoredLook {
    pub visible_page: Option<i32>,
    pub visible_x1: Option<f64>,
    pub visible_y1: Option<f64>,
    pub visible_x2: Option<f64>,
    pub visible_y2: Option<f64>,
    pub reason: Option<String>,
    pub location: Option<String>,
}

/// A file of a session as stored, with its content and signed file.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = documents)]
pub struct DocumentRow {
    pub session_id: String,
    /// From 0, in the order sent.
    pub position: i32,
    pub name: String,
    pub output: SignedOutput,
    /// The AdES level, as `ConformanceLevel::as_str`.
    pub level: String,
    /// The file's digest with the signature algorithm's hash: what the code authorises.
    pub digest: Vec<u8>,
    pub content: Vec<u8>,
    pub signed: Option<Vec<u8>>,
    /// What a PDF signature shows and says.
    #[diesel(embed)]
    pub look: StoredLook,
}

/// A file's facts without its bytes (for the session's view).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = documents)]
pub struct DocumentFacts {
    pub position: i32,
    pub name: String,
    pub output: SignedOutput,
    pub level: String,
    pub digest: Vec<u8>,
    /// What a PDF signature shows and says.
    #[diesel(embed)]
    pub look: StoredLook,
}

/// Stores a new session with its files.
pub fn insert(conn: &mut DbConnection, session: &SessionRow, files: &[DocumentRow]) -> QueryResult<()> {
    diesel::insert_into(sessions::table).values(session).execute(conn)?;
    // One file per statement: a batch insert of several 20 MiB blobs would be one huge statement.
    for file in files {
        diesel::insert_into(documents::table).values(file).execute(conn)?;
    }
    Ok(())
}

/// How many of the person's sessions are still open (not expired) at `now`.
pub fn open_count(conn: &mut DbConnection, user_id: &str, now: i64) -> QueryResult<i64> {
    sessions::table.filter(sessions::user_id.eq(user_id)).filter(sessions::expires_at.gt(now)).count().get_result(conn)
}

/// The ids of the person's open (unexpired) sessions, oldest first.
pub fn open_ids(conn: &mut DbConnection, user_id: &str, now: i64) -> QueryResult<Vec<String>> {
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::expires_at.gt(now))
        .order((sessions::created_at.asc(), sessions::id.asc()))
        .select(sessions::id)
        .load(conn)
}

/// The person's session, if it exists and has not expired.
pub fn owned(conn: &mut DbConnection, id: &str, user_id: &str, now: i64) -> QueryResult<Option<SessionRow>> {
    sessions::table
        .filter(sessions::id.eq(id))
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::expires_at.gt(now))
        .select(SessionRow::as_select())
        .first(conn)
        .optional()
}

/// The session's files without their bytes, in order, with the sizes of the file and of the signed file.
pub fn facts(conn: &mut DbConnection, session_id: &str) -> QueryResult<Vec<(DocumentFacts, i32, Option<i32>)>> {
    // `length` of a blob (SQLite) or bytea (PostgreSQL) is its size in bytes, a 32-bit integer in
    // PostgreSQL; the files are far smaller than 2 GiB.
    diesel::define_sql_function!(fn length(x: diesel::sql_types::Binary) -> diesel::sql_types::Integer);
    diesel::define_sql_function! {
        #[sql_name = "length"]
        fn length_or_null(x: diesel::sql_types::Nullable<diesel::sql_types::Binary>) -> diesel::sql_types::Nullable<diesel::sql_types::Integer>
    }
    documents::table
        .filter(documents::session_id.eq(session_id))
        .order(documents::position.asc())
        .select((DocumentFacts::as_select(), length(documents::content), length_or_null(documents::signed)))
        .load(conn)
}

/// The session's files with their bytes, in order.
pub fn files(conn: &mut DbConnection, session_id: &str) -> QueryResult<Vec<DocumentRow>> {
    documents::table
        .filter(documents::session_id.eq(session_id))
        .order(documents::position.asc())
        .select(DocumentRow::as_select())
        .load(conn)
}

/// A file as a download or the zip needs it.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub name: String,
    pub output: SignedOutput,
    /// The file as sent: read only where it goes in the zip (beside its `.p7s`).
    pub original: Option<Vec<u8>>,
    /// The signed file, once signed.
    pub signed: Option<Vec<u8>>,
}

/// What the zip needs of each file, in order.
pub fn zip_files(conn: &mut DbConnection, session_id: &str) -> QueryResult<Vec<StoredFile>> {
    let rows: Vec<(i32, String, SignedOutput, Option<Vec<u8>>)> = documents::table
        .filter(documents::session_id.eq(session_id))
        .order(documents::position.asc())
        .select((documents::position, documents::name, documents::output, documents::signed))
        .load(conn)?;
    let mut files = Vec::with_capacity(rows.len());
    for (position, name, output, signed) in rows {
        let original = if output == SignedOutput::P7s {
            Some(
                documents::table
                    .filter(documents::session_id.eq(session_id))
                    .filter(documents::position.eq(position))
                    .select(documents::content)
                    .first(conn)?,
            )
        } else {
            None
        };
        files.push(StoredFile { name, output, original, signed });
    }
    Ok(files)
}

/// One file's name, output and signed bytes (not the original).
pub fn signed_file(conn: &mut DbConnection, session_id: &str, position: i32) -> QueryResult<Option<StoredFile>> {
    let found: Option<(String, SignedOutput, Option<Vec<u8>>)> = documents::table
        .filter(documents::session_id.eq(session_id))
        .filter(documents::position.eq(position))
        .select((documents::name, documents::output, documents::signed))
        .first(conn)
        .optional()?;
    Ok(found.map(|(name, output, signed)| StoredFile { name, output, original: None, signed }))
}

/// Takes the session for one sign request: it must be the person's, unexpired, and ready (or held by a
/// request that began before `stale_before`, from a node that died). False when another request holds it
/// or it is signed: exactly one request signs a session. The session then lives at least until
/// `expires_at`, so that it cannot expire (and be deleted) while it is signed.
pub fn claim(
    conn: &mut DbConnection,
    id: &str,
    user_id: &str,
    now: i64,
    stale_before: i64,
    expires_at: i64,
) -> QueryResult<bool> {
    let claimable = sessions::state
        .eq(SigningSessionState::Ready)
        .or(sessions::state.eq(SigningSessionState::Signing).and(sessions::claimed_at.lt(stale_before)));
    diesel::update(
        sessions::table
            .filter(sessions::id.eq(id))
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::expires_at.gt(now))
            .filter(claimable),
    )
    .set((
        sessions::state.eq(SigningSessionState::Signing),
        sessions::claimed_at.eq(Some(now)),
        sessions::expires_at.eq(expires_at),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Gives a claim back (the signing failed): the session is ready again, if the claim is still this one.
pub fn release(conn: &mut DbConnection, id: &str, claimed_at: i64) -> QueryResult<()> {
    diesel::update(
        sessions::table
            .filter(sessions::id.eq(id))
            .filter(sessions::state.eq(SigningSessionState::Signing))
            .filter(sessions::claimed_at.eq(claimed_at)),
    )
    .set((sessions::state.eq(SigningSessionState::Ready), sessions::claimed_at.eq(None::<i64>)))
    .execute(conn)
    .map(|_| ())
}

/// Marks the session signed, if the claim is still this one, with its new expiry. False when the claim
/// was lost (taken over as stale, or the session deleted): then nothing may be stored. A session this
/// claim already marked (an earlier attempt committed, its answer lost) is marked again.
pub fn mark_signed(conn: &mut DbConnection, id: &str, claimed_at: i64, now: i64, expires_at: i64) -> QueryResult<bool> {
    diesel::update(
        sessions::table
            .filter(sessions::id.eq(id))
            .filter(sessions::state.eq_any([SigningSessionState::Signing, SigningSessionState::Signed]))
            .filter(sessions::claimed_at.eq(claimed_at)),
    )
    .set((
        sessions::state.eq(SigningSessionState::Signed),
        sessions::signed_at.eq(Some(now)),
        sessions::expires_at.eq(expires_at),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Stores a file's signed bytes. Fails unless exactly that file was there to take them.
pub fn store_signed(conn: &mut DbConnection, session_id: &str, position: i32, signed: &[u8]) -> QueryResult<()> {
    let stored = diesel::update(
        documents::table.filter(documents::session_id.eq(session_id)).filter(documents::position.eq(position)),
    )
    .set(documents::signed.eq(Some(signed)))
    .execute(conn)?;
    if stored == 1 {
        Ok(())
    } else {
        Err(diesel::result::Error::NotFound)
    }
}

/// What deleting one of the person's sessions found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// Deleted, with its files.
    Yes,
    /// No such session of the person's (or it expired).
    NotFound,
    /// A sign request holds it now (claimed after `stale_before`): it is left as it is.
    BeingSigned,
}

/// Deletes one of the person's unexpired sessions with its files, unless a sign request holds it. The
/// session's row goes first, in one conditional statement, so that a claim committed meanwhile is seen
/// (PostgreSQL evaluates the condition again on the locked row).
pub fn delete(conn: &mut DbConnection, id: &str, user_id: &str, now: i64, stale_before: i64) -> QueryResult<Deleted> {
    let mine = sessions::table
        .filter(sessions::id.eq(id))
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::expires_at.gt(now));
    let not_held = sessions::state.ne(SigningSessionState::Signing).or(sessions::claimed_at.lt(stale_before));
    if diesel::delete(mine.filter(not_held)).execute(conn)? == 1 {
        diesel::delete(documents::table.filter(documents::session_id.eq(id))).execute(conn)?;
        return Ok(Deleted::Yes);
    }
    let exists = mine.count().get_result::<i64>(conn)? > 0;
    Ok(if exists { Deleted::BeingSigned } else { Deleted::NotFound })
}

/// Up to `limit` ids of sessions expired at `now`.
pub fn expired(conn: &mut DbConnection, now: i64, limit: i64) -> QueryResult<Vec<String>> {
    sessions::table.filter(sessions::expires_at.le(now)).select(sessions::id).limit(limit).load(conn)
}

/// Deletes one session with its files if it is still expired at `now` (a sign request extends a session
/// it holds), in one conditional statement; whether it did.
pub fn delete_if_expired(conn: &mut DbConnection, id: &str, now: i64) -> QueryResult<bool> {
    let deleted = diesel::delete(sessions::table.filter(sessions::id.eq(id)).filter(sessions::expires_at.le(now)))
        .execute(conn)?;
    if deleted == 1 {
        diesel::delete(documents::table.filter(documents::session_id.eq(id))).execute(conn)?;
    }
    Ok(deleted == 1)
}

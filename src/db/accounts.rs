//! The `users` table, one row type for everyone in it: people enrolled through the lifecycle API
//! (profile, status, login lock-out) and signers provisioned by an operator; and their consents.
//! Their authenticators are in `authenticators`.

use diesel::prelude::*;

use super::schema::{consents, users};
use super::DbConnection;
use crate::domain::{AccountStatus, TotpPostponement};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct Account {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub created_at: i64,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub status: AccountStatus,
    pub login_failures: i32,
    pub login_locked_until: Option<i64>,
    pub totp_postpone: Option<TotpPostponement>,
    pub totp_remind_at: Option<i64>,
    /// ISO 3166-1 alpha-2; None: `ca.default_subject_country`.
    pub country: Option<String>,
}

pub fn insert(conn: &mut DbConnection, account: &Account) -> QueryResult<()> {
    diesel::insert_into(users::table).values(account).execute(conn).map(|_| ())
}

pub fn by_id(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Account>> {
    users::table.find(id).select(Account::as_select()).first(conn).optional()
}

pub fn by_email(conn: &mut DbConnection, email: &str) -> QueryResult<Option<Account>> {
    users::table.filter(users::email.eq(email)).select(Account::as_select()).first(conn).optional()
}

pub fn by_username(conn: &mut DbConnection, username: &str) -> QueryResult<Option<Account>> {
    users::table.filter(users::username.eq(username)).select(Account::as_select()).first(conn).optional()
}

/// People, newest first, optionally only the one with this e-mail address.
pub fn list(conn: &mut DbConnection, email: Option<&str>, limit: i64) -> QueryResult<Vec<Account>> {
    let mut query = users::table.select(Account::as_select()).into_boxed();
    if let Some(email) = email {
        query = query.filter(users::email.eq(email.to_string()));
    }
    query.order((users::created_at.desc(), users::id.asc())).limit(limit).load(conn)
}

pub fn activate(conn: &mut DbConnection, id: &str, password_hash: &str) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set((users::password_hash.eq(password_hash), users::status.eq(AccountStatus::Active)))
        .execute(conn)
        .map(|_| ())
}

pub fn set_password(conn: &mut DbConnection, id: &str, password_hash: &str) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set((
            users::password_hash.eq(password_hash),
            users::login_failures.eq(0),
            users::login_locked_until.eq(None::<i64>),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn set_phone(conn: &mut DbConnection, id: &str, phone: &str) -> QueryResult<()> {
    diesel::update(users::table.find(id)).set(users::phone.eq(phone)).execute(conn).map(|_| ())
}

pub fn set_names(conn: &mut DbConnection, id: &str, given_name: &str, surname: &str) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set((users::given_name.eq(given_name), users::surname.eq(surname)))
        .execute(conn)
        .map(|_| ())
}

/// What [`reserve_login_attempt`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginAttempt {
    /// One attempt is counted: check the password.
    Reserved,
    /// Logins are locked until then; nothing was counted.
    Locked { until: i64 },
}

/// Reserves one password check for the account before the (slow) check runs, so that parallel
/// guesses are counted one after the other: the attempt counts as a failure until the caller clears
/// the counter after a successful login. The attempt that reaches `max_failures` locks logins until
/// `lock_until` (it is still checked; a right password then clears the lock).
pub fn reserve_login_attempt(
    conn: &mut DbConnection,
    id: &str,
    max_failures: i32,
    now: i64,
    lock_until: i64,
) -> QueryResult<LoginAttempt> {
    // The conditional update takes the row lock first; a concurrent attempt re-reads the row after it.
    let reserved = diesel::update(
        users::table.find(id).filter(users::login_locked_until.is_null().or(users::login_locked_until.le(now))),
    )
    .set((users::login_failures.eq(users::login_failures + 1), users::login_locked_until.eq(None::<i64>)))
    .execute(conn)?;
    if reserved == 0 {
        let until: Option<i64> = users::table.find(id).select(users::login_locked_until).first(conn)?;
        return Ok(LoginAttempt::Locked { until: until.unwrap_or(lock_until) });
    }
    diesel::update(users::table.find(id).filter(users::login_failures.ge(max_failures)))
        .set((users::login_locked_until.eq(Some(lock_until)), users::login_failures.eq(0)))
        .execute(conn)?;
    Ok(LoginAttempt::Reserved)
}

pub fn clear_login_failures(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set((users::login_failures.eq(0), users::login_locked_until.eq(None::<i64>)))
        .execute(conn)
        .map(|_| ())
}

pub fn set_totp_postpone(
    conn: &mut DbConnection,
    id: &str,
    mode: Option<TotpPostponement>,
    remind_at: Option<i64>,
) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set((users::totp_postpone.eq(mode), users::totp_remind_at.eq(remind_at)))
        .execute(conn)
        .map(|_| ())
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = consents)]
pub struct Consent {
    pub id: String,
    pub user_id: String,
    pub document: String,
    pub version: String,
    pub accepted_at: i64,
}

pub fn insert_consent(conn: &mut DbConnection, consent: &Consent) -> QueryResult<()> {
    diesel::insert_into(consents::table).values(consent).execute(conn).map(|_| ())
}

pub fn consents_of(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<Consent>> {
    consents::table
        .filter(consents::user_id.eq(user_id))
        .order((consents::accepted_at.asc(), consents::id.asc()))
        .select(Consent::as_select())
        .load(conn)
}

pub fn has_consent(conn: &mut DbConnection, user_id: &str, document: &str, version: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        consents::table
            .filter(consents::user_id.eq(user_id))
            .filter(consents::document.eq(document))
            .filter(consents::version.eq(version)),
    ))
    .get_result(conn)
}

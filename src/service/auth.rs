//! Service authorisation: `auth/login` (password, or a refresh token), bearer token checks, `auth/revoke`.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;

use crate::audit::{self, AuditEvent, Outcome};
use crate::db::{self, tokens, users};
use crate::domain::secrets;

use super::{Param, Principal, ServiceError, Services};

/// Tokens handed out by a login.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: i64,
}

/// Argon2 is slow on purpose. A flood of password guesses must not take every core from the requests
/// that need none, so at most one Argon2 computation per core runs at a time; the others wait their
/// turn (holding no database connection).
struct Argon2Turns {
    free: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
}

struct Argon2Turn(&'static Argon2Turns);

impl Argon2Turns {
    fn take() -> Argon2Turn {
        static TURNS: std::sync::OnceLock<Argon2Turns> = std::sync::OnceLock::new();
        let turns = TURNS.get_or_init(|| Argon2Turns {
            free: std::sync::Mutex::new(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)),
            freed: std::sync::Condvar::new(),
        });
        // A poisoned lock only means another check panicked; the count itself is still right.
        let mut free = turns.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = turns.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Argon2Turn(turns)
    }
}

impl Drop for Argon2Turn {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

pub fn hash_password(password: &str) -> Result<String, ServiceError> {
    let _turn = Argon2Turns::take();
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(ServiceError::internal)
}

/// Checks a password against its Argon2id hash. An empty stored hash (an account not yet activated)
/// matches nothing.
pub fn verify_password(password: &str, stored: &str) -> bool {
    let _turn = Argon2Turns::take();
    PasswordHash::new(stored)
        .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Spends the same time as a real check when the user does not exist, so timing does not reveal it.
pub(super) fn burn_password_check(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("not a password").unwrap_or_default());
    let _ = verify_password(password, dummy);
}

/// Checks a person's password, counting the attempt toward the one login lock-out that CSC
/// `auth/login`, the lifecycle login and every other password check share. The attempt is reserved
/// in the database before the (slow) check, so parallel guesses check at most
/// `lifecycle.login_max_failures` passwords. The caller clears the counter when the whole login
/// succeeds (`accounts::clear_login_failures`). Takes its own connection: the caller must hold none.
pub(super) fn check_password_counted(
    services: &Services,
    user_id: &str,
    stored_hash: &str,
    password: &str,
) -> Result<(), ServiceError> {
    let now = services.now();
    let lifecycle = &services.config.lifecycle;
    let reserved = db::write_transaction(&mut *services.conn()?, |c| {
        db::accounts::reserve_login_attempt(
            c,
            user_id,
            lifecycle.login_max_failures,
            now,
            now + lifecycle.login_lockout_secs,
        )
    })?;
    if let Err(until) = reserved {
        burn_password_check(password);
        return Err(ServiceError::LoginLocked { until });
    }
    // No connection is held while Argon2 runs: a flood of guesses must not starve the pool.
    if verify_password(password, stored_hash) {
        Ok(())
    } else {
        Err(ServiceError::AuthenticationFailed)
    }
}

/// `auth/login` with a username and password.
pub fn login_with_password(
    services: &Services,
    username: &str,
    password: &str,
    remember_me: bool,
) -> Result<IssuedTokens, ServiceError> {
    let user = users::by_username(&mut *services.conn()?, username)?;
    let checked = match &user {
        Some(user) => check_password_counted(services, &user.id, &user.password_hash, password),
        None => {
            burn_password_check(password);
            Err(ServiceError::AuthenticationFailed)
        }
    };
    match (checked, user) {
        (Ok(()), Some(user)) => issue(services, &mut *services.conn()?, &user.id, remember_me, None),
        (result, user) => {
            let refusal = result.err().unwrap_or(ServiceError::AuthenticationFailed);
            // The trail names the username tried; the log line only the user id and the reason.
            let detail = format!("failed login for {:?}: {refusal}", username.chars().take(64).collect::<String>());
            services.audit_refusal_detailed("auth.login", user.as_ref().map(|u| u.id.as_str()), None, &refusal, detail);
            Err(refusal)
        }
    }
}

/// `auth/login` with a refresh token from an earlier `rememberMe` login. The refresh token stays valid.
pub fn login_with_refresh_token(services: &Services, refresh_token: &str) -> Result<IssuedTokens, ServiceError> {
    let digest = secrets::token_digest(refresh_token);
    let row = tokens::find(&mut *services.conn()?, &digest)?
        .filter(|t| t.kind == tokens::REFRESH && !t.revoked && t.expires_at > services.now());
    let Some(row) = row else {
        services.audit_refusal("auth.login", None, None, &ServiceError::Invalid(Param::RefreshToken));
        return Err(ServiceError::Invalid(Param::RefreshToken));
    };
    issue(services, &mut *services.conn()?, &row.user_id, false, Some(digest))
}

fn issue(
    services: &Services,
    conn: &mut db::DbConnection,
    user_id: &str,
    remember_me: bool,
    from_refresh: Option<String>,
) -> Result<IssuedTokens, ServiceError> {
    let now = services.now();
    let security = &services.config.security;
    let access_token = secrets::new_token();
    let refresh_token = remember_me.then(secrets::new_token);
    db::write_transaction(conn, |c| {
        if from_refresh.is_none() {
            db::accounts::clear_login_failures(c, user_id)?;
        }
        let refresh_digest = match &refresh_token {
            Some(token) => {
                let digest = secrets::token_digest(token);
                tokens::insert(
                    c,
                    &tokens::TokenRow {
                        digest: digest.clone(),
                        user_id: user_id.to_string(),
                        kind: tokens::REFRESH.into(),
                        refresh_digest: None,
                        expires_at: now + security.refresh_token_lifetime_secs,
                        revoked: false,
                    },
                )?;
                Some(digest)
            }
            None => from_refresh.clone(),
        };
        tokens::insert(
            c,
            &tokens::TokenRow {
                digest: secrets::token_digest(&access_token),
                user_id: user_id.to_string(),
                kind: tokens::ACCESS.into(),
                refresh_digest,
                expires_at: now + security.access_token_lifetime_secs,
                revoked: false,
            },
        )?;
        let how = if from_refresh.is_some() { "refresh token" } else { "password" };
        audit::record(
            c,
            now,
            AuditEvent {
                event: "auth.login",
                outcome: Outcome::Success,
                user_id: Some(user_id),
                credential_id: None,
                detail: format!("by {how}, rememberMe={remember_me}"),
            },
        )
        .map_err(ServiceError::from)
    })?;
    Ok(IssuedTokens { access_token, refresh_token, expires_in: security.access_token_lifetime_secs })
}

/// Opens a lifecycle API session (the checks were done by the caller) inside its transaction.
pub(super) fn open_portal_session(
    services: &Services,
    conn: &mut db::DbConnection,
    user_id: &str,
    now: i64,
) -> Result<IssuedTokens, ServiceError> {
    let access_token = secrets::new_token();
    let lifetime = services.config.security.access_token_lifetime_secs;
    tokens::insert(
        conn,
        &tokens::TokenRow {
            digest: secrets::token_digest(&access_token),
            user_id: user_id.to_string(),
            kind: tokens::PORTAL.into(),
            refresh_digest: None,
            expires_at: now + lifetime,
            revoked: false,
        },
    )?;
    Ok(IssuedTokens { access_token, refresh_token: None, expires_in: lifetime })
}

/// Checks a bearer access token of the CSC API (a CSC login or a lifecycle session).
pub fn authenticate(services: &Services, bearer: &str) -> Result<Principal, ServiceError> {
    check_bearer(services, bearer, &[tokens::ACCESS, tokens::PORTAL])
}

/// Checks a bearer token of the lifecycle API: only a lifecycle session, which needed the second factor.
pub fn authenticate_portal(services: &Services, bearer: &str) -> Result<Principal, ServiceError> {
    check_bearer(services, bearer, &[tokens::PORTAL])
}

fn check_bearer(services: &Services, bearer: &str, kinds: &[&str]) -> Result<Principal, ServiceError> {
    let digest = secrets::token_digest(bearer);
    let row = tokens::find(&mut *services.conn()?, &digest)?;
    match row {
        Some(t) if kinds.contains(&t.kind.as_str()) => {
            if t.revoked || t.expires_at <= services.now() {
                Err(ServiceError::ExpiredToken)
            } else {
                Ok(Principal { user_id: t.user_id, token_digest: digest })
            }
        }
        _ => Err(ServiceError::InvalidToken),
    }
}

/// Which kind of token `auth/revoke` is asked to revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTypeHint {
    AccessToken,
    RefreshToken,
}

/// `auth/revoke`: revokes one of the caller's own tokens (a refresh token takes its access tokens with it).
pub fn revoke(
    services: &Services,
    principal: &Principal,
    token: &str,
    hint: Option<TokenTypeHint>,
) -> Result<(), ServiceError> {
    let result = (|| {
        let mut conn = services.conn()?;
        let digest = secrets::token_digest(token);
        let row = tokens::find(&mut conn, &digest)?.filter(|t| t.user_id == principal.user_id && !t.revoked);
        let kind_matches = |kind: &str| match hint {
            Some(TokenTypeHint::AccessToken) => kind == tokens::ACCESS,
            Some(TokenTypeHint::RefreshToken) => kind == tokens::REFRESH,
            None => true,
        };
        let row = row.filter(|t| kind_matches(&t.kind)).ok_or(ServiceError::Invalid(Param::Token))?;
        db::write_transaction(&mut conn, |c| {
            tokens::revoke(c, &row.digest)?;
            audit::record(
                c,
                services.now(),
                AuditEvent {
                    event: "auth.revoke",
                    outcome: Outcome::Success,
                    user_id: Some(&principal.user_id),
                    credential_id: None,
                    detail: format!("{} token", row.kind),
                },
            )
            .map_err(ServiceError::from)
        })
    })();
    if let Err(e) = &result {
        services.audit_refusal("auth.revoke", Some(&principal.user_id), None, e);
    }
    result
}

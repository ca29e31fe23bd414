//! Service authorisation: `auth/login` (password, or a refresh token), bearer token checks, `auth/revoke`.

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::audit::{self, AuditEvent, Outcome};
use crate::db::{self, accounts, tokens};
use crate::domain::{secrets, AuditEventName, UserId};

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
///
/// Each turn also owns its Argon2 memory (19 MiB with the default parameters), allocated on first use
/// and kept. Allocating it per computation made the resident memory grow with every login: once glibc
/// has freed one such mmap'd block it raises its mmap threshold above 19 MiB, so later blocks come
/// from the per-thread malloc arenas, and each of the up to 8 x cores arenas keeps its block after the
/// free. Under a login flood (fuzzing) the server grew from ~100 MB to ~500 MB and stayed there; with
/// the memory kept per turn it stays at its start plus 19 MiB per core.
struct Argon2Turns {
    idle: std::sync::Mutex<Vec<Vec<Block>>>,
    freed: std::sync::Condvar,
}

struct Argon2Turn {
    turns: &'static Argon2Turns,
    memory: Vec<Block>,
}

impl Argon2Turns {
    fn new(turns: usize) -> Argon2Turns {
        Argon2Turns { idle: std::sync::Mutex::new((0..turns).map(|_| Vec::new()).collect()), freed: Default::default() }
    }

    /// The process's turns: one per core.
    fn take() -> Argon2Turn {
        static TURNS: std::sync::OnceLock<Argon2Turns> = std::sync::OnceLock::new();
        TURNS
            .get_or_init(|| Argon2Turns::new(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)))
            .take_turn()
    }

    fn take_turn(&'static self) -> Argon2Turn {
        // A poisoned lock only means another check panicked; the idle memories are still whole.
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(memory) = idle.pop() {
                return Argon2Turn { turns: self, memory };
            }
            idle = self.freed.wait(idle).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Argon2Turn {
    /// Argon2 over this turn's memory, sized once for the parameters (a stored hash with other
    /// parameters resizes it). The memory is wiped afterwards: it is derived from the password.
    fn hash_into(&mut self, argon2: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> argon2::Result<()> {
        let blocks = argon2.params().block_count();
        if self.memory.len() != blocks {
            self.memory = vec![Block::new(); blocks];
        }
        let result = argon2.hash_password_into_with_memory(password, salt, out, &mut self.memory[..]);
        self.memory.fill(Block::new());
        result
    }
}

impl Drop for Argon2Turn {
    fn drop(&mut self) {
        let memory = std::mem::take(&mut self.memory);
        self.turns.idle.lock().unwrap_or_else(|e| e.into_inner()).push(memory);
        self.turns.freed.notify_one();
    }
}

/// An Argon2id hash in the PHC string format (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), with the
/// argon2 crate's default parameters and a 16-byte random salt, as `Argon2::hash_password` makes it.
pub fn hash_password(password: &str) -> Result<String, ServiceError> {
    let params = Params::DEFAULT;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let salt = secrets::random_bytes::<16>();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2Turns::take().hash_into(&argon2, password.as_bytes(), &salt, &mut out).map_err(ServiceError::internal)?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(ServiceError::internal)?,
        salt: Some(Salt::new(&salt).map_err(ServiceError::internal)?),
        hash: Some(Output::new(&out).map_err(ServiceError::internal)?),
    };
    Ok(hash.to_string())
}

/// Checks a password against its Argon2 hash (PHC string, with the parameters it names). An empty
/// stored hash (an account not yet activated) matches nothing.
pub fn verify_password(password: &str, stored: &str) -> bool {
    let mut turn = Argon2Turns::take();
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else { return false };
    let Ok(version) = parsed.version.map(Version::try_from).transpose() else { return false };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    let argon2 = Argon2::new(algorithm, version.unwrap_or_default(), params);
    let mut out = vec![0u8; expected.len()];
    if turn.hash_into(&argon2, password.as_bytes(), salt, &mut out).is_err() {
        return false;
    }
    // `Output`'s equality is constant-time.
    Output::new(&out).is_ok_and(|computed| &computed == expected)
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
    if let db::accounts::LoginAttempt::Locked { until } = reserved {
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
    let user = accounts::by_username(&mut *services.conn()?, username)?;
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
            services.audit_refusal_detailed(
                AuditEventName::AuthLogin,
                user.as_ref().map(|u| u.id.as_str()),
                None,
                &refusal,
                detail,
            );
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
        services.audit_refusal(AuditEventName::AuthLogin, None, None, &ServiceError::Invalid(Param::RefreshToken));
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
                        client_id: None,
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
                client_id: None,
            },
        )?;
        let how = if from_refresh.is_some() { "refresh token" } else { "password" };
        audit::record(
            c,
            now,
            AuditEvent {
                event: AuditEventName::AuthLogin,
                outcome: Outcome::Success,
                user_id: Some(user_id),
                credential_id: None,
                detail: format!("by {how}, rememberMe={remember_me}"),
            },
        )
        .map_err(ServiceError::from)
    })?;
    // Committed: valid from now on, so its first request needs one blocking call too (see `SeenTokens`).
    let expires_at = now + security.access_token_lifetime_secs;
    services.seen_tokens.remember(&secrets::token_digest(&access_token), expires_at, now);
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
            client_id: None,
        },
    )?;
    Ok(IssuedTokens { access_token, refresh_token: None, expires_in: lifetime })
}

/// Checks a bearer access token of the CSC API (a CSC login or a lifecycle session), and remembers a
/// valid one in [`SeenTokens`] (as `auth/login` remembers the tokens it issues).
pub fn authenticate(services: &Services, bearer: &str) -> Result<Principal, ServiceError> {
    Bearer::of(bearer).judge_alone(services, &mut *services.conn()?)
}

/// Whether this node found the CSC bearer token valid by [`authenticate`] earlier and it has not expired
/// since. It decides only *when* the token is checked, never whether: see [`SeenTokens`].
pub fn seen_recently(services: &Services, bearer: &str) -> bool {
    services.seen_tokens.seen(&secrets::token_digest(bearer), services.now())
}

/// Checks a bearer token of the lifecycle API: only a lifecycle session, which needed the second factor.
pub fn authenticate_portal(services: &Services, bearer: &str) -> Result<Principal, ServiceError> {
    let digest = secrets::token_digest(bearer);
    let row = tokens::find(&mut *services.conn()?, &digest)?;
    judge(services, digest, row, &[tokens::PORTAL]).map(|(principal, _)| principal)
}

/// The bearer token of a call to a use case that reads the token's row in its own first statement, with
/// the rows it needs anyway (`signatures/signHash`, `signatures/signDoc`, `credentials/authorize`). For a
/// CSC token this node saw valid, that is one statement and one read transaction per request instead of
/// two. The row is judged as [`authenticate`] judges, also for a token judged earlier in the request (a
/// CSC token checked before the body was read, or a lifecycle session's principal), so a token revoked
/// since, on any node, is refused there.
pub struct Bearer {
    digest: String,
    /// A CSC request's token: remembered in [`SeenTokens`] when valid. A principal's token judged again is
    /// not (only CSC requests and `auth/login` decide what the CSC routes take as seen).
    from_csc: bool,
}

impl Bearer {
    /// The token of a CSC request, as the client sent it.
    pub fn of(token: &str) -> Bearer {
        Bearer { digest: secrets::token_digest(token), from_csc: true }
    }

    /// The token of a principal judged earlier in the request (a lifecycle session).
    pub fn of_principal(principal: &Principal) -> Bearer {
        Bearer { digest: principal.token_digest.clone(), from_csc: false }
    }

    /// Its digest, as the store keys tokens.
    pub(super) fn digest(&self) -> &str {
        &self.digest
    }

    /// The caller, from the token's row as the use case read it (None: no token has this digest). A valid
    /// CSC token is remembered in [`SeenTokens`]; a refused one is forgotten (revoked, perhaps on another
    /// node, since it was seen: its next request is checked before its body is read again).
    pub(super) fn judge(&self, services: &Services, row: Option<tokens::TokenRow>) -> Result<Principal, ServiceError> {
        match judge(services, self.digest.clone(), row, CSC_TOKEN_KINDS) {
            Ok((principal, expires_at)) => {
                if self.from_csc {
                    services.seen_tokens.remember(&principal.token_digest, expires_at, services.now());
                }
                Ok(principal)
            }
            Err(refused) => {
                services.seen_tokens.forget(&self.digest);
                Err(refused)
            }
        }
    }

    /// [`Bearer::judge`] with the token's row read on its own, for a request its use case refuses
    /// before its first statement (the caller is still judged first, and answered 401 when refused).
    pub(super) fn judge_alone(
        &self,
        services: &Services,
        conn: &mut db::DbConnection,
    ) -> Result<Principal, ServiceError> {
        let row = tokens::find(conn, &self.digest)?;
        self.judge(services, row)
    }
}

/// The tokens the CSC API takes: an `auth/login` token, a lifecycle session, an OAuth2 service token.
const CSC_TOKEN_KINDS: &[&str] = &[tokens::ACCESS, tokens::PORTAL, tokens::OAUTH_SERVICE];

/// The principal of a token row of one of `kinds` (None: no token has the digest), and when it expires.
fn judge(
    services: &Services,
    digest: String,
    row: Option<tokens::TokenRow>,
    kinds: &[&str],
) -> Result<(Principal, i64), ServiceError> {
    match row {
        Some(t) if kinds.contains(&t.kind.as_str()) => {
            if t.revoked || t.expires_at <= services.now() {
                Err(ServiceError::ExpiredToken)
            } else {
                let client_id = t.client_id.map(crate::domain::ClientId::new);
                Ok((Principal { user_id: UserId::new(t.user_id), token_digest: digest, client_id }, t.expires_at))
            }
        }
        _ => Err(ServiceError::InvalidToken),
    }
}

/// The CSC bearer tokens this node has found valid, or issued, by digest, with their expiry.
///
/// A CSC request is checked before its body is read, so that a caller without a valid token cannot
/// make the server read or parse a body: one hop onto a blocking thread for the token, another for the
/// use case. A client signing many times with one token pays that first hop on every request. A token
/// seen here (and not expired) lets the request read its body first and have the token checked in the
/// use case's own blocking call, against the store as always (before the use case, or by the use case's
/// own first statement: see [`Bearer`]): a token revoked since (on any node) is still refused there,
/// before anything is judged or written. Only the order changes, and only for a caller that held a valid
/// token. Bounded: when full, expired entries go, and if none had expired, all of them.
#[derive(Debug, Default)]
pub struct SeenTokens {
    expiries: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

/// Most tokens [`SeenTokens`] keeps (about 10 MiB).
const SEEN_TOKENS_MAX: usize = 65_536;

impl SeenTokens {
    fn remember(&self, digest: &str, expires_at: i64, now: i64) {
        let mut expiries = self.expiries.lock().unwrap_or_else(|e| e.into_inner());
        if expiries.contains_key(digest) {
            return;
        }
        if expiries.len() >= SEEN_TOKENS_MAX {
            expiries.retain(|_, expires_at| *expires_at > now);
            if expiries.len() >= SEEN_TOKENS_MAX {
                expiries.clear();
            }
        }
        expiries.insert(digest.to_owned(), expires_at);
    }

    fn forget(&self, digest: &str) {
        self.expiries.lock().unwrap_or_else(|e| e.into_inner()).remove(digest);
    }

    fn seen(&self, digest: &str, now: i64) -> bool {
        let expiries = self.expiries.lock().unwrap_or_else(|e| e.into_inner());
        expiries.get(digest).is_some_and(|expires_at| *expires_at > now)
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
        // A token issued to an OAuth2 client revokes only that client's tokens; the person's own login
        // revokes any token of their account.
        let row = tokens::find(&mut conn, &digest)?.filter(|t| {
            principal.user_id == t.user_id
                && !t.revoked
                && (principal.client_id.is_none() || principal.is_client(t.client_id.as_deref()))
        });
        let kind_matches = |kind: &str| match hint {
            Some(TokenTypeHint::AccessToken) => kind == tokens::ACCESS || kind == tokens::OAUTH_SERVICE,
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
                    event: AuditEventName::AuthRevoke,
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
        services.audit_refusal(AuditEventName::AuthRevoke, Some(&principal.user_id), None, e);
    }
    result
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    use super::*;

    #[test]
    fn hashes_are_interchangeable_with_the_argon2_crates_own() {
        let ours = hash_password("a passphrase 1").unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");
        assert!(Argon2::default().verify_password(b"a passphrase 1", &PasswordHash::new(&ours).unwrap()).is_ok());
        assert!(verify_password("a passphrase 1", &ours));
        assert!(!verify_password("a passphrase 2", &ours));

        // Hashes stored before (made by the crate) still verify, and only with their password.
        let theirs = Argon2::default().hash_password(b"older passphrase 7").unwrap().to_string();
        assert!(verify_password("older passphrase 7", &theirs));
        assert!(!verify_password("older passphrase 8", &theirs));
        // Other parameters are read from the hash.
        let light = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(1024, 1, 1, None).unwrap());
        let light = light.hash_password(b"light 3").unwrap().to_string();
        assert!(verify_password("light 3", &light));
        assert!(!verify_password("light 4", &light));
        assert!(!verify_password("", ""));
        assert!(!verify_password("x", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ"));
    }

    #[test]
    fn a_turn_keeps_its_memory_and_wipes_it() {
        let turns: &'static Argon2Turns = Box::leak(Box::new(Argon2Turns::new(1)));
        let argon2 = Argon2::default();
        let mut out = [0u8; 32];
        let mut turn = turns.take_turn();
        turn.hash_into(&argon2, b"keep 1", b"saltsaltsalt", &mut out).unwrap();
        let address = turn.memory.as_ptr();
        drop(turn);
        let mut turn = turns.take_turn();
        assert_eq!(turn.memory.len(), Params::DEFAULT.block_count());
        assert_eq!(turn.memory.as_ptr(), address, "the same memory, not a new allocation");
        assert!(turn.memory.iter().all(|b| b.as_ref().iter().all(|w| *w == 0)), "wiped after use");
        let mut again = [0u8; 32];
        turn.hash_into(&argon2, b"keep 1", b"saltsaltsalt", &mut again).unwrap();
        assert_eq!(out, again);
    }
}

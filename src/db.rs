//! Storage: diesel over SQLite (the embedded default) or PostgreSQL, chosen by the URL scheme.
//! Repository functions take `&mut DbConnection` and run on blocking threads.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{CustomizeConnection, ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::metrics::METRICS;

pub(crate) mod accounts;
pub mod audit;
pub(crate) mod authenticators;
pub(crate) mod ca;
pub mod credentials;
pub mod crls;
pub(crate) mod installation;
pub(crate) mod operators;
pub(crate) mod orders;
pub mod outbox;
pub(crate) mod resets;
pub mod sads;
pub mod schema;
pub(crate) mod tokens;
pub(crate) mod verifications;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Pg(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

pub(crate) type DbPool = Pool<DbManager>;
pub(crate) type PooledDb = PooledConnection<DbManager>;

/// The database behind a URL, told by its scheme alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `sqlite://…` or `postgres://…` / `postgresql://…`; anything else is no database rssp knows.
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite://") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// How long a PostgreSQL connection attempt may take (libpq `connect_timeout`), unless the URL sets
/// its own: an unreachable host fails in seconds instead of hanging the start.
const PG_CONNECT_TIMEOUT_SECS: u32 = 5;

/// Opens connections of the one backend the URL names. diesel's `MultiConnection` would try every
/// backend in turn and report only "Invalid connection url for multiconnection", hiding the server's
/// own reason (refused port, unknown database or role, bad password).
#[derive(Clone)]
pub struct DbManager {
    backend: Backend,
    /// What the backend's driver is given: a file path for SQLite, the URL for PostgreSQL.
    target: String,
}

/// The target without its passwords: r2d2's `Pool` prints its manager in its own `Debug`.
impl std::fmt::Debug for DbManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = match self.backend {
            Backend::Sqlite => self.target.clone(),
            Backend::Postgres => redact_url(&self.target),
        };
        f.debug_struct("DbManager").field("backend", &self.backend).field("target", &target).finish()
    }
}

impl DbManager {
    pub fn new(url: &str) -> Result<DbManager, DbError> {
        match Backend::of_url(url) {
            Some(Backend::Sqlite) => Ok(DbManager {
                backend: Backend::Sqlite,
                target: url.strip_prefix("sqlite://").unwrap_or(url).to_string(),
            }),
            Some(Backend::Postgres) => {
                let target = if url.contains("connect_timeout=") {
                    url.to_string()
                } else {
                    let separator = if url.contains('?') { '&' } else { '?' };
                    format!("{url}{separator}connect_timeout={PG_CONNECT_TIMEOUT_SECS}")
                };
                Ok(DbManager { backend: Backend::Postgres, target })
            }
            None => Err(DbError::Setup(format!(
                "database URL {} must start with sqlite://, postgres:// or postgresql://",
                redact_url(url)
            ))),
        }
    }

    fn establish(&self) -> diesel::ConnectionResult<DbConnection> {
        match self.backend {
            Backend::Sqlite => diesel::SqliteConnection::establish(&self.target).map(DbConnection::Sqlite),
            Backend::Postgres => diesel::PgConnection::establish(&self.target).map(DbConnection::Pg),
        }
    }
}

impl ManageConnection for DbManager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, diesel::r2d2::Error> {
        self.establish().map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// The URL with every password replaced by `***`, for messages and logs: the one in the user
/// information and every query parameter whose name ends in `password` (`password`, `sslpassword`).
///
/// libpq takes the user information up to the first `@` before the first `/`, but a password may hold
/// an unencoded `@`, `/`, `?` or `#` (libpq then misreads the URL, and its error may quote it). So the
/// user information here ends at the last `@` before the first `?` that follows an `@`: whatever libpq
/// would take for the password lies inside it, and at worst more than the password is hidden.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (user_info, after) = split_user_info(rest);
    let user = match user_info {
        Some(info) => match info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@"),
            None => format!("{info}@"),
        },
        None => String::new(),
    };
    format!("{scheme}://{user}{}", redact_password_parameters(after))
}

/// (user information, the rest after its `@`), see [`redact_url`] for where it ends.
fn split_user_info(rest: &str) -> (Option<&str>, &str) {
    let Some(first_at) = rest.find('@') else {
        return (None, rest);
    };
    let query = rest[first_at..].find('?').map_or(rest.len(), |i| first_at + i);
    let at = rest[..query].rfind('@').unwrap_or(first_at);
    (Some(&rest[..at]), &rest[at + 1..])
}

/// Every `name=value` between `?` and `&` whose (percent-decoded) name ends in `password` gets `***`.
/// Both separators count anywhere, so a parameter is found also when the user information swallowed
/// the `?` before it.
fn redact_password_parameters(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut segment_start = 0;
    for (i, c) in text.char_indices().chain(std::iter::once((text.len(), '&'))) {
        if c != '?' && c != '&' {
            continue;
        }
        let segment = &text[segment_start..i];
        match segment.split_once('=') {
            Some((name, _)) if segment_start > 0 && is_password_parameter(name) => {
                out.push_str(name);
                out.push_str("=***");
            }
            _ => out.push_str(segment),
        }
        if i < text.len() {
            out.push(c);
        }
        segment_start = i + c.len_utf8();
    }
    out
}

fn is_password_parameter(name: &str) -> bool {
    percent_decode(name).to_ascii_lowercase().ends_with("password")
}

/// `%XX` decoded (as libpq does for user information and parameters); anything else kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every form in which a password of the URL may appear in a driver's message: the URL itself, the
/// password of the user information and of each password parameter, raw and percent-decoded.
fn secret_candidates(url: &str) -> Vec<String> {
    let mut candidates = vec![url.to_string()];
    if let Some((_, rest)) = url.split_once("://") {
        let (user_info, after) = split_user_info(rest);
        if let Some((_, password)) = user_info.and_then(|info| info.split_once(':')) {
            candidates.push(password.to_string());
        }
        for segment in after.split(['?', '&']).skip(1) {
            if let Some((name, value)) = segment.split_once('=') {
                if is_password_parameter(name) {
                    candidates.push(value.to_string());
                }
            }
        }
    }
    let decoded: Vec<String> = candidates.iter().map(|c| percent_decode(c)).collect();
    candidates.extend(decoded);
    candidates.retain(|c| !c.is_empty());
    // Longest first, so that a password inside the URL does not break the URL's own replacement.
    candidates.sort_by_key(|c| std::cmp::Reverse(c.len()));
    candidates.dedup();
    candidates
}

/// Names libpq quotes in its messages ("invalid integer value … for connection option \"port\"").
const LIBPQ_OPTION_NAMES: &[&str] =
    &["host", "hostaddr", "port", "dbname", "user", "connect_timeout", "sslmode", "options", "application_name"];

/// A driver's error text made safe to show next to `redact_url(url)`: every secret candidate is
/// replaced, and so is every double-quoted token that the redacted URL does not show anyway. libpq
/// quotes what it failed to parse, and when it misreads a URL (a password with a `/`, a bad `%`
/// escape, an unclosed `[`) the quoted part can be the password, a piece of it, or the whole URL.
/// Tokens the redacted URL shows (host, port, user, database), libpq's option names and socket paths
/// stay readable. Candidates shorter than 4 characters are replaced only as whole quoted tokens, so
/// that a password `x` does not turn "exist" into "e***ist".
pub fn scrub_driver_text(text: &str, url: &str) -> String {
    let candidates = secret_candidates(url);
    let mut text = text.to_string();
    for candidate in candidates.iter().filter(|c| c.chars().count() >= 4) {
        text = text.replace(candidate.as_str(), "***");
    }
    let shown = redact_url(url);
    let readable = |token: &str| {
        !candidates.iter().any(|c| c == token)
            && (token.is_empty()
                || token == "***"
                || shown.contains(token)
                || LIBPQ_OPTION_NAMES.contains(&token)
                || token.contains(".s.PGSQL."))
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(open) = rest.find('"') {
        let Some(len) = rest[open + 1..].find('"') else {
            break;
        };
        let token = &rest[open + 1..open + 1 + len];
        out.push_str(&rest[..=open]);
        out.push_str(if readable(token) { token } else { "***" });
        out.push('"');
        rest = &rest[open + len + 2..];
    }
    out.push_str(rest);
    out
}

thread_local! {
    /// Pooled connections the current thread holds (see [`checkout`]).
    static HELD: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// A pooled connection, counted while the thread holds it.
///
/// A thread that holds one connection and waits for a second can deadlock the pool under load: every
/// connection is held by a request that waits for another (a flood of bad logins did exactly this).
/// So no code path may ask for a connection while it holds one; debug builds (and so the tests)
/// panic when one does, release builds log it.
pub struct Conn {
    inner: PooledDb,
}

impl std::ops::Deref for Conn {
    type Target = DbConnection;
    fn deref(&self) -> &DbConnection {
        &self.inner
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.inner
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        HELD.with(|held| held.set(held.get().saturating_sub(1)));
    }
}

/// Takes a connection from the pool, waiting at most the pool's connection timeout (for start-up and
/// operator commands; requests wait less, see `Services::conn`).
pub fn checkout(pool: &DbPool) -> Result<Conn, DbError> {
    checkout_within(pool, pool.connection_timeout())
}

/// Takes a connection from the pool, waiting at most `wait`.
pub fn checkout_within(pool: &DbPool, wait: std::time::Duration) -> Result<Conn, DbError> {
    let already = HELD.with(|held| held.get());
    if already > 0 {
        tracing::error!(held = already, "a database connection was asked for while this thread holds one");
        debug_assert!(
            already == 0,
            "nested database connection checkout: release the first connection before asking for another"
        );
    }
    // An idle connection is taken at once; only the waits (and their time-outs) are counted.
    let inner = match pool.try_get() {
        Some(conn) => conn,
        None => {
            METRICS.db_pool_waits.inc();
            pool.get_timeout(wait).map_err(|_| {
                METRICS.db_pool_timeouts.inc();
                DbError::Busy
            })?
        }
    };
    HELD.with(|held| held.set(held.get() + 1));
    Ok(Conn { inner })
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database pool: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    /// No pooled connection became free within the pool's wait: the service is overloaded.
    #[error("no database connection free in time")]
    Busy,
    #[error("database set-up: {0}")]
    Setup(String),
}

/// SQLite behind a pool needs WAL (readers never wait for the writer; set once by [`connect`], it
/// stays in the file) and, on every connection, a busy timeout and foreign keys.
#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<DbConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        if let DbConnection::Sqlite(c) = conn {
            c.batch_execute("PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
                .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// How long opening the pool may wait for its first connections (a busy machine, a slow network).
const OPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Opens the pool and brings the schema up to date. One connection is made first, directly, so that a
/// database that cannot be reached stops the start at once with the driver's own reason (and the URL
/// without its password) instead of after the pool's wait. Once that worked, opening the pool may
/// wait up to 30 s for its first connections, and so may [`checkout`]; requests use
/// [`checkout_within`] with a short wait.
pub fn connect(url: &str, max_size: u32) -> Result<DbPool, DbError> {
    let manager = DbManager::new(url)?;
    let mut first = manager.establish().map_err(|e| {
        DbError::Setup(format!(
            "cannot connect to the {} database {}: {}",
            manager.backend.name(),
            redact_url(url),
            scrub_driver_text(e.to_string().trim_end(), url)
        ))
    })?;
    if let DbConnection::Sqlite(c) = &mut first {
        // WAL is a property of the file: set once here, while no other connection exists. Setting it
        // on every pooled connection made connections opened together fail with "database is locked".
        c.batch_execute("PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL;")
            .map_err(|e| DbError::Setup(format!("SQLite journal mode: {e}")))?;
    }
    drop(first);
    let pool = Pool::builder()
        .max_size(max_size)
        .connection_timeout(OPEN_WAIT)
        .connection_customizer(Box::new(SqlitePragmas))
        .build(manager)
        .map_err(|e| DbError::Setup(scrub_driver_text(&e.to_string(), url)))?;
    let mut conn = pool.get()?;
    let result = match &mut *conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
        DbConnection::Pg(c) => migrate_postgres(c),
    };
    result.map_err(|e| DbError::Setup(format!("migrations: {e}")))?;
    Ok(pool)
}

/// Key of the PostgreSQL advisory lock held while migrations run.
const MIGRATION_LOCK: i64 = 0x0072_7373_706d_6967; // "rsspmig"

/// Runs the PostgreSQL migrations under a session advisory lock: nodes that start together queue here,
/// and the ones after the first find nothing pending (two nodes running one migration at once would
/// fail on the second's DDL or on the migrations table).
fn migrate_postgres(c: &mut diesel::PgConnection) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
    let result = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ());
    // The lock also ends with the session; unlocking is only to let the next node go on at once.
    let _ = c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
    result
}

/// Readiness of the database: a connection within `wait` that answers, with every migration this build
/// knows applied. Errors say which, never the server's text (it may name hosts or roles).
pub fn check_ready(pool: &DbPool, wait: std::time::Duration) -> Result<(), &'static str> {
    let mut conn = checkout_within(pool, wait).map_err(|_| "unreachable")?;
    let pending = match &mut *conn {
        DbConnection::Sqlite(c) => c.has_pending_migration(SQLITE_MIGRATIONS),
        DbConnection::Pg(c) => c.has_pending_migration(POSTGRES_MIGRATIONS),
    };
    match pending {
        Ok(false) => Ok(()),
        Ok(true) => Err("migrations pending"),
        Err(_) => Err("unreachable"),
    }
}

/// Publishes the pool's state (connections in use and idle) to the metrics.
pub fn observe_pool(pool: &DbPool) {
    let state = pool.state();
    let idle = i64::from(state.idle_connections);
    METRICS.db_connections.with_label_values(&["in_use"]).set(i64::from(state.connections) - idle);
    METRICS.db_connections.with_label_values(&["idle"]).set(idle);
}

/// Runs `f` in a write transaction. On SQLite it is `BEGIN IMMEDIATE`, so that two writers queue on
/// the busy timeout instead of failing when a read lock is upgraded.
pub fn write_transaction<T, E>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    // PostgreSQL: READ COMMITTED explicitly, because the conditional updates (SAD budget, TOTP step,
    // audit head) rely on re-reading the row after waiting for its lock.
    let begin = match conn {
        DbConnection::Sqlite(_) => "BEGIN IMMEDIATE",
        DbConnection::Pg(_) => "BEGIN ISOLATION LEVEL READ COMMITTED",
    };
    conn.batch_execute(begin)?;
    let mut open = OpenTransaction { conn: Some(conn) };
    // The guard holds the connection so that it can roll back on drop; it was set just above.
    #[allow(clippy::expect_used)]
    let conn = open.conn.as_deref_mut().expect("set just above");
    let result = f(conn);
    let outcome = match result {
        Ok(value) => conn.batch_execute("COMMIT").map(|_| value).map_err(E::from),
        Err(e) => Err(e),
    };
    // On an error (including a failed COMMIT) the guard rolls back when dropped; on success there is
    // nothing left to roll back.
    if outcome.is_ok() {
        open.conn = None;
    }
    outcome
}

/// Rolls back a transaction that was not committed, also when the work inside it panicked, so no
/// pooled connection is handed out with a transaction still open.
struct OpenTransaction<'a> {
    conn: Option<&'a mut DbConnection>,
}

impl Drop for OpenTransaction<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Failing to roll back leaves nothing better to do; the first error is what the caller sees.
            let _ = conn.batch_execute("ROLLBACK");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_comes_from_the_scheme_and_the_password_never_shows() {
        assert_eq!(Backend::of_url("sqlite:///tmp/x.sqlite"), Some(Backend::Sqlite));
        assert_eq!(Backend::of_url("postgres://u@h/db"), Some(Backend::Postgres));
        assert_eq!(Backend::of_url("postgresql://u@h/db"), Some(Backend::Postgres));
        assert_eq!(Backend::of_url("mysql://u@h/db"), None);
        assert_eq!(redact_url("postgres://rssp:s3cret@db:5432/rssp"), "postgres://rssp:***@db:5432/rssp");
        assert_eq!(
            redact_url("postgres://rssp:p@ss@db/rssp?sslmode=require"),
            "postgres://rssp:***@db/rssp?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://rssp@db/rssp?password=s3cret&x=1"),
            "postgres://rssp@db/rssp?password=***&x=1"
        );
        assert_eq!(redact_url("postgres://db/rssp"), "postgres://db/rssp");
        assert_eq!(redact_url("sqlite:///var/lib/rssp/rssp.sqlite"), "sqlite:///var/lib/rssp/rssp.sqlite");
        let manager = DbManager::new("postgres://u@h/db").unwrap();
        assert_eq!(manager.target, "postgres://u@h/db?connect_timeout=5");
        let manager = DbManager::new("postgres://u@h/db?sslmode=require&connect_timeout=2").unwrap();
        assert_eq!(manager.target, "postgres://u@h/db?sslmode=require&connect_timeout=2");
        assert!(DbManager::new("mysql://u:pw@h/db").unwrap_err().to_string().contains("u:***@h"));
    }

    /// (URL, its secret, what `redact_url` shows): a password in the user information with the
    /// characters that cut URLs elsewhere, in parameters (any name ending in `password`), or both.
    const SECRET_URLS: &[(&str, &str, &str)] = &[
        ("postgres://db.invalid/rssp?password=S3CRETQ", "S3CRETQ", "postgres://db.invalid/rssp?password=***"),
        ("postgres://rssp:pa#SS3CRET@127.0.0.1:1/rssp", "SS3CRET", "postgres://rssp:***@127.0.0.1:1/rssp"),
        ("postgres://rssp:pa/SS3CRET@127.0.0.1:1/rssp", "SS3CRET", "postgres://rssp:***@127.0.0.1:1/rssp"),
        ("postgres://rssp:pa?SS3CRET@127.0.0.1:1/rssp?x=1", "SS3CRET", "postgres://rssp:***@127.0.0.1:1/rssp?x=1"),
        ("postgres://rssp:S3CR%zzET@127.0.0.1:1/rssp", "S3CR", "postgres://rssp:***@127.0.0.1:1/rssp"),
        ("postgres://rssp:S3CRETV6@[::1/rssp", "S3CRETV6", "postgres://rssp:***@[::1/rssp"),
        (
            "postgres://rssp@127.0.0.1:1/rssp?sslmode=require&sslpassword=S3CRETK",
            "S3CRETK",
            "postgres://rssp@127.0.0.1:1/rssp?sslmode=require&sslpassword=***",
        ),
        (
            "postgres://rssp@127.0.0.1:1/rssp?%70assword=S3CRETE",
            "S3CRETE",
            "postgres://rssp@127.0.0.1:1/rssp?%70assword=***",
        ),
        ("postgres://rssp:S3CRET%2FX@127.0.0.1:1/rssp", "S3CRET", "postgres://rssp:***@127.0.0.1:1/rssp"),
        // An `@` only in the query: taken for the end of user information (a password may hold `/`
        // and `?`), which hides more than needed but never the password parameter after it.
        ("postgres://127.0.0.1:1/rssp?user=a@b&password=S3CRETU", "S3CRETU", "postgres://127.0.0.1:***@b&password=***"),
    ];

    #[test]
    fn no_password_survives_redaction_in_any_position() {
        for (url, secret, shown) in SECRET_URLS {
            let redacted = redact_url(url);
            assert_eq!(&redacted, shown, "{url}");
            assert!(!redacted.contains(secret), "{url}: {redacted}");
        }
    }

    #[test]
    fn the_drivers_own_text_never_quotes_a_password() {
        // The real libpq: each URL fails (bad syntax, or nothing listens on port 1), and its message
        // is shown scrubbed.
        for (url, secret, _) in SECRET_URLS {
            let err = connect(url, 1).expect_err(url).to_string();
            assert!(!err.contains(secret), "{url}: {err}");
            assert!(!err.contains(url), "{url}: {err}");
        }
        // What it quotes that the URL shows anyway stays readable.
        let url = "postgres://rssp:S3CRET@127.0.0.1:1/rssp";
        let text = "connection to server at \"127.0.0.1\", port 1 failed: Connection refused";
        assert_eq!(scrub_driver_text(text, url), text);
        let text = "invalid integer value \"pa\" for connection option \"port\"";
        assert_eq!(
            scrub_driver_text(text, "postgres://rssp:pa/S3CRET@h/db"),
            "invalid integer value \"***\" for connection option \"port\""
        );
        // A short password is not cut out of words, but never shown as a token.
        let text = "FATAL:  role \"rssp\" does not exist; token \"x\"";
        assert_eq!(
            scrub_driver_text(text, "postgres://rssp:x@h/db"),
            "FATAL:  role \"rssp\" does not exist; token \"***\""
        );
        let text = "invalid percent-encoded token: \"S3CR%zzET\"";
        assert_eq!(scrub_driver_text(text, "postgres://rssp:S3CR%zzET@h/db"), "invalid percent-encoded token: \"***\"");
    }

    #[test]
    fn the_debug_form_of_a_pool_hides_the_password() {
        let manager = DbManager::new("postgres://rssp:S3CRETD@127.0.0.1:1/rssp?sslpassword=S3CRETS").unwrap();
        let shown = format!("{manager:?}");
        assert!(!shown.contains("S3CRET"), "{shown}");
        assert!(shown.contains("127.0.0.1:1"), "{shown}");
        let dir = tempfile::tempdir().unwrap();
        let pool = connect(&format!("sqlite://{}", dir.path().join("x.sqlite").display()), 2).unwrap();
        assert!(format!("{pool:?}").contains("DbManager"));
        // A pool over PostgreSQL built without connecting: its Debug prints the manager.
        let pool = Pool::builder().min_idle(Some(0)).build_unchecked(manager);
        let shown = format!("{pool:?}");
        assert!(!shown.contains("S3CRET") && shown.contains("***"), "{shown}");
    }

    /// The migrations of one backend's tree: each directory's name with the files it holds.
    fn migration_tree(backend: &str) -> std::collections::BTreeMap<String, Vec<String>> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend);
        let mut tree = std::collections::BTreeMap::new();
        for entry in std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display())) {
            let entry = entry.unwrap();
            if !entry.file_type().unwrap().is_dir() {
                continue;
            }
            let mut files: Vec<String> = std::fs::read_dir(entry.path())
                .unwrap()
                .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            tree.insert(entry.file_name().to_string_lossy().into_owned(), files);
        }
        tree
    }

    /// A node on PostgreSQL must end with the schema a node on SQLite has: every migration exists in
    /// both trees under the same name, with an up.sql and, where one tree has it, a down.sql in both.
    #[test]
    fn sqlite_and_postgres_hold_the_same_migrations() {
        let sqlite = migration_tree("sqlite");
        let postgres = migration_tree("postgres");
        assert!(!sqlite.is_empty(), "no migrations found under migrations/sqlite");
        let names = |tree: &std::collections::BTreeMap<String, Vec<String>>| tree.keys().cloned().collect::<Vec<_>>();
        assert_eq!(names(&sqlite), names(&postgres), "migration directories differ between sqlite and postgres");
        for (name, files) in &sqlite {
            assert!(files.contains(&"up.sql".to_string()), "migrations/sqlite/{name} has no up.sql");
            assert_eq!(files, &postgres[name], "{name}: the files differ between sqlite and postgres");
        }
        // What the binary embeds (and runs) is the same list, in the same order, for both.
        let embedded_sqlite: Vec<String> =
            diesel::migration::MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS)
                .unwrap()
                .iter()
                .map(|m| m.name().to_string())
                .collect();
        let embedded_postgres: Vec<String> =
            diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(&POSTGRES_MIGRATIONS)
                .unwrap()
                .iter()
                .map(|m| m.name().to_string())
                .collect();
        assert_eq!(embedded_sqlite, embedded_postgres);
        assert_eq!(embedded_sqlite.len(), sqlite.len(), "{embedded_sqlite:?}");
    }

    #[test]
    fn sqlite_is_in_wal_mode_and_each_connection_has_its_pragmas() {
        let dir = tempfile::tempdir().unwrap();
        let pool = connect(&format!("sqlite://{}", dir.path().join("x.sqlite").display()), 4).unwrap();
        #[derive(QueryableByName)]
        struct Mode {
            #[diesel(sql_type = diesel::sql_types::Text)]
            journal_mode: String,
        }
        #[derive(QueryableByName)]
        struct Keys {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            foreign_keys: i32,
        }
        let mut held = Vec::new();
        for _ in 0..4 {
            let mut conn = pool.get().unwrap();
            let DbConnection::Sqlite(c) = &mut *conn else { panic!("SQLite") };
            let mode: Mode = diesel::sql_query("PRAGMA journal_mode").get_result(c).unwrap();
            assert_eq!(mode.journal_mode, "wal");
            let keys: Keys = diesel::sql_query("PRAGMA foreign_keys").get_result(c).unwrap();
            assert_eq!(keys.foreign_keys, 1);
            held.push(conn);
        }
    }
}

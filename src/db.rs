//! Storage: diesel over SQLite (the embedded default) or PostgreSQL, chosen by the URL scheme.
//! Repository functions take `&mut DbConnection` and run on blocking threads.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{CustomizeConnection, ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::metrics::METRICS;

pub mod accounts;
pub mod audit;
pub mod ca;
pub mod credentials;
pub mod crls;
pub mod operators;
pub mod orders;
pub mod outbox;
pub mod resets;
pub mod sads;
pub mod schema;
pub mod tokens;
pub mod users;
pub mod verifications;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Pg(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

pub type DbPool = Pool<DbManager>;
pub type PooledDb = PooledConnection<DbManager>;

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
#[derive(Debug, Clone)]
pub struct DbManager {
    backend: Backend,
    /// What the backend's driver is given: a file path for SQLite, the URL for PostgreSQL.
    target: String,
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

    pub fn backend(&self) -> Backend {
        self.backend
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

/// The URL with its password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // The authority ends at the first '/', '?' or '#'; user information ends at its last '@'.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let (user_info, host) = authority.split_at(at);
    let user = match user_info.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None => user_info.to_string(),
    };
    // A password can also be given as a query parameter.
    let tail = redact_query_password(tail);
    format!("{scheme}://{user}{host}{tail}")
}

fn redact_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_string();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
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

/// SQLite behind a pool needs WAL (readers never wait for the writer) and a busy timeout.
#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<DbConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        if let DbConnection::Sqlite(c) = conn {
            c.batch_execute(
                "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
            )
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
    let first = manager.establish().map_err(|e| {
        DbError::Setup(format!(
            "cannot connect to the {} database {}: {}",
            manager.backend.name(),
            redact_url(url),
            e.to_string().trim_end()
        ))
    })?;
    drop(first);
    let pool = Pool::builder()
        .max_size(max_size)
        .connection_timeout(OPEN_WAIT)
        .connection_customizer(Box::new(SqlitePragmas))
        .build(manager)
        .map_err(|e| DbError::Setup(e.to_string()))?;
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
}

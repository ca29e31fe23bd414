//! Storage: diesel over SQLite (the embedded default) or PostgreSQL, chosen by the URL scheme.
//! Repository functions take `&mut DbConnection` and run on blocking threads.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
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

pub type DbPool = Pool<ConnectionManager<DbConnection>>;
pub type PooledDb = PooledConnection<ConnectionManager<DbConnection>>;

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

/// Opens the pool and brings the schema up to date. Opening may wait up to 30 s for the first
/// connections, and so may [`checkout`]; requests use [`checkout_within`] with a short wait.
pub fn connect(url: &str, max_size: u32) -> Result<DbPool, DbError> {
    let url = url.strip_prefix("sqlite://").map(str::to_string).unwrap_or_else(|| url.to_string());
    let manager = ConnectionManager::<DbConnection>::new(url);
    let pool = Pool::builder()
        .max_size(max_size)
        .connection_timeout(OPEN_WAIT)
        .connection_customizer(Box::new(SqlitePragmas))
        .build(manager)
        .map_err(|e| DbError::Setup(e.to_string()))?;
    let mut conn = pool.get()?;
    let result = match &mut *conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
        DbConnection::Pg(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ()),
    };
    result.map_err(|e| DbError::Setup(format!("migrations: {e}")))?;
    Ok(pool)
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

//! Storage: diesel over SQLite (the embedded default) or PostgreSQL, chosen by the URL scheme.
//! Repository functions take `&mut DbConnection` and run on blocking threads.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub mod accounts;
pub mod audit;
pub mod ca;
pub mod credentials;
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

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database pool: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
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

/// Opens the pool and brings the schema up to date.
pub fn connect(url: &str, max_size: u32) -> Result<DbPool, DbError> {
    let url = url.strip_prefix("sqlite://").map(str::to_string).unwrap_or_else(|| url.to_string());
    let manager = ConnectionManager::<DbConnection>::new(url);
    let pool = Pool::builder()
        .max_size(max_size)
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

//! Storage: diesel over SQLite (the embedded default) or PostgreSQL, chosen by the URL scheme.
//! Repository functions take `&mut DbConnection` and run on blocking threads.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub mod audit;
pub mod ca;
pub mod credentials;
pub mod sads;
pub mod schema;
pub mod tokens;
pub mod users;

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
    let begin = match conn {
        DbConnection::Sqlite(_) => "BEGIN IMMEDIATE",
        DbConnection::Pg(_) => "BEGIN",
    };
    conn.batch_execute(begin)?;
    match f(conn) {
        Ok(value) => {
            conn.batch_execute("COMMIT")?;
            Ok(value)
        }
        Err(e) => {
            // The transaction failed already; a failed rollback would only hide the first error.
            let _ = conn.batch_execute("ROLLBACK");
            Err(e)
        }
    }
}

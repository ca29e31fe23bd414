//! SQLite: copies the write-ahead log into the database file on a thread of its own.
//!
//! By default SQLite does that copy (a checkpoint) in whichever commit grows the log past 1,000 pages,
//! inside that COMMIT: the committing request waits for the copy and its fsyncs, and since this process
//! lets one writer in at a time (`SqliteWriterTurn`), so does every request that writes after it. Under
//! signing load that was a stall of about 20 ms several times a second, the slowest 1% of requests.
//! Here the server's connections leave the copy to this thread (`wal_autocheckpoint` raised to
//! `FALLBACK_CHECKPOINT_PAGES`, which only a stopped thread would let the log reach), and it copies every
//! [`INTERVAL`]: first while writers go on (the bulk of the copy and its fsyncs), then, holding the writer
//! turn for a moment, what was committed meanwhile (a few pages, and the fsyncs again), so that the log is
//! wholly copied and the next writer starts it again from its beginning instead of letting it grow.
//!
//! Operator commands that open the server's services (`rssp ...` with the data directory) run one too;
//! two checkpointers on one file simply take turns. A connection opened alone (`db::connect`) keeps
//! SQLite's default.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::Connection;

use super::{DbError, SqliteWriterTurn};

/// How often the log is copied: at full signing load a few thousand pages (some megabytes of log).
const INTERVAL: Duration = Duration::from_millis(250);
/// How often a failing checkpoint is logged.
const WARNING_EVERY: Duration = Duration::from_secs(60);

/// The running checkpointer; it stops when this is dropped (with the server's services), after the copy
/// it may be doing: once dropped, nothing copies.
#[derive(Debug)]
pub struct WalCheckpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WalCheckpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // At most one checkpoint's time; a thread that panicked has nothing left to stop.
            let _ = thread.join();
        }
    }
}

impl WalCheckpointer {
    /// Starts the thread on a connection of its own to the SQLite file at `path`.
    pub(super) fn start(path: &str) -> Result<WalCheckpointer, DbError> {
        let mut conn = diesel::SqliteConnection::establish(path)
            .map_err(|e| DbError::Setup(format!("SQLite checkpoint connection: {e}")))?;
        conn.batch_execute("PRAGMA busy_timeout = 10000; PRAGMA wal_autocheckpoint = 0;")
            .map_err(|e| DbError::Setup(format!("SQLite checkpoint connection: {e}")))?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&mut conn, &stopped))
            .map_err(|e| DbError::Setup(format!("SQLite checkpoint thread: {e}")))?;
        Ok(WalCheckpointer { stop: Some(stop), thread: Some(thread) })
    }
}

fn run(conn: &mut diesel::SqliteConnection, stopped: &mpsc::Receiver<()>) {
    let mut last_warning: Option<Instant> = None;
    loop {
        match stopped.recv_timeout(INTERVAL) {
            Err(RecvTimeoutError::Timeout) => {}
            // The sender was dropped: the server stopped. (Nothing is ever sent.)
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        // The bulk, while writers go on; then the rest between two writers. A failure (the disk, a lock
        // held past the busy timeout) is tried again at the next turn: the log only grows meanwhile (and
        // the connections copy it themselves past their fallback size), nothing is lost.
        let copied = conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE)").and_then(|()| {
            let _turn = SqliteWriterTurn::take();
            conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE)")
        });
        if let Err(e) = copied {
            // Said once a minute, not four times a second.
            if last_warning.is_none_or(|at| at.elapsed() >= WARNING_EVERY) {
                tracing::warn!(error = %e, "SQLite checkpoint failed; trying again");
                last_warning = Some(Instant::now());
            }
        }
    }
}

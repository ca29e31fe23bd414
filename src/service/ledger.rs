//! The ledger: the writes on the signing hot path (a signHash's reservation, an authorize's code and
//! SAD), made for many requests in one transaction.
//!
//! Every signature needs such a write before the HSM signs, and one transaction per request made the
//! database the bottleneck: a BEGIN and COMMIT, the audit head read and moved, and (on SQLite) the pages
//! written to the log each time, one writer at a time. Here a request queues its write and waits for the
//! ledger's turn; whoever holds the turn writes every write queued so far in one transaction, each judged
//! exactly as alone (in the order they queued), then hands each request its own answer. A request whose
//! write was made by another comes out with its answer at once.
//!
//! Nothing becomes weaker: each write is a conditional write on the rows as they stand in that
//! transaction, judged at the time the batch is written, so the same SAD in two writes of one batch is
//! spent once per authorised occurrence, and the same TOTP code in two is accepted once, as in two
//! transactions. A refused write leaves behind only what it would leave alone (a factor's failure
//! counter); an answer is handed out only after the COMMIT. A database error in any write, or a failed
//! COMMIT, fails every request of the batch (the transaction rolled back; if the connection broke during
//! the COMMIT its outcome is unknown, which costs at most the budget or code of those requests, never an
//! extra signature). The audit records chain one after the other as before, each with its own request's
//! id, after the batch's row writes (the head is locked last, as in every audited write).
//!
//! On SQLite, whose single writer takes the whole database at `BEGIN IMMEDIATE`, writes are batched. On
//! PostgreSQL each is made alone (see `Ledger::write`): row locks taken for several people in one
//! transaction could deadlock with another node's batch.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::audit::{Appender, AuditEvent, Outcome};
use crate::db::{self, DbConnection};
use crate::domain::AuditEventName;

use super::error::gave_up_waiting;
use super::{ServiceError, Services};

/// One request's write, made in a transaction that may hold the writes of other requests.
pub(super) trait LedgerWrite: Send + 'static {
    /// What the request gets when its write went through.
    type Output: Send + 'static;

    /// Writes this request's rows, judged at `now` (the batch's time) as if alone in the transaction.
    /// `Ok` with a refusal in [`Written::answer`] commits what the refusal leaves (nothing, or a failure
    /// counter). `Err` is the database's only, and rolls the whole batch back: a refusal cannot fail the
    /// other requests of the batch.
    fn write(
        self,
        services: &Services,
        c: &mut DbConnection,
        now: i64,
    ) -> Result<Written<Self::Output>, diesel::result::Error>;
}

/// What a [`LedgerWrite`] did: the request's answer and, when it went through, its audit record.
pub(super) struct Written<T> {
    pub answer: Result<T, ServiceError>,
    pub record: Option<SuccessRecord>,
}

impl<T> Written<T> {
    /// A refusal: the request gets it, and no record is chained.
    pub fn refused(refusal: ServiceError) -> Written<T> {
        Written { answer: Err(refusal), record: None }
    }
}

/// The audit record of a write that went through, chained after the batch's rows.
pub(super) struct SuccessRecord {
    pub at: i64,
    pub event: AuditEventName,
    pub user_id: String,
    pub credential_id: String,
    pub detail: String,
    /// The request's id (the batch may be written on another request's thread).
    pub request_id: Option<String>,
}

/// A queued write and, once its batch is written, its answer.
struct Entry<W: LedgerWrite> {
    write: Mutex<Option<W>>,
    /// What the write found, until the batch's COMMIT.
    pending: Mutex<Option<Result<W::Output, ServiceError>>>,
    /// The answer the request takes: what the write found once committed, or the batch's failure.
    answer: Mutex<Option<Result<W::Output, ServiceError>>>,
}

/// A queued write of any kind, as the batch sees it.
trait Queued: Send + Sync {
    /// Makes the write (once) and keeps what it found, pending; the record to chain, if it went through.
    fn write(
        &self,
        services: &Services,
        c: &mut DbConnection,
        now: i64,
    ) -> Result<Option<SuccessRecord>, diesel::result::Error>;
    /// The batch committed: what the write found becomes the answer.
    fn commit(&self);
    /// The batch failed: the answer is that, whatever the write found.
    fn fail(&self, failed: &BatchFailed);
}

impl<W: LedgerWrite> Queued for Entry<W> {
    fn write(
        &self,
        services: &Services,
        c: &mut DbConnection,
        now: i64,
    ) -> Result<Option<SuccessRecord>, diesel::result::Error> {
        // Taken once: an entry of a batch that panicked has no write left (and gets no answer from it).
        let Some(write) = locked(&self.write).take() else {
            return Ok(None);
        };
        let written = write.write(services, c, now)?;
        *locked(&self.pending) = Some(written.answer);
        Ok(written.record)
    }

    fn commit(&self) {
        let found = locked(&self.pending).take();
        *locked(&self.answer) = Some(found.unwrap_or_else(|| Err(ServiceError::invariant("a written ledger entry"))));
    }

    fn fail(&self, failed: &BatchFailed) {
        locked(&self.pending).take();
        *locked(&self.answer) = Some(Err(failed.answer()));
    }
}

/// The queue of writes and the turn to make them (one per server).
pub struct Ledger {
    /// Whether writes are made in batches (SQLite) or each alone (PostgreSQL).
    batched: bool,
    queued: Mutex<Vec<Arc<dyn Queued>>>,
    turn: Mutex<()>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("batched", &self.batched).finish_non_exhaustive()
    }
}

fn locked<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while writing leaves nothing half-done in memory: the transaction rolled back.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Ledger {
    /// The ledger for the server's database: batched on SQLite, each write alone on PostgreSQL.
    pub fn for_database(url: &str) -> Ledger {
        let postgres = db::Backend::of_url(url) == Some(db::Backend::Postgres);
        Ledger { batched: !postgres, queued: Mutex::default(), turn: Mutex::default() }
    }

    /// Whether writes are made in batches (on SQLite).
    pub fn batched(&self) -> bool {
        self.batched
    }

    /// Makes the write (with whatever else is queued). Its answer once committed; the reason otherwise,
    /// and then nothing of it was written. A request waits for the turn without a pooled connection; the
    /// one that writes a batch takes one for it.
    pub(super) fn write<W: LedgerWrite>(&self, services: &Services, write: W) -> Result<W::Output, ServiceError> {
        let entry =
            Arc::new(Entry { write: Mutex::new(Some(write)), pending: Mutex::new(None), answer: Mutex::new(None) });
        if !self.batched {
            // PostgreSQL: a transaction of its own, as every other audited write (its rows, then the audit
            // head). A batch there would lock the rows of several people in one transaction, in an order no
            // other transaction follows, and could deadlock with a batch on another node. Several nodes'
            // writers run in parallel there anyway; the batch is for SQLite's single writer.
            let queued: Arc<dyn Queued> = entry.clone();
            write_batch(services, &[queued]);
            return take_answer(&entry);
        }
        locked(&self.queued).push(entry.clone());
        let _turn = locked(&self.turn);
        if locked(&entry.answer).is_none() {
            // No answer: the entry is still queued (this request writes the batch, its own write included),
            // or a batch that held it panicked before it was answered (it then gets the invariant error
            // below: what a write found is handed out only once committed).
            let batch = std::mem::take(&mut *locked(&self.queued));
            write_batch(services, &batch);
        }
        take_answer(&entry)
    }

    /// Holds the turn until the guard is dropped: writes queue meanwhile, and the next request to get the
    /// turn makes them all in one batch. For tests that need a batch of a known size.
    #[doc(hidden)]
    pub fn hold_turn(&self) -> MutexGuard<'_, ()> {
        locked(&self.turn)
    }

    /// How many writes wait for the turn.
    #[doc(hidden)]
    pub fn queued(&self) -> usize {
        locked(&self.queued).len()
    }
}

fn take_answer<W: LedgerWrite>(entry: &Entry<W>) -> Result<W::Output, ServiceError> {
    let answer = locked(&entry.answer).take();
    answer.unwrap_or_else(|| Err(ServiceError::invariant("a written ledger entry's answer")))
}

/// Makes the batch in one transaction and leaves each entry its answer: its own once the transaction
/// committed, the batch's failure otherwise (then nothing of it was written).
fn write_batch(services: &Services, batch: &[Arc<dyn Queued>]) {
    let written = services
        .conn()
        .map_err(BatchFailed::Connection)
        .and_then(|mut conn| write(services, &mut conn, batch).map_err(|e| BatchFailed::Transaction(Arc::new(e))));
    match written {
        Ok(()) => batch.iter().for_each(|queued| queued.commit()),
        Err(failed) => batch.iter().for_each(|queued| queued.fail(&failed)),
    }
}

/// One transaction for the batch. The rows first, write after write, then the audit records, chained in
/// the same order: the head is locked last, as in every audited write.
fn write(services: &Services, conn: &mut DbConnection, batch: &[Arc<dyn Queued>]) -> Result<(), diesel::result::Error> {
    db::write_transaction(conn, |c| {
        let now = services.now();
        let mut records = Vec::with_capacity(batch.len());
        for queued in batch {
            records.extend(queued.write(services, c, now)?);
        }
        if !records.is_empty() {
            let mut chain = Appender::lock(c)?;
            for r in records {
                let event = AuditEvent {
                    event: r.event,
                    outcome: Outcome::Success,
                    user_id: Some(&r.user_id),
                    credential_id: Some(&r.credential_id),
                    detail: r.detail,
                };
                chain.append(c, r.at, event, r.request_id)?;
            }
            chain.finish(c)?;
        }
        Ok(())
    })
}

/// Why a batch was not written, answered to each request of it.
enum BatchFailed {
    /// No pooled connection came free in time.
    Connection(ServiceError),
    /// The transaction failed (and rolled back).
    Transaction(Arc<diesel::result::Error>),
}

/// The cause of a [`BatchFailed::Transaction`], kept for each request's error.
#[derive(Debug, thiserror::Error)]
#[error("the ledger's transaction failed")]
struct TransactionFailed(#[source] Arc<diesel::result::Error>);

impl BatchFailed {
    fn answer(&self) -> ServiceError {
        match self {
            BatchFailed::Connection(ServiceError::Unavailable) => ServiceError::Unavailable,
            BatchFailed::Connection(_) => ServiceError::invariant("a database connection for the ledger"),
            // SQLite gave up waiting for its lock: overloaded, which the client may retry.
            BatchFailed::Transaction(e) if gave_up_waiting(e) => ServiceError::Unavailable,
            BatchFailed::Transaction(e) => ServiceError::internal(TransactionFailed(e.clone())),
        }
    }
}

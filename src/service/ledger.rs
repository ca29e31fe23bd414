//! The signature ledger: the write that authorises a signHash (the SAD's hashes and budget, the
//! credential's quota, the audit record), made for many requests in one transaction.
//!
//! Every signature needs that write before the HSM signs, and one transaction per request made the
//! database the bottleneck: a BEGIN and COMMIT, the audit head read and moved, and (on SQLite) the pages
//! written to the log each time, one writer at a time. Here a request queues its reservation and waits
//! for the ledger's turn; whoever holds the turn writes every reservation queued so far in one
//! transaction, each judged exactly as alone (in the order they queued), then hands each request its own
//! answer. A request whose reservation was written by another comes out with its answer at once.
//!
//! Nothing becomes weaker: each reservation is a conditional write on the rows as they stand in that
//! transaction, judged at the time the batch is written, so the same SAD in two reservations of one batch
//! is spent once per authorised occurrence, as in two transactions; a refused reservation leaves nothing
//! behind; an answer is handed out only after the COMMIT. A database error in any reservation, or a
//! failed COMMIT, fails every request of the batch (the transaction rolled back; if the connection broke
//! during the COMMIT its outcome is unknown, which costs at most the budget of those requests, never an
//! extra signature). The audit records chain one after the other as before, each with its own request's
//! id, after the batch's row writes (the head is locked last, as in every audited write).
//!
//! On SQLite, whose single writer takes the whole database at `BEGIN IMMEDIATE`, reservations are batched.
//! On PostgreSQL each is written alone (see `write_alone`): row locks taken for several credentials in one
//! transaction could deadlock with another node's batch.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::audit::{Appender, AuditEvent, Outcome};
use crate::db::{self, credentials::CredentialRow, sads, DbConnection};
use crate::domain::{sad, AuditEventName};

use super::super::credentials::{ensure_usable, quota_exhausted, usable_sad};
use super::super::error::gave_up_waiting;
use super::super::{Principal, ServiceError, Services};

/// What one signHash asks the ledger to write.
pub(super) struct Reservation {
    pub principal: Principal,
    pub credential: CredentialRow,
    pub sad_digest: String,
    /// The SAD as read before: the spend is conditional on its hashes still being these.
    pub sad: sads::SadRow,
    pub hashes: Vec<Vec<u8>>,
    pub count: i32,
    pub now: i64,
    pub sign_algo: String,
    /// The request's id, for its audit record (the batch may be written on another request's thread).
    pub request_id: Option<String>,
}

/// A queued reservation and, once its batch is written, its answer.
struct Entry {
    reservation: Reservation,
    answer: Mutex<Option<Result<(), ServiceError>>>,
}

/// The queue of reservations and the turn to write them (one per server).
pub struct SignatureLedger {
    /// Whether reservations are written in batches (SQLite) or each alone (PostgreSQL).
    batched: bool,
    queued: Mutex<Vec<Arc<Entry>>>,
    turn: Mutex<()>,
}

impl std::fmt::Debug for SignatureLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureLedger").finish_non_exhaustive()
    }
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while writing leaves nothing half-done in memory: the transaction rolled back.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SignatureLedger {
    /// The ledger for the server's database: batched on SQLite, each reservation alone on PostgreSQL.
    pub fn for_database(url: &str) -> SignatureLedger {
        let postgres = url.starts_with("postgres:") || url.starts_with("postgresql:");
        SignatureLedger { batched: !postgres, queued: Mutex::default(), turn: Mutex::default() }
    }

    /// Whether reservations are written in batches (on SQLite).
    pub fn batched(&self) -> bool {
        self.batched
    }

    /// Writes the reservation (with whatever else is queued). Ok once it is committed; the reason
    /// otherwise, and then nothing of it was written. A request waits for the turn without a pooled
    /// connection; the one that writes a batch takes one for it.
    pub(super) fn reserve(&self, services: &Services, reservation: Reservation) -> Result<(), ServiceError> {
        if !self.batched {
            return write_alone(services, &reservation);
        }
        let entry = Arc::new(Entry { reservation, answer: Mutex::new(None) });
        locked(&self.queued).push(entry.clone());
        let _turn = locked(&self.turn);
        if let Some(answer) = locked(&entry.answer).take() {
            return answer;
        }
        // No answer: the entry is still queued (this request writes the batch, its own reservation
        // included), or a batch that held it panicked (it then gets the invariant error below).
        let batch = std::mem::take(&mut *locked(&self.queued));
        let reservations: Vec<&Reservation> = batch.iter().map(|entry| &entry.reservation).collect();
        let written = services.conn().map_err(BatchFailed::Connection).and_then(|mut conn| {
            write(&mut conn, &reservations, services.now()).map_err(|e| BatchFailed::Transaction(Arc::new(e)))
        });
        match written {
            Ok(answers) => {
                for (queued, answer) in batch.iter().zip(answers) {
                    *locked(&queued.answer) = Some(answer);
                }
            }
            Err(failed) => {
                for queued in &batch {
                    *locked(&queued.answer) = Some(Err(failed.answer()));
                }
            }
        }
        let answer = locked(&entry.answer).take();
        answer.unwrap_or_else(|| Err(ServiceError::invariant("a written reservation's answer")))
    }

    /// Holds the turn until the guard is dropped: reservations queue meanwhile, and the next request to
    /// get the turn writes them all in one batch. For tests that need a batch of a known size.
    #[doc(hidden)]
    pub fn hold_turn(&self) -> MutexGuard<'_, ()> {
        locked(&self.turn)
    }

    /// How many reservations wait for the turn.
    #[doc(hidden)]
    pub fn queued(&self) -> usize {
        locked(&self.queued).len()
    }
}

/// PostgreSQL: each reservation in a transaction of its own, as every other audited write (its rows, then
/// the audit head). A batch there would lock the rows of several credentials in one transaction, in an
/// order no other transaction follows, and could deadlock with a batch on another node. Several nodes'
/// writers run in parallel there anyway; the batch is for SQLite's single writer.
fn write_alone(services: &Services, reservation: &Reservation) -> Result<(), ServiceError> {
    let mut conn = services.conn()?;
    let answers = write(&mut conn, &[reservation], services.now())?;
    answers.into_iter().next().unwrap_or_else(|| Err(ServiceError::invariant("the reservation's answer")))
}

/// One transaction for the batch; an answer per reservation, in order. Err (nothing written) when the
/// database failed, for any of them. The rows first, reservation after reservation, then the audit
/// records, chained in the same order: the head is locked last, as in every audited write.
fn write(
    conn: &mut DbConnection,
    batch: &[&Reservation],
    now: i64,
) -> Result<Vec<Result<(), ServiceError>>, diesel::result::Error> {
    db::write_transaction(conn, |c| {
        let mut answers = Vec::with_capacity(batch.len());
        for reservation in batch {
            answers.push(reserve_one(c, reservation, now.max(reservation.now))?);
        }
        if answers.iter().any(Result::is_ok) {
            let mut chain = Appender::lock(c)?;
            for (r, _) in batch.iter().zip(&answers).filter(|(_, answer)| answer.is_ok()) {
                let event = AuditEvent {
                    event: AuditEventName::SignaturesSignHash,
                    outcome: Outcome::Success,
                    user_id: Some(&r.principal.user_id),
                    credential_id: Some(&r.credential.id),
                    detail: format!("signatures={} signAlgo={}", r.count, r.sign_algo),
                };
                chain.append(c, r.now, event, r.request_id.clone())?;
            }
            chain.finish(c)?;
        }
        Ok(answers)
    })
}

/// Spends the SAD's hash occurrences and budget, then the quota, judged at `now` (when the batch is
/// written, so that a revocation or an expiry while the request waited counts); a refusal (the inner
/// Err) leaves the rows as they were.
fn reserve_one(
    c: &mut DbConnection,
    r: &Reservation,
    now: i64,
) -> Result<Result<(), ServiceError>, diesel::result::Error> {
    // Each authorised hash occurrence signs once: [H, H] needs H authorised twice. The spend is
    // conditional on the hashes read: another request on the same SAD may have spent in between (in an
    // earlier transaction or earlier in this batch), and then the SAD is read again (a few times).
    let mut before = r.sad.clone();
    let mut spent = None;
    for attempt in 0..3 {
        if attempt > 0 {
            let found = sads::find(c, &r.sad_digest)?
                .filter(|s| r.principal.user_id == s.user_id && s.credential_id == r.credential.id);
            before = match usable_sad(found, now) {
                Ok(sad) => sad,
                Err(refused) => return Ok(Err(refused)),
            };
        }
        let Some(remaining) = sad::take(&sad::decode_hashes(&before.hashes), &r.hashes) else {
            return Ok(Err(ServiceError::HashNotAuthorized));
        };
        let remaining = sad::encode_hashes(&remaining);
        if sads::spend(c, &r.sad_digest, r.count, &before.hashes, &remaining, now)? {
            spent = Some(remaining);
            break;
        }
    }
    let Some(remaining) = spent else {
        return Ok(Err(ServiceError::SadBudgetSpent));
    };
    // Every hash spends one of the credential's transactions, with the SAD, if the credential can still
    // sign: no quota (or revoked, disabled or expired since it was read), no spend.
    if !db::credentials::spend_quota_if_usable(c, &r.credential.id, r.count, now)? {
        sads::unspend(c, &r.sad_digest, r.count, &before.hashes, &remaining)?;
        let current = db::credentials::by_id(c, &r.credential.id)?.unwrap_or_else(|| r.credential.clone());
        let refusal = match ensure_usable(&current, now) {
            Err(unusable) => unusable,
            Ok(()) => quota_exhausted(&current),
        };
        return Ok(Err(refusal));
    }
    Ok(Ok(()))
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
#[error("the signature ledger's transaction failed")]
struct TransactionFailed(#[source] Arc<diesel::result::Error>);

impl BatchFailed {
    fn answer(&self) -> ServiceError {
        match self {
            BatchFailed::Connection(ServiceError::Unavailable) => ServiceError::Unavailable,
            BatchFailed::Connection(_) => ServiceError::invariant("a database connection for the signature ledger"),
            BatchFailed::Transaction(e) if gave_up_waiting(e) => ServiceError::Unavailable,
            BatchFailed::Transaction(e) => ServiceError::internal(TransactionFailed(e.clone())),
        }
    }
}

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
//! transaction, so the same SAD in two reservations of one batch is spent once per authorised
//! occurrence, as in two transactions; a refused reservation leaves nothing behind; an answer is handed
//! out only after the COMMIT, and a failed COMMIT fails every reservation of the batch (nothing of it was
//! spent). The audit records chain one after the other as before, each with its own request's id.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::audit::{Appender, AuditEvent, Outcome};
use crate::db::{self, credentials::CredentialRow, sads, DbConnection};
use crate::domain::{sad, AuditEventName};

use super::super::credentials::{quota_exhausted, usable_sad};
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
#[derive(Default)]
pub struct SignatureLedger {
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
    /// Writes the reservation (with whatever else is queued). Ok once it is committed; the reason
    /// otherwise, and then nothing of it was written. A request waits for the turn without a pooled
    /// connection; the one that writes a batch takes one for it.
    pub(super) fn reserve(&self, services: &Services, reservation: Reservation) -> Result<(), ServiceError> {
        let entry = Arc::new(Entry { reservation, answer: Mutex::new(None) });
        locked(&self.queued).push(entry.clone());
        let _turn = locked(&self.turn);
        if let Some(answer) = locked(&entry.answer).take() {
            return answer;
        }
        // Not written yet, so still queued: this request writes the batch, its own reservation included.
        let batch = std::mem::take(&mut *locked(&self.queued));
        let written = services
            .conn()
            .map_err(BatchFailed::Connection)
            .and_then(|mut conn| write(&mut conn, &batch).map_err(|e| BatchFailed::Transaction(Arc::new(e))));
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
}

impl SignatureLedger {
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

/// One transaction for the batch; an answer per reservation, in order. Err (nothing written) when the
/// database failed.
fn write(
    conn: &mut DbConnection,
    batch: &[Arc<Entry>],
) -> Result<Vec<Result<(), ServiceError>>, diesel::result::Error> {
    db::write_transaction(conn, |c| {
        let mut chain = Appender::lock(c)?;
        let mut answers = Vec::with_capacity(batch.len());
        for entry in batch {
            answers.push(reserve_one(c, &mut chain, &entry.reservation)?);
        }
        chain.finish(c)?;
        Ok(answers)
    })
}

/// Spends the SAD's hash occurrences and budget, then the quota, then records the success; a refusal
/// (the inner Err) leaves the rows as they were.
fn reserve_one(
    c: &mut DbConnection,
    chain: &mut Appender,
    r: &Reservation,
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
            before = match usable_sad(found, r.now) {
                Ok(sad) => sad,
                Err(refused) => return Ok(Err(refused)),
            };
        }
        let Some(remaining) = sad::take(&sad::decode_hashes(&before.hashes), &r.hashes) else {
            return Ok(Err(ServiceError::HashNotAuthorized));
        };
        let remaining = sad::encode_hashes(&remaining);
        if sads::spend(c, &r.sad_digest, r.count, &before.hashes, &remaining, r.now)? {
            spent = Some(remaining);
            break;
        }
    }
    let Some(remaining) = spent else {
        return Ok(Err(ServiceError::SadBudgetSpent));
    };
    // Every hash spends one of the credential's transactions, with the SAD: no quota, no spend.
    if !db::credentials::spend_quota(c, &r.credential.id, r.count)? {
        sads::unspend(c, &r.sad_digest, r.count, &before.hashes, &remaining)?;
        let current = db::credentials::by_id(c, &r.credential.id)?.unwrap_or_else(|| r.credential.clone());
        return Ok(Err(quota_exhausted(&current)));
    }
    let event = AuditEvent {
        event: AuditEventName::SignaturesSignHash,
        outcome: Outcome::Success,
        user_id: Some(&r.principal.user_id),
        credential_id: Some(&r.credential.id),
        detail: format!("signatures={} signAlgo={}", r.count, r.sign_algo),
    };
    chain.append(c, r.now, event, r.request_id.clone())?;
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

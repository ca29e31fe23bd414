//! The audit trail: an append-only, hash-chained log of every security event. Each record's hash
//! covers its fields and the previous record's hash, so a changed or removed record breaks the chain
//! from that point on; `rssp audit verify` finds the first broken link.

use sha2::{Digest, Sha256};

use crate::db::audit::{self as store, AuditRow};
use crate::db::DbConnection;
use crate::domain::AuditEventName;

/// The hash before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Whether the event succeeded or was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The action took place.
    Success,
    /// The action was refused (bad code, locked account, ...).
    Refused,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Refused => "refused",
        }
    }
}

/// One security event, before it is chained.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    /// What happened, as a dotted name (`auth.login`, `credential.sign`, ...).
    pub event: AuditEventName,
    /// Whether it succeeded.
    pub outcome: Outcome,
    /// The user it concerns, if any.
    pub user_id: Option<&'a str>,
    /// The credential it concerns, if any.
    pub credential_id: Option<&'a str>,
    /// Anything else worth keeping, in words; never a secret.
    pub detail: String,
}

fn record_hash(row: &AuditRow) -> String {
    // A JSON array is an unambiguous encoding of the fields: no separator can be forged inside a value.
    let mut canonical = serde_json::json!([
        row.seq,
        row.at,
        row.event,
        row.outcome,
        row.user_id,
        row.credential_id,
        row.detail,
        row.prev_hash
    ]);
    // The request id is chained too, so it cannot be changed quietly. It is appended only when present:
    // records without one (written before the column existed, or by commands and jobs) hash as before.
    if let (Some(id), Some(fields)) = (&row.request_id, canonical.as_array_mut()) {
        fields.push(serde_json::Value::String(id.clone()));
    }
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// Appends a successful event (the common case), inside the write transaction of the change.
pub fn success(
    conn: &mut DbConnection,
    at: i64,
    event: AuditEventName,
    user_id: Option<&str>,
    credential_id: Option<&str>,
    detail: impl Into<String>,
) -> diesel::QueryResult<()> {
    record(conn, at, AuditEvent { event, outcome: Outcome::Success, user_id, credential_id, detail: detail.into() })
}

/// Appends an event. Call it inside the write transaction of the change it records. The record carries
/// the id of the HTTP request being served on this thread, if any (see `telemetry`).
pub fn record(conn: &mut DbConnection, at: i64, event: AuditEvent<'_>) -> diesel::QueryResult<()> {
    record_numbered(conn, at, event).map(|_| ())
}

/// [`record`], returning the record's sequence number: a number that orders what the transaction
/// wrote among all audited changes, given out under the chain's lock, so it commits in order.
pub fn record_numbered(conn: &mut DbConnection, at: i64, event: AuditEvent<'_>) -> diesel::QueryResult<i64> {
    let mut appender = Appender::lock(conn)?;
    let seq = appender.append(conn, at, event, crate::telemetry::current_request_id())?;
    appender.finish(conn)?;
    Ok(seq)
}

/// Appends records to the chain inside one write transaction: the head is locked and read once, each
/// record links to the one before, and the head moves once, to the last, in [`Appender::finish`]. A
/// transaction that writes the records of several requests (the ledger, `service::ledger`) pays for the head
/// once; what `rssp audit verify` checks is the same.
#[derive(Debug)]
pub struct Appender {
    seq: i64,
    hash: String,
    appended: bool,
}

impl Appender {
    /// Locks the head of the chain for this transaction.
    pub fn lock(conn: &mut DbConnection) -> diesel::QueryResult<Appender> {
        let (seq, hash) = store::lock_head(conn)?;
        Ok(Appender { seq, hash, appended: false })
    }

    /// Appends a record for the request `request_id` (the request being served, for one written on its
    /// own thread); its sequence number.
    pub fn append(
        &mut self,
        conn: &mut DbConnection,
        at: i64,
        event: AuditEvent<'_>,
        request_id: Option<String>,
    ) -> diesel::QueryResult<i64> {
        let mut row = AuditRow {
            seq: self.seq + 1,
            at,
            event: event.event.as_str().to_string(),
            outcome: event.outcome.as_str().to_string(),
            user_id: event.user_id.map(str::to_string),
            credential_id: event.credential_id.map(str::to_string),
            detail: event.detail,
            prev_hash: std::mem::take(&mut self.hash),
            hash: String::new(),
            request_id,
        };
        row.hash = record_hash(&row);
        if let Err(e) = store::insert_record(conn, &row) {
            // The record is not in: the chain stays where it was (and the caller's transaction fails).
            self.hash = row.prev_hash;
            return Err(e);
        }
        self.seq = row.seq;
        self.hash = row.hash;
        self.appended = true;
        // Refusals are logged where they are recorded (`Services::audit_refusal`), with their reason. The
        // detail stays in the trail: it may name things (an order, a reason typed by a person) a log need not.
        if event.outcome == Outcome::Success {
            tracing::info!(
                event = event.event.as_str(),
                user_id = event.user_id,
                credential_id = event.credential_id,
                request_id = row.request_id.as_deref(),
                "audit"
            );
        }
        Ok(row.seq)
    }

    /// Moves the head to the last record appended.
    pub fn finish(self, conn: &mut DbConnection) -> diesel::QueryResult<()> {
        if self.appended {
            store::move_head(conn, self.seq, &self.hash)?;
        }
        Ok(())
    }
}

/// The result of checking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainReport {
    /// Every link and hash holds.
    Intact {
        /// How many records were checked.
        records: i64,
    },
    /// The first record whose link or hash does not hold.
    Broken {
        /// The broken record's sequence number.
        seq: i64,
        /// What does not hold, in words.
        reason: String,
    },
}

/// Checks the hash chain of the audit trail from the first record to the head (`rssp audit verify`).
pub fn verify(conn: &mut DbConnection) -> diesel::QueryResult<ChainReport> {
    // The head is read first: records appended while the check runs are left for the next check.
    let (head_seq, head_hash) = store::head(conn)?;
    let mut expected_prev = GENESIS.to_string();
    let mut expected_seq = 1;
    while expected_seq <= head_seq {
        let page = store::page(conn, expected_seq - 1, 1000.min(head_seq - expected_seq + 1))?;
        if page.is_empty() {
            break;
        }
        for row in page {
            let broken = |reason: &str| Ok(ChainReport::Broken { seq: expected_seq, reason: reason.to_string() });
            if row.seq != expected_seq {
                return broken("a record is missing before this one");
            }
            if row.prev_hash != expected_prev {
                return broken("the link to the previous record does not match");
            }
            if record_hash(&row) != row.hash {
                return broken("the record's contents do not match its hash");
            }
            expected_prev = row.hash;
            expected_seq += 1;
        }
    }
    if head_seq != expected_seq - 1 || head_hash != expected_prev {
        return Ok(ChainReport::Broken { seq: expected_seq, reason: "records after this point were removed".into() });
    }
    Ok(ChainReport::Intact { records: expected_seq - 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(request_id: Option<&str>) -> AuditRow {
        AuditRow {
            seq: 7,
            at: 1_700_000_000,
            event: "auth.login".into(),
            outcome: "success".into(),
            user_id: Some("u1".into()),
            credential_id: None,
            detail: "d".into(),
            prev_hash: GENESIS.into(),
            hash: String::new(),
            request_id: request_id.map(str::to_string),
        }
    }

    #[test]
    fn records_without_a_request_id_hash_as_before_the_column_existed() {
        // The encoding of the chain before request ids: eight fields.
        let old = serde_json::json!([7, 1_700_000_000i64, "auth.login", "success", "u1", null, "d", GENESIS]);
        let old_hash = hex::encode(Sha256::digest(old.to_string().as_bytes()));
        assert_eq!(record_hash(&row(None)), old_hash);
        // The request id is covered: changing it breaks the record's hash.
        assert_ne!(record_hash(&row(Some("r1"))), old_hash);
        assert_ne!(record_hash(&row(Some("r1"))), record_hash(&row(Some("r2"))));
    }
}

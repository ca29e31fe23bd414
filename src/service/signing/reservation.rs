//! A signature request's write in the [`Ledger`](super::super::ledger::Ledger) (signHash, signDoc): the
//! SAD's hashes and budget, the credential's quota and the audit record, before the HSM signs.

use crate::db::{self, credentials::CredentialRow, sads, DbConnection};
use crate::domain::{sad, AuditEventName};

use super::super::credentials::{ensure_usable, quota_exhausted, usable_sad};
use super::super::ledger::{LedgerWrite, SuccessRecord, Written};
use super::super::{Principal, ServiceError, Services};

/// What one signHash or signDoc asks the ledger to write.
pub(super) struct Reservation {
    pub principal: Principal,
    pub credential: CredentialRow,
    pub sad_digest: String,
    /// The SAD as read before: the spend is conditional on its hashes still being these.
    pub sad: sads::SadRow,
    pub hashes: Vec<Vec<u8>>,
    /// Signatures made: spent from the SAD's budget.
    pub count: i32,
    /// Transactions spent from the credential's quota: each signature, and each time-stamp made with one.
    pub quota: i32,
    pub now: i64,
    /// The audit record's event and words.
    pub event: AuditEventName,
    pub detail: String,
    /// The request's id, for its audit record.
    pub request_id: Option<String>,
}

impl LedgerWrite for Reservation {
    type Output = ();

    fn write(self, _: &Services, c: &mut DbConnection, now: i64) -> Result<Written<()>, diesel::result::Error> {
        // Judged when the batch is written, so that a revocation or an expiry while the request waited counts.
        let now = now.max(self.now);
        if let Err(refusal) = reserve(c, &self, now)? {
            return Ok(Written::refused(refusal));
        }
        let record = SuccessRecord {
            at: now,
            event: self.event,
            user_id: self.principal.user_id.to_string(),
            credential_id: self.credential.id,
            detail: format!("{}{}", self.detail, self.principal.through_client()),
            request_id: self.request_id,
        };
        Ok(Written { answer: Ok(()), record: Some(record) })
    }
}

/// Spends the SAD's hash occurrences and budget, then the quota, judged at `now`; a refusal (the inner
/// Err) leaves the rows as they were.
fn reserve(c: &mut DbConnection, r: &Reservation, now: i64) -> Result<Result<(), ServiceError>, diesel::result::Error> {
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
    // Every signature (and time-stamp) spends one of the credential's transactions, with the SAD, if the
    // credential can still sign: no quota (or revoked, disabled or expired since it was read), no spend.
    if !db::credentials::spend_quota_if_usable(c, &r.credential.id, r.quota, now)? {
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

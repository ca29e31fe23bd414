//! `credentials/list`, `credentials/info`, `credentials/authorize` and `credentials/extendTransaction`.

use der::Decode;
use secrecy::{ExposeSecret, SecretString};
use x509_cert::Certificate;

use crate::audit::{self, AuditEvent, Outcome};
use crate::db::authenticators::TotpFactor;
use crate::db::{self, credentials::CredentialRow, sads, DbConnection};
use crate::domain::sad::{self, SadPolicyError, SignatureActivationRequest};
use crate::domain::{renewal, secrets, AuditEventName, CredentialId, HashAlgorithm, KeyKind};
use crate::domain::{CertificateStatus, CredentialStatus};

use super::auth::Bearer;
use super::ledger::{LedgerWrite, SuccessRecord, Written};
use super::{second_factor, Committed, Param, Principal, ServiceError, Services};

/// Credential ids per page of `credentials/list` when the client asks for no limit or too many.
pub const MAX_PAGE: i64 = 100;
/// Credential ids are UUIDs; anything much longer is refused before it reaches a query or the audit trail.
pub const MAX_ID_LEN: usize = 64;

/// A credential as both CSC dialects describe it.
#[derive(Debug, Clone)]
pub struct CscCredential {
    pub id: CredentialId,
    pub key_kind: KeyKind,
    pub key_enabled: bool,
    pub cert_status: CertificateStatus,
    /// End entity first, then the issuing CA (the root is the client's trust anchor).
    pub chain: Vec<Vec<u8>>,
    pub subject_dn: String,
    pub issuer_dn: String,
    pub serial_hex: String,
    /// GeneralizedTime `YYYYMMDDHHMMSSZ`.
    pub valid_from: String,
    pub valid_to: String,
    pub has_pin: bool,
    pub multisign: i32,
}

fn generalized(time: &x509_cert::time::Time) -> String {
    let dt = chrono::DateTime::<chrono::Utc>::from(time.to_system_time());
    dt.format("%Y%m%d%H%M%SZ").to_string()
}

/// The state of the credential's certificate at `now`.
pub(super) fn cert_status(row: &CredentialRow, now: i64) -> CertificateStatus {
    if row.revoked_at.is_some() {
        CertificateStatus::Revoked
    } else if row.not_after <= now {
        CertificateStatus::Expired
    } else {
        CertificateStatus::Valid
    }
}

/// The credential, if the caller owns it. Someone else's credential is reported exactly like a
/// missing one, so the answer does not reveal that it exists.
fn owned(conn: &mut DbConnection, principal: &Principal, credential_id: &str) -> Result<CredentialRow, ServiceError> {
    if credential_id.len() > MAX_ID_LEN {
        return Err(ServiceError::Invalid(Param::CredentialId));
    }
    db::credentials::owned_by(conn, &principal.user_id, credential_id)?
        .ok_or(ServiceError::Invalid(Param::CredentialId))
}

pub(super) fn key_kind(row: &CredentialRow) -> Result<KeyKind, ServiceError> {
    row.key_kind.parse().map_err(ServiceError::internal)
}

/// A credential that may sign now: enabled, certificate neither revoked nor expired.
pub(super) fn ensure_usable(row: &CredentialRow, now: i64) -> Result<(), ServiceError> {
    match cert_status(row, now) {
        CertificateStatus::Valid if row.status == CredentialStatus::Enabled => Ok(()),
        CertificateStatus::Expired => Err(ServiceError::CertificateExpired { subject: subject_dn(&row.certificate) }),
        _ => Err(ServiceError::CredentialDisabled),
    }
}

fn subject_dn(der: &[u8]) -> String {
    Certificate::from_der(der).map(|c| c.tbs_certificate().subject().to_string()).unwrap_or_default()
}

/// The `userID` of `credentials/list` (CSC v1.0.4.0 §11.4, v2.0.0.2 §11.4): with a person's own
/// (user-specific) token it must be left out; with an OAuth2 client's token (`oauth2client`, not
/// user-specific) it may name the account the client acts for, and nothing else.
pub fn check_user_id(principal: &Principal, user_id: Option<&str>) -> Result<(), ServiceError> {
    match (user_id, &principal.client_id) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(ServiceError::InvalidRequest("userID parameter MUST be null".into())),
        (Some(user_id), Some(_)) if principal.user_id == user_id => Ok(()),
        (Some(_), Some(_)) => Err(ServiceError::Invalid(Param::UserId)),
    }
}

pub fn list(
    services: &Services,
    principal: &Principal,
    max_results: Option<i64>,
    page_token: Option<&str>,
) -> Result<(Vec<String>, Option<String>), ServiceError> {
    let limit = match max_results {
        Some(n) if n < 1 => return Err(ServiceError::Invalid(Param::MaxResults)),
        Some(n) => n.min(MAX_PAGE),
        None => MAX_PAGE,
    };
    // The page token is the last id of the previous page; ids are random, so it reveals nothing.
    if page_token.is_some_and(|t| t.is_empty() || t.len() > 64) {
        return Err(ServiceError::Invalid(Param::PageToken));
    }
    let mut ids = db::credentials::ids_of_user(&mut *services.conn()?, &principal.user_id, page_token, limit + 1)?;
    let next = if ids.len() as i64 > limit {
        ids.truncate(limit as usize);
        ids.last().cloned()
    } else {
        None
    };
    Ok((ids, next))
}

pub fn info(
    services: &Services,
    principal: &Principal,
    credential_id: &CredentialId,
) -> Result<CscCredential, ServiceError> {
    let row = owned(&mut *services.conn()?, principal, credential_id)?;
    view(services, row)
}

/// The caller's credentials (up to a page), described; with `only_valid`, only those that can sign
/// now (v2 `credentials/list`).
pub fn describe_all(
    services: &Services,
    principal: &Principal,
    only_valid: bool,
) -> Result<Vec<CscCredential>, ServiceError> {
    let rows = db::credentials::of_user(&mut *services.conn()?, &principal.user_id, MAX_PAGE)?;
    let views = rows.into_iter().map(|row| view(services, row)).collect::<Result<Vec<_>, _>>()?;
    Ok(views.into_iter().filter(|v| !only_valid || v.key_enabled).collect())
}

fn view(services: &Services, row: CredentialRow) -> Result<CscCredential, ServiceError> {
    let cert = Certificate::from_der(&row.certificate).map_err(ServiceError::internal)?;
    let tbs = cert.tbs_certificate();
    let status = cert_status(&row, services.now());
    Ok(CscCredential {
        key_kind: key_kind(&row)?,
        key_enabled: row.status == CredentialStatus::Enabled && status == CertificateStatus::Valid,
        cert_status: status,
        chain: vec![row.certificate.clone(), services.ca.issuing.certificate_der.clone()],
        subject_dn: tbs.subject().to_string(),
        issuer_dn: tbs.issuer().to_string(),
        serial_hex: row.serial_hex.to_uppercase(),
        valid_from: generalized(&tbs.validity().not_before),
        valid_to: generalized(&tbs.validity().not_after),
        has_pin: row.pin_hash.is_some(),
        multisign: row.multisign,
        id: row.id.into(),
    })
}

/// What a client sends to `credentials/authorize`, once parsed.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    pub credential_id: CredentialId,
    pub num_signatures: i32,
    pub hashes: Vec<Vec<u8>>,
    /// v2 names the digest algorithm; v1 does not.
    pub hash_algo: Option<HashAlgorithm>,
    pub otp: Option<SecretString>,
    pub pin: Option<SecretString>,
}

/// A SAD handed to the client.
#[derive(Debug, Clone)]
pub struct IssuedSad {
    pub sad: String,
    pub expires_in: i64,
}

fn policy_error(e: SadPolicyError) -> ServiceError {
    match e {
        SadPolicyError::NumSignaturesOutOfRange => ServiceError::Invalid(Param::NumSignatures),
        SadPolicyError::MissingHashes => ServiceError::Missing(Param::Hash),
        SadPolicyError::TooManyHashes => ServiceError::InvalidRequest("More hashes than numSignatures".into()),
        SadPolicyError::BadHashLength => ServiceError::DigestLength,
    }
}

fn check_hash_lengths(hashes: &[Vec<u8>], hash_algo: Option<HashAlgorithm>) -> Result<(), ServiceError> {
    match hash_algo {
        Some(h) if hashes.iter().any(|d| d.len() != h.digest_len()) => Err(ServiceError::DigestLength),
        _ => Ok(()),
    }
}

/// `credentials/authorize`: checks the one-time code (and the PIN, if the credential has one) and
/// mints a SAD bound to the user, the credential and the exact hashes (SCAL2). The caller's token is
/// judged first, with the credential and the person's factor in one statement.
pub fn authorize(services: &Services, bearer: &Bearer, request: AuthorizeRequest) -> Result<IssuedSad, ServiceError> {
    let mut conn = services.conn()?;
    let (principal, found) = if request.credential_id.len() > MAX_ID_LEN {
        // Never looked up: refused once the caller passed.
        (bearer.judge_alone(services, &mut conn)?, Err(ServiceError::Invalid(Param::CredentialId)))
    } else {
        let (token, found) =
            match db::authenticators::token_credential_with_factor(&mut conn, bearer.digest(), &request.credential_id)?
            {
                Some((token, credential, factor)) => (Some(token), credential.map(|c| (c, factor))),
                None => (None, None),
            };
        (bearer.judge(services, token)?, found.ok_or(ServiceError::Invalid(Param::CredentialId)))
    };
    let result = found.and_then(|found| authorize_found(services, &principal, conn, found, &request));
    if let Err(e) = &result {
        services.audit_refusal(
            AuditEventName::CredentialsAuthorize,
            Some(&principal.user_id),
            Some(&request.credential_id),
            e,
        );
    }
    result
}

/// authorize once the caller passed: `found` is the caller's credential and factor as they were read
/// (the factor is used once the request passed).
fn authorize_found(
    services: &Services,
    principal: &Principal,
    mut conn: db::Conn,
    (row, factor): (CredentialRow, Option<TotpFactor>),
    request: &AuthorizeRequest,
) -> Result<IssuedSad, ServiceError> {
    let now = services.now();
    ensure_usable(&row, now)?;
    let activation = SignatureActivationRequest::new(request.num_signatures, request.hashes.clone(), row.multisign)
        .map_err(policy_error)?;
    check_hash_lengths(&activation.hashes, request.hash_algo)?;
    // Spare the person a code (and a step of the authenticator) when the quota cannot cover the request.
    if let Some(remaining) = renewal::remaining(row.quota_total, row.quota_used) {
        if remaining < activation.num_signatures {
            return Err(quota_exhausted(&row));
        }
    }
    let otp = request.otp.as_ref().map(ExposeSecret::expose_secret).ok_or(ServiceError::Missing(Param::Otp))?;
    if row.pin_hash.is_some() && request.pin.is_none() {
        return Err(ServiceError::Missing(Param::Pin));
    }
    // A new authenticator paired soon after a password recovery or phone change waits for an identity check.
    super::authenticator::require_signing_allowed(&mut conn, &principal.user_id)?;
    // No connection held while the HSM opens the seed and Argon2 checks the PIN.
    drop(conn);
    let pin = row.pin_hash.as_deref().zip(request.pin.as_ref().map(ExposeSecret::expose_secret));
    let prepared = second_factor::prepare_factor(services, &principal.user_id, factor, pin)?;
    // The code's check and the SAD are written with those of other requests authorising or signing now.
    services.ledger.write(
        services,
        Activation {
            principal: principal.clone(),
            credential_id: row.id,
            otp: otp.to_string().into(),
            prepared,
            activation,
            now,
            request_id: crate::telemetry::current_request_id(),
        },
    )
}

/// An authorize's write in the [`Ledger`](super::ledger::Ledger): the code checked against the factor
/// (its step used up, or a failure counted toward the lock-out), then the SAD and its audit record.
struct Activation {
    principal: Principal,
    credential_id: String,
    otp: SecretString,
    /// The seed opened and the PIN checked before the request queued (no HSM call or Argon2 in a transaction).
    prepared: second_factor::PreparedFactors,
    activation: SignatureActivationRequest,
    now: i64,
    /// The request's id, for its audit record.
    request_id: Option<String>,
}

impl LedgerWrite for Activation {
    type Output = IssuedSad;

    fn write(
        self,
        services: &Services,
        c: &mut DbConnection,
        now: i64,
    ) -> Result<Written<IssuedSad>, diesel::result::Error> {
        // Judged when the batch is written: a code used meanwhile, or a lock-out, counts.
        let now = now.max(self.now);
        let user_id = &self.principal.user_id;
        // The factor's counters are written whatever the outcome, and committed with the batch.
        if let Committed::Refused(refusal) =
            second_factor::check(services, c, user_id, self.otp.expose_secret(), self.prepared, now)?
        {
            return Ok(Written::refused(refusal));
        }
        let sad = secrets::new_token();
        let security = &services.config.security;
        let chain_expires_at = now + security.sad_max_lifetime_secs;
        let expires_at = sad::renewed_expiry(now, security.sad_lifetime_secs, chain_expires_at);
        let SignatureActivationRequest { num_signatures, hashes } = self.activation;
        sads::insert(
            c,
            &sads::SadRow {
                digest: secrets::token_digest(&sad),
                user_id: user_id.to_string(),
                credential_id: self.credential_id.clone(),
                hashes: sad::encode_hashes(&hashes),
                num_signatures,
                used: 0,
                expires_at,
                revoked: false,
                chain_expires_at,
                client_id: self.principal.client_id.as_ref().map(|c| c.to_string()),
            },
        )?;
        let record = SuccessRecord {
            at: now,
            event: AuditEventName::CredentialsAuthorize,
            user_id: user_id.to_string(),
            credential_id: self.credential_id,
            detail: format!(
                "numSignatures={num_signatures} hashes={}{}",
                hashes.len(),
                self.principal.through_client()
            ),
            request_id: self.request_id,
        };
        Ok(Written { answer: Ok(IssuedSad { sad, expires_in: expires_at - now }), record: Some(record) })
    }
}

/// What a client sends to `credentials/extendTransaction`, once parsed.
#[derive(Debug, Clone)]
pub struct ExtendRequest {
    pub credential_id: CredentialId,
    pub sad: SecretString,
    /// Hashes the renewed SAD is to keep: they must be among the hashes the SAD still authorises (a
    /// subset; new hashes need `credentials/authorize` and a new code). Empty keeps them all.
    pub hashes: Vec<Vec<u8>>,
    pub hash_algo: Option<HashAlgorithm>,
}

/// `credentials/extendTransaction`: swaps a live SAD for a new one with a fresh lifetime, but never
/// past the end of the chain the one-time code started (`security.sad_max_lifetime_secs`). The budget
/// carries over (signatures already made still count) and the old SAD stops working. Under SCAL2 a
/// signature is made only over a hash the person approved with a code, so the renewed SAD binds
/// only hashes the old one still authorised, never new ones.
pub fn extend(services: &Services, principal: &Principal, request: ExtendRequest) -> Result<IssuedSad, ServiceError> {
    let result = extend_inner(services, principal, &request);
    if let Err(e) = &result {
        services.audit_refusal(
            AuditEventName::CredentialsExtendTransaction,
            Some(&principal.user_id),
            Some(&request.credential_id),
            e,
        );
    }
    result
}

fn extend_inner(
    services: &Services,
    principal: &Principal,
    request: &ExtendRequest,
) -> Result<IssuedSad, ServiceError> {
    let now = services.now();
    let mut conn = services.conn()?;
    let row = owned(&mut conn, principal, &request.credential_id)?;
    ensure_usable(&row, now)?;
    if !request.hashes.iter().all(|h| sad::plausible_digest_len(h.len())) {
        return Err(ServiceError::DigestLength);
    }
    check_hash_lengths(&request.hashes, request.hash_algo)?;
    let old_digest = secrets::token_digest(request.sad.expose_secret());
    db::write_transaction(&mut conn, |c| {
        let old = live_sad(c, principal, &row.id, &old_digest, now)?;
        if old.chain_expires_at <= now {
            return Err(ServiceError::SadExpired);
        }
        // Retiring first takes the row lock; the budget and hashes read after it include every
        // signature a concurrent signHash spent, so none is lost or signed twice in the new SAD.
        if !sads::retire(c, &old_digest, now)? {
            return Err(ServiceError::Invalid(Param::Sad));
        }
        let old = sads::find(c, &old_digest)?.unwrap_or(old);
        if old.used >= old.num_signatures {
            return Err(ServiceError::Invalid(Param::Sad));
        }
        let authorised = sad::decode_hashes(&old.hashes);
        let hashes = if request.hashes.is_empty() {
            authorised
        } else if sad::covers(&authorised, &request.hashes) {
            request.hashes.clone()
        } else {
            return Err(ServiceError::HashNotAuthorized);
        };
        let sad = secrets::new_token();
        let expires_at = sad::renewed_expiry(now, services.config.security.sad_lifetime_secs, old.chain_expires_at);
        sads::insert(
            c,
            &sads::SadRow {
                digest: secrets::token_digest(&sad),
                user_id: principal.user_id.to_string(),
                credential_id: row.id.clone(),
                hashes: sad::encode_hashes(&hashes),
                num_signatures: old.num_signatures,
                used: old.used,
                expires_at,
                revoked: false,
                chain_expires_at: old.chain_expires_at,
                client_id: old.client_id.clone(),
            },
        )?;
        audit::record(
            c,
            now,
            AuditEvent {
                event: AuditEventName::CredentialsExtendTransaction,
                outcome: Outcome::Success,
                user_id: Some(&principal.user_id),
                credential_id: Some(&row.id),
                detail: format!("renewed for hashes={}", hashes.len()),
            },
        )?;
        Ok(IssuedSad { sad, expires_in: expires_at - now })
    })
}

/// The refusal for a request the credential's remaining quota does not cover.
pub(super) fn quota_exhausted(row: &CredentialRow) -> ServiceError {
    ServiceError::QuotaExhausted {
        remaining: renewal::remaining(row.quota_total, row.quota_used).unwrap_or(0),
        total: row.quota_total.unwrap_or(0),
    }
}

/// The SAD, if it was issued to this user (through the caller's client, if any) for this credential and
/// can still be used.
pub(super) fn live_sad(
    conn: &mut DbConnection,
    principal: &Principal,
    credential_id: &str,
    digest: &str,
    now: i64,
) -> Result<sads::SadRow, ServiceError> {
    let sad = sads::find(conn, digest)?.filter(|s| {
        principal.user_id == s.user_id
            && s.credential_id == credential_id
            && principal.is_client(s.client_id.as_deref())
    });
    usable_sad(sad, now)
}

/// The SAD found for the caller and the credential, if it can still be used.
pub(super) fn usable_sad(sad: Option<sads::SadRow>, now: i64) -> Result<sads::SadRow, ServiceError> {
    let sad = sad.ok_or(ServiceError::Invalid(Param::Sad))?;
    if sad.expires_at <= now {
        return Err(ServiceError::SadExpired);
    }
    if sad.revoked || sad.used >= sad.num_signatures {
        return Err(ServiceError::Invalid(Param::Sad));
    }
    Ok(sad)
}

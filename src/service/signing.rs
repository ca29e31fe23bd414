//! `signatures/signHash` and `signatures/signDoc` ([`documents`]): spend the SAD's budget atomically
//! (their [`reservation`] in the [`Ledger`](super::ledger::Ledger)), then sign in the HSM, and give
//! back what they spent if the HSM fails.

mod documents;
mod reservation;

pub(super) use documents::{pdf_room, signer_name};
pub use documents::{sign_doc, Input, PdfLook, SignDocRequest, Signed, SignedDocuments, ToSign};

use secrecy::{ExposeSecret, SecretString};

use crate::audit::{self, AuditEvent, Outcome};
use crate::db::credentials::CredentialRow;
use crate::db::sads::SadRow;
use crate::db::{self, sads};
use crate::domain::algorithms::resolve_scheme;
use crate::domain::{sad, secrets, AuditEventName, CredentialId};
use crate::hsm::KeyId;
use crate::metrics::METRICS;

use super::auth::Bearer;
use super::credentials::{ensure_usable, key_kind, usable_sad, MAX_ID_LEN};
use super::{Param, Principal, ServiceError, Services};

/// What a client sends to `signatures/signHash`, once parsed.
#[derive(Debug, Clone)]
pub struct SignHashRequest {
    pub credential_id: CredentialId,
    pub sad: SecretString,
    pub hashes: Vec<Vec<u8>>,
    pub sign_algo: String,
    pub hash_algo: Option<String>,
    pub sign_algo_params: Option<Vec<u8>>,
    /// The CSC dialect the request came in (counted in the signature metrics).
    pub dialect: CscVersion,
}

/// The CSC API version a signing request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CscVersion {
    V1,
    V2,
}

impl CscVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            CscVersion::V1 => "csc_v1",
            CscVersion::V2 => "csc_v2",
        }
    }
}

/// Signs every hash, in order. Nothing is signed unless the whole request is authorised. The caller's
/// token is judged first, read with the credential and the SAD (see [`caller_credential_and_sad`]).
pub fn sign_hash(services: &Services, bearer: &Bearer, request: SignHashRequest) -> Result<Vec<Vec<u8>>, ServiceError> {
    let sad_digest = secrets::token_digest(request.sad.expose_secret());
    let shape = request_shape(services, &request.credential_id, request.hashes.len(), "Empty hash array", "hashes");
    let (principal, found) = caller_credential_and_sad(services, bearer, shape, &request.credential_id, &sad_digest)?;
    let result = found.and_then(|found| sign_hash_found(services, &principal, found, sad_digest, &request));
    if let Err(e) = &result {
        services.audit_refusal(
            AuditEventName::SignaturesSignHash,
            Some(&principal.user_id),
            Some(&request.credential_id),
            e,
        );
    }
    result
}

/// The checks of a signing request that need no stored row: a credential id short enough to look up, and
/// between one and `security.max_hashes_per_request` hashes (or documents) to sign.
fn request_shape(
    services: &Services,
    credential_id: &str,
    count: usize,
    none: &str,
    what: &str,
) -> Result<(), ServiceError> {
    if credential_id.len() > MAX_ID_LEN {
        return Err(ServiceError::Invalid(Param::CredentialId));
    }
    if count == 0 {
        return Err(ServiceError::InvalidRequest(none.into()));
    }
    let max = services.config.security.max_hashes_per_request;
    if count > max {
        return Err(ServiceError::InvalidRequest(format!("Too many {what}: at most {max} in one request")));
    }
    Ok(())
}

/// The caller's credential and the SAD, as signHash and signDoc read them.
type Found = (CredentialRow, Option<SadRow>);

/// What signHash and signDoc read first: the caller's token, judged, and (when the request's `shape`
/// passed) the caller's credential with the SAD as [`sads::token_credential_with_sad`] finds them, in
/// one statement. `Err` is the caller's refusal (401), before anything else; the inner `Err` is the
/// request's refusal, which the use case audits as the caller's.
fn caller_credential_and_sad(
    services: &Services,
    bearer: &Bearer,
    shape: Result<(), ServiceError>,
    credential_id: &str,
    sad_digest: &str,
) -> Result<(Principal, Result<Found, ServiceError>), ServiceError> {
    let mut conn = services.conn()?;
    if let Err(refused) = shape {
        // Never looked up: refused once the caller passed.
        return Ok((bearer.judge_alone(services, &mut conn)?, Err(refused)));
    }
    let (token, found) = match sads::token_credential_with_sad(&mut conn, bearer.digest(), credential_id, sad_digest)? {
        Some((token, credential, sad)) => (Some(token), credential.map(|c| (c, sad))),
        None => (None, None),
    };
    drop(conn);
    let principal = bearer.judge(services, token)?;
    // A SAD authorised through another OAuth2 client (or through none, for a client's token) is no SAD
    // of this caller's.
    let found =
        found.map(|(credential, sad)| (credential, sad.filter(|s| principal.is_client(s.client_id.as_deref()))));
    Ok((principal, found.ok_or(ServiceError::Invalid(Param::CredentialId))))
}

/// signHash once the caller and the request's shape passed: `found` is the caller's credential and the
/// SAD as they were read.
fn sign_hash_found(
    services: &Services,
    principal: &Principal,
    (row, sad_row): Found,
    sad_digest: String,
    request: &SignHashRequest,
) -> Result<Vec<Vec<u8>>, ServiceError> {
    let now = services.now();
    // The SAD is judged after the request's own checks.
    let scheme = resolve_scheme(
        key_kind(&row)?,
        &request.sign_algo,
        request.hash_algo.as_deref(),
        request.sign_algo_params.as_deref(),
    )?;
    if request.hashes.iter().any(|h| h.len() != scheme.hash().digest_len()) {
        return Err(ServiceError::DigestLength);
    }
    ensure_usable(&row, now)?;
    let sad_row = usable_sad(sad_row, now)?;
    let count = i32::try_from(request.hashes.len()).map_err(ServiceError::internal)?;
    // Before anything is spent: a key id that does not parse could never sign.
    let key = KeyId::from_hex(&row.key_id).ok_or_else(|| ServiceError::invariant("stored key id"))?;
    let credential_id = row.id.clone();
    // The SAD, the quota and the audit record are written with those of other requests signing now.
    services.ledger.write(
        services,
        reservation::Reservation {
            principal: principal.clone(),
            credential: row,
            sad_digest: sad_digest.clone(),
            sad: sad_row,
            hashes: request.hashes.clone(),
            count,
            quota: count,
            now,
            event: AuditEventName::SignaturesSignHash,
            detail: format!("signatures={count} signAlgo={}", request.sign_algo),
            request_id: crate::telemetry::current_request_id(),
        },
    )?;
    // The HSM works outside the transaction and without a pooled connection held.
    match services.keystore.sign_digests(&key, scheme, &request.hashes) {
        Ok(signatures) => {
            METRICS
                .signatures
                .with_label_values(&[scheme.name(), request.dialect.as_str()])
                .inc_by(signatures.len() as u64);
            Ok(signatures)
        }
        Err(e) => {
            // Said at error level once, when the token refused the PIN; each request after is routine. Any
            // other failure is logged once, with its causes, where the request is answered (`api::error`).
            let refused_login = matches!(e, crate::hsm::HsmError::LoginRefused);
            // No session came free in time: the HSM is overloaded, which the client may retry (503).
            let busy = matches!(e, crate::hsm::HsmError::Busy);
            if refused_login {
                tracing::warn!(error = %e, credential = %credential_id, "HSM unavailable; refunding the SAD");
            }
            refund(
                services,
                Spent {
                    principal,
                    credential_id: &credential_id,
                    sad_digest: &sad_digest,
                    hashes: &request.hashes,
                    count,
                    quota: count,
                    event: AuditEventName::SignaturesSignHash,
                    cause: "hsm",
                },
            );
            if refused_login || busy {
                return Err(e.into());
            }
            Err(ServiceError::internal_while(format!("HSM signing with credential {}", credential_id), e))
        }
    }
}

/// What a reservation spent, to give back when the HSM fails after it.
struct Spent<'a> {
    principal: &'a Principal,
    credential_id: &'a str,
    sad_digest: &'a str,
    hashes: &'a [Vec<u8>],
    count: i32,
    quota: i32,
    event: AuditEventName,
    /// What failed, as a fixed name ([`ServiceError::reason`] or `hsm`).
    cause: &'static str,
}

/// Gives the SAD's hashes and budget and the credential's transactions back, with an audit record, after
/// the HSM (or for signDoc the TSA or the database) failed: nothing left, so nothing stays spent. A failure to refund is logged (the request
/// fails anyway, with the HSM's error).
fn refund(services: &Services, spent: Spent<'_>) {
    let refund = services.conn().and_then(|mut conn| {
        db::write_transaction(&mut conn, |c| {
            sads::refund(c, spent.sad_digest, spent.count, &sad::encode_hashes(spent.hashes))?;
            db::credentials::refund_quota(c, spent.credential_id, spent.quota)?;
            audit::record(
                c,
                services.now(),
                AuditEvent {
                    event: spent.event,
                    outcome: Outcome::Refused,
                    user_id: Some(&spent.principal.user_id),
                    credential_id: Some(spent.credential_id),
                    detail: format!(
                        "failure after authorisation ({}); {} signatures and {} transactions refunded",
                        spent.cause, spent.count, spent.quota
                    ),
                },
            )
            .map_err(ServiceError::from)
        })
    });
    if let Err(refund_error) = refund {
        tracing::error!(error = %crate::telemetry::error_chain(&refund_error), "could not refund the SAD");
    }
}

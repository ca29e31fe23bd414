//! One-time links (in e-mails) and six-digit codes (by SMS or e-mail): issuing them within the rate
//! limits, and checking them. Only digests are stored; each is used at most once.

use subtle::ConstantTimeEq;

use crate::db::verifications::{self, Verification};
use crate::db::DbConnection;
use crate::domain::{enrolment, secrets, VerificationPurpose};

use super::{Committed, Param, ServiceError, Services};

/// Refuses when too many codes or links went to `target` in the last hour, whoever asked.
pub(super) fn check_address_limit(
    services: &Services,
    conn: &mut DbConnection,
    target: &str,
    now: i64,
) -> Result<(), ServiceError> {
    let sent = verifications::sent_to_since(conn, target, now - 3600)?;
    if sent >= services.config.lifecycle.codes_per_address_per_hour {
        return Err(ServiceError::RateLimited {
            text: "Too many messages were sent to this address; try again later".into(),
            retry_after: 3600,
        });
    }
    Ok(())
}

/// Creates a link for `purpose` and returns its token (for the e-mail).
pub(super) fn new_link(
    conn: &mut DbConnection,
    user_id: &str,
    purpose: VerificationPurpose,
    target: &str,
    lifetime: i64,
    now: i64,
) -> Result<String, ServiceError> {
    new_link_about(conn, user_id, purpose, target, None, lifetime, now)
}

/// Creates a link for `purpose` that names what it acts on (`payload`) and returns its token.
pub(super) fn new_link_about(
    conn: &mut DbConnection,
    user_id: &str,
    purpose: VerificationPurpose,
    target: &str,
    payload: Option<&str>,
    lifetime: i64,
    now: i64,
) -> Result<String, ServiceError> {
    let token = secrets::new_token();
    verifications::insert(
        conn,
        &Verification {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user_id.to_string(),
            purpose,
            target: target.to_string(),
            secret_digest: secrets::token_digest(&token),
            parent_id: None,
            payload: payload.map(str::to_string),
            attempts: 0,
            created_at: now,
            expires_at: now + lifetime,
            used_at: None,
        },
    )?;
    Ok(token)
}

/// The link behind a token, if it can still be used.
pub(super) fn live_link(
    conn: &mut DbConnection,
    purpose: VerificationPurpose,
    token: &str,
    now: i64,
) -> Result<Verification, ServiceError> {
    if token.is_empty() || token.len() > 128 {
        return Err(ServiceError::Invalid(Param::Token));
    }
    let link = verifications::by_digest(conn, purpose, &secrets::token_digest(token))?
        .ok_or_else(|| ServiceError::InvalidRequest("The link is not valid".into()))?;
    if link.used_at.is_some() {
        return Err(ServiceError::InvalidRequest("The link was already used".into()));
    }
    if link.expires_at <= now {
        return Err(ServiceError::InvalidRequest("The link has expired".into()));
    }
    Ok(link)
}

/// What a flow asks of a new code.
pub(super) struct CodeRequest<'a> {
    pub user_id: &'a str,
    pub purpose: VerificationPurpose,
    pub target: &'a str,
    pub parent_id: Option<&'a str>,
    pub payload: Option<&'a str>,
    pub lifetime: i64,
    /// Seconds after the previous code of this purpose before a new one may be sent.
    pub cooldown: i64,
}

/// Issues a code (the previous open one of the purpose stops working) and returns it for the message.
pub(super) fn new_code(
    services: &Services,
    conn: &mut DbConnection,
    request: CodeRequest<'_>,
    now: i64,
) -> Result<String, ServiceError> {
    if let Some(previous) = verifications::latest(conn, request.user_id, request.purpose, None)? {
        let ready_at = previous.created_at + request.cooldown;
        if ready_at > now {
            return Err(ServiceError::RateLimited {
                text: format!("A new code can be asked for in {} seconds", ready_at - now),
                retry_after: ready_at - now,
            });
        }
    }
    check_address_limit(services, conn, request.target, now)?;
    verifications::retire_open(conn, request.user_id, &[request.purpose], now)?;
    let id = uuid::Uuid::new_v4().to_string();
    let code = enrolment::new_code();
    verifications::insert(
        conn,
        &Verification {
            secret_digest: secrets::code_digest(&id, &code),
            id,
            user_id: request.user_id.to_string(),
            purpose: request.purpose,
            target: request.target.to_string(),
            parent_id: request.parent_id.map(str::to_string),
            payload: request.payload.map(str::to_string),
            attempts: 0,
            created_at: now,
            expires_at: now + request.lifetime,
            used_at: None,
        },
    )?;
    Ok(code)
}

/// Checks a code against the newest one of the purpose (under `parent_id` when given) and uses it up.
/// A wrong code counts toward the code's tries, so the caller must commit (see [`Committed`]).
pub(super) fn use_code(
    services: &Services,
    conn: &mut DbConnection,
    user_id: &str,
    purpose: VerificationPurpose,
    parent_id: Option<&str>,
    code: &str,
    now: i64,
) -> Result<Committed<Verification>, ServiceError> {
    let refuse = |text: &str| Ok(Committed::Refused(ServiceError::InvalidRequest(text.to_string())));
    let Some(row) = verifications::latest(conn, user_id, purpose, parent_id)? else {
        return refuse("No code was sent; ask for one first");
    };
    if row.used_at.is_some() {
        return refuse("The code was already used; ask for a new one");
    }
    if row.expires_at <= now {
        return refuse("The code has expired; ask for a new one");
    }
    let max = services.config.lifecycle.code_max_attempts;
    if row.attempts >= max {
        return refuse("Too many wrong codes; ask for a new one");
    }
    let given = secrets::code_digest(&row.id, code.trim());
    if !bool::from(given.as_bytes().ct_eq(row.secret_digest.as_bytes())) {
        let attempts = verifications::record_attempt(conn, &row.id)?;
        if attempts >= max {
            return refuse("Wrong code; too many wrong codes, ask for a new one");
        }
        return refuse("Wrong code");
    }
    if !verifications::mark_used(conn, &row.id, now)? {
        return refuse("The code was already used; ask for a new one");
    }
    Ok(Committed::Done(row))
}

/// Uses up a link together with the code sent for it (activation, password recovery). A wrong code's
/// try is counted, so the caller must commit (see [`Committed`]).
pub(super) fn use_link_with_code(
    services: &Services,
    conn: &mut DbConnection,
    link: &Verification,
    code_purpose: VerificationPurpose,
    code: &str,
    now: i64,
) -> Result<Committed<()>, ServiceError> {
    if let Committed::Refused(refusal) =
        use_code(services, conn, &link.user_id, code_purpose, Some(&link.id), code, now)?
    {
        return Ok(Committed::Refused(refusal));
    }
    if !verifications::mark_used(conn, &link.id, now)? {
        return Ok(Committed::Refused(ServiceError::InvalidRequest("The link was already used".into())));
    }
    Ok(Committed::Done(()))
}

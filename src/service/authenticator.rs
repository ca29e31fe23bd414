//! Pairing the authenticator app (TOTP) and resetting it when the phone is lost.
//!
//! Whoever holds the mailbox and the SIM can recover the password (e-mail link + SMS code) and then
//! reset the authenticator (password + SMS code). So a reset within `security.recovery_cooling_off_secs`
//! of a password recovery or phone change leaves the new authenticator unable to authorise signatures
//! until a new identity check of the reset is accepted (the provider's webhook or an operator). Every
//! reset is told by e-mail and SMS with a link that cancels it; cancelling removes the authenticator
//! paired since and restores none (the old one may be on a stolen phone), so signing stays blocked
//! until a new, verified reset.

use crate::audit;
use crate::db::resets::{self, ResetRow};
use crate::db::{self, accounts, authenticators, tokens, DbConnection};
use crate::domain::enrolment::Phone;
use crate::domain::recovery::{self, ResetStatus};
use crate::domain::totp::{self, TotpCheck};
use crate::domain::VerificationPurpose;
use crate::domain::{secrets, AuditEventName, UserId};
use crate::notify::{self, templates};

use super::accounts::{account_of, password_checked_account, CodeSent};
use super::auth::{open_portal_session, IssuedTokens};
use super::identity_provider::{session_url, Decision};
use super::one_time::{self, CodeRequest};
use super::{audited, totp_seal, Committed, Principal, ServiceError, Services};

/// A pairing in progress: what the app needs (the QR code is drawn by the api layer).
#[derive(Debug, Clone)]
pub struct PairingStarted {
    pub secret_base32: String,
    pub otpauth_uri: String,
}

fn new_pairing(
    services: &Services,
    conn: &mut db::DbConnection,
    user_id: &str,
    label: &str,
    now: i64,
) -> Result<PairingStarted, ServiceError> {
    let seed = zeroize::Zeroizing::new(secrets::new_totp_seed());
    let sealed = totp_seal::seal(&services.keystore, user_id, &seed)?;
    authenticators::start_pairing(
        conn,
        &authenticators::Pairing {
            user_id: user_id.to_string(),
            secret: sealed.secret,
            created_at: now,
            secret_seal: sealed.seal,
        },
    )?;
    let secret_base32 = secrets::base32(&seed);
    let otpauth_uri = totp::otpauth_uri(&services.config.service_name, label, &secret_base32);
    Ok(PairingStarted { secret_base32, otpauth_uri })
}

pub fn start_pairing(services: &Services, principal: &Principal) -> Result<PairingStarted, ServiceError> {
    audited(services, AuditEventName::TotpPairing, Some(&principal.user_id), || {
        let now = services.now();
        let mut conn = services.conn()?;
        let account = account_of(&mut conn, principal)?;
        if authenticators::has_totp(&mut conn, &account.id)? {
            return Err(ServiceError::Conflict("An authenticator is already paired; reset it to pair another".into()));
        }
        db::write_transaction(&mut conn, |c| {
            let started = new_pairing(services, c, &account.id, &account.username, now)?;
            audit::success(c, now, AuditEventName::TotpPairing, Some(&account.id), None, "pairing started")?;
            Ok(started)
        })
    })
}

/// Confirms the pairing with one code from the app; from now on logins and signatures need a code.
pub fn confirm_pairing(services: &Services, principal: &Principal, code: &str) -> Result<(), ServiceError> {
    audited(services, AuditEventName::TotpPaired, Some(&principal.user_id), || {
        let now = services.now();
        let mut conn = services.conn()?;
        let pairing = authenticators::pairing(&mut conn, &principal.user_id)?
            .ok_or_else(|| ServiceError::Conflict("No pairing in progress; start one first".into()))?;
        let seed =
            totp_seal::open(&services.keystore, &principal.user_id, &pairing.secret, &pairing.secret_seal)?.usable()?;
        let TotpCheck::Accepted { step } = totp::check(&seed, code, now, None) else {
            return Err(ServiceError::InvalidOtp);
        };
        drop(seed);
        db::write_transaction(&mut conn, |c| {
            if authenticators::has_totp(c, &principal.user_id)? {
                return Err(ServiceError::Conflict("An authenticator is already paired".into()));
            }
            authenticators::insert_totp(
                c,
                &authenticators::TotpFactor {
                    user_id: principal.user_id.to_string(),
                    // Sealed for this same user: the sealed bytes move from the pairing as they are.
                    secret: pairing.secret.clone(),
                    last_step: Some(step),
                    failures: 0,
                    locked_until: None,
                    secret_seal: pairing.secret_seal.clone(),
                },
            )?;
            authenticators::end_pairing(c, &principal.user_id)?;
            accounts::set_totp_postpone(c, &principal.user_id, None, None)?;
            audit::success(c, now, AuditEventName::TotpPaired, Some(&principal.user_id), None, "authenticator paired")
                .map_err(ServiceError::from)
        })
    })
}

/// TOTP reset, step 1 (no session: the app is lost): e-mail and password, then an SMS code.
pub fn reset_start(services: &Services, email: &str, password: &str) -> Result<CodeSent, ServiceError> {
    let account = password_checked_account(services, email, password).inspect_err(|e| {
        services.audit_refusal(AuditEventName::TotpReset, None, None, e);
    })?;
    audited(services, AuditEventName::TotpReset, Some(&account.id), || {
        let mut conn = services.conn()?;
        let now = services.now();
        let lifecycle = &services.config.lifecycle;
        let phone =
            account.phone.clone().ok_or_else(|| ServiceError::Conflict("This account has no phone number".into()))?;
        db::write_transaction(&mut conn, |c| {
            let code = one_time::new_code(
                services,
                c,
                CodeRequest {
                    user_id: &account.id,
                    purpose: VerificationPurpose::TotpResetSms,
                    target: &phone,
                    parent_id: None,
                    payload: None,
                    lifetime: lifecycle.sms_code_lifetime_secs,
                    cooldown: lifecycle.code_resend_cooldown_secs,
                },
                now,
            )?;
            notify::enqueue(
                c,
                &services.config,
                now,
                Some(&account.id),
                templates::sms_code(&phone, &code, "reset your authenticator", lifecycle.sms_code_lifetime_secs / 60),
            )?;
            audit::success(c, now, AuditEventName::TotpReset, Some(&account.id), None, "SMS code sent")?;
            Ok(CodeSent {
                destination_hint: Phone::hint(&phone),
                code_expires_in: lifecycle.sms_code_lifetime_secs,
                next_code_after: lifecycle.code_resend_cooldown_secs,
            })
        })
    })
}

/// An authenticator reset as the person and operators see it.
#[derive(Debug, Clone)]
pub struct ResetView {
    pub id: String,
    pub user_id: UserId,
    pub status: ResetStatus,
    /// The identification provider's session for this reset's identity check, while one is needed.
    pub session_url: Option<String>,
    pub reasons: Vec<String>,
    pub decided_by: Option<String>,
    pub created_at: i64,
    pub decided_at: Option<i64>,
}

fn reset_view(services: &Services, row: ResetRow) -> Result<ResetView, ServiceError> {
    let status = reset_status(&row)?;
    Ok(ResetView {
        session_url: (status == ResetStatus::PendingIdentity).then(|| session_url(services, &row.id)),
        reasons: row.reasons.map(|r| r.lines().map(str::to_string).collect()).unwrap_or_default(),
        id: row.id,
        user_id: row.user_id.into(),
        status,
        decided_by: row.decided_by,
        created_at: row.created_at,
        decided_at: row.decided_at,
    })
}

fn reset_status(row: &ResetRow) -> Result<ResetStatus, ServiceError> {
    ResetStatus::parse(&row.status).ok_or_else(|| ServiceError::invariant(format!("reset status {:?}", row.status)))
}

/// Refuses while the user's newest authenticator reset keeps the authenticator from authorising
/// signatures (pending or rejected identity check, or a cancelled reset).
pub(super) fn require_signing_allowed(conn: &mut DbConnection, user_id: &str) -> Result<(), ServiceError> {
    let Some(reset) = resets::latest_of_user(conn, user_id)? else {
        return Ok(());
    };
    match reset_status(&reset)? {
        ResetStatus::PendingIdentity => Err(ServiceError::Forbidden(format!(
            "The authenticator was reset soon after a password recovery or phone change: it can authorise \
             signatures once the identity check {} is accepted",
            reset.id
        ))),
        ResetStatus::Rejected => Err(ServiceError::Forbidden(format!(
            "The identity check {} of the authenticator reset was rejected: reset the authenticator again",
            reset.id
        ))),
        ResetStatus::Cancelled => Err(ServiceError::Forbidden(
            "The authenticator reset was cancelled: reset the authenticator again (with a new identity check)".into(),
        )),
        ResetStatus::NotRequired | ResetStatus::Verified => Ok(()),
    }
}

/// TOTP reset, step 2: the SMS code. The old secret stops working at once, every session and refresh
/// token of the account ends, a new pairing starts and a session is opened so that it can be
/// confirmed. Within the cooling-off period the reset needs an identity check first.
pub fn reset_confirm(
    services: &Services,
    email: &str,
    password: &str,
    code: &str,
) -> Result<(IssuedTokens, PairingStarted, ResetView), ServiceError> {
    let account = password_checked_account(services, email, password).inspect_err(|e| {
        services.audit_refusal(AuditEventName::TotpResetConfirm, None, None, e);
    })?;
    audited(services, AuditEventName::TotpResetConfirm, Some(&account.id), || {
        let mut conn = services.conn()?;
        let now = services.now();
        let cooling_off = services.config.security.recovery_cooling_off_secs;
        db::write_transaction(&mut conn, |c| -> Result<Committed<_>, ServiceError> {
            if let Committed::Refused(refusal) =
                one_time::use_code(services, c, &account.id, VerificationPurpose::TotpResetSms, None, code, now)?
            {
                return Ok(Committed::Refused(refusal));
            }
            let previous = resets::latest_of_user(c, &account.id)?.map(|r| reset_status(&r)).transpose()?;
            let status = recovery::initial_status(resets::recovered_at(c, &account.id)?, previous, now, cooling_off);
            let row = ResetRow {
                id: uuid::Uuid::new_v4().to_string(),
                user_id: account.id.clone(),
                status: status.as_str().to_string(),
                reasons: None,
                decided_by: None,
                created_at: now,
                decided_at: None,
            };
            resets::insert(c, &row)?;
            authenticators::remove_totp(c, &account.id)?;
            tokens::revoke_all_of_user(c, &account.id, None)?;
            let pairing = new_pairing(services, c, &account.id, &account.username, now)?;
            let session = open_portal_session(services, c, &account.id, now)?;
            let view = reset_view(services, row)?;
            let contact = account.email.as_deref().or(account.phone.as_deref()).unwrap_or(&account.username);
            let token = one_time::new_link_about(
                c,
                &account.id,
                VerificationPurpose::TotpResetCancelLink,
                contact,
                Some(&view.id),
                cooling_off,
                now,
            )?;
            let link = format!(
                "{}/cancel-authenticator-reset?token={token}",
                services.config.portal_url(&services.public_url)
            );
            if let Some(email) = &account.email {
                let notice = templates::totp_reset(email, &link, now + cooling_off, view.session_url.as_deref());
                notify::enqueue(c, &services.config, now, Some(&account.id), notice)?;
            }
            if let Some(phone) = &account.phone {
                notify::enqueue(c, &services.config, now, Some(&account.id), templates::totp_reset_sms(phone, &link))?;
            }
            audit::success(
                c,
                now,
                AuditEventName::TotpResetConfirm,
                Some(&account.id),
                None,
                format!("old authenticator removed, all sessions revoked; reset {} {}", view.id, status.as_str()),
            )?;
            Ok(Committed::Done((session, pairing, view)))
        })?
        .into_result()
    })
}

/// Cancels an authenticator reset with the link from its notice (no session: the person may be
/// locked out). The authenticator paired since is removed and none is restored; every session ends;
/// the next reset needs an identity check.
pub fn cancel_reset(services: &Services, token: &str) -> Result<ResetView, ServiceError> {
    let now = services.now();
    let link = audited(services, AuditEventName::TotpResetCancel, None, || {
        one_time::live_link(&mut *services.conn()?, VerificationPurpose::TotpResetCancelLink, token, now)
    })?;
    audited(services, AuditEventName::TotpResetCancel, Some(&link.user_id), || {
        let reset_id = link.payload.clone().ok_or_else(|| ServiceError::invariant("cancel link without reset"))?;
        db::write_transaction(&mut *services.conn()?, |c| {
            let reset =
                resets::by_id(c, &reset_id)?.ok_or_else(|| ServiceError::invariant("cancel link without reset"))?;
            let status = reset_status(&reset)?;
            if !status.cancellable() {
                return Err(ServiceError::Conflict("The reset was already cancelled".into()));
            }
            if !db::verifications::mark_used(c, &link.id, now)? {
                return Err(ServiceError::InvalidRequest("The link was already used".into()));
            }
            if !resets::transition(
                c,
                &reset.id,
                status.as_str(),
                ResetStatus::Cancelled.as_str(),
                None,
                "the person (cancel link)",
                now,
            )? {
                return Err(ServiceError::Conflict("The reset changed meanwhile; try again".into()));
            }
            authenticators::remove_totp(c, &reset.user_id)?;
            authenticators::end_pairing(c, &reset.user_id)?;
            tokens::revoke_all_of_user(c, &reset.user_id, None)?;
            resets::set_recovered_at(c, &reset.user_id, now)?;
            let account = accounts::by_id(c, &reset.user_id)?;
            if let Some(email) = account.as_ref().and_then(|a| a.email.as_deref()) {
                notify::enqueue(
                    c,
                    &services.config,
                    now,
                    Some(&reset.user_id),
                    templates::totp_reset_cancelled(email),
                )?;
            }
            if let Some(phone) = account.as_ref().and_then(|a| a.phone.as_deref()) {
                let notice = templates::totp_reset_cancelled_sms(phone);
                notify::enqueue(c, &services.config, now, Some(&reset.user_id), notice)?;
            }
            audit::success(
                c,
                now,
                AuditEventName::TotpResetCancel,
                Some(&reset.user_id),
                None,
                format!("reset {} cancelled; authenticator removed, all sessions revoked", reset.id),
            )?;
            let row = resets::by_id(c, &reset.id)?.unwrap_or(reset);
            reset_view(services, row)
        })
    })
}

/// Authenticator resets for operators, oldest first, optionally in one status.
pub fn resets_for_operator(services: &Services, status: Option<&str>) -> Result<Vec<ResetView>, ServiceError> {
    if let Some(status) = status {
        if ResetStatus::parse(status).is_none() {
            return Err(ServiceError::InvalidRequest(
                "status: not_required, pending_identity, verified, rejected or cancelled".into(),
            ));
        }
    }
    let rows = resets::list(&mut *services.conn()?, status, super::MAX_ROWS)?;
    rows.into_iter().map(|r| reset_view(services, r)).collect()
}

/// The person's authenticator resets, newest last.
pub fn resets_of(services: &Services, principal: &Principal) -> Result<Vec<ResetView>, ServiceError> {
    let rows = resets::list_of_user(&mut *services.conn()?, &principal.user_id)?;
    rows.into_iter().map(|r| reset_view(services, r)).collect()
}

/// Decides the identity check of a reset (an operator, or the provider's webhook). With `event_key`,
/// only on the event's first delivery (the bool says it was a redelivery).
pub(super) fn decide_reset(
    services: &Services,
    reset_id: &str,
    decision: &Decision,
    decided_by: &str,
    event_key: Option<&str>,
) -> Result<(ResetView, bool), ServiceError> {
    audited(services, AuditEventName::TotpResetIdentity, None, || {
        let now = services.now();
        db::write_transaction(&mut *services.conn()?, |c| {
            let reset =
                resets::by_id(c, reset_id)?.ok_or_else(|| ServiceError::NotFound("No such identity check".into()))?;
            if let Some(key) = event_key {
                if !db::orders::first_delivery(c, key, &reset.id, now)? {
                    return Ok((reset_view(services, reset)?, true));
                }
            }
            let (to, reasons) = match decision {
                Decision::Accept => (ResetStatus::Verified, None),
                Decision::Reject { reasons } => (ResetStatus::Rejected, Some(reasons.join("\n"))),
            };
            let from = ResetStatus::PendingIdentity.as_str();
            if !resets::transition(c, &reset.id, from, to.as_str(), reasons.as_deref(), decided_by, now)? {
                return Err(ServiceError::Conflict(format!(
                    "The identity check of this reset is not pending (the reset is {})",
                    reset.status
                )));
            }
            if let Some(email) = accounts::by_id(c, &reset.user_id)?.and_then(|a| a.email) {
                let notice = match decision {
                    Decision::Accept => templates::totp_reset_verified(&email),
                    Decision::Reject { reasons } => templates::totp_reset_rejected(&email, reasons),
                };
                notify::enqueue(c, &services.config, now, Some(&reset.user_id), notice)?;
            }
            audit::success(
                c,
                now,
                AuditEventName::TotpResetIdentity,
                Some(&reset.user_id),
                None,
                format!("reset {} {} by {decided_by}", reset.id, to.as_str()),
            )?;
            let row = resets::by_id(c, &reset.id)?.unwrap_or(reset);
            Ok((reset_view(services, row)?, false))
        })
    })
}

/// An operator's decision on a reset's identity check.
pub fn decide_reset_by_operator(
    services: &Services,
    reset_id: &str,
    decision: Decision,
    decided_by: &str,
) -> Result<ResetView, ServiceError> {
    decision.check_reasons()?;
    decide_reset(services, reset_id, &decision, decided_by, None).map(|(view, _)| view)
}

//! Pairing the authenticator app (TOTP) and resetting it when the phone is lost.

use crate::audit;
use crate::db::{self, accounts, users};
use crate::domain::enrolment::Phone;
use crate::domain::secrets;
use crate::domain::totp::{self, TotpCheck};
use crate::notify::{self, templates};

use super::accounts::{account_of, password_checked_account, CodeSent};
use super::auth::{open_portal_session, IssuedTokens};
use super::one_time::{self, CodeRequest};
use super::{audited, totp_seal, Principal, ServiceError, Services};

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
    accounts::start_pairing(
        conn,
        &accounts::Pairing {
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
    audited(services, "totp.pairing", Some(&principal.user_id), || {
        let now = services.now();
        let mut conn = services.conn()?;
        let account = account_of(&mut conn, principal)?;
        if accounts::has_totp(&mut conn, &account.id)? {
            return Err(ServiceError::Conflict("An authenticator is already paired; reset it to pair another".into()));
        }
        db::write_transaction(&mut conn, |c| {
            let started = new_pairing(services, c, &account.id, &account.username, now)?;
            audit::success(c, now, "totp.pairing", Some(&account.id), None, "pairing started")?;
            Ok(started)
        })
    })
}

/// Confirms the pairing with one code from the app; from now on logins and signatures need a code.
pub fn confirm_pairing(services: &Services, principal: &Principal, code: &str) -> Result<(), ServiceError> {
    audited(services, "totp.paired", Some(&principal.user_id), || {
        let now = services.now();
        let mut conn = services.conn()?;
        let pairing = accounts::pairing(&mut conn, &principal.user_id)?
            .ok_or_else(|| ServiceError::Conflict("No pairing in progress; start one first".into()))?;
        let seed = totp_seal::open(&services.keystore, &principal.user_id, &pairing.secret, &pairing.secret_seal)??;
        let TotpCheck::Accepted { step } = totp::check(&seed, code, now, None) else {
            return Err(ServiceError::InvalidOtp);
        };
        drop(seed);
        db::write_transaction(&mut conn, |c| {
            if accounts::has_totp(c, &principal.user_id)? {
                return Err(ServiceError::Conflict("An authenticator is already paired".into()));
            }
            users::insert_totp(
                c,
                &users::TotpFactor {
                    user_id: principal.user_id.clone(),
                    // Sealed for this same user: the sealed bytes move from the pairing as they are.
                    secret: pairing.secret.clone(),
                    last_step: Some(step),
                    failures: 0,
                    locked_until: None,
                    secret_seal: pairing.secret_seal.clone(),
                },
            )?;
            accounts::end_pairing(c, &principal.user_id)?;
            accounts::set_totp_postpone(c, &principal.user_id, None, None)?;
            audit::success(c, now, "totp.paired", Some(&principal.user_id), None, "authenticator paired")
                .map_err(ServiceError::from)
        })
    })
}

/// TOTP reset, step 1 (no session: the app is lost): e-mail and password, then an SMS code.
pub fn reset_start(services: &Services, email: &str, password: &str) -> Result<CodeSent, ServiceError> {
    let account = password_checked_account(services, email, password).inspect_err(|e| {
        services.audit_refusal("totp.reset", None, None, e);
    })?;
    audited(services, "totp.reset", Some(&account.id), || {
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
                    purpose: one_time::TOTP_RESET_SMS,
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
            audit::success(c, now, "totp.reset", Some(&account.id), None, "SMS code sent")?;
            Ok(CodeSent {
                destination_hint: Phone::hint(&phone),
                code_expires_in: lifecycle.sms_code_lifetime_secs,
                next_code_after: lifecycle.code_resend_cooldown_secs,
            })
        })
    })
}

/// TOTP reset, step 2: the SMS code. The old secret stops working at once; a new pairing starts and a
/// session is opened so that it can be confirmed.
pub fn reset_confirm(
    services: &Services,
    email: &str,
    password: &str,
    code: &str,
) -> Result<(IssuedTokens, PairingStarted), ServiceError> {
    let account = password_checked_account(services, email, password).inspect_err(|e| {
        services.audit_refusal("totp.reset_confirm", None, None, e);
    })?;
    audited(services, "totp.reset_confirm", Some(&account.id), || {
        let mut conn = services.conn()?;
        let now = services.now();
        db::write_transaction(&mut conn, |c| -> Result<Result<_, ServiceError>, ServiceError> {
            if let Err(refusal) =
                one_time::use_code(services, c, &account.id, one_time::TOTP_RESET_SMS, None, code, now)?
            {
                return Ok(Err(refusal));
            }
            accounts::remove_totp(c, &account.id)?;
            let pairing = new_pairing(services, c, &account.id, &account.username, now)?;
            let session = open_portal_session(services, c, &account.id, now)?;
            if let Some(email) = &account.email {
                notify::enqueue(c, &services.config, now, Some(&account.id), templates::totp_reset(email))?;
            }
            audit::success(c, now, "totp.reset_confirm", Some(&account.id), None, "old authenticator removed")?;
            Ok(Ok((session, pairing)))
        })?
    })
}

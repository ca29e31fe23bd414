//! A person's account, one submodule per flow: registration and activation, the session (login,
//! logout), the profile and consents, the password (change, recovery), the phone (change), and where
//! the person stands with pairing an authenticator. What several flows share is here.

mod pairing;
mod password;
mod phone;
mod profile;
mod registration;
mod session;

use crate::audit;
use crate::db::accounts::{self, Account, Consent};
use crate::db::{self, authenticators, DbConnection};
use crate::domain::enrolment::{self, Phone};
use crate::domain::{AuditEventName, VerificationPurpose};
use crate::notify::{self, templates};

use super::auth;
use super::one_time::{self, CodeRequest};
use super::{audited, second_factor, Field, Param, Principal, ServiceError, Services};

pub(super) use pairing::require_second_factor_ready;
pub use pairing::{postpone_totp, Postpone, TotpStatus};
pub use password::{change_password, password_reset_complete, password_reset_request, password_reset_send_code};
pub use phone::{phone_change_confirm, phone_change_start, phone_change_verify_email};
pub use profile::{accept_consent, profile, Profile};
pub use registration::{activation_complete, activation_send_code, register, Registration};
pub(super) use session::password_checked_account;
pub use session::{login, logout};

pub(super) fn account_of(conn: &mut DbConnection, principal: &Principal) -> Result<Account, ServiceError> {
    accounts::by_id(conn, &principal.user_id)?.ok_or(ServiceError::InvalidToken)
}

fn email_of(account: &Account) -> Result<&str, ServiceError> {
    account.email.as_deref().ok_or_else(|| ServiceError::Conflict("This account has no e-mail address".into()))
}

fn phone_of(account: &Account) -> Result<&str, ServiceError> {
    account.phone.as_deref().ok_or_else(|| ServiceError::Conflict("This account has no phone number".into()))
}

fn check_new_password(password: &str, email: Option<&str>) -> Result<(), ServiceError> {
    enrolment::check_password(password, email).map_err(|why| ServiceError::invalid_field(Field::Password, why))
}

fn record_consent(
    c: &mut DbConnection,
    user_id: &str,
    document: &str,
    version: &str,
    now: i64,
) -> Result<Consent, ServiceError> {
    let consent = Consent {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user_id.to_string(),
        document: document.to_string(),
        version: version.to_string(),
        accepted_at: now,
    };
    accounts::insert_consent(c, &consent)?;
    Ok(consent)
}

/// Where a code went and when the next may be asked for.
#[derive(Debug, Clone)]
pub struct CodeSent {
    pub destination_hint: String,
    pub code_expires_in: i64,
    pub next_code_after: i64,
}

/// Sends an SMS code for a link (activation or password recovery).
fn send_code_for_link(
    services: &Services,
    event: AuditEventName,
    link_purpose: VerificationPurpose,
    code_purpose: VerificationPurpose,
    what: &str,
    token: &str,
) -> Result<CodeSent, ServiceError> {
    let now = services.now();
    let lifecycle = &services.config.lifecycle;
    let link =
        audited(services, event, None, || one_time::live_link(&mut *services.conn()?, link_purpose, token, now))?;
    audited(services, event, Some(&link.user_id), || {
        db::write_transaction(&mut *services.conn()?, |c| {
            let account =
                accounts::by_id(c, &link.user_id)?.ok_or_else(|| ServiceError::invariant("link without account"))?;
            let phone = phone_of(&account)?.to_string();
            let code = one_time::new_code(
                services,
                c,
                CodeRequest {
                    user_id: &account.id,
                    purpose: code_purpose,
                    target: &phone,
                    parent_id: Some(&link.id),
                    payload: None,
                    lifetime: lifecycle.sms_code_lifetime_secs,
                    cooldown: lifecycle.code_resend_cooldown_secs,
                },
                now,
            )?;
            let minutes = lifecycle.sms_code_lifetime_secs / 60;
            notify::enqueue(
                c,
                &services.config,
                now,
                Some(&account.id),
                templates::sms_code(&phone, &code, what, minutes),
            )?;
            audit::success(
                c,
                now,
                event,
                Some(&account.id),
                None,
                format!("SMS code sent to {}", Phone::hint(&phone)),
            )?;
            Ok(CodeSent {
                destination_hint: Phone::hint(&phone),
                code_expires_in: lifecycle.sms_code_lifetime_secs,
                next_code_after: lifecycle.code_resend_cooldown_secs,
            })
        })
    })
}

/// Checks the current password and, once an authenticator is paired, a TOTP code: what a change of
/// the password or the phone number needs besides the session. Wrong current passwords count toward
/// the login lock-out: a stolen session must not allow guessing.
fn check_current_factors(
    services: &Services,
    account: &Account,
    current: &str,
    otp: Option<&str>,
) -> Result<(), ServiceError> {
    match auth::check_password_counted(services, &account.id, &account.password_hash, current) {
        Err(ServiceError::AuthenticationFailed) => {
            return Err(ServiceError::invalid_field(Field::CurrentPassword, "wrong password"))
        }
        other => other?,
    }
    let mut conn = services.conn()?;
    if authenticators::has_totp(&mut conn, &account.id)? {
        second_factor::verify_otp(services, &mut conn, &account.id, otp.ok_or(ServiceError::Missing(Param::Otp))?)?;
    }
    Ok(())
}

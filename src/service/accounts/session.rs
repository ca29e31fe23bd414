//! The lifecycle session: two-factor login and logout, and the password check they share with the
//! flows that run without a session.

use crate::audit;
use crate::db::accounts::{self, Account};
use crate::db::{self, authenticators, tokens};
use crate::domain::enrolment::Email;
use crate::domain::{AccountStatus, AuditEventName, TotpPostponement};
use crate::service::auth::{self, burn_password_check, IssuedTokens};
use crate::service::{second_factor, Param, Principal, ServiceError, Services};

use super::pairing::{totp_status, TotpStatus};

/// A lifecycle login: the session and where the person stands with the authenticator.
#[derive(Debug, Clone)]
pub struct Login {
    pub tokens: IssuedTokens,
    pub totp: TotpStatus,
}

/// Checks e-mail and password, counting the attempt toward the login lock-out. Returns the account.
/// Takes its own connections: the caller must hold none.
fn check_password_login(services: &Services, email: &str, password: &str) -> Result<Account, ServiceError> {
    let account = match Email::parse(email) {
        Ok(e) => accounts::by_email(&mut *services.conn()?, e.as_str())?,
        Err(_) => None,
    };
    let Some(account) = account.filter(|a| a.status == AccountStatus::Active) else {
        burn_password_check(password);
        return Err(ServiceError::AuthenticationFailed);
    };
    auth::check_password_counted(services, &account.id, &account.password_hash, password)?;
    Ok(account)
}

pub fn login(services: &Services, email: &str, password: &str, otp: Option<&str>) -> Result<Login, ServiceError> {
    let mut user_id = None;
    audited_with(services, AuditEventName::AccountLogin, &mut user_id, |user_id| {
        let now = services.now();
        let account = check_password_login(services, email, password)?;
        *user_id = Some(account.id.clone());
        let mut conn = services.conn()?;
        let paired = authenticators::has_totp(&mut conn, &account.id)?;
        if paired {
            let otp = otp.ok_or(ServiceError::Missing(Param::Otp))?;
            second_factor::verify_otp(services, &mut conn, &account.id, otp)?;
        }
        let status = totp_status(services, &account, paired, now);
        db::write_transaction(&mut conn, |c| {
            accounts::clear_login_failures(c, &account.id)?;
            // "Remind me at next login": this is that login, so the reminder is due now.
            if account.totp_postpone == Some(TotpPostponement::NextLogin) {
                accounts::set_totp_postpone(c, &account.id, None, None)?;
            }
            let tokens = auth::open_portal_session(services, c, &account.id, now)?;
            audit::success(
                c,
                now,
                AuditEventName::AccountLogin,
                Some(&account.id),
                None,
                if paired { "password and TOTP" } else { "password" },
            )?;
            let totp = if status == TotpStatus::Postponed && account.totp_postpone == Some(TotpPostponement::NextLogin)
            {
                TotpStatus::Optional
            } else {
                status
            };
            Ok(Login { tokens, totp })
        })
    })
}

/// Like `audited`, for flows that learn who the user is part way through.
fn audited_with<T>(
    services: &Services,
    event: AuditEventName,
    user_id: &mut Option<String>,
    f: impl FnOnce(&mut Option<String>) -> Result<T, ServiceError>,
) -> Result<T, ServiceError> {
    let result = f(user_id);
    if let Err(e) = &result {
        services.audit_refusal(event, user_id.as_deref(), None, e);
    }
    result
}

pub fn logout(services: &Services, principal: &Principal) -> Result<(), ServiceError> {
    let now = services.now();
    db::write_transaction(&mut *services.conn()?, |c| {
        tokens::revoke(c, &principal.token_digest)?;
        audit::success(c, now, AuditEventName::AccountLogout, Some(&principal.user_id), None, "session ended")
            .map_err(ServiceError::from)
    })
}

/// Re-checks e-mail and password for flows that run without a session (TOTP reset).
/// Takes its own connections: the caller must hold none.
pub(in crate::service) fn password_checked_account(
    services: &Services,
    email: &str,
    password: &str,
) -> Result<Account, ServiceError> {
    let account = check_password_login(services, email, password)?;
    db::write_transaction(&mut *services.conn()?, |c| accounts::clear_login_failures(c, &account.id))?;
    Ok(account)
}

//! The password: change (with the current one) and recovery (a link by e-mail, a code by SMS).

use crate::audit;
use crate::db::accounts::{self, STATUS_ACTIVE};
use crate::db::{self, resets, tokens};
use crate::domain::enrolment::Email;
use crate::notify::{self, templates};
use crate::service::auth::hash_password;
use crate::service::one_time;
use crate::service::{audited, Committed, Field, Principal, ServiceError, Services};

use super::{account_of, check_current_factors, check_new_password, send_code_for_link, CodeSent};

/// Changes the password: the current one, and a TOTP code once paired. Other sessions end.
pub fn change_password(
    services: &Services,
    principal: &Principal,
    current: &str,
    new_password: &str,
    otp: Option<&str>,
) -> Result<(), ServiceError> {
    audited(services, "account.password_change", Some(&principal.user_id), || {
        let now = services.now();
        let account = account_of(&mut *services.conn()?, principal)?;
        check_new_password(new_password, account.email.as_deref())?;
        check_current_factors(services, &account, current, otp)?;
        let hash = hash_password(new_password)?;
        db::write_transaction(&mut *services.conn()?, |c| {
            accounts::set_password(c, &account.id, &hash)?;
            tokens::revoke_all_of_user(c, &account.id, Some(&principal.token_digest))?;
            if let Some(email) = &account.email {
                notify::enqueue(c, &services.config, now, Some(&account.id), templates::password_changed(email))?;
            }
            audit::success(c, now, "account.password_change", Some(&account.id), None, "other sessions revoked")
                .map_err(ServiceError::from)
        })
    })
}

/// Starts password recovery. The answer is the same whether or not the account exists.
pub fn password_reset_request(services: &Services, email: &str) -> Result<(), ServiceError> {
    let now = services.now();
    let email = Email::parse(email).map_err(|why| ServiceError::invalid_field(Field::Email, why))?;
    let account = accounts::by_email(&mut *services.conn()?, email.as_str())?;
    let Some(account) = account.filter(|a| a.status == STATUS_ACTIVE) else {
        services.audit_refusal(
            "account.password_reset",
            None,
            None,
            &ServiceError::NotFound("no active account for the address".into()),
        );
        return Ok(());
    };
    let result = db::write_transaction(&mut *services.conn()?, |c| {
        one_time::check_address_limit(services, c, email.as_str(), now)?;
        let lifetime = services.config.lifecycle.password_reset_link_lifetime_secs;
        let token = one_time::new_link(c, &account.id, one_time::RESET_LINK, email.as_str(), lifetime, now)?;
        let link = format!("{}/reset-password?token={token}", services.config.portal_url(&services.public_url));
        notify::enqueue(
            c,
            &services.config,
            now,
            Some(&account.id),
            templates::password_reset(email.as_str(), &link, now + lifetime),
        )?;
        audit::success(c, now, "account.password_reset", Some(&account.id), None, "recovery link sent")
            .map_err(ServiceError::from)
    });
    match result {
        // Rate limiting is not revealed either: the address owner already has links to use.
        Err(e @ ServiceError::RateLimited { .. }) => {
            services.audit_refusal("account.password_reset", Some(&account.id), None, &e);
            Ok(())
        }
        other => other,
    }
}

pub fn password_reset_send_code(services: &Services, token: &str) -> Result<CodeSent, ServiceError> {
    send_code_for_link(
        services,
        "account.password_reset_code",
        one_time::RESET_LINK,
        one_time::RESET_SMS,
        "reset your password",
        token,
    )
}

/// Finishes recovery: link, SMS code, new password; every session of the account ends.
pub fn password_reset_complete(
    services: &Services,
    token: &str,
    code: &str,
    new_password: &str,
) -> Result<(), ServiceError> {
    let now = services.now();
    let link = audited(services, "account.password_reset_complete", None, || {
        one_time::live_link(&mut *services.conn()?, one_time::RESET_LINK, token, now)
    })?;
    audited(services, "account.password_reset_complete", Some(&link.user_id), || {
        let mut conn = services.conn()?;
        let account = accounts::by_id(&mut conn, &link.user_id)?
            .ok_or_else(|| ServiceError::invariant("link without account"))?;
        check_new_password(new_password, account.email.as_deref())?;
        let hash = hash_password(new_password)?;
        db::write_transaction(&mut conn, |c| -> Result<Committed<()>, ServiceError> {
            if let Committed::Refused(refusal) =
                one_time::use_link_with_code(services, c, &link, one_time::RESET_SMS, code, now)?
            {
                return Ok(Committed::Refused(refusal));
            }
            accounts::set_password(c, &account.id, &hash)?;
            tokens::revoke_all_of_user(c, &account.id, None)?;
            // Whoever recovered the password may hold the mailbox and the SIM: an authenticator reset
            // within the cooling-off period now needs a new identity check.
            resets::set_recovered_at(c, &account.id, now)?;
            let days = services.config.security.recovery_cooling_off_secs.saturating_add(86_399) / 86_400;
            if let Some(email) = &account.email {
                let notice = templates::password_recovered(email, days);
                notify::enqueue(c, &services.config, now, Some(&account.id), notice)?;
            }
            if let Some(phone) = &account.phone {
                notify::enqueue(c, &services.config, now, Some(&account.id), templates::password_recovered_sms(phone))?;
            }
            audit::success(c, now, "account.password_reset_complete", Some(&account.id), None, "all sessions revoked")?;
            Ok(Committed::Done(()))
        })?
        .into_result()
    })
}

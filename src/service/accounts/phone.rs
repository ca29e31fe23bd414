//! Phone change in three steps: the current factors, a code by e-mail, a code by SMS to the new number.

use crate::audit;
use crate::db::accounts;
use crate::db::{self, resets};
use crate::domain::enrolment::Phone;
use crate::notify::{self, templates};
use crate::service::one_time::{self, CodeRequest};
use crate::service::{audited, Committed, Field, Principal, ServiceError, Services};

use super::pairing::require_second_factor_ready;
use super::{check_current_factors, email_of, CodeSent};

/// Phone change, step 1: the password and, once paired, a TOTP code; then a code by e-mail (proves the
/// mailbox), valid a few minutes.
pub fn phone_change_start(
    services: &Services,
    principal: &Principal,
    new_phone: &str,
    password: &str,
    otp: Option<&str>,
) -> Result<CodeSent, ServiceError> {
    audited(services, "account.phone_change", Some(&principal.user_id), || {
        let now = services.now();
        let phone = Phone::parse(new_phone).map_err(|why| ServiceError::invalid_field(Field::NewPhone, why))?;
        let account = require_second_factor_ready(services, &mut *services.conn()?, principal)?;
        if account.phone.as_deref() == Some(phone.as_str()) {
            return Err(ServiceError::invalid_field(Field::NewPhone, "that is already the account's number"));
        }
        // A session alone (or the mailbox) must not move the SMS codes to another SIM.
        check_current_factors(services, &account, password, otp)?;
        let mut conn = services.conn()?;
        let email = email_of(&account)?.to_string();
        let lifetime = services.config.lifecycle.phone_change_code_lifetime_secs;
        db::write_transaction(&mut conn, |c| {
            let code = one_time::new_code(
                services,
                c,
                CodeRequest {
                    user_id: &account.id,
                    purpose: one_time::PHONE_EMAIL,
                    target: &email,
                    parent_id: None,
                    payload: Some(phone.as_str()),
                    lifetime,
                    cooldown: 60,
                },
                now,
            )?;
            notify::enqueue(
                c,
                &services.config,
                now,
                Some(&account.id),
                templates::email_code(&email, &code, "change your phone number", lifetime / 60),
            )?;
            audit::success(c, now, "account.phone_change", Some(&account.id), None, "e-mail code sent")?;
            Ok(CodeSent { destination_hint: email.clone(), code_expires_in: lifetime, next_code_after: 60 })
        })
    })
}

/// Phone change, step 2: the e-mail code; then a code by SMS to the new number.
pub fn phone_change_verify_email(
    services: &Services,
    principal: &Principal,
    code: &str,
) -> Result<CodeSent, ServiceError> {
    audited(services, "account.phone_change_email", Some(&principal.user_id), || {
        let now = services.now();
        let mut conn = services.conn()?;
        let account = require_second_factor_ready(services, &mut conn, principal)?;
        let lifetime = services.config.lifecycle.phone_change_code_lifetime_secs;
        db::write_transaction(&mut conn, |c| -> Result<Committed<CodeSent>, ServiceError> {
            let verified = match one_time::use_code(services, c, &account.id, one_time::PHONE_EMAIL, None, code, now)? {
                Committed::Done(row) => row,
                Committed::Refused(refusal) => return Ok(Committed::Refused(refusal)),
            };
            let new_phone =
                verified.payload.clone().ok_or_else(|| ServiceError::invariant("phone change without number"))?;
            let sms = one_time::new_code(
                services,
                c,
                CodeRequest {
                    user_id: &account.id,
                    purpose: one_time::PHONE_SMS,
                    target: &new_phone,
                    parent_id: Some(&verified.id),
                    payload: Some(&new_phone),
                    lifetime,
                    cooldown: 0,
                },
                now,
            )?;
            notify::enqueue(
                c,
                &services.config,
                now,
                Some(&account.id),
                templates::sms_code(&new_phone, &sms, "confirm your new phone number", lifetime / 60),
            )?;
            audit::success(
                c,
                now,
                "account.phone_change_email",
                Some(&account.id),
                None,
                "SMS code sent to the new number",
            )?;
            Ok(Committed::Done(CodeSent {
                destination_hint: Phone::hint(&new_phone),
                code_expires_in: lifetime,
                next_code_after: 0,
            }))
        })?
        .into_result()
    })
}

/// Phone change, step 3: the SMS code from the new number; the number changes and an e-mail confirms it.
pub fn phone_change_confirm(services: &Services, principal: &Principal, code: &str) -> Result<String, ServiceError> {
    audited(services, "account.phone_change_confirm", Some(&principal.user_id), || {
        let now = services.now();
        let mut conn = services.conn()?;
        let account = require_second_factor_ready(services, &mut conn, principal)?;
        let email = email_of(&account)?.to_string();
        db::write_transaction(&mut conn, |c| -> Result<Committed<String>, ServiceError> {
            let verified = match one_time::use_code(services, c, &account.id, one_time::PHONE_SMS, None, code, now)? {
                Committed::Done(row) => row,
                Committed::Refused(refusal) => return Ok(Committed::Refused(refusal)),
            };
            let new_phone = verified.payload.ok_or_else(|| ServiceError::invariant("phone change without number"))?;
            accounts::set_phone(c, &account.id, &new_phone)?;
            // A new SIM can receive the codes of an authenticator reset: the cooling-off period starts.
            resets::set_recovered_at(c, &account.id, now)?;
            if let Some(old_phone) = &account.phone {
                let notice = templates::phone_changed_sms(old_phone, &Phone::hint(&new_phone));
                notify::enqueue(c, &services.config, now, Some(&account.id), notice)?;
            }
            notify::enqueue(
                c,
                &services.config,
                now,
                Some(&account.id),
                templates::phone_changed(&email, &Phone::hint(&new_phone)),
            )?;
            audit::success(
                c,
                now,
                "account.phone_change_confirm",
                Some(&account.id),
                None,
                format!("phone now {}", Phone::hint(&new_phone)),
            )?;
            Ok(Committed::Done(new_phone))
        })?
        .into_result()
    })
}

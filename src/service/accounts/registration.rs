//! Registration and activation: the invitation link by e-mail, a code by SMS, then the password.

use crate::audit;
use crate::db;
use crate::db::accounts::{self, Account};
use crate::domain::enrolment::{self, Email, Phone};
use crate::domain::{AccountStatus, AuditEventName, VerificationPurpose};
use crate::notify::{self, templates};
use crate::service::auth::hash_password;
use crate::service::one_time;
use crate::service::{audited, Committed, Field, ServiceError, Services};

use super::{check_new_password, record_consent, send_code_for_link, CodeSent};

/// What a person enters to register.
#[derive(Debug, Clone)]
pub struct Registration {
    pub given_name: String,
    pub surname: String,
    pub email: String,
    pub phone: String,
    pub privacy_accepted: bool,
    pub privacy_version: String,
    /// The person's country (ISO 3166-1 alpha-2) for the certificate; None: the configured default.
    pub country: Option<String>,
}

pub fn register(services: &Services, registration: Registration) -> Result<String, ServiceError> {
    audited(services, AuditEventName::AccountRegister, None, || {
        let lifecycle = &services.config.lifecycle;
        let given_name = enrolment::parse_name(&registration.given_name)
            .map_err(|why| ServiceError::invalid_field(Field::GivenName, why))?;
        let surname = enrolment::parse_name(&registration.surname)
            .map_err(|why| ServiceError::invalid_field(Field::Surname, why))?;
        let email = Email::parse(&registration.email).map_err(|why| ServiceError::invalid_field(Field::Email, why))?;
        let phone = Phone::parse(&registration.phone).map_err(|why| ServiceError::invalid_field(Field::Phone, why))?;
        let country = registration
            .country
            .as_deref()
            .map(enrolment::parse_country)
            .transpose()
            .map_err(|why| ServiceError::invalid_field(Field::Country, why))?;
        if !registration.privacy_accepted {
            return Err(ServiceError::invalid_field(
                Field::PrivacyConsent,
                "the privacy information note must be accepted",
            ));
        }
        if registration.privacy_version != lifecycle.privacy_version {
            return Err(ServiceError::invalid_field(
                Field::PrivacyConsentVersion,
                format!("the current version is {}", lifecycle.privacy_version),
            ));
        }
        let now = services.now();
        let mut conn = services.conn()?;
        let user_id = uuid::Uuid::new_v4().to_string();
        db::write_transaction(&mut conn, |c| {
            one_time::check_address_limit(services, c, email.as_str(), now)?;
            // An address that has an account gets the same answer as a new one (the registration
            // form must not tell who has an account); only its owner is told, by e-mail.
            let existing = match accounts::by_email(c, email.as_str())? {
                Some(account) => Some(account.id),
                None => db::accounts::by_username(c, email.as_str())?.map(|u| u.id),
            };
            if let Some(owner) = existing {
                let portal = services.config.portal_url(&services.public_url);
                notify::enqueue(
                    c,
                    &services.config,
                    now,
                    Some(&owner),
                    templates::already_registered(email.as_str(), &portal),
                )?;
                audit::success(
                    c,
                    now,
                    AuditEventName::AccountRegister,
                    Some(&owner),
                    None,
                    "address already registered: owner told",
                )?;
                return Ok::<(), ServiceError>(());
            }
            accounts::insert(
                c,
                &Account {
                    id: user_id.clone(),
                    username: email.as_str().to_string(),
                    password_hash: String::new(),
                    created_at: now,
                    given_name: Some(given_name.clone()),
                    surname: Some(surname.clone()),
                    email: Some(email.as_str().to_string()),
                    phone: Some(phone.as_str().to_string()),
                    status: AccountStatus::Invited,
                    login_failures: 0,
                    login_locked_until: None,
                    totp_postpone: None,
                    totp_remind_at: None,
                    country: country.clone(),
                },
            )?;
            record_consent(c, &user_id, "privacy", &registration.privacy_version, now)?;
            let lifetime = lifecycle.activation_link_lifetime_secs;
            let token =
                one_time::new_link(c, &user_id, VerificationPurpose::ActivationLink, email.as_str(), lifetime, now)?;
            let link = format!("{}/activate?token={token}", services.config.portal_url(&services.public_url));
            notify::enqueue(
                c,
                &services.config,
                now,
                Some(&user_id),
                templates::invitation(email.as_str(), &given_name, &link, now + lifetime),
            )?;
            audit::success(c, now, AuditEventName::AccountRegister, Some(&user_id), None, "invitation sent")?;
            Ok(())
        })?;
        Ok(user_id)
    })
}

pub fn activation_send_code(services: &Services, token: &str) -> Result<CodeSent, ServiceError> {
    send_code_for_link(
        services,
        AuditEventName::AccountActivationCode,
        VerificationPurpose::ActivationLink,
        VerificationPurpose::ActivationSms,
        "activate your account",
        token,
    )
}

/// Finishes activation: the SMS code proves the phone, the link the e-mail; the password is set.
pub fn activation_complete(
    services: &Services,
    token: &str,
    code: &str,
    password: &str,
) -> Result<String, ServiceError> {
    let now = services.now();
    let link = audited(services, AuditEventName::AccountActivate, None, || {
        one_time::live_link(&mut *services.conn()?, VerificationPurpose::ActivationLink, token, now)
    })?;
    audited(services, AuditEventName::AccountActivate, Some(&link.user_id), || {
        let mut conn = services.conn()?;
        let account = accounts::by_id(&mut conn, &link.user_id)?
            .ok_or_else(|| ServiceError::invariant("link without account"))?;
        if account.status != AccountStatus::Invited {
            return Err(ServiceError::Conflict("The account is already active".into()));
        }
        check_new_password(password, account.email.as_deref())?;
        let password_hash = hash_password(password)?;
        db::write_transaction(&mut conn, |c| -> Result<Committed<()>, ServiceError> {
            if let Committed::Refused(refusal) =
                one_time::use_link_with_code(services, c, &link, VerificationPurpose::ActivationSms, code, now)?
            {
                return Ok(Committed::Refused(refusal));
            }
            accounts::activate(c, &account.id, &password_hash)?;
            audit::success(
                c,
                now,
                AuditEventName::AccountActivate,
                Some(&account.id),
                None,
                "phone verified, password set",
            )?;
            Ok(Committed::Done(()))
        })?
        .into_result()?;
        Ok(account.id.clone())
    })
}

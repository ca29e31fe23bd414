//! A person's account: registration, activation (phone code, then password), two-factor login,
//! consents, and account care (password change and recovery, phone change).

use crate::audit;
use crate::db::accounts::{self, Account, Consent, STATUS_ACTIVE, STATUS_INVITED};
use crate::db::{self, resets, tokens, DbConnection};
use crate::domain::enrolment::{self, Email, Phone};
use crate::notify::{self, templates};

use super::auth::{self, burn_password_check, hash_password, IssuedTokens};
use super::one_time::{self, CodeRequest};
use super::{audited, second_factor, Field, Param, Principal, ServiceError, Services};

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

/// Where the person stands with the authenticator app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpStatus {
    Paired,
    /// Not paired, and no longer optional.
    Required,
    /// Not paired; the person chose to be reminded later.
    Postponed,
    /// Not paired; the front end should offer pairing.
    Optional,
}

impl TotpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TotpStatus::Paired => "paired",
            TotpStatus::Required => "required",
            TotpStatus::Postponed => "postponed",
            TotpStatus::Optional => "optional",
        }
    }
}

/// The first second (UTC) at which pairing is mandatory.
pub fn totp_mandatory_from(services: &Services) -> i64 {
    let last_day = services.config.lifecycle.totp_mandatory_after;
    last_day.succ_opt().unwrap_or(last_day).and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()).unwrap_or(i64::MAX)
}

pub(super) fn totp_status(services: &Services, account: &Account, paired: bool, now: i64) -> TotpStatus {
    if paired {
        return TotpStatus::Paired;
    }
    if now >= totp_mandatory_from(services) {
        return TotpStatus::Required;
    }
    match account.totp_postpone.as_deref() {
        Some("never") | Some("next_login") => TotpStatus::Postponed,
        Some("until") if account.totp_remind_at.is_some_and(|at| at > now) => TotpStatus::Postponed,
        _ => TotpStatus::Optional,
    }
}

pub(super) fn account_of(conn: &mut DbConnection, principal: &Principal) -> Result<Account, ServiceError> {
    accounts::by_id(conn, &principal.user_id)?.ok_or(ServiceError::InvalidToken)
}

/// Refuses everything but pairing while pairing an authenticator is mandatory and not done.
pub(super) fn require_second_factor_ready(
    services: &Services,
    conn: &mut DbConnection,
    principal: &Principal,
) -> Result<Account, ServiceError> {
    let account = account_of(conn, principal)?;
    let paired = accounts::has_totp(conn, &account.id)?;
    if totp_status(services, &account, paired, services.now()) == TotpStatus::Required {
        return Err(ServiceError::Forbidden(format!(
            "Pair an authenticator app first: it is mandatory after {}",
            services.config.lifecycle.totp_mandatory_after
        )));
    }
    Ok(account)
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

pub fn register(services: &Services, registration: Registration) -> Result<String, ServiceError> {
    audited(services, "account.register", None, || {
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
            return Err(ServiceError::InvalidRequest(
                "privacy_consent: the privacy information note must be accepted".into(),
            ));
        }
        if registration.privacy_version != lifecycle.privacy_version {
            return Err(ServiceError::InvalidRequest(format!(
                "privacy_consent.version: the current version is {}",
                lifecycle.privacy_version
            )));
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
                None => db::users::by_username(c, email.as_str())?.map(|u| u.id),
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
                    "account.register",
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
                    status: STATUS_INVITED.into(),
                    login_failures: 0,
                    login_locked_until: None,
                    totp_postpone: None,
                    totp_remind_at: None,
                    country: country.clone(),
                },
            )?;
            record_consent(c, &user_id, "privacy", &registration.privacy_version, now)?;
            let lifetime = lifecycle.activation_link_lifetime_secs;
            let token = one_time::new_link(c, &user_id, one_time::ACTIVATION_LINK, email.as_str(), lifetime, now)?;
            let link = format!("{}/activate?token={token}", services.config.portal_url(&services.public_url));
            notify::enqueue(
                c,
                &services.config,
                now,
                Some(&user_id),
                templates::invitation(email.as_str(), &given_name, &link, now + lifetime),
            )?;
            audit::success(c, now, "account.register", Some(&user_id), None, "invitation sent")?;
            Ok(())
        })?;
        Ok(user_id)
    })
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
    event: &str,
    link_purpose: &str,
    code_purpose: &str,
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

pub fn activation_send_code(services: &Services, token: &str) -> Result<CodeSent, ServiceError> {
    send_code_for_link(
        services,
        "account.activation_code",
        one_time::ACTIVATION_LINK,
        one_time::ACTIVATION_SMS,
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
    let link = audited(services, "account.activate", None, || {
        one_time::live_link(&mut *services.conn()?, one_time::ACTIVATION_LINK, token, now)
    })?;
    audited(services, "account.activate", Some(&link.user_id), || {
        let mut conn = services.conn()?;
        let account = accounts::by_id(&mut conn, &link.user_id)?
            .ok_or_else(|| ServiceError::invariant("link without account"))?;
        if account.status != STATUS_INVITED {
            return Err(ServiceError::Conflict("The account is already active".into()));
        }
        check_new_password(password, account.email.as_deref())?;
        let password_hash = hash_password(password)?;
        db::write_transaction(&mut conn, |c| -> Result<Result<(), ServiceError>, ServiceError> {
            if let Err(refusal) = one_time::use_link_with_code(services, c, &link, one_time::ACTIVATION_SMS, code, now)?
            {
                return Ok(Err(refusal));
            }
            accounts::activate(c, &account.id, &password_hash)?;
            audit::success(c, now, "account.activate", Some(&account.id), None, "phone verified, password set")?;
            Ok(Ok(()))
        })??;
        Ok(account.id.clone())
    })
}

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
    let Some(account) = account.filter(|a| a.status == STATUS_ACTIVE) else {
        burn_password_check(password);
        return Err(ServiceError::AuthenticationFailed);
    };
    auth::check_password_counted(services, &account.id, &account.password_hash, password)?;
    Ok(account)
}

pub fn login(services: &Services, email: &str, password: &str, otp: Option<&str>) -> Result<Login, ServiceError> {
    let mut user_id = None;
    audited_with(services, "account.login", &mut user_id, |user_id| {
        let now = services.now();
        let account = check_password_login(services, email, password)?;
        *user_id = Some(account.id.clone());
        let mut conn = services.conn()?;
        let paired = accounts::has_totp(&mut conn, &account.id)?;
        if paired {
            let otp = otp.ok_or(ServiceError::Missing(Param::Otp))?;
            second_factor::verify_otp(services, &mut conn, &account.id, otp)?;
        }
        let status = totp_status(services, &account, paired, now);
        db::write_transaction(&mut conn, |c| {
            accounts::clear_login_failures(c, &account.id)?;
            // "Remind me at next login": this is that login, so the reminder is due now.
            if account.totp_postpone.as_deref() == Some("next_login") {
                accounts::set_totp_postpone(c, &account.id, None, None)?;
            }
            let tokens = auth::open_portal_session(services, c, &account.id, now)?;
            audit::success(
                c,
                now,
                "account.login",
                Some(&account.id),
                None,
                if paired { "password and TOTP" } else { "password" },
            )?;
            let totp = if status == TotpStatus::Postponed && account.totp_postpone.as_deref() == Some("next_login") {
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
    event: &str,
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
        audit::success(c, now, "account.logout", Some(&principal.user_id), None, "session ended")
            .map_err(ServiceError::from)
    })
}

/// What `GET /me` shows.
#[derive(Debug, Clone)]
pub struct Profile {
    pub account: Account,
    pub totp: TotpStatus,
    pub consents: Vec<Consent>,
}

pub fn profile(services: &Services, principal: &Principal) -> Result<Profile, ServiceError> {
    let mut conn = services.conn()?;
    let account = account_of(&mut conn, principal)?;
    let paired = accounts::has_totp(&mut conn, &account.id)?;
    let consents = accounts::consents_of(&mut conn, &account.id)?;
    Ok(Profile { totp: totp_status(services, &account, paired, services.now()), account, consents })
}

pub fn accept_consent(
    services: &Services,
    principal: &Principal,
    document: &str,
    version: &str,
) -> Result<Consent, ServiceError> {
    audited(services, "account.consent", Some(&principal.user_id), || {
        let lifecycle = &services.config.lifecycle;
        let current = match document {
            "privacy" => &lifecycle.privacy_version,
            "terms" => &lifecycle.terms_version,
            _ => return Err(ServiceError::InvalidRequest("document: privacy or terms".into())),
        };
        if version != current {
            return Err(ServiceError::InvalidRequest(format!(
                "version: the current version of {document} is {current}"
            )));
        }
        let now = services.now();
        db::write_transaction(&mut *services.conn()?, |c| {
            let consent = record_consent(c, &principal.user_id, document, version, now)?;
            audit::success(c, now, "account.consent", Some(&principal.user_id), None, format!("{document} {version}"))?;
            Ok(consent)
        })
    })
}

/// How a person postpones pairing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Postpone {
    Until(chrono::NaiveDate),
    NextLogin,
    Never,
}

pub fn postpone_totp(services: &Services, principal: &Principal, postpone: Postpone) -> Result<Profile, ServiceError> {
    audited(services, "account.totp_postpone", Some(&principal.user_id), || {
        let now = services.now();
        let mandatory_from = totp_mandatory_from(services);
        let mut conn = services.conn()?;
        if accounts::has_totp(&mut conn, &principal.user_id)? {
            return Err(ServiceError::Conflict("An authenticator is already paired".into()));
        }
        if now >= mandatory_from {
            return Err(ServiceError::Conflict(format!(
                "Pairing an authenticator is mandatory after {}; it can no longer be postponed",
                services.config.lifecycle.totp_mandatory_after
            )));
        }
        let (mode, remind_at) = match postpone {
            Postpone::Until(date) => {
                let at = date.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()).unwrap_or(i64::MAX);
                if at <= now || at >= mandatory_from {
                    return Err(ServiceError::InvalidRequest(format!(
                        "date: a day after today and no later than {}",
                        services.config.lifecycle.totp_mandatory_after
                    )));
                }
                ("until", Some(at))
            }
            Postpone::NextLogin => ("next_login", None),
            Postpone::Never => ("never", None),
        };
        db::write_transaction(&mut conn, |c| {
            accounts::set_totp_postpone(c, &principal.user_id, Some(mode), remind_at)?;
            audit::success(c, now, "account.totp_postpone", Some(&principal.user_id), None, mode)
                .map_err(ServiceError::from)
        })?;
        drop(conn);
        profile(services, principal)
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
            return Err(ServiceError::InvalidRequest("current_password: wrong password".into()))
        }
        other => other?,
    }
    let mut conn = services.conn()?;
    if accounts::has_totp(&mut conn, &account.id)? {
        second_factor::verify_otp(services, &mut conn, &account.id, otp.ok_or(ServiceError::Missing(Param::Otp))?)?;
    }
    Ok(())
}

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
        db::write_transaction(&mut conn, |c| -> Result<Result<(), ServiceError>, ServiceError> {
            if let Err(refusal) = one_time::use_link_with_code(services, c, &link, one_time::RESET_SMS, code, now)? {
                return Ok(Err(refusal));
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
            Ok(Ok(()))
        })?
    })
}

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
        db::write_transaction(&mut conn, |c| -> Result<Result<CodeSent, ServiceError>, ServiceError> {
            let verified = match one_time::use_code(services, c, &account.id, one_time::PHONE_EMAIL, None, code, now)? {
                Ok(row) => row,
                Err(refusal) => return Ok(Err(refusal)),
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
            Ok(Ok(CodeSent {
                destination_hint: Phone::hint(&new_phone),
                code_expires_in: lifetime,
                next_code_after: 0,
            }))
        })?
    })
}

/// Phone change, step 3: the SMS code from the new number; the number changes and an e-mail confirms it.
pub fn phone_change_confirm(services: &Services, principal: &Principal, code: &str) -> Result<String, ServiceError> {
    audited(services, "account.phone_change_confirm", Some(&principal.user_id), || {
        let now = services.now();
        let mut conn = services.conn()?;
        let account = require_second_factor_ready(services, &mut conn, principal)?;
        let email = email_of(&account)?.to_string();
        db::write_transaction(&mut conn, |c| -> Result<Result<String, ServiceError>, ServiceError> {
            let verified = match one_time::use_code(services, c, &account.id, one_time::PHONE_SMS, None, code, now)? {
                Ok(row) => row,
                Err(refusal) => return Ok(Err(refusal)),
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
            Ok(Ok(new_phone))
        })?
    })
}

/// Re-checks e-mail and password for flows that run without a session (TOTP reset).
/// Takes its own connections: the caller must hold none.
pub(super) fn password_checked_account(
    services: &Services,
    email: &str,
    password: &str,
) -> Result<Account, ServiceError> {
    let account = check_password_login(services, email, password)?;
    db::write_transaction(&mut *services.conn()?, |c| accounts::clear_login_failures(c, &account.id))?;
    Ok(account)
}

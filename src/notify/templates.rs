//! The texts people receive. Kept together so that wording and languages can be changed in one place.

use super::Notice;

fn date(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default()
}

pub fn invitation(email: &str, given_name: &str, link: &str, valid_until: i64) -> Notice {
    Notice::email(
        email,
        "Activate your signing account",
        format!(
            "Hello {given_name},\n\nyour account for qualified electronic signatures has been created.\n\
             Open this link to verify your phone and choose a password:\n\n{link}\n\n\
             The link works once and until {}.\n",
            date(valid_until)
        ),
    )
    .carrying_secret()
}

/// Sent instead of an invitation when someone registers an address that already has an account: the
/// registration answers exactly as for a new address, and only the owner learns of it.
pub fn already_registered(email: &str, portal_url: &str) -> Notice {
    Notice::email(
        email,
        "Someone tried to register your address",
        format!(
            "Someone tried to open a new signing account with this e-mail address, which already has one.\n\
             Nothing was changed. If it was you, sign in at {portal_url} (or recover your password there).\n\
             If it was not you, ignore this message.\n"
        ),
    )
}

pub fn sms_code(phone: &str, code: &str, purpose: &str, minutes: i64) -> Notice {
    Notice::sms(phone, format!("{code} is your code to {purpose}. It is valid for {minutes} minutes."))
        .carrying_secret()
}

pub fn email_code(email: &str, code: &str, purpose: &str, minutes: i64) -> Notice {
    Notice::email(
        email,
        format!("Your code to {purpose}"),
        format!("Your code to {purpose} is {code}.\nIt is valid for {minutes} minutes. If you did not ask for it, ignore this message.\n"),
    )
    .carrying_secret()
}

pub fn password_reset(email: &str, link: &str, valid_until: i64) -> Notice {
    Notice::email(
        email,
        "Reset your password",
        format!(
            "Someone asked to reset the password of your signing account.\nOpen this link to continue:\n\n{link}\n\n\
             The link works once and until {}. If it was not you, ignore this message.\n",
            date(valid_until)
        ),
    )
    .carrying_secret()
}

pub fn password_changed(email: &str) -> Notice {
    Notice::email(
        email,
        "Your password was changed",
        "The password of your signing account was changed and other sessions were signed out.\n\
         If it was not you, contact us at once.\n",
    )
}

pub fn application_bound(email: &str, application: &str) -> Notice {
    Notice::email(
        email,
        "An application can now act for your signing account",
        format!(
            "The application \"{application}\" was registered by the signing service to act for your signing \
             account by itself: it can list your credentials and ask for signatures, which still need the code \
             of your authenticator app.\nIf you did not ask for this, contact us at once.\n"
        ),
    )
}

pub fn phone_changed(email: &str, phone_hint: &str) -> Notice {
    Notice::email(
        email,
        "Your phone number was changed",
        format!("Codes for your signing account now go to {phone_hint}.\nIf it was not you, contact us at once.\n"),
    )
}

/// After a password recovery: by e-mail and by SMS, so that the owner of either hears of it.
pub fn password_recovered(email: &str, cooling_off_days: i64) -> Notice {
    Notice::email(
        email,
        "Your password was reset",
        format!(
            "The password of your signing account was reset through account recovery and every session was \
             signed out.\nFor the next {cooling_off_days} days, a reset of your authenticator app needs a new \
             identity verification before it can authorise signatures.\nIf it was not you, contact us at once.\n"
        ),
    )
}

pub fn password_recovered_sms(phone: &str) -> Notice {
    Notice::sms(phone, "The password of your signing account was reset. If it was not you, contact us at once.")
}

/// After a phone change: to the old number, whose owner may not have asked for it.
pub fn phone_changed_sms(old_phone: &str, new_phone_hint: &str) -> Notice {
    Notice::sms(
        old_phone,
        format!("Codes for your signing account now go to {new_phone_hint}. If it was not you, contact us at once."),
    )
}

/// After an authenticator reset: the cancel link, and whether an identity verification is needed first.
pub fn totp_reset(email: &str, cancel_link: &str, valid_until: i64, identity_session: Option<&str>) -> Notice {
    let identity = match identity_session {
        Some(url) => format!(
            "Because your password was recovered or your phone number changed recently, the new authenticator \
             can authorise signatures only after a new identity verification. Start it here:\n\n{url}\n\n"
        ),
        None => String::new(),
    };
    Notice::email(
        email,
        "Your authenticator was reset",
        format!(
            "The authenticator app of your signing account was reset; the old one no longer works and every \
             session was signed out.\n{identity}If it was not you, cancel the reset with this link (it works once \
             and until {}): no authenticator will then be paired and signing stays blocked until you reset it \
             again with a new identity verification.\n\n{cancel_link}\n",
            date(valid_until)
        ),
    )
    .carrying_secret()
}

pub fn totp_reset_sms(phone: &str, cancel_link: &str) -> Notice {
    Notice::sms(
        phone,
        format!("The authenticator of your signing account was reset. If it was not you, cancel it: {cancel_link}"),
    )
    .carrying_secret()
}

pub fn totp_reset_cancelled(email: &str) -> Notice {
    Notice::email(
        email,
        "The authenticator reset was cancelled",
        "The authenticator reset of your signing account was cancelled: no authenticator is paired and every \
         session was signed out. Signing stays blocked until you reset the authenticator again, which needs \
         a new identity verification.\n",
    )
}

pub fn totp_reset_cancelled_sms(phone: &str) -> Notice {
    Notice::sms(phone, "The authenticator reset of your signing account was cancelled; signing is blocked.")
}

pub fn totp_reset_verified(email: &str) -> Notice {
    Notice::email(
        email,
        "Your new authenticator can sign",
        "Your identity was verified: the authenticator app you paired after the reset can now authorise signatures.\n",
    )
}

pub fn totp_reset_rejected(email: &str, reasons: &[String]) -> Notice {
    let reasons = if reasons.is_empty() { "no reason was given".to_string() } else { reasons.join("; ") };
    Notice::email(
        email,
        "Your identity could not be verified",
        format!(
            "Your identity could not be verified after the authenticator reset: {reasons}.\nSigning stays \
             blocked; reset the authenticator again to start a new verification.\n"
        ),
    )
}

pub fn payment_received(email: &str, order_id: &str, gross_cents: i64, currency: &str) -> Notice {
    Notice::email(
        email,
        "Payment received",
        format!(
            "We received {}.{:02} {currency} for order {order_id}. Thank you.\n",
            gross_cents / 100,
            gross_cents % 100
        ),
    )
}

pub fn identification(email: &str, session_url: &str) -> Notice {
    Notice::email(
        email,
        "Verify your identity",
        format!("To issue your certificate we need to verify your identity by video.\nStart here:\n\n{session_url}\n"),
    )
    .carrying_secret()
}

pub fn identity_accepted(email: &str) -> Notice {
    Notice::email(
        email,
        "Your identity is verified",
        "Your identity was verified. You can now accept the issuance terms and have your certificate issued.\n",
    )
}

pub fn identity_rejected(email: &str, reasons: &[String], session_url: &str) -> Notice {
    let reasons = if reasons.is_empty() { "no reason was given".to_string() } else { reasons.join("; ") };
    Notice::email(
        email,
        "Your identity could not be verified",
        format!("Your identity could not be verified: {reasons}.\nYou can try again here:\n\n{session_url}\n"),
    )
    .carrying_secret()
}

pub fn certificate_issued(email: &str, serial: &str, not_after: i64) -> Notice {
    Notice::email(
        email,
        "Your certificate is issued",
        format!("Your qualified certificate (serial {serial}) is issued and valid until {}.\n", date(not_after)),
    )
}

pub fn rekey_notice(email: &str, serial: &str, not_after: i64, days: i64, window_closes: i64) -> Notice {
    Notice::email(
        email,
        format!("Your certificate expires in {days} days"),
        format!(
            "Your certificate (serial {serial}) expires on {}.\nRenew it with a new key before {}; \
             after that a new identity verification is needed.\n",
            date(not_after),
            date(window_closes)
        ),
    )
}

pub fn certificate_revoked(email: &str, serial: &str, reason: &str) -> Notice {
    Notice::email(
        email,
        "Your certificate was revoked",
        format!("Your certificate (serial {serial}) was revoked ({reason}). It can no longer sign.\n"),
    )
}

pub fn refund_due(email: &str, order_id: &str) -> Notice {
    Notice::email(
        email,
        "Your renewal will be refunded",
        format!(
            "Your certificate expired before the renewal of order {order_id} was completed. \
             The payment will be refunded; to get a certificate again, order a reissue.\n"
        ),
    )
}

pub fn rekey_submitted(email: &str, order_id: &str) -> Notice {
    Notice::email(
        email,
        "Your renewal request is received",
        format!(
            "Your request to renew your certificate (order {order_id}) is received and is being checked.\n\
             We will write to you when it is decided.\n"
        ),
    )
}

pub fn rekey_rejected(email: &str, order_id: &str, reasons: &[String], window_closes: i64) -> Notice {
    let reasons = if reasons.is_empty() { "no reason was given".to_string() } else { reasons.join("; ") };
    Notice::email(
        email,
        "Your renewal request was rejected",
        format!(
            "Your request to renew your certificate (order {order_id}) was rejected: {reasons}.\n\
             You can correct it and submit it again until {}.\n",
            date(window_closes)
        ),
    )
}

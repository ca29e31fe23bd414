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
}

pub fn sms_code(phone: &str, code: &str, purpose: &str, minutes: i64) -> Notice {
    Notice::sms(phone, format!("{code} is your code to {purpose}. It is valid for {minutes} minutes."))
}

pub fn email_code(email: &str, code: &str, purpose: &str, minutes: i64) -> Notice {
    Notice::email(
        email,
        format!("Your code to {purpose}"),
        format!("Your code to {purpose} is {code}.\nIt is valid for {minutes} minutes. If you did not ask for it, ignore this message.\n"),
    )
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
}

pub fn password_changed(email: &str) -> Notice {
    Notice::email(
        email,
        "Your password was changed",
        "The password of your signing account was changed and other sessions were signed out.\n\
         If it was not you, contact us at once.\n",
    )
}

pub fn phone_changed(email: &str, phone_hint: &str) -> Notice {
    Notice::email(
        email,
        "Your phone number was changed",
        format!("Codes for your signing account now go to {phone_hint}.\nIf it was not you, contact us at once.\n"),
    )
}

pub fn totp_reset(email: &str) -> Notice {
    Notice::email(
        email,
        "Your authenticator was reset",
        "The authenticator app of your signing account was reset; the old one no longer works.\n\
         If it was not you, contact us at once.\n",
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

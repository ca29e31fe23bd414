//! Sole control through account recovery (issue 7, defects 4 and 5), tried as an attacker would:
//! - someone with the operator key and the victim's e-mail address reads codes and links from the
//!   outbox (production mode: bodies redacted in the admin API, wiped once delivered);
//! - someone with the mailbox and the SIM recovers the password, resets the authenticator and pairs
//!   their own: it may not authorise signatures until an identity check of the reset is accepted.

use crate::common::journey::{link_token, six_digits, Person};
use crate::common::recovery::ProductionServer;
use crate::common::{assert_error, digests, TestServer};
use serde_json::{json, Value};

const NEW_PASSWORD: &str = "Attacker-chosen-2026";

fn credential_id(credential: &Value) -> String {
    credential["credential_id"].as_str().unwrap().to_string()
}

/// Messages to `recipient` (development mode: bodies readable), as (subject, body).
async fn messages(ts: &TestServer, recipient: &str) -> Vec<(String, String)> {
    ts.outbox(recipient)
        .await
        .iter()
        .map(|m| (m["subject"].as_str().unwrap().to_string(), m["body"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test]
async fn the_operator_key_and_the_victims_address_do_not_reach_the_signing_key() {
    let mut prod = ProductionServer::start().await;
    let (victim, credential) = prod.certified_person("vera@example.org", "+38641700001").await;
    prod.wait_all_sent().await;

    // The attacker holds the operator key and knows the address: asks for a recovery link...
    let (status, _) = prod.ts.post("/api/v1/password-reset", None, json!({"email": victim.email})).await;
    assert_eq!(status, 202);
    // ...and reads the outbox before and after delivery: no link, no code, and it says so.
    let outbox = prod.admin_outbox(&victim.email).await;
    assert_eq!(outbox["secret_bodies_shown"], false, "{outbox}");
    let reset_mail = outbox["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(reset_mail["subject"], "Reset your password");
    assert_eq!(reset_mail["secret"], true);
    assert!(!reset_mail["body"].as_str().unwrap().contains("token="), "{reset_mail}");

    // The person's mailbox gets the link; afterwards the stored body holds it no more.
    let delivered = prod.mail(&victim.email, "reset-password?token=");
    let token = link_token(&delivered);
    prod.wait_all_sent().await;
    for message in prod.stored_outbox().await {
        assert!(!message.body.contains(&token), "the link stays in the outbox: {message:?}");
        if message.secret {
            assert_eq!(message.body, rssp::db::outbox::WIPED_BODY, "{message:?}");
            assert!(!message.body.contains("token="));
        }
    }
    let code_sms = prod.admin_outbox(&victim.phone).await;
    assert!(!code_sms["messages"].as_array().unwrap().is_empty());
    for outbox in [prod.admin_outbox(&victim.email).await, code_sms] {
        for m in outbox["messages"].as_array().unwrap() {
            let body = m["body"].as_str().unwrap();
            assert!(!body.contains("token="), "{m}");
            if m["secret"] == true {
                assert_eq!(body, rssp::service::operators::REDACTED_BODY, "{m}");
            }
        }
    }

    // Without the link the chain stops: a guessed token is refused, and so the TOTP reset (password
    // unknown) and the signature.
    let (status, body) =
        prod.ts.post("/api/v1/password-reset/send-code", None, json!({"token": "guessed-token-123"})).await;
    assert_error(status, &body, 400, "invalid_request", "not valid");
    let (status, body) =
        prod.ts.post("/api/v1/totp/reset", None, json!({"email": victim.email, "password": NEW_PASSWORD})).await;
    assert_error(status, &body, 400, "authentication_error", "authentication");
    // The person still signs.
    let (status, body) = prod.ts.authorize_person_v1(&victim, &credential_id(&credential), &digests(1, "vera")).await;
    assert_eq!(status, 200, "{body}");
}

/// The mailbox-and-SIM attacker's whole chain, up to the new authenticator.
async fn take_over(ts: &TestServer, victim: &mut Person) -> Value {
    ts.recover_password(victim, NEW_PASSWORD).await;
    ts.reset_and_pair(victim).await
}

#[tokio::test]
async fn mailbox_and_sim_do_not_sign_until_an_operator_verifies_the_identity() {
    let ts = TestServer::start().await;
    let (mut person, credential) = ts.certified_person("mia@example.org", "+38641700002").await;
    let cred = credential_id(&credential);

    let confirmed = take_over(&ts, &mut person).await;
    assert_eq!(confirmed["reset"]["status"], "pending_identity", "{confirmed}");
    let reset_id = confirmed["reset"]["id"].as_str().unwrap().to_string();
    assert!(confirmed["reset"]["session_url"].as_str().unwrap().contains(&reset_id));

    // The new authenticator is paired, but neither dialect lets it authorise a signature.
    let hashes = digests(1, "mia");
    let (status, body) = ts.authorize_person_v1(&person, &cred, &hashes).await;
    assert_error(status, &body, 403, "access_denied", "identity check");
    let (status, body) = ts.authorize_person_v2(&person, &cred, &hashes).await;
    assert_error(status, &body, 403, "access_denied", "identity check");

    // The operator sees the pending reset and accepts the identity check (as at enrolment).
    let key = ts.operator_key();
    let (status, listed) = ts.get("/api/admin/v1/authenticator-resets?status=pending_identity", Some(&key)).await;
    assert_eq!(status, 200, "{listed}");
    assert!(listed["resets"].as_array().unwrap().iter().any(|r| r["id"] == reset_id.as_str()), "{listed}");
    let decision = format!("/api/admin/v1/authenticator-resets/{reset_id}/decision");
    let (status, body) = ts.post(&decision, Some(&key), json!({"decision": "maybe"})).await;
    assert_error(status, &body, 400, "invalid_request", "accept or reject");
    let (status, body) = ts.post(&decision, Some(&key), json!({"decision": "accept"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "verified");
    let (status, body) = ts.post(&decision, Some(&key), json!({"decision": "reject", "reasons": ["late"]})).await;
    assert_error(status, &body, 409, "conflict", "not pending");

    // Now the new authenticator signs, on both dialects.
    let (status, body) = ts.authorize_person_v1(&person, &cred, &hashes).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = ts.authorize_person_v2(&person, &cred, &hashes).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_providers_webhook_decides_a_reset_check_and_a_rejection_keeps_signing_blocked() {
    let ts = TestServer::start().await;
    let (mut person, credential) = ts.certified_person("noa@example.org", "+38641700003").await;
    let cred = credential_id(&credential);
    let confirmed = take_over(&ts, &mut person).await;
    let reset_id = confirmed["reset"]["id"].as_str().unwrap().to_string();
    let secret = ts.dev_secrets().identity_webhook_secret;

    let event = json!({"event_id": "ev-reset-1", "check_id": reset_id, "result": "rejected", "reasons": ["blurred"]});
    let (status, body) = ts.webhook("/api/v1/webhooks/identity", &secret, &event).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "rejected");
    let (status, body) = ts.authorize_person_v1(&person, &cred, &digests(1, "noa")).await;
    assert_error(status, &body, 403, "access_denied", "rejected");
    // Waiting out the cooling-off period does not lift it: the next reset needs a check again.
    ts.clock.advance(8 * 24 * 3600);
    let confirmed = ts.reset_and_pair(&mut person).await;
    assert_eq!(confirmed["reset"]["status"], "pending_identity", "{confirmed}");
    let reset_id = confirmed["reset"]["id"].as_str().unwrap().to_string();
    let event = json!({"event_id": "ev-reset-2", "check_id": reset_id, "result": "accepted"});
    let (status, body) = ts.webhook("/api/v1/webhooks/identity", &secret, &event).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "verified");
    let (status, body) = ts.webhook("/api/v1/webhooks/identity", &secret, &event).await;
    assert_eq!((status, &body["duplicate"]), (200, &json!(true)), "{body}");
    let (status, body) = ts.webhook("/api/v1/webhooks/identity", "not the provider's secret", &event).await;
    assert!((400..500).contains(&status), "{status} {body}");
    let (status, body) = ts.authorize_person_v1(&person, &cred, &digests(1, "noa")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_cancel_link_in_the_notice_cancels_the_pending_reset() {
    let ts = TestServer::start().await;
    let (mut person, credential) = ts.certified_person("oli@example.org", "+38641700004").await;
    let cred = credential_id(&credential);
    let confirmed = take_over(&ts, &mut person).await;
    let reset_id = confirmed["reset"]["id"].as_str().unwrap().to_string();
    let attacker_session = person.token.clone();

    // The rightful owner reads the notice (e-mail and SMS carry the same link) and cancels.
    let mail = ts.last_message(&person.email).await;
    assert!(mail.contains("cancel"), "{mail}");
    let token = link_token(&mail);
    assert!(ts.last_message(&person.phone).await.contains(&token));
    let (status, body) = ts.post("/api/v1/totp/reset/cancel", None, json!({"token": "not-a-link"})).await;
    assert_error(status, &body, 400, "invalid_request", "not valid");
    let (status, body) = ts.post("/api/v1/totp/reset/cancel", None, json!({"token": token})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["id"], reset_id.as_str());
    let (status, body) = ts.post("/api/v1/totp/reset/cancel", None, json!({"token": token})).await;
    assert_error(status, &body, 400, "invalid_request", "already used");

    // The attacker's authenticator and session are gone; nothing signs; the reset cannot be verified now.
    assert_eq!(ts.get("/api/v1/me", Some(&attacker_session)).await.0, 401);
    let login = json!({"email": person.email, "password": person.password});
    let (status, body) = ts.post("/api/v1/login", None, login).await;
    assert_eq!(status, 200, "no authenticator is paired any more: {body}");
    assert_ne!(body["totp"]["status"], "paired", "{body}");
    person.token = body["access_token"].as_str().unwrap().to_string();
    // Pairing again on a password-only session does not lift the block either.
    ts.pair(&mut person).await;
    let (status, body) = ts.authorize_person_v1(&person, &cred, &digests(1, "oli")).await;
    assert_error(status, &body, 403, "access_denied", "cancelled");
    let decision = format!("/api/admin/v1/authenticator-resets/{reset_id}/decision");
    let (status, body) = ts.post(&decision, Some(&ts.operator_key()), json!({"decision": "accept"})).await;
    assert_error(status, &body, 409, "conflict", "not pending");
    // The next reset needs an identity check, even after the cooling-off period.
    ts.clock.advance(8 * 24 * 3600);
    let confirmed = ts.reset_and_pair(&mut person).await;
    assert_eq!(confirmed["reset"]["status"], "pending_identity", "{confirmed}");
}

#[tokio::test]
async fn password_recovery_and_authenticator_reset_end_every_session_and_refresh_token() {
    let ts = TestServer::start().await;
    let (mut person, _) = ts.certified_person("pia@example.org", "+38641700005").await;

    let portal = person.token.clone();
    let (csc, refresh) = ts.csc_session_with_refresh(&person).await;
    assert_eq!(ts.csc_refresh(&refresh).await, 200);
    ts.recover_password(&mut person, NEW_PASSWORD).await;
    assert_eq!(ts.get("/api/v1/me", Some(&portal)).await.0, 401);
    assert_eq!(ts.post("/csc/v1/credentials/list", Some(&csc), json!({})).await.0, 401);
    assert_eq!(ts.csc_refresh(&refresh).await, 400);

    person.token = ts.portal_login(&person).await;
    let portal = person.token.clone();
    let (csc, refresh) = ts.csc_session_with_refresh(&person).await;
    ts.reset_and_pair(&mut person).await;
    assert_eq!(ts.get("/api/v1/me", Some(&portal)).await.0, 401, "the reset ends the old portal session");
    assert_eq!(ts.post("/csc/v1/credentials/list", Some(&csc), json!({})).await.0, 401);
    assert_eq!(ts.csc_refresh(&refresh).await, 400, "the reset ends the refresh token");
    assert_eq!(ts.get("/api/v1/me", Some(&person.token)).await.0, 200, "the reset's own session works");
}

#[tokio::test]
async fn a_phone_change_needs_the_password_and_a_totp_code() {
    let ts = TestServer::start().await;
    let mut person = ts.enrol("quin@example.org", "+38641700006").await;
    ts.pair(&mut person).await;
    let new_phone = "+38641799999";
    let before = ts.outbox(&person.email).await.len();

    let (status, body) = ts.post("/api/v1/me/phone-change", Some(&person.token), json!({"new_phone": new_phone})).await;
    assert_error(status, &body, 400, "invalid_request", "password");
    let otp = ts.person_otp(&person);
    let (status, body) = ts
        .post(
            "/api/v1/me/phone-change",
            Some(&person.token),
            json!({"new_phone": new_phone, "password": "Wrong-password-2026", "otp": otp}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_request", "wrong password");
    let (status, body) = ts
        .post(
            "/api/v1/me/phone-change",
            Some(&person.token),
            json!({"new_phone": new_phone, "password": person.password}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_request", "otp");
    let (status, body) = ts
        .post(
            "/api/v1/me/phone-change",
            Some(&person.token),
            json!({"new_phone": new_phone, "password": person.password, "otp": "000000"}),
        )
        .await;
    assert!((400..500).contains(&status) && body["error"].is_string(), "{status} {body}");
    assert_eq!(ts.outbox(&person.email).await.len(), before, "no e-mail code went out");

    let otp = ts.person_otp(&person);
    let (status, body) = ts
        .post(
            "/api/v1/me/phone-change",
            Some(&person.token),
            json!({"new_phone": new_phone, "password": person.password, "otp": otp}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn every_recovery_phone_change_and_reset_is_told_by_email_and_sms() {
    let ts = TestServer::start().await;
    let mut person = ts.enrol("ray@example.org", "+38641700007").await;
    ts.pair(&mut person).await;
    let old_phone = person.phone.clone();

    // Password recovery.
    ts.recover_password(&mut person, NEW_PASSWORD).await;
    let mails = messages(&ts, &person.email).await;
    assert!(
        mails.iter().any(|(s, b)| s == "Your password was reset" && b.contains("identity verification")),
        "{mails:?}"
    );
    let texts = messages(&ts, &person.phone).await;
    assert!(texts.last().unwrap().1.contains("password of your signing account was reset"), "{texts:?}");
    person.token = ts.portal_login(&person).await;

    // Phone change: e-mail, and an SMS to the old number.
    let new_phone = "+38641788888";
    let otp = ts.person_otp(&person);
    let (status, body) = ts
        .post(
            "/api/v1/me/phone-change",
            Some(&person.token),
            json!({"new_phone": new_phone, "password": person.password, "otp": otp}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let code = six_digits(&ts.last_message(&person.email).await);
    let (status, body) =
        ts.post("/api/v1/me/phone-change/verify-email", Some(&person.token), json!({"code": code})).await;
    assert_eq!(status, 200, "{body}");
    let code = six_digits(&ts.last_message(new_phone).await);
    let (status, body) = ts.post("/api/v1/me/phone-change/confirm", Some(&person.token), json!({"code": code})).await;
    assert_eq!(status, 200, "{body}");
    assert!(ts.last_message(&person.email).await.contains("now go to"));
    assert!(ts.last_message(&old_phone).await.contains("now go to"), "the old number hears of it");
    person.phone = new_phone.into();

    // Authenticator reset: e-mail and SMS, both with the cancel link.
    let confirmed = ts.reset_and_pair(&mut person).await;
    assert_eq!(confirmed["reset"]["status"], "pending_identity");
    let mails = messages(&ts, &person.email).await;
    let (subject, mail) = mails.last().unwrap();
    assert_eq!(subject, "Your authenticator was reset");
    assert!(mail.contains("/cancel-authenticator-reset?token="), "{mail}");
    assert!(mail.contains(confirmed["reset"]["session_url"].as_str().unwrap()), "{mail}");
    let sms = ts.last_message(new_phone).await;
    assert!(sms.contains("/cancel-authenticator-reset?token="), "{sms}");
    assert_eq!(link_token(mail), link_token(&sms));
    // Development mode shows these bodies, and says so.
    let (_, outbox) = ts.get("/api/admin/v1/outbox", Some(&ts.operator_key())).await;
    assert_eq!(outbox["secret_bodies_shown"], true);
}

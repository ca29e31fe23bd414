//! Account care: changing and recovering the password, changing the phone number, and resetting a
//! lost authenticator.

use serde_json::json;

use super::server;
use crate::common::journey::six_digits;
use crate::common::{assert_error, TestServer};

#[tokio::test]
async fn account_care_password_phone_and_authenticator() {
    let ts = server().await;
    let mut person = ts.enrol("fay@example.org", "+38641000004").await;
    ts.pair(&mut person).await;
    let other_session = ts.portal_login(&person).await;

    // Change password: the current one and a code; other sessions end.
    let (status, body) = ts
        .post("/api/v1/me/password", Some(&person.token), json!({"current_password": "wrong password 1", "new_password": "Second-password-2026", "otp": ts.person_otp(&person)}))
        .await;
    assert_error(status, &body, 400, "invalid_request", "wrong password");
    let (status, body) = ts
        .post("/api/v1/me/password", Some(&person.token), json!({"current_password": person.password, "new_password": "Second-password-2026", "otp": ts.person_otp(&person)}))
        .await;
    assert_eq!(status, 200, "{body}");
    person.password = "Second-password-2026".into();
    assert_eq!(ts.get("/api/v1/me", Some(&other_session)).await.0, 401);
    assert_eq!(ts.get("/api/v1/me", Some(&person.token)).await.0, 200);

    // Forgotten password: e-mail link, SMS code, new password; every session ends.
    let (status, _) = ts.post("/api/v1/password-reset", None, json!({"email": "nobody@example.org"})).await;
    assert_eq!(status, 202);
    ts.recover_password(&mut person, "Third-password-2026").await;
    assert_eq!(ts.get("/api/v1/me", Some(&person.token)).await.0, 401);
    person.token = ts.portal_login(&person).await;

    // Change phone: a code by e-mail (5 minutes), then an SMS code to the new number, then a confirmation e-mail.
    let new_phone = "+38641999888";
    let change = |otp: String| json!({"new_phone": new_phone, "password": person.password, "otp": otp});
    let (status, body) = ts.post("/api/v1/me/phone-change", Some(&person.token), change(ts.person_otp(&person))).await;
    assert_eq!(status, 200, "{body}");
    let email_code = six_digits(&ts.last_message(&person.email).await);
    ts.clock.advance(301);
    let (status, body) =
        ts.post("/api/v1/me/phone-change/verify-email", Some(&person.token), json!({"code": email_code})).await;
    assert_error(status, &body, 400, "invalid_request", "expired");
    let (status, _) = ts.post("/api/v1/me/phone-change", Some(&person.token), change(ts.person_otp(&person))).await;
    assert_eq!(status, 200);
    let email_code = six_digits(&ts.last_message(&person.email).await);
    let (status, body) =
        ts.post("/api/v1/me/phone-change/verify-email", Some(&person.token), json!({"code": email_code})).await;
    assert_eq!(status, 200, "{body}");
    let sms_code = six_digits(&ts.last_message(new_phone).await);
    let (status, body) =
        ts.post("/api/v1/me/phone-change/confirm", Some(&person.token), json!({"code": sms_code})).await;
    assert_eq!(status, 200, "{body}");
    let (_, me) = ts.get("/api/v1/me", Some(&person.token)).await;
    assert_eq!(me["phone"], new_phone);
    assert!(ts.last_message(&person.email).await.contains("now go to"));
    person.phone = new_phone.into();

    // Lost authenticator: password, SMS code; the old secret stops working at once.
    let old_seed = person.totp_seed.clone();
    let (status, body) =
        ts.post("/api/v1/totp/reset", None, json!({"email": person.email, "password": person.password})).await;
    assert_eq!(status, 200, "{body}");
    let code = six_digits(&ts.last_message(new_phone).await);
    let (status, body) = ts
        .post(
            "/api/v1/totp/reset/confirm",
            None,
            json!({"email": person.email, "password": person.password, "code": code}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["pairing"]["qr_code_png"].as_str().unwrap().starts_with("iVBORw0KGgo"), "a PNG");
    let session = body["access_token"].as_str().unwrap().to_string();
    let old_code = ts.person_otp(&person);
    let (status, body) = ts
        .post("/api/v1/login", None, json!({"email": person.email, "password": person.password, "otp": old_code}))
        .await;
    assert_eq!(status, 200, "no authenticator now, so the password alone logs in: {body}");
    assert_ne!(body["totp"]["status"], "paired");
    person.totp_seed = Some(rssp::domain::secrets::from_base32(body_secret(&ts, &session).await.as_str()).unwrap());
    assert_ne!(person.totp_seed, old_seed);
}

/// Starts a fresh pairing on a session and returns its secret.
async fn body_secret(ts: &TestServer, session: &str) -> String {
    let (status, body) = ts.post("/api/v1/totp/pairing", Some(session), json!({})).await;
    assert_eq!(status, 200, "{body}");
    body["secret"].as_str().unwrap().to_string()
}

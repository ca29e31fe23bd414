//! The account and certificate lifecycle through `/api/v1`, `/api/admin/v1` and the CSC API: the real
//! server, SoftHSM and database, development mode (messages read from the outbox).

mod common;

use common::journey::{invoice, link_token, six_digits};
use common::{assert_error, b64_all, digests, TestServer};
use rssp::config::PackageConfig;
use serde_json::json;

/// A small package, so that spending the quota takes a few signatures.
async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.lifecycle.packages =
            vec![PackageConfig { id: "1y".into(), validity_years: 1, transactions: 3, net_cents: 3900 }];
    })
    .await
}

async fn csc_login(ts: &TestServer, email: &str, password: &str) -> String {
    let response = ts
        .http
        .post(format!("{}/csc/v1/auth/login", ts.url))
        .basic_auth(email, Some(password))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.json::<serde_json::Value>().await.unwrap()["access_token"].as_str().unwrap().to_string()
}

async fn csc_authorize(
    ts: &TestServer,
    token: &str,
    person: &common::journey::Person,
    credential: &str,
    hashes: &[Vec<u8>],
) -> (u16, serde_json::Value) {
    let otp = ts.person_otp(person);
    ts.post(
        "/csc/v1/credentials/authorize",
        Some(token),
        json!({"credentialID": credential, "numSignatures": hashes.len(), "hash": b64_all(hashes), "OTP": otp}),
    )
    .await
}

#[tokio::test]
async fn the_whole_journey_from_registration_to_reissue() {
    let ts = server().await;
    let (person, credential) = ts.certified_person("ana@example.org", "+38640111222").await;
    let cred = credential["credential_id"].as_str().unwrap().to_string();
    assert_eq!(credential["status"], "valid");
    assert_eq!(credential["quota"], json!({"total": 3, "used": 0, "remaining": 3}));
    assert!(credential["subject"].as_str().unwrap().contains("CN=Ana Novak"), "{credential}");
    assert_eq!(credential["rekey_window"]["open"], true);

    // The credential is in CSC credentials/list for the same person, who logs in with e-mail and password.
    let token = csc_login(&ts, &person.email, &person.password).await;
    let (status, body) = ts.post("/csc/v1/credentials/list", Some(&token), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["credentialIDs"], json!([cred]));

    // Quota: three signatures, then refused with a CSC error, and nothing is signed.
    let hashes = digests(2, "quota");
    let (status, body) = csc_authorize(&ts, &token, &person, &cred, &hashes).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        ts.sign_v1(&token, &cred, body["SAD"].as_str().unwrap(), &hashes, "1.2.840.113549.1.1.11").await;
    assert_eq!(status, 200, "{body}");
    let hashes = digests(2, "over");
    let (status, body) = csc_authorize(&ts, &token, &person, &cred, &hashes).await;
    assert_error(status, &body, 400, "invalid_request", "quota exhausted: the credential has 1 of its 3");
    let last = digests(1, "last");
    let (status, body) = csc_authorize(&ts, &token, &person, &cred, &last).await;
    assert_eq!(status, 200, "{body}");
    let sad = body["SAD"].as_str().unwrap().to_string();
    // A SAD minted before the quota ran out still cannot overspend: the signHash spend is atomic too.
    let (status, _) = ts.sign_v1(&token, &cred, &sad, &last, "1.2.840.113549.1.1.11").await;
    assert_eq!(status, 200);
    let (status, body) = ts.get("/api/v1/credentials", Some(&person.token)).await;
    assert_eq!(status, 200);
    assert_eq!(body["credentials"][0]["quota"], json!({"total": 3, "used": 3, "remaining": 0}));

    // Rekey: pay, confirm personal data, upload the identity document, sign with a code.
    let order = ts.buy(&person, "rekey", Some(&cred)).await;
    let path = format!("/api/v1/credentials/{cred}/rekey");
    let (status, body) =
        ts.post(&path, Some(&person.token), json!({"order_id": order, "otp": ts.person_otp(&person)})).await;
    assert_error(status, &body, 409, "conflict", "Confirm the personal data");
    let (status, body) = ts
        .post(
            &format!("/api/v1/orders/{order}/personal-data"),
            Some(&person.token),
            json!({"given_name": "Ana", "surname": "Novak Kos"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = ts
        .post(
            &format!("/api/v1/orders/{order}/identity-document"),
            Some(&person.token),
            json!({"content_type": "application/pdf", "data": "bm90IGEgUERG"}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_request", "not a application/pdf file");
    // Magic bytes alone are not a PDF: it must have a PDF's structure.
    let (status, body) = ts.rekey_document(&person, &order, "application/pdf", b"%PDF-1.4\n%id card\n%%EOF\n").await;
    assert_error(status, &body, 400, "invalid_request", "not a application/pdf file");
    let (status, body) = ts.rekey_document(&person, &order, "application/pdf", &common::rekey::tiny_pdf()).await;
    assert_eq!(status, 201, "{body}");
    // The submission waits for the trust service's decision; nothing is issued yet.
    let (status, submitted) =
        ts.post(&path, Some(&person.token), json!({"order_id": order, "otp": ts.person_otp(&person)})).await;
    assert_eq!(status, 202, "{submitted}");
    assert_eq!(submitted["status"], "awaiting_decision");
    assert_eq!(ts.credentials_of(&person).await.len(), 1);
    let check = submitted["identity_check"]["id"].as_str().unwrap().to_string();
    let (status, body) = ts.operator_decides(&check, "accept", &[]).await;
    assert_eq!(status, 200, "{body}");
    let credentials = ts.credentials_of(&person).await;
    let renewed = credentials.iter().find(|c| c["credential_id"] != cred.as_str()).expect("the new credential").clone();
    let new_cred = renewed["credential_id"].as_str().unwrap().to_string();
    assert!(renewed["subject"].as_str().unwrap().contains("Novak Kos"));
    let (_, body) = ts.get("/api/v1/credentials", Some(&person.token)).await;
    let old =
        body["credentials"].as_array().unwrap().iter().find(|c| c["credential_id"] == cred.as_str()).unwrap().clone();
    assert_eq!(old["replaced_by"], new_cred.as_str());

    // The new credential signs.
    let hashes = digests(1, "rekeyed");
    let (status, body) = csc_authorize(&ts, &token, &person, &new_cred, &hashes).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) =
        ts.sign_v1(&token, &new_cred, body["SAD"].as_str().unwrap(), &hashes, "1.2.840.113549.1.1.11").await;
    assert_eq!(status, 200);

    // Revocation by the person, with a code; it can no longer sign and the CRL lists it.
    let (status, body) = ts
        .post(
            &format!("/api/v1/credentials/{new_cred}/revoke"),
            Some(&person.token),
            json!({"otp": ts.person_otp(&person), "reason": "key compromise"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "revoked");
    let serial = body["serial"].as_str().unwrap().to_string();
    let (status, body) = csc_authorize(&ts, &token, &person, &new_cred, &hashes).await;
    assert_error(status, &body, 400, "invalid_request", "disabled");
    let crl = ts.http.get(format!("{}/pki/issuing-ca.crl", ts.url)).send().await.unwrap().bytes().await.unwrap();
    let crl_path = ts.data_dir().join("issuing.crl");
    std::fs::write(&crl_path, &crl).unwrap();
    let text = std::process::Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(&crl_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).to_uppercase();
    assert!(text.contains(&serial.trim_start_matches('0').to_uppercase()), "CRL lists {serial}: {text}");

    // Rekey of a revoked credential: reissue needed.
    let (status, body) = ts
        .post(
            "/api/v1/orders",
            Some(&person.token),
            json!({"package_id": "1y", "purpose": "rekey", "credential_id": new_cred, "invoice": invoice()}),
        )
        .await;
    assert_error(status, &body, 409, "reissue_required", "order a reissue");

    // Reissue: new order, new identity check, new key and certificate.
    let order = ts.buy(&person, "reissue", None).await;
    let (status, body) = ts
        .post(
            "/api/v1/credentials",
            Some(&person.token),
            json!({"order_id": order, "issuance_terms_version": "2026-01", "otp": ts.person_otp(&person)}),
        )
        .await;
    assert_error(status, &body, 409, "conflict", "identity of the person is not verified");
    ts.accept_identity(&person, &order).await;
    let reissued = ts.issue(&person, &order).await;
    assert_eq!(reissued["status"], "valid");
    let (_, body) = ts.get("/api/v1/credentials", Some(&person.token)).await;
    let statuses: Vec<_> =
        body["credentials"].as_array().unwrap().iter().map(|c| c["status"].as_str().unwrap().to_string()).collect();
    assert_eq!(statuses.iter().filter(|s| *s == "revoked").count(), 1);
    assert_eq!(statuses.iter().filter(|s| *s == "valid").count(), 2, "{statuses:?}");

    // Every message went through the outbox; the person was told about each step.
    let subjects: Vec<String> =
        ts.outbox(&person.email).await.iter().map(|m| m["subject"].as_str().unwrap().to_string()).collect();
    for expected in [
        "Activate your signing account",
        "Payment received",
        "Verify your identity",
        "Your identity is verified",
        "Your certificate is issued",
        "Your certificate was revoked",
    ] {
        assert!(subjects.iter().any(|s| s == expected), "{expected} in {subjects:?}");
    }
}

#[tokio::test]
async fn activation_links_and_codes_are_single_use_rate_limited_and_expire() {
    let ts = server().await;
    let (email, phone) = ("bo@example.org", "+38641000001");
    ts.register(email, phone).await;
    let token = link_token(&ts.last_message(email).await);
    // Registering an address that has an account answers exactly like a new registration; only the
    // owner is told, and nothing else changes.
    let (status, body) = ts
        .post("/api/v1/registrations", None, json!({"given_name": "Bo", "surname": "X", "email": "BO@example.org", "phone": phone, "privacy_consent": {"accepted": true, "version": "2026-01"}}))
        .await;
    assert_eq!((status, body["status"].as_str()), (201, Some("invited")), "{body}");
    assert!(ts.last_message(email).await.contains("already has one"));
    let (status, body) = ts
        .post("/api/v1/registrations", None, json!({"given_name": "Cy", "surname": "X", "email": "cy@example.org", "phone": phone, "privacy_consent": {"accepted": false, "version": "2026-01"}}))
        .await;
    assert_error(status, &body, 400, "invalid_request", "privacy information note");

    let (status, _) = ts.post("/api/v1/activation/send-code", None, json!({"token": token})).await;
    assert_eq!(status, 200);
    let code = six_digits(&ts.last_message(phone).await);
    // A second code only after the cooldown.
    let response = ts
        .http
        .post(format!("{}/api/v1/activation/send-code", ts.url))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert!(response.headers().get("retry-after").is_some());
    // A weak password is refused before the code is looked at; nothing is used up.
    let (status, body) =
        ts.post("/api/v1/activation/complete", None, json!({"token": token, "code": code, "password": "short"})).await;
    assert_error(status, &body, 400, "invalid_request", "at least 12");
    // Wrong codes count; at the limit the code is dead, even the right one.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..4 {
        let (status, body) = ts
            .post(
                "/api/v1/activation/complete",
                None,
                json!({"token": token, "code": wrong, "password": "Long-enough-2026"}),
            )
            .await;
        assert_error(status, &body, 400, "invalid_request", "Wrong code");
    }
    let (status, body) = ts
        .post(
            "/api/v1/activation/complete",
            None,
            json!({"token": token, "code": wrong, "password": "Long-enough-2026"}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_request", "too many wrong codes");
    let (status, body) = ts
        .post(
            "/api/v1/activation/complete",
            None,
            json!({"token": token, "code": code, "password": "Long-enough-2026"}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_request", "Too many wrong codes");
    // After the cooldown a new code works, once; the link is then used up.
    ts.clock.advance(1800);
    let (status, _) = ts.post("/api/v1/activation/send-code", None, json!({"token": token})).await;
    assert_eq!(status, 200);
    let code = six_digits(&ts.last_message(phone).await);
    let (status, body) = ts
        .post(
            "/api/v1/activation/complete",
            None,
            json!({"token": token, "code": code, "password": "Long-enough-2026"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = ts
        .post(
            "/api/v1/activation/complete",
            None,
            json!({"token": token, "code": code, "password": "Long-enough-2026"}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_request", "already used");
    let (status, body) = ts.post("/api/v1/login", None, json!({"email": email, "password": "Long-enough-2026"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totp"]["status"], "optional");

    // An invitation link expires.
    ts.register("dee@example.org", "+38641000002").await;
    let token = link_token(&ts.last_message("dee@example.org").await);
    ts.clock.advance(72 * 3600 + 1);
    let (status, body) = ts.post("/api/v1/activation/send-code", None, json!({"token": token})).await;
    assert_error(status, &body, 400, "invalid_request", "expired");

    // Every refusal is in the audit trail.
    let (_, audit) = ts.get("/api/admin/v1/audit", Some(&ts.operator_key())).await;
    let refused = audit["records"].as_array().unwrap().iter().filter(|r| r["outcome"] == "refused").count();
    assert!(refused >= 9, "refusals audited: {refused}");
}

#[tokio::test]
async fn pairing_is_mandatory_after_the_configured_date_and_login_then_needs_the_code() {
    let ts = server().await;
    let mut person = ts.enrol("eve@example.org", "+38641000003").await;
    let (status, body) = ts.post("/api/v1/totp/postpone", Some(&person.token), json!({"mode": "next_login"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "postponed");
    // After the last day, pairing can no longer be put off and everything else waits for it.
    let now = chrono::DateTime::from_timestamp(ts.now(), 0).unwrap().date_naive();
    let days = (chrono::NaiveDate::from_ymd_opt(2027, 1, 1).unwrap() - now).num_days().max(0) + 1;
    ts.clock.advance(days * 86_400);
    let token = ts.portal_login(&person).await;
    let (status, body) = ts.post("/api/v1/totp/postpone", Some(&token), json!({"mode": "never"})).await;
    assert_error(status, &body, 409, "conflict", "mandatory");
    let (status, body) = ts
        .post("/api/v1/orders", Some(&token), json!({"package_id": "1y", "purpose": "issuance", "invoice": invoice()}))
        .await;
    assert_error(status, &body, 403, "access_denied", "Pair an authenticator");
    person.token = token;
    ts.pair(&mut person).await;
    // From now on a login needs a code, and a code works once.
    let (status, body) =
        ts.post("/api/v1/login", None, json!({"email": person.email, "password": person.password})).await;
    assert_error(status, &body, 400, "invalid_request", "otp");
    let otp = ts.person_otp(&person);
    let (status, _) =
        ts.post("/api/v1/login", None, json!({"email": person.email, "password": person.password, "otp": otp})).await;
    assert_eq!(status, 200);
    let (status, body) =
        ts.post("/api/v1/login", None, json!({"email": person.email, "password": person.password, "otp": otp})).await;
    assert_error(status, &body, 400, "invalid_otp", "already been used");
    // CSC tokens (password only) do not open the lifecycle API.
    let csc = csc_login(&ts, &person.email, &person.password).await;
    let (status, _) = ts.get("/api/v1/me", Some(&csc)).await;
    assert_eq!(status, 401);
}

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

#[tokio::test]
async fn orders_invoices_and_the_payment_webhook() {
    let ts = server().await;
    let mut person = ts.enrol("gus@example.org", "+38641000005").await;
    ts.pair(&mut person).await;
    let (status, body) = ts
        .post(
            "/api/v1/orders",
            Some(&person.token),
            json!({"package_id": "1y", "purpose": "issuance", "invoice": invoice()}),
        )
        .await;
    assert_error(status, &body, 403, "access_denied", "Accept the terms");
    ts.post("/api/v1/consents", Some(&person.token), json!({"document": "terms", "version": "2026-01"})).await;
    let bad_company = json!({"type": "company", "company_name": "Novak d.o.o.", "vat_id": "123", "address": "A 1", "postal_code": "1000", "city": "Lj", "country": "SI"});
    let (status, body) = ts
        .post(
            "/api/v1/orders",
            Some(&person.token),
            json!({"package_id": "1y", "purpose": "issuance", "invoice": bad_company}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_request", "vat_id");
    let (status, order) = ts
        .post(
            "/api/v1/orders",
            Some(&person.token),
            json!({"package_id": "1y", "purpose": "issuance", "invoice": invoice()}),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(
        (order["net_cents"].as_i64(), order["vat_cents"].as_i64(), order["gross_cents"].as_i64()),
        (Some(3900), Some(858), Some(4758))
    );
    let id = order["id"].as_str().unwrap();
    // The name on a first certificate is the one the identity check vouches for, not one typed later.
    let (status, body) = ts
        .post(
            &format!("/api/v1/orders/{id}/personal-data"),
            Some(&person.token),
            json!({"given_name": "Bob", "surname": "Else"}),
        )
        .await;
    assert_error(status, &body, 409, "conflict", "open rekey order");
    let company = json!({"type": "company", "company_name": "Novak d.o.o.", "vat_id": "SI12345678", "address": "A 1", "postal_code": "1000", "city": "Lj", "country": "SI"});
    let (status, body) = ts.put(&format!("/api/v1/orders/{id}/invoice"), &person.token, company.clone()).await;
    assert_eq!(status, 200, "{body}");
    let (status, payment) = ts.post(&format!("/api/v1/orders/{id}/payment"), Some(&person.token), json!({})).await;
    assert_eq!(status, 200);
    assert!(payment["payment_url"].as_str().unwrap().contains(payment["payment_ref"].as_str().unwrap()));
    let (status, body) = ts.put(&format!("/api/v1/orders/{id}/invoice"), &person.token, company).await;
    assert_error(status, &body, 409, "conflict", "frozen");

    let secret = ts.dev_secrets().payment_webhook_secret;
    let event = json!({"event_id": "evt-1", "payment_ref": payment["payment_ref"], "status": "paid", "amount_cents": 4758, "currency": "EUR"});
    let (status, body) = ts.webhook("/api/v1/webhooks/payments", "not the secret", &event).await;
    assert_error(status, &body, 401, "invalid_token", "");
    let wrong_amount = json!({"event_id": "evt-0", "payment_ref": payment["payment_ref"], "status": "paid", "amount_cents": 1, "currency": "EUR"});
    let (status, body) = ts.webhook("/api/v1/webhooks/payments", &secret, &wrong_amount).await;
    assert_error(status, &body, 400, "invalid_request", "amount does not match");
    let (status, body) = ts.webhook("/api/v1/webhooks/payments", &secret, &event).await;
    assert_eq!((status, &body["status"], &body["duplicate"]), (200, &json!("paid"), &json!(false)), "{body}");
    let (status, body) = ts.webhook("/api/v1/webhooks/payments", &secret, &event).await;
    assert_eq!((status, &body["duplicate"]), (200, &json!(true)));
    let (_, checks) = ts.get("/api/v1/identity-checks", Some(&person.token)).await;
    assert_eq!(checks["identity_checks"].as_array().unwrap().len(), 1, "one check however often the event comes");

    // Identity rejected by the provider's webhook: a new check with a new link, and an e-mail with the reasons.
    let check = checks["identity_checks"][0]["id"].as_str().unwrap().to_string();
    let identity_secret = ts.dev_secrets().identity_webhook_secret;
    let verdict =
        json!({"event_id": "vid-1", "check_id": check, "result": "rejected", "reasons": ["document unreadable"]});
    let (status, body) = ts.webhook("/api/v1/webhooks/identity", &identity_secret, &verdict).await;
    assert_eq!((status, &body["status"]), (200, &json!("rejected")), "{body}");
    assert!(ts.last_message(&person.email).await.contains("document unreadable"));
    let next = ts.pending_check(&person, id).await;
    assert_ne!(next, check);
    let (status, body) = ts
        .post(
            &format!("/api/admin/v1/identity-checks/{check}/decision"),
            Some(&ts.operator_key()),
            json!({"decision": "accept"}),
        )
        .await;
    assert_error(status, &body, 409, "conflict", "already rejected");
    let (status, body) = ts
        .post(
            &format!("/api/admin/v1/identity-checks/{next}/decision"),
            Some("not a key"),
            json!({"decision": "accept"}),
        )
        .await;
    assert_error(status, &body, 401, "invalid_token", "");
    ts.accept_identity(&person, id).await;
    assert!(ts.last_message(&person.email).await.contains("verified"));
}

#[tokio::test]
async fn rekey_notices_the_window_and_refunds_follow_the_clock() {
    let ts = server().await;
    let (mut person, credential) = ts.certified_person("hal@example.org", "+38641000006").await;
    let cred = credential["credential_id"].as_str().unwrap().to_string();
    let key = ts.operator_key();
    let expiry = chrono::DateTime::parse_from_rfc3339(credential["not_after"].as_str().unwrap()).unwrap().timestamp();
    let run = || async { ts.post("/api/admin/v1/scheduler/run", Some(&key), json!({})).await.1 };

    assert_eq!(run().await["rekey_notices_sent"], 0);
    ts.clock.advance(expiry - 45 * 86_400 - ts.now() + 60);
    assert_eq!(run().await["rekey_notices_sent"], 1);
    assert_eq!(run().await["rekey_notices_sent"], 0, "each notice once");
    assert!(ts.last_message(&person.email).await.contains("expires on"));
    // A rekey order paid inside the window...
    person.token = ts.portal_login(&person).await;
    let order = ts.buy(&person, "rekey", Some(&cred)).await;
    ts.clock.advance(expiry - 15 * 86_400 - ts.now() + 60);
    assert_eq!(run().await["rekey_notices_sent"], 1);
    // ...but the window closes 72 hours before expiry: then a rekey is refused and a reissue is needed.
    ts.clock.advance(expiry - 72 * 3600 - ts.now() + 60);
    let (status, body) = ts
        .post(
            &format!("/api/v1/credentials/{cred}/rekey"),
            Some(&ts.portal_login(&person).await),
            json!({"order_id": order, "otp": ts.person_otp(&person)}),
        )
        .await;
    assert_error(status, &body, 409, "reissue_required", "rekey window closed");
    // When the certificate expires, the paid but unfinished rekey is marked for refund.
    assert_eq!(run().await["orders_marked_for_refund"], 0);
    ts.clock.advance(72 * 3600);
    assert_eq!(run().await["orders_marked_for_refund"], 1);
    let (_, admin_orders) = ts.get("/api/admin/v1/orders?status=refund_due", Some(&key)).await;
    assert_eq!(admin_orders["orders"][0]["id"], order.as_str());
    let token = ts.portal_login(&person).await;
    let (_, body) = ts.get("/api/v1/credentials", Some(&token)).await;
    assert_eq!(body["credentials"][0]["status"], "expired");
}

#[tokio::test]
async fn operators_revoke_and_read_the_trail_and_provisioned_signers_keep_their_quota() {
    let ts = server().await;
    let signer = ts.provision_with_quota("quota-user", rssp::domain::KeyKind::EcP256, 10, None, Some(2)).await;
    let token = ts.login("v1", &signer).await;
    let hashes = digests(3, "q");
    let sad = ts.authorize_v1(&token, &signer, &hashes[..2], 2).await;
    let (status, _) = ts.sign_v1(&token, &signer.credential_id, &sad, &hashes[..2], "1.2.840.10045.4.3.2").await;
    assert_eq!(status, 200);
    let otp = ts.next_otp(&signer);
    let (status, body) = ts
        .post("/csc/v1/credentials/authorize", Some(&token), json!({"credentialID": signer.credential_id, "numSignatures": 1, "hash": b64_all(&hashes[2..]), "OTP": otp}))
        .await;
    assert_error(status, &body, 400, "invalid_request", "quota exhausted");

    let key = ts.operator_key();
    let (status, _) = ts.get("/api/admin/v1/users", None).await;
    assert_eq!(status, 401);
    let (status, body) = ts
        .post(
            &format!("/api/admin/v1/credentials/{}/revoke", signer.credential_id),
            Some(&key),
            json!({"reason": "court order"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "revoked");
    let (status, body) = ts
        .post(
            &format!("/api/admin/v1/credentials/{}/revoke", signer.credential_id),
            Some(&key),
            json!({"reason": "again"}),
        )
        .await;
    assert_error(status, &body, 409, "conflict", "already revoked");
    let (_, audit) = ts.get("/api/admin/v1/audit?limit=500", Some(&key)).await;
    assert!(audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["event"] == "credential.revoked" && r["detail"].as_str().unwrap().contains("court order")));
}

#[tokio::test]
async fn one_person_cannot_reach_another_persons_orders_or_credentials() {
    let ts = server().await;
    let (owner, credential) = ts.certified_person("jo@example.org", "+38641000008").await;
    let cred = credential["credential_id"].as_str().unwrap();
    let order = credential["order_id"].as_str().unwrap();
    let other = ts.enrol("kim@example.org", "+38641000009").await;
    let t = Some(other.token.as_str());
    // Someone else's order or credential is answered like a missing one, and nothing changes.
    let (status, body) = ts.get(&format!("/api/v1/orders/{order}"), t).await;
    assert_error(status, &body, 404, "not_found", "No such order");
    let (status, body) = ts.post(&format!("/api/v1/orders/{order}/payment"), t, json!({})).await;
    assert_error(status, &body, 404, "not_found", "No such order");
    let (status, body) =
        ts.post(&format!("/api/v1/credentials/{cred}/revoke"), t, json!({"otp": "123456", "reason": "not mine"})).await;
    assert_error(status, &body, 404, "not_found", "No such credential");
    let (status, body) = ts.get("/api/v1/credentials", t).await;
    assert_eq!((status, body["credentials"].as_array().unwrap().len()), (200, 0));
    let (status, body) = ts.get("/api/v1/identity-checks", t).await;
    assert_eq!((status, body["identity_checks"].as_array().unwrap().len()), (200, 0));
    let (status, body) = ts.get("/api/admin/v1/users", t).await;
    assert_error(status, &body, 401, "invalid_token", "");
    let (_, body) = ts.get(&format!("/api/v1/orders/{order}"), Some(&owner.token)).await;
    assert_eq!(body["status"], "fulfilled", "the owner's order is untouched");
}

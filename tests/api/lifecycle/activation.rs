//! Registration and activation: an address that has an account is told, not taken; links and codes
//! are single-use, rate-limited and expire; every refusal is audited.

use serde_json::json;

use super::server;
use crate::common::assert_error;
use crate::common::journey::{link_token, six_digits};

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

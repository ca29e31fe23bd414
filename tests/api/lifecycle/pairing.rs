//! The authenticator: pairing can be put off until the configured date, then everything waits for
//! it, and a login needs a code, accepted once.

use serde_json::json;

use super::{csc_login, server};
use crate::common::assert_error;
use crate::common::journey::invoice;

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

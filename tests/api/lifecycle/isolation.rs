//! One person cannot reach another person's orders, credentials or identity checks.

use serde_json::json;

use super::server;
use crate::common::assert_error;

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

//! The rekey window on the clock: notices before expiry, the window closing 72 hours before it, and
//! a refund for a paid rekey that was not finished.

use serde_json::json;

use super::server;
use crate::common::assert_error;

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

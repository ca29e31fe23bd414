//! Orders and payment: the terms first, the invoice data checked and frozen once paid, the signed
//! payment webhook (one identity check however often an event comes), and the identity provider's verdict.

use serde_json::json;

use super::server;
use crate::common::assert_error;
use crate::common::journey::invoice;

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

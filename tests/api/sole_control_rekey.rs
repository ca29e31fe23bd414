//! Sole control over the identity in a certificate (rssp issue 7): a rekey is a request that the trust
//! service decides before anything is issued, and issuance never leaves a key or certificate that no
//! record knows. The real server, SoftHSM token and database; the attacker speaks HTTP.

use crate::common::rekey::{tiny_jpeg, tiny_pdf, tiny_png};
use crate::common::{assert_error, TestServer};
use rssp::domain::KeyKind;
use serde_json::{json, Value};

fn subject_of(credential: &Value) -> String {
    credential["subject"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_rekey_in_another_persons_name_is_decided_before_anything_is_issued() {
    let ts = TestServer::start().await;
    let (mallory, credential) = ts.certified_named("mallory@example.org", "+38640200001", "Mallory", "Smith").await;
    let cred = credential["credential_id"].as_str().unwrap().to_string();
    assert!(subject_of(&credential).contains("CN=Mallory Smith"), "{credential}");

    // A rekey order, with another person's name.
    let order = ts.buy(&mallory, "rekey", Some(&cred)).await;
    let (status, body) = ts.rekey_names(&mallory, &order, "Ana", "Novak").await;
    assert_eq!(status, 200, "{body}");

    // Junk behind the right magic bytes is not an identity document.
    for (content_type, junk) in [
        ("application/pdf", b"%PDF-1.7\nnot really a pdf\n%%EOF\n".to_vec()),
        ("image/png", b"\x89PNG\r\n\x1a\nnot really a png".to_vec()),
        ("image/jpeg", b"\xFF\xD8\xFF\xE0not really a jpeg".to_vec()),
    ] {
        let (status, body) = ts.rekey_document(&mallory, &order, content_type, &junk).await;
        assert_error(status, &body, 400, "invalid_request", &format!("not a {content_type} file"));
    }
    let (status, body) = ts.submit_rekey(&mallory, &cred, &order).await;
    assert_error(status, &body, 409, "conflict", "Upload a copy of the identity document");

    // With a real (tiny) image the request is submitted, and waits.
    let (status, body) = ts.rekey_document(&mallory, &order, "image/png", &tiny_png()).await;
    assert_eq!(status, 201, "{body}");
    let (status, submitted) = ts.submit_rekey(&mallory, &cred, &order).await;
    assert_eq!(status, 202, "{submitted}");
    assert_eq!(submitted["status"], "awaiting_decision");
    assert_eq!(submitted["identity_check"]["kind"], "rekey");
    assert_eq!(submitted["identity_check"]["status"], "pending");
    assert_eq!(submitted["identity_check"]["surname"], "Novak");
    let check = submitted["identity_check"]["id"].as_str().unwrap().to_string();

    // Nothing was issued: one credential, no issuance in the trail, the account keeps its names.
    let credentials = ts.credentials_of(&mallory).await;
    assert_eq!(credentials.len(), 1, "{credentials:?}");
    assert!(credentials[0]["replaced_by"].is_null());
    assert_eq!(ts.audit_events("credential.issued", &mallory.user_id).await.len(), 1, "only the first issuance");
    let (_, me) = ts.get("/api/v1/me", Some(&mallory.token)).await;
    assert_eq!((me["given_name"].as_str(), me["surname"].as_str()), (Some("Mallory"), Some("Smith")), "{me}");

    // While it waits, what was submitted cannot be changed, nor submitted twice.
    let (status, body) = ts.rekey_names(&mallory, &order, "Eve", "Other").await;
    assert_error(status, &body, 409, "conflict", "not submitted");
    let (status, body) = ts.rekey_document(&mallory, &order, "application/pdf", &tiny_pdf()).await;
    assert_error(status, &body, 409, "conflict", "not submitted");
    let (status, body) = ts.submit_rekey(&mallory, &cred, &order).await;
    assert_error(status, &body, 409, "conflict", "waits for a decision");

    // The person cannot decide it: the decision endpoint wants an operator key, the webhook a signature.
    let (status, body) = ts
        .post(
            &format!("/api/admin/v1/identity-checks/{check}/decision"),
            Some(&mallory.token),
            json!({"decision": "accept"}),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    let event = json!({"event_id": "forged-1", "check_id": check, "result": "accepted"});
    let (status, body) = ts.webhook("/api/v1/webhooks/identity", "not-the-secret", &event).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(ts.credentials_of(&mallory).await.len(), 1);

    // The operator rejects it with reasons: the person is told them, and may submit again.
    let (status, body) =
        ts.operator_decides(&check, "reject", &["The document shows another person", "The name does not match"]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "rejected");
    let message = ts.outbox(&mallory.email).await.last().unwrap().clone();
    assert_eq!(message["subject"], "Your renewal request was rejected");
    let text = message["body"].as_str().unwrap();
    assert!(text.contains("The document shows another person") && text.contains("The name does not match"), "{text}");
    assert_eq!(ts.credentials_of(&mallory).await.len(), 1);
    let (_, order_view) = ts.get(&format!("/api/v1/orders/{order}"), Some(&mallory.token)).await;
    assert_eq!(order_view["status"], "paid");
    let (status, body) = ts.operator_decides(&check, "accept", &[]).await;
    assert_error(status, &body, 409, "conflict", "already");

    // Resubmitted with the person's own (changed) name and a JPEG; the operator accepts.
    let (status, body) = ts.rekey_names(&mallory, &order, "Mallory", "Smith-Jones").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = ts.rekey_document(&mallory, &order, "image/jpeg", &tiny_jpeg()).await;
    assert_eq!(status, 201, "{body}");
    let (status, resubmitted) = ts.submit_rekey(&mallory, &cred, &order).await;
    assert_eq!(status, 202, "{resubmitted}");
    let second = resubmitted["identity_check"]["id"].as_str().unwrap().to_string();
    assert_ne!(second, check);
    let (status, body) = ts.operator_decides(&second, "accept", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "accepted");

    let credentials = ts.credentials_of(&mallory).await;
    assert_eq!(credentials.len(), 2, "{credentials:?}");
    let old = credentials.iter().find(|c| c["credential_id"] == cred.as_str()).unwrap();
    let new = credentials.iter().find(|c| c["credential_id"] != cred.as_str()).unwrap();
    assert_eq!(old["replaced_by"], new["credential_id"]);
    assert!(subject_of(new).contains("CN=Mallory Smith-Jones"), "{new}");
    assert!(!subject_of(new).contains("Novak"), "{new}");
    assert!(ts.last_message(&mallory.email).await.contains("is issued"));
    assert_eq!(ts.audit_events("credential.issued", &mallory.user_id).await.len(), 2);
    let (_, me) = ts.get("/api/v1/me", Some(&mallory.token)).await;
    assert_eq!(me["surname"], "Smith-Jones");
    let (_, order_view) = ts.get(&format!("/api/v1/orders/{order}"), Some(&mallory.token)).await;
    assert_eq!(order_view["status"], "fulfilled");
    assert_eq!(order_view["new_credential_id"], new["credential_id"]);
}

#[tokio::test]
async fn another_person_cannot_submit_on_this_order_and_only_the_signed_provider_decides() {
    let ts = TestServer::start().await;
    let (mallory, credential) = ts.certified_named("mallory2@example.org", "+38640200002", "Mallory", "Smith").await;
    let cred = credential["credential_id"].as_str().unwrap().to_string();
    let (eve, eve_credential) = ts.certified_named("eve@example.org", "+38640200003", "Eve", "Black").await;
    let eve_cred = eve_credential["credential_id"].as_str().unwrap().to_string();
    let order = ts.buy(&mallory, "rekey", Some(&cred)).await;

    // Eve cannot fill in, nor submit, Mallory's rekey order: it does not exist for her.
    let (status, body) = ts.rekey_names(&eve, &order, "Eve", "Black").await;
    assert_error(status, &body, 404, "not_found", "No such order");
    let (status, body) = ts.rekey_document(&eve, &order, "image/png", &tiny_png()).await;
    assert_error(status, &body, 404, "not_found", "No such order");
    let (status, body) = ts.rekey_names(&mallory, &order, "Mallory", "Smith").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = ts.rekey_document(&mallory, &order, "application/pdf", &tiny_pdf()).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = ts.submit_rekey(&eve, &cred, &order).await;
    assert_error(status, &body, 404, "not_found", "No such credential");
    let (status, body) = ts.submit_rekey(&eve, &eve_cred, &order).await;
    assert_error(status, &body, 404, "not_found", "No such order");

    let (status, submitted) = ts.submit_rekey(&mallory, &cred, &order).await;
    assert_eq!(status, 202, "{submitted}");
    let check = submitted["identity_check"]["id"].as_str().unwrap().to_string();
    // Eve cannot decide it either.
    let (status, _) = ts
        .post(
            &format!("/api/admin/v1/identity-checks/{check}/decision"),
            Some(&eve.token),
            json!({"decision": "accept"}),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(ts.credentials_of(&mallory).await.len(), 1);

    // The identification provider's signed verdict decides it like an operator's.
    let secret = ts.dev_secrets().identity_webhook_secret;
    let event = json!({"event_id": "rekey-accept-1", "check_id": check, "result": "accepted"});
    let (status, body) = ts.webhook("/api/v1/webhooks/identity", &secret, &event).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "accepted");
    let (status, body) = ts.webhook("/api/v1/webhooks/identity", &secret, &event).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["duplicate"], true);
    let credentials = ts.credentials_of(&mallory).await;
    assert_eq!(credentials.len(), 2, "one new credential, however often the event comes: {credentials:?}");
    assert_eq!(ts.credentials_of(&eve).await.len(), 1);
}

#[tokio::test]
async fn unchanged_personal_data_still_wait_unless_auto_accept_is_configured() {
    // Default: every rekey waits for a decision.
    let ts = TestServer::start().await;
    let (person, credential) = ts.certified_named("same@example.org", "+38640200004", "Ana", "Novak").await;
    let cred = credential["credential_id"].as_str().unwrap().to_string();
    let order = ts.buy(&person, "rekey", Some(&cred)).await;
    ts.rekey_names(&person, &order, "Ana", "Novak").await;
    let (status, body) = ts.rekey_document(&person, &order, "image/png", &tiny_png()).await;
    assert_eq!(status, 201, "{body}");
    let (status, submitted) = ts.submit_rekey(&person, &cred, &order).await;
    assert_eq!(status, 202, "{submitted}");
    assert_eq!(ts.credentials_of(&person).await.len(), 1);

    // With the auto-accept setting, unchanged data are issued at once; changed data still wait.
    let ts = TestServer::start_with(|c| c.lifecycle.rekey_auto_accept_unchanged = true).await;
    let (person, credential) = ts.certified_named("auto@example.org", "+38640200005", "Ana", "Novak").await;
    let cred = credential["credential_id"].as_str().unwrap().to_string();
    let order = ts.buy(&person, "rekey", Some(&cred)).await;
    ts.rekey_names(&person, &order, "Ana", "Novak").await;
    ts.rekey_document(&person, &order, "image/png", &tiny_png()).await;
    let (status, issued) = ts.submit_rekey(&person, &cred, &order).await;
    assert_eq!(status, 201, "{issued}");
    assert!(subject_of(&issued).contains("CN=Ana Novak"), "{issued}");
    assert_eq!(ts.credentials_of(&person).await.len(), 2);

    let new_cred = issued["credential_id"].as_str().unwrap().to_string();
    let order = ts.buy(&person, "rekey", Some(&new_cred)).await;
    ts.rekey_names(&person, &order, "Ana", "Kos").await;
    ts.rekey_document(&person, &order, "application/pdf", &tiny_pdf()).await;
    let (status, submitted) = ts.submit_rekey(&person, &new_cred, &order).await;
    assert_eq!(status, 202, "{submitted}");
    assert_eq!(ts.credentials_of(&person).await.len(), 2);
}

#[tokio::test]
async fn a_rekey_accepted_after_the_window_closed_is_refused() {
    let ts = TestServer::start().await;
    let (person, credential) = ts.certified_named("late@example.org", "+38640200006", "Ana", "Novak").await;
    let cred = credential["credential_id"].as_str().unwrap().to_string();
    let expiry = chrono::DateTime::parse_from_rfc3339(credential["not_after"].as_str().unwrap()).unwrap().timestamp();
    let order = ts.buy(&person, "rekey", Some(&cred)).await;
    ts.rekey_names(&person, &order, "Ana", "Kos").await;
    ts.rekey_document(&person, &order, "image/png", &tiny_png()).await;
    let (status, submitted) = ts.submit_rekey(&person, &cred, &order).await;
    assert_eq!(status, 202, "{submitted}");
    let check = submitted["identity_check"]["id"].as_str().unwrap().to_string();

    // The window closes 72 hours before expiry while the request waits.
    ts.clock.advance(expiry - 72 * 3600 - ts.now() + 60);
    let (status, body) = ts.operator_decides(&check, "accept", &[]).await;
    assert_error(status, &body, 409, "reissue_required", "order a reissue");
    let person_token = ts.portal_login(&person).await;
    let (_, body) = ts.get("/api/v1/credentials", Some(&person_token)).await;
    assert_eq!(body["credentials"].as_array().unwrap().len(), 1, "{body}");
    let (_, checks) = ts.get("/api/v1/identity-checks", Some(&person_token)).await;
    let pending = checks["identity_checks"].as_array().unwrap().iter().find(|c| c["id"] == check.as_str()).unwrap();
    assert_eq!(pending["status"], "pending", "the refused acceptance changed nothing");

    // When the certificate expires, the submitted but undecided rekey is marked for refund.
    ts.clock.advance(72 * 3600);
    let (status, report) = ts.post("/api/admin/v1/scheduler/run", Some(&ts.operator_key()), json!({})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["orders_marked_for_refund"], 1);
    let person_token = ts.portal_login(&person).await;
    let (_, order_view) = ts.get(&format!("/api/v1/orders/{order}"), Some(&person_token)).await;
    assert_eq!(order_view["status"], "refund_due", "{order_view}");
}

#[tokio::test]
async fn two_issuance_calls_on_one_order_give_one_credential_and_no_orphan_key() {
    let ts = TestServer::start().await;
    let baseline = ts.private_keys_on_token();
    let mut person = ts.enrol("race@example.org", "+38640200007").await;
    ts.pair(&mut person).await;
    let order = ts.buy(&person, "issuance", None).await;
    ts.accept_identity(&person, &order).await;
    assert_eq!(ts.private_keys_on_token(), baseline, "no key before issuance");

    // Two valid codes (consecutive steps), two calls in quick succession.
    let first_code = ts.person_otp(&person);
    let second_code = ts.person_otp(&person);
    let call = |otp: String| {
        let body = json!({"order_id": order, "issuance_terms_version": "2026-01", "otp": otp});
        ts.post("/api/v1/credentials", Some(&person.token), body)
    };
    let second = async {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        call(second_code).await
    };
    let ((status_a, body_a), (status_b, body_b)) = futures::join!(call(first_code), second);
    let mut statuses = [status_a, status_b];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{body_a} {body_b}");
    let refused = if status_a == 409 { &body_a } else { &body_b };
    assert_error(409, refused, 409, "conflict", "");

    // One credential, and the token holds exactly the keys the database knows.
    let credentials = ts.credentials_of(&person).await;
    assert_eq!(credentials.len(), 1, "{credentials:?}");
    assert_eq!(ts.private_keys_on_token(), baseline + 1);
    assert_eq!(ts.audit_events("credential.issued", &person.user_id).await.len(), 1);
    let (_, order_view) = ts.get(&format!("/api/v1/orders/{order}"), Some(&person.token)).await;
    assert_eq!(order_view["status"], "fulfilled");

    // A third call finds the order fulfilled and never reaches the HSM.
    let (status, body) = call(ts.person_otp(&person)).await;
    assert_error(status, &body, 409, "conflict", "fulfilled");
    assert_eq!(ts.private_keys_on_token(), baseline + 1);

    // The key store can destroy what a failed issuance generated.
    let keystore = &ts.services().keystore;
    let key = keystore.generate(KeyKind::EcP256, "doomed").unwrap();
    assert_eq!(ts.private_keys_on_token(), baseline + 2);
    assert!(keystore.destroy(&key.id).unwrap());
    assert!(!keystore.has_key(&key.id).unwrap());
    assert_eq!(ts.private_keys_on_token(), baseline + 1);
}

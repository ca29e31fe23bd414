//! The whole journey of one person: registration to a certificate, signatures up to the quota, a
//! rekey, revocation (listed in the CRL) and a reissue, each step told by e-mail.

use serde_json::json;

use super::{csc_login, server};
use crate::common;
use crate::common::journey::{csc_authorize, invoice};
use crate::common::{assert_error, digests};

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

//! Operators: revocation and the audit trail; provisioned signers keep their quota.

use serde_json::json;

use super::server;
use crate::common::{assert_error, b64_all, digests};

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

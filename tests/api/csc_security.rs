//! The refusals a user relies on: replayed and wrong codes, lock-out, SAD binding, budget and
//! expiry, other users' credentials, bad input. Each leaves nothing changed.

use crate::common::*;
use diesel::RunQueryDsl;
use rssp::domain::{totp, KeyKind};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_totp_code_is_accepted_once() {
    let server = TestServer::start().await;
    let signer = server.provision("replay", KeyKind::EcP256, 5, None).await;
    let token = server.login("v1", &signer).await;
    let hashes = digests(1, "replay");
    let otp = server.next_otp(&signer);
    let body = json!({"credentialID": signer.credential_id, "numSignatures": 1, "hash": b64_all(&hashes), "OTP": otp});
    let (status, first) = server.post("/csc/v1/credentials/authorize", Some(&token), body.clone()).await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = server.post("/csc/v1/credentials/authorize", Some(&token), body).await;
    assert_error(status, &again, 400, "invalid_otp", "already been used");
    // An older code (the previous step, still in the drift window) is a replay too.
    let older = totp::code_at_step(&signer.totp_seed, totp::step_of(server.now()) - 1);
    let (status, body) = server
        .post(
            "/csc/v1/credentials/authorize",
            Some(&token),
            json!({"credentialID": signer.credential_id, "numSignatures": 1, "hash": b64_all(&hashes), "OTP": older}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_otp", "");
}

#[tokio::test]
async fn repeated_wrong_codes_lock_the_factor_for_the_configured_time() {
    let (server, signer, token) = server_locking_after_three("locky").await;
    let hashes = digests(1, "lock");
    let attempt = |otp: String| authorize_with(&server, &token, &signer, &hashes, otp);
    for _ in 0..2 {
        let (status, body) = attempt("000000".into()).await;
        assert_error(status, &body, 400, "invalid_otp", "invalid");
    }
    let (status, body) = attempt("000000".into()).await;
    assert_error(status, &body, 400, "invalid_request", "OTP locked");
    // While locked, even the right code is refused.
    let (status, body) = attempt(server.next_otp(&signer)).await;
    assert_error(status, &body, 400, "invalid_request", "OTP locked");
    server.clock.advance(600);
    let (status, body) = attempt(server.next_otp(&signer)).await;
    assert_eq!(status, 200, "unlocked after the lock-out time: {body}");
}

#[tokio::test]
async fn the_sad_is_bound_to_its_hashes_budget_credential_and_lifetime() {
    let server = TestServer::start_with(|c| c.security.sad_lifetime_secs = 120).await;
    let signer = server.provision("bound", KeyKind::EcP256, 5, None).await;
    let other = server.provision("other", KeyKind::EcP256, 5, None).await;
    let token = server.login("v1", &signer).await;
    let hashes = digests(2, "bound");
    let sad = server.authorize_v1(&token, &signer, &hashes, 2).await;

    let (status, body) = sign(&server, &token, &signer.credential_id, &sad, &digests(1, "stranger")).await;
    assert_error(status, &body, 400, "invalid_request", "Hash is not authorized by the SAD.");
    // The SAD does not work for another credential, even one the caller could see.
    let (status, body) = sign(&server, &token, &other.credential_id, &sad, &hashes[..1]).await;
    assert_error(status, &body, 400, "invalid_request", "Invalid parameter credentialID");
    let (status, body) = sign(&server, &token, &signer.credential_id, "forged", &hashes[..1]).await;
    assert_error(status, &body, 400, "invalid_request", "Invalid parameter SAD");
    // The refusals spent nothing: both signatures are still there, then no more.
    let (status, body) = sign(&server, &token, &signer.credential_id, &sad, &hashes).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = sign(&server, &token, &signer.credential_id, &sad, &hashes[..1]).await;
    assert_error(status, &body, 400, "invalid_request", "SAD");

    let sad = server.authorize_v1(&token, &signer, &hashes, 2).await;
    server.clock.advance(121);
    let (status, body) = sign(&server, &token, &signer.credential_id, &sad, &hashes[..1]).await;
    assert_error(status, &body, 400, "invalid_request", "SAD expired");
}

#[tokio::test]
async fn concurrent_sign_hash_calls_never_overspend_the_sad() {
    let server = TestServer::start().await;
    let signer = server.provision("racer", KeyKind::EcP256, 10, None).await;
    let token = server.login("v1", &signer).await;
    let hashes = digests(3, "race");
    let sad = server.authorize_v1(&token, &signer, &hashes, 3).await;
    let attempts = (0..12).map(|i| {
        let hash = vec![hashes[i % 3].clone()];
        let (server, token, sad, id) = (&server, token.clone(), sad.clone(), signer.credential_id.clone());
        async move { sign(server, &token, &id, &sad, &hash).await.0 }
    });
    let statuses = futures::future::join_all(attempts).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 3, "exactly the budget is signed: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 400), "{statuses:?}");

    // The same in one batch of the ledger (SQLite: PostgreSQL writes each reservation alone),
    // where the reservations are judged one after the other.
    if !server.services().ledger.batched() {
        return;
    }
    let sad = server.authorize_v1(&token, &signer, &hashes, 3).await;
    let attempts = (0..12).map(|i| {
        let hash = vec![hashes[i % 3].clone()];
        let (server, token, sad, id) = (&server, token.clone(), sad.clone(), signer.credential_id.clone());
        async move { sign(server, &token, &id, &sad, &hash).await.0 }
    });
    let (statuses, queued) = in_one_batch(&server, 12, futures::future::join_all(attempts)).await;
    assert_eq!(queued, 12, "all twelve were queued together");
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 3, "exactly the budget is signed: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 400), "{statuses:?}");
}

#[tokio::test]
async fn another_users_credential_looks_like_a_missing_one() {
    let server = TestServer::start().await;
    let owner = server.provision("owner", KeyKind::EcP256, 5, None).await;
    let intruder = server.provision("intruder", KeyKind::EcP256, 5, None).await;
    let token = server.login("v1", &intruder).await;
    for id in [owner.credential_id.as_str(), "00000000-0000-0000-0000-000000000000"] {
        let (status, body) = server.post("/csc/v1/credentials/info", Some(&token), json!({"credentialID": id})).await;
        assert_error(status, &body, 400, "invalid_request", "Invalid parameter credentialID");
        let otp = server.next_otp(&intruder);
        let (status, body) = server
            .post(
                "/csc/v1/credentials/authorize",
                Some(&token),
                json!({"credentialID": id, "numSignatures": 1, "hash": b64_all(&digests(1, "x")), "OTP": otp}),
            )
            .await;
        assert_error(status, &body, 400, "invalid_request", "Invalid parameter credentialID");
    }
    let (status, list) = server.post("/csc/v2/credentials/list", Some(&token), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(list["credentialIDs"], json!([intruder.credential_id]));
}

#[tokio::test]
async fn a_sad_signs_only_for_the_person_and_credential_it_was_issued_to() {
    let server = TestServer::start().await;
    let owner = server.provision("sad-owner", KeyKind::EcP256, 5, None).await;
    let thief = server.provision("sad-thief", KeyKind::EcP256, 5, None).await;
    let owner_token = server.login("v1", &owner).await;
    let thief_token = server.login("v1", &thief).await;
    let hashes = digests(1, "owned");
    let sad = server.authorize_v1(&owner_token, &owner, &hashes, 1).await;

    // Someone who got hold of the owner's SAD cannot use it with their own login: not on their own
    // credential (the SAD is not theirs) and not on the owner's (the credential is not theirs).
    let (status, body) = sign(&server, &thief_token, &thief.credential_id, &sad, &hashes).await;
    assert_error(status, &body, 400, "invalid_request", "Invalid parameter SAD");
    let (status, body) = sign(&server, &thief_token, &owner.credential_id, &sad, &hashes).await;
    assert_error(status, &body, 400, "invalid_request", "Invalid parameter credentialID");
    // Nor by the owner on a credential that is not theirs.
    let (status, body) = sign(&server, &owner_token, &thief.credential_id, &sad, &hashes).await;
    assert_error(status, &body, 400, "invalid_request", "Invalid parameter credentialID");
    // The attempts spent nothing: the owner signs with it once, then it is used up.
    let (status, body) = sign(&server, &owner_token, &owner.credential_id, &sad, &hashes).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = sign(&server, &owner_token, &owner.credential_id, &sad, &hashes).await;
    assert_error(status, &body, 400, "invalid_request", "SAD");
}

#[tokio::test]
async fn bad_input_gets_a_csc_error_and_changes_nothing() {
    let server = TestServer::start().await;
    let signer = server.provision("careful", KeyKind::Rsa2048, 5, None).await;
    let token = server.login("v1", &signer).await;
    let hashes = digests(1, "careful");
    let sad = server.authorize_v1(&token, &signer, &hashes, 1).await;
    let id = signer.credential_id.clone();
    let h = b64(&hashes[0]);
    let cases: Vec<(&str, String, &str)> = vec![
        ("/csc/v1/signatures/signHash", "{not json".into(), "Malformed JSON"),
        ("/csc/v1/signatures/signHash", "[]".into(), "Malformed JSON"),
        ("/csc/v1/signatures/signHash", json!({"credentialID": 5, "SAD": sad, "hash": [h], "signAlgo": "1.2.840.113549.1.1.11"}).to_string(), "string parameter credentialID"),
        ("/csc/v1/signatures/signHash", json!({"credentialID": id, "SAD": sad, "hash": h, "signAlgo": "1.2.840.113549.1.1.11"}).to_string(), "array parameter hash"),
        ("/csc/v1/signatures/signHash", json!({"credentialID": id, "SAD": sad, "signAlgo": "1.2.840.113549.1.1.11"}).to_string(), "array parameter hash"),
        ("/csc/v1/signatures/signHash", json!({"credentialID": id, "SAD": sad, "hash": [], "signAlgo": "1.2.840.113549.1.1.11"}).to_string(), "Empty hash array"),
        ("/csc/v1/signatures/signHash", json!({"credentialID": id, "SAD": sad, "hash": ["***"], "signAlgo": "1.2.840.113549.1.1.11"}).to_string(), "Invalid Base64 hash"),
        ("/csc/v1/signatures/signHash", json!({"credentialID": id, "SAD": sad, "hash": [b64(&[1u8; 20])], "signAlgo": "1.2.840.113549.1.1.11"}).to_string(), "Invalid digest value length"),
        ("/csc/v1/signatures/signHash", json!({"credentialID": id, "SAD": sad, "hash": [h], "signAlgo": "1.2.3.4"}).to_string(), "Invalid parameter signAlgo"),
        ("/csc/v1/signatures/signHash", json!({"credentialID": id, "SAD": sad, "hash": [h], "signAlgo": ES256}).to_string(), "Invalid parameter signAlgo"),
        ("/csc/v1/signatures/signHash", json!({"credentialID": id, "SAD": sad, "hash": [h], "signAlgo": "1.2.840.113549.1.1.1"}).to_string(), "string parameter hashAlgo"),
        ("/csc/v1/signatures/signHash", json!({"credentialID": id, "SAD": sad, "hash": [h], "signAlgo": "1.2.840.113549.1.1.1", "hashAlgo": "1.3.14.3.2.26"}).to_string(), "Invalid parameter hashAlgo"),
        ("/csc/v1/signatures/signHash", json!({"credentialID": id, "SAD": sad, "hash": [h], "signAlgo": "1.2.840.113549.1.1.10"}).to_string(), "signAlgoParams"),
        ("/csc/v1/signatures/signHash", json!({"credentialID": id, "SAD": sad, "hash": [h], "signAlgo": "1.2.840.113549.1.1.10", "signAlgoParams": "MAA="}).to_string(), "Invalid parameter signAlgoParams"),
        ("/csc/v1/signatures/signHash", json!({"credentialID": id, "hash": [h], "signAlgo": "1.2.840.113549.1.1.11"}).to_string(), "string parameter SAD"),
        ("/csc/v1/credentials/authorize", json!({"credentialID": id, "numSignatures": "one", "hash": [h], "OTP": "123456"}).to_string(), "integer parameter numSignatures"),
        ("/csc/v1/credentials/authorize", json!({"credentialID": id, "numSignatures": 0, "hash": [h], "OTP": "123456"}).to_string(), "Invalid parameter numSignatures"),
        ("/csc/v1/credentials/authorize", json!({"credentialID": id, "numSignatures": 6, "hash": [h], "OTP": "123456"}).to_string(), "Invalid parameter numSignatures"),
        ("/csc/v1/credentials/authorize", json!({"credentialID": id, "numSignatures": 1, "OTP": "123456"}).to_string(), "array parameter hash"),
        ("/csc/v1/credentials/authorize", json!({"credentialID": id, "numSignatures": 1, "hash": [h]}).to_string(), "string parameter OTP"),
        ("/csc/v1/credentials/info", json!({"credentialID": id, "certificates": "all"}).to_string(), "Invalid parameter certificates"),
        ("/csc/v1/credentials/info", json!({}).to_string(), "string parameter credentialID"),
        ("/csc/v1/credentials/list", json!({"userID": "someone"}).to_string(), "userID parameter MUST be null"),
        ("/csc/v2/signatures/signHash", json!({"credentialID": id, "SAD": sad, "hash": [h], "signAlgo": "1.2.840.113549.1.1.11"}).to_string(), "array parameter hashes"),
        ("/csc/v2/signatures/signHash", json!({"credentialID": id, "SAD": sad, "hashes": [h], "signAlgo": "1.2.840.113549.1.1.1"}).to_string(), "string parameter hashAlgorithmOID"),
        ("/csc/v2/signatures/signHash", json!({"credentialID": id, "SAD": sad, "hashes": [h], "signAlgo": "1.2.840.113549.1.1.11", "operationMode": "A"}).to_string(), "Invalid parameter operationMode"),
        ("/csc/v2/credentials/authorize", json!({"credentialID": id, "numSignatures": 1, "hashes": [h], "authData": [{"id": "OTP", "value": "1"}]}).to_string(), "string parameter hashAlgorithmOID"),
        ("/csc/v2/credentials/authorize", json!({"credentialID": id, "numSignatures": 1, "hashes": [h], "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1", "authData": [{"id": "SMS", "value": "1"}]}).to_string(), "Invalid parameter authData"),
    ];
    for (path, body, expected) in &cases {
        let (status, answer) = server.post_raw(path, &token, body).await;
        assert!((400..500).contains(&status), "{path} {body}: status {status} {answer}");
        assert_eq!(answer["error"], "invalid_request", "{path} {body}: {answer}");
        let description = answer["error_description"].as_str().unwrap_or_default();
        assert!(description.contains(expected), "{path} {body}: {description:?} should contain {expected:?}");
    }
    // After all of that the SAD still signs exactly once.
    let (status, body) = server.sign_v1(&token, &id, &sad, &hashes, "1.2.840.113549.1.1.11").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn service_authorisation_errors_and_token_revocation() {
    let server = TestServer::start().await;
    let signer = server.provision("tokens", KeyKind::EcP256, 5, None).await;
    let http = &server.http;
    let login = |user: &str, password: &str, remember: bool| {
        http.post(format!("{}/csc/v1/auth/login", server.url))
            .basic_auth(user, Some(password))
            .json(&json!({"rememberMe": remember}))
            .send()
    };
    let response = login("tokens", "wrong password", false).await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "authentication_error");
    let response = login("nobody", PASSWORD, false).await.unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "authentication_error");
    let response = http.post(format!("{}/csc/v1/auth/login", server.url)).json(&json!({})).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401, "no credentials at all");

    let (status, body) = server.post("/csc/v1/credentials/list", None, json!({})).await;
    assert_error(status, &body, 401, "invalid_token", "A bearer token is required");
    let (status, body) = server.post("/csc/v1/credentials/list", Some("not-a-token"), json!({})).await;
    assert_error(status, &body, 401, "invalid_token", "");

    let tokens: Value = login("tokens", PASSWORD, true).await.unwrap().json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, renewed) = server.post("/csc/v1/auth/login", None, json!({"refresh_token": refresh})).await;
    assert_eq!(status, 200, "{renewed}");
    let renewed_access = renewed["access_token"].as_str().unwrap();
    assert_eq!(server.post("/csc/v1/credentials/list", Some(renewed_access), json!({})).await.0, 200);
    // Revoking the refresh token takes the access tokens minted from it along.
    let response = http
        .post(format!("{}/csc/v1/auth/revoke", server.url))
        .bearer_auth(access)
        .json(&json!({"token": refresh, "token_type_hint": "refresh_token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    let (status, body) = server.post("/csc/v1/credentials/list", Some(renewed_access), json!({})).await;
    assert_error(status, &body, 401, "expired_token", "");
    let (status, _) = server.post("/csc/v1/auth/login", None, json!({"refresh_token": refresh})).await;
    assert_eq!(status, 400);
    // The access token minted together with the refresh token belongs to the same grant: gone too.
    assert_eq!(server.post("/csc/v1/credentials/list", Some(access), json!({})).await.0, 401);
    // Revoking an access token leaves other grants alone; access tokens also expire.
    let access = server.login("v1", &signer).await;
    let other = server.login("v1", &signer).await;
    let response = http
        .post(format!("{}/csc/v1/auth/revoke", server.url))
        .bearer_auth(&other)
        .json(&json!({"token": other}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    assert_eq!(server.post("/csc/v1/credentials/list", Some(&other), json!({})).await.0, 401);
    assert_eq!(server.post("/csc/v1/credentials/list", Some(&access), json!({})).await.0, 200);
    server.clock.advance(3601);
    let (status, body) = server.post("/csc/v1/credentials/list", Some(&access), json!({})).await;
    assert_error(status, &body, 401, "expired_token", "");
}

#[tokio::test]
async fn every_event_is_in_a_hash_chain_that_detects_tampering() {
    let server = TestServer::start().await;
    let signer = server.provision("audited", KeyKind::EcP256, 5, None).await;
    let token = server.login("v1", &signer).await;
    let hashes = digests(1, "audit");
    let sad = server.authorize_v1(&token, &signer, &hashes, 1).await;
    assert_eq!(sign(&server, &token, &signer.credential_id, &sad, &hashes).await.0, 200);
    assert_eq!(sign(&server, &token, &signer.credential_id, &sad, &hashes).await.0, 400);

    let services = server.services();
    let mut conn = services.conn().unwrap();
    let rows = rssp::db::audit::page(&mut conn, 0, 100).unwrap();
    let events: Vec<(String, String)> = rows.iter().map(|r| (r.event.clone(), r.outcome.clone())).collect();
    for expected in [
        ("ca.created", "success"),
        ("credential.issued", "success"),
        ("auth.login", "success"),
        ("credentials.authorize", "success"),
        ("signatures.signHash", "success"),
        ("signatures.signHash", "refused"),
    ] {
        assert!(events.contains(&(expected.0.to_string(), expected.1.to_string())), "{expected:?} in {events:?}");
    }
    assert_eq!(
        rssp::audit::verify(&mut conn).unwrap(),
        rssp::audit::ChainReport::Intact { records: rows.len() as i64 }
    );
    // Quietly rewriting a record breaks the chain at that record.
    let target = rows.iter().find(|r| r.event == "signatures.signHash").unwrap().seq;
    diesel::sql_query(format!("UPDATE audit_log SET detail = 'nothing happened' WHERE seq = {target}"))
        .execute(&mut *conn)
        .unwrap();
    match rssp::audit::verify(&mut conn).unwrap() {
        rssp::audit::ChainReport::Broken { seq, .. } => assert_eq!(seq, target),
        other => panic!("tampering not detected: {other:?}"),
    }
}

/// A node that has seen a token valid checks it again, against the store, in the same blocking call as
/// the use case (it only reads the body first). A token revoked since, here by another node sharing the
/// store (the row written directly, as that node would), signs nothing and spends nothing, in both
/// dialects; a token expired since is refused before its body is read.
#[tokio::test]
async fn a_token_revoked_elsewhere_after_this_node_saw_it_signs_nothing() {
    let server = TestServer::start().await;
    let signer = server.provision("seen", KeyKind::EcP256, 5, None).await;
    let hashes = digests(1, "seen");
    for version in ["v1", "v2"] {
        let token = server.login(version, &signer).await;
        // Seen valid by this node: the list and the authorisation run with it.
        assert_eq!(server.post(&format!("/csc/{version}/credentials/list"), Some(&token), json!({})).await.0, 200);
        let sad = server.authorize_v1(&server.login("v1", &signer).await, &signer, &hashes, 1).await;
        let revoked = {
            let mut conn = server.services().conn().unwrap();
            rssp::db::tokens::revoke(&mut conn, &rssp::domain::secrets::token_digest(&token)).unwrap();
            rssp::db::sads::find(&mut conn, &rssp::domain::secrets::token_digest(&sad)).unwrap().unwrap().used
        };
        assert_eq!(revoked, 0);
        // Seen valid, so its body is read first: a malformed one is judged before the token is checked.
        let path = format!("/csc/{version}/signatures/signHash");
        assert_eq!(malformed(&server, &path, &token).await, 400, "a seen token's body is read before the check");
        let body = match version {
            "v1" => {
                json!({"credentialID": signer.credential_id, "SAD": sad, "hash": b64_all(&hashes), "signAlgo": ES256})
            }
            _ => {
                json!({"credentialID": signer.credential_id, "SAD": sad, "hashes": b64_all(&hashes), "signAlgo": ES256})
            }
        };
        let (status, answer) = server.post(&format!("/csc/{version}/signatures/signHash"), Some(&token), body).await;
        assert_error(status, &answer, 401, "expired_token", "");
        for path in ["credentials/list", "credentials/info", "auth/revoke"] {
            let body = json!({"credentialID": signer.credential_id, "token": token});
            let (status, answer) = server.post(&format!("/csc/{version}/{path}"), Some(&token), body).await;
            assert_error(status, &answer, 401, "expired_token", "");
        }
        // Refused once, it is no longer taken as seen: checked before the body again.
        assert_eq!(malformed(&server, &path, &token).await, 401, "a refused token is checked before its body again");
        // Nothing was spent: the SAD still signs, once, with a token that is valid.
        let fresh = server.login("v1", &signer).await;
        let (status, answer) = sign(&server, &fresh, &signer.credential_id, &sad, &hashes).await;
        assert_eq!(status, 200, "{answer}");
    }
    // Expired since it was seen: refused before the body, whatever the body holds.
    let token = server.login("v1", &signer).await;
    assert_eq!(server.post("/csc/v1/credentials/list", Some(&token), json!({})).await.0, 200);
    server.clock.advance(3601);
    let status = malformed(&server, "/csc/v1/signatures/signHash", &token).await;
    assert_eq!(status, 401, "an expired token is checked before its body");
}

/// `credentials/authorize` reads the caller's token with the credential and the factor, in one statement:
/// a token this node saw valid and another node revoked since is refused there (401) before anything is
/// judged, in both dialects, and the code it carried is not used up: the same code then authorises with a
/// valid token. A credential id too long to look up is judged after the token too (401, not 400).
#[tokio::test]
async fn an_authorisation_with_a_token_revoked_elsewhere_uses_no_code() {
    let server = TestServer::start().await;
    let signer = server.provision("seen-authorize", KeyKind::EcP256, 5, None).await;
    let hashes = digests(1, "seen-authorize");
    for version in ["v1", "v2"] {
        let token = server.login(version, &signer).await;
        let revoke = |token: &str| {
            let mut conn = server.services().conn().unwrap();
            rssp::db::tokens::revoke(&mut conn, &rssp::domain::secrets::token_digest(token)).unwrap();
        };
        let body = |otp: &str, id: &str| match version {
            "v1" => json!({"credentialID": id, "numSignatures": 1, "hash": b64_all(&hashes), "OTP": otp}),
            _ => json!({"credentialID": id, "numSignatures": 1, "hashes": b64_all(&hashes),
                        "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1", "authData": [{"id": "OTP", "value": otp}]}),
        };
        let path = format!("/csc/{version}/credentials/authorize");
        assert_eq!(server.post(&format!("/csc/{version}/credentials/list"), Some(&token), json!({})).await.0, 200);
        revoke(&token);
        let otp = server.next_otp(&signer);
        let (status, answer) = server.post(&path, Some(&token), body(&otp, &signer.credential_id)).await;
        assert_error(status, &answer, 401, "expired_token", "");
        // The code was not used: a valid token authorises with it.
        let fresh = server.login(version, &signer).await;
        let (status, answer) = server.post(&path, Some(&fresh), body(&otp, &signer.credential_id)).await;
        assert_eq!(status, 200, "{answer}");
        // Seen, then revoked: an id too long to look up is still the token's refusal first.
        assert_eq!(server.post(&format!("/csc/{version}/credentials/list"), Some(&fresh), json!({})).await.0, 200);
        revoke(&fresh);
        let long_id = "x".repeat(300);
        let (status, answer) = server.post(&path, Some(&fresh), body(&server.next_otp(&signer), &long_id)).await;
        assert_error(status, &answer, 401, "expired_token", "");
    }
}

/// A token checked before the body was read, and revoked by another node while the body arrives, is
/// judged again by the use case's first statement (which reads it with the credential and the SAD or
/// factor): signHash and authorize refuse it (401) and write nothing (no audit record, the SAD not spent,
/// the code not used), and both still work afterwards with a valid token.
#[tokio::test]
async fn a_token_revoked_while_its_body_arrives_is_refused_by_the_use_case() {
    let server = TestServer::start().await;
    let signer = server.provision("mid-body", KeyKind::EcP256, 5, None).await;
    let hashes = digests(1, "mid-body");
    let sad = server.authorize_v1(&server.login("v1", &signer).await, &signer, &hashes, 1).await;
    let otp = server.next_otp(&signer);
    let id = &signer.credential_id;
    let sign = json!({"credentialID": id, "SAD": sad, "hash": b64_all(&hashes), "signAlgo": ES256});
    let other = digests(1, "mid-body-other");
    let authorize = json!({"credentialID": id, "numSignatures": 1, "hash": b64_all(&other), "OTP": otp});
    let records = || match rssp::audit::verify(&mut server.services().conn().unwrap()).unwrap() {
        rssp::audit::ChainReport::Intact { records } => records,
        broken => panic!("{broken:?}"),
    };
    for (path, body) in [("/csc/v1/signatures/signHash", &sign), ("/csc/v1/credentials/authorize", &authorize)] {
        // Issued by another node: this one has not seen it, so it is checked before the body is read.
        let token = rssp::domain::secrets::new_token();
        let digest = rssp::domain::secrets::token_digest(&token);
        let row = rssp::db::tokens::TokenRow {
            digest: digest.clone(),
            user_id: signer.user_id.clone(),
            kind: rssp::db::tokens::ACCESS.into(),
            refresh_digest: None,
            expires_at: server.now() + 3600,
            revoked: false,
            client_id: None,
        };
        rssp::db::tokens::insert(&mut server.services().conn().unwrap(), &row).unwrap();
        assert!(!server.services().has_seen_token(&token));
        let before = records();
        let addr = server.url.trim_start_matches("http://").to_string();
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let body = body.to_string();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        for _ in 0..1000 {
            if server.services().has_seen_token(&token) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(server.services().has_seen_token(&token), "checked before the body");
        rssp::db::tokens::revoke(&mut server.services().conn().unwrap(), &digest).unwrap();
        stream.write_all(body.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 401"), "{path}: {answer}");
        assert!(answer.contains("expired_token"), "{path}: {answer}");
        assert_eq!(records(), before, "{path}: a refused caller writes no record");
    }
    // Nothing was spent: the SAD signs once, and the code authorises, with a valid token.
    let fresh = server.login("v1", &signer).await;
    let (status, answer) = server.post("/csc/v1/signatures/signHash", Some(&fresh), sign).await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = server.post("/csc/v1/credentials/authorize", Some(&fresh), authorize).await;
    assert_eq!(status, 200, "{answer}");
}

/// POSTs a body that is not JSON with the token; the status.
async fn malformed(server: &TestServer, path: &str, token: &str) -> u16 {
    let request = server.http.post(format!("{}{path}", server.url)).bearer_auth(token);
    let request = request.header("content-type", "application/json").body("{not json");
    request.send().await.unwrap().status().as_u16()
}

/// Runs `requests` while the ledger's turn is held until `n` writes wait, so that they are
/// written in one batch (on SQLite; on PostgreSQL, which writes each alone, they simply race). How many
/// waited together (`n` when batched).
async fn in_one_batch<T>(server: &TestServer, n: usize, requests: impl std::future::Future<Output = T>) -> (T, usize) {
    let ledger = &server.services().ledger;
    let batched = ledger.batched();
    let turn = batched.then(|| ledger.hold_turn());
    let release = async move {
        for _ in 0..1000 {
            if !batched || ledger.queued() == n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let queued = if batched { ledger.queued() } else { n };
        drop(turn);
        queued
    };
    tokio::join!(requests, release)
}

/// Concurrent signHash requests on one credential are written together (the ledger, on SQLite),
/// and each is judged as if alone: with a quota of 4 and 8 requests at once, each with a SAD of its own, exactly 4
/// sign, the 4 refused leave their SADs exactly as they were (budget and hashes), the audit chain stays
/// intact, and each success's audit record carries its own request's id.
#[tokio::test]
async fn concurrent_signatures_spend_the_quota_exactly_once_and_a_refusal_leaves_its_sad_untouched() {
    let server = TestServer::start().await;
    let signer = server.provision_with_quota("ledger", KeyKind::EcP256, 5, None, Some(4)).await;
    let token = server.login("v1", &signer).await;
    let mut sads = Vec::new();
    for i in 0..8 {
        let hashes = digests(2, &format!("ledger-{i}"));
        sads.push((server.authorize_v1(&token, &signer, &hashes, 2).await, hashes));
    }
    let attempts = sads.iter().enumerate().map(|(i, (sad, hashes))| {
        let hash = vec![hashes[0].clone()];
        let request_id = format!("ledger-request-{i}");
        let (server, token, id) = (&server, token.clone(), signer.credential_id.clone());
        async move {
            let body = json!({"credentialID": id, "SAD": sad, "hash": b64_all(&hash), "signAlgo": ES256});
            let response = server
                .http
                .post(format!("{}/csc/v1/signatures/signHash", server.url))
                .bearer_auth(&token)
                .header("x-request-id", &request_id)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap(), request_id)
        }
    });
    // Written in one batch on SQLite (see `in_one_batch`).
    let (answers, queued) = in_one_batch(&server, 8, futures::future::join_all(attempts)).await;
    assert_eq!(queued, 8, "all eight reservations were queued together");
    let signed: Vec<&String> = answers.iter().filter(|(status, _, _)| *status == 200).map(|(_, _, id)| id).collect();
    assert_eq!(signed.len(), 4, "exactly the quota signs: {answers:?}");
    for (status, body, _) in answers.iter().filter(|(status, _, _)| *status != 200) {
        assert_error(*status, body, 400, "invalid_request", "quota exhausted");
    }

    let mut conn = server.services().conn().unwrap();
    for ((status, _, _), (sad, hashes)) in answers.iter().zip(&sads) {
        let row = rssp::db::sads::find(&mut conn, &rssp::domain::secrets::token_digest(sad)).unwrap().unwrap();
        let encoded = rssp::domain::sad::encode_hashes;
        if *status == 200 {
            assert_eq!((row.used, row.hashes), (1, encoded(&hashes[1..])), "a signature spends its hash");
        } else {
            assert_eq!((row.used, row.hashes), (0, encoded(hashes)), "a refusal leaves its SAD as it was");
        }
    }
    let records = rssp::db::audit::page(&mut conn, 0, 1000).unwrap();
    let mut recorded: Vec<String> = records
        .iter()
        .filter(|r| r.event == "signatures.signHash" && r.outcome == "success")
        .filter_map(|r| r.request_id.clone())
        .collect();
    recorded.sort();
    let mut signed: Vec<String> = signed.into_iter().cloned().collect();
    signed.sort();
    assert_eq!(recorded, signed, "each success is recorded with its own request's id");
    assert_eq!(
        rssp::audit::verify(&mut conn).unwrap(),
        rssp::audit::ChainReport::Intact { records: records.len() as i64 }
    );
}

/// Concurrent authorisations are written together too (on SQLite, with signatures in the same batch), and
/// each code is judged as if alone: four requests with one code, queued with a signature of another
/// person, get exactly one SAD; the others are refused as a replay and leave no SAD; the signature
/// is written; the audit chain stays intact with one authorisation and one signature in it.
#[tokio::test]
async fn concurrent_authorizations_with_one_code_issue_one_sad_even_in_one_batch() {
    let server = TestServer::start().await;
    let signer = server.provision("one-code", KeyKind::EcP256, 5, None).await;
    let other = server.provision("other-signer", KeyKind::EcP256, 5, None).await;
    let token = server.login("v1", &signer).await;
    let other_token = server.login("v1", &other).await;
    let other_hashes = digests(1, "other");
    let other_sad = server.authorize_v1(&other_token, &other, &other_hashes, 1).await;
    let otp = server.next_otp(&signer);
    let authorizations = (0..4).map(|i| {
        let hashes = digests(1, &format!("one-code-{i}"));
        let body =
            json!({"credentialID": signer.credential_id, "numSignatures": 1, "hash": b64_all(&hashes), "OTP": otp});
        let (server, token) = (&server, token.clone());
        async move { server.post("/csc/v1/credentials/authorize", Some(&token), body).await }
    });
    let signature = server.post(
        "/csc/v1/signatures/signHash",
        Some(&other_token),
        json!({"credentialID": other.credential_id, "SAD": other_sad, "hash": b64_all(&other_hashes), "signAlgo": ES256}),
    );
    let records_before = rssp::db::audit::page(&mut server.services().conn().unwrap(), 0, 1000).unwrap().len();
    let ((answers, signed), queued) =
        in_one_batch(&server, 5, futures::future::join(futures::future::join_all(authorizations), signature)).await;
    assert_eq!(queued, 5, "the four authorisations and the signature were queued together");
    assert_eq!(signed.0, 200, "the other person's signature is written in the same batch: {}", signed.1);
    let issued: Vec<&Value> = answers.iter().filter(|(status, _)| *status == 200).map(|(_, body)| body).collect();
    assert_eq!(issued.len(), 1, "one code, one SAD: {answers:?}");
    for (status, body) in answers.iter().filter(|(status, _)| *status != 200) {
        assert_error(*status, body, 400, "invalid_otp", "already been used");
    }
    // The one SAD signs; the refusals left none behind (the SAD table holds that one and the other person's).
    let sad = issued[0]["SAD"].as_str().unwrap();
    let mut conn = server.services().conn().unwrap();
    let hashes: Vec<Vec<u8>> =
        (0..4).map(|i| digests(1, &format!("one-code-{i}"))).find(|h| sad_binds(&mut conn, sad, h)).unwrap();
    let (status, body) = server
        .post(
            "/csc/v1/signatures/signHash",
            Some(&token),
            json!({"credentialID": signer.credential_id, "SAD": sad, "hash": b64_all(&hashes), "signAlgo": ES256}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // An update that changes nothing counts the rows it matches.
    let sads_of_signer = diesel::sql_query(format!(
        "UPDATE sads SET revoked = revoked WHERE credential_id = '{}'",
        signer.credential_id
    ))
    .execute(&mut *conn)
    .unwrap();
    assert_eq!(sads_of_signer, 1, "the replays stored no SAD");
    let records = rssp::db::audit::page(&mut conn, 0, 1000).unwrap();
    let new = &records[records_before..];
    let successes = |event: &str| new.iter().filter(|r| r.event == event && r.outcome == "success").count();
    assert_eq!((successes("credentials.authorize"), successes("signatures.signHash")), (1, 2));
    assert_eq!(
        rssp::audit::verify(&mut conn).unwrap(),
        rssp::audit::ChainReport::Intact { records: records.len() as i64 }
    );
}

/// Whether the SAD was issued for exactly these hashes.
fn sad_binds(conn: &mut rssp::db::DbConnection, sad: &str, hashes: &[Vec<u8>]) -> bool {
    let row = rssp::db::sads::find(conn, &rssp::domain::secrets::token_digest(sad)).unwrap().unwrap();
    row.hashes == rssp::domain::sad::encode_hashes(hashes)
}

/// Wrong codes queued in one batch count toward the lock-out one after the other, and a right code queued
/// behind them finds the factor locked: the counters a refusal writes are seen by the next request in the
/// same transaction and committed with it.
#[tokio::test]
async fn wrong_codes_in_one_batch_lock_the_factor_before_a_right_code_queued_behind_them() {
    let (server, signer, token) = server_locking_after_three("batch-lock").await;
    let hashes = digests(1, "batch-lock");
    let attempt = |otp: String| authorize_with(&server, &token, &signer, &hashes, otp);
    let right = server.next_otp(&signer);
    let wrong = futures::future::join_all((0..3).map(|_| attempt("000000".into())));
    let ledger = &server.services().ledger;
    let (wrong, (status, body)) = if ledger.batched() {
        // The three wrong codes queue first, then the right one: one batch, in that order.
        let turn = ledger.hold_turn();
        let right_behind = async {
            assert!(wait_until(|| ledger.queued() == 3).await, "the three wrong codes queued first");
            attempt(right.clone()).await
        };
        let release = async {
            wait_until(|| ledger.queued() == 4).await;
            assert_eq!(ledger.queued(), 4, "all four queued together");
            drop(turn);
        };
        let (wrong, right, ()) = tokio::join!(wrong, right_behind, release);
        (wrong, right)
    } else {
        (wrong.await, attempt(right.clone()).await)
    };
    let mut refusals: Vec<String> = wrong.iter().map(|(_, body)| body["error_description"].to_string()).collect();
    refusals.sort();
    assert!(wrong.iter().all(|(status, _)| *status == 400), "{wrong:?}");
    assert_eq!(refusals.iter().filter(|d| d.contains("OTP locked")).count(), 1, "the third failure locks: {wrong:?}");
    assert_error(status, &body, 400, "invalid_request", "OTP locked");
    // The lock was committed: the next right code is refused too, until the lock-out time has passed.
    let (status, body) = attempt(server.next_otp(&signer)).await;
    assert_error(status, &body, 400, "invalid_request", "OTP locked");
    server.clock.advance(600);
    let (status, body) = attempt(server.next_otp(&signer)).await;
    assert_eq!(status, 200, "unlocked after the lock-out time: {body}");
}

/// Polls `ready` (every 10 ms, at most 10 s); whether it became true.
async fn wait_until(ready: impl Fn() -> bool) -> bool {
    for _ in 0..1000 {
        if ready() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

/// A server whose factor locks after three wrong codes, for 600 s; a signer on it and its v1 token.
async fn server_locking_after_three(name: &str) -> (TestServer, Signer, String) {
    let server = TestServer::start_with(|c| {
        c.security.otp_max_failures = 3;
        c.security.otp_lockout_secs = 600;
    })
    .await;
    let signer = server.provision(name, KeyKind::EcP256, 5, None).await;
    let token = server.login("v1", &signer).await;
    (server, signer, token)
}

/// A v1 `credentials/authorize` of one signature over `hashes` with `otp`.
async fn authorize_with(
    server: &TestServer,
    token: &str,
    signer: &Signer,
    hashes: &[Vec<u8>],
    otp: String,
) -> (u16, Value) {
    let body = json!({"credentialID": signer.credential_id, "numSignatures": 1, "hash": b64_all(hashes), "OTP": otp});
    server.post("/csc/v1/credentials/authorize", Some(token), body).await
}

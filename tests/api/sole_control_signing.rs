//! Sole control on the signing path (issue 7): a SAD signs only the hash occurrences the person
//! approved with a code, renewals never add hashes or outlive the code, password guessing is counted
//! once for every login, a flood cannot stall the service, and what the person relies on from
//! pyHanko (RSASSA-PSS with the longest salt) works.

use crate::common::journey::PERSON_PASSWORD;
use crate::common::*;
use rssp::domain::KeyKind;
use serde_json::{json, Value};

async fn extend(server: &TestServer, token: &str, credential: &str, sad: &str, hashes: &[Vec<u8>]) -> (u16, Value) {
    server
        .post(
            "/csc/v1/credentials/extendTransaction",
            Some(token),
            json!({"credentialID": credential, "SAD": sad, "hash": b64_all(hashes)}),
        )
        .await
}

#[tokio::test]
async fn extend_transaction_never_binds_a_hash_the_person_did_not_approve() {
    let server = TestServer::start().await;
    let signer = server.provision("extender", KeyKind::EcP256, 5, None).await;
    let token = server.login("v1", &signer).await;
    let approved = digests(1, "approved");
    let sad = server.authorize_v1(&token, &signer, &approved, 5).await;

    // A hash nobody approved with a code: refused, and the SAD is unchanged.
    let unseen = digests(1, "never shown to the person");
    let (status, body) = extend(&server, &token, &signer.credential_id, &sad, &unseen).await;
    assert_error(status, &body, 400, "invalid_request", "not authorized by the SAD");
    let (status, body) =
        extend(&server, &token, &signer.credential_id, &sad, &[approved[0].clone(), unseen[0].clone()]).await;
    assert_error(status, &body, 400, "invalid_request", "not authorized by the SAD");

    // Renewing for the approved hash works; the renewed SAD signs it and nothing else.
    let (status, body) = extend(&server, &token, &signer.credential_id, &sad, &approved).await;
    assert_eq!(status, 200, "{body}");
    let renewed = body["SAD"].as_str().unwrap().to_string();
    let (status, body) = sign(&server, &token, &signer.credential_id, &renewed, &unseen).await;
    assert_error(status, &body, 400, "invalid_request", "not authorized by the SAD");
    let (status, body) = sign(&server, &token, &signer.credential_id, &sad, &approved).await;
    assert_error(status, &body, 400, "invalid_request", "SAD");
    let (status, body) = sign(&server, &token, &signer.credential_id, &renewed, &approved).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_chain_of_renewals_ends_a_fixed_time_after_the_code() {
    let server = TestServer::start_with(|c| {
        c.security.sad_lifetime_secs = 300;
        c.security.sad_max_lifetime_secs = 900;
    })
    .await;
    let signer = server.provision("chain", KeyKind::EcP256, 5, None).await;
    let token = server.login("v1", &signer).await;
    let hashes = digests(2, "chain");
    let mut sad = server.authorize_v1(&token, &signer, &hashes, 2).await;
    let started = server.now();
    // Judged on the stored rows: the clock also moves with real time, so `expiresIn` read against the
    // test's clock after the answer may be a second off.
    let stored = |sad: &str| {
        let mut conn = server.services().conn().unwrap();
        rssp::db::sads::find(&mut conn, &rssp::domain::secrets::token_digest(sad)).unwrap().unwrap()
    };
    let chain_end = stored(&sad).chain_expires_at;
    assert!(chain_end <= started + 900, "the chain ends 900 s after the code");
    for _ in 0..3 {
        server.clock.advance(250);
        let (status, body) = extend(&server, &token, &signer.credential_id, &sad, &[]).await;
        assert_eq!(status, 200, "{body}");
        sad = body["SAD"].as_str().unwrap().to_string();
        let renewed = stored(&sad);
        assert_eq!(renewed.chain_expires_at, chain_end, "the chain's end carries over");
        assert!(renewed.expires_at <= chain_end, "a renewal never outlives the code: {body}");
    }
    // 150 s left of the chain: the renewed SAD dies with it, and so does any further renewal.
    server.clock.advance(151);
    let (status, body) = extend(&server, &token, &signer.credential_id, &sad, &[]).await;
    assert_error(status, &body, 400, "invalid_request", "SAD expired");
    let (status, body) = sign(&server, &token, &signer.credential_id, &sad, &hashes[..1]).await;
    assert_error(status, &body, 400, "invalid_request", "SAD expired");
}

#[tokio::test]
async fn each_authorised_hash_occurrence_signs_once() {
    let server = TestServer::start().await;
    let signer = server.provision("multiset", KeyKind::EcP256, 5, None).await;
    let token = server.login("v1", &signer).await;
    let h = sha256(b"one document");

    // H authorised once, numSignatures 3: [H, H, H] is refused as a whole, nothing is spent.
    let sad = server.authorize_v1(&token, &signer, std::slice::from_ref(&h), 3).await;
    let (status, body) = sign(&server, &token, &signer.credential_id, &sad, &[h.clone(), h.clone(), h.clone()]).await;
    assert_error(status, &body, 400, "invalid_request", "not authorized by the SAD");
    let (status, body) = sign(&server, &token, &signer.credential_id, &sad, &[h.clone(), h.clone()]).await;
    assert_error(status, &body, 400, "invalid_request", "not authorized by the SAD");
    let (status, body) = sign(&server, &token, &signer.credential_id, &sad, std::slice::from_ref(&h)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["signatures"].as_array().unwrap().len(), 1);
    // Spent: the same hash again is refused although the budget has room.
    let (status, body) = sign(&server, &token, &signer.credential_id, &sad, std::slice::from_ref(&h)).await;
    assert_error(status, &body, 400, "invalid_request", "not authorized by the SAD");
    // A renewal cannot bring the spent occurrence back.
    let (status, body) = extend(&server, &token, &signer.credential_id, &sad, std::slice::from_ref(&h)).await;
    assert_error(status, &body, 400, "invalid_request", "not authorized by the SAD");

    // H authorised twice signs twice (two identical documents are two approvals).
    let sad = server.authorize_v1(&token, &signer, &[h.clone(), h.clone()], 2).await;
    let (status, body) = sign(&server, &token, &signer.credential_id, &sad, &[h.clone(), h.clone()]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["signatures"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_replayed_code_is_refused_without_counting_as_a_guess() {
    let server = TestServer::start_with(|c| c.security.otp_max_failures = 3).await;
    let signer = server.provision("replayer", KeyKind::EcP256, 5, None).await;
    let token = server.login("v1", &signer).await;
    let hashes = digests(1, "replayed");
    let otp = server.next_otp(&signer);
    let body = json!({"credentialID": signer.credential_id, "numSignatures": 1, "hash": b64_all(&hashes), "OTP": otp});
    let (status, first) = server.post("/csc/v1/credentials/authorize", Some(&token), body.clone()).await;
    assert_eq!(status, 200, "{first}");
    for _ in 0..5 {
        let (status, again) = server.post("/csc/v1/credentials/authorize", Some(&token), body.clone()).await;
        assert_error(status, &again, 400, "invalid_otp", "already been used");
    }
    // Five replays with a limit of three wrong codes: the factor is not locked.
    let sad = server.authorize_v1(&token, &signer, &hashes, 1).await;
    let (status, body) = sign(&server, &token, &signer.credential_id, &sad, &hashes).await;
    assert_eq!(status, 200, "{body}");
}

/// pyHanko's `prefer_pss` asks for the longest salt RFC 8017 allows: 222 bytes for RSA-2048 with
/// SHA-256 (emLen 256 − hLen 32 − 2).
#[tokio::test]
async fn rsassa_pss_accepts_every_salt_length_rfc_8017_allows() {
    let server = TestServer::start().await;
    let signer = server.provision("pss", KeyKind::Rsa2048, 5, None).await;
    let token = server.login("v1", &signer).await;
    let (status, info) =
        server.post("/csc/v1/credentials/info", Some(&token), json!({"credentialID": signer.credential_id})).await;
    assert_eq!(status, 200, "{info}");
    let spki = {
        use der::{Decode, Encode};
        let cert = unb64(info["cert"]["certificates"][0].as_str().unwrap());
        let cert = x509_cert::Certificate::from_der(&cert).unwrap();
        cert.tbs_certificate().subject_public_key_info().to_der().unwrap()
    };
    // RSASSA-PSS-params: SHA-256, MGF1 with SHA-256, saltLength 222 (then 223, one too many).
    let max_salt = "MDWgDzANBglghkgBZQMEAgEFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgEFAKIEAgIA3g==";
    let too_long = "MDWgDzANBglghkgBZQMEAgEFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgEFAKIEAgIA3w==";
    let hash = sha256(b"pss with the longest salt");
    let sad = server.authorize_v1(&token, &signer, &[hash.clone(), hash.clone()], 2).await;
    let request = |params: &str| {
        json!({"credentialID": signer.credential_id, "SAD": sad, "hash": [b64(&hash)],
               "signAlgo": "1.2.840.113549.1.1.10", "signAlgoParams": params})
    };
    let (status, body) = server.post("/csc/v1/signatures/signHash", Some(&token), request(too_long)).await;
    assert_error(status, &body, 400, "invalid_request", "signAlgoParams");
    let (status, body) = server.post("/csc/v1/signatures/signHash", Some(&token), request(max_salt)).await;
    assert_eq!(status, 200, "{body}");
    use rsa::pkcs8::DecodePublicKey;
    let key = rsa::RsaPublicKey::from_public_key_der(&spki).unwrap();
    key.verify(
        rsa::pss::Pss::<sha2::Sha256>::new_with_salt(222),
        &hash,
        &unb64(body["signatures"][0].as_str().unwrap()),
    )
    .expect("PSS signature with a 222-byte salt verifies");
}

async fn csc_login(server: &TestServer, username: &str, password: &str) -> (u16, Value) {
    server.basic_login("v1", username, password, json!({})).await
}

#[tokio::test]
async fn one_race_free_lockout_for_csc_and_lifecycle_logins() {
    let server = TestServer::start().await;
    let person = server.enrol("guessed@example.org", "+38641000077").await;
    assert_eq!(person.password, PERSON_PASSWORD);

    // 15 parallel wrong passwords on CSC auth/login: at most 5 (the limit) are checked at all. The
    // answers are all alike (a lock must not tell that the account exists); the audit trail tells.
    let wrong: Vec<String> = (0..15).map(|i| format!("wrong guess {i}")).collect();
    let guesses = futures::future::join_all(wrong.iter().map(|w| csc_login(&server, &person.email, w))).await;
    for (status, body) in &guesses {
        assert_error(*status, body, 400, "authentication_error", "An error occurred during authentication process");
    }
    let refusals = |what: &'static str| {
        use diesel::prelude::*;
        use rssp::db::schema::audit_log;
        let mut conn = server.services().db.get().unwrap();
        audit_log::table
            .filter(audit_log::event.eq("auth.login"))
            .filter(audit_log::detail.like(format!("%{what}%")))
            .count()
            .get_result::<i64>(&mut *conn)
            .unwrap()
    };
    assert_eq!(refusals("authentication failed"), 5, "exactly the limit of passwords is checked");
    assert_eq!(refusals("logins locked"), 10);

    // The lock holds for the right password, on both APIs.
    let (status, body) = csc_login(&server, &person.email, &person.password).await;
    assert_error(status, &body, 400, "authentication_error", "An error occurred during authentication process");
    assert_eq!(refusals("logins locked"), 11);
    let (status, body) =
        server.post("/api/v1/login", None, json!({"email": person.email, "password": person.password})).await;
    assert_error(status, &body, 403, "access_denied", "Too many failed logins");

    // After the lock-out the right password works again, and clears the count.
    server.clock.advance(server.services().config.lifecycle.login_lockout_secs + 1);
    let (status, body) = csc_login(&server, &person.email, &person.password).await;
    assert_eq!(status, 200, "{body}");

    // Wrong passwords on the lifecycle login count toward the same lock as CSC ones.
    for i in 0..3 {
        let (status, _) = csc_login(&server, &person.email, &format!("csc wrong {i}")).await;
        assert_eq!(status, 400);
    }
    for i in 0..2 {
        let (status, _) =
            server.post("/api/v1/login", None, json!({"email": person.email, "password": format!("x{i}")})).await;
        assert_eq!(status, 400);
    }
    let (status, _) = csc_login(&server, &person.email, &person.password).await;
    assert_eq!(status, 400);
    assert_eq!(refusals("logins locked"), 12);
}

#[tokio::test]
async fn a_flood_of_bad_logins_does_not_stall_the_service() {
    let server = TestServer::start().await;
    let signer = server.provision("busy", KeyKind::EcP256, 5, None).await;
    let token = server.login("v1", &signer).await;
    let bad = (0..48).map(|i| {
        let server = &server;
        let username = if i % 3 == 0 { signer.username.clone() } else { format!("nobody-{i}") };
        async move { csc_login(server, &username, "not the password").await }
    });
    let lists = (0..8).map(|_| {
        let server = &server;
        let token = token.clone();
        async move { server.post("/csc/v1/credentials/list", Some(&token), json!({})).await }
    });
    let (bad, lists) = futures::future::join(futures::future::join_all(bad), futures::future::join_all(lists)).await;
    for (status, body) in &bad {
        assert_eq!(*status, 400, "a bad login is refused, never a 500 or a stall: {body}");
    }
    for (status, body) in &lists {
        assert_eq!(*status, 200, "a valid request is served during the flood: {body}");
    }
    // Every refusal was audited: one record per bad login.
    let mut conn = server.services().db.get().unwrap();
    use diesel::prelude::*;
    use rssp::db::schema::audit_log;
    let refusals: i64 = audit_log::table
        .filter(audit_log::event.eq("auth.login"))
        .filter(audit_log::outcome.eq("refused"))
        .count()
        .get_result(&mut *conn)
        .unwrap();
    assert_eq!(refusals, 48);
}

#[tokio::test]
async fn an_exhausted_pool_answers_503_with_retry_after() {
    let server = TestServer::start_with(|c| c.security.db_pool_wait_ms = 200).await;
    let signer = server.provision("waiting", KeyKind::EcP256, 5, None).await;
    let token = server.login("v1", &signer).await;
    let pool = &server.services().db;
    let held: Vec<_> = (0..pool.max_size()).map(|_| pool.get().unwrap()).collect();
    let response = server
        .http
        .post(format!("{}/csc/v1/credentials/list", server.url))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().get("retry-after").is_some(), "Retry-After is set");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    drop(held);
    let (status, body) = server.post("/csc/v1/credentials/list", Some(&token), json!({})).await;
    assert_eq!(status, 200, "{body}");
}

/// A signHash that finds every HSM session busy for longer than `hsm.session_wait_ms` is answered like
/// a full database pool (503 with Retry-After, not a 500), and its SAD is refunded: the same hash signs
/// once the HSM is free.
#[tokio::test]
async fn a_busy_hsm_answers_sign_hash_with_503_and_refunds_the_sad() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let server = TestServer::start_with(|c| {
        c.hsm.sessions = 1;
        c.hsm.session_wait_ms = 1;
    })
    .await;
    let signer = server.provision("hsm-busy", KeyKind::EcP256, 1, None).await;
    let token = server.login("v1", &signer).await;
    let h = sha256(b"signed while the HSM is busy");
    let sad = server.authorize_v1(&token, &signer, std::slice::from_ref(&h), 1).await;

    // Another thread keeps the one HSM session busy generating RSA keys (each takes many milliseconds)
    // until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let busy = {
        let (services, stop) = (server.services_shared(), stop.clone());
        std::thread::spawn(move || {
            let mut generated = 0;
            while !stop.load(Ordering::SeqCst) {
                services.keystore.generate(KeyKind::Rsa2048, "keeps-the-hsm-busy").unwrap();
                generated += 1;
            }
            generated
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let response = server
        .http
        .post(format!("{}/csc/v1/signatures/signHash", server.url))
        .bearer_auth(&token)
        .json(&json!({"credentialID": signer.credential_id, "SAD": sad, "hash": b64_all(std::slice::from_ref(&h)), "signAlgo": ES256}))
        .send()
        .await
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    assert!(busy.join().unwrap() >= 1);
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().get("retry-after").is_some(), "Retry-After is set");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");

    // The SAD and the quota were refunded: the hash signs now.
    let (status, body) = sign(&server, &token, &signer.credential_id, &sad, std::slice::from_ref(&h)).await;
    assert_eq!(status, 200, "{body}");
}

#[test]
fn the_access_log_carries_no_personal_data_from_query_strings() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = binary::serve(binary::rssp_command(dir.path()));
    let http = reqwest::blocking::Client::new();
    for path in
        ["/api/admin/v1/outbox?recipient=victim%40example.org", "/api/admin/v1/users?email=victim@example.org&x=1"]
    {
        let status = http.get(format!("{url}{path}")).send().unwrap().status();
        assert!(status.is_client_error(), "no operator key: refused ({status})");
    }
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("GET /api/admin/v1/users?email=…&x=…"), "the access log shows the request: {log}");
    assert!(!log.contains("victim"), "no address in the log: {log}");
}

//! CSC signing end to end: login, list, info, authorize with a TOTP code bound to the hashes, signHash;
//! every signature verified in software against the certificate the server returned.

use crate::common::pki::spki_of;
use crate::common::*;
use rssp::domain::KeyKind;
use serde_json::json;

fn verify_rsa_pkcs1(spki: &[u8], digest: &[u8], signature: &[u8]) {
    use rsa::pkcs8::DecodePublicKey;
    let key = rsa::RsaPublicKey::from_public_key_der(spki).unwrap();
    let scheme = match digest.len() {
        32 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
        48 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
        _ => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
    };
    key.verify(scheme, digest, signature).expect("RSA PKCS#1 v1.5 signature verifies");
}

async fn credential_certificate(server: &TestServer, token: &str, signer: &Signer, version: &str) -> serde_json::Value {
    let (status, info) = server
        .post(
            &format!("/csc/{version}/credentials/info"),
            Some(token),
            json!({"credentialID": signer.credential_id, "certificates": "chain", "certInfo": true}),
        )
        .await;
    assert_eq!(status, 200, "{info}");
    info
}

#[tokio::test]
async fn v1_rsa_batch_is_signed_and_verifies() {
    let server = TestServer::start().await;
    let signer = server.provision("alice", KeyKind::Rsa2048, 10, None).await;
    let token = server.login("v1", &signer).await;

    let (status, list) = server.post("/csc/v1/credentials/list", Some(&token), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(list["credentialIDs"], json!([signer.credential_id]));

    let info = credential_certificate(&server, &token, &signer, "v1").await;
    assert_eq!(info["key"]["status"], "enabled");
    assert_eq!(info["key"]["len"], 2048);
    assert!(info["key"]["algo"].as_array().unwrap().contains(&json!("1.2.840.113549.1.1.11")));
    assert_eq!(info["authMode"], "explicit");
    assert_eq!(info["SCAL"], "2");
    assert_eq!(info["OTP"]["type"], "offline");
    assert_eq!(info["OTP"]["provider"], "totp");
    assert!(info.get("PIN").is_none(), "no PIN object without a PIN");
    assert_eq!(info["multisign"], 10);
    let certs = info["cert"]["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 2, "end entity and issuing CA");
    assert!(info["cert"]["subjectDN"].as_str().unwrap().contains("CN=alice"));
    assert_eq!(info["cert"]["validFrom"].as_str().unwrap().len(), 15);
    let spki = spki_of(certs[0].as_str().unwrap());

    let hashes = digests(3, "v1-rsa");
    let sad = server.authorize_v1(&token, &signer, &hashes, 3).await;
    let (status, body) = server
        .post(
            "/csc/v1/signatures/signHash",
            Some(&token),
            json!({"credentialID": signer.credential_id, "SAD": sad, "hash": b64_all(&hashes),
                   "signAlgo": "1.2.840.113549.1.1.11", "hashAlgo": "2.16.840.1.101.3.4.2.1"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let signatures = body["signatures"].as_array().unwrap();
    assert_eq!(signatures.len(), 3);
    for (hash, signature) in hashes.iter().zip(signatures) {
        verify_rsa_pkcs1(&spki, hash, &unb64(signature.as_str().unwrap()));
    }
    // The budget is spent: the same SAD signs nothing more.
    let (status, body) =
        server.sign_v1(&token, &signer.credential_id, &sad, &hashes[..1], "1.2.840.113549.1.1.11").await;
    assert_error(status, &body, 400, "invalid_request", "SAD");
}

#[tokio::test]
async fn rsa_raw_digest_info_sha384_and_pss_verify() {
    let server = TestServer::start().await;
    let signer = server.provision("rachel", KeyKind::Rsa3072, 5, None).await;
    let token = server.login("v1", &signer).await;
    let info = credential_certificate(&server, &token, &signer, "v1").await;
    assert_eq!(info["key"]["len"], 3072);
    let spki = spki_of(info["cert"]["certificates"][0].as_str().unwrap());

    // rsaEncryption: the server builds the DigestInfo from hashAlgo (here SHA-384).
    let hash = sha384(b"raw rsa");
    let sad = server.authorize_v1(&token, &signer, std::slice::from_ref(&hash), 1).await;
    let (status, body) = server
        .post(
            "/csc/v1/signatures/signHash",
            Some(&token),
            json!({"credentialID": signer.credential_id, "SAD": sad, "hash": [b64(&hash)],
                   "signAlgo": "1.2.840.113549.1.1.1", "hashAlgo": "2.16.840.1.101.3.4.2.2"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    verify_rsa_pkcs1(&spki, &hash, &unb64(body["signatures"][0].as_str().unwrap()));

    // RSASSA-PSS with SHA-256, MGF1-SHA-256, salt 32, parameters as DER.
    let params = "MDSgDzANBglghkgBZQMEAgEFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgEFAKIDAgEg";
    let hash = sha256(b"pss");
    let sad = server.authorize_v1(&token, &signer, std::slice::from_ref(&hash), 1).await;
    let (status, body) = server
        .post(
            "/csc/v1/signatures/signHash",
            Some(&token),
            json!({"credentialID": signer.credential_id, "SAD": sad, "hash": [b64(&hash)],
                   "signAlgo": "1.2.840.113549.1.1.10", "signAlgoParams": params}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    use rsa::pkcs8::DecodePublicKey;
    let key = rsa::RsaPublicKey::from_public_key_der(&spki).unwrap();
    key.verify(
        rsa::pss::Pss::<sha2::Sha256>::new_with_salt(32),
        &hash,
        &unb64(body["signatures"][0].as_str().unwrap()),
    )
    .expect("PSS signature verifies");
}

#[tokio::test]
async fn ecdsa_p256_and_p384_return_der_signatures_that_verify() {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use p256::pkcs8::DecodePublicKey;
    let server = TestServer::start().await;
    for (name, kind, algo, curve) in [
        ("ec256", KeyKind::EcP256, "1.2.840.10045.4.3.2", "1.2.840.10045.3.1.7"),
        ("ec384", KeyKind::EcP384, "1.2.840.10045.4.3.3", "1.3.132.0.34"),
    ] {
        let signer = server.provision(name, kind, 5, None).await;
        let token = server.login("v1", &signer).await;
        let info = credential_certificate(&server, &token, &signer, "v1").await;
        assert_eq!(info["key"]["curve"], curve);
        let spki = spki_of(info["cert"]["certificates"][0].as_str().unwrap());
        let hash = if kind == KeyKind::EcP256 { sha256(name.as_bytes()) } else { sha384(name.as_bytes()) };
        let sad = server.authorize_v1(&token, &signer, std::slice::from_ref(&hash), 1).await;
        let (status, body) =
            server.sign_v1(&token, &signer.credential_id, &sad, std::slice::from_ref(&hash), algo).await;
        assert_eq!(status, 200, "{body}");
        let signature = unb64(body["signatures"][0].as_str().unwrap());
        if kind == KeyKind::EcP256 {
            let key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
            let sig = p256::ecdsa::Signature::from_der(&signature).expect("DER ECDSA-Sig-Value");
            key.verify_prehash(&hash, &sig).expect("P-256 signature verifies");
        } else {
            let key = p384::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
            let sig = p384::ecdsa::Signature::from_der(&signature).expect("DER ECDSA-Sig-Value");
            key.verify_prehash(&hash, &sig).expect("P-384 signature verifies");
        }
    }
}

#[tokio::test]
async fn v2_dialect_signs_with_auth_data_and_hashes() {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use p256::pkcs8::DecodePublicKey;
    let server = TestServer::start().await;
    let signer = server.provision("wallet", KeyKind::EcP256, 4, Some("4321")).await;
    let token = server.login("v2", &signer).await;

    let (status, info) = server.post("/csc/v2/info", None, json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(info["specs"], "2.0.0.2");
    assert!(info["signAlgorithms"]["algos"].as_array().unwrap().contains(&json!("1.2.840.10045.4.3.2")));
    assert!(info["signature_formats"].is_object() && info["conformance_levels"].is_array());

    let (status, list) = server
        .post("/csc/v2/credentials/list", Some(&token), json!({"credentialInfo": true, "certificates": "chain"}))
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["credentialIDs"], json!([signer.credential_id]));
    let described = &list["credentialInfos"][0];
    assert_eq!(described["credentialID"], json!(signer.credential_id));
    assert_eq!(described["auth"]["mode"], "explicit");
    assert_eq!(described["auth"]["expression"], "PIN AND OTP");
    assert_eq!(described["SCAL"], "2");
    let spki = spki_of(described["cert"]["certificates"][0].as_str().unwrap());

    let hashes = digests(2, "v2");
    let otp = server.next_otp(&signer);
    // A v1 field on a v2 route is not silently accepted.
    let (status, body) = server
        .post(
            "/csc/v2/credentials/authorize",
            Some(&token),
            json!({"credentialID": signer.credential_id, "numSignatures": 2, "hash": b64_all(&hashes), "OTP": otp}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_request", "hashes");
    // A wrong PIN is refused even with the right code.
    let (status, body) = server
        .post(
            "/csc/v2/credentials/authorize",
            Some(&token),
            json!({"credentialID": signer.credential_id, "numSignatures": 2, "hashes": b64_all(&hashes),
                   "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
                   "authData": [{"id": "PIN", "value": "0000"}, {"id": "OTP", "value": otp}]}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_authentication_data", "authentication data");
    let otp = server.next_otp(&signer);
    let (status, body) = server
        .post(
            "/csc/v2/credentials/authorize",
            Some(&token),
            json!({"credentialID": signer.credential_id, "numSignatures": 2, "hashes": b64_all(&hashes),
                   "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
                   "authData": [{"id": "PIN", "value": "4321"}, {"id": "OTP", "value": otp}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let sad = body["SAD"].as_str().unwrap().to_string();
    let (status, body) = server
        .post(
            "/csc/v2/signatures/signHash",
            Some(&token),
            json!({"credentialID": signer.credential_id, "SAD": sad, "hashes": b64_all(&hashes),
                   "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1", "signAlgo": "1.2.840.10045.4.3.2"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
    for (hash, signature) in hashes.iter().zip(body["signatures"].as_array().unwrap()) {
        let sig = p256::ecdsa::Signature::from_der(&unb64(signature.as_str().unwrap())).unwrap();
        key.verify_prehash(hash, &sig).expect("signature verifies");
    }
}

#[tokio::test]
async fn extend_transaction_renews_approved_hashes_and_retires_the_old_sad() {
    let server = TestServer::start().await;
    let signer = server.provision("seq", KeyKind::EcP256, 2, None).await;
    let token = server.login("v1", &signer).await;
    let first = sha256(b"first page");
    let second = sha256(b"second page");
    let sad = server.authorize_v1(&token, &signer, &[first.clone(), second.clone()], 2).await;
    let sign = |sad: String, hash: Vec<u8>| {
        let (server, token, id) = (&server, token.clone(), signer.credential_id.clone());
        async move { server.sign_v1(&token, &id, &sad, &[hash], "1.2.840.10045.4.3.2").await }
    };
    let (status, _) = sign(sad.clone(), first.clone()).await;
    assert_eq!(status, 200);
    // A later hash the person never approved cannot be bound by a renewal (issue 7: SCAL2).
    let third = sha256(b"third page");
    let (status, body) = server
        .post(
            "/csc/v1/credentials/extendTransaction",
            Some(&token),
            json!({"credentialID": signer.credential_id, "SAD": sad, "hash": [b64(&third)]}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_request", "Hash is not authorized by the SAD.");
    let (status, body) = server
        .post(
            "/csc/v1/credentials/extendTransaction",
            Some(&token),
            json!({"credentialID": signer.credential_id, "SAD": sad, "hash": [b64(&second)]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let new_sad = body["SAD"].as_str().unwrap().to_string();
    let (status, body) = sign(sad.clone(), second.clone()).await;
    assert_error(status, &body, 400, "invalid_request", "Invalid parameter SAD");
    let (status, body) = sign(new_sad.clone(), second.clone()).await;
    assert_eq!(status, 200, "{body}");
    // numSignatures was 2: both are spent.
    let (status, body) = sign(new_sad, first).await;
    assert_error(status, &body, 400, "invalid_request", "SAD");
}

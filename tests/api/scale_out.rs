//! Several nodes on one database and one HSM token (PostgreSQL when the suite runs on it, else one
//! SQLite file): a key one node makes signs on the others at once, and a key one node destroys is
//! never used by another through the handle it knew.

use crate::common::*;

use der::{Decode, Encode};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::pkcs8::DecodePublicKey;
use rssp::domain::KeyKind;
use rssp::hsm::KeyId;

/// A second node: the database and the token of `first`, its own process state (key index, sessions).
/// On SoftHSM it loads a copy of the library, which the dynamic loader loads as a separate instance: its
/// own handle numbers and its own login, as in another process. (A second implementation is shared.)
async fn second_node(first: &TestServer) -> TestServer {
    second_node_with(first, |_| {}).await
}

/// A second node with settings of its own.
async fn second_node_with(first: &TestServer, adjust: impl FnOnce(&mut rssp::config::Config)) -> TestServer {
    let config = &first.services().config;
    let (database_url, token_label) = (config.database_url.clone(), config.hsm.token_label.clone());
    let copy = match test_pkcs11() {
        TestPkcs11::SoftHsm => {
            let copy = std::env::temp_dir()
                .join(format!("rssp-second-node-{}.so", hex::encode(rssp::domain::secrets::random_bytes::<6>())));
            std::fs::copy(&config.hsm.module, &copy).unwrap();
            Some(copy)
        }
        TestPkcs11::Other { .. } => None,
    };
    let module = copy.clone();
    let node = TestServer::start_with(move |c| {
        c.database_url = database_url;
        c.hsm.token_label = token_label;
        if let Some(module) = module {
            c.hsm.module = module;
        }
        adjust(c);
    })
    .await;
    // Loaded: the copy on disk is no longer needed.
    if let Some(copy) = copy {
        std::fs::remove_file(copy).unwrap();
    }
    node
}

/// The credential's row as the database holds it.
fn credential(server: &TestServer, id: &str) -> rssp::db::credentials::CredentialRow {
    let mut conn = server.services().conn().unwrap();
    rssp::db::credentials::by_id(&mut conn, id).unwrap().expect("credential row")
}

/// The SAD's row as the database holds it.
fn sad_row(server: &TestServer, sad: &str) -> rssp::db::sads::SadRow {
    let mut conn = server.services().conn().unwrap();
    rssp::db::sads::find(&mut conn, &rssp::domain::secrets::token_digest(sad)).unwrap().expect("SAD row")
}

/// Checks each P-256 signature over its hash against the credential's certificate.
fn assert_signed_by(row: &rssp::db::credentials::CredentialRow, hashes: &[Vec<u8>], signatures: &serde_json::Value) {
    let certificate = x509_cert::Certificate::from_der(&row.certificate).unwrap();
    let spki = certificate.tbs_certificate().subject_public_key_info().to_der().unwrap();
    let key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
    let signatures = signatures.as_array().expect("signatures");
    assert_eq!(signatures.len(), hashes.len());
    for (hash, signature) in hashes.iter().zip(signatures) {
        let signature = p256::ecdsa::Signature::from_der(&unb64(signature.as_str().unwrap())).unwrap();
        key.verify_prehash(hash, &signature).expect("signed with the credential's key");
    }
}

#[tokio::test]
async fn a_credential_provisioned_on_one_node_signs_on_another_at_once() {
    let a = TestServer::start().await;
    let b = second_node(&a).await;
    // Node A read every key of the token when it started; this one is made afterwards, on node B.
    let signer = b.provision("made-on-b", KeyKind::EcP256, 5, None).await;
    let searches = a.services().keystore.key_searches();

    let token = a.login("v1", &signer).await;
    for round in 0..2 {
        let hashes = digests(2, &format!("node-b-{round}"));
        let sad = a.authorize_v1(&token, &signer, &hashes, 2).await;
        let (status, body) = sign(&a, &token, &signer.credential_id, &sad, &hashes).await;
        assert_eq!(status, 200, "{body}");
        assert_signed_by(&credential(&a, &signer.credential_id), &hashes, &body["signatures"]);
    }
    // Node A searched the token for the new key once, and knew it from then on; it never read every
    // key again for it.
    let after = a.services().keystore.key_searches();
    assert_eq!((after.all, after.one), (searches.all, searches.one + 1));

    // And the other way round: a key node A makes signs on node B.
    let other = a.provision("made-on-a", KeyKind::EcP256, 5, None).await;
    let token = b.login("v1", &other).await;
    let hashes = digests(1, "node-a");
    let sad = b.authorize_v1(&token, &other, &hashes, 1).await;
    let (status, body) = sign(&b, &token, &other.credential_id, &sad, &hashes).await;
    assert_eq!(status, 200, "{body}");
    assert_signed_by(&credential(&b, &other.credential_id), &hashes, &body["signatures"]);
}

#[tokio::test]
async fn a_key_destroyed_by_another_node_is_never_used_through_the_handle_a_node_knew() {
    let a = TestServer::start().await;
    let b = second_node(&a).await;
    let signer = a.provision("destroyed", KeyKind::EcP256, 5, None).await;
    let token = a.login("v1", &signer).await;
    // Node A signs, so it holds the key's handle.
    let hashes = digests(1, "before");
    let sad = a.authorize_v1(&token, &signer, &hashes, 1).await;
    let (status, body) = sign(&a, &token, &signer.credential_id, &sad, &hashes).await;
    assert_eq!(status, 200, "{body}");

    // Node B destroys the key (as it cleans up after an issuance that failed), then makes other keys.
    // Node A's handle for it is dead now: A drops it, searches, finds nothing, and refuses.
    let row = credential(&a, &signer.credential_id);
    assert!(b.services().keystore.destroy(&KeyId::from_hex(&row.key_id).unwrap()).unwrap());
    let others: Vec<Signer> = {
        let mut others = Vec::new();
        for i in 0..3 {
            others.push(b.provision(&format!("after-{i}"), KeyKind::EcP256, 5, None).await);
        }
        others
    };

    let hashes = digests(1, "after");
    let sad = a.authorize_v1(&token, &signer, &hashes, 1).await;
    let (status, body) = sign(&a, &token, &signer.credential_id, &sad, &hashes).await;
    assert_eq!(status, 500, "a signature without the credential's key: {body}");
    assert!(body.get("signatures").is_none(), "{body}");
    // What the refused request spent is given back: the SAD covers its hash again, and the quota is whole.
    let sad = sad_row(&a, &sad);
    assert_eq!(sad.used, 0);
    assert_eq!(credential(&a, &signer.credential_id).quota_used, 1);
    // It stays refused; the keys made after it sign for their own credentials on node A.
    let again = a.authorize_v1(&token, &signer, &hashes, 1).await;
    let (status, _) = sign(&a, &token, &signer.credential_id, &again, &hashes).await;
    assert_eq!(status, 500);
    for other in &others {
        let token = a.login("v1", other).await;
        let sad = a.authorize_v1(&token, other, &hashes, 1).await;
        let (status, body) = sign(&a, &token, &other.credential_id, &sad, &hashes).await;
        assert_eq!(status, 200, "{body}");
        assert_signed_by(&credential(&a, &other.credential_id), &hashes, &body["signatures"]);
    }
}

/// Revocation reaches every relying party at once (rssp issue 11): a revocation made on one node shows
/// in the next CRL every node serves, and in another node's OCSP answers once that node's status
/// reading is older than `ocsp.status_poll_ms` (250 ms by default; 100 ms here), though it had the
/// good answer cached.
#[tokio::test]
async fn a_revocation_on_one_node_shows_in_the_ocsp_and_crl_answers_of_another() {
    let a = TestServer::start().await;
    let b = second_node_with(&a, |c| c.ocsp.status_poll_ms = 100).await;
    let signer = a.provision("revoked-elsewhere", KeyKind::EcP256, 1, None).await;
    let row = credential(&a, &signer.credential_id);
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    };
    let issuing = write("issuing.pem", crate::common::pki::pem(&a.services().ca.issuing.certificate_der).as_bytes());
    let ee = write("ee.pem", crate::common::pki::pem(&row.certificate).as_bytes());
    let request = dir.path().join("req.der").to_str().unwrap().to_string();
    let (ok, out) =
        crate::common::pki::openssl(&["ocsp", "-issuer", &issuing, "-cert", &ee, "-no_nonce", "-reqout", &request]);
    assert!(ok, "{out}");
    let request = std::fs::read(&request).unwrap();
    let status_on_b = || async {
        let response = b
            .http
            .post(format!("{}/ocsp", b.url))
            .header("content-type", "application/ocsp-request")
            .body(request.clone())
            .send()
            .await
            .unwrap();
        let der = response.bytes().await.unwrap().to_vec();
        let path = write("resp.der", &der);
        let (ok, out) =
            crate::common::pki::openssl(&["ocsp", "-respin", &path, "-issuer", &issuing, "-cert", &ee, "-noverify"]);
        assert!(ok, "{out}");
        (der, out.contains(&format!("{ee}: revoked")))
    };
    let (good, revoked) = status_on_b().await;
    assert!(!revoked);
    assert_eq!(status_on_b().await.0, good, "node B serves its cached answer");

    let (status, body) = a
        .post(
            &format!("/api/admin/v1/credentials/{}/revoke", signer.credential_id),
            Some(&a.operator_key()),
            serde_json::json!({"reason": "revoked on node A"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The CRL node B serves next lists it.
    let crl = b.get_der("/pki/issuing-ca.crl").await;
    let facts = crate::common::pki::crl_facts(&crl);
    assert!(facts.serials.contains(&crate::common::pki::normal_serial(&row.serial_hex)), "{facts:?}");
    // Past node B's poll, its next OCSP answer says revoked.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (after, revoked) = status_on_b().await;
    assert!(revoked, "node B's next answer after the revocation");
    assert_ne!(after, good);
}

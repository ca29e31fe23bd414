//! What surrounds the CSC API: certificates and CRLs checked with openssl, the OpenAPI document, the
//! operator commands and the configuration, driven through the real binary.

use crate::common::binary::rssp;
use crate::common::pki::{openssl, pem};
use crate::common::*;
use der::{Decode, Encode};
use rssp::domain::KeyKind;
use serde_json::{json, Value};

#[derive(der::Sequence)]
struct QcStatement {
    id: der::asn1::ObjectIdentifier,
    info: Option<der::Any>,
}

#[tokio::test]
async fn certificates_have_the_qualified_profile_and_chain_to_the_root() {
    let server = TestServer::start().await;
    let signer = server.provision("qualified", KeyKind::EcP256, 5, None).await;
    let token = server.login("v1", &signer).await;
    let (status, info) = server
        .post(
            "/csc/v1/credentials/info",
            Some(&token),
            json!({"credentialID": signer.credential_id, "certificates": "chain"}),
        )
        .await;
    assert_eq!(status, 200);
    let chain: Vec<Vec<u8>> =
        info["cert"]["certificates"].as_array().unwrap().iter().map(|c| unb64(c.as_str().unwrap())).collect();
    let root = server.http.get(format!("{}/pki/root-ca.cer", server.url)).send().await.unwrap().bytes().await.unwrap();
    let issuing =
        server.http.get(format!("{}/pki/issuing-ca.cer", server.url)).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(chain[1], issuing.to_vec(), "the chain's CA is the published issuing CA");

    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    std::fs::write(path("ee.pem"), pem(&chain[0])).unwrap();
    std::fs::write(path("issuing.pem"), pem(&issuing)).unwrap();
    std::fs::write(path("root.pem"), pem(&root)).unwrap();

    let (ok, text) =
        openssl(&["verify", "-CAfile", &path("root.pem"), "-untrusted", &path("issuing.pem"), &path("ee.pem")]);
    assert!(ok, "openssl verify: {text}");
    let (ok, text) = openssl(&["x509", "-in", &path("ee.pem"), "-noout", "-text"]);
    assert!(ok, "{text}");
    for expected in [
        "Digital Signature, Non Repudiation",
        // QCP-n: SoftHSM is no QSCD, so neither QCP-n-qscd nor QcSSCD is claimed (ca.qc_sscd unset).
        "Policy: 0.4.0.194112.1.0",
        "CA Issuers - URI:".to_string().as_str(),
        "/pki/issuing-ca.cer",
        "/pki/issuing-ca.crl",
        "X509v3 Authority Key Identifier",
        "X509v3 Subject Key Identifier",
        "CN=qualified",
    ] {
        let normalised = text.replace("CN = ", "CN=");
        assert!(normalised.contains(expected), "{expected:?} missing in\n{text}");
    }
    // QC statements: QcCompliance and QcType = esign; no QcSSCD on SoftHSM.
    let cert = x509_cert::Certificate::from_der(&chain[0]).unwrap();
    let qc = cert
        .tbs_certificate()
        .extensions()
        .unwrap()
        .iter()
        .find(|e| e.extn_id.to_string() == "1.3.6.1.5.5.7.1.3")
        .expect("qcStatements extension");
    let statements = Vec::<QcStatement>::from_der(qc.extn_value.as_bytes()).unwrap();
    let ids: Vec<String> = statements.iter().map(|s| s.id.to_string()).collect();
    assert_eq!(ids, ["0.4.0.1862.1.1", "0.4.0.1862.1.6"]);
    let types = statements[1].info.as_ref().unwrap().decode_as::<Vec<der::asn1::ObjectIdentifier>>().unwrap();
    assert_eq!(types[0].to_string(), "0.4.0.1862.1.6.1");

    // The CRLs the certificates point to are served and signed by their CA.
    for (crl_path, ca_file) in [("/pki/issuing-ca.crl", "issuing.pem"), ("/pki/root-ca.crl", "root.pem")] {
        let crl = server.http.get(format!("{}{crl_path}", server.url)).send().await.unwrap().bytes().await.unwrap();
        std::fs::write(path("crl.der"), &crl).unwrap();
        let (ok, text) =
            openssl(&["crl", "-inform", "DER", "-in", &path("crl.der"), "-CAfile", &path(ca_file), "-noout"]);
        assert!(ok && text.contains("verify OK"), "{crl_path}: {text}");
    }
    let _ = cert.to_der();
}

#[tokio::test]
async fn the_committed_openapi_document_matches_the_code_and_is_served() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json")).unwrap();
    assert!(
        committed == rssp::api::openapi_json(),
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json`"
    );
    let server = TestServer::start().await;
    let served: Value =
        server.http.get(format!("{}/openapi.json", server.url)).send().await.unwrap().json().await.unwrap();
    assert!(served["paths"]["/csc/v1/signatures/signHash"].is_object());
    assert!(served["paths"]["/csc/v2/credentials/authorize"].is_object());
    let docs = server.http.get(format!("{}/docs/", server.url)).send().await.unwrap();
    assert_eq!(docs.status().as_u16(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"), "Swagger UI is served from the binary");
    let (status, body) = server.post("/csc/v1/nothing", None, json!({})).await;
    assert_error(status, &body, 404, "invalid_request", "Unknown");
}

#[test]
fn operator_commands_work_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let out = rssp(
        dir.path(),
        &["provision-user", "--username", "cli", "--password", "long enough 2026", "--key", "ec-p384", "--pin", "1234"],
        &[],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    for key in ["user_id", "username", "credential_id", "totp_secret", "totp_uri"] {
        assert!(created[key].is_string(), "{key} in {created}");
    }
    assert_eq!(
        rssp::domain::secrets::from_base32(created["totp_secret"].as_str().unwrap()).unwrap().len(),
        20,
        "160-bit secret"
    );
    assert!(created["totp_uri"].as_str().unwrap().starts_with("otpauth://totp/"));
    let out = rssp(dir.path(), &["provision-user", "--username", "cli", "--password", "long enough 2026"], &[]);
    assert!(!out.status.success(), "a second user with the same name is refused");

    let out = rssp(dir.path(), &["pki", "root-cert"], &[]);
    assert!(out.status.success());
    std::fs::write(dir.path().join("root.pem"), &out.stdout).unwrap();
    let (ok, text) = openssl(&["x509", "-in", dir.path().join("root.pem").to_str().unwrap(), "-noout", "-subject"]);
    assert!(ok && text.contains("Root CA"), "{text}");

    let out = rssp(dir.path(), &["audit", "verify"], &[]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("intact"), "{out:?}");
}

#[test]
fn a_bad_setting_stops_the_start_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("RSSP_LISTEN", "nowhere"),
        ("RSSP_DATABASE_URL", "mysql://x"),
        ("RSSP_HSM_SESSIONS", "lots"),
        ("RSSP_HSM_SESSION_WAIT_MS", "18446744073709551"),
        ("RSSP_DB_POOL_WAIT_MS", "600001"),
    ] {
        let out = rssp(dir.path(), &["serve"], &[(name, value)]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
    let out = rssp(dir.path(), &["serve"], &[("RSSP_HSM_MODULE", "/nonexistent/libpkcs11.so"), ("RSSP_HSM_PIN", "1")]);
    assert!(!out.status.success(), "a missing PKCS#11 module stops the start");
}

//! The OCSP responder (rssp issue 11), judged by `openssl ocsp`: good, then revoked after a
//! revocation, with SHA-1 and SHA-256 CertIDs and with nonces; unknown serials; other issuers refused;
//! garbage answered malformedRequest; the issuing CA answered by the root; GET with HTTP caching; the
//! delegated responder's certificate; the cache serving one signed response until the status changes.

use der::{Decode, Encode};
use rssp::domain::KeyKind;
use rssp::pki::ocsp::asn1::{OcspRequest, OcspResponse, OcspResponseStatus};
use serde_json::json;

use crate::common::pki::{extension_value, oid_der, openssl, pem};
use crate::common::TestServer;

/// The files `openssl ocsp` needs, in a temporary directory.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        Files { dir: tempfile::tempdir().unwrap() }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    fn pem(&self, name: &str, der: &[u8]) -> String {
        self.write(name, pem(der).as_bytes())
    }
}

/// `openssl ocsp` against the server's /ocsp with `args`: (it succeeded, its output).
fn ask(server: &TestServer, args: &[&str]) -> (bool, String) {
    let url = format!("{}/ocsp", server.url);
    let mut all = vec!["ocsp", "-url", &url];
    all.extend_from_slice(args);
    openssl(&all)
}

/// POST a DER body to /ocsp; (status, headers, body).
async fn post(server: &TestServer, body: Vec<u8>, content_type: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let response = server
        .http
        .post(format!("{}/ocsp", server.url))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

fn response_status(der: &[u8]) -> OcspResponseStatus {
    OcspResponse::from_der(der).expect("a DER OCSPResponse").response_status
}

struct Pki {
    files: Files,
    root: String,
    issuing: String,
}

fn pki(server: &TestServer) -> Pki {
    let files = Files::new();
    let services = server.services();
    let root = files.pem("root.pem", &services.ca.root.certificate_der);
    let issuing = files.pem("issuing.pem", &services.ca.issuing.certificate_der);
    Pki { files, root, issuing }
}

#[tokio::test]
async fn openssl_reads_good_then_revoked_with_sha1_and_sha256_cert_ids_and_nonces() {
    let server = TestServer::start().await;
    let pki = pki(&server);
    let signer = server.provision("ocsp-ee", KeyKind::EcP256, 1, None).await;
    let certificate = server.credential_certificate(&signer.credential_id);
    let ee = pki.files.pem("ee.pem", &certificate);

    // The certificate says where its responder is.
    let aia = extension_value(&certificate, "1.3.6.1.5.5.7.1.1").expect("an AIA extension");
    let url = format!("{}/ocsp", server.url);
    assert!(aia.windows(url.len()).any(|w| w == url.as_bytes()), "the AIA names {url}");
    let ad_ocsp = oid_der("1.3.6.1.5.5.7.48.1");
    assert!(aia.windows(ad_ocsp.len()).any(|w| w == ad_ocsp), "as id-ad-ocsp");

    for digest in [None, Some("-sha256")] {
        let mut args = vec!["-issuer", &pki.issuing];
        args.extend(digest);
        args.extend(["-cert", &ee, "-CAfile", &pki.root, "-resp_text"]);
        let (ok, out) = ask(&server, &args);
        assert!(ok, "{out}");
        assert!(out.contains("Response verify OK"), "{out}");
        assert!(out.contains(&format!("{ee}: good")), "{out}");
        assert!(out.contains("Next Update:"), "{out}");
        // openssl sent a nonce and found it echoed (it warns when it is missing).
        assert!(!out.contains("WARNING: no nonce"), "{out}");
        assert!(out.contains("OCSP Nonce"), "{out}");
        assert!(out.contains("Responder Id: ") && !out.contains("Responder Id: C ="), "ResponderID byKey: {out}");
        if digest.is_some() {
            assert!(out.contains("Hash Algorithm: sha256"), "the CertID is echoed with its hash: {out}");
        } else {
            assert!(out.contains("Hash Algorithm: sha1"), "{out}");
        }
    }

    // An operator revokes: the next answer says revoked, with the time.
    let (status, body) = server
        .post(
            &format!("/api/admin/v1/credentials/{}/revoke", signer.credential_id),
            Some(&server.operator_key()),
            json!({"reason": "key compromise reported by the holder", "reason_code": "key_compromise"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for digest in [None, Some("-sha256")] {
        let mut args = vec!["-issuer", &pki.issuing];
        args.extend(digest);
        args.extend(["-cert", &ee, "-CAfile", &pki.root]);
        let (ok, out) = ask(&server, &args);
        assert!(ok && out.contains("Response verify OK"), "{out}");
        assert!(out.contains(&format!("{ee}: revoked")), "{out}");
        assert!(out.contains("Revocation Time:"), "{out}");
        assert!(out.contains("Reason: keyCompromise"), "{out}");
    }
    // The CRL says the same.
    let crl = pki.files.write("issuing.crl", &server.get_der("/pki/issuing-ca.crl").await);
    let (ok, text) = openssl(&["crl", "-inform", "DER", "-in", &crl, "-noout", "-text"]);
    assert!(ok && text.contains("Key Compromise"), "{text}");
}

#[tokio::test]
async fn a_holder_revokes_with_a_reason_of_theirs_and_relying_parties_read_it() {
    let server = TestServer::start().await;
    let pki = pki(&server);
    let (person, credential) = server.certified_named("ocsp-holder@example.org", "+38640200088", "Ana", "Novak").await;
    let id = credential["credential_id"].as_str().unwrap().to_string();
    let ee = pki.files.pem("ee.pem", &server.credential_certificate(&id));
    let revoke = |code: &str| json!({"otp": server.person_otp(&person), "reason": "new phone", "reason_code": code});
    // Withdrawal is the trust service's word, not the holder's; an unknown code is refused too.
    for code in ["privilege_withdrawn", "certificate_hold"] {
        let (status, body) =
            server.post(&format!("/api/v1/credentials/{id}/revoke"), Some(&person.token), revoke(code)).await;
        assert_eq!(status, 400, "{code}: {body}");
    }
    let (ok, out) = ask(&server, &["-issuer", &pki.issuing, "-cert", &ee, "-CAfile", &pki.root]);
    assert!(ok && out.contains(&format!("{ee}: good")), "nothing was revoked: {out}");
    let (status, body) =
        server.post(&format!("/api/v1/credentials/{id}/revoke"), Some(&person.token), revoke("superseded")).await;
    assert_eq!(status, 200, "{body}");
    let (ok, out) = ask(&server, &["-issuer", &pki.issuing, "-cert", &ee, "-CAfile", &pki.root]);
    assert!(ok && out.contains(&format!("{ee}: revoked")) && out.contains("Reason: superseded"), "{out}");
}

#[tokio::test]
async fn one_signed_response_is_served_until_the_status_changes_and_get_carries_http_caching() {
    // A minute between readings of the status generation: only the revoking node's own note of the
    // revocation can make its next answer say revoked.
    let server = TestServer::start_with(|c| c.ocsp.status_poll_ms = 60_000).await;
    let pki = pki(&server);
    let signer = server.provision("ocsp-cache", KeyKind::EcP256, 1, None).await;
    let ee = pki.files.pem("ee.pem", &server.credential_certificate(&signer.credential_id));
    let request = pki.files.path("req.der");
    let (ok, out) = openssl(&["ocsp", "-issuer", &pki.issuing, "-cert", &ee, "-no_nonce", "-reqout", &request]);
    assert!(ok, "{out}");
    let request = std::fs::read(request).unwrap();

    let (status, headers, first) = post(&server, request.clone(), "application/ocsp-request").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/ocsp-response");
    let (_, _, second) = post(&server, request.clone(), "application/ocsp-request").await;
    assert_eq!(first, second, "the same signed response, from the cache");

    // GET with the request in the path, base64 and URL-encoded; the caching headers of RFC 5019.
    let encoded = b64_url_path(&request);
    let response = server.http.get(format!("{}/ocsp/{encoded}", server.url)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let cache_control = response.headers()["cache-control"].to_str().unwrap().to_string();
    assert!(cache_control.starts_with("max-age=") && cache_control.contains("public"), "{cache_control}");
    assert!(response.headers().contains_key("expires") && response.headers().contains_key("last-modified"));
    let by_get = response.bytes().await.unwrap().to_vec();
    assert_eq!(by_get, first);
    let response_file = pki.files.write("resp.der", &by_get);
    let (ok, out) =
        openssl(&["ocsp", "-respin", &response_file, "-issuer", &pki.issuing, "-cert", &ee, "-CAfile", &pki.root]);
    assert!(ok && out.contains(&format!("{ee}: good")) && out.contains("Response verify OK"), "{out}");

    // Revoked through the portal's path: the very next answer is a new response saying so.
    let (status, body) = server
        .post(
            &format!("/api/admin/v1/credentials/{}/revoke", signer.credential_id),
            Some(&server.operator_key()),
            json!({"reason": "left the company"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, _, after) = post(&server, request.clone(), "application/ocsp-request").await;
    assert_ne!(after, first);
    let response_file = pki.files.write("after.der", &after);
    let (ok, out) =
        openssl(&["ocsp", "-respin", &response_file, "-issuer", &pki.issuing, "-cert", &ee, "-CAfile", &pki.root]);
    assert!(ok && out.contains(&format!("{ee}: revoked")), "{out}");

    // A response with a nonce is never cached over HTTP.
    let (ok, out) = openssl(&["ocsp", "-issuer", &pki.issuing, "-cert", &ee, "-reqout", &pki.files.path("n.der")]);
    assert!(ok, "{out}");
    let with_nonce = std::fs::read(pki.files.path("n.der")).unwrap();
    let response = server.http.get(format!("{}/ocsp/{}", server.url, b64_url_path(&with_nonce))).send().await.unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
}

/// Base64 with '/', '+' and '=' percent-encoded, as RFC 6960 Appendix A.1 asks of a GET.
fn b64_url_path(der: &[u8]) -> String {
    crate::common::b64(der).replace('/', "%2F").replace('+', "%2B").replace('=', "%3D")
}

#[tokio::test]
async fn unknown_serials_foreign_issuers_and_garbage_get_the_rfc_6960_answers() {
    let server = TestServer::start().await;
    let pki = pki(&server);

    // A serial the issuing CA never issued: unknown, signed and verified.
    let (ok, out) = ask(&server, &["-issuer", &pki.issuing, "-serial", "0x1234567890", "-CAfile", &pki.root]);
    assert!(ok && out.contains("Response verify OK"), "{out}");
    assert!(out.contains("0x1234567890: unknown"), "{out}");

    // Another CA's certificate: unauthorized.
    let key = pki.files.path("foreign.key");
    let foreign = pki.files.path("foreign.pem");
    let (ok, out) = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &foreign,
        "-subj",
        "/CN=Foreign CA",
        "-days",
        "1",
    ]);
    assert!(ok, "{out}");
    let (_, out) = ask(&server, &["-issuer", &foreign, "-serial", "1", "-CAfile", &pki.root]);
    assert!(out.contains("unauthorized (6)"), "{out}");

    // Garbage, an empty body, a request with no certificate: malformedRequest, with 200.
    for body in [b"garbage".to_vec(), Vec::new(), vec![0x30, 0x05, 0x30, 0x03, 0x30, 0x01, 0x00]] {
        let (status, headers, answer) = post(&server, body.clone(), "application/ocsp-request").await;
        assert_eq!(status, 200, "{body:?}");
        assert_eq!(headers["content-type"], "application/ocsp-response");
        assert_eq!(response_status(&answer), OcspResponseStatus::MalformedRequest, "{body:?}");
    }
    let response = server.http.get(format!("{}/ocsp/not!base64", server.url)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response_status(&response.bytes().await.unwrap()), OcspResponseStatus::MalformedRequest);
    // A nonce of no octet or of more than 128 is malformed; 1 to 128 are answered.
    let request_path = pki.files.path("nonce.der");
    let (ok, out) = openssl(&["ocsp", "-issuer", &pki.issuing, "-serial", "1", "-nonce", "-reqout", &request_path]);
    assert!(ok, "{out}");
    let request = OcspRequest::from_der(&std::fs::read(&request_path).unwrap()).unwrap();
    // RFC 9654: 1 to 128 octets.
    for (length, want) in [
        (129, OcspResponseStatus::MalformedRequest),
        (0, OcspResponseStatus::MalformedRequest),
        (128, OcspResponseStatus::Successful),
        (1, OcspResponseStatus::Successful),
    ] {
        let mut changed = request.clone();
        let nonce = changed.tbs_request.request_extensions.as_mut().unwrap().iter_mut().next().unwrap();
        nonce.extn_value =
            der::asn1::OctetString::new(der::asn1::OctetString::new(vec![7u8; length]).unwrap().to_der().unwrap())
                .unwrap();
        let (_, _, answer) = post(&server, changed.to_der().unwrap(), "application/ocsp-request").await;
        assert_eq!(response_status(&answer), want, "a {length}-byte nonce");
    }

    // Not an OCSP request at all: 415.
    let (status, _, _) = post(&server, b"{}".to_vec(), "application/json").await;
    assert_eq!(status, 415);
}

#[tokio::test]
async fn the_root_answers_for_the_issuing_ca_and_the_tsa_certificate_is_good() {
    let server = TestServer::start().await;
    let pki = pki(&server);
    let (ok, out) = ask(&server, &["-issuer", &pki.root, "-cert", &pki.issuing, "-CAfile", &pki.root]);
    assert!(ok && out.contains("Response verify OK"), "{out}");
    assert!(out.contains(&format!("{}: good", pki.issuing)), "{out}");

    let tsa = pki.files.pem("tsa.pem", &server.services().tsa.unit.certificate_der);
    let (ok, out) = ask(&server, &["-issuer", &pki.issuing, "-cert", &tsa, "-CAfile", &pki.root]);
    assert!(ok && out.contains("Response verify OK"), "{out}");
    assert!(out.contains(&format!("{tsa}: good")), "{out}");
}

#[tokio::test]
async fn the_delegated_responder_certificate_is_short_lived_for_ocsp_signing_only_and_renewed() {
    let server = TestServer::start().await;
    let pki = pki(&server);
    let responder = server.services().ocsp.delegated();
    let certificate = responder.certificate_der.clone();
    let path = pki.files.write("responder.der", &certificate);
    let (ok, text) = openssl(&["x509", "-inform", "DER", "-in", &path, "-noout", "-text"]);
    assert!(ok, "{text}");
    assert!(text.contains("OCSP Signing"), "{text}");
    assert!(text.contains("OCSP No Check"), "{text}");
    assert!(text.contains("X509v3 Key Usage: critical\n                Digital Signature\n"), "{text}");
    let days = (responder.not_after - server.now()) as f64 / 86_400.0;
    assert!((6.9..=7.01).contains(&days), "valid for 7 days: {days}");

    // Five days on, fewer than two days are left: the scheduler renews it (same key), and the new
    // certificate signs the answers.
    server.clock.advance(5 * 86_400 + 3600);
    let (status, body) = server.post("/api/admin/v1/scheduler/run", Some(&server.operator_key()), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ocsp_responder_renewed"], true, "{body}");
    let (_, again) = server.post("/api/admin/v1/scheduler/run", Some(&server.operator_key()), json!({})).await;
    assert_eq!(again["ocsp_responder_renewed"], false, "renewed once: {again}");
    let renewed = server.services().ocsp.delegated();
    assert_ne!(renewed.certificate_der, certificate);
    assert_eq!(renewed.key, responder.key);
    assert!(renewed.not_after > responder.not_after);
    let signer = server.provision("ocsp-renewed", KeyKind::EcP256, 1, None).await;
    let ee = pki.files.pem("ee.pem", &server.credential_certificate(&signer.credential_id));
    // openssl checks at the server's (moved) time, which is five days ahead of its own.
    let at = server.now().to_string();
    let (ok, out) = ask(
        &server,
        &[
            "-issuer",
            &pki.issuing,
            "-cert",
            &ee,
            "-CAfile",
            &pki.root,
            "-resp_text",
            "-attime",
            &at,
            "-validity_period",
            "864000",
        ],
    );
    assert!(ok && out.contains("Response verify OK") && out.contains(&format!("{ee}: good")), "{out}");
    let renewed_pem = pem(&renewed.certificate_der);
    let body_lines: Vec<&str> = renewed_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(out.contains(body_lines[1]), "the response carries the renewed certificate");
}

#[tokio::test]
async fn too_many_certificates_mixed_issuers_and_the_roots_nonce_policy() {
    let server = TestServer::start().await;
    let pki = pki(&server);
    let signer = server.provision("ocsp-mixed", KeyKind::EcP256, 1, None).await;
    let ee = pki.files.pem("ee.pem", &server.credential_certificate(&signer.credential_id));

    // Sixteen certificates in one request are answered; seventeen are malformed.
    for (count, want) in [(16, OcspResponseStatus::Successful), (17, OcspResponseStatus::MalformedRequest)] {
        let mut args = vec!["ocsp".to_string(), "-issuer".into(), pki.issuing.clone()];
        for i in 0..count {
            args.extend(["-serial".to_string(), format!("{}", 1000 + i)]);
        }
        let path = pki.files.path(&format!("many-{count}.der"));
        args.extend(["-no_nonce".to_string(), "-reqout".into(), path.clone()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out) = openssl(&args);
        assert!(ok, "{out}");
        let (_, _, answer) = post(&server, std::fs::read(&path).unwrap(), "application/ocsp-request").await;
        assert_eq!(response_status(&answer), want, "{count} certificates");
    }

    // One request about a certificate of the issuing CA and one of the root: no single responder may
    // answer both.
    let path = pki.files.path("mixed.der");
    let (ok, out) = openssl(&[
        "ocsp",
        "-issuer",
        &pki.issuing,
        "-cert",
        &ee,
        "-issuer",
        &pki.root,
        "-cert",
        &pki.issuing,
        "-reqout",
        &path,
    ]);
    assert!(ok, "{out}");
    let (_, _, answer) = post(&server, std::fs::read(&path).unwrap(), "application/ocsp-request").await;
    assert_eq!(response_status(&answer), OcspResponseStatus::Unauthorized);

    // The root answers with its one cached response whatever nonce is sent: its key does not sign on
    // a stranger's demand. openssl says so (no nonce in the response) and verifies it.
    let mut answers = Vec::new();
    for round in 0..2 {
        let path = pki.files.path(&format!("root-{round}.der"));
        let (ok, out) = openssl(&["ocsp", "-issuer", &pki.root, "-cert", &pki.issuing, "-reqout", &path]);
        assert!(ok, "{out}");
        let (_, _, answer) = post(&server, std::fs::read(&path).unwrap(), "application/ocsp-request").await;
        answers.push(answer);
    }
    assert_eq!(answers[0], answers[1], "one signed response for any nonce");
    let response = pki.files.write("root.resp", &answers[0]);
    let (ok, out) =
        openssl(&["ocsp", "-respin", &response, "-issuer", &pki.root, "-cert", &pki.issuing, "-CAfile", &pki.root]);
    assert!(ok && out.contains("Response verify OK") && out.contains(": good"), "{out}");
}

//! The time-stamping authority (rssp issue 11): RFC 3161 over `POST /tsa`, judged by `openssl ts`;
//! the rejections; who may use it; CSC `signatures/timestamp` in both dialects, where each time-stamp
//! spends one transaction of the person's credential, exactly once; and the log auditors read.

use std::path::PathBuf;

use der::{Decode, Encode};
use rssp::config::TsaAccess;
use rssp::domain::KeyKind;
use rssp::pki::tsp::{MessageImprint, PkiStatus, TimeStampReq, TimeStampResp};
use serde_json::{json, Value};

use crate::common::pki::{openssl, pem};
use crate::common::{assert_error, b64, sha256, unb64, TestServer};

/// The files `openssl ts -verify` needs: the root as trust anchor, the TSA and issuing CA certificates.
struct Anchors {
    dir: tempfile::TempDir,
    root: PathBuf,
    untrusted: PathBuf,
}

impl Anchors {
    fn of(server: &TestServer) -> Anchors {
        let dir = tempfile::tempdir().unwrap();
        let services = server.services();
        let root = dir.path().join("root.pem");
        std::fs::write(&root, pem(&services.ca.root.certificate_der)).unwrap();
        let untrusted = dir.path().join("untrusted.pem");
        let chain = pem(&services.tsa.unit.certificate_der) + &pem(&services.ca.issuing.certificate_der);
        std::fs::write(&untrusted, chain).unwrap();
        Anchors { dir, root, untrusted }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.path(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// `openssl ts -verify` with `what` (e.g. `-queryfile q -in r`): whether it says OK, and its output.
    fn verify(&self, what: &[&str]) -> (bool, String) {
        let mut args = vec!["ts", "-verify"];
        args.extend_from_slice(what);
        args.extend_from_slice(&[
            "-CAfile",
            self.root.to_str().unwrap(),
            "-untrusted",
            self.untrusted.to_str().unwrap(),
        ]);
        let (ok, out) = openssl(&args);
        (ok && out.contains("Verification: OK"), out)
    }
}

/// `openssl ts -query` over `data` with extra flags; the DER request.
fn openssl_query(anchors: &Anchors, name: &str, data: &[u8], flags: &[&str]) -> Vec<u8> {
    let data_path = anchors.file(&format!("{name}.data"), data);
    let out_path = anchors.path(&format!("{name}.tsq"));
    let mut args = vec!["ts", "-query", "-data", &data_path, "-out", out_path.to_str().unwrap()];
    args.extend_from_slice(flags);
    let (ok, out) = openssl(&args);
    assert!(ok, "openssl ts -query: {out}");
    std::fs::read(out_path).unwrap()
}

/// POST /tsa; (status, content type, body).
async fn post_tsa(
    server: &TestServer,
    body: Vec<u8>,
    content_type: &str,
    bearer: Option<&str>,
) -> (u16, String, Vec<u8>) {
    let mut request = server.http.post(format!("{}/tsa", server.url)).header("content-type", content_type).body(body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (status, content_type, response.bytes().await.unwrap().to_vec())
}

const QUERY: &str = "application/timestamp-query";

/// The RFC 3161 status of a TimeStampResp, and its failure bits as the DER of the BIT STRING.
fn status_of(reply: &[u8]) -> (PkiStatus, Option<Vec<u8>>) {
    let response = TimeStampResp::from_der(reply).expect("a DER TimeStampResp");
    (response.status.status, response.status.fail_info.map(|bits| bits.to_der().unwrap()))
}

async fn log(server: &TestServer) -> Vec<Value> {
    let (status, body) = server.get("/api/admin/v1/timestamps", Some(&server.operator_key())).await;
    assert_eq!(status, 200, "{body}");
    body["timestamps"].as_array().unwrap().clone()
}

#[tokio::test]
async fn openssl_verifies_the_tokens_of_post_tsa_with_and_without_nonce_and_certificate() {
    let server = TestServer::start().await;
    let anchors = Anchors::of(&server);
    let data = b"a contract signed on the first of December";

    // certReq and a nonce (openssl's default): the token carries the TSA certificate.
    let query = openssl_query(&anchors, "full", data, &["-sha256", "-cert"]);
    let (status, content_type, reply) = post_tsa(&server, query.clone(), QUERY, None).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/timestamp-reply");
    assert_eq!(status_of(&reply).0, PkiStatus::Granted);
    let reply_path = anchors.file("full.tsr", &reply);
    let query_path = anchors.file("full.tsq", &query);
    let (ok, out) = anchors.verify(&["-queryfile", &query_path, "-in", &reply_path]);
    assert!(ok, "openssl ts -verify -queryfile: {out}");
    let data_path = anchors.file("full.data", data);
    let (ok, out) = anchors.verify(&["-data", &data_path, "-in", &reply_path]);
    assert!(ok, "openssl ts -verify -data: {out}");
    // The check has teeth: other data do not verify against this token.
    let other = anchors.file("other.data", b"another contract");
    let (ok, _) = anchors.verify(&["-data", &other, "-in", &reply_path]);
    assert!(!ok, "a token verified for data it does not cover");

    // What the token states, read by openssl: policy, nonce, TSA name, accuracy, the server's clock.
    let (ok, text) = openssl(&["ts", "-reply", "-in", &reply_path, "-text"]);
    assert!(ok, "{text}");
    assert!(text.contains("Policy OID: 0.4.0.2023.1.1"), "{text}");
    assert!(text.contains("Accuracy: 0x01 seconds"), "{text}");
    assert!(text.contains("TSA: DirName:") && text.contains("Time-Stamping Unit"), "{text}");
    let (ok, query_text) = openssl(&["ts", "-query", "-in", &query_path, "-text"]);
    assert!(ok, "{query_text}");
    let nonce = query_text.lines().find(|l| l.trim_start().starts_with("Nonce:")).expect("openssl sent a nonce");
    assert!(text.contains(nonce.trim()), "the nonce {nonce} is echoed: {text}");

    // No certReq, no nonce: still verifies (the certificate comes from -untrusted), and the token
    // carries no certificate.
    let query = openssl_query(&anchors, "bare", data, &["-sha512", "-no_nonce"]);
    let (status, _, reply) = post_tsa(&server, query.clone(), QUERY, None).await;
    assert_eq!(status, 200);
    let reply_path = anchors.file("bare.tsr", &reply);
    let query_path = anchors.file("bare.tsq", &query);
    let (ok, out) = anchors.verify(&["-queryfile", &query_path, "-in", &reply_path]);
    assert!(ok, "{out}");
    let response = TimeStampResp::from_der(&reply).unwrap();
    let token = response.time_stamp_token.unwrap();
    let signed: cms::signed_data::SignedData = token.content.decode_as().expect("SignedData");
    assert!(signed.certificates.is_none(), "certReq false: no certificate in the token");

    // genTime is the service clock's, to the second (rounded).
    server.clock.advance(10 * 24 * 3600);
    let before = server.now();
    let query = openssl_query(&anchors, "later", data, &["-sha256"]);
    let (_, _, reply) = post_tsa(&server, query, QUERY, None).await;
    let after = server.now() + 1;
    let reply_path = anchors.file("later.tsr", &reply);
    let (_, text) = openssl(&["ts", "-reply", "-in", &reply_path, "-text"]);
    let shown = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0).unwrap().format("Time stamp: %b %e %H:%M:%S %Y GMT").to_string()
    };
    assert!((before..=after).any(|t| text.contains(&shown(t))), "genTime in {before}..={after}: {text}");

    // Each token is logged with its own serial, as anonymous, and is in the audit chain.
    let logged = log(&server).await;
    assert_eq!(logged.len(), 3, "{logged:?}");
    let mut serials: Vec<&str> = logged.iter().map(|t| t["serial"].as_str().unwrap()).collect();
    serials.sort_unstable();
    serials.dedup();
    assert_eq!(serials.len(), 3);
    let (_, audit) = server.get("/api/admin/v1/audit?limit=500", Some(&server.operator_key())).await;
    let records = audit["records"].as_array().unwrap();
    for entry in &logged {
        let record = records.iter().find(|r| r["seq"] == entry["seq"]).expect("the audit record of the token");
        assert_eq!(record["event"], "tsa.timestamp");
        assert!(record["detail"].as_str().unwrap().contains(entry["serial"].as_str().unwrap()), "{record}");
    }
    assert!(logged.iter().all(|t| t["requester"] == "anonymous" && t["credential_id"].is_null()), "{logged:?}");
    assert_eq!(logged[0]["imprint"], hex::encode(sha256(data)));
    assert_eq!(logged[0]["hash_algorithm"], "2.16.840.1.101.3.4.2.1");
}

/// A TimeStampReq for a SHA-256 imprint, to be changed by each case.
fn request() -> TimeStampReq {
    TimeStampReq {
        version: 1,
        message_imprint: MessageImprint {
            hash_algorithm: spki::AlgorithmIdentifierOwned {
                oid: der::asn1::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1"),
                parameters: None,
            },
            hashed_message: der::asn1::OctetString::new(sha256(b"x")).unwrap(),
        },
        req_policy: None,
        nonce: None,
        cert_req: true,
        extensions: None,
    }
}

#[tokio::test]
async fn requests_the_tsa_cannot_serve_are_rejected_with_200_and_the_rfc_3161_reason() {
    let server = TestServer::start().await;
    let anchors = Anchors::of(&server);
    let bits = |bit: usize| {
        let mut bytes = vec![0u8; bit / 8 + 1];
        bytes[bit / 8] = 0x80 >> (bit % 8);
        der::asn1::BitString::new((7 - bit % 8) as u8, bytes).unwrap().to_der().unwrap()
    };
    let (bad_alg, bad_request, bad_data_format, unaccepted_policy, unaccepted_extension) =
        (bits(0), bits(2), bits(5), bits(15), bits(16));

    let sha1 = openssl_query(&anchors, "sha1", b"data", &["-sha1"]);
    let mut wrong_length = request();
    wrong_length.message_imprint.hashed_message = der::asn1::OctetString::new(vec![7u8; 31]).unwrap();
    let mut version_2 = request();
    version_2.version = 2;
    let mut other_policy = request();
    other_policy.req_policy = Some(der::asn1::ObjectIdentifier::new_unwrap("1.2.3.4.5"));
    let mut with_extension = request();
    with_extension.extensions = Some(vec![x509_cert::ext::Extension {
        extn_id: der::asn1::ObjectIdentifier::new_unwrap("1.2.3.4.6"),
        critical: false,
        extn_value: der::asn1::OctetString::new(vec![5, 0]).unwrap(),
    }]);
    let mut sha256_with_parameters = request();
    sha256_with_parameters.message_imprint.hash_algorithm.parameters = Some(der::Any::encode_from(&1u8).unwrap());
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("garbage", b"not DER at all".to_vec(), bad_data_format.clone()),
        ("empty", Vec::new(), bad_data_format.clone()),
        ("truncated", request().to_der().unwrap()[..20].to_vec(), bad_data_format.clone()),
        ("SHA-1", sha1, bad_alg.clone()),
        ("parameters on SHA-256", sha256_with_parameters.to_der().unwrap(), bad_alg),
        ("a 31-byte SHA-256", wrong_length.to_der().unwrap(), bad_data_format),
        ("version 2", version_2.to_der().unwrap(), bad_request),
        ("another policy", other_policy.to_der().unwrap(), unaccepted_policy),
        ("an extension", with_extension.to_der().unwrap(), unaccepted_extension),
    ];
    for (what, body, failure) in cases {
        let (status, content_type, reply) = post_tsa(&server, body, QUERY, None).await;
        assert_eq!(status, 200, "{what}");
        assert_eq!(content_type, "application/timestamp-reply", "{what}");
        let (pki_status, fail_info) = status_of(&reply);
        assert_eq!(pki_status, PkiStatus::Rejection, "{what}");
        assert_eq!(fail_info.as_deref(), Some(&failure[..]), "{what}");
    }
    // openssl reads a rejection as one, with its reason.
    let garbage = anchors.file("garbage.tsr", &post_tsa(&server, b"junk".to_vec(), QUERY, None).await.2);
    let (ok, text) = openssl(&["ts", "-reply", "-in", &garbage, "-text"]);
    assert!(
        ok && text.contains("Status: Rejected") && text.contains("the data submitted has the wrong format"),
        "{text}"
    );

    // The request's own policy is accepted; a well-formed request after all the bad ones is granted.
    let mut our_policy = request();
    our_policy.req_policy = Some(der::asn1::ObjectIdentifier::new_unwrap("0.4.0.2023.1.1"));
    let (_, _, reply) = post_tsa(&server, our_policy.to_der().unwrap(), QUERY, None).await;
    assert_eq!(status_of(&reply).0, PkiStatus::Granted);

    // Not a time-stamp query at all: 415, before anything is parsed.
    for content_type in ["application/json", "application/octet-stream", "text/plain"] {
        let (status, _, body) = post_tsa(&server, request().to_der().unwrap(), content_type, None).await;
        assert_eq!(status, 415, "{content_type}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert!(body["error_description"].as_str().unwrap().contains("application/timestamp-query"), "{body}");
    }
    // Too large: 413. Compressed: 415.
    let (status, _, _) = post_tsa(&server, vec![0x30; 64 * 1024], QUERY, None).await;
    assert_eq!(status, 413);
    let response = server
        .http
        .post(format!("{}/tsa", server.url))
        .header("content-type", QUERY)
        .header("content-encoding", "gzip")
        .body(request().to_der().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    // Only the granted request was logged.
    assert_eq!(log(&server).await.len(), 1);
}

#[tokio::test]
async fn post_tsa_is_open_bearer_only_or_off_as_configured() {
    // Production's default, bearer: a TSA client's key is needed, and the log names the client.
    let server = TestServer::start_with(|c| c.tsa.access = Some(TsaAccess::Bearer)).await;
    let services = server.services_shared();
    let tsa_key = tokio::task::spawn_blocking(move || {
        rssp::service::operators::create_key(&services, "archive-tool", rssp::domain::ApiKeyRole::TsaClient)
    })
    .await
    .unwrap()
    .unwrap();
    let body = request().to_der().unwrap();
    let (status, _, answer) = post_tsa(&server, body.clone(), QUERY, None).await;
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&answer));
    let (status, _, _) = post_tsa(&server, body.clone(), QUERY, Some("not-a-key")).await;
    assert_eq!(status, 401);
    // Neither a person's CSC access token nor an operator's admin key is a TSA client's key.
    let signer = server.provision("tsa-person", KeyKind::EcP256, 1, None).await;
    let token = server.login("v1", &signer).await;
    for other in [token.as_str(), &server.operator_key()] {
        let (status, _, _) = post_tsa(&server, body.clone(), QUERY, Some(other)).await;
        assert_eq!(status, 401);
    }
    // And a TSA client's key opens nothing of the admin API.
    let (status, _) = server.get("/api/admin/v1/timestamps", Some(&tsa_key)).await;
    assert_eq!(status, 401);
    let (status, _, reply) = post_tsa(&server, body.clone(), QUERY, Some(&tsa_key)).await;
    assert_eq!(status, 200);
    assert_eq!(status_of(&reply).0, PkiStatus::Granted);
    let logged = log(&server).await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0]["requester"], "client");
    assert_eq!(logged[0]["requester_id"], "archive-tool");

    // Off: 404, whoever asks; people still get time-stamps through the CSC API.
    let server = TestServer::start_with(|c| c.tsa.access = Some(TsaAccess::Off)).await;
    let (status, _, _) = post_tsa(&server, body.clone(), QUERY, None).await;
    assert_eq!(status, 404);
    let signer = server.provision_with_quota("tsa-off", KeyKind::EcP256, 1, None, Some(3)).await;
    let token = server.login("v1", &signer).await;
    let (status, answer) = timestamp_v1(&server, &token, &sha256(b"still"), None).await;
    assert_eq!(status, 200, "{answer}");
}

async fn timestamp_v1(server: &TestServer, token: &str, hash: &[u8], nonce: Option<&str>) -> (u16, Value) {
    let mut body = json!({"hash": b64(hash), "hashAlgo": "2.16.840.1.101.3.4.2.1"});
    if let Some(nonce) = nonce {
        body["nonce"] = json!(nonce);
    }
    server.post("/csc/v1/signatures/timestamp", Some(token), body).await
}

fn quota_used(server: &TestServer, credential: &str) -> i32 {
    let mut conn = server.services().db.get().unwrap();
    rssp::db::credentials::by_id(&mut conn, credential).unwrap().unwrap().quota_used
}

#[tokio::test]
async fn csc_timestamp_answers_a_token_openssl_verifies_and_spends_one_transaction() {
    let server = TestServer::start().await;
    let anchors = Anchors::of(&server);
    let signer = server.provision_with_quota("stamper", KeyKind::EcP256, 1, None, Some(3)).await;
    let hash = sha256(b"a document to time-stamp");

    // v1, with a nonce.
    let token = server.login("v1", &signer).await;
    let (status, body) = timestamp_v1(&server, &token, &hash, Some("00c0ffee1234")).await;
    assert_eq!(status, 200, "{body}");
    let token_path = anchors.file("csc-v1.tst", &unb64(body["timestamp"].as_str().unwrap()));
    let (ok, out) = anchors.verify(&["-digest", &hex::encode(&hash), "-token_in", "-in", &token_path]);
    assert!(ok, "{out}");
    let (ok, out) = anchors.verify(&["-digest", &hex::encode(sha256(b"other")), "-token_in", "-in", &token_path]);
    assert!(!ok, "a token verified for another hash: {out}");
    let (ok, text) = openssl(&["ts", "-reply", "-token_in", "-in", &token_path, "-text", "-token_out"]);
    assert!(ok, "{text}");
    assert!(text.to_lowercase().contains("nonce: 0xc0ffee1234"), "the nonce is echoed: {text}");
    assert_eq!(quota_used(&server, &signer.credential_id), 1);

    // v2, with hashAlgorithmOID, and with v2.0.0.2's own `hashAlgo`.
    let token = server.login("v2", &signer).await;
    for field in ["hashAlgorithmOID", "hashAlgo"] {
        let body = json!({"hash": b64(&hash), field: "2.16.840.1.101.3.4.2.1"});
        let (status, body) = server.post("/csc/v2/signatures/timestamp", Some(&token), body).await;
        assert_eq!(status, 200, "{field}: {body}");
        let path = anchors.file(&format!("csc-v2-{field}.tst"), &unb64(body["timestamp"].as_str().unwrap()));
        let (ok, out) = anchors.verify(&["-digest", &hex::encode(&hash), "-token_in", "-in", &path]);
        assert!(ok, "{out}");
    }
    assert_eq!(quota_used(&server, &signer.credential_id), 3);

    // Another person's credential is never charged, and a credential without a limit is charged too
    // (its count grows, it never runs out).
    let other = server.provision_with_quota("stamper-other", KeyKind::EcP256, 1, None, Some(3)).await;
    let unlimited = server.provision("stamper-unlimited", KeyKind::EcP256, 1, None).await;
    let (status, _) = timestamp_v1(&server, &server.login("v1", &unlimited).await, &hash, None).await;
    assert_eq!(status, 200);
    assert_eq!((quota_used(&server, &other.credential_id), quota_used(&server, &unlimited.credential_id)), (0, 1));

    // The quota is spent: refused, and nothing more is spent or logged.
    let (status, body) = timestamp_v1(&server, &server.login("v1", &signer).await, &hash, None).await;
    assert_error(status, &body, 400, "invalid_request", "No credential with a transaction left");
    assert_eq!(quota_used(&server, &signer.credential_id), 3);
    let logged = log(&server).await;
    assert_eq!(logged.len(), 4);
    let mine: Vec<&Value> = logged.iter().filter(|t| t["requester_id"] == signer.user_id.as_str()).collect();
    assert_eq!(mine.len(), 3);
    assert!(mine.iter().all(|t| t["requester"] == "person" && t["credential_id"] == signer.credential_id.as_str()));
}

#[tokio::test]
async fn bad_csc_timestamp_requests_are_400_and_spend_nothing() {
    let server = TestServer::start().await;
    let signer = server.provision_with_quota("stamp-errors", KeyKind::EcP256, 1, None, Some(5)).await;
    let v1 = server.login("v1", &signer).await;
    let v2 = server.login("v2", &signer).await;
    let hash = b64(&sha256(b"x"));
    let sha256_oid = "2.16.840.1.101.3.4.2.1";
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        ("v1", &v1, json!({"hashAlgo": sha256_oid}), "Missing (or invalid type) string parameter hash"),
        ("v1", &v1, json!({"hash": "", "hashAlgo": sha256_oid}), "Empty hash parameter"),
        ("v1", &v1, json!({"hash": "***", "hashAlgo": sha256_oid}), "Invalid Base64 hash string parameter"),
        ("v1", &v1, json!({"hash": b64(&[1; 20]), "hashAlgo": sha256_oid}), "Invalid digest value length"),
        ("v1", &v1, json!({"hash": hash}), "Missing (or invalid type) string parameter hashAlgo"),
        ("v1", &v1, json!({"hash": hash, "hashAlgo": "1.3.14.3.2.26"}), "Invalid parameter hashAlgo"),
        ("v1", &v1, json!({"hash": hash, "hashAlgo": sha256_oid, "nonce": "xyz"}), "Invalid parameter nonce"),
        ("v1", &v1, json!({"hash": hash, "hashAlgo": sha256_oid, "nonce": ""}), "Invalid parameter nonce"),
        ("v1", &v1, json!({"hash": hash, "hashAlgo": sha256_oid, "nonce": "ab".repeat(65)}), "Invalid parameter nonce"),
        (
            "v1",
            &v1,
            json!({"hash": hash, "hashAlgo": sha256_oid, "nonce": 5}),
            "Missing (or invalid type) string parameter nonce",
        ),
        ("v2", &v2, json!({"hash": hash}), "Missing (or invalid type) string parameter hashAlgorithmOID"),
        ("v2", &v2, json!({"hash": hash, "hashAlgorithmOID": "1.2.3"}), "Invalid parameter hashAlgorithmOID"),
        (
            "v2",
            &v2,
            json!({"hash": hash, "hashAlgorithmOID": sha256_oid, "hashAlgo": "2.16.840.1.101.3.4.2.3"}),
            "Invalid parameter hashAlgorithmOID",
        ),
    ];
    for (version, token, body, text) in cases {
        let (status, answer) =
            server.post(&format!("/csc/{version}/signatures/timestamp"), Some(token), body.clone()).await;
        assert_error(status, &answer, 400, "invalid_request", text);
    }
    // Without a token: 401.
    let (status, _) =
        server.post("/csc/v1/signatures/timestamp", None, json!({"hash": hash, "hashAlgo": sha256_oid})).await;
    assert_eq!(status, 401);
    assert_eq!(quota_used(&server, &signer.credential_id), 0);
    assert!(log(&server).await.is_empty());
    // info lists the method in both dialects.
    for version in ["v1", "v2"] {
        let (_, info) = server.post(&format!("/csc/{version}/info"), None, json!({})).await;
        assert!(info["methods"].as_array().unwrap().contains(&json!("signatures/timestamp")), "{info}");
    }
}

#[tokio::test]
async fn concurrent_time_stamps_spend_the_quota_exactly_once() {
    let server = TestServer::start().await;
    let signer = server.provision_with_quota("stamp-race", KeyKind::EcP256, 1, None, Some(5)).await;
    let token = server.login("v1", &signer).await;
    let requests = (0..12u8).map(|i| {
        let (server, token) = (&server, &token);
        async move { timestamp_v1(server, token, &sha256(&[i]), None).await }
    });
    let answers = futures::future::join_all(requests).await;
    let granted = answers.iter().filter(|(status, _)| *status == 200).count();
    let refused = answers
        .iter()
        .filter(|(status, body)| {
            *status == 400
                && body["error_description"].as_str().unwrap().contains("No credential with a transaction left")
        })
        .count();
    assert_eq!((granted, refused), (5, 7), "{answers:?}");
    assert_eq!(quota_used(&server, &signer.credential_id), 5);
    assert_eq!(log(&server).await.len(), 5);
}

/// The rule a person can follow: a time-stamp is counted against their credential that expires
/// first among those that can sign now; a revoked one is never charged.
#[tokio::test]
async fn a_time_stamp_is_charged_to_the_credential_that_expires_first() {
    let server = TestServer::start_with(|c| c.lifecycle.rekey_auto_accept_unchanged = true).await;
    let (person, credential) = server.certified_named("stamps@example.org", "+38640200077", "Ana", "Novak").await;
    let old = credential["credential_id"].as_str().unwrap().to_string();
    let order = server.buy(&person, "rekey", Some(&old)).await;
    server.rekey_names(&person, &order, "Ana", "Novak").await;
    server.rekey_document(&person, &order, "image/png", &crate::common::rekey::tiny_png()).await;
    let (status, issued) = server.submit_rekey(&person, &old, &order).await;
    assert_eq!(status, 201, "{issued}");
    let new = issued["credential_id"].as_str().unwrap().to_string();
    assert!(
        crate::common::pki::not_after(&server.credential_certificate(&old))
            < crate::common::pki::not_after(&server.credential_certificate(&new))
    );
    let (before_old, before_new) = (quota_used(&server, &old), quota_used(&server, &new));

    let (status, body) = server.basic_login("v1", &person.email, &person.password, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_string();
    let (status, body) = timestamp_v1(&server, &token, &sha256(b"first"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((quota_used(&server, &old), quota_used(&server, &new)), (before_old + 1, before_new));

    // Revoked, the old one is passed over.
    let (status, body) = server
        .post(
            &format!("/api/v1/credentials/{old}/revoke"),
            Some(&person.token),
            json!({"otp": server.person_otp(&person)}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = timestamp_v1(&server, &token, &sha256(b"second"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((quota_used(&server, &old), quota_used(&server, &new)), (before_old + 1, before_new + 1));
}

#[tokio::test]
async fn the_tsa_certificate_is_for_time_stamping_only_and_qualified_tokens_say_so() {
    let server = TestServer::start_with(|c| {
        c.tsa.qualified = true;
        c.tsa.policy_oid = "1.3.6.1.4.1.99999.1.1".into();
        c.tsa.accuracy_millis = 1500;
    })
    .await;
    let anchors = Anchors::of(&server);
    let served = server.get_der("/pki/tsa.cer").await;
    assert_eq!(served, server.services().tsa.unit.certificate_der);
    let cert_path = anchors.file("tsa.der", &served);
    let (ok, text) = openssl(&["x509", "-inform", "DER", "-in", &cert_path, "-noout", "-text"]);
    assert!(ok, "{text}");
    let eku = text.split("X509v3 Extended Key Usage: critical").nth(1).expect("a critical EKU");
    assert_eq!(eku.lines().nth(1).map(str::trim), Some("Time Stamping"), "{text}");
    assert!(text.contains("X509v3 Key Usage: critical\n                Digital Signature\n"), "{text}");
    assert!(text.contains("Public-Key: (3072 bit)"), "RSA-3072 by default: {text}");
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        anchors.root.to_str().unwrap(),
        "-untrusted",
        anchors.untrusted.to_str().unwrap(),
        "-purpose",
        "timestampsign",
        anchors.file("tsa.pem", pem(&served).as_bytes()).as_str(),
    ]);
    assert!(ok, "{out}");

    let query = openssl_query(&anchors, "q", b"qualified", &["-sha256", "-cert"]);
    let (_, _, reply) = post_tsa(&server, query.clone(), QUERY, None).await;
    let reply_path = anchors.file("q.tsr", &reply);
    let query_path = anchors.file("q.tsq", &query);
    let (ok, out) = anchors.verify(&["-queryfile", &query_path, "-in", &reply_path]);
    assert!(ok, "{out}");
    let (_, text) = openssl(&["ts", "-reply", "-in", &reply_path, "-text"]);
    assert!(text.contains("Policy OID: 1.3.6.1.4.1.99999.1.1"), "{text}");
    assert!(text.contains("Accuracy: 0x01 seconds, 0x01F4 millis"), "{text}");
    // The qcStatements extension with esi4-qtstStatement-1 (ETSI EN 319 422 §9.1).
    let token = TimeStampResp::from_der(&reply).unwrap().time_stamp_token.unwrap().to_der().unwrap();
    let statement = der::asn1::ObjectIdentifier::new_unwrap("0.4.0.19422.1.1").to_der().unwrap();
    assert!(token.windows(statement.len()).any(|w| w == statement), "esi4-qtstStatement-1 in the token");
}

#[tokio::test]
async fn tokens_are_qualified_only_when_configured_and_an_ecdsa_tsa_verifies_too() {
    let server = TestServer::start_with(|c| c.tsa.key_kind = "ec-p384".into()).await;
    let anchors = Anchors::of(&server);
    let query = openssl_query(&anchors, "ec", b"ecdsa", &["-sha384", "-cert"]);
    let (_, _, reply) = post_tsa(&server, query.clone(), QUERY, None).await;
    let reply_path = anchors.file("ec.tsr", &reply);
    let query_path = anchors.file("ec.tsq", &query);
    let (ok, out) = anchors.verify(&["-queryfile", &query_path, "-in", &reply_path]);
    assert!(ok, "{out}");
    let (_, text) = openssl(&["x509", "-in", anchors.untrusted.to_str().unwrap(), "-noout", "-text"]);
    assert!(text.contains("ASN1 OID: secp384r1"), "{text}");
    // Not configured as qualified: no esi4-qtstStatement-1.
    let token = TimeStampResp::from_der(&reply).unwrap().time_stamp_token.unwrap().to_der().unwrap();
    let statement = der::asn1::ObjectIdentifier::new_unwrap("0.4.0.19422.1.1").to_der().unwrap();
    assert!(!token.windows(statement.len()).any(|w| w == statement));
}

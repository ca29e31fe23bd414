//! CSC v2 `signatures/signDoc` (rssp issue 12): CAdES of whole documents (attached and detached) and of
//! digests, the CMS of a PAdES signature for a PDF the client prepared, at B-B and B-T; each signature
//! judged by `openssl cms -verify` (and each time-stamp by `openssl ts -verify`) up to rssp's root. Under
//! SCAL2 the SAD binds each document or digest: another one is refused (403 invalid_hash), as is anyone
//! else's SAD, and a refused request spends nothing.

use std::path::PathBuf;

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::{Decode, Encode};
use rssp::domain::KeyKind;
use serde_json::{json, Value};

use crate::common::pki::{openssl, pem};
use crate::common::{assert_error, b64, sha256, unb64, Signer, TestServer, ES256};

const SHA256: &str = "2.16.840.1.101.3.4.2.1";
const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
/// id-aa-signatureTimeStampToken.
const SIGNATURE_TIME_STAMP: &str = "1.2.840.113549.1.9.16.2.14";
const SIGNING_TIME: &str = "1.2.840.113549.1.9.5";
const SIGNING_CERTIFICATE_V2: &str = "1.2.840.113549.1.9.16.2.47";

/// v2 `credentials/authorize` of `hashes` (SHA-256) with a fresh code; the SAD.
async fn authorize(server: &TestServer, token: &str, signer: &Signer, hashes: &[Vec<u8>]) -> String {
    let otp = server.next_otp(signer);
    let (status, body) = server
        .post(
            "/csc/v2/credentials/authorize",
            Some(token),
            json!({"credentialID": signer.credential_id, "numSignatures": hashes.len(),
                   "hashes": hashes.iter().map(|h| b64(h)).collect::<Vec<_>>(), "hashAlgorithmOID": SHA256,
                   "authData": [{"id": "OTP", "value": otp}]}),
        )
        .await;
    assert_eq!(status, 200, "authorize: {body}");
    body["SAD"].as_str().unwrap().to_string()
}

async fn sign_doc(server: &TestServer, token: &str, body: Value) -> (u16, Value) {
    server.post("/csc/v2/signatures/signDoc", Some(token), body).await
}

pub(crate) fn quota_used(server: &TestServer, credential: &str) -> i32 {
    let mut conn = server.services().conn().unwrap();
    rssp::db::credentials::by_id(&mut conn, credential).unwrap().unwrap().quota_used
}

/// The trust anchors of the server's signatures, as files openssl reads.
struct Judge {
    dir: tempfile::TempDir,
    root: PathBuf,
    /// The TSA and issuing CA certificates (a time-stamp token carries only the TSA's).
    untrusted: PathBuf,
}

impl Judge {
    fn of(server: &TestServer) -> Judge {
        let dir = tempfile::tempdir().unwrap();
        let services = server.services();
        let root = dir.path().join("root.pem");
        std::fs::write(&root, pem(&services.ca.root.certificate_der)).unwrap();
        let untrusted = dir.path().join("untrusted.pem");
        std::fs::write(
            &untrusted,
            pem(&services.tsa.unit.certificate_der) + &pem(&services.ca.issuing.certificate_der),
        )
        .unwrap();
        Judge { dir, root, untrusted }
    }

    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// `openssl cms -verify` up to the root, with the content apart for a detached signature: the content
    /// openssl says was signed, or None when it does not verify.
    fn cms_verify(&self, name: &str, cms: &[u8], detached: Option<&[u8]>) -> Option<Vec<u8>> {
        let input = self.file(&format!("{name}.p7s"), cms);
        let output = self.dir.path().join(format!("{name}.out"));
        let mut args = vec!["cms", "-verify", "-inform", "DER", "-binary", "-purpose", "any", "-in", &input];
        let root = self.root.to_str().unwrap();
        args.extend_from_slice(&["-CAfile", root]);
        let content;
        if let Some(bytes) = detached {
            content = self.file(&format!("{name}.content"), bytes);
            args.extend_from_slice(&["-content", &content]);
        }
        let output_path = output.to_str().unwrap();
        args.extend_from_slice(&["-out", output_path]);
        let (ok, said) = openssl(&args);
        (ok && said.contains("Verification successful")).then(|| std::fs::read(&output).unwrap())
    }

    /// `openssl ts -verify` of the signature time-stamp of `cms` against its signature value.
    fn time_stamp_verifies(&self, name: &str, cms: &[u8]) -> (bool, String) {
        let (token, value) = time_stamp_of(cms).expect("a signature time-stamp");
        let token_path = self.file(&format!("{name}.tst"), &token);
        let digest = hex::encode(sha256(&value));
        let (ok, said) = openssl(&[
            "ts",
            "-verify",
            "-token_in",
            "-in",
            &token_path,
            "-digest",
            &digest,
            "-CAfile",
            self.root.to_str().unwrap(),
            "-untrusted",
            self.untrusted.to_str().unwrap(),
        ]);
        (ok && said.contains("Verification: OK"), said)
    }
}

fn signer_info(cms: &[u8]) -> cms::signed_data::SignerInfo {
    let content = ContentInfo::from_der(cms).unwrap().content;
    // A B-LT's revocation values are written as RFC 5652 has them, which the cms crate does not read.
    let signer_infos = match content.decode_as::<SignedData>() {
        Ok(signed_data) => signed_data.signer_infos,
        Err(_) => content.decode_as::<rssp::pki::cades::long_term::SignedDataWithRevocation>().unwrap().signer_infos,
    };
    assert_eq!(signer_infos.0.len(), 1);
    signer_infos.0.get(0).unwrap().clone()
}

fn signed_attribute_oids(cms: &[u8]) -> Vec<String> {
    signer_info(cms).signed_attrs.unwrap().iter().map(|a| a.oid.to_string()).collect()
}

/// The signature time-stamp token of the one SignerInfo and the signature value it must cover.
fn time_stamp_of(cms: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let info = signer_info(cms);
    let unsigned = info.unsigned_attrs?;
    let attribute = unsigned.iter().find(|a| a.oid.to_string() == SIGNATURE_TIME_STAMP)?;
    Some((attribute.values.get(0).unwrap().to_der().unwrap(), info.signature.as_bytes().to_vec()))
}

fn the_one(body: &Value, field: &str) -> Vec<u8> {
    let list = body[field].as_array().unwrap_or_else(|| panic!("{field} in {body}"));
    assert_eq!(list.len(), 1, "{body}");
    unb64(list[0].as_str().unwrap())
}

#[tokio::test]
async fn v2_info_lists_sign_doc_with_the_formats_and_levels_it_makes_and_v1_does_not() {
    let server = TestServer::start().await;
    let (status, info) = server.post("/csc/v2/info", None, json!({})).await;
    assert_eq!(status, 200);
    assert!(info["methods"].as_array().unwrap().contains(&json!("signatures/signDoc")), "{info}");
    assert_eq!(info["signature_formats"]["formats"], json!(["C", "P"]));
    assert_eq!(
        info["signature_formats"]["envelope_properties"],
        json!([["Attached", "Detached"], ["Certification", "Revision"]])
    );
    assert_eq!(info["conformance_levels"], json!(["Ades-B-B", "Ades-B-T", "Ades-B-LT", "Ades-B-LTA"]));
    assert_eq!(info["validationInfo"], true);
    let (_, v1) = server.post("/csc/v1/info", None, json!({})).await;
    assert!(!v1["methods"].as_array().unwrap().contains(&json!("signatures/signDoc")), "v1 has no signDoc");
    let (status, _) = server.post("/csc/v1/signatures/signDoc", None, json!({})).await;
    assert_eq!(status, 404);
}

/// Two documents, one SAD bound to both: an attached CAdES (the default for a document) and a detached
/// one, each verified by openssl with what was signed; the detached one not with anything else. Letter
/// case is free on input. Each signature spends one transaction.
#[tokio::test]
async fn cades_of_whole_documents_attached_and_detached_verify_with_openssl() {
    let server = TestServer::start().await;
    let judge = Judge::of(&server);
    let signer = server.provision_with_quota("doc-signer", KeyKind::EcP256, 2, None, Some(10)).await;
    let token = server.login("v2", &signer).await;
    let contract = b"The contract, signed attached".to_vec();
    let invoice = b"An invoice, signed detached".to_vec();
    let sad = authorize(&server, &token, &signer, &[sha256(&contract), sha256(&invoice)]).await;

    let (status, body) = sign_doc(
        &server,
        &token,
        json!({"credentialID": signer.credential_id, "SAD": sad, "documents": [
            {"document": b64(&contract), "signature_format": "C", "signAlgo": ES256},
            {"document": b64(&invoice), "signature_format": "c", "conformance_level": "AdES-B-B",
             "signed_envelope_property": "detached", "signAlgo": ES256},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let attached = the_one(&body, "DocumentWithSignature");
    let detached = the_one(&body, "SignatureObject");
    assert_eq!(judge.cms_verify("attached", &attached, None), Some(contract.clone()));
    assert_eq!(judge.cms_verify("detached", &detached, Some(&invoice)), Some(invoice.clone()));
    assert_eq!(judge.cms_verify("detached-other", &detached, Some(&contract)), None, "only what was signed");
    for cms in [&attached, &detached] {
        let oids = signed_attribute_oids(cms);
        assert!(oids.contains(&SIGNING_CERTIFICATE_V2.to_string()) && oids.contains(&SIGNING_TIME.to_string()));
        assert!(time_stamp_of(cms).is_none(), "B-B: no time-stamp");
    }
    assert_eq!(quota_used(&server, &signer.credential_id), 2);
    // The SAD's two documents are signed: the same document again is not.
    let (status, body) = sign_doc(
        &server,
        &token,
        json!({"credentialID": signer.credential_id, "SAD": sad,
               "documents": [{"document": b64(&contract), "signature_format": "C", "signAlgo": ES256}]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(quota_used(&server, &signer.credential_id), 2);
}

/// CAdES-B-LT (EN 319 122-1): a detached and an attached signature of documents, and one of a digest,
/// each time-stamped and carrying in its SignedData the certificates up to the root and the revocation
/// values: both CAs' CRLs, with which `openssl cms -verify -crl_check_all` verifies the chain knowing
/// nothing but the root, and OCSP responses (RFC 5940) about the signer and the TSA that openssl reads as
/// successful. B-LTA is not offered for CAdES. Each signature spends two transactions.
#[tokio::test]
async fn cades_b_lt_carries_the_certificates_and_revocation_values_that_validate_it() {
    let server = TestServer::start().await;
    let judge = Judge::of(&server);
    let signer = server.provision_with_quota("cades-lt", KeyKind::EcP256, 4, None, Some(10)).await;
    let token = server.login("v2", &signer).await;
    let report = b"A report kept for twenty years".to_vec();
    let minutes = b"Minutes, enveloped".to_vec();
    let digested = b"Content the client digested".to_vec();
    let sad = authorize(&server, &token, &signer, &[sha256(&report), sha256(&minutes)]).await;
    let (status, body) = sign_doc(
        &server,
        &token,
        json!({"credentialID": signer.credential_id, "SAD": sad, "documents": [
            {"document": b64(&report), "signature_format": "C", "conformance_level": "Ades-B-LT",
             "signed_envelope_property": "Detached", "signAlgo": ES256},
            {"document": b64(&minutes), "signature_format": "C", "conformance_level": "ades-b-lt", "signAlgo": ES256}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let detached = the_one(&body, "SignatureObject");
    let enveloping = the_one(&body, "DocumentWithSignature");
    let sad = authorize(&server, &token, &signer, &[sha256(&digested)]).await;
    let (status, body) = sign_doc(
        &server,
        &token,
        json!({"credentialID": signer.credential_id, "SAD": sad, "documentDigests": [
            {"hashes": [b64(&sha256(&digested))], "hashAlgorithmOID": SHA256, "signature_format": "C",
             "conformance_level": "Ades-B-LT", "signAlgo": ES256}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let of_digest = the_one(&body, "SignatureObject");
    let cases = [
        ("report", &detached, Some(&report)),
        ("minutes", &enveloping, None),
        ("digested", &of_digest, Some(&digested)),
    ];
    for (name, cms, content) in cases {
        let rssp::pki::cades::long_term::RevocationValues { crls, ocsp } =
            rssp::pki::cades::long_term::revocation_values(cms).unwrap();
        assert_eq!(crls.len(), 2, "{name}: the issuing CA's CRL and the root's");
        assert!(ocsp.len() >= 2, "{name}: OCSP responses about the signer and the TSA");
        for (i, response) in ocsp.iter().enumerate() {
            let path = judge.file(&format!("{name}-{i}.ocsp"), response);
            let (ok, said) = openssl(&["ocsp", "-respin", &path, "-resp_text", "-noverify"]);
            assert!(ok && said.contains("Response Status: successful"), "{name}: {said}");
        }
        let (ok, said) = judge.time_stamp_verifies(name, cms);
        assert!(ok, "{name}: the signature time-stamp stays valid: {said}");
        // openssl verifies the whole chain with the CRLs the signature carries, and the root alone.
        let input = judge.file(&format!("{name}-lt.p7s"), cms);
        let mut args =
            vec!["cms", "-verify", "-inform", "DER", "-binary", "-purpose", "any", "-crl_check_all", "-in", &input];
        let root = judge.root.to_str().unwrap().to_string();
        args.extend_from_slice(&["-CAfile", &root, "-out", "/dev/null"]);
        let content_path;
        if let Some(content) = content {
            content_path = judge.file(&format!("{name}.content"), content);
            args.extend_from_slice(&["-content", &content_path]);
        }
        let (ok, said) = openssl(&args);
        assert!(ok && said.contains("Verification successful"), "{name}: {said}");
    }
    assert_eq!(quota_used(&server, &signer.credential_id), 6, "three signatures, three time-stamps");

    let sad = authorize(&server, &token, &signer, &[sha256(&report)]).await;
    let at = |level: &str| {
        json!({"credentialID": signer.credential_id, "SAD": sad, "documents": [{"document": b64(&report),
            "signature_format": "C", "signed_envelope_property": "Detached", "conformance_level": level, "signAlgo": ES256}]})
    };
    let (status, body) = sign_doc(&server, &token, at("Ades-B-LTA")).await;
    assert_error(status, &body, 400, "invalid_request", "a CAdES signature up to Ades-B-LT");
    assert_eq!(quota_used(&server, &signer.credential_id), 6);
    // The control: a B-T carries no CRLs, and the same check fails for want of them.
    let (status, body) = sign_doc(&server, &token, at("Ades-B-T")).await;
    assert_eq!(status, 200, "{body}");
    let b_t = judge.file("report-bt.p7s", &the_one(&body, "SignatureObject"));
    let content = judge.file("report-bt.content", &report);
    let root = judge.root.to_str().unwrap().to_string();
    let (ok, said) = openssl(&[
        "cms",
        "-verify",
        "-inform",
        "DER",
        "-binary",
        "-purpose",
        "any",
        "-crl_check_all",
        "-in",
        &b_t,
        "-content",
        &content,
        "-CAfile",
        &root,
        "-out",
        "/dev/null",
    ]);
    assert!(!ok && said.contains("unable to get certificate CRL"), "{said}");
}

/// `documentDigests`: a detached CAdES-B-T of a content digest (RSA), and the CMS of a PAdES-B-T signature
/// for the /ByteRange digest of a PDF the client prepared: no signing-time in it (the PDF's /M holds the
/// time). openssl verifies both against the content digested, and each time-stamp against the signature
/// value; each signature and each time-stamp spends one transaction.
#[tokio::test]
async fn digests_give_a_detached_cades_and_a_pades_cms_with_signature_time_stamps() {
    let server = TestServer::start().await;
    let judge = Judge::of(&server);
    let signer = server.provision_with_quota("digest-signer", KeyKind::Rsa2048, 2, None, Some(10)).await;
    let token = server.login("v2", &signer).await;
    let content = b"content digested by the client".to_vec();
    let byte_range = b"%PDF-1.7 ... the bytes of the /ByteRange of a prepared PDF".to_vec();
    let sad = authorize(&server, &token, &signer, &[sha256(&content), sha256(&byte_range)]).await;

    let (status, body) = sign_doc(
        &server,
        &token,
        json!({"credentialID": signer.credential_id, "SAD": sad, "documentDigests": [
            {"hashes": [b64(&sha256(&content))], "hashAlgorithmOID": SHA256, "signature_format": "C",
             "conformance_level": "Ades-B-T", "signAlgo": SHA256_WITH_RSA},
            // One sample in the specification sends `hashes` as a single string.
            {"hashes": b64(&sha256(&byte_range)), "hashAlgorithmOID": SHA256, "signature_format": "P",
             "conformance_level": "Ades-B-T", "signed_envelope_property": "Revision", "signAlgo": SHA256_WITH_RSA},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("DocumentWithSignature").is_none(), "{body}");
    let objects = body["SignatureObject"].as_array().unwrap();
    assert_eq!(objects.len(), 2);
    let cades = unb64(objects[0].as_str().unwrap());
    let pades = unb64(objects[1].as_str().unwrap());
    assert_eq!(judge.cms_verify("cades", &cades, Some(&content)), Some(content.clone()));
    assert_eq!(judge.cms_verify("pades", &pades, Some(&byte_range)), Some(byte_range.clone()));
    assert!(signed_attribute_oids(&cades).contains(&SIGNING_TIME.to_string()));
    assert!(!signed_attribute_oids(&pades).contains(&SIGNING_TIME.to_string()), "PAdES: the time is /M");
    for (name, cms) in [("cades", &cades), ("pades", &pades)] {
        let (ok, said) = judge.time_stamp_verifies(name, cms);
        assert!(ok, "openssl ts -verify of the {name} signature time-stamp: {said}");
        // The token carries the TSA's path below the root: the signature alone lets a validator build it.
        let (token, _) = time_stamp_of(cms).unwrap();
        let token: SignedData = ContentInfo::from_der(&token).unwrap().content.decode_as().unwrap();
        let carried: Vec<Vec<u8>> =
            token.certificates.unwrap().0.iter().map(|c| c.to_der().unwrap()).collect::<Vec<_>>();
        assert_eq!(carried.len(), 2, "the TSA's certificate and the issuing CA's");
    }
    assert_eq!(quota_used(&server, &signer.credential_id), 4, "two signatures and two time-stamps");
    // Each time-stamp is in the TSA's log.
    let logged = rssp::service::timestamps::log_page(server.services(), 0, 10).unwrap();
    assert_eq!(logged.len(), 2, "{logged:?}");
}

/// Under SCAL2 the SAD binds what the person approved: another document, or another digest, is 403
/// invalid_hash; another person's SAD does not work for anyone else, nor with another's credential; and
/// none of those refusals spends anything: the approved document signs afterwards.
#[tokio::test]
async fn the_sad_binds_the_documents_and_no_one_else_can_spend_it() {
    let server = TestServer::start().await;
    let alice = server.provision("alice-doc", KeyKind::EcP256, 1, None).await;
    let bob = server.provision("bob-doc", KeyKind::EcP256, 1, None).await;
    let alice_token = server.login("v2", &alice).await;
    let bob_token = server.login("v2", &bob).await;
    let approved = b"what alice approved".to_vec();
    let other = b"what someone slipped in".to_vec();
    let sad = authorize(&server, &alice_token, &alice, &[sha256(&approved)]).await;
    let document = |bytes: &[u8]| json!([{"document": b64(bytes), "signature_format": "C", "signAlgo": ES256}]);

    let (status, body) = sign_doc(
        &server,
        &alice_token,
        json!({"credentialID": alice.credential_id, "SAD": sad, "documents": document(&other)}),
    )
    .await;
    assert_error(status, &body, 403, "invalid_hash", "does not match authorized hash");
    let (status, body) = sign_doc(
        &server,
        &alice_token,
        json!({"credentialID": alice.credential_id, "SAD": sad, "documentDigests": [
            {"hashes": [b64(&sha256(&other))], "hashAlgorithmOID": SHA256, "signature_format": "C", "signAlgo": ES256}]}),
    )
    .await;
    assert_error(status, &body, 403, "invalid_hash", "does not match authorized hash");
    // Bob, with alice's SAD: not on alice's credential (not his), not on his own (not his SAD).
    let (status, body) = sign_doc(
        &server,
        &bob_token,
        json!({"credentialID": alice.credential_id, "SAD": sad, "documents": document(&approved)}),
    )
    .await;
    assert_error(status, &body, 400, "invalid_request", "credentialID");
    let (status, body) = sign_doc(
        &server,
        &bob_token,
        json!({"credentialID": bob.credential_id, "SAD": sad, "documents": document(&approved)}),
    )
    .await;
    assert_error(status, &body, 400, "invalid_request", "SAD");
    let (status, _) = sign_doc(
        &server,
        "not-a-token",
        json!({"credentialID": alice.credential_id, "SAD": sad, "documents": document(&approved)}),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(quota_used(&server, &alice.credential_id), 0);

    let (status, body) = sign_doc(
        &server,
        &alice_token,
        json!({"credentialID": alice.credential_id, "SAD": sad, "documents": document(&approved)}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(quota_used(&server, &alice.credential_id), 1);
}

/// What rssp does not make, or what does not fit together, is refused with the CSC error, and nothing is
/// spent: the SAD still signs its document afterwards.
#[tokio::test]
async fn requests_it_cannot_serve_are_refused_and_spend_nothing() {
    let server = TestServer::start().await;
    let signer = server.provision("doc-refusals", KeyKind::EcP256, 1, None).await;
    let token = server.login("v2", &signer).await;
    let document = b"a document".to_vec();
    let digest = sha256(&document);
    let sad = authorize(&server, &token, &signer, std::slice::from_ref(&digest)).await;
    let id = signer.credential_id.clone();
    let doc = |extra: Value| {
        let mut entry = json!({"document": b64(&document), "signature_format": "C", "signAlgo": ES256});
        entry.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({"credentialID": id, "SAD": sad, "documents": [entry]})
    };
    let dig = |extra: Value| {
        let mut entry = json!({"hashes": [b64(&digest)], "hashAlgorithmOID": SHA256, "signature_format": "C",
                               "signAlgo": ES256});
        entry.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({"credentialID": id, "SAD": sad, "documentDigests": [entry]})
    };
    let mut both = doc(json!({}));
    both["documentDigests"] = dig(json!({}))["documentDigests"].clone();
    let cases = [
        (both, "Both documentDigests and documents parameters passed"),
        (json!({"credentialID": id, "SAD": sad}), "Empty documentDigests and documents objects"),
        (json!({"credentialID": id, "SAD": sad, "documents": []}), "Empty documentDigests and documents objects"),
        (doc(json!({"signature_format": "X"})), "Invalid parameter signature_format"),
        (doc(json!({"signature_format": null})), "parameter signature_format"),
        (doc(json!({"conformance_level": "Ades-B-LTA"})), "Invalid parameter conformance_level"),
        (doc(json!({"conformance_level": "Ades-T"})), "Invalid parameter conformance_level"),
        (doc(json!({"signed_envelope_property": "Parallel"})), "Invalid parameter signed_envelope_property"),
        (doc(json!({"signed_envelope_property": "Certification"})), "Invalid parameter signed_envelope_property"),
        (dig(json!({"signed_envelope_property": "Attached"})), "Invalid parameter signed_envelope_property"),
        (doc(json!({"signature_format": "P"})), "Invalid array parameter documents: the document is not a PDF"),
        (doc(json!({"signed_props": [{"attribute_name": "content-hints"}]})), "Invalid parameter signed_props"),
        (doc(json!({"signAlgo": null})), "parameter signAlgo"),
        (doc(json!({"signAlgo": SHA256_WITH_RSA})), "signAlgo"),
        (doc(json!({"document": "not base64!"})), "Invalid Base64 documents"),
        (dig(json!({"hashes": [b64(&digest[..20])]})), "Invalid digest value length"),
        (dig(json!({"hashAlgorithmOID": "2.16.840.1.101.3.4.2.2"})), "hashAlgorithmOID"),
        (dig(json!({"hashes": []})), "documentDigests"),
        (dig(json!({"signature_format": "P", "conformance_level": "Ades-B-LTA"})), "not offered for this signature"),
        (
            dig(json!({"signature_format": "P", "conformance_level": "Ades-B-LT"})),
            "a PAdES CMS at Ades-B-B or Ades-B-T",
        ),
        (
            json!({"credentialID": id, "SAD": sad, "signatureQualifier": "eu_eidas_aes", "documents": doc(json!({}))["documents"]}),
            "Invalid parameter signatureQualifier",
        ),
        (json!({"SAD": sad, "documents": doc(json!({}))["documents"]}), "parameter credentialID"),
        (
            json!({"SAD": sad, "signatureQualifier": "eu_eidas_qes", "documents": doc(json!({}))["documents"]}),
            "does not choose a credential by signatureQualifier",
        ),
        (json!({"credentialID": id, "documents": doc(json!({}))["documents"]}), "parameter SAD"),
        (
            json!({"credentialID": id, "SAD": sad, "operationMode": "A", "documents": doc(json!({}))["documents"]}),
            "Invalid parameter operationMode",
        ),
    ];
    for (body, said) in cases {
        let (status, answer) = sign_doc(&server, &token, body.clone()).await;
        assert_error(status, &answer, 400, "invalid_request", said);
        assert!(answer.get("SignatureObject").is_none(), "{body}");
    }
    assert_eq!(quota_used(&server, &signer.credential_id), 0);
    // The qualifier every credential has is accepted beside credentialID; the SAD was never spent.
    let mut body = doc(json!({}));
    body["signatureQualifier"] = json!("eu_eidas_qes");
    let (status, answer) = sign_doc(&server, &token, body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(quota_used(&server, &signer.credential_id), 1);
}

/// A package with one transaction left cannot pay for a signature and its time-stamp: B-T is refused
/// whole, nothing is spent, and B-B still signs with that transaction.
#[tokio::test]
async fn a_time_stamp_spends_a_transaction_and_a_b_t_without_two_left_is_refused_whole() {
    let server = TestServer::start().await;
    let signer = server.provision_with_quota("doc-quota", KeyKind::EcP256, 1, None, Some(1)).await;
    let token = server.login("v2", &signer).await;
    let document = b"one transaction left".to_vec();
    let sad = authorize(&server, &token, &signer, &[sha256(&document)]).await;
    let body = |level: &str| {
        json!({"credentialID": signer.credential_id, "SAD": sad, "documents": [
            {"document": b64(&document), "signature_format": "C", "conformance_level": level, "signAlgo": ES256}]})
    };
    let (status, answer) = sign_doc(&server, &token, body("Ades-B-T")).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error_description"].as_str().unwrap().contains("quota exhausted"), "{answer}");
    assert_eq!(quota_used(&server, &signer.credential_id), 0);
    let (status, answer) = sign_doc(&server, &token, body("Ades-B-B")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(quota_used(&server, &signer.credential_id), 1);
}

/// The HSM fails after the SAD and the quota were spent (here the key is gone from the token): the
/// request fails, and the SAD's documents, its budget and the transactions (those of the time-stamps
/// too) are given back, with the refusal in the audit chain.
#[tokio::test]
async fn an_hsm_failure_after_the_spend_gives_everything_back() {
    use rssp::hsm::KeyId;
    let server = TestServer::start().await;
    let signer = server.provision_with_quota("doc-hsm-failure", KeyKind::EcP256, 2, None, Some(10)).await;
    let token = server.login("v2", &signer).await;
    let documents = [b"first".to_vec(), b"second".to_vec()];
    let sad = authorize(&server, &token, &signer, &[sha256(&documents[0]), sha256(&documents[1])]).await;
    let row = {
        let mut conn = server.services().conn().unwrap();
        rssp::db::credentials::by_id(&mut conn, &signer.credential_id).unwrap().unwrap()
    };
    assert!(server.services().keystore.destroy(&KeyId::from_hex(&row.key_id).unwrap()).unwrap());

    let (status, body) = sign_doc(
        &server,
        &token,
        json!({"credentialID": signer.credential_id, "SAD": sad, "documents": documents.iter().map(|d|
            json!({"document": b64(d), "signature_format": "C", "conformance_level": "Ades-B-T", "signAlgo": ES256})
        ).collect::<Vec<_>>()}),
    )
    .await;
    assert!(status >= 500, "{status} {body}");
    assert!(body.get("SignatureObject").is_none() && body.get("DocumentWithSignature").is_none(), "{body}");
    assert_eq!(quota_used(&server, &signer.credential_id), 0, "two signatures and two time-stamps refunded");
    let mut conn = server.services().conn().unwrap();
    let digest = rssp::domain::secrets::token_digest(&sad);
    let sad_row = rssp::db::sads::find(&mut conn, &digest).unwrap().unwrap();
    assert_eq!(sad_row.used, 0, "the SAD's budget is whole again");
    let mut left: Vec<&str> = sad_row.hashes.split(',').filter(|h| !h.is_empty()).collect();
    left.sort();
    let mut approved: Vec<String> = documents.iter().map(|d| hex::encode(sha256(d))).collect();
    approved.sort();
    assert_eq!(left, approved, "both documents are authorised again");
    drop(conn);
    use diesel::prelude::*;
    use rssp::db::schema::audit_log;
    let mut conn = server.services().db.get().unwrap();
    let refunds: i64 = audit_log::table
        .filter(audit_log::event.eq("signatures.signDoc"))
        .filter(audit_log::outcome.eq("refused"))
        .filter(audit_log::detail.like("%2 signatures and 4 transactions refunded%"))
        .count()
        .get_result(&mut *conn)
        .unwrap();
    assert_eq!(refunds, 1);
}

/// The SAD binds the digest made with the signature algorithm's hash: a document authorised as its
/// SHA-256 digest is not signed with SHA-384 (403). `rsaEncryption` takes the hash from
/// `hashAlgorithmOID`, and RSASSA-PSS from its parameters; openssl verifies both.
#[tokio::test]
async fn the_hash_is_the_signature_algorithm_s_and_rsa_pkcs1_and_pss_verify() {
    let server = TestServer::start().await;
    let judge = Judge::of(&server);
    let signer = server.provision("doc-rsa", KeyKind::Rsa2048, 2, None).await;
    let token = server.login("v2", &signer).await;
    let raw = b"signed with rsaEncryption and an explicit hash".to_vec();
    let pss = b"signed with RSASSA-PSS".to_vec();
    let sad = authorize(&server, &token, &signer, &[sha256(&raw), sha256(&pss)]).await;
    let document = |bytes: &[u8], extra: Value| {
        let mut entry =
            json!({"document": b64(bytes), "signature_format": "C", "signed_envelope_property": "Detached"});
        entry.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({"credentialID": signer.credential_id, "SAD": sad, "documents": [entry]})
    };
    let (status, body) = sign_doc(&server, &token, document(&raw, json!({"signAlgo": "1.2.840.113549.1.1.12"}))).await;
    assert_error(status, &body, 403, "invalid_hash", "does not match authorized hash");

    let (status, body) = sign_doc(
        &server,
        &token,
        document(&raw, json!({"signAlgo": "1.2.840.113549.1.1.1", "hashAlgorithmOID": SHA256})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(judge.cms_verify("raw", &the_one(&body, "SignatureObject"), Some(&raw)), Some(raw.clone()));

    let params = "MDSgDzANBglghkgBZQMEAgEFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgEFAKIDAgEg";
    let (status, body) = sign_doc(
        &server,
        &token,
        document(&pss, json!({"signAlgo": "1.2.840.113549.1.1.10", "signAlgoParams": params})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let cms = the_one(&body, "SignatureObject");
    assert_eq!(judge.cms_verify("pss", &cms, Some(&pss)), Some(pss.clone()));
    assert_eq!(signer_info(&cms).signature_algorithm.oid.to_string(), "1.2.840.113549.1.1.10");
}

/// Refusals the ledger makes, after the request's own checks passed: a document twice when the SAD
/// covers it once (403), an expired SAD; each spends nothing. One SAD is one budget across signHash and
/// signDoc: a hash signed through one is gone for the other.
#[tokio::test]
async fn the_ledger_refuses_what_the_sad_does_not_cover_and_the_sad_is_one_budget_for_both_methods() {
    let server = TestServer::start().await;
    let signer = server.provision_with_quota("doc-ledger", KeyKind::EcP256, 3, None, Some(10)).await;
    let token = server.login("v2", &signer).await;
    let once = b"authorised once".to_vec();
    let raw_hash = sha256(b"signed through signHash");
    let sad = authorize(&server, &token, &signer, &[sha256(&once), raw_hash.clone()]).await;
    let documents = |docs: &[&[u8]]| {
        json!({"credentialID": signer.credential_id, "SAD": sad, "documents": docs.iter().map(|d|
            json!({"document": b64(d), "signature_format": "C", "signAlgo": ES256})).collect::<Vec<_>>()})
    };
    let (status, body) = sign_doc(&server, &token, documents(&[&once, &once])).await;
    assert_error(status, &body, 403, "invalid_hash", "does not match authorized hash");
    assert_eq!(quota_used(&server, &signer.credential_id), 0);

    // The raw hash through signHash, the document through signDoc: the same SAD, each hash once.
    let (status, body) = server
        .post(
            "/csc/v2/signatures/signHash",
            Some(&token),
            json!({"credentialID": signer.credential_id, "SAD": sad, "hashes": [b64(&raw_hash)],
                   "hashAlgorithmOID": SHA256, "signAlgo": ES256}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let digest_body = json!({"credentialID": signer.credential_id, "SAD": sad, "documentDigests": [
        {"hashes": [b64(&raw_hash)], "hashAlgorithmOID": SHA256, "signature_format": "C", "signAlgo": ES256}]});
    let (status, body) = sign_doc(&server, &token, digest_body).await;
    assert_error(status, &body, 403, "invalid_hash", "does not match authorized hash");
    let (status, body) = sign_doc(&server, &token, documents(&[&once])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(quota_used(&server, &signer.credential_id), 2);

    // A SAD past its lifetime signs nothing.
    let later = b"authorised, then too late".to_vec();
    let sad = authorize(&server, &token, &signer, std::slice::from_ref(&sha256(&later))).await;
    server.clock.advance(server.services().config.security.sad_max_lifetime_secs + 1);
    let (status, body) = sign_doc(
        &server,
        &token,
        json!({"credentialID": signer.credential_id, "SAD": sad, "documents": [
            {"document": b64(&later), "signature_format": "C", "signAlgo": ES256}]}),
    )
    .await;
    assert_error(status, &body, 400, "invalid_request", "SAD expired");
    assert_eq!(quota_used(&server, &signer.credential_id), 2);
}

/// More signatures than `security.max_hashes_per_request`, or more documents than
/// `security.max_signdoc_document_bytes` allows in one body, are refused before anything is spent.
#[tokio::test]
async fn too_many_signatures_or_too_large_a_body_is_refused() {
    let server = TestServer::start_with(|c| {
        c.security.max_hashes_per_request = 2;
        c.security.max_signdoc_document_bytes = 64 * 1024;
    })
    .await;
    let signer = server.provision("doc-limits", KeyKind::EcP256, 3, None).await;
    let token = server.login("v2", &signer).await;
    let docs: Vec<Vec<u8>> = (0..3).map(|i| format!("document {i}").into_bytes()).collect();
    let sad = authorize(&server, &token, &signer, &docs[..2].iter().map(|d| sha256(d)).collect::<Vec<_>>()).await;
    let body = |docs: &[Vec<u8>]| {
        json!({"credentialID": signer.credential_id, "SAD": sad, "documents": docs.iter().map(|d|
            json!({"document": b64(d), "signature_format": "C", "signAlgo": ES256})).collect::<Vec<_>>()})
    };
    let (status, answer) = sign_doc(&server, &token, body(&docs)).await;
    assert_error(status, &answer, 400, "invalid_request", "Too many signatures: at most 2");
    let large = vec![vec![b'x'; 200 * 1024]];
    let (status, answer) = sign_doc(&server, &token, body(&large)).await;
    assert_error(status, &answer, 413, "invalid_request", "");
    assert_eq!(quota_used(&server, &signer.credential_id), 0);
    let (status, answer) = sign_doc(&server, &token, body(&docs[..2])).await;
    assert_eq!(status, 200, "{answer}");
}

/// The PDFs of the corpus (tests/pdfs: Ghostscript 1.4 and 1.7, qpdf's object streams, linearized and
/// PDF 2.0 files, pyHanko's writer and an incremental update of it, Chromium's print to PDF, pdfTeX and
/// LibreOffice Writer), each signed inside (PAdES, an
/// incremental update that keeps the original bytes) through signDoc: `qpdf --check` finds the result
/// sound and poppler's `pdfsig` finds the signature valid and covering the whole file. A second person
/// then signs the signed file, and both signatures stay valid.
#[tokio::test]
async fn whole_pdfs_are_signed_inside_and_a_second_signature_keeps_the_first_valid() {
    let server = TestServer::start().await;
    let alice = server.provision_with_quota("pdf-alice", KeyKind::EcP256, 20, None, Some(100)).await;
    let bob = server.provision("pdf-bob", KeyKind::Rsa2048, 20, None).await;
    let alice_token = server.login("v2", &alice).await;
    let bob_token = server.login("v2", &bob).await;
    let corpus = pdf_corpus(&[
        "ghostscript-1.4.pdf",
        "ghostscript-1.7.pdf",
        "qpdf-object-streams.pdf",
        "qpdf-linearized.pdf",
        "qpdf-2.0.pdf",
        "pyhanko.pdf",
        "pyhanko-incremental.pdf",
        "chromium.pdf",
        "pdftex.pdf",
        "libreoffice.pdf",
    ]);
    let sad =
        authorize(&server, &alice_token, &alice, &corpus.iter().map(|(_, pdf)| sha256(pdf)).collect::<Vec<_>>()).await;
    let entries: Vec<Value> = corpus
        .iter()
        .enumerate()
        .map(|(i, (_, pdf))| {
            let level = if i % 2 == 0 { "Ades-B-B" } else { "Ades-B-T" };
            json!({"document": b64(pdf), "signature_format": "P", "conformance_level": level, "signAlgo": ES256})
        })
        .collect();
    let (status, body) =
        sign_doc(&server, &alice_token, json!({"credentialID": alice.credential_id, "SAD": sad, "documents": entries}))
            .await;
    assert_eq!(status, 200, "{body}");
    let signed: Vec<Vec<u8>> =
        body["DocumentWithSignature"].as_array().unwrap().iter().map(|d| unb64(d.as_str().unwrap())).collect();
    assert_eq!(signed.len(), corpus.len());
    assert!(body.get("SignatureObject").is_none());
    let dir = tempfile::tempdir().unwrap();
    for ((name, original), signed) in corpus.iter().zip(&signed) {
        assert_eq!(&signed[..original.len()], &original[..], "{name}: the original bytes are kept");
        let path = dir.path().join(name);
        std::fs::write(&path, signed).unwrap();
        qpdf_check(&path);
        assert_eq!(pdfsig_valid(&path), vec![true], "{name}: one valid signature covering the file");
        let before = dir.path().join(format!("original-{name}"));
        std::fs::write(&before, original).unwrap();
        assert_eq!(rendered(&before), rendered(&path), "{name}: the signed PDF looks exactly as the one approved");
    }
    assert_eq!(quota_used(&server, &alice.credential_id), corpus.len() as i32 + 5, "10 signatures, 5 time-stamps");

    // Bob signs what alice signed: an approval after her certification, hers still valid.
    let first = &signed[1];
    let sad = authorize(&server, &bob_token, &bob, std::slice::from_ref(&sha256(first))).await;
    let (status, body) = sign_doc(
        &server,
        &bob_token,
        json!({"credentialID": bob.credential_id, "SAD": sad, "documents": [
            {"document": b64(first), "signature_format": "P", "signAlgo": "1.2.840.113549.1.1.11"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let twice = the_one(&body, "DocumentWithSignature");
    assert_eq!(&twice[..first.len()], &first[..]);
    let path = dir.path().join("twice.pdf");
    std::fs::write(&path, &twice).unwrap();
    qpdf_check(&path);
    assert_eq!(pdfsig_valid(&path), vec![true, true], "both signatures valid");
}

/// PDFs that cannot be signed are refused with the reason, before anything is spent: encrypted (with a
/// user password, or an owner password only), certified with no changes allowed, with an XFA form, and
/// files that are not PDFs at all.
#[tokio::test]
async fn pdfs_that_cannot_be_signed_are_refused_and_spend_nothing() {
    let server = TestServer::start().await;
    let signer = server.provision_with_quota("pdf-refusals", KeyKind::EcP256, 10, None, Some(10)).await;
    let token = server.login("v2", &signer).await;
    let mut cases: Vec<(String, Vec<u8>, &str)> = pdf_corpus(&[
        "encrypted-user-password.pdf",
        "encrypted-owner-password.pdf",
        "certified-no-changes.pdf",
        "xfa-form.pdf",
    ])
    .into_iter()
    .zip(["encrypted", "encrypted", "no changes allowed", "XFA"])
    .map(|((name, pdf), why)| (name, pdf, why))
    .collect();
    cases.push(("text.txt".into(), b"just some text".to_vec(), "not a PDF"));
    cases.push(("truncated.pdf".into(), pdf_corpus(&["pyhanko.pdf"])[0].1[..300].to_vec(), "not a PDF rssp can read"));
    let sad =
        authorize(&server, &token, &signer, &cases.iter().map(|(_, pdf, _)| sha256(pdf)).collect::<Vec<_>>()).await;
    for (name, pdf, why) in &cases {
        let (status, body) = sign_doc(
            &server,
            &token,
            json!({"credentialID": signer.credential_id, "SAD": sad, "documents": [
                {"document": b64(pdf), "signature_format": "P", "signAlgo": ES256}]}),
        )
        .await;
        assert_error(status, &body, 400, "invalid_request", "Invalid array parameter documents");
        assert!(body["error_description"].as_str().unwrap().contains(why), "{name}: {body}");
    }
    assert_eq!(quota_used(&server, &signer.credential_id), 0);
}

pub(crate) fn pdf_corpus(names: &[&str]) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pdfs");
    names.iter().map(|name| (name.to_string(), std::fs::read(dir.join(name)).unwrap())).collect()
}

pub(crate) fn qpdf_check(path: &std::path::Path) {
    let out = std::process::Command::new("qpdf").arg("--check").arg(path).output().expect("qpdf is installed");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && said.contains("No syntax or stream encoding errors"),
        "qpdf --check {path:?}: {said}"
    );
}

/// Whether `pdfsig` finds each signature valid and, for the last, covering the whole file (the
/// certificates are not judged: poppler has no trust store here; openssl and pyHanko judge the chain).
pub(crate) fn pdfsig_valid(path: &std::path::Path) -> Vec<bool> {
    let out = std::process::Command::new("pdfsig").arg("-nocert").arg(path).output().expect("pdfsig is installed");
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    let valid: Vec<bool> =
        said.split("Signature #").skip(1).map(|s| s.contains("Signature Validation: Signature is Valid.")).collect();
    let last = said.split("Signature #").last().unwrap_or_default();
    assert!(last.contains("Total document signed"), "pdfsig {path:?}: the last signature covers the file: {said}");
    valid
}

/// Whole PDFs at B-LT (the certificates, fresh OCSP responses and the CRLs in the PDF's DSS, an update of
/// its own after the signature) and B-LTA (then a document time-stamp over all of it): qpdf finds them
/// sound, pdfsig finds the signature valid, the DSS holds what validates the signer and the TSA, and each
/// time-stamp spends a transaction (B-LT two per signature, B-LTA three).
#[tokio::test]
async fn whole_pdfs_at_b_lt_and_b_lta_carry_their_validation_data() {
    let server = TestServer::start().await;
    let signer = server.provision_with_quota("pdf-long-term", KeyKind::EcP256, 2, None, Some(10)).await;
    let token = server.login("v2", &signer).await;
    let corpus = pdf_corpus(&["ghostscript-1.7.pdf", "qpdf-object-streams.pdf"]);
    let sad = authorize(&server, &token, &signer, &corpus.iter().map(|(_, pdf)| sha256(pdf)).collect::<Vec<_>>()).await;
    let (status, body) = sign_doc(
        &server,
        &token,
        json!({"credentialID": signer.credential_id, "SAD": sad, "documents": [
            {"document": b64(&corpus[0].1), "signature_format": "P", "conformance_level": "Ades-B-LT", "signAlgo": ES256},
            {"document": b64(&corpus[1].1), "signature_format": "P", "conformance_level": "Ades-B-LTA", "signAlgo": ES256},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let signed: Vec<Vec<u8>> =
        body["DocumentWithSignature"].as_array().unwrap().iter().map(|d| unb64(d.as_str().unwrap())).collect();
    assert_eq!(quota_used(&server, &signer.credential_id), 2 + 3);
    let dir = tempfile::tempdir().unwrap();
    for ((name, original), signed) in corpus.iter().zip(&signed) {
        assert_eq!(&signed[..original.len()], &original[..], "{name}");
        let path = dir.path().join(name);
        std::fs::write(&path, signed).unwrap();
        qpdf_check(&path);
        let report = pdfsig(&path);
        assert!(report.contains("Signature Validation: Signature is Valid."), "{name}: {report}");
        let dss = dss_counts(signed);
        assert!(dss.0 >= 5 && dss.1 >= 3 && dss.2 >= 2, "{name}: DSS certificates, OCSP responses, CRLs {dss:?}");
    }
    let lta = String::from_utf8_lossy(&signed[1]).to_string();
    assert!(lta.contains("/DocTimeStamp") && lta.contains("/ETSI.RFC3161"), "a document time-stamp");
    assert!(!String::from_utf8_lossy(&signed[0]).contains("/DocTimeStamp"), "B-LT has none");
}

/// `returnValidationInfo` (or `returnValidationInformation`) answers `validationInfo` with what validates
/// the signature and its time-stamp and is not inside them: OCSP responses (signer, TSA, issuing CA) that
/// openssl verifies and that say "good", both CAs' CRLs, the root and the OCSP responder's certificates.
#[tokio::test]
async fn validation_info_holds_what_the_signature_does_not() {
    let server = TestServer::start().await;
    let judge = Judge::of(&server);
    let signer = server.provision("doc-validation-info", KeyKind::EcP256, 1, None).await;
    let token = server.login("v2", &signer).await;
    let document = b"validated later".to_vec();
    let sad = authorize(&server, &token, &signer, std::slice::from_ref(&sha256(&document))).await;
    let (status, body) = sign_doc(
        &server,
        &token,
        json!({"credentialID": signer.credential_id, "SAD": sad, "returnValidationInformation": true, "documents": [
            {"document": b64(&document), "signature_format": "C", "signed_envelope_property": "Detached",
             "conformance_level": "Ades-B-T", "signAlgo": ES256}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let info = &body["validationInfo"];
    let list = |key: &str| -> Vec<Vec<u8>> {
        info[key].as_array().unwrap().iter().map(|v| unb64(v.as_str().unwrap())).collect()
    };
    let (ocsp, crls, certificates) = (list("ocsp"), list("crl"), list("certificates"));
    assert_eq!((ocsp.len(), crls.len(), certificates.len()), (3, 2, 2), "{info}");
    let services = server.services();
    assert!(certificates.contains(&services.ca.root.certificate_der));
    assert!(!certificates.contains(&services.ca.issuing.certificate_der), "inside the signature already");
    let signer_der = {
        let mut conn = services.conn().unwrap();
        rssp::db::credentials::by_id(&mut conn, &signer.credential_id).unwrap().unwrap().certificate
    };
    let issuing = judge.file("issuing.pem", pem(&services.ca.issuing.certificate_der).as_bytes());
    let cert = judge.file("signer.pem", pem(&signer_der).as_bytes());
    let response = judge.file("signer.ocsp", &ocsp[0]);
    let root = judge.root.to_str().unwrap().to_string();
    let (ok, said) =
        openssl(&["ocsp", "-respin", &response, "-no_nonce", "-issuer", &issuing, "-cert", &cert, "-CAfile", &root]);
    assert!(ok && said.contains("Response verify OK") && said.contains(": good"), "openssl ocsp: {said}");
    let chain = pem(&services.ca.issuing.certificate_der) + &pem(&services.ca.root.certificate_der);
    let chain = judge.file("chain.pem", chain.as_bytes());
    for (i, crl) in crls.iter().enumerate() {
        let path = judge.file(&format!("{i}.crl"), crl);
        let (ok, said) = openssl(&["crl", "-inform", "DER", "-in", &path, "-CAfile", &chain, "-noout"]);
        assert!(ok && said.contains("verify OK"), "openssl crl: {said}");
    }
    // Not asked: not answered.
    let sad = authorize(&server, &token, &signer, std::slice::from_ref(&sha256(&document))).await;
    let (status, body) = sign_doc(
        &server,
        &token,
        json!({"credentialID": signer.credential_id, "SAD": sad, "documents": [
            {"document": b64(&document), "signature_format": "C", "signAlgo": ES256}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("validationInfo").is_none(), "{body}");
}

fn pdfsig(path: &std::path::Path) -> String {
    let out = std::process::Command::new("pdfsig").arg("-nocert").arg(path).output().expect("pdfsig is installed");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// How many certificates, OCSP responses and CRLs the PDF's DSS lists.
fn dss_counts(pdf: &[u8]) -> (usize, usize, usize) {
    let document = lopdf::Document::load_mem(pdf).unwrap();
    let catalog = document.catalog().unwrap();
    let dss = document.dereference(catalog.get(b"DSS").unwrap()).unwrap().1.as_dict().unwrap().clone();
    let count = |key: &[u8]| dss.get(key).ok().and_then(|l| l.as_array().ok()).map_or(0, |l| l.len());
    (count(b"Certs"), count(b"OCSPs"), count(b"CRLs"))
}

/// Hostile PDFs (tests/pdfs/hostile, see its README): an object only an object stream holds, which
/// would render otherwise once copied into the update, and bytes before the header, are refused; a decoy
/// placeholder in the page does not get rssp's signature (rssp's own dictionary does, and the decoy stays
/// empty); a field tree that names itself is walked once. Nothing refused is spent.
#[tokio::test]
async fn hostile_pdfs_are_refused_or_cannot_misdirect_the_signature() {
    let server = TestServer::start().await;
    let signer = server.provision_with_quota("pdf-hostile", KeyKind::EcP256, 10, None, Some(10)).await;
    let token = server.login("v2", &signer).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pdfs/hostile");
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let files = ["shadow-object-stream.pdf", "leading-junk.pdf", "decoy-placeholder.pdf", "repeated-field-kids.pdf"];
    let sad = authorize(&server, &token, &signer, &files.iter().map(|f| sha256(&read(f))).collect::<Vec<_>>()).await;
    let sign = |pdf: Vec<u8>| {
        let body = json!({"credentialID": signer.credential_id, "SAD": sad, "documents": [
            {"document": b64(&pdf), "signature_format": "P", "conformance_level": "Ades-B-T", "signAlgo": ES256}]});
        sign_doc(&server, &token, body)
    };
    let (status, body) = sign(read("shadow-object-stream.pdf")).await;
    assert_error(status, &body, 400, "invalid_request", "damaged");
    let (status, body) = sign(read("leading-junk.pdf")).await;
    assert_error(status, &body, 400, "invalid_request", "does not start with %PDF-");
    assert_eq!(quota_used(&server, &signer.credential_id), 0);

    let (status, body) = sign(read("decoy-placeholder.pdf")).await;
    assert_eq!(status, 200, "{body}");
    let signed = the_one(&body, "DocumentWithSignature");
    let path = std::env::temp_dir().join(format!("decoy-{}.pdf", std::process::id()));
    std::fs::write(&path, &signed).unwrap();
    let report = pdfsig(&path);
    let ours = report.split("Signature #").last().unwrap();
    assert!(
        ours.contains("Signature Validation: Signature is Valid.") && ours.contains("Total document signed"),
        "{report}"
    );
    let decoy = report.split("Signature #").nth(1).unwrap();
    assert!(decoy.contains("Evil") && !decoy.contains("Signature is Valid"), "{report}");
    std::fs::remove_file(&path).unwrap();

    // A PDF the SAD does not cover is refused before it is read: 403, not a parse error.
    let (status, body) = sign(b"%PDF-1.7 not authorised, and no PDF either".to_vec()).await;
    assert_error(status, &body, 403, "invalid_hash", "does not match authorized hash");

    let started = std::time::Instant::now();
    let (status, body) = sign(read("repeated-field-kids.pdf")).await;
    assert!(status == 200 || status == 400, "{status} {body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "the field tree is walked once");
}

/// Every page of a PDF rendered by poppler (`pdftoppm`, grey, 40 dpi), as image bytes.
pub(crate) fn rendered(path: &std::path::Path) -> Vec<Vec<u8>> {
    let out_dir = tempfile::tempdir().unwrap();
    let prefix = out_dir.path().join("page");
    let out = std::process::Command::new("pdftoppm")
        .args(["-r", "40", "-gray"])
        .arg(path)
        .arg(&prefix)
        .output()
        .expect("pdftoppm is installed");
    assert!(out.status.success(), "pdftoppm {path:?}: {}", String::from_utf8_lossy(&out.stderr));
    let mut pages: Vec<_> = std::fs::read_dir(out_dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    pages.sort();
    assert!(!pages.is_empty());
    pages.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

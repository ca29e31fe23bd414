//! The portal's document signing sessions (`/api/v1/signing-sessions`, rssp issue 12): a person sends a
//! PDF to sign visibly and a text file to sign apart, sees what will sign them and what it costs, signs
//! both with one code, and downloads each signed file and `SignedFiles.zip`. Judged by qpdf, poppler
//! (`pdfsig`, and `pdftoppm` for where the appearance is drawn), `openssl cms -verify` and Python's
//! zipfile. Refusals store and spend nothing; another person reaches nothing of a session; exactly one
//! request signs a session; sessions expire and the scheduler deletes them.

use diesel::prelude::*;
use lopdf::{Document, Object};
use rssp::db::schema::{sads, signing_session_documents, signing_sessions};
use serde_json::{json, Value};

use crate::common::journey::Person;
use crate::common::pki::{openssl, pem};
use crate::common::{assert_error, b64, sha256, unb64, TestServer};
use crate::document_signing::{pdf_corpus, pdfsig_valid, qpdf_check, quota_used, rendered};

const SESSIONS: &str = "/api/v1/signing-sessions";

async fn create(server: &TestServer, person: &Person, credential: &str, documents: Value) -> (u16, Value) {
    server.post(SESSIONS, Some(&person.token), json!({"credential_id": credential, "documents": documents})).await
}

async fn sign(server: &TestServer, person: &Person, session: &str, otp: &str) -> (u16, Value) {
    server.post(&format!("{SESSIONS}/{session}/sign"), Some(&person.token), json!({"otp": otp})).await
}

/// GET of a file: (status, content type, Content-Disposition, bytes).
async fn download(server: &TestServer, token: &str, path: &str) -> (u16, String, String, Vec<u8>) {
    let response = server.http.get(format!("{}{path}", server.url)).bearer_auth(token).send().await.unwrap();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let (content_type, disposition) = (header("content-type"), header("content-disposition"));
    (response.status().as_u16(), content_type, disposition, response.bytes().await.unwrap().to_vec())
}

/// Rows in the two tables of signing sessions: (sessions, files).
fn stored_rows(server: &TestServer) -> (i64, i64) {
    let mut conn = server.services().conn().unwrap();
    let sessions: i64 = signing_sessions::table.count().get_result(&mut *conn).unwrap();
    let files: i64 = signing_session_documents::table.count().get_result(&mut *conn).unwrap();
    (sessions, files)
}

/// The person's SADs: (bound hash occurrences not yet spent, sorted; numSignatures; used).
fn sads_of(server: &TestServer, person: &Person) -> Vec<(Vec<Vec<u8>>, i32, i32)> {
    let mut conn = server.services().conn().unwrap();
    let rows: Vec<(String, i32, i32)> = sads::table
        .filter(sads::user_id.eq(person.user_id.as_str()))
        .select((sads::hashes, sads::num_signatures, sads::used))
        .load(&mut *conn)
        .unwrap();
    rows.into_iter()
        .map(|(hashes, n, used)| {
            let mut hashes: Vec<Vec<u8>> =
                hashes.split(',').filter(|h| !h.is_empty()).map(|h| hex::decode(h).unwrap()).collect();
            hashes.sort();
            (hashes, n, used)
        })
        .collect()
}

/// Puts a session in the hands of a sign request that began at `claimed_at` (as a node that is signing
/// it, or died while signing it, leaves it).
fn held_since(server: &TestServer, session: &str, claimed_at: i64) {
    let mut conn = server.services().conn().unwrap();
    diesel::update(signing_sessions::table.find(session))
        .set((signing_sessions::state.eq("signing"), signing_sessions::claimed_at.eq(Some(claimed_at))))
        .execute(&mut *conn)
        .unwrap();
}

fn credential_id(credential: &Value) -> String {
    credential["credential_id"].as_str().unwrap().to_string()
}

/// The zip's entries as Python's zipfile reads them: (name, bytes), after its CRC check of each.
fn unzip(zip: &[u8]) -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("SignedFiles.zip");
    std::fs::write(&path, zip).unwrap();
    let script = "import base64, json, sys, zipfile\n\
                  z = zipfile.ZipFile(sys.argv[1])\n\
                  assert z.testzip() is None\n\
                  print(json.dumps([[i.filename, base64.b64encode(z.read(i)).decode()] for i in z.infolist()]))";
    let out = std::process::Command::new("python3").args(["-c", script]).arg(&path).output().expect("python3");
    assert!(out.status.success(), "zipfile: {}", String::from_utf8_lossy(&out.stderr));
    let entries: Vec<(String, String)> = serde_json::from_slice(&out.stdout).unwrap();
    entries.into_iter().map(|(name, data)| (name, unb64(&data))).collect()
}

/// The signature widgets of a PDF: (page number from 1, /Rect).
fn signature_widgets(pdf: &[u8]) -> Vec<(u32, [f32; 4])> {
    let document = Document::load_mem(pdf).unwrap();
    let pages: Vec<(u32, lopdf::ObjectId)> = document.get_pages().into_iter().collect();
    let mut widgets = Vec::new();
    for object in document.objects.values() {
        let Ok(dict) = object.as_dict() else { continue };
        let is_sig = dict.get(b"FT").and_then(Object::as_name).is_ok_and(|n| n == b"Sig");
        let Ok(rect) = dict.get(b"Rect").and_then(Object::as_array) else { continue };
        if !is_sig {
            continue;
        }
        let page_ref = dict.get(b"P").and_then(Object::as_reference).unwrap();
        let page = pages.iter().find(|(_, id)| *id == page_ref).map(|(n, _)| *n).unwrap();
        let number = |o: &Object| o.as_float().or_else(|_| o.as_i64().map(|i| i as f32)).unwrap();
        widgets.push((page, [number(&rect[0]), number(&rect[1]), number(&rect[2]), number(&rect[3])]));
    }
    widgets
}

/// Where two renderings of a page (PGM, 40 dpi) differ, as a box in PDF points: (x1, y1, x2, y2).
fn changed_box(before: &[u8], after: &[u8]) -> Option<[f32; 4]> {
    fn header(pgm: &[u8]) -> (usize, usize, &[u8]) {
        let text = String::from_utf8_lossy(&pgm[..20]).to_string();
        let fields: Vec<&str> = text.split_whitespace().take(4).collect();
        assert_eq!(fields[0], "P5");
        let (w, h): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
        (w, h, &pgm[pgm.len() - w * h..])
    }
    let (w, h, a) = header(before);
    let (w2, h2, b) = header(after);
    assert_eq!((w, h), (w2, h2), "the page keeps its size");
    let scale = 72.0 / 40.0;
    let mut changed: Option<[f32; 4]> = None;
    for y in 0..h {
        for x in 0..w {
            if a[y * w + x] != b[y * w + x] {
                let (px, py) = (x as f32 * scale, (h - 1 - y) as f32 * scale);
                let c = changed.get_or_insert([px, py, px, py]);
                *c = [c[0].min(px), c[1].min(py), c[2].max(px), c[3].max(py)];
            }
        }
    }
    changed
}

/// A person signs a PDF visibly (at B-T, with reason and location) and a text file apart with one code,
/// and downloads them one by one and as SignedFiles.zip.
#[tokio::test]
async fn a_person_signs_a_visible_pdf_and_a_text_file_with_one_code_and_downloads_them() {
    let server = TestServer::start().await;
    let (person, credential) = server.certified_person("sessions@example.com", "+38640111222").await;
    let credential = credential_id(&credential);
    let pdf = pdf_corpus(&["ghostscript-1.7.pdf"]).remove(0).1;
    let text = b"The minutes of the meeting, as agreed.\n".to_vec();
    let rect = [60.0, 60.0, 300.0, 130.0];
    let (status, body) = create(
        &server,
        &person,
        &credential,
        json!([
            {"name": "Contract é.pdf", "content": b64(&pdf), "conformance_level": "ades-b-t",
             "visible_signature": {"page": 1, "rect": rect}, "reason": "I agree", "location": "Ljubljana"},
            {"name": "minutes.txt", "content": b64(&text)}
        ]),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["session_id"].as_str().unwrap().to_string();
    assert_eq!(body["state"], "ready");
    assert_eq!(body["credential"]["credential_id"], credential.as_str());
    assert_eq!(unb64(body["certificate"].as_str().unwrap()), server.credential_certificate(&credential));
    assert_eq!(body["hash_algorithm_oid"], "2.16.840.1.101.3.4.2.1");
    assert_eq!(body["transactions"], 3, "a B-T PDF (signature and time-stamp) and a B-B .p7s");
    let docs = body["documents"].as_array().unwrap();
    assert_eq!(docs[0]["output"], "pdf");
    assert_eq!(docs[0]["conformance_level"], "Ades-B-T");
    assert_eq!(unb64(docs[0]["digest"].as_str().unwrap()), sha256(&pdf));
    assert_eq!(docs[0]["visible_signature"]["page"], 1);
    assert_eq!(docs[1]["output"], "p7s");
    assert_eq!(docs[1]["signed_name"], "minutes.txt.p7s");
    assert_eq!(unb64(docs[1]["digest"].as_str().unwrap()), sha256(&text));
    assert!(body["signed_files_zip"].is_null() && docs[0]["download"].is_null());
    let (status, _, _, _) = download(&server, &person.token, &format!("{SESSIONS}/{id}/documents/0")).await;
    assert_eq!(status, 409, "nothing to download before the signing");
    assert_eq!(quota_used(&server, &credential), 0, "a session spends nothing until it is signed");

    assert!(sads_of(&server, &person).is_empty());
    // The front end sends back the digests the person saw: signed only if the files are still those.
    let shown: Vec<Value> = docs.iter().map(|d| d["digest"].clone()).collect();
    let (status, body) = server
        .post(
            &format!("{SESSIONS}/{id}/sign"),
            Some(&person.token),
            json!({"otp": server.person_otp(&person), "digests": shown}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "signed");
    let (_, audit) = server.get("/api/admin/v1/audit?limit=500", Some(&server.operator_key())).await;
    let record = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["event"] == "signatures.signDoc" && r["outcome"] == "success")
        .cloned()
        .expect("the signatures' audit record");
    let detail = record["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("signing session {id}")), "{detail}");
    assert!(detail.contains(&hex::encode(sha256(&pdf))) && detail.contains(&hex::encode(sha256(&text))), "{detail}");
    assert_eq!(quota_used(&server, &credential), 3);
    assert_eq!(sads_of(&server, &person), vec![(vec![], 2, 2)], "one SAD for the two files, each bound hash spent");

    // The PDF: signed inside, an incremental update, valid, the appearance where it was asked for.
    let (status, content_type, disposition, signed_pdf) =
        download(&server, &person.token, body["documents"][0]["download"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/pdf");
    assert!(disposition.contains("filename*=UTF-8''Contract%20%C3%A9.pdf"), "{disposition}");
    assert_eq!(&signed_pdf[..pdf.len()], &pdf[..], "the original bytes are kept");
    let dir = tempfile::tempdir().unwrap();
    let (before, after) = (dir.path().join("before.pdf"), dir.path().join("after.pdf"));
    std::fs::write(&before, &pdf).unwrap();
    std::fs::write(&after, &signed_pdf).unwrap();
    qpdf_check(&after);
    assert_eq!(pdfsig_valid(&after), vec![true]);
    let said = String::from_utf8_lossy(
        &std::process::Command::new("pdfsig").arg("-nocert").arg(&after).output().unwrap().stdout,
    )
    .to_string();
    assert!(said.contains("Signature Type: ETSI.CAdES.detached"), "{said}");
    assert_eq!(signature_widgets(&signed_pdf), vec![(1, rect)], "one widget, on page 1, at the rectangle asked for");
    let changed = changed_box(&rendered(&before)[0], &rendered(&after)[0]).expect("the appearance is drawn");
    let margin = 2.0;
    assert!(
        changed[0] >= rect[0] - margin
            && changed[1] >= rect[1] - margin
            && changed[2] <= rect[2] + margin
            && changed[3] <= rect[3] + margin,
        "the page changed only inside the rectangle: {changed:?} in {rect:?}"
    );
    assert!(changed[2] - changed[0] > 100.0 && changed[3] - changed[1] > 30.0, "and fills it: {changed:?}");

    // The text file: a detached CMS that openssl verifies against the file, up to rssp's root.
    let (status, content_type, disposition, p7s) =
        download(&server, &person.token, &format!("{SESSIONS}/{id}/documents/1")).await;
    assert_eq!((status, content_type.as_str()), (200, "application/pkcs7-signature"));
    assert!(disposition.contains("filename=\"minutes.txt.p7s\""), "{disposition}");
    let root = dir.path().join("root.pem");
    std::fs::write(&root, pem(&server.services().ca.root.certificate_der)).unwrap();
    let (p7s_path, text_path) = (dir.path().join("minutes.txt.p7s"), dir.path().join("minutes.txt"));
    std::fs::write(&p7s_path, &p7s).unwrap();
    std::fs::write(&text_path, &text).unwrap();
    let (ok, said) = openssl(&[
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-purpose",
        "any",
        "-in",
        p7s_path.to_str().unwrap(),
        "-content",
        text_path.to_str().unwrap(),
        "-CAfile",
        root.to_str().unwrap(),
        "-out",
        "/dev/null",
    ]);
    assert!(ok && said.contains("Verification successful"), "{said}");

    // The zip: the PDF under its name, the text file beside its .p7s, the same bytes as downloaded.
    let (status, content_type, disposition, zip) =
        download(&server, &person.token, body["signed_files_zip"].as_str().unwrap()).await;
    assert_eq!((status, content_type.as_str()), (200, "application/zip"));
    assert!(disposition.contains("SignedFiles.zip"), "{disposition}");
    assert_eq!(
        unzip(&zip),
        vec![
            ("Contract é.pdf".to_string(), signed_pdf.clone()),
            ("minutes.txt".to_string(), text.clone()),
            ("minutes.txt.p7s".to_string(), p7s.clone())
        ]
    );

    // Signed once: a second code signs nothing more.
    let (status, body) = sign(&server, &person, &id, &server.person_otp(&person)).await;
    assert_error(status, &body, 409, "conflict", "signed already");
    assert_eq!(quota_used(&server, &credential), 3);
    let (status, body) = server.get(SESSIONS, Some(&person.token)).await;
    assert_eq!(status, 200);
    assert_eq!(body["signing_sessions"].as_array().unwrap().len(), 1);
    assert_eq!(stored_rows(&server), (1, 2));
}

/// Everything a session cannot do is refused when it is created, with the reason, storing and spending
/// nothing; a wrong code leaves the session ready, and the right one then signs it.
#[tokio::test]
async fn refusals_store_nothing_and_spend_nothing() {
    let server = TestServer::start_with(|config| {
        config.signing_sessions.max_documents = 3;
        config.signing_sessions.max_document_bytes = 200_000;
        config.signing_sessions.max_session_bytes = 300_000;
        config.signing_sessions.max_open_per_person = 2;
        // 4 transactions: two B-T files (4) fit, three do not.
        for package in &mut config.lifecycle.packages {
            package.transactions = 4;
        }
    })
    .await;
    let (person, credential) = server.certified_person("refusals@example.com", "+38640111333").await;
    let credential = credential_id(&credential);
    let pdf = pdf_corpus(&["ghostscript-1.4.pdf"]).remove(0).1;
    let doc = |name: &str, content: &[u8]| json!({"name": name, "content": b64(content)});
    let mut cases: Vec<(Value, u16, &str)> =
        pdf_corpus(&["encrypted-user-password.pdf", "certified-no-changes.pdf", "xfa-form.pdf"])
            .into_iter()
            .zip(["encrypted", "no changes allowed", "XFA"])
            .map(|((name, content), why)| (json!([doc(&name, &content)]), 400, why))
            .collect();
    let with = |extra: Value| {
        let mut d = doc("a.pdf", &pdf);
        d.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!([d])
    };
    cases.extend([
        (json!([{"name": "a.pdf", "content": b64(b"not a pdf"), "output": "pdf"}]), 400, "not a PDF"),
        (with(json!({"visible_signature": {"page": 9, "rect": [0, 0, 100, 50]}})), 400, "no page 9"),
        (with(json!({"visible_signature": {"page": 1, "rect": [100, 0, 100, 50]}})), 400, "positive width"),
        (with(json!({"output": "p7s", "conformance_level": "Ades-B-LTA"})), 400, "Ades-B-T or Ades-B-LT"),
        (with(json!({"output": "p7s", "reason": "why"})), 400, "for a PDF signed inside"),
        (with(json!({"conformance_level": "Ades-B-X"})), 400, "conformance_level"),
        (with(json!({"reason": "a\u{7}b"})), 400, "control character"),
        (json!([doc("../a.pdf", &pdf)]), 400, "not a plain file name"),
        (json!([doc("C:x.pdf", &pdf)]), 400, "not a plain file name"),
        (json!([doc("a.pdf", &pdf), doc("A.PDF", &pdf)]), 400, "two files would be called"),
        (json!([doc("x", b"x"), doc("x.p7s", &pdf)]), 400, "two files would be called \"x.p7s\""),
        (json!([doc("e.txt", b"")]), 400, "empty"),
        (json!([]), 400, "at least one document"),
        (json!([doc("1", b"1"), doc("2", b"2"), doc("3", b"3"), doc("4", b"4")]), 400, "at most 3"),
        (json!([doc("big.bin", &vec![7u8; 200_001])]), 413, "larger than 200000 bytes"),
        (json!([doc("a", &vec![1u8; 150_000]), doc("b", &vec![2u8; 150_001])]), 413, "together"),
        (
            json!([{"name": "1.txt", "content": b64(b"1"), "conformance_level": "Ades-B-T"},
                   {"name": "2.txt", "content": b64(b"2"), "conformance_level": "Ades-B-T"},
                   {"name": "3.txt", "content": b64(b"3"), "conformance_level": "Ades-B-T"}]),
            400,
            "quota exhausted",
        ),
        (json!([{"name": "b64.txt", "content": "***"}]), 400, "content"),
    ]);
    for (documents, want_status, why) in &cases {
        let (status, body) = create(&server, &person, &credential, documents.clone()).await;
        assert_eq!(status, *want_status, "{why}: {body}");
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(description.contains(why), "{why}: {body}");
    }
    let (status, body) = create(&server, &person, "no-such-credential", json!([doc("a.txt", b"a")])).await;
    assert_error(status, &body, 404, "not_found", "No such credential");
    let (status, body) = server.get(SESSIONS, Some(&person.token)).await;
    assert_eq!((status, body["signing_sessions"].as_array().unwrap().len()), (200, 0), "nothing stored: {body}");
    assert_eq!(stored_rows(&server), (0, 0), "nothing stored");

    // Digests other than the session's: refused before any code is used. A wrong code: refused, nothing
    // spent, the session still ready; the right code signs it.
    let (status, body) = create(&server, &person, &credential, json!([doc("a.pdf", &pdf)])).await;
    assert_eq!(status, 201, "{body}");
    let id = body["session_id"].as_str().unwrap().to_string();
    let (status, body) = server
        .post(
            &format!("{SESSIONS}/{id}/sign"),
            Some(&person.token),
            json!({"otp": server.person_otp(&person), "digests": [b64(&sha256(b"another file"))]}),
        )
        .await;
    assert_error(status, &body, 409, "conflict", "not those whose digests were sent");
    assert!(sads_of(&server, &person).is_empty(), "no code used");
    let right = server.person_otp(&person);
    let wrong = if right == "000000" { "111111" } else { "000000" };
    let (status, body) = sign(&server, &person, &id, wrong).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_otp", "{body}");
    let (_, body) = server.get(&format!("{SESSIONS}/{id}"), Some(&person.token)).await;
    assert_eq!(body["state"], "ready");
    assert_eq!(quota_used(&server, &credential), 0, "every refusal spent nothing");
    let (status, body) = sign(&server, &person, &id, &right).await;
    assert_eq!((status, &body["state"]), (200, &json!("signed")), "{body}");
    assert_eq!(quota_used(&server, &credential), 1);

    // Two sessions open at most (signed ones count until they expire); a third is refused, stores nothing.
    let (status, body) = create(&server, &person, &credential, json!([doc("b.txt", b"b")])).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = create(&server, &person, &credential, json!([doc("c.txt", b"c")])).await;
    assert_error(status, &body, 409, "conflict", "2 signing sessions open");
    assert_eq!(stored_rows(&server), (2, 2));
}

/// Another person reaches nothing of a session: not its view, not its signing (with their own valid
/// code), not its files, not its deletion, not the credential; without a token, nothing at all.
#[tokio::test]
async fn another_person_reaches_nothing_of_a_session() {
    let server = TestServer::start().await;
    let (alice, alice_credential) = server.certified_person("alice.sessions@example.com", "+38640111444").await;
    let (bob, _) = server.certified_person("bob.sessions@example.com", "+38640111555").await;
    let alice_credential = credential_id(&alice_credential);
    let (status, body) =
        create(&server, &alice, &alice_credential, json!([{"name": "a.txt", "content": b64(b"alice's")}])).await;
    assert_eq!(status, 201, "{body}");
    let id = body["session_id"].as_str().unwrap().to_string();

    let (status, body) = server.get(&format!("{SESSIONS}/{id}"), Some(&bob.token)).await;
    assert_error(status, &body, 404, "not_found", "No such signing session");
    let (status, body) = sign(&server, &bob, &id, &server.person_otp(&bob)).await;
    assert_error(status, &body, 404, "not_found", "No such signing session");
    for path in [format!("{SESSIONS}/{id}/documents/0"), format!("{SESSIONS}/{id}/SignedFiles.zip")] {
        let (status, _, _, _) = download(&server, &bob.token, &path).await;
        assert_eq!(status, 404, "{path}");
    }
    let response = server.http.delete(format!("{}{SESSIONS}/{id}", server.url)).bearer_auth(&bob.token).send().await;
    assert_eq!(response.unwrap().status().as_u16(), 404);
    let (status, body) =
        create(&server, &bob, &alice_credential, json!([{"name": "b.txt", "content": b64(b"bob's")}])).await;
    assert_error(status, &body, 404, "not_found", "No such credential");
    let (_, body) = server.get(SESSIONS, Some(&bob.token)).await;
    assert_eq!(body["signing_sessions"], json!([]));
    let (status, _) = server.get(&format!("{SESSIONS}/{id}"), None).await;
    assert_eq!(status, 401);

    let (_, body) = server.get(&format!("{SESSIONS}/{id}"), Some(&alice.token)).await;
    assert_eq!(body["state"], "ready", "alice's session is untouched");
    assert_eq!(quota_used(&server, &alice_credential), 0);
    let response = server.http.delete(format!("{}{SESSIONS}/{id}", server.url)).bearer_auth(&alice.token).send().await;
    assert_eq!(response.unwrap().status().as_u16(), 204, "alice deletes her own");
    let (status, _) = server.get(&format!("{SESSIONS}/{id}"), Some(&alice.token)).await;
    assert_eq!(status, 404);
}

/// Two sign requests at once, each with a valid code: exactly one signs, the other is refused, and the
/// quota is spent once.
#[tokio::test]
async fn of_two_sign_requests_at_once_exactly_one_signs() {
    let server = TestServer::start().await;
    let (person, credential) = server.certified_person("race.sessions@example.com", "+38640111666").await;
    let credential = credential_id(&credential);
    let (status, body) =
        create(&server, &person, &credential, json!([{"name": "r.txt", "content": b64(b"raced")}])).await;
    assert_eq!(status, 201, "{body}");
    let id = body["session_id"].as_str().unwrap().to_string();
    let (first, second) = (server.person_otp(&person), server.person_otp(&person));
    let ((s1, b1), (s2, b2)) = tokio::join!(sign(&server, &person, &id, &first), sign(&server, &person, &id, &second));
    let mut statuses = [s1, s2];
    statuses.sort_unstable();
    // The loser is refused for the session (409), not for its code: the claim decides, before any code.
    assert_eq!(statuses, [200, 409], "{b1} {b2}");
    assert_eq!(quota_used(&server, &credential), 1, "one signature spent");
    assert_eq!(sads_of(&server, &person).len(), 1, "one code used");
}

/// A session a sign request holds cannot be deleted or signed by another request; when the request that
/// held it is long gone (its node died), the next one takes it over and signs.
#[tokio::test]
async fn a_session_being_signed_is_left_alone_until_its_hold_goes_stale() {
    let server = TestServer::start().await;
    let (person, credential) = server.certified_person("held.sessions@example.com", "+38640111888").await;
    let credential = credential_id(&credential);
    let same = b"the same words".to_vec();
    let (status, body) = create(
        &server,
        &person,
        &credential,
        json!([{"name": "one.txt", "content": b64(&same)}, {"name": "two.txt", "content": b64(&same)}]),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["session_id"].as_str().unwrap().to_string();
    held_since(&server, &id, server.now());
    let delete = || server.http.delete(format!("{}{SESSIONS}/{id}", server.url)).bearer_auth(&person.token).send();
    let response = delete().await.unwrap();
    assert_eq!(response.status().as_u16(), 409, "not deleted while it is being signed");
    let (status, body) = sign(&server, &person, &id, &server.person_otp(&person)).await;
    assert_error(status, &body, 409, "conflict", "being signed");
    assert!(sads_of(&server, &person).is_empty(), "the refused request used no code");

    held_since(&server, &id, server.now() - 601);
    let (status, body) = sign(&server, &person, &id, &server.person_otp(&person)).await;
    assert_eq!((status, &body["state"]), (200, &json!("signed")), "a stale hold is taken over: {body}");
    assert_eq!(sads_of(&server, &person), vec![(vec![], 2, 2)], "the same file twice: two occurrences, both spent");
    assert_eq!(quota_used(&server, &credential), 2);
    assert_eq!(delete().await.unwrap().status().as_u16(), 204);
    assert_eq!(stored_rows(&server), (0, 0));
}

/// An unsigned session lasts `lifetime_secs` from its creation, a signed one `kept_after_signing_secs`
/// from its signing; then it is gone, and the scheduler deletes it with its files.
#[tokio::test]
async fn sessions_expire_and_the_scheduler_deletes_them() {
    let server = TestServer::start_with(|config| {
        config.signing_sessions.lifetime_secs = 600;
        config.signing_sessions.kept_after_signing_secs = 1800;
    })
    .await;
    let (person, credential) = server.certified_person("expiry.sessions@example.com", "+38640111777").await;
    let credential = credential_id(&credential);
    let new_session = || create(&server, &person, &credential, json!([{"name": "e.txt", "content": b64(b"e")}]));
    let (_, unsigned) = new_session().await;
    let (_, signed) = new_session().await;
    let (unsigned, signed) = (unsigned["session_id"].as_str().unwrap(), signed["session_id"].as_str().unwrap());
    let (status, body) = sign(&server, &person, signed, &server.person_otp(&person)).await;
    assert_eq!(status, 200, "{body}");

    server.clock.advance(601);
    let operator = server.operator_key();
    let run_jobs = || server.post("/api/admin/v1/scheduler/run", Some(&operator), json!({}));
    let (status, _) = server.get(&format!("{SESSIONS}/{unsigned}"), Some(&person.token)).await;
    assert_eq!(status, 404, "the unsigned session expired");
    let (_, body) = sign(&server, &person, unsigned, &server.person_otp(&person)).await;
    assert_eq!(body["error"], "not_found", "an expired session cannot be signed");
    let (status, body) = run_jobs().await;
    assert_eq!((status, &body["signing_sessions_deleted"]), (200, &json!(1)), "{body}");
    let (status, _, _, _) = download(&server, &person.token, &format!("{SESSIONS}/{signed}/SignedFiles.zip")).await;
    assert_eq!(status, 200, "the signed files are kept longer");

    server.clock.advance(1800);
    let (status, _, _, _) = download(&server, &person.token, &format!("{SESSIONS}/{signed}/documents/0")).await;
    assert_eq!(status, 404);
    assert_eq!(stored_rows(&server), (1, 1));
    let (_, body) = run_jobs().await;
    assert_eq!(body["signing_sessions_deleted"], 1, "{body}");
    assert_eq!(stored_rows(&server), (0, 0), "the sessions and their files are gone");
    let (_, body) = run_jobs().await;
    assert_eq!(body["signing_sessions_deleted"], 0, "{body}");
}

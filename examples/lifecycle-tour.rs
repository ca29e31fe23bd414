//! The lifecycle tour: one made-up person walks the whole journey on a running rssp server, over HTTP
//! only: registration, activation (e-mail link and SMS code), login, terms, authenticator pairing, an
//! order paid by webhook, the identity check, issuance, CSC v1 signing until the transaction quota is
//! spent, rekey, revocation and reissue, and a signing session: a PDF signed visibly and a text file
//! signed apart with one code, downloaded as `SignedFiles.zip`. The tour also plays the payment provider and the operator, which
//! a server in development mode allows: e-mail and SMS wait in the outbox, and the operator key and the
//! webhook secrets are in `<data-dir>/dev-secrets.json`.
//!
//! Start the server in the repository root first (development mode is the default), then the tour:
//!
//! ```text
//! cargo run --release -- serve
//! cargo run --release --example lifecycle-tour -- --url http://127.0.0.1:8080 [--data-dir rssp-data]
//! ```
//!
//! Every step prints `[ok] step: detail`. The first failure prints `[FAIL] step: reason` (with the
//! server's status and body) and exits with status 1. The server accepts each 30-second authenticator
//! time step once, and the tour needs about a dozen codes, so a run takes a few minutes.

// A separate crate that inherits [lints]: here a panic is a failed test or run, which is what it
// should be, and nothing outside uses its items, so they need no docs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::thread::sleep;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use clap::Parser;
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::Method;
use rssp::domain::{secrets, totp};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const PASSWORD: &str = "Tour-password-2026";
const GIVEN_NAME: &str = "Tina";
const SURNAME: &str = "Tourist";
/// The signature algorithms the tour can use with SHA-256 digests, whichever key type the server issues.
const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
const ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";
/// The most hashes the tour puts in one authorisation, even if the credential allows more.
const BATCH: i64 = 100;

/// A well-formed PDF of the given objects (numbered from 1, the first the catalog), with its
/// cross-reference table and trailer.
fn pdf_of(objects: &[String]) -> Vec<u8> {
    let mut pdf = b"%PDF-1.4\n%tour\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    pdf
}

/// A small but well-formed PDF (the server checks the structure: header, xref table, trailer, %%EOF).
fn identity_document() -> Vec<u8> {
    pdf_of(&["<< /Type /Catalog /Pages 2 0 R >>".into(), "<< /Type /Pages /Kids [] /Count 0 >>".into()])
}

/// A one-page A4 agreement to sign in a signing session.
fn agreement() -> Vec<u8> {
    let text = "BT /F1 20 Tf 72 760 Td (The tour's agreement) Tj ET";
    pdf_of(&[
        "<< /Type /Catalog /Pages 2 0 R >>".into(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".into(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .into(),
        format!("<< /Length {} >>\nstream\n{text}\nendstream", text.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".into(),
    ])
}

#[derive(Parser)]
#[command(about = "Walks one person through the whole rssp lifecycle against a server in development mode")]
struct Args {
    /// Base URL of the running `rssp serve`.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The server's data directory, where it wrote dev-secrets.json.
    #[arg(long, default_value = "rssp-data")]
    data_dir: PathBuf,
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    Basic(&'a str, &'a str),
}

struct Tour {
    base: String,
    http: Client,
    operator_key: String,
    payment_secret: String,
    /// The step under way, named when it fails.
    step: String,
    /// Steps begun so far: each step's number, counted so that no two steps share one.
    steps_begun: usize,
    /// Current document versions, from GET /api/v1/documents.
    documents: Value,
    email: String,
    phone: String,
    access_token: String,
    csc_token: String,
    totp_seed: Vec<u8>,
    /// The server takes each TOTP time step once per person: the last step the tour used.
    last_step: Option<i64>,
    /// Counts the digests made, so that no two signed digests are alike.
    hashes_made: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut tour = match Tour::new(&args) {
        Ok(tour) => tour,
        Err(reason) => {
            eprintln!("[FAIL] setup: {reason}");
            return ExitCode::FAILURE;
        }
    };
    match run(&mut tour) {
        Ok(()) => {
            println!("lifecycle tour complete");
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("[FAIL] {}: {reason}", tour.step);
            ExitCode::FAILURE
        }
    }
}

fn run(t: &mut Tour) -> Result<(), String> {
    t.begin("catalogue");
    let packages = t.get("/api/v1/packages", Auth::None)?;
    let mut offers = Vec::new();
    for p in array_at(&packages, "/packages")? {
        let price = money(int_at(p, "/gross_cents")?, str_at(p, "/currency")?);
        offers.push(format!("{} {price} ({} signatures)", show(&p["id"]), show(&p["transactions"])));
    }
    t.documents = t.get("/api/v1/documents", Auth::None)?;
    t.ok(format!("packages {}; documents {}", offers.join(", "), t.documents));

    t.begin("register");
    let privacy = str_at(&t.documents, "/privacy")?.to_string();
    let body = json!({"given_name": GIVEN_NAME, "surname": SURNAME, "email": t.email, "phone": t.phone,
        "privacy_consent": {"accepted": true, "version": privacy}});
    let registered = t.post("/api/v1/registrations", Auth::None, body, 201)?;
    t.ok(format!("{} {} is user {} ({})", t.email, t.phone, show(&registered["user_id"]), show(&registered["status"])));

    t.begin("activate");
    let token = t.read_outbox(&t.email, "activation link", link_token)?;
    let sent = t.post("/api/v1/activation/send-code", Auth::None, json!({"token": token}), 200)?;
    let code = t.read_outbox(&t.phone, "activation code", six_digits)?;
    let body = json!({"token": token, "code": code, "password": PASSWORD});
    let activated = t.post("/api/v1/activation/complete", Auth::None, body, 200)?;
    expect_str(&activated, "/status", "active")?;
    t.ok(format!(
        "link from the e-mail, code {code} from the SMS to {}, account active",
        show(&sent["destination_hint"])
    ));

    t.begin("log in, accept the terms");
    let login = t.post("/api/v1/login", Auth::None, json!({"email": t.email, "password": PASSWORD}), 200)?;
    t.access_token = str_at(&login, "/access_token")?.to_string();
    let terms = str_at(&t.documents, "/terms")?.to_string();
    t.post("/api/v1/consents", t.person(), json!({"document": "terms", "version": terms}), 201)?;
    t.ok(format!("logged in (authenticator {}), terms {terms} accepted", show(&login["totp"]["status"])));

    t.begin("pair the authenticator");
    let pairing = t.post("/api/v1/totp/pairing", t.person(), json!({}), 200)?;
    let png =
        BASE64.decode(str_at(&pairing, "/qr_code_png")?).map_err(|e| format!("qr_code_png is not base64: {e}"))?;
    if !png.starts_with(b"\x89PNG") {
        return Err(format!("qr_code_png is not a PNG, it starts {:02x?}", &png[..png.len().min(8)]));
    }
    let secret = str_at(&pairing, "/secret")?;
    t.totp_seed = secrets::from_base32(secret).ok_or_else(|| format!("the TOTP secret {secret:?} is not base32"))?;
    let code = t.otp()?;
    let confirmed = t.post("/api/v1/totp/pairing/confirm", t.person(), json!({"code": code}), 200)?;
    expect_str(&confirmed, "/status", "paired")?;
    let me = t.get("/api/v1/me", t.person())?;
    expect_str(&me, "/totp/status", "paired")?;
    t.ok(format!("QR code is a {}-byte PNG, code {code} accepted, /me says paired", png.len()));

    t.begin("order and pay");
    let order_id = t.order("issuance", None)?;
    let paid = t.pay(&order_id)?;
    t.ok(format!("order {order_id}: {paid}"));

    t.begin("identity check");
    let checked = t.accept_identity_check(&order_id)?;
    t.ok(checked);

    t.begin("issue the credential");
    let credential = t.issue(&order_id)?;
    let first_id = str_at(&credential, "/credential_id")?.to_string();
    t.ok(describe(&credential));

    t.begin("CSC login");
    let login = t.post("/csc/v1/auth/login", Auth::Basic(&t.email, PASSWORD), json!({}), 200)?;
    t.csc_token = str_at(&login, "/access_token")?.to_string();
    let listed = t.post("/csc/v1/credentials/list", t.csc(), json!({}), 200)?;
    if !array_at(&listed, "/credentialIDs")?.iter().any(|id| id.as_str() == Some(first_id.as_str())) {
        return Err(format!("credentials/list lacks {first_id}: {}", brief(&listed)));
    }
    t.ok("CSC v1 session open, credentials/list shows the credential");

    t.begin("sign until the quota is spent");
    let mut remaining = int_at(&credential, "/quota/remaining")?;
    let (algo, multisign) = t.csc_profile(&first_id)?;
    let (mut signed, mut batches) = (0, 0);
    while remaining > 0 {
        let n = remaining.min(multisign.max(1)).min(BATCH);
        t.sign(&first_id, n, algo)?;
        remaining -= n;
        signed += n;
        batches += 1;
    }
    t.ok(format!("{signed} signatures in {batches} authorisations ({algo})"));

    t.begin("quota refusal");
    let hashes = t.digests(1);
    let (status, answer) = t.authorize(&first_id, &hashes)?;
    let refusal = answer["error_description"].as_str().unwrap_or_default();
    if status != 400 || !refusal.to_lowercase().contains("quota") {
        let answer = brief(&answer);
        return Err(format!("authorising past the quota answered {status} (expected 400 about the quota): {answer}"));
    }
    let spent = t.credential(&first_id)?;
    if int_at(&spent, "/quota/remaining")? != 0 {
        return Err(format!("quota.remaining is not 0 after spending it: {}", brief(&spent)));
    }
    let window = show(&spent["rekey_window"]["open"]);
    t.ok(format!("refused: {refusal:?}; quota.remaining 0, rekey window open: {window}"));

    t.begin("rekey");
    let order_id = t.order("rekey", Some(first_id.as_str()))?;
    let paid = t.pay(&order_id)?;
    let names = json!({"given_name": GIVEN_NAME, "surname": SURNAME});
    t.post(&format!("/api/v1/orders/{order_id}/personal-data"), t.person(), names, 200)?;
    let document = json!({"content_type": "application/pdf", "data": BASE64.encode(identity_document())});
    let stored = t.post(&format!("/api/v1/orders/{order_id}/identity-document"), t.person(), document, 201)?;
    let otp = t.otp()?;
    let body = json!({"order_id": order_id, "otp": otp});
    // The request is submitted and waits for the trust service's decision: nothing is issued yet.
    let submitted = t.post(&format!("/api/v1/credentials/{first_id}/rekey"), t.person(), body, 202)?;
    expect_str(&submitted, "/status", "awaiting_decision")?;
    let check_id = str_at(&submitted, "/identity_check/id")?.to_string();
    if !t.credential(&first_id)?["replaced_by"].is_null() {
        return Err("the credential was replaced before the rekey was decided".into());
    }
    // The tour plays the operator, who checks the names and the document and accepts.
    let path = format!("/api/admin/v1/identity-checks/{check_id}/decision");
    t.post(&path, t.operator(), json!({"decision": "accept", "reasons": []}), 200)?;
    let old = t.credential(&first_id)?;
    let second_id = old["replaced_by"]
        .as_str()
        .ok_or_else(|| format!("the old credential is not replaced after the acceptance: {}", brief(&old)))?
        .to_string();
    let rekeyed = t.credential(&second_id)?;
    t.ok(format!(
        "order {order_id} ({paid}), identity document {}; submitted (check {check_id}), accepted by the operator; \
         new {}; the old one is replaced by it",
        show(&stored["document_id"]),
        describe(&rekeyed)
    ));

    t.begin("sign with the rekeyed credential");
    let detail = t.sign_once(&second_id)?;
    t.ok(detail);

    t.begin("revoke");
    let otp = t.otp()?;
    let body = json!({"otp": otp, "reason": "tour"});
    let revoked = t.post(&format!("/api/v1/credentials/{second_id}/revoke"), t.person(), body, 200)?;
    expect_str(&revoked, "/status", "revoked")?;
    let hashes = t.digests(1);
    let (status, answer) = t.authorize(&second_id, &hashes)?;
    if !(400..500).contains(&status) {
        return Err(format!("authorising the revoked credential answered {status} (expected 4xx): {}", brief(&answer)));
    }
    let crl = t
        .request(Method::GET, "/pki/issuing-ca.crl", Auth::None)
        .send()
        .and_then(|response| response.error_for_status())
        .and_then(|response| response.bytes())
        .map_err(|e| format!("GET /pki/issuing-ca.crl: {e}"))?;
    if crl.is_empty() {
        return Err("GET /pki/issuing-ca.crl answered an empty body".into());
    }
    t.ok(format!("{second_id} revoked, CSC authorise refused with {status}, issuing CA CRL {} bytes", crl.len()));

    t.begin("reissue");
    let order_id = t.order("reissue", None)?;
    let paid = t.pay(&order_id)?;
    let checked = t.accept_identity_check(&order_id)?;
    let reissued = t.issue(&order_id)?;
    expect_str(&reissued, "/status", "valid")?;
    let third_id = str_at(&reissued, "/credential_id")?.to_string();
    expect_str(&t.credential(&second_id)?, "/status", "revoked")?;
    let issued = describe(&reissued);
    t.ok(format!("order {order_id} ({paid}), {checked}; {issued}; the revoked one is listed as revoked"));

    t.begin("sign with the reissued credential");
    let detail = t.sign_once(&third_id)?;
    t.ok(detail);

    t.begin("sign documents in a signing session");
    let (pdf, text) = (agreement(), b"Notes of the tour, signed apart.\n".to_vec());
    let body = json!({"credential_id": third_id, "documents": [
        {"name": "agreement.pdf", "content": BASE64.encode(&pdf), "conformance_level": "Ades-B-T",
         "visible_signature": {"page": 1, "rect": [72, 600, 320, 670]}, "reason": "Tour agreement"},
        {"name": "notes.txt", "content": BASE64.encode(&text)}]});
    let session = t.post("/api/v1/signing-sessions", t.person(), body, 201)?;
    let session_id = str_at(&session, "/session_id")?.to_string();
    let transactions = int_at(&session, "/transactions")?;
    let otp = t.otp()?;
    let signed =
        t.post(&format!("/api/v1/signing-sessions/{session_id}/sign"), t.person(), json!({"otp": otp}), 200)?;
    expect_str(&signed, "/state", "signed")?;
    let zip = t.download(str_at(&signed, "/signed_files_zip")?)?;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip.as_slice()))
        .map_err(|e| format!("SignedFiles.zip does not open: {e}"))?;
    let names: Vec<String> = archive
        .file_names()
        .map(|name| name.map(|n| n.to_string()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("SignedFiles.zip: {e}"))?;
    let mut names_sorted = names.clone();
    names_sorted.sort();
    if names_sorted != ["agreement.pdf", "notes.txt", "notes.txt.p7s"] {
        return Err(format!("SignedFiles.zip holds {names:?}"));
    }
    let mut signed_pdf = Vec::new();
    std::io::Read::read_to_end(
        &mut archive.by_name("agreement.pdf").map_err(|e| format!("agreement.pdf in the zip: {e}"))?,
        &mut signed_pdf,
    )
    .map_err(|e| format!("reading agreement.pdf from the zip: {e}"))?;
    if !signed_pdf.starts_with(&pdf) || !signed_pdf.windows(19).any(|w| w == b"ETSI.CAdES.detached") {
        return Err("the signed agreement is not the original with a PAdES signature appended".into());
    }
    t.ok(format!(
        "session {session_id}: a visible B-T PDF and a .p7s for {transactions} transactions with one code; \
         SignedFiles.zip ({} bytes) holds {}",
        zip.len(),
        names.join(", ")
    ));
    Ok(())
}

impl Tour {
    fn new(args: &Args) -> Result<Tour, String> {
        let path = args.data_dir.join("dev-secrets.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            let path = path.display();
            format!("reading {path}: {e} (is `rssp serve` running in development mode with this data directory?)")
        })?;
        let dev: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        // Signing a hundred hashes in one call can take longer than reqwest's default 30 s on a slow token.
        let http =
            Client::builder().timeout(Duration::from_secs(120)).build().map_err(|e| format!("HTTP client: {e}"))?;
        // A fresh address and number each run: both must be unique on the server.
        let suffix = hex::encode(secrets::random_bytes::<4>());
        let digits = u32::from_be_bytes(secrets::random_bytes::<4>()) % 10_000_000;
        Ok(Tour {
            base: args.url.trim_end_matches('/').to_string(),
            http,
            operator_key: str_at(&dev, "/operator_key")?.to_string(),
            payment_secret: str_at(&dev, "/payment_webhook_secret")?.to_string(),
            step: "setup".into(),
            steps_begun: 0,
            documents: Value::Null,
            email: format!("tour-{suffix}@example.org"),
            phone: format!("+3864{digits:07}"),
            access_token: String::new(),
            csc_token: String::new(),
            totp_seed: Vec::new(),
            last_step: None,
            hashes_made: 0,
        })
    }

    fn begin(&mut self, step: &str) {
        self.steps_begun += 1;
        self.step = format!("{} {step}", self.steps_begun);
    }

    fn ok(&self, detail: impl std::fmt::Display) {
        println!("[ok] {}: {detail}", self.step);
    }

    fn person(&self) -> Auth<'_> {
        Auth::Bearer(&self.access_token)
    }

    fn operator(&self) -> Auth<'_> {
        Auth::Bearer(&self.operator_key)
    }

    fn csc(&self) -> Auth<'_> {
        Auth::Bearer(&self.csc_token)
    }

    fn request(&self, method: Method, path: &str, auth: Auth<'_>) -> RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match auth {
            Auth::None => builder,
            Auth::Bearer(token) => builder.bearer_auth(token),
            Auth::Basic(user, password) => builder.basic_auth(user, Some(password)),
        }
    }

    /// Any status is an answer here; callers that expect a refusal look at it themselves.
    fn call(&self, method: Method, path: &str, auth: Auth<'_>, body: Option<&Value>) -> Result<(u16, Value), String> {
        let what = format!("{method} {path}");
        let mut builder = self.request(method, path, auth);
        if let Some(body) = body {
            builder = builder.json(body);
        }
        exchange(&what, builder)
    }

    fn post(&self, path: &str, auth: Auth<'_>, body: Value, wanted: u16) -> Result<Value, String> {
        let (status, answer) = self.call(Method::POST, path, auth, Some(&body))?;
        check_status(&format!("POST {path}"), wanted, status, answer)
    }

    fn get(&self, path: &str, auth: Auth<'_>) -> Result<Value, String> {
        let (status, answer) = self.call(Method::GET, path, auth, None)?;
        check_status(&format!("GET {path}"), 200, status, answer)
    }

    /// What `extract` finds in the newest message to `recipient` that has it. Looks a few times, since
    /// a message need not reach the outbox before the answer to the call that sent it.
    fn read_outbox(&self, recipient: &str, what: &str, extract: fn(&str) -> Option<String>) -> Result<String, String> {
        let mut seen = Value::Null;
        for attempt in 0..10 {
            if attempt > 0 {
                sleep(Duration::from_millis(300));
            }
            let builder = self.request(Method::GET, "/api/admin/v1/outbox", self.operator());
            let (status, answer) = exchange("GET /api/admin/v1/outbox", builder.query(&[("recipient", recipient)]))?;
            let answer = check_status("GET /api/admin/v1/outbox", 200, status, answer)?;
            let found = array_at(&answer, "/messages")?
                .iter()
                .rev()
                .filter(|m| m["recipient"].as_str() == Some(recipient))
                .filter_map(|m| m["body"].as_str())
                .find_map(extract);
            if let Some(found) = found {
                return Ok(found);
            }
            seen = answer;
        }
        Err(format!("no {what} in the outbox for {recipient}: {}", brief(&seen)))
    }

    /// A code for a time step the server has not seen from this person, waiting for one if need be.
    fn otp(&mut self) -> Result<String, String> {
        if self.totp_seed.is_empty() {
            return Err("an authenticator code is needed before pairing".into());
        }
        let mut step = totp::step_of(now());
        while self.last_step.is_some_and(|last| step <= last) {
            let wait = ((step + 1) * totp::STEP_SECONDS - now()).max(1);
            println!("       waiting {wait}s for the next authenticator code");
            sleep(Duration::from_secs(wait as u64));
            step = totp::step_of(now());
        }
        self.last_step = Some(step);
        Ok(totp::code_at_step(&self.totp_seed, step))
    }

    fn order(&self, purpose: &str, credential_id: Option<&str>) -> Result<String, String> {
        let invoice = json!({"type": "person", "name": format!("{GIVEN_NAME} {SURNAME}"), "address": "Trg republike 1",
            "postal_code": "1000", "city": "Ljubljana", "country": "SI"});
        let mut body = json!({"package_id": "1y", "purpose": purpose, "invoice": invoice});
        if let Some(id) = credential_id {
            body["credential_id"] = json!(id);
        }
        let order = self.post("/api/v1/orders", self.person(), body, 201)?;
        Ok(str_at(&order, "/id")?.to_string())
    }

    /// Starts the payment and confirms it as the payment provider would, twice: providers redeliver.
    fn pay(&self, order_id: &str) -> Result<String, String> {
        let payment = self.post(&format!("/api/v1/orders/{order_id}/payment"), self.person(), json!({}), 200)?;
        let payment_ref = str_at(&payment, "/payment_ref")?;
        let gross = int_at(&payment, "/gross_cents")?;
        let currency = str_at(&payment, "/currency")?;
        let event = json!({"event_id": uuid::Uuid::new_v4().to_string(), "payment_ref": payment_ref,
            "status": "paid", "amount_cents": gross, "currency": currency});
        // The signature covers the exact bytes sent, so the event is serialised once.
        let body = serde_json::to_vec(&event).map_err(|e| format!("serialising the payment event: {e}"))?;
        let signature = rssp::domain::secrets::webhook_signature(&self.payment_secret, &body);
        let first = self.payment_webhook(&body, &signature)?;
        if first["order_id"].as_str() != Some(order_id) || first["duplicate"].as_bool() == Some(true) {
            return Err(format!("the payment webhook for {order_id} answered {}", brief(&first)));
        }
        let again = self.payment_webhook(&body, &signature)?;
        if again["duplicate"].as_bool() != Some(true) {
            return Err(format!("the redelivered payment event is not a duplicate: {}", brief(&again)));
        }
        Ok(format!("{} paid ({payment_ref}), the redelivery recognised as a duplicate", money(gross, currency)))
    }

    fn payment_webhook(&self, body: &[u8], signature: &str) -> Result<Value, String> {
        let what = "POST /api/v1/webhooks/payments";
        let builder = self
            .request(Method::POST, "/api/v1/webhooks/payments", Auth::None)
            .header("X-Rssp-Signature", signature)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        let (status, answer) = exchange(what, builder)?;
        check_status(what, 200, status, answer)
    }

    /// Finds the order's pending check and accepts it as the operator. Looks a few times, since the check
    /// may be opened just after the payment is recorded.
    fn accept_identity_check(&self, order_id: &str) -> Result<String, String> {
        let mut seen = Value::Null;
        for attempt in 0..10 {
            if attempt > 0 {
                sleep(Duration::from_millis(300));
            }
            let checks = self.get("/api/v1/identity-checks", self.person())?;
            let pending = array_at(&checks, "/identity_checks")?
                .iter()
                .find(|c| c["order_id"].as_str() == Some(order_id) && c["status"].as_str() == Some("pending"))
                .cloned();
            if let Some(check) = pending {
                let check_id = str_at(&check, "/id")?;
                let path = format!("/api/admin/v1/identity-checks/{check_id}/decision");
                let decided = self.post(&path, self.operator(), json!({"decision": "accept", "reasons": []}), 200)?;
                expect_str(&decided, "/status", "accepted")?;
                return Ok(format!("identity check {check_id} accepted by the operator"));
            }
            seen = checks;
        }
        Err(format!("no pending identity check for order {order_id}: {}", brief(&seen)))
    }

    fn issue(&mut self, order_id: &str) -> Result<Value, String> {
        let otp = self.otp()?;
        let version = str_at(&self.documents, "/issuance_terms")?.to_string();
        let body = json!({"order_id": order_id, "issuance_terms_version": version, "otp": otp});
        self.post("/api/v1/credentials", self.person(), body, 201)
    }

    /// The credential as GET /api/v1/credentials lists it.
    fn credential(&self, id: &str) -> Result<Value, String> {
        let listed = self.get("/api/v1/credentials", self.person())?;
        array_at(&listed, "/credentials")?
            .iter()
            .find(|c| c["credential_id"].as_str() == Some(id))
            .cloned()
            .ok_or_else(|| format!("GET /api/v1/credentials lacks {id}: {}", brief(&listed)))
    }

    /// The signature algorithm for SHA-256 digests the key supports, and the most hashes one
    /// authorisation may cover.
    fn csc_profile(&self, credential_id: &str) -> Result<(&'static str, i64), String> {
        let info = self.post("/csc/v1/credentials/info", self.csc(), json!({"credentialID": credential_id}), 200)?;
        let offered = array_at(&info, "/key/algo")?;
        let algo = [SHA256_WITH_RSA, ECDSA_WITH_SHA256]
            .into_iter()
            .find(|algo| offered.iter().any(|o| o.as_str() == Some(*algo)))
            .ok_or_else(|| format!("{credential_id} offers no SHA-256 signature algorithm: {}", brief(&info)))?;
        Ok((algo, int_at(&info, "/multisign")?))
    }

    fn digests(&mut self, n: i64) -> Vec<String> {
        let mut hashes = Vec::new();
        for _ in 0..n {
            self.hashes_made += 1;
            let document = format!("{} document {}", self.email, self.hashes_made);
            hashes.push(BASE64.encode(Sha256::digest(document.as_bytes())));
        }
        hashes
    }

    /// credentials/authorize with a fresh code; the raw answer, since some of these are meant to be refused.
    fn authorize(&mut self, credential_id: &str, hashes: &[String]) -> Result<(u16, Value), String> {
        let otp = self.otp()?;
        let body = json!({"credentialID": credential_id, "numSignatures": hashes.len(), "hash": hashes, "OTP": otp});
        self.call(Method::POST, "/csc/v1/credentials/authorize", self.csc(), Some(&body))
    }

    fn sign(&mut self, credential_id: &str, n: i64, algo: &str) -> Result<(), String> {
        let hashes = self.digests(n);
        let (status, answer) = self.authorize(credential_id, &hashes)?;
        let authorized = check_status("POST /csc/v1/credentials/authorize", 200, status, answer)?;
        let sad = str_at(&authorized, "/SAD")?;
        let body = json!({"credentialID": credential_id, "SAD": sad, "hash": hashes, "signAlgo": algo});
        let signed = self.post("/csc/v1/signatures/signHash", self.csc(), body, 200)?;
        let count = array_at(&signed, "/signatures")?.len();
        if count != hashes.len() {
            return Err(format!("signHash returned {count} signatures for {} hashes", hashes.len()));
        }
        Ok(())
    }

    /// GET of a file (a signed document, a zip) as the person.
    fn download(&self, path: &str) -> Result<Vec<u8>, String> {
        let response = self.request(Method::GET, path, self.person()).send().map_err(|e| format!("GET {path}: {e}"))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(format!("GET {path} answered {status}"));
        }
        response.bytes().map(|b| b.to_vec()).map_err(|e| format!("GET {path}: {e}"))
    }

    fn sign_once(&mut self, credential_id: &str) -> Result<String, String> {
        let (algo, _) = self.csc_profile(credential_id)?;
        self.sign(credential_id, 1, algo)?;
        Ok(format!("one signature with {credential_id} ({algo})"))
    }
}

/// Sends the request; the status and the body, parsed when it is JSON.
fn exchange(what: &str, builder: RequestBuilder) -> Result<(u16, Value), String> {
    let response = builder.send().map_err(|e| format!("{what}: no answer from the server: {e}"))?;
    let status = response.status().as_u16();
    let text = response.text().map_err(|e| format!("{what}: unreadable answer ({status}): {e}"))?;
    // Error bodies are JSON, but a missing route or a proxy may answer plain text.
    let body = if text.trim().is_empty() {
        Value::Null
    } else {
        match serde_json::from_str::<Value>(&text) {
            Ok(value) => value,
            Err(_) => Value::String(text),
        }
    };
    Ok((status, body))
}

fn check_status(what: &str, wanted: u16, status: u16, answer: Value) -> Result<Value, String> {
    if status == wanted {
        Ok(answer)
    } else {
        Err(format!("{what} answered {status} (expected {wanted}): {}", brief(&answer)))
    }
}

/// The token of a link: what follows `token=` up to the first character a base64url token lacks.
fn link_token(body: &str) -> Option<String> {
    let start = body.find("token=")? + "token=".len();
    let token: String =
        body[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
    (!token.is_empty()).then_some(token)
}

/// The first run of exactly six digits.
fn six_digits(body: &str) -> Option<String> {
    body.split(|c: char| !c.is_ascii_digit()).find(|run| run.len() == 6).map(str::to_string)
}

fn at<'v>(value: &'v Value, pointer: &str) -> Result<&'v Value, String> {
    value.pointer(pointer).filter(|v| !v.is_null()).ok_or_else(|| format!("no {pointer} in {}", brief(value)))
}

fn str_at<'v>(value: &'v Value, pointer: &str) -> Result<&'v str, String> {
    at(value, pointer)?.as_str().ok_or_else(|| format!("{pointer} is not a string in {}", brief(value)))
}

fn int_at(value: &Value, pointer: &str) -> Result<i64, String> {
    at(value, pointer)?.as_i64().ok_or_else(|| format!("{pointer} is not an integer in {}", brief(value)))
}

fn array_at<'v>(value: &'v Value, pointer: &str) -> Result<&'v Vec<Value>, String> {
    at(value, pointer)?.as_array().ok_or_else(|| format!("{pointer} is not an array in {}", brief(value)))
}

fn expect_str(value: &Value, pointer: &str, wanted: &str) -> Result<(), String> {
    let found = str_at(value, pointer)?;
    if found == wanted {
        Ok(())
    } else {
        Err(format!("{pointer} is {found:?}, expected {wanted:?}: {}", brief(value)))
    }
}

/// A value for a message, cut short: some answers carry whole PNGs or long lists.
fn brief(value: &Value) -> String {
    const LIMIT: usize = 600;
    let text = show(value);
    if text.chars().count() <= LIMIT {
        text
    } else {
        format!("{}...", text.chars().take(LIMIT).collect::<String>())
    }
}

/// Strings without their JSON quotes, anything else as JSON.
fn show(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_string)
}

fn describe(credential: &Value) -> String {
    format!(
        "credential {} serial {} ({}), quota {} of {}",
        show(&credential["credential_id"]),
        show(&credential["serial"]),
        show(&credential["status"]),
        show(&credential["quota"]["remaining"]),
        show(&credential["quota"]["total"])
    )
}

fn money(cents: i64, currency: &str) -> String {
    format!("{}.{:02} {currency}", cents / 100, cents % 100)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

//! Document signing sessions, the portal's way to sign files (`/api/v1/signing-sessions`):
//!
//! 1. a person sends files; the session answers with the certificate that will sign them, each file's
//!    digest, and the transactions it will spend, and is refused at once (nothing stored) when a file
//!    cannot be signed or the quota is short;
//! 2. one authenticator code authorises every file: it mints one SAD bound to exactly the files'
//!    digests (as `credentials/authorize` does), spent at once by signDoc's use case, so a session signs
//!    with the same binding, quota, refund and audit as a CSC client;
//! 3. the person downloads each signed file, or all of them as `SignedFiles.zip`.
//!
//! A PDF is signed inside (PAdES, an approval signature, invisible or where the person placed it); any
//! other file gets a detached CAdES `.p7s`. Sessions live in the database, so any node serves them; a
//! person sees only their own (another's is answered as a missing one); they expire
//! (`signing_sessions.lifetime_secs` after creation while unsigned, `kept_after_signing_secs` after
//! the signing) and the scheduler deletes them.

use std::io::Write;

use chrono::{Datelike, Timelike};
use secrecy::SecretString;
use x509_cert::der::Decode;

use crate::db::{self, signing_sessions as store};
use crate::domain::ades::{ConformanceLevel, Packaging, SignatureFormat};
use crate::domain::signing_session::{self, DocumentName, CLAIM_STALE_AFTER_SECS};
use crate::domain::{CredentialId, HashAlgorithm, SignedOutput, SigningSessionState};
use crate::pki::pades;

use super::auth::Bearer;
use super::credentials::{self, ensure_usable, key_kind, quota_exhausted, AuthorizeRequest};
use super::issuance::{self, CredentialSummary};
use super::signing::{self, Input, PdfLook, SignDocRequest, Signed, ToSign};
use super::{Principal, ServiceError, Services};

/// A file the person sends.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub name: String,
    pub content: Vec<u8>,
    /// None: a PDF is signed inside, anything else gets a `.p7s`.
    pub output: Option<SignedOutput>,
    /// None: `Ades-B-B`.
    pub level: Option<ConformanceLevel>,
    /// For a PDF signed inside: where the signature shows, and its reason and location.
    pub look: PdfLook,
}

/// A session as the person sees it.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub id: String,
    pub state: SigningSessionState,
    pub created_at: i64,
    pub signed_at: Option<i64>,
    pub expires_at: i64,
    /// The credential that signs (or signed).
    pub credential: CredentialSummary,
    /// Its certificate, DER.
    pub certificate_der: Vec<u8>,
    /// The hash the digests are made with (that of the credential's document signature algorithm).
    pub hash: HashAlgorithm,
    /// Transactions the signing spends (or spent): one per file and one per time-stamp.
    pub transactions: i64,
    pub documents: Vec<DocumentView>,
}

/// One file of a session.
#[derive(Debug, Clone)]
pub struct DocumentView {
    pub position: i32,
    pub name: String,
    pub output: SignedOutput,
    pub level: ConformanceLevel,
    pub size: i64,
    pub digest: Vec<u8>,
    /// The signed file's name: the PDF's own, or the file's with `.p7s` added.
    pub signed_name: String,
    /// The signed file's size, once signed.
    pub signed_size: Option<i64>,
    pub look: PdfLook,
}

/// A file to download.
#[derive(Debug, Clone)]
pub struct Download {
    pub name: String,
    pub media_type: &'static str,
    pub bytes: Vec<u8>,
}

/// Creates a session of `documents`, to be signed with `credential_id`. Checked in full before anything
/// is stored: each file can be signed as asked, the credential can sign now, and its quota covers it all.
/// The cheap checks come first; PDFs are read last (the costly part).
pub fn create(
    services: &Services,
    principal: &Principal,
    credential_id: &CredentialId,
    documents: Vec<NewDocument>,
) -> Result<SessionView, ServiceError> {
    let limits = &services.config.signing_sessions;
    let now = services.now();
    if documents.is_empty() {
        return Err(ServiceError::InvalidRequest("A signing session needs at least one document".into()));
    }
    if documents.len() > limits.max_documents {
        return Err(ServiceError::InvalidRequest(format!(
            "Too many documents: at most {} in one signing session",
            limits.max_documents
        )));
    }
    if let Some(big) = documents.iter().find(|d| d.content.len() > limits.max_document_bytes) {
        return Err(ServiceError::TooLarge(format!(
            "The document {:?} is larger than {} bytes",
            big.name, limits.max_document_bytes
        )));
    }
    let total: usize = documents.iter().map(|d| d.content.len()).sum();
    if total > limits.max_session_bytes {
        return Err(ServiceError::TooLarge(format!(
            "The documents are larger than {} bytes together",
            limits.max_session_bytes
        )));
    }
    let planned = documents.into_iter().map(|d| planned_file(services, d, now)).collect::<Result<Vec<_>, _>>()?;
    let names: Vec<(DocumentName, SignedOutput)> = planned.iter().map(|p| (p.name.clone(), p.output)).collect();
    signing_session::zip_entries(&names).map_err(name_refused)?;

    let mut conn = services.conn()?;
    let row = issuance::owned_credential(&mut conn, principal, credential_id)?;
    let open = store::open_count(&mut conn, &principal.user_id, now)?;
    drop(conn);
    ensure_usable(&row, now)?;
    if planned.len() > usize::try_from(row.multisign).unwrap_or(0) {
        return Err(ServiceError::InvalidRequest(format!(
            "Too many documents: the credential signs at most {} with one code",
            row.multisign
        )));
    }
    let transactions: i64 = planned.iter().map(|p| signing_session::transactions(p.level)).sum();
    ensure_quota(&row, transactions)?;
    let max_open = i64::try_from(limits.max_open_per_person).unwrap_or(i64::MAX);
    if open >= max_open {
        return Err(too_many_open(open));
    }

    let kind = key_kind(&row)?;
    let hash = document_hash(kind)?;
    let certificate = x509_cert::Certificate::from_der(&row.certificate)
        .map_err(|e| ServiceError::internal_while("the credential's stored certificate", e))?;
    let signer_name = signing::signer_name(&certificate);
    let id = uuid::Uuid::new_v4().to_string();
    let files = planned
        .into_iter()
        .enumerate()
        .map(|(position, planned)| checked_file(&id, position, planned, hash, &signer_name, now))
        .collect::<Result<Vec<_>, _>>()?;
    let session = store::SessionRow {
        id: id.clone(),
        user_id: principal.user_id.to_string(),
        credential_id: row.id.clone(),
        state: SigningSessionState::Ready,
        created_at: now,
        claimed_at: None,
        signed_at: None,
        expires_at: now.saturating_add(limits.lifetime_secs),
    };
    let mut conn = services.conn()?;
    db::write_transaction(&mut conn, |c| -> Result<(), ServiceError> {
        // Counted again where the session is written. On PostgreSQL two creates at once may both pass
        // (each reads before the other commits): a bound on storage, not an exactly-once rule; the
        // document slots bound how many run at once.
        let open = store::open_count(c, &principal.user_id, now)?;
        if open >= max_open {
            return Err(too_many_open(open));
        }
        store::insert(c, &session, &files)?;
        Ok(())
    })?;
    drop(conn);
    view(services, principal, &id)
}

fn too_many_open(open: i64) -> ServiceError {
    ServiceError::Conflict(format!(
        "You have {open} signing sessions open, the most allowed: delete one, or wait until one expires"
    ))
}

/// The quota must cover `transactions`, or the person's code would be spent on a refusal.
fn ensure_quota(row: &crate::db::credentials::CredentialRow, transactions: i64) -> Result<(), ServiceError> {
    match crate::domain::renewal::remaining(row.quota_total, row.quota_used) {
        Some(remaining) if i64::from(remaining) < transactions => Err(quota_exhausted(row)),
        _ => Ok(()),
    }
}

/// The hash a credential's documents are digested with: that of its document signature algorithm.
fn document_hash(kind: crate::domain::KeyKind) -> Result<HashAlgorithm, ServiceError> {
    Ok(crate::domain::algorithms::resolve_scheme(kind, kind.document_signature_algorithm(), None, None)
        .map_err(ServiceError::internal)?
        .hash())
}

/// A file with its name, output, level and look checked (nothing read of its content yet).
struct PlannedFile {
    name: DocumentName,
    content: Vec<u8>,
    output: SignedOutput,
    level: ConformanceLevel,
    look: PdfLook,
}

fn planned_file(services: &Services, document: NewDocument, now: i64) -> Result<PlannedFile, ServiceError> {
    let name = DocumentName::parse(&document.name).map_err(name_refused)?;
    let what = |text: String| ServiceError::InvalidRequest(format!("Document {:?}: {text}", name.as_str()));
    if document.content.is_empty() {
        return Err(what("the file is empty".into()));
    }
    let output = document.output.unwrap_or_else(|| signing_session::default_output(&document.content));
    let level = document.level.unwrap_or(ConformanceLevel::BB);
    if output == SignedOutput::P7s && level > ConformanceLevel::BLt {
        return Err(what(format!("a .p7s is made at Ades-B-B, Ades-B-T or Ades-B-LT, not {level}")));
    }
    if level.has_signature_time_stamp() && !services.tsa.unit.valid_at(now) {
        return Err(what(format!(
            "{level} is not available now (the time-stamping unit's certificate is not valid); ask for Ades-B-B"
        )));
    }
    let look = document.look;
    for text in [&look.reason, &look.location].into_iter().flatten() {
        if signing_session::label(text).is_none() {
            return Err(what(format!(
                "a reason or location has at most {} characters and no control character",
                signing_session::MAX_LABEL_CHARS
            )));
        }
    }
    if output == SignedOutput::P7s && look != PdfLook::default() {
        return Err(what("a visible signature, reason and location are for a PDF signed inside (output pdf)".into()));
    }
    Ok(PlannedFile { name, content: document.content, output, level, look })
}

/// A planned file ready to store, with its digest; a PDF signed inside gets a trial of its signature
/// update, so that a PDF that cannot be signed is refused now.
fn checked_file(
    session_id: &str,
    position: usize,
    file: PlannedFile,
    hash: HashAlgorithm,
    signer_name: &str,
    now: i64,
) -> Result<store::DocumentRow, ServiceError> {
    let PlannedFile { name, content, output, level, look } = file;
    if output == SignedOutput::Pdf {
        let fields = pades::SignatureFields {
            signer_name,
            signing_time: now,
            reason: look.reason.as_deref(),
            location: look.location.as_deref(),
            certify: Some(false),
            visible: look.visible,
            reserved: signing::pdf_room(level),
        };
        pades::prepare(content.clone(), &fields)
            .map_err(|refusal| ServiceError::InvalidRequest(format!("Document {:?}: {refusal}", name.as_str())))?;
    }
    Ok(store::DocumentRow {
        session_id: session_id.to_string(),
        position: i32::try_from(position).map_err(ServiceError::internal)?,
        name: name.as_str().to_string(),
        output,
        level: level.as_str().to_string(),
        digest: hash.digest(&content),
        content,
        signed: None,
        look: stored_look(look),
    })
}

fn name_refused(e: signing_session::NameError) -> ServiceError {
    ServiceError::InvalidRequest(format!("Invalid document name: {e}"))
}

fn level_of(stored: &str) -> Result<ConformanceLevel, ServiceError> {
    ConformanceLevel::parse(stored).map_err(|_| ServiceError::invariant("stored conformance level"))
}

fn transactions_of(files: &[store::DocumentRow]) -> Result<i64, ServiceError> {
    files.iter().map(|f| level_of(&f.level).map(signing_session::transactions)).sum()
}

/// A file's look as stored.
fn stored_look(look: PdfLook) -> store::StoredLook {
    let rect = look.visible.map(|v| v.rect.map(f64::from));
    store::StoredLook {
        visible_page: look.visible.map(|v| i32::try_from(v.page).unwrap_or(i32::MAX)),
        visible_x1: rect.map(|r| r[0]),
        visible_y1: rect.map(|r| r[1]),
        visible_x2: rect.map(|r| r[2]),
        visible_y2: rect.map(|r| r[3]),
        reason: look.reason,
        location: look.location,
    }
}

/// The look stored with a file.
fn look_of(stored: store::StoredLook) -> PdfLook {
    let store::StoredLook { visible_page, visible_x1, visible_y1, visible_x2, visible_y2, reason, location } = stored;
    let visible = match (visible_page, [visible_x1, visible_y1, visible_x2, visible_y2]) {
        (Some(page), [Some(x1), Some(y1), Some(x2), Some(y2)]) => Some(pades::Visible {
            page: u32::try_from(page).unwrap_or(0),
            rect: [x1 as f32, y1 as f32, x2 as f32, y2 as f32],
        }),
        _ => None,
    };
    PdfLook { visible, reason, location }
}

/// The person's session; another person's, or an expired one, is not found.
fn owned(services: &Services, principal: &Principal, id: &str) -> Result<store::SessionRow, ServiceError> {
    if id.len() > 64 {
        return Err(not_found());
    }
    store::owned(&mut *services.conn()?, id, &principal.user_id, services.now())?.ok_or_else(not_found)
}

fn not_found() -> ServiceError {
    ServiceError::NotFound("No such signing session (or it expired)".into())
}

/// The session as the person sees it.
pub fn view(services: &Services, principal: &Principal, id: &str) -> Result<SessionView, ServiceError> {
    let session = owned(services, principal, id)?;
    let mut conn = services.conn()?;
    let facts = store::facts(&mut conn, &session.id)?;
    let credential = issuance::owned_credential(&mut conn, principal, &session.credential_id)?;
    drop(conn);
    let hash = document_hash(key_kind(&credential)?)?;
    let mut documents = Vec::with_capacity(facts.len());
    let mut transactions = 0;
    for (f, size, signed_size) in facts {
        let level = level_of(&f.level)?;
        transactions += signing_session::transactions(level);
        let name = DocumentName::parse(&f.name).map_err(|_| ServiceError::invariant("stored document name"))?;
        documents.push(DocumentView {
            position: f.position,
            signed_name: name.signed(f.output),
            name: f.name,
            output: f.output,
            level,
            size: i64::from(size),
            digest: f.digest,
            signed_size: signed_size.map(i64::from),
            look: look_of(f.look),
        });
    }
    let certificate_der = credential.certificate.clone();
    Ok(SessionView {
        id: session.id,
        certificate_der,
        state: session.state,
        created_at: session.created_at,
        signed_at: session.signed_at,
        expires_at: session.expires_at,
        credential: issuance::summary(services, credential, services.now()),
        hash,
        transactions,
        documents,
    })
}

/// The person's open sessions, oldest first (at most `signing_sessions.max_open_per_person`).
pub fn list(services: &Services, principal: &Principal) -> Result<Vec<SessionView>, ServiceError> {
    let ids = store::open_ids(&mut *services.conn()?, &principal.user_id, services.now())?;
    let mut views = Vec::with_capacity(ids.len());
    for id in ids {
        match view(services, principal, &id) {
            Ok(view) => views.push(view),
            // Expired, or deleted, between the two reads.
            Err(ServiceError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(views)
}

/// How often the signed files are offered to the database before they are given up as lost.
const STORE_ATTEMPTS: usize = 3;

/// Signs every file of the session with one authenticator code (and the credential's PIN, if it has
/// one); with `shown`, only if the files' digests are still those (the session as the person saw it).
/// Exactly one request signs a session: a second one while the first runs, or after it, is refused
/// (409) and spends nothing. A failure leaves the session ready to sign again with a new code.
pub fn sign(
    services: &Services,
    principal: &Principal,
    id: &str,
    otp: SecretString,
    pin: Option<SecretString>,
    shown: Option<Vec<Vec<u8>>>,
) -> Result<SessionView, ServiceError> {
    let session = owned(services, principal, id)?;
    if session.state == SigningSessionState::Signed {
        return Err(ServiceError::Conflict("The signing session is signed already".into()));
    }
    let now = services.now();
    let stale_before = now - CLAIM_STALE_AFTER_SECS;
    let held_until = session.expires_at.max(now.saturating_add(CLAIM_STALE_AFTER_SECS));
    let mut conn = services.conn()?;
    if !store::claim(&mut conn, &session.id, &principal.user_id, now, stale_before, held_until)? {
        return Err(ServiceError::Conflict(
            "The signing session is being signed or was signed by another request".into(),
        ));
    }
    let files = store::files(&mut conn, &session.id);
    drop(conn);
    let signed = files.map_err(ServiceError::from).and_then(|files| {
        if shown.as_ref().is_some_and(|shown| !files.iter().map(|f| &f.digest).eq(shown.iter())) {
            return Err(ServiceError::Conflict(
                "The session's files are not those whose digests were sent: nothing was signed".into(),
            ));
        }
        sign_files(services, principal, &session, files, otp, pin)
    });
    let signed = match signed {
        Ok(signed) => signed,
        Err(e) => {
            // The session is ready again for a new code; if that fails, the claim goes stale and the next
            // request takes it over. The request's own error is what the person needs to see.
            let released = services.conn().and_then(|mut c| Ok(store::release(&mut c, &session.id, now)?));
            if let Err(release) = released {
                tracing::error!(session = %session.id, error = %crate::telemetry::error_chain(&release),
                    "releasing a signing session after a failed signing");
            }
            return Err(e);
        }
    };
    let signed_now = services.now();
    let expires_at = signed_now.saturating_add(services.config.signing_sessions.kept_after_signing_secs);
    let mut outcome = Err(ServiceError::invariant("no attempt to store the signed files"));
    for attempt in 0..STORE_ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        outcome = store_signed_files(services, &session.id, now, signed_now, expires_at, &signed);
        match &outcome {
            Ok(()) | Err(ServiceError::Conflict(_)) => break,
            Err(_) => {}
        }
    }
    if let Err(e) = outcome {
        // Signed and spent, but not stored: said in the log with the session, so it can be followed.
        tracing::error!(session = %session.id, error = %crate::telemetry::error_chain(&e),
            "the signatures of a signing session were made but could not be stored");
        return Err(e);
    }
    view(services, principal, id)
}

/// Marks the session signed, if this request's claim still holds it, and stores the signed files.
fn store_signed_files(
    services: &Services,
    id: &str,
    claimed_at: i64,
    now: i64,
    expires_at: i64,
    signed: &[(i32, Vec<u8>)],
) -> Result<(), ServiceError> {
    let mut conn = services.conn()?;
    db::write_transaction(&mut conn, |c| -> Result<(), ServiceError> {
        if !store::mark_signed(c, id, claimed_at, now, expires_at)? {
            return Err(ServiceError::Conflict(
                "The signing session was deleted, or taken over by another request, while it was signed".into(),
            ));
        }
        for (position, bytes) in signed {
            store::store_signed(c, id, *position, bytes)?;
        }
        Ok(())
    })
}

/// The code's SAD for exactly the files' digests, then signDoc's use case with it.
fn sign_files(
    services: &Services,
    principal: &Principal,
    session: &store::SessionRow,
    files: Vec<store::DocumentRow>,
    otp: SecretString,
    pin: Option<SecretString>,
) -> Result<Vec<(i32, Vec<u8>)>, ServiceError> {
    let credential_id = CredentialId::new(session.credential_id.clone());
    let mut conn = services.conn()?;
    let credential = issuance::owned_credential(&mut conn, principal, &credential_id)?;
    drop(conn);
    let kind = key_kind(&credential)?;
    let sign_algo = kind.document_signature_algorithm();
    let hash = document_hash(kind)?;
    // The quota is judged again before the code is used: spent since the session was made, it would
    // cost the person a code for a refusal.
    ensure_quota(&credential, transactions_of(&files)?)?;
    let hashes: Vec<Vec<u8>> = files.iter().map(|f| f.digest.clone()).collect();
    let sad = credentials::authorize(
        services,
        &Bearer::of_principal(principal),
        AuthorizeRequest {
            credential_id: credential_id.clone(),
            num_signatures: i32::try_from(files.len()).map_err(ServiceError::internal)?,
            hashes,
            hash_algo: Some(hash),
            otp: Some(otp),
            pin,
        },
    )?;
    let positions: Vec<i32> = files.iter().map(|f| f.position).collect();
    let items = files
        .into_iter()
        .map(|f| {
            let level = level_of(&f.level)?;
            let (format, packaging) = match f.output {
                // An approval signature: a person signing a document does not certify it as its author.
                SignedOutput::Pdf => (SignatureFormat::Pades, Packaging::Revision),
                SignedOutput::P7s => (SignatureFormat::Cades, Packaging::Detached),
            };
            Ok(ToSign {
                look: look_of(f.look),
                input: Input::Document(f.content),
                format,
                level,
                packaging: Some(packaging),
                sign_algo: sign_algo.to_string(),
                hash_algo: None,
                sign_algo_params: None,
            })
        })
        .collect::<Result<Vec<_>, ServiceError>>()?;
    let signed = signing::sign_doc(
        services,
        &Bearer::of_principal(principal),
        SignDocRequest {
            credential_id,
            sad: sad.sad.into(),
            items,
            return_validation_info: false,
            origin: Some(format!("signing session {}", session.id)),
        },
    )?;
    Ok(positions
        .into_iter()
        .zip(signed.signed)
        .map(|(position, signed)| match signed {
            Signed::DocumentWithSignature(bytes) | Signed::SignatureObject(bytes) => (position, bytes),
        })
        .collect())
}

/// One signed file of a signed session.
pub fn download(services: &Services, principal: &Principal, id: &str, position: i32) -> Result<Download, ServiceError> {
    let session = owned(services, principal, id)?;
    let file = store::signed_file(&mut *services.conn()?, &session.id, position)?
        .ok_or_else(|| ServiceError::NotFound(format!("The signing session has no document {position}")))?;
    let bytes = file.signed.ok_or_else(|| ServiceError::Conflict("The signing session is not signed yet".into()))?;
    let name = DocumentName::parse(&file.name).map_err(|_| ServiceError::invariant("stored document name"))?;
    Ok(Download { name: name.signed(file.output), media_type: media_type(file.output), bytes })
}

fn media_type(output: SignedOutput) -> &'static str {
    match output {
        SignedOutput::Pdf => "application/pdf",
        SignedOutput::P7s => "application/pkcs7-signature",
    }
}

/// Every signed file of a signed session as `SignedFiles.zip`: a signed PDF under its name; any other
/// file beside its `.p7s`.
pub fn zip(services: &Services, principal: &Principal, id: &str) -> Result<Download, ServiceError> {
    let session = owned(services, principal, id)?;
    let signed_at = match (session.state, session.signed_at) {
        (SigningSessionState::Signed, Some(at)) => at,
        _ => return Err(ServiceError::Conflict("The signing session is not signed yet".into())),
    };
    // Deleted meanwhile: answered as a missing session.
    let files = store::zip_files(&mut *services.conn()?, &session.id).map_err(|e| match e {
        diesel::result::Error::NotFound => not_found(),
        e => e.into(),
    })?;
    let mut names = Vec::with_capacity(files.len());
    for file in &files {
        let name = DocumentName::parse(&file.name).map_err(|_| ServiceError::invariant("stored document name"))?;
        names.push((name, file.output));
    }
    let entries = signing_session::zip_entries(&names).map_err(ServiceError::internal)?;
    let mut contents = Vec::with_capacity(entries.len());
    for (name, index, signed) in entries {
        let file = &files[index];
        let bytes = if signed { file.signed.as_deref() } else { file.original.as_deref() };
        contents.push((name, bytes.ok_or_else(|| ServiceError::invariant("a signed session's file"))?));
    }
    let bytes =
        write_zip(&contents, signed_at).map_err(|e| ServiceError::internal_while("writing SignedFiles.zip", e))?;
    Ok(Download { name: "SignedFiles.zip".into(), media_type: "application/zip", bytes })
}

/// The zip of (name, bytes), each entry dated at the signing. PDFs and signatures are stored as they are
/// (compressing them again gains little); other files are deflated.
fn write_zip(entries: &[(String, &[u8])], signed_at: i64) -> zip::result::ZipResult<Vec<u8>> {
    let time = chrono::DateTime::from_timestamp(signed_at, 0).unwrap_or_default();
    let stamp = zip::DateTime::from_date_and_time(
        u16::try_from(time.year()).unwrap_or(1980),
        time.month() as u8,
        time.day() as u8,
        time.hour() as u8,
        time.minute() as u8,
        time.second() as u8,
    )
    .unwrap_or_default();
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        let lower = name.to_lowercase();
        let method = if lower.ends_with(".pdf") || lower.ends_with(".p7s") {
            zip::CompressionMethod::Stored
        } else {
            zip::CompressionMethod::Deflated
        };
        let options = zip::write::SimpleFileOptions::default().compression_method(method).last_modified_time(stamp);
        writer.start_file(name.as_str(), options)?;
        writer.write_all(bytes)?;
    }
    Ok(writer.finish()?.into_inner())
}

/// Deletes one of the person's sessions with its files (signed or not); 409 while a request signs it.
pub fn delete(services: &Services, principal: &Principal, id: &str) -> Result<(), ServiceError> {
    if id.len() > 64 {
        return Err(not_found());
    }
    let now = services.now();
    let mut conn = services.conn()?;
    let deleted = db::write_transaction(&mut conn, |c| {
        store::delete(c, id, &principal.user_id, now, now - CLAIM_STALE_AFTER_SECS)
    })?;
    match deleted {
        store::Deleted::Yes => Ok(()),
        store::Deleted::NotFound => Err(not_found()),
        store::Deleted::BeingSigned => {
            Err(ServiceError::Conflict("The signing session is being signed; delete it afterwards".into()))
        }
    }
}

/// The scheduler's part: deletes expired sessions with their files, one per transaction (a session may
/// hold tens of megabytes, and SQLite's writers wait for each transaction); how many. A failure is
/// logged with what was deleted before it, and the rest waits for the next run.
pub fn delete_expired(services: &Services) -> Result<usize, ServiceError> {
    let mut deleted = 0;
    let result = delete_expired_counting(services, &mut deleted);
    if let Err(e) = &result {
        tracing::error!(deleted, error = %crate::telemetry::error_chain(e), "deleting expired signing sessions");
    }
    result.map(|()| deleted)
}

fn delete_expired_counting(services: &Services, deleted: &mut usize) -> Result<(), ServiceError> {
    const BATCH: i64 = 100;
    let now = services.now();
    loop {
        let mut conn = services.conn()?;
        let ids = store::expired(&mut conn, now, BATCH)?;
        let mut progress = false;
        for id in &ids {
            if db::write_transaction(&mut conn, |c| store::delete_if_expired(c, id, now))? {
                *deleted += 1;
                progress = true;
            }
        }
        if i64::try_from(ids.len()).unwrap_or(0) < BATCH || !progress {
            return Ok(());
        }
    }
}

//! Document signing sessions (`/api/v1/signing-sessions`): the portal's way for a signed-in person to
//! sign files with one authenticator code and download them signed, one by one or as `SignedFiles.zip`.

use actix_web::http::header;
use actix_web::web::{Data, Json, Path};
use actix_web::{delete, get, post, HttpRequest, HttpResponse};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::error::{ApiError, Dialect, ErrorBody};
use crate::api::extract::{
    document_slot, encode_base64, portal_principal, run, Authed, Base64Field, CscJson, PortalUser, SessionJson,
    SignDocJson,
};
use crate::api::large_body::SlicedBody;
use crate::api::lifecycle_types::{rfc3339, CredentialView};
use crate::api::sign_doc::Bounded;
use crate::domain::ades::ConformanceLevel;
use crate::domain::{CredentialId, SignedOutput, SigningSessionState};
use crate::pki::pades::Visible;
use crate::service::signing::PdfLook;
use crate::service::signing_sessions::{self, Download, NewDocument, SessionView};
use crate::service::{ServiceError, Services};

const L: Dialect = Dialect::Lifecycle;
const TAG: &str = "Document signing";

/// Where a PDF's visible signature goes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisibleSignatureBody {
    /// The page, from 1.
    pub page: u32,
    /// The rectangle `[x1, y1, x2, y2]` in PDF points (1/72 inch) from the page's lower left corner.
    #[schema(value_type = Vec<f64>, min_items = 4, max_items = 4)]
    pub rect: [f32; 4],
}

/// A file of a new signing session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionDocumentBody {
    /// The file's name, kept for the download: one plain name (no folder), at most 200 characters.
    pub name: String,
    /// The file, base64.
    #[schema(value_type = String)]
    pub content: Base64Field,
    /// `pdf`: signed inside (PAdES; the file must be a PDF); `p7s`: a detached CAdES signature beside
    /// the file. Default: `pdf` for a PDF (by its header), `p7s` for anything else.
    pub output: Option<SignedOutput>,
    /// `Ades-B-B` (the default), `Ades-B-T` (with a signature time-stamp), `Ades-B-LT` (with the
    /// validation data), and for a PDF signed inside `Ades-B-LTA` (then a document time-stamp); any letter
    /// case. Each time-stamp spends one more transaction.
    pub conformance_level: Option<String>,
    /// For a PDF signed inside: where the visible signature goes. Absent: invisible.
    pub visible_signature: Option<VisibleSignatureBody>,
    /// For a PDF signed inside: the reason the signature states (and shows), at most 200 characters.
    pub reason: Option<String>,
    /// For a PDF signed inside: where it was signed, at most 200 characters.
    pub location: Option<String>,
}

/// A new signing session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionBody {
    /// The credential that will sign (see `GET /api/v1/credentials`).
    pub credential_id: String,
    /// The files, in the order they are shown and signed (at most `signing_sessions.max_documents`).
    #[schema(value_type = Vec<SessionDocumentBody>)]
    pub documents: Bounded<SessionDocumentBody>,
}

/// What signs a session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignSessionBody {
    /// The authenticator's code: it authorises every file of the session, and nothing else.
    #[schema(value_type = String)]
    pub otp: SecretString,
    /// The credential's PIN, if it has one.
    #[schema(value_type = Option<String>)]
    pub pin: Option<SecretString>,
    /// The files' digests as the person was shown them (base64, in the session's order). When given, the
    /// session is signed only if its files still have exactly these digests (409 otherwise, nothing
    /// spent): what is signed is what the person saw.
    pub digests: Option<Vec<String>>,
}

/// A file of a signing session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDocumentView {
    /// Its place in the session, from 0 (the download's path names it).
    pub position: i32,
    pub name: String,
    pub output: SignedOutput,
    pub conformance_level: String,
    /// The file's size in bytes.
    pub size: i64,
    /// The file's digest (base64) with `hash_algorithm_oid`: what the code authorises.
    pub digest: String,
    /// The signed file's name: the PDF's own, or the file's with `.p7s` added.
    pub signed_name: String,
    /// The signed file's size, once signed.
    pub signed_size: Option<i64>,
    pub visible_signature: Option<VisibleSignatureBody>,
    pub reason: Option<String>,
    pub location: Option<String>,
    /// Where to download the signed file, once signed.
    pub download: Option<String>,
}

/// A signing session as the person sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SigningSessionView {
    pub session_id: String,
    /// `ready` (waiting for the code), `signing`, or `signed`.
    pub state: SigningSessionState,
    pub created_at: String,
    pub signed_at: Option<String>,
    /// When the session and its files are deleted: `signing_sessions.lifetime_secs` after creation while
    /// unsigned, `kept_after_signing_secs` after the signing.
    pub expires_at: String,
    /// The credential that signs, with its remaining quota.
    pub credential: CredentialView,
    /// The signing certificate, DER base64.
    pub certificate: String,
    /// The hash algorithm of the documents' digests (that of the credential's signature algorithm).
    pub hash_algorithm_oid: String,
    /// Transactions the signing spends (or spent): one per file and one per time-stamp.
    pub transactions: i64,
    pub documents: Vec<SessionDocumentView>,
    /// Where to download every signed file at once, once signed.
    pub signed_files_zip: Option<String>,
}

impl SigningSessionView {
    fn new(view: SessionView) -> SigningSessionView {
        let base = format!("/api/v1/signing-sessions/{}", view.id);
        let signed = view.state == SigningSessionState::Signed;
        SigningSessionView {
            documents: view
                .documents
                .into_iter()
                .map(|d| SessionDocumentView {
                    download: signed.then(|| format!("{base}/documents/{}", d.position)),
                    position: d.position,
                    name: d.name,
                    output: d.output,
                    conformance_level: d.level.to_string(),
                    size: d.size,
                    digest: encode_base64(&d.digest),
                    signed_name: d.signed_name,
                    signed_size: d.signed_size,
                    visible_signature: d.look.visible.map(|v| VisibleSignatureBody { page: v.page, rect: v.rect }),
                    reason: d.look.reason,
                    location: d.look.location,
                })
                .collect(),
            signed_files_zip: signed.then(|| format!("{base}/SignedFiles.zip")),
            session_id: view.id,
            state: view.state,
            created_at: rfc3339(view.created_at),
            signed_at: view.signed_at.map(rfc3339),
            expires_at: rfc3339(view.expires_at),
            credential: CredentialView::new(view.credential),
            certificate: encode_base64(&view.certificate_der),
            hash_algorithm_oid: view.hash.oid().to_string(),
            transactions: view.transactions,
        }
    }
}

fn new_document(body: SessionDocumentBody) -> Result<NewDocument, ApiError> {
    let level = body
        .conformance_level
        .map(|text| {
            ConformanceLevel::parse(&text).map_err(|_| {
                ApiError::invalid_request(format!(
                    "Invalid parameter conformance_level: {text:?} (Ades-B-B, Ades-B-T, Ades-B-LT or Ades-B-LTA)"
                ))
            })
        })
        .transpose()?;
    Ok(NewDocument {
        content: body.content.decoded("content")?,
        name: body.name,
        output: body.output,
        level,
        look: PdfLook {
            visible: body.visible_signature.map(|v| Visible { page: v.page, rect: v.rect }),
            reason: body.reason,
            location: body.location,
        },
    })
}

/// Creates a signing session: up to `signing_sessions.max_documents` files (each at most
/// `max_document_bytes`, all together at most `max_session_bytes`: 413 beyond), each a PDF signed inside
/// (invisible, or visible where `visible_signature` puts it) or any file with a detached `.p7s`. The
/// answer shows the certificate that will sign, each file's digest, and the transactions the signing
/// will spend. Refused at once, with nothing stored, when a file cannot be signed as asked (an encrypted
/// PDF, one certified with no changes allowed, an XFA form, not a PDF, no such page), the credential
/// cannot sign, or its quota is short.
#[utoipa::path(post, tag = TAG, security(("bearer" = [])), request_body = CreateSessionBody,
    responses((status = 201, body = SigningSessionView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "No such credential of the person's", body = ErrorBody),
        (status = 409, description = "The person has `signing_sessions.max_open_per_person` open sessions", body = ErrorBody),
        (status = 503, description = "Too many document requests in flight", body = ErrorBody)))]
#[post("/signing-sessions")]
pub async fn create_signing_session(
    services: Data<Services>,
    request: Authed<PortalUser, SessionJson<CreateSessionBody>>,
) -> Result<HttpResponse, ApiError> {
    let Authed(PortalUser(principal), SessionJson(SignDocJson { body, in_flight })) = request;
    // The files were decoded as the body was parsed; their checks run on the blocking pool too, holding
    // the slot.
    let (documents, in_flight) = actix_web::web::block(move || {
        (body.documents.0.into_iter().map(new_document).collect::<Result<Vec<_>, _>>(), in_flight)
    })
    .await
    .map_err(|_| ApiError::internal())?;
    let documents = documents?;
    let credential_id = CredentialId::new(body.credential_id);
    let view = run(&services, L, move |s| {
        let _in_flight = in_flight;
        signing_sessions::create(s, &principal, &credential_id, documents)
    })
    .await?;
    Ok(HttpResponse::Created().json(SigningSessionView::new(view)))
}

/// The person's open signing sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SigningSessionsResponse {
    /// Oldest first; expired ones are gone.
    pub signing_sessions: Vec<SigningSessionView>,
}

/// The person's open signing sessions, signed or not, oldest first.
#[utoipa::path(get, tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = SigningSessionsResponse), (status = 401, body = ErrorBody)))]
#[get("/signing-sessions")]
pub async fn list_signing_sessions(
    services: Data<Services>,
    req: HttpRequest,
) -> Result<Json<SigningSessionsResponse>, ApiError> {
    let principal = portal_principal(&services, &req).await?;
    let views = run(&services, L, move |s| signing_sessions::list(s, &principal)).await?;
    Ok(Json(SigningSessionsResponse { signing_sessions: views.into_iter().map(SigningSessionView::new).collect() }))
}

/// A signing session of the person's (another person's, or an expired one, is 404).
#[utoipa::path(get, tag = TAG, security(("bearer" = [])), params(("id" = String, Path, description = "Signing session id")),
    responses((status = 200, body = SigningSessionView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/signing-sessions/{id}")]
pub async fn get_signing_session(
    services: Data<Services>,
    id: Path<String>,
    req: HttpRequest,
) -> Result<Json<SigningSessionView>, ApiError> {
    let principal = portal_principal(&services, &req).await?;
    let view = run(&services, L, move |s| signing_sessions::view(s, &principal, &id)).await?;
    Ok(Json(SigningSessionView::new(view)))
}

/// Signs every file of the session with one authenticator code: the code authorises exactly these files'
/// digests, and each signature and time-stamp spends a transaction. One request signs a session; another
/// while it runs, or after, is 409 and spends nothing. A wrong code leaves the session ready for a new one.
#[utoipa::path(post, tag = TAG, security(("bearer" = [])), params(("id" = String, Path, description = "Signing session id")),
    request_body = SignSessionBody,
    responses((status = 200, body = SigningSessionView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "`invalid_hash`: a file changed after the session was made (nothing is signed)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Signed already, being signed, or its files are not those `digests` names", body = ErrorBody),
        (status = 503, description = "Too many document requests in flight, or the HSM is busy", body = ErrorBody)))]
#[post("/signing-sessions/{id}/sign")]
pub async fn sign_signing_session(
    services: Data<Services>,
    id: Path<String>,
    request: Authed<PortalUser, CscJson<SignSessionBody>>,
) -> Result<Json<SigningSessionView>, ApiError> {
    let Authed(PortalUser(principal), CscJson(body)) = request;
    let shown = body.digests.as_deref().map(|d| crate::api::extract::decode_hashes(d, "digests")).transpose()?;
    let in_flight = document_slot(&services).await?;
    let view = run(&services, L, move |s| {
        let _in_flight = in_flight;
        signing_sessions::sign(s, &principal, &id, body.otp, body.pin, shown)
    })
    .await?;
    Ok(Json(SigningSessionView::new(view)))
}

/// The answer that carries a file to save: its type, its name for the browser, and no caching.
fn attachment(download: Download) -> HttpResponse {
    let ascii: String = download
        .name
        .chars()
        .map(|c| if (c.is_ascii_graphic() || c == ' ') && c != '"' && c != '\\' { c } else { '_' })
        .collect();
    let encoded: String = download
        .name
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    HttpResponse::Ok()
        .content_type(download.media_type)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(SlicedBody::new(download.bytes))
}

/// One signed file of a signed session: the signed PDF under its name, or the `.p7s` named after the file.
#[utoipa::path(get, tag = TAG, security(("bearer" = [])),
    params(("id" = String, Path, description = "Signing session id"), ("position" = i32, Path, description = "The file's position, from 0")),
    responses((status = 200, description = "The signed PDF or the detached signature, as an attachment",
            content(("application/pdf"), ("application/pkcs7-signature"))),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Not signed yet", body = ErrorBody),
        (status = 503, description = "Too many document requests in flight", body = ErrorBody)))]
#[get("/signing-sessions/{id}/documents/{position}")]
pub async fn download_signed_document(
    services: Data<Services>,
    path: Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let principal = portal_principal(&services, &req).await?;
    let (id, position) = path.into_inner();
    let position: i32 = position.parse().map_err(|_| {
        ApiError::from_service(ServiceError::NotFound("The signing session has no such document".into()), L)
    })?;
    let in_flight = document_slot(&services).await?;
    let download = run(&services, L, move |s| {
        let _in_flight = in_flight;
        signing_sessions::download(s, &principal, &id, position)
    })
    .await?;
    Ok(attachment(download))
}

/// Every signed file of a signed session as `SignedFiles.zip`: each signed PDF under its name, and any
/// other file beside its `.p7s`.
#[utoipa::path(get, tag = TAG, security(("bearer" = [])), params(("id" = String, Path, description = "Signing session id")),
    responses((status = 200, description = "SignedFiles.zip, as an attachment", content_type = "application/zip"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Not signed yet", body = ErrorBody),
        (status = 503, description = "Too many document requests in flight", body = ErrorBody)))]
#[get("/signing-sessions/{id}/SignedFiles.zip")]
pub async fn signed_files_zip(
    services: Data<Services>,
    id: Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let principal = portal_principal(&services, &req).await?;
    let in_flight = document_slot(&services).await?;
    let download = run(&services, L, move |s| {
        let _in_flight = in_flight;
        signing_sessions::zip(s, &principal, &id)
    })
    .await?;
    Ok(attachment(download))
}

/// Deletes a signing session of the person's with its files, signed or not (not while it is being signed).
#[utoipa::path(delete, tag = TAG, security(("bearer" = [])), params(("id" = String, Path, description = "Signing session id")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "A request is signing it now", body = ErrorBody)))]
#[delete("/signing-sessions/{id}")]
pub async fn delete_signing_session(
    services: Data<Services>,
    id: Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let principal = portal_principal(&services, &req).await?;
    run(&services, L, move |s| signing_sessions::delete(s, &principal, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

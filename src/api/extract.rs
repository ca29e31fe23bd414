//! Request extraction shared by the CSC dialects and the lifecycle API: the caller (checked before
//! the body, unless this node saw its CSC token valid: then in the use case's own call, see [`run_as`]
//! and [`run_with_bearer`]),
//! the JSON body with its size limit and CSC-worded errors, base64, and running a use case on a
//! blocking thread.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::web::{Bytes, BytesMut, Data};
use actix_web::{FromRequest, HttpRequest};
use futures_core::Stream;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::error::{ApiError, AuthScheme, Dialect};
use super::large_buffers;
use crate::domain::ApiKeyRole;
use crate::service::{auth, operators, Principal, ServiceError, Services};
use crate::telemetry::RequestId;

/// What the JSON of the CSC and lifecycle methods may weigh besides its hashes: identifiers, a SAD,
/// a certificate choice, a few names. Generous: a real request is a few hundred bytes.
const JSON_BODY_BASE: usize = 64 * 1024;
/// Room per hash in a signHash or authorize body: a base64 SHA-512 digest is 88 characters, twice
/// that if an encoder escapes every `/`, plus quotes, comma and indentation.
const JSON_BODY_PER_HASH: usize = 256;

/// Largest body of a CSC or lifecycle JSON method: enough for a signHash (or authorize) with the
/// most hashes the server accepts (`security.max_hashes_per_request`; 1000 by default: 314 KiB).
pub fn json_body_limit(services: Option<&Services>) -> usize {
    let max_hashes = services.map_or_else(
        || crate::config::SecurityConfig::default().max_hashes_per_request,
        |s| s.config.security.max_hashes_per_request,
    );
    JSON_BODY_BASE.saturating_add(JSON_BODY_PER_HASH.saturating_mul(max_hashes))
}

/// Largest body of a `signatures/signDoc`: its documents (at most
/// `security.max_signdoc_document_bytes` in all, 20 MiB by default) travel base64, 4/3 as long, with
/// room for an encoder that escapes `/` and `+` (see [`session_body_limit`]), beside as many digests as a
/// signHash may carry.
pub fn signdoc_body_limit(services: Option<&Services>) -> usize {
    let documents = services.map_or_else(
        || crate::config::SecurityConfig::default().max_signdoc_document_bytes,
        |s| s.config.security.max_signdoc_document_bytes,
    );
    let base64 = documents.div_ceil(3).saturating_mul(4);
    base64.saturating_add(base64 / 8).saturating_add(json_body_limit(services))
}

/// Largest body of an identity-document upload: the document (at most
/// `service::orders::MAX_DOCUMENT_BYTES`, 5 MiB) travels base64 inside JSON, which makes
/// it 4/3 as long; 256 KiB more cover the other fields and escaped slashes (7,252,652 bytes).
pub const UPLOAD_BODY_LIMIT: usize = crate::service::orders::MAX_DOCUMENT_BYTES.div_ceil(3) * 4 + 256 * 1024;

/// Reads a whole request body of at most `limit` bytes, within `http.request_timeout_secs`.
/// Too large is 413, whether the `Content-Length` says so up front or the stream runs over; too slow
/// is 408. A compressed body (`Content-Encoding` other than `identity`) is 415: a few kilobytes of
/// zstd or gzip unpack to gigabytes before any limit could be checked, and no CSC client compresses
/// requests.
fn read_body(req: &HttpRequest, payload: &mut Payload, limit: usize) -> impl Future<Output = Result<Bytes, ApiError>> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let compressed = req
        .headers()
        .get(actix_web::http::header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"));
    let deadline = std::time::Duration::from_secs(req.app_data::<Data<Services>>().map_or_else(
        || crate::config::HttpConfig::default().request_timeout_secs,
        |s| s.config.http.request_timeout_secs,
    ));
    let mut stream = payload.take();
    async move {
        if compressed {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request",
                "Compressed request bodies are not accepted (Content-Encoding)",
            ));
        }
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(ApiError::payload_too_large(limit));
        }
        let read = async move {
            // Room for what the request says it carries, at once: a buffer grown step by step would copy a
            // large document several times and leave the smaller steps behind in the allocator.
            let mut body = BytesMut::with_capacity(declared.map_or(0, |length| length as usize));
            while let Some(chunk) = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
                let chunk = chunk.map_err(|e| match e {
                    PayloadError::Overflow => ApiError::payload_too_large(limit),
                    _ => ApiError::invalid_request("Unreadable request body"),
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(ApiError::payload_too_large(limit));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body.freeze())
        };
        tokio::time::timeout(deadline, read).await.map_err(|_| {
            ApiError::new(StatusCode::REQUEST_TIMEOUT, "invalid_request", "The request body did not arrive in time")
        })?
    }
}

/// A whole request body of at most `limit` bytes (413 beyond, 408 when too slow, 415 when compressed).
pub(crate) fn read_limited_body(
    req: &HttpRequest,
    payload: &mut Payload,
    limit: usize,
) -> impl Future<Output = Result<Bytes, ApiError>> {
    read_body(req, payload, limit)
}

/// 415 unless the request's `Content-Type` is `media_type` (parameters and letter case aside): for the
/// binary protocols (RFC 3161, OCSP), whose bodies are DER of one kind.
pub(crate) fn require_media_type(req: &HttpRequest, media_type: &str) -> Result<(), ApiError> {
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if content_type.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case(media_type) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "invalid_request",
        format!("Content-Type must be {media_type}"),
    ))
}

/// Deepest nesting of arrays and objects a request body may have. The deepest real request (a v2
/// authorize's `authData` entries) has 3 levels.
pub const MAX_JSON_DEPTH: usize = 32;

/// Whether `body` nests arrays and objects deeper than `max` (brackets inside strings do not count).
/// serde_json bounds the recursion of typed fields at 128 but skips unknown fields at any depth:
/// this one check bounds both, before anything is parsed.
fn nested_deeper_than(body: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut at = 0;
    while let Some(&byte) = body.get(at) {
        at += 1;
        match byte {
            // A string's inside is skipped at once: a signDoc body is mostly one string of base64.
            b'"' => loop {
                match memchr::memchr2(b'"', b'\\', &body[at.min(body.len())..]) {
                    Some(found) if body[at + found] == b'\\' => at += found + 2,
                    Some(found) => {
                        at += found + 1;
                        break;
                    }
                    None => return false,
                }
            },
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Parses a JSON body with CSC-worded errors: a field of the wrong type is named in the answer (with
/// its type in the method at path `method`), and an empty body counts as `{}` (CSC `info` allows it).
/// Nesting deeper than [`MAX_JSON_DEPTH`] is 400.
fn parse_json<T: DeserializeOwned>(body: &[u8], content_type: Option<&str>, method: &str) -> Result<T, ApiError> {
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    if !body.is_empty() && !content_type.is_some_and(|c| c.starts_with("application/json")) {
        return Err(ApiError::invalid_request("Content-Type must be application/json"));
    }
    if nested_deeper_than(text, MAX_JSON_DEPTH) {
        return Err(ApiError::invalid_request(format!(
            "Malformed JSON request body: nested deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    let mut de = serde_json::Deserializer::from_slice(text);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(value) => Ok(value),
        Err(e) => {
            let path = e.path().to_string();
            let field = path.split(['.', '[']).next().unwrap_or_default();
            if e.inner().is_syntax() || e.inner().is_eof() || field.is_empty() || field == "?" {
                Err(ApiError::invalid_request("Malformed JSON request body"))
            } else {
                Err(ApiError::missing_in(method, field))
            }
        }
    }
}

fn json_extractor<T: DeserializeOwned + 'static>(
    req: &HttpRequest,
    payload: &mut Payload,
    limit: usize,
) -> Pin<Box<dyn Future<Output = Result<T, ApiError>>>> {
    let body = read_body(req, payload, limit);
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase);
    let path = req.path().to_string();
    Box::pin(async move { parse_json(&body.await?, content_type.as_deref(), &path) })
}

/// A JSON body of a CSC or lifecycle method, at most [`json_body_limit`] bytes.
pub struct CscJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for CscJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = json_body_limit(req.app_data::<Data<Services>>().map(|d| d.get_ref()));
        let body = json_extractor::<T>(req, payload, limit);
        Box::pin(async move { body.await.map(CscJson) })
    }
}

/// A JSON body that carries an uploaded file, at most [`UPLOAD_BODY_LIMIT`] bytes.
pub struct UploadJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for UploadJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = json_extractor::<T>(req, payload, UPLOAD_BODY_LIMIT);
        Box::pin(async move { body.await.map(UploadJson) })
    }
}

/// signDoc bodies read, parsed and signed at once in this process: each may hold
/// `security.max_signdoc_document_bytes` of documents several times over (base64, decoded, inside the
/// CMS), so a few at a time bound the memory they take; the next waits for one to end.
const SIGNDOC_IN_FLIGHT: usize = 4;

static SIGNDOC_SLOTS: std::sync::LazyLock<std::sync::Arc<tokio::sync::Semaphore>> =
    std::sync::LazyLock::new(|| std::sync::Arc::new(tokio::sync::Semaphore::new(SIGNDOC_IN_FLIGHT)));

/// The JSON body of `signatures/signDoc`, at most [`signdoc_body_limit`] bytes: it may carry documents.
/// It is read only once one of `SIGNDOC_IN_FLIGHT` (4) slots is free (503 if none comes free within
/// `http.request_timeout_secs`), and parsed on the blocking pool; the slot is held until the answer is made,
/// by the blocking work itself (a client that disconnects does not free it early).
pub struct SignDocJson<T> {
    /// The parsed body.
    pub body: T,
    /// The slot, given back when dropped.
    pub in_flight: tokio::sync::OwnedSemaphorePermit,
}

impl<T: DeserializeOwned + Send + 'static> FromRequest for SignDocJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = signdoc_body_limit(req.app_data::<Data<Services>>().map(|d| d.get_ref()));
        documents_json(req, payload, limit, super::error::Dialect::V2)
    }
}

/// Largest body of a new signing session: its files (at most `signing_sessions.max_session_bytes` in
/// all, 50 MiB by default) travel base64, with room for an encoder that escapes `/` as `\/` and `+` as
/// `\u002B` (.NET's does: each is one base64 character in 64, so 1/8 more is ample), beside their names
/// and placements.
pub fn session_body_limit(services: Option<&Services>) -> usize {
    let files = services.map_or_else(
        || crate::config::SigningSessionsConfig::default().max_session_bytes,
        |s| s.config.signing_sessions.max_session_bytes,
    );
    let base64 = files.div_ceil(3).saturating_mul(4);
    base64.saturating_add(base64 / 8).saturating_add(JSON_BODY_BASE)
}

/// The JSON body of a new signing session, at most [`session_body_limit`] bytes, read and parsed like
/// [`SignDocJson`] (in one of the same slots).
pub struct SessionJson<T>(pub SignDocJson<T>);

impl<T: DeserializeOwned + Send + 'static> FromRequest for SessionJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = session_body_limit(req.app_data::<Data<Services>>().map(|d| d.get_ref()));
        let body = documents_json(req, payload, limit, super::error::Dialect::Lifecycle);
        Box::pin(async move { body.await.map(SessionJson) })
    }
}

/// One of the slots for work on whole documents (503 if none comes free within
/// `http.request_timeout_secs`): signDoc, and the signing sessions' uploads, signing and zips.
pub async fn document_slot(services: &Services) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    let wait = std::time::Duration::from_secs(services.config.http.request_timeout_secs);
    tokio::time::timeout(wait, SIGNDOC_SLOTS.clone().acquire_owned())
        .await
        .map_err(|_| ApiError::from_service(ServiceError::Unavailable, super::error::Dialect::Lifecycle))?
        .map_err(|_| ApiError::internal())
}

/// A JSON body that carries documents: read once a document slot is free, parsed on the blocking pool.
fn documents_json<T: DeserializeOwned + Send + 'static>(
    req: &HttpRequest,
    payload: &mut Payload,
    limit: usize,
    dialect: super::error::Dialect,
) -> Pin<Box<dyn Future<Output = Result<SignDocJson<T>, ApiError>>>> {
    let services = req.app_data::<Data<Services>>().map(|d| d.get_ref());
    let wait = std::time::Duration::from_secs(services.map_or_else(
        || crate::config::HttpConfig::default().request_timeout_secs,
        |s| s.config.http.request_timeout_secs,
    ));
    // Takes the payload; reads nothing until polled, after a slot is free.
    let body = read_body(req, payload, limit);
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase);
    let path = req.path().to_string();
    Box::pin(async move {
        let in_flight = tokio::time::timeout(wait, SIGNDOC_SLOTS.clone().acquire_owned())
            .await
            .map_err(|_| ApiError::from_service(ServiceError::Unavailable, dialect))?
            .map_err(|_| ApiError::internal())?;
        let body = body.await?;
        // The slot goes with the work: a client that leaves does not free it while the parse goes on.
        let (body, in_flight) =
            actix_web::web::block(move || (parse_json::<T>(&body, content_type.as_deref(), &path), in_flight))
                .await
                .map_err(|_| ApiError::internal())?;
        Ok(SignDocJson { body: body?, in_flight })
    })
}

/// A raw body (webhooks, whose signature covers the exact bytes), at most [`json_body_limit`] bytes.
pub struct RawBody(pub Bytes);

impl FromRequest for RawBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = json_body_limit(req.app_data::<Data<Services>>().map(|d| d.get_ref()));
        let body = read_body(req, payload, limit);
        Box::pin(async move { body.await.map(RawBody) })
    }
}

/// Who is calling a route that needs authentication.
pub trait Authenticate: Sized + 'static {
    /// Authenticates the request's caller from its headers, before the body is read.
    fn authenticate(services: Data<Services>, req: HttpRequest) -> impl Future<Output = Result<Self, ApiError>>;
}

/// A caller and a body, in that order: the credentials are checked before a byte of the body is
/// read, so a request without valid credentials is 401 whatever its body holds, and an anonymous
/// caller cannot make the server read (or parse) a large body.
pub struct Authed<A, B>(pub A, pub B);

impl<A: Authenticate, B: FromRequest + 'static> FromRequest for Authed<A, B> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // Creating the body's future takes the payload but reads nothing: it is polled only below.
        let body = B::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let services = req.app_data::<Data<Services>>().cloned().ok_or_else(ApiError::internal)?;
            let caller = A::authenticate(services, req).await?;
            let body = body.await.map_err(Into::into)?;
            Ok(Authed(caller, body))
        })
    }
}

/// A CSC v1 caller: the bearer token from `/csc/v1/auth/login`.
pub struct CscV1User(pub Caller);
/// A CSC v2 caller: the bearer token from `/csc/v2/auth/login`.
pub struct CscV2User(pub Caller);
/// A lifecycle API caller: the session from `/api/v1/login`.
pub struct PortalUser(pub Principal);
/// An operator: an API key from `rssp operator create`.
pub struct OperatorKey(pub operators::Operator);

impl Authenticate for CscV1User {
    async fn authenticate(services: Data<Services>, req: HttpRequest) -> Result<Self, ApiError> {
        csc_caller(&services, &req, Dialect::V1).await.map(CscV1User)
    }
}

impl Authenticate for CscV2User {
    async fn authenticate(services: Data<Services>, req: HttpRequest) -> Result<Self, ApiError> {
        csc_caller(&services, &req, Dialect::V2).await.map(CscV2User)
    }
}

impl Authenticate for PortalUser {
    async fn authenticate(services: Data<Services>, req: HttpRequest) -> Result<Self, ApiError> {
        portal_principal(&services, &req).await.map(PortalUser)
    }
}

impl Authenticate for OperatorKey {
    async fn authenticate(services: Data<Services>, req: HttpRequest) -> Result<Self, ApiError> {
        operator(&services, &req).await.map(OperatorKey)
    }
}

/// What the `Authorization` header holds for a bearer-token route.
enum BearerHeader {
    Missing,
    Malformed,
    Token(SecretString),
}

/// The credentials after an authentication scheme's name, which is case-insensitive (RFC 9110 §11.1).
pub fn credentials_of<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (name, credentials) = header.split_once(' ')?;
    name.eq_ignore_ascii_case(scheme).then_some(credentials)
}

fn bearer_header(req: &HttpRequest) -> BearerHeader {
    let Some(value) = req.headers().get("authorization") else {
        return BearerHeader::Missing;
    };
    value
        .to_str()
        .ok()
        .and_then(|v| credentials_of(v, "Bearer"))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map_or(BearerHeader::Malformed, |t| BearerHeader::Token(t.into()))
}

/// No `Authorization` header at all: 401 with a bearer challenge (RFC 6750 §3.1).
fn token_required(what: &str) -> ApiError {
    ApiError::unauthenticated(AuthScheme::Bearer, "invalid_token", format!("{what} is required"))
}

/// The caller of a CSC request, known only to [`run_as`] and [`run_with_bearer`]: the principal of a
/// token checked before the body was read, or a token this node found valid recently, checked in the use
/// case's own blocking call (see `auth::SeenTokens`).
pub struct Caller {
    token: SecretString,
    checked: Option<Principal>,
}

/// The bearer token of a CSC request: none is 401 with a challenge; a header that is not
/// `Bearer <token>` is 400, as the CSC method tables say (and RFC 6750 §3.1 for a malformed
/// request); a bad or expired token 401, before the body is read unless this node saw the token valid.
pub async fn csc_caller(services: &Data<Services>, req: &HttpRequest, dialect: Dialect) -> Result<Caller, ApiError> {
    let token = match bearer_header(req) {
        BearerHeader::Token(token) => token,
        BearerHeader::Missing => return Err(token_required("A bearer token")),
        BearerHeader::Malformed => return Err(ApiError::invalid_request("Malformed authorization header")),
    };
    if auth::seen_recently(services, token.expose_secret()) {
        return Ok(Caller { token, checked: None });
    }
    let bearer = token.clone();
    let principal = run(services, dialect, move |s| auth::authenticate(s, bearer.expose_secret())).await?;
    Ok(Caller { token, checked: Some(principal) })
}

/// Runs a CSC use case for its caller on a blocking thread, like [`run`]: a token not checked yet is
/// checked there first, so a use case only ever runs for a token the store holds valid.
pub async fn run_as<T: Send + 'static>(
    services: &Data<Services>,
    dialect: Dialect,
    caller: Caller,
    f: impl FnOnce(&Services, &Principal) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ApiError> {
    run(services, dialect, move |s| {
        let principal = match caller.checked {
            Some(principal) => principal,
            None => auth::authenticate(s, caller.token.expose_secret())?,
        };
        f(s, &principal)
    })
    .await
}

/// Runs a CSC use case that judges the caller's token itself, with its own first statement (see
/// `auth::Bearer`), on a blocking thread like [`run`]. A token checked before the body was read is
/// judged there again: the same statement reads it anyway.
pub async fn run_with_bearer<T: Send + 'static>(
    services: &Data<Services>,
    dialect: Dialect,
    caller: Caller,
    f: impl FnOnce(&Services, &auth::Bearer) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ApiError> {
    run(services, dialect, move |s| f(s, &auth::Bearer::of(caller.token.expose_secret()))).await
}

/// The bearer token of a lifecycle API request: a session from `/api/v1/login`.
pub async fn portal_principal(services: &Data<Services>, req: &HttpRequest) -> Result<Principal, ApiError> {
    let token = match bearer_header(req) {
        BearerHeader::Token(token) => token,
        BearerHeader::Missing | BearerHeader::Malformed => return Err(token_required("A bearer token")),
    };
    run(services, Dialect::Lifecycle, move |s| auth::authenticate_portal(s, token.expose_secret())).await
}

/// The operator behind an admin API request (an API key from `rssp operator create`).
pub async fn operator(services: &Data<Services>, req: &HttpRequest) -> Result<operators::Operator, ApiError> {
    api_key(services, req, ApiKeyRole::Admin, "An operator API key").await
}

/// The TSA client behind a `POST /tsa` (an API key from `rssp tsa-client create`).
pub async fn tsa_client(services: &Data<Services>, req: &HttpRequest) -> Result<operators::Operator, ApiError> {
    api_key(services, req, ApiKeyRole::TsaClient, "A TSA client API key").await
}

async fn api_key(
    services: &Data<Services>,
    req: &HttpRequest,
    role: ApiKeyRole,
    what: &str,
) -> Result<operators::Operator, ApiError> {
    let key = match bearer_header(req) {
        BearerHeader::Token(key) => key,
        BearerHeader::Missing | BearerHeader::Malformed => return Err(token_required(what)),
    };
    run(services, Dialect::Lifecycle, move |s| operators::authenticate(s, key.expose_secret(), role)).await
}

/// Runs a use case on a blocking thread (diesel and PKCS#11 block) and maps its error. The audit
/// records it writes carry the request's id.
pub async fn run<T: Send + 'static>(
    services: &Data<Services>,
    dialect: Dialect,
    f: impl FnOnce(&Services) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ApiError> {
    let services = services.clone();
    // The request's span and id follow the use case onto the blocking thread, and leave with it.
    let span = tracing::Span::current();
    let request_id = RequestId::current();
    let work = move || {
        let _span = span.enter();
        let _request = request_id.enter();
        f(&services)
    };
    match actix_web::web::block(work).await {
        Ok(result) => result.map_err(|e| ApiError::from_service(e, dialect)),
        Err(e) => {
            tracing::error!(error = %e, "blocking task failed");
            Err(ApiError::internal())
        }
    }
}

/// Standard base64 (RFC 4648 §4), padded or not; anything else is refused with `what` in the message.
pub fn decode_base64(text: &str, what: &str) -> Result<Vec<u8>, ApiError> {
    decode_base64_bytes(text.as_bytes()).ok_or_else(|| not_base64(what))
}

/// The CSC refusal of a field `what` that is not base64.
fn not_base64(what: &str) -> ApiError {
    ApiError::invalid_request(format!("Invalid Base64 {what} string parameter"))
}

/// Standard base64, padded or not (never with bits left over past the last byte), from bytes. SIMD: a
/// signDoc body carries documents of tens of megabytes.
fn decode_base64_bytes(text: &[u8]) -> Option<Vec<u8>> {
    // A large document goes into a large buffer kept from an earlier request, if there is one.
    let mut decoded = large_buffers::take(text.len() / 4 * 3 + 2);
    let outcome = base64_simd::STANDARD
        .decode_append(text, &mut decoded)
        .or_else(|_| base64_simd::STANDARD_NO_PAD.decode_append(text, &mut decoded));
    // A refused one is freed, not kept: the decoder may have written past its length.
    outcome.ok().map(|()| decoded)
}

/// A base64 string of a request body (a document), decoded while the body is parsed, from the body's
/// own bytes: a document of tens of megabytes is not first copied into a string. A string that is not
/// base64 (invalid UTF-8 and control characters included) is marked so, for the handler to refuse in
/// its own words ([`Base64Field::decoded`]); a value that is not a string is a wrong type, as for any
/// field.
pub struct Base64Field(Result<Vec<u8>, NotBase64>);

/// Text that is not base64.
#[derive(Debug)]
pub struct NotBase64;

impl Base64Field {
    /// The bytes, or the CSC refusal naming the field `what`.
    pub fn decoded(self, what: &str) -> Result<Vec<u8>, ApiError> {
        self.0.map_err(|NotBase64| not_base64(what))
    }
}

impl std::fmt::Debug for Base64Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Ok(bytes) => write!(f, "Base64Field({} bytes)", bytes.len()),
            Err(NotBase64) => f.write_str("Base64Field(not base64)"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Base64Field {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Base64Visitor;
        impl serde::de::Visitor<'_> for Base64Visitor {
            type Value = Base64Field;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a base64 string")
            }
            // serde_json hands a string's raw bytes here (escapes undone, no UTF-8 check: base64 is
            // checked byte by byte anyway).
            fn visit_bytes<E: serde::de::Error>(self, text: &[u8]) -> Result<Base64Field, E> {
                Ok(Base64Field(decode_base64_bytes(text).ok_or(NotBase64)))
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Base64Field, E> {
                self.visit_bytes(text.as_bytes())
            }
        }
        deserializer.deserialize_bytes(Base64Visitor)
    }
}

pub(crate) fn decode_hashes(hashes: &[String], what: &str) -> Result<Vec<Vec<u8>>, ApiError> {
    hashes.iter().map(|h| decode_base64(h, what)).collect()
}

pub(crate) fn encode_base64(bytes: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(bytes)
}

/// Appends `bytes`, base64, to `out`: a slice of a large document is encoded straight into the buffer
/// that is sent.
pub(crate) fn push_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    base64_simd::STANDARD.encode_append(bytes, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct WithDocument {
        document: Option<Base64Field>,
    }

    fn document(json: &str) -> Result<Option<Result<Vec<u8>, ApiError>>, serde_json::Error> {
        let parsed: WithDocument = serde_json::from_slice(json.as_bytes())?;
        Ok(parsed.document.map(|d| d.decoded("documents")))
    }

    #[test]
    fn base64_is_standard_padded_or_not_and_refuses_what_the_base64_crate_refuses() {
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
        use base64::Engine;
        let texts = [
            "",
            "aGVsbG8=",
            "aGVsbG8",
            "aGVsbA==",
            "aGVsbA",
            "aGVsbA=",
            "aGVsbG9=",
            "aGVsbB==",
            "aG==bG8=",
            "a",
            "ab",
            "abc",
            "abcd",
            "ab=c",
            "-_-_",
            "aGVs bG8=",
            "aGVsbG8==",
            "////",
            "+/+/",
            "aGVsbG8\n",
        ];
        for text in texts {
            let reference = STANDARD.decode(text).or_else(|_| STANDARD_NO_PAD.decode(text)).ok();
            assert_eq!(decode_base64_bytes(text.as_bytes()), reference, "{text:?}");
        }
        for len in 0..70 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(encode_base64(&bytes), STANDARD.encode(&bytes));
            let mut out = b"[".to_vec();
            push_base64(&mut out, &bytes);
            assert_eq!(&out[1..], STANDARD.encode(&bytes).as_bytes());
        }
    }

    #[test]
    fn a_large_document_decodes_exactly_into_a_buffer_an_earlier_document_held() {
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
        use base64::Engine;
        // Above the smallest size large_buffers keeps, so that its buffers are used, and not a multiple of 3.
        let document: Vec<u8> = (0..(17usize << 20) + 1).map(|i| (i % 241) as u8).collect();
        for _ in 0..2 {
            large_buffers::give_back(vec![0xee; 20 << 20]);
            let padded = STANDARD.encode(&document);
            assert_eq!(decode_base64_bytes(padded.as_bytes()).as_deref(), Some(&document[..]));
            large_buffers::give_back(vec![0xee; 20 << 20]);
            let unpadded = STANDARD_NO_PAD.encode(&document);
            let decoded = decode_base64_bytes(unpadded.as_bytes()).unwrap();
            assert_eq!(decoded.len(), document.len());
            assert!(decoded == document);
            large_buffers::give_back(decoded);
            let mut broken = padded.into_bytes();
            let middle = broken.len() / 2;
            broken[middle] = b'!';
            assert_eq!(decode_base64_bytes(&broken), None);
        }
    }

    #[test]
    fn a_base64_field_is_decoded_as_it_is_read_and_keeps_its_refusals() {
        assert_eq!(document(r#"{"document": "aGVsbG8="}"#).unwrap().unwrap().unwrap(), b"hello");
        assert_eq!(document(r#"{"document": "aGVsbG8"}"#).unwrap().unwrap().unwrap(), b"hello", "unpadded");
        // An encoder that escapes `/` (and `+` as \u002B) sends the same base64.
        assert_eq!(document(r#"{"document": "\/\/8\u002B"}"#).unwrap().unwrap().unwrap(), [0xff, 0xff, 0x3e]);
        let refused = document(r#"{"document": "not base64!"}"#).unwrap().unwrap().unwrap_err();
        assert!(refused.to_string().contains("Invalid Base64 documents string parameter"), "{refused}");
        assert!(document(r#"{"document": null}"#).unwrap().is_none());
        assert!(document(r#"{"document": 12}"#).is_err(), "a number is a wrong type");
        assert!(document(r#"{"document": ["aGVsbG8="]}"#).is_err(), "a list is a wrong type");
        // What serde_json would refuse in a string (a control character, a lone surrogate, invalid
        // UTF-8) is not base64 either: the field's own refusal.
        for odd in
            [&b"{\"document\": \"aGVs\x01bG8=\"}"[..], b"{\"document\": \"\\uD800\"}", b"{\"document\": \"\xff\xfe\"}"]
        {
            let parsed: WithDocument = serde_json::from_slice(odd).unwrap();
            let refused = parsed.document.unwrap().decoded("documents").unwrap_err();
            assert!(refused.to_string().contains("Invalid Base64 documents string parameter"), "{refused}");
        }
    }

    #[test]
    fn nesting_is_measured_outside_strings() {
        let cases: &[(&str, usize, bool)] = &[
            ("{}", 1, false),
            ("{\"a\":[{\"b\":1}]}", 3, false),
            ("{\"a\":[{\"b\":1}]}", 2, true),
            ("{\"a\":\"[[[[[[\"}", 1, false),
            ("{\"a\":\"\\\"[[[[\"}", 1, false),
            ("[[[]]] [[[]]]", 3, false),
            ("[[[[", 3, true),
            ("]]]]{", 1, false),
            ("{\"a\\\\\":[[[", 2, true),
            ("{\"a\\\"[[[", 2, false),
            ("\"ends in a backslash\\", 0, false),
            ("\"\\", 0, false),
            ("[\"x\"][[[\"\\\"]]]\"]]]", 3, false),
            ("[\"x\"][[[\"\\\\\"[]]]", 3, true),
        ];
        for (body, max, deeper) in cases {
            assert_eq!(nested_deeper_than(body.as_bytes(), *max), *deeper, "{body} max {max}");
        }
    }
}

#[cfg(test)]
mod proptests;

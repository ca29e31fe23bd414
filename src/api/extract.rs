//! Request extraction shared by the CSC dialects: the JSON body (with CSC-worded errors), the
//! bearer token, base64, and running a use case on a blocking thread.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::web::{Bytes, Data};
use actix_web::{FromRequest, HttpRequest};
use base64::Engine;
use serde::de::DeserializeOwned;

use super::error::{ApiError, Dialect};
use crate::service::{auth, operators, Principal, ServiceError, Services};
use crate::telemetry::RequestId;

/// Largest request body accepted (1000 SHA-512 hashes in base64 fit many times over).
const MAX_BODY: usize = 1024 * 1024;

/// A JSON body whose errors are CSC errors: a field of the wrong type is named in the answer, and
/// an empty body counts as `{}` (CSC `info` allows it).
pub struct CscJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for CscJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = Bytes::from_request(req, payload);
        let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase);
        Box::pin(async move {
            let body = body.await.map_err(|_| ApiError::invalid_request("Unreadable request body"))?;
            if body.len() > MAX_BODY {
                return Err(ApiError::invalid_request("Request body too large"));
            }
            let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &body };
            if !body.is_empty() && !content_type.as_deref().is_some_and(|c| c.starts_with("application/json")) {
                return Err(ApiError::invalid_request("Content-Type must be application/json"));
            }
            let mut de = serde_json::Deserializer::from_slice(text);
            match serde_path_to_error::deserialize::<_, T>(&mut de) {
                Ok(value) => Ok(CscJson(value)),
                Err(e) => {
                    let path = e.path().to_string();
                    let field = path.split(['.', '[']).next().unwrap_or_default();
                    if e.inner().is_syntax() || e.inner().is_eof() || field.is_empty() || field == "?" {
                        Err(ApiError::invalid_request("Malformed JSON request body"))
                    } else {
                        Err(ApiError::missing(field))
                    }
                }
            }
        })
    }
}

fn bearer_token(req: &HttpRequest) -> Result<String, ApiError> {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or_else(|| ApiError::invalid_request("Malformed authorization header"))
}

/// The bearer token of a CSC request: a malformed header is 400, a bad or expired token 401.
pub async fn principal(services: &Data<Services>, req: &HttpRequest, dialect: Dialect) -> Result<Principal, ApiError> {
    let token = bearer_token(req)?;
    run(services, dialect, move |s| auth::authenticate(s, &token)).await
}

/// The bearer token of a lifecycle API request: a session from `/api/v1/login`.
pub async fn portal_principal(services: &Data<Services>, req: &HttpRequest) -> Result<Principal, ApiError> {
    let token = bearer_token(req).map_err(|_| {
        ApiError::new(actix_web::http::StatusCode::UNAUTHORIZED, "invalid_token", "A bearer token is required")
    })?;
    run(services, Dialect::Lifecycle, move |s| auth::authenticate_portal(s, &token)).await
}

/// The operator behind an admin API request (an API key from `rssp operator create`).
pub async fn operator(services: &Data<Services>, req: &HttpRequest) -> Result<operators::Operator, ApiError> {
    let key = bearer_token(req).map_err(|_| {
        ApiError::new(actix_web::http::StatusCode::UNAUTHORIZED, "invalid_token", "An operator API key is required")
    })?;
    run(services, Dialect::Lifecycle, move |s| operators::authenticate(s, &key)).await
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
    let engine = base64::engine::general_purpose::STANDARD;
    engine
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
        .map_err(|_| ApiError::invalid_request(format!("Invalid Base64 {what} string parameter")))
}

pub fn decode_hashes(hashes: &[String], what: &str) -> Result<Vec<Vec<u8>>, ApiError> {
    hashes.iter().map(|h| decode_base64(h, what)).collect()
}

pub fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

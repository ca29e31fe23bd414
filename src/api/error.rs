//! The one place that maps errors to an HTTP status and the CSC error body
//! `{"error": ..., "error_description": ...}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::service::{OAuthErrorCode, Param, ServiceError};

/// The CSC error body (CSC API §5.1 / v2 §7.1).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Error code, e.g. `invalid_request`, `invalid_token`, `invalid_otp`.
    pub error: String,
    pub error_description: String,
}

pub const WWW_AUTHENTICATE: &str = "WWW-Authenticate";

/// The protection space named in every challenge.
const REALM: &str = "rssp";

/// How a route wants its caller to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    /// HTTP Basic (RFC 7617): CSC `auth/login`.
    Basic,
    /// A bearer token (RFC 6750): every other authenticated route.
    Bearer,
}

fn bearer_challenge(error: Option<&str>) -> String {
    match error {
        // RFC 6750 §3.1 knows invalid_token; CSC's expired_token is an invalid token to HTTP.
        Some("invalid_token" | "expired_token") => format!("Bearer realm=\"{REALM}\", error=\"invalid_token\""),
        _ => format!("Bearer realm=\"{REALM}\""),
    }
}

/// Which wire dialect a request came in: the same field has different names in v1 and v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    V1,
    V2,
    /// The lifecycle and admin APIs (`/api/...`), whose fields are snake_case.
    Lifecycle,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// Seconds until the request may be repeated (a `Retry-After` header).
    pub retry_after: Option<i64>,
    /// Further response headers the answer needs (`WWW-Authenticate` of a 401, `Allow` of a 405).
    pub headers: Vec<(&'static str, String)>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.description)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header(("Retry-After", seconds.max(1).to_string()));
        }
        for (name, value) in &self.headers {
            response.insert_header((*name, value.as_str()));
        }
        // RFC 9110 §11.6.1: every 401 names how to authenticate. The routes that take Basic say so
        // themselves; everything else takes a bearer token (RFC 6750 §3).
        if self.status == StatusCode::UNAUTHORIZED && !self.headers.iter().any(|(n, _)| *n == WWW_AUTHENTICATE) {
            response.insert_header((WWW_AUTHENTICATE, bearer_challenge(Some(self.error))));
        }
        response.json(ErrorBody { error: self.error.to_string(), error_description: self.description.clone() })
    }
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> ApiError {
        ApiError { status, error, description: description.into(), retry_after: None, headers: Vec::new() }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> ApiError {
        self.headers.push((name, value.into()));
        self
    }

    /// A request that carries no credentials at all: 401 with a challenge for `scheme` and no error
    /// code in it (RFC 6750 §3.1: a request without authentication gets no error code).
    pub fn unauthenticated(scheme: AuthScheme, error: &'static str, description: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, error, description).with_challenge(scheme)
    }

    /// Names `scheme` in the `WWW-Authenticate` header of a 401 (replacing the default bearer one).
    pub fn with_challenge(mut self, scheme: AuthScheme) -> ApiError {
        let challenge = match scheme {
            // RFC 7617 §2.1: the only charset allowed, and the one clients should use.
            AuthScheme::Basic => format!("Basic realm=\"{REALM}\", charset=\"UTF-8\""),
            AuthScheme::Bearer => bearer_challenge(None),
        };
        self.headers.retain(|(name, _)| *name != WWW_AUTHENTICATE);
        self.with_header(WWW_AUTHENTICATE, challenge)
    }

    /// This error's status and `Retry-After`, with `body` (of `content_type`) in place of the CSC error
    /// body: for protocols whose clients read only their own error format (RFC 3161, OCSP).
    pub fn with_protocol_body(&self, content_type: &str, body: Vec<u8>) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header(("Retry-After", seconds.max(1).to_string()));
        }
        response.insert_header(("Cache-Control", "no-store")).content_type(content_type).body(body)
    }

    /// A method the path does not take (RFC 9110 §15.5.6): `allow` lists the ones it does.
    pub fn method_not_allowed(allow: &str) -> ApiError {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "invalid_request", "Method not allowed on this path")
            .with_header("Allow", allow)
    }

    /// A body over the route's limit (413, RFC 9110 §15.5.14).
    pub fn payload_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            format!("Request body too large: this method accepts at most {limit} bytes"),
        )
    }

    pub fn invalid_request(description: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// "Missing (or invalid type) string parameter credentialID", as the CSC error tables word it.
    pub fn missing(name: &str) -> ApiError {
        ApiError::missing_in("", name)
    }

    /// The same, for a field of the method at `path` (a field's type can differ between methods).
    pub fn missing_in(path: &str, name: &str) -> ApiError {
        ApiError::invalid_request(format!("Missing (or invalid type) {} parameter {name}", param_kind(path, name)))
    }

    pub fn invalid(name: &str) -> ApiError {
        ApiError::invalid_request(format!("Invalid parameter {name}"))
    }

    pub fn internal() -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "The service could not complete the request")
    }

    /// Maps a service error once, naming request fields in the caller's dialect.
    pub fn from_service(error: ServiceError, dialect: Dialect) -> ApiError {
        use ServiceError as E;
        let name = |p: Param| param_name(p, dialect);
        let error_kind = if matches!(error, E::OtpReplayed) { Kind::Replayed } else { Kind::Other };
        match error {
            E::Missing(p) => ApiError::missing(name(p)),
            E::Invalid(p) => ApiError::invalid(name(p)),
            E::InvalidField { field, why } => ApiError::invalid_request(format!("{}: {why}", field.as_str())),
            E::InvalidRequest(text) => ApiError::invalid_request(text),
            E::InvalidToken => {
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", "The access token is not valid")
            }
            E::ExpiredToken => {
                ApiError::new(StatusCode::UNAUTHORIZED, "expired_token", "The access token expired or was revoked")
            }
            E::AuthenticationFailed => ApiError::new(
                StatusCode::BAD_REQUEST,
                "authentication_error",
                "An error occurred during authentication process",
            ),
            // v2 reports every wrong authentication object as invalid_authentication_data.
            E::InvalidOtp | E::OtpReplayed | E::InvalidPin if dialect == Dialect::V2 => {
                let what = if matches!(error_kind, Kind::Replayed) {
                    "The OTP has already been used"
                } else {
                    "The authentication data is invalid"
                };
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_authentication_data", what)
            }
            E::InvalidOtp => ApiError::new(StatusCode::BAD_REQUEST, "invalid_otp", "The OTP is invalid"),
            E::OtpReplayed => ApiError::new(StatusCode::BAD_REQUEST, "invalid_otp", "The OTP has already been used"),
            E::OtpLocked { until } => ApiError::invalid_request(format!(
                "OTP locked after repeated failures, until {}",
                crate::clock::rfc3339(until)
            )),
            E::InvalidPin => ApiError::new(StatusCode::BAD_REQUEST, "invalid_pin", "The PIN is invalid"),
            E::CredentialDisabled => ApiError::invalid_request("The credential identified by credentialID is disabled"),
            E::SadExpired => ApiError::invalid_request("SAD expired"),
            E::SadBudgetSpent => ApiError::invalid_request("The SAD does not cover that many signatures"),
            E::HashNotAuthorized => ApiError::invalid_request("Hash is not authorized by the SAD."),
            // v2.0.0.2 §11.11's one 403.
            E::DocumentNotAuthorized => ApiError::new(
                StatusCode::FORBIDDEN,
                "invalid_hash",
                "Document or documentDigest does not match authorized hash",
            ),
            E::DigestLength => ApiError::invalid_request("Invalid digest value length"),
            E::CertificateExpired { subject } => {
                ApiError::invalid_request(format!("Signing certificate '{subject}' is expired."))
            }
            E::NotFound(text) => ApiError::new(StatusCode::NOT_FOUND, "not_found", text),
            E::Conflict(text) => ApiError::new(StatusCode::CONFLICT, "conflict", text),
            E::TooLarge(text) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", text),
            E::ReissueRequired(text) => ApiError::new(StatusCode::CONFLICT, "reissue_required", text),
            E::Forbidden(text) => ApiError::new(StatusCode::FORBIDDEN, "access_denied", text),
            E::LoginLocked { until } => {
                let text = format!("Too many failed logins; try again after {}", crate::clock::rfc3339(until));
                match dialect {
                    Dialect::Lifecycle => ApiError::new(StatusCode::FORBIDDEN, "access_denied", text),
                    // A CSC login answers a lock exactly like a wrong password: only existing accounts
                    // lock, so a distinct answer would tell who has an account.
                    Dialect::V1 | Dialect::V2 => ApiError::from_service(ServiceError::AuthenticationFailed, dialect),
                }
            }
            E::RateLimited { text, retry_after } => ApiError {
                retry_after: Some(retry_after),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", text)
            },
            E::QuotaExhausted { remaining, total } => ApiError::invalid_request(format!(
                "Signature quota exhausted: the credential has {remaining} of its {total} signatures left"
            )),
            E::NoTransactionLeft => ApiError::invalid_request(
                "No credential with a transaction left: a time-stamp spends one transaction of a credential that \
                 can sign now",
            ),
            // RFC 6749 §5.2: a client that failed to authenticate gets 401 and a challenge for the scheme
            // it may use (HTTP Basic; a secret in the body is the other way).
            E::OAuth { code: OAuthErrorCode::InvalidClient, description } => {
                ApiError::new(StatusCode::UNAUTHORIZED, OAuthErrorCode::InvalidClient.as_str(), description)
                    .with_challenge(AuthScheme::Basic)
            }
            E::OAuth { code, description } => ApiError::new(StatusCode::BAD_REQUEST, code.as_str(), description),
            E::Unavailable => {
                tracing::warn!("no database connection or HSM session free in time: answered 503");
                ApiError {
                    retry_after: Some(1),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "temporarily_unavailable",
                        "The service is busy; retry shortly",
                    )
                }
            }
            // Logged once by the key store when the token refused the PIN; no Retry-After, since only an
            // operator ends it (a load balancer's /readyz check already takes this node out).
            E::HsmUnavailable => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "The signing service's HSM is unavailable",
            ),
            // The one place an internal error is logged: with every cause, inside the request's span (which
            // carries its request id). The client learns nothing of it.
            E::Internal(source) => {
                tracing::error!(error = %crate::telemetry::error_chain(&*source), "internal error");
                ApiError::internal()
            }
        }
    }
}

enum Kind {
    Replayed,
    Other,
}

/// The wire name of a field in each dialect.
pub fn param_name(param: Param, dialect: Dialect) -> &'static str {
    let v2 = dialect == Dialect::V2;
    if dialect == Dialect::Lifecycle {
        return match param {
            Param::CredentialId => "credential_id",
            Param::Otp => "otp",
            Param::Token => "token",
            _ => param_name(param, Dialect::V1),
        };
    }
    match param {
        Param::CredentialId => "credentialID",
        Param::Sad => "SAD",
        Param::Hash if v2 => "hashes",
        Param::Hash => "hash",
        Param::HashAlgo if v2 => "hashAlgorithmOID",
        Param::HashAlgo => "hashAlgo",
        Param::SignAlgo => "signAlgo",
        Param::SignAlgoParams => "signAlgoParams",
        Param::NumSignatures => "numSignatures",
        Param::Otp if v2 => "authData",
        Param::Otp => "OTP",
        Param::Pin if v2 => "authData",
        Param::Pin => "PIN",
        Param::AuthData => "authData",
        Param::PageToken => "pageToken",
        Param::MaxResults => "maxResults",
        Param::Certificates => "certificates",
        Param::Nonce => "nonce",
        Param::Token => "token",
        Param::TokenTypeHint => "token_type_hint",
        Param::RefreshToken => "refresh_token",
        Param::UserId => "userID",
    }
}

/// The JSON type of a request field, for the "Missing (or invalid type) <kind> parameter" wording.
fn param_kind(path: &str, name: &str) -> &'static str {
    match name {
        // signatures/timestamp takes one hash; signHash and authorize (v1) an array of them.
        "hash" if path.ends_with("/signatures/timestamp") => "string",
        "numSignatures" | "maxResults" | "validity_period" => "integer",
        "hash" | "hashes" | "authData" => "array",
        "rememberMe" | "certInfo" | "authInfo" | "credentialInfo" | "onlyValid" => "boolean",
        _ => "string",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// What the log subscriber wrote.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Cause {
        text: &'static str,
        #[source]
        source: Option<Box<Cause>>,
    }

    #[test]
    fn an_internal_error_is_logged_once_with_its_causes_and_the_request_id_and_answered_opaquely() {
        let inner = Cause { text: "CKR_DEVICE_ERROR", source: None };
        let outer = Cause { text: "PKCS#11 sign", source: Some(Box::new(inner)) };
        let error = ServiceError::internal_while("signing with credential c-1", outer);

        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber =
            tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).without_time().finish();
        let api_error = tracing::subscriber::with_default(subscriber, || {
            let _span = tracing::info_span!("request", request_id = "req-42").entered();
            ApiError::from_service(error, Dialect::V1)
        });

        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains("internal error")).collect();
        assert_eq!(lines.len(), 1, "{log}");
        assert!(lines[0].contains("signing with credential c-1: PKCS#11 sign: CKR_DEVICE_ERROR"), "{log}");
        assert!(lines[0].contains("req-42"), "{log}");

        assert_eq!(api_error.status, StatusCode::INTERNAL_SERVER_ERROR);
        let response = api_error.error_response();
        let body = actix_web::rt::System::new()
            .block_on(actix_web::body::to_bytes(response.into_body()))
            .unwrap_or_else(|_| panic!("the body is in memory"));
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "error": "server_error",
                "error_description": "The service could not complete the request",
            })
        );
    }
}

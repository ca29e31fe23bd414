//! The OAuth2 authorisation server's endpoints (CSC v1.0.4.0 §8.3, v2.0.0.2 §8): `/oauth2/token`,
//! `/oauth2/revoke` (and `/revoke`, where the EU wallet library looks for it), and the RFC 8414 metadata
//! at `/.well-known/oauth-authorization-server`. Form-encoded requests; errors in the OAuth error body,
//! which has the CSC error body's shape.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::web::{Data, Json};
use actix_web::{get, post, FromRequest, HttpRequest, HttpResponse};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, Dialect, ErrorBody};
use super::extract::{credentials_of, decode_base64, read_limited_body, run};
use crate::domain::oauth2::assertion;
use crate::service::oauth2::clients::ClientAuthentication;
use crate::service::{oauth2, OAuthErrorCode, Services};

const TAG: &str = "OAuth2";
const O: Dialect = Dialect::V1;

/// What a token or revocation request may weigh: a few identifiers, a code, a verifier, an assertion.
const FORM_BODY_LIMIT: usize = 16 * 1024;
/// Most parameters a token or revocation request may carry (it needs fewer than ten).
const MAX_PARAMETERS: usize = 32;
/// Parameters that prove who the client is or are themselves tokens: refused in the URL's query, which
/// proxies, load balancers and browsers log (RFC 6749 §2.3.1). The other parameters may come there, as
/// some clients send them.
const SECRET_PARAMETERS: &[&str] = &["client_secret", "client_assertion", "token", "refresh_token"];

/// The parameters of a token or revocation request: from the form body and, for clients that put them
/// there (the EUDI tester does), from the URL's query, except the secret ones. A parameter sent twice, in
/// one place or across both, is refused (RFC 6749 §3.2); one sent without a value counts as not sent
/// (§3.1).
pub struct OAuthForm(Vec<(String, String)>);

impl OAuthForm {
    fn read(query: &str, body: &[u8]) -> Result<OAuthForm, ApiError> {
        let mut params: Vec<(String, String)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let from_query = url::form_urlencoded::parse(query.as_bytes()).map(|pair| (true, pair));
        let from_body = url::form_urlencoded::parse(body).map(|pair| (false, pair));
        for (in_query, (name, value)) in from_query.chain(from_body) {
            if value.is_empty() {
                continue;
            }
            if in_query && SECRET_PARAMETERS.contains(&name.as_ref()) {
                return Err(oauth_error(
                    OAuthErrorCode::InvalidRequest,
                    format!("{name} must not be sent in the URL (RFC 6749 §2.3.1): send it in the form body"),
                ));
            }
            if !seen.insert(name.clone()) {
                return Err(oauth_error(
                    OAuthErrorCode::InvalidRequest,
                    format!("Parameter {} was sent more than once", printable(&name)),
                ));
            }
            if seen.len() > MAX_PARAMETERS {
                return Err(oauth_error(OAuthErrorCode::InvalidRequest, "Too many parameters"));
            }
            params.push((name.into_owned(), value.into_owned()));
        }
        Ok(OAuthForm(params))
    }

    /// The parameters as the endpoint's request type, whose fields are all optional strings (parameters
    /// it does not know are left out, RFC 6749 §3.1).
    fn parse<T: DeserializeOwned>(self) -> Result<T, ApiError> {
        let object = self.0.into_iter().map(|(name, value)| (name, serde_json::Value::String(value))).collect();
        serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|e| oauth_error(OAuthErrorCode::InvalidRequest, format!("Malformed request: {e}")))
    }
}

impl FromRequest for OAuthForm {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_limited_body(req, payload, FORM_BODY_LIMIT);
        let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase);
        let query = req.query_string().to_string();
        Box::pin(async move {
            let body = body.await?;
            let form = content_type
                .as_deref()
                .is_some_and(|t| t.split(';').next().is_some_and(|m| m.trim() == "application/x-www-form-urlencoded"));
            if !body.is_empty() && !form {
                return Err(oauth_error(
                    OAuthErrorCode::InvalidRequest,
                    "The body must be application/x-www-form-urlencoded",
                ));
            }
            OAuthForm::read(&query, &body)
        })
    }
}

/// A parameter's name as the client sent it, for a message: its first 40 characters, printable only.
fn printable(name: &str) -> String {
    name.chars().take(40).map(|c| if c.is_control() { '?' } else { c }).collect()
}

fn oauth_error(code: OAuthErrorCode, description: impl Into<Cow<'static, str>>) -> ApiError {
    ApiError::from_service(crate::service::ServiceError::oauth(code, description), O)
}

/// How the client authenticated (RFC 6749 §2.3): HTTP Basic with the id and secret form-encoded
/// (§2.3.1), or `client_secret` in the form, or (a public client) its `client_id` alone. Two ways at once
/// are refused; `client_id` beside Basic must name the same client.
fn client_authentication(req: &HttpRequest, form: ClientFields) -> Result<ClientAuthentication, ApiError> {
    if form.client_assertion.is_some() || form.client_assertion_type.is_some() {
        return assertion_authentication(req, form);
    }
    let header = req.headers().get("authorization");
    match header {
        Some(value) => {
            let basic = value
                .to_str()
                .ok()
                .and_then(|v| credentials_of(v, "Basic"))
                .ok_or_else(|| oauth_error(OAuthErrorCode::InvalidClient, "Invalid authorization header"))?;
            let decoded = decode_base64(basic.trim(), "authorization")
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .map(SecretString::from)
                .ok_or_else(|| oauth_error(OAuthErrorCode::InvalidClient, "Invalid authorization header"))?;
            let (id, secret) = decoded
                .expose_secret()
                .split_once(':')
                .ok_or_else(|| oauth_error(OAuthErrorCode::InvalidClient, "Invalid authorization header"))?;
            let id = form_decoded(id);
            let secret = SecretString::from(form_decoded(secret));
            if form.client_secret.is_some() {
                return Err(oauth_error(
                    OAuthErrorCode::InvalidRequest,
                    "Use one way of client authentication: the Authorization header or client_secret",
                ));
            }
            if form.client_id.as_deref().is_some_and(|sent| sent != id) {
                return Err(oauth_error(
                    OAuthErrorCode::InvalidClient,
                    "client_id differs from the client of the Authorization header",
                ));
            }
            Ok(ClientAuthentication::Basic { client_id: id, secret })
        }
        None => {
            let client_id = form
                .client_id
                .ok_or_else(|| oauth_error(OAuthErrorCode::InvalidRequest, "Missing parameter client_id"))?;
            Ok(match form.client_secret {
                Some(secret) => ClientAuthentication::Post { client_id, secret },
                None => ClientAuthentication::IdOnly { client_id },
            })
        }
    }
}

/// `private_key_jwt` (RFC 7523 §2.2): the assertion and its type, and no other way of authentication.
fn assertion_authentication(req: &HttpRequest, form: ClientFields) -> Result<ClientAuthentication, ApiError> {
    if req.headers().contains_key("authorization") || form.client_secret.is_some() {
        return Err(oauth_error(
            OAuthErrorCode::InvalidRequest,
            "Use one way of client authentication: a client_assertion, the Authorization header or client_secret",
        ));
    }
    if form.client_assertion_type.as_deref() != Some(assertion::JWT_BEARER) {
        return Err(oauth_error(
            OAuthErrorCode::InvalidClient,
            format!("client_assertion_type must be {}", assertion::JWT_BEARER),
        ));
    }
    let sent = form
        .client_assertion
        .ok_or_else(|| oauth_error(OAuthErrorCode::InvalidRequest, "Missing parameter client_assertion"))?;
    let client_id = form
        .client_id
        .or_else(|| assertion::claimed_client(sent.expose_secret()))
        .ok_or_else(|| oauth_error(OAuthErrorCode::InvalidClient, "client_assertion names no client (sub)"))?;
    Ok(ClientAuthentication::Assertion { client_id, assertion: sent })
}

/// A Basic credential's part, form-decoded as RFC 6749 §2.3.1 has clients encode it (an id or secret
/// made only of unreserved characters, as rssp's are, reads the same either way).
fn form_decoded(part: &str) -> String {
    // Read as the one value of a form: a raw '&' in it is a character, not the end of the value.
    let value = format!("v={}", part.replace('&', "%26"));
    url::form_urlencoded::parse(value.as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// The client authentication parameters of the token and revocation requests (RFC 6749 §2.3.1,
/// RFC 7521 §4.2).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = OAuthClientFields)]
pub struct ClientFields {
    /// Required without an `Authorization: Basic` header.
    pub client_id: Option<String>,
    /// A confidential client's secret, when not sent in the `Authorization: Basic` header.
    #[schema(value_type = Option<String>)]
    pub client_secret: Option<SecretString>,
    /// A JWT the client signed with a key registered for it (private_key_jwt, RFC 7523): `iss` and `sub`
    /// the client_id, `aud` the token endpoint or the issuer, `exp` at most 300 s ahead, a `jti` used once.
    #[schema(value_type = Option<String>)]
    pub client_assertion: Option<SecretString>,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer` with a client_assertion.
    pub client_assertion_type: Option<String>,
}

/// The parameters of `/oauth2/token` (CSC v1.0.4.0 §8.3.3, RFC 6749 §4.4), form-encoded (or, from clients
/// that send them so, in the URL's query). Offered now: `grant_type=client_credentials`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = OAuthTokenRequest)]
pub struct TokenRequest {
    /// Required: `client_credentials`.
    pub grant_type: Option<String>,
    /// `service` (the default); the `client_credentials` grant gives nothing else.
    pub scope: Option<String>,
    /// Accepted, not used.
    #[serde(rename = "clientData")]
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub client_data: Option<String>,
    #[serde(flatten)]
    pub client: ClientFields,
}

/// The answer of `/oauth2/token` (RFC 6749 §5.1).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = OAuthTokenResponse)]
pub struct TokenResponse {
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: i64,
    /// The scope granted: `service`.
    pub scope: String,
}

#[utoipa::path(post, operation_id = "oauth2_token", tag = TAG,
    request_body(content = Option<TokenRequest>, content_type = "application/x-www-form-urlencoded",
        description = "The parameters, form-encoded; they may also come in the URL's query (then the body may be \
                       empty), except client_secret and client_assertion, which are refused there. Each once."),
    security((), ("basic" = [])),
    responses(
        (status = 200, body = TokenResponse, description = "A token. Cache-Control: no-store."),
        (status = 400, body = ErrorBody, description = "invalid_request, unauthorized_client, unsupported_grant_type, invalid_scope, invalid_grant"),
        (status = 401, body = ErrorBody, description = "invalid_client: unknown or disabled client, or not authenticated as registered"),
        (status = 413, body = ErrorBody)))]
#[post("/oauth2/token")]
pub async fn token_endpoint(
    services: Data<Services>,
    req: HttpRequest,
    form: OAuthForm,
) -> Result<HttpResponse, ApiError> {
    let request: TokenRequest = form.parse()?;
    let grant_type = request
        .grant_type
        .ok_or_else(|| oauth_error(OAuthErrorCode::InvalidRequest, "Missing parameter grant_type"))?;
    if grant_type != "client_credentials" {
        return Err(oauth_error(
            OAuthErrorCode::UnsupportedGrantType,
            format!("Invalid parameter grant_type: offered are {}", oauth2::GRANT_TYPES.join(", ")),
        ));
    }
    let client = client_authentication(&req, request.client)?;
    let scope = request.scope;
    let issued = run(&services, O, move |s| oauth2::client_credentials(s, client, scope.as_deref())).await?;
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).insert_header(("Pragma", "no-cache")).json(
        TokenResponse {
            access_token: issued.access_token,
            token_type: "Bearer".into(),
            expires_in: issued.expires_in,
            scope: "service".into(),
        },
    ))
}

/// The parameters of `/oauth2/revoke` (CSC v1.0.4.0 §8.3.4, RFC 7009 §2.1), form-encoded.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = OAuthRevokeRequest)]
pub struct RevokeRequest {
    /// Required: the token to revoke.
    #[schema(value_type = Option<String>)]
    pub token: Option<SecretString>,
    /// `access_token` or `refresh_token`: where to look first. Every kind is looked for, so it changes
    /// nothing (RFC 7009 §2.1).
    pub token_type_hint: Option<String>,
    /// Accepted, not used.
    #[serde(rename = "clientData")]
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub client_data: Option<String>,
    #[serde(flatten)]
    pub client: ClientFields,
}

async fn revoke_token(services: Data<Services>, req: HttpRequest, form: OAuthForm) -> Result<HttpResponse, ApiError> {
    let request: RevokeRequest = form.parse()?;
    let client = client_authentication(&req, request.client)?;
    let revoked =
        request.token.ok_or_else(|| oauth_error(OAuthErrorCode::InvalidRequest, "Missing parameter token"))?;
    let hint = request.token_type_hint;
    run(&services, O, move |s| oauth2::revoke(s, client, revoked.expose_secret(), hint.as_deref())).await?;
    Ok(HttpResponse::NoContent().insert_header(("Cache-Control", "no-store")).finish())
}

#[utoipa::path(post, operation_id = "oauth2_revoke", tag = TAG,
    request_body(content = Option<RevokeRequest>, content_type = "application/x-www-form-urlencoded",
        description = "The parameters, form-encoded; they may also come in the URL's query, except token, \
                       client_secret and client_assertion, which are refused there. Each once."),
    security((), ("basic" = [])),
    responses(
        (status = 204, description = "Revoked, or nothing to revoke: a token unknown or not the client's is answered alike (RFC 7009 §2.2)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody)))]
#[post("/oauth2/revoke")]
pub async fn revoke(services: Data<Services>, req: HttpRequest, form: OAuthForm) -> Result<HttpResponse, ApiError> {
    revoke_token(services, req, form).await
}

/// `/revoke`: the same as `/oauth2/revoke`, where the EU wallet library derives the revocation URL from
/// `info.oauth2` (`<base>/revoke`).
#[utoipa::path(post, operation_id = "oauth2_revoke_alias", tag = TAG,
    request_body(content = Option<RevokeRequest>, content_type = "application/x-www-form-urlencoded",
        description = "As /oauth2/revoke."),
    security((), ("basic" = [])),
    responses(
        (status = 204, description = "As /oauth2/revoke"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody)))]
#[post("/revoke")]
pub async fn revoke_alias(
    services: Data<Services>,
    req: HttpRequest,
    form: OAuthForm,
) -> Result<HttpResponse, ApiError> {
    revoke_token(services, req, form).await
}

/// The authorisation server's metadata (RFC 8414 §2): what it offers, truthfully.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = OAuthServerMetadata)]
pub struct ServerMetadata {
    /// The issuer: rssp's public URL (CSC v2 `info.oauth2Issuer`).
    pub issuer: String,
    pub token_endpoint: String,
    pub revocation_endpoint: String,
    pub grant_types_supported: Vec<String>,
    /// None yet: the authorisation code flow is not offered.
    pub response_types_supported: Vec<String>,
    pub scopes_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    pub revocation_endpoint_auth_signing_alg_values_supported: Vec<String>,
}

/// The issuer and base of the authorisation server: the public URL, without a trailing slash.
pub fn issuer(services: &Services) -> String {
    services.public_url.trim_end_matches('/').to_string()
}

#[utoipa::path(get, operation_id = "oauth2_metadata", tag = TAG,
    responses((status = 200, body = ServerMetadata)))]
#[get("/.well-known/oauth-authorization-server")]
pub async fn metadata(services: Data<Services>) -> Json<ServerMetadata> {
    let issuer = issuer(&services);
    let auth_methods: Vec<String> =
        ["client_secret_basic", "client_secret_post", "private_key_jwt"].iter().map(|m| m.to_string()).collect();
    let algorithms: Vec<String> = assertion::ALGORITHMS.iter().map(|a| a.to_string()).collect();
    Json(ServerMetadata {
        token_endpoint: format!("{issuer}/oauth2/token"),
        revocation_endpoint: format!("{issuer}/oauth2/revoke"),
        grant_types_supported: oauth2::GRANT_TYPES.iter().map(|g| g.to_string()).collect(),
        response_types_supported: Vec::new(),
        scopes_supported: vec!["service".into()],
        token_endpoint_auth_methods_supported: auth_methods.clone(),
        token_endpoint_auth_signing_alg_values_supported: algorithms.clone(),
        revocation_endpoint_auth_methods_supported: auth_methods,
        revocation_endpoint_auth_signing_alg_values_supported: algorithms,
        issuer,
    })
}

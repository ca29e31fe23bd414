//! CSC API v1.0.4.0 under `/csc/v1`: the dialect pyHanko and most deployed clients speak.
//! Wire types mirror the specification's tables (section numbers in the doc comments).
//! Schema names in the OpenAPI document are global while v2 reuses these type names, so every wire
//! type here is named `CscV1…` there (`#[schema(as = ...)]`); tests/api/openapi_truth.rs checks the
//! names stay unique.

use actix_web::web::{Data, Json};
use actix_web::{post, HttpRequest, HttpResponse};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::csc_common::{
    self, cert_info, certificates_wanted, key_info, timestamp_request, CertInfo, KeyInfo, TimestampResponse,
};
use super::error::{ApiError, Dialect, ErrorBody};
use super::extract::{
    decode_base64, decode_hashes, encode_base64, run_as, run_with_bearer, Authed, CscJson, CscV1User,
};
use crate::domain::CredentialId;
use crate::service::auth::{self, TokenTypeHint};
use crate::service::credentials::{self, AuthorizeRequest, ExtendRequest};
use crate::service::signing::{self, CscVersion, SignHashRequest};
use crate::service::timestamps;
use crate::service::Services;

const V1: Dialect = Dialect::V1;
const TAG: &str = "CSC v1.0.4.0";

/// `info` response (§11.1).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = CscV1InfoResponse)]
pub struct InfoResponse {
    pub specs: String,
    pub name: String,
    pub logo: String,
    pub region: String,
    pub lang: String,
    pub description: String,
    #[serde(rename = "authType")]
    pub auth_type: Vec<String>,
    /// The base URI of the OAuth2 authorisation server, the endpoint paths (`oauth2/token`, ...) appended
    /// to it (§8.3).
    pub oauth2: String,
    pub methods: Vec<String>,
}

/// `info` request (§11.1); the body may be empty.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = CscV1InfoRequest)]
pub struct InfoRequest {
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub lang: Option<String>,
}

#[utoipa::path(post, operation_id = "csc_v1_info", tag = TAG, request_body = InfoRequest,
    responses((status = 200, body = InfoResponse), (status = 400, body = ErrorBody)))]
#[post("/info")]
pub async fn info(services: Data<Services>, _body: CscJson<InfoRequest>) -> Json<InfoResponse> {
    Json(InfoResponse {
        specs: "1.0.4.0".into(),
        name: services.config.service_name.clone(),
        logo: csc_common::logo_url(&services),
        region: services.config.ca.country.clone(),
        lang: "en-US".into(),
        description: "rssp remote signature service".into(),
        auth_type: csc_common::AUTH_TYPES.iter().map(|a| a.to_string()).collect(),
        oauth2: format!("{}/", super::oauth2::issuer(&services)),
        methods: csc_common::METHODS.iter().map(|m| m.to_string()).collect(),
    })
}

/// `auth/login` request (§11.2). Credentials come in the HTTP Basic header.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = CscV1LoginRequest)]
pub struct LoginRequest {
    #[schema(value_type = Option<String>)]
    pub refresh_token: Option<SecretString>,
    #[serde(rename = "rememberMe")]
    pub remember_me: Option<bool>,
    #[serde(rename = "clientData")]
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub client_data: Option<String>,
}

/// `auth/login` response (§11.2).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = CscV1LoginResponse)]
pub struct LoginResponse {
    pub access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub expires_in: i64,
}

#[utoipa::path(post, operation_id = "csc_v1_login", tag = TAG, request_body = LoginRequest,
    security(("basic" = [])),
    responses((status = 200, body = LoginResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[post("/auth/login")]
pub async fn login(
    services: Data<Services>,
    req: HttpRequest,
    body: CscJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let body = body.0;
    let tokens = csc_common::login(&services, &req, body.refresh_token, body.remember_me.unwrap_or(false), V1).await?;
    Ok(Json(LoginResponse {
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        expires_in: tokens.expires_in,
    }))
}

/// `auth/revoke` request (§11.3).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CscV1RevokeRequest)]
pub struct RevokeRequest {
    #[schema(value_type = Option<String>)]
    pub token: Option<SecretString>,
    pub token_type_hint: Option<String>,
    #[serde(rename = "clientData")]
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub client_data: Option<String>,
}

pub fn token_type_hint(hint: Option<&str>) -> Result<Option<TokenTypeHint>, ApiError> {
    match hint {
        None => Ok(None),
        Some("access_token") => Ok(Some(TokenTypeHint::AccessToken)),
        Some("refresh_token") => Ok(Some(TokenTypeHint::RefreshToken)),
        Some(_) => Err(ApiError::invalid_request("Invalid string parameter token_type_hint")),
    }
}

#[utoipa::path(post, operation_id = "csc_v1_revoke", tag = TAG, request_body = RevokeRequest,
    security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[post("/auth/revoke")]
pub async fn revoke(
    services: Data<Services>,
    request: Authed<CscV1User, CscJson<RevokeRequest>>,
) -> Result<HttpResponse, ApiError> {
    let Authed(CscV1User(caller), body) = request;
    let token = body.0.token.filter(|t| !t.expose_secret().is_empty()).ok_or_else(|| ApiError::missing("token"))?;
    let hint = token_type_hint(body.0.token_type_hint.as_deref())?;
    run_as(&services, V1, caller, move |s, principal| auth::revoke(s, principal, token.expose_secret(), hint)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `credentials/list` request (§11.4).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = CscV1ListRequest)]
pub struct ListRequest {
    #[serde(rename = "userID")]
    pub user_id: Option<String>,
    #[serde(rename = "maxResults")]
    pub max_results: Option<i64>,
    #[serde(rename = "pageToken")]
    pub page_token: Option<String>,
    #[serde(rename = "clientData")]
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub client_data: Option<String>,
}

/// `credentials/list` response (§11.4).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = CscV1ListResponse)]
pub struct ListResponse {
    #[serde(rename = "credentialIDs")]
    pub credential_ids: Vec<String>,
    #[serde(rename = "nextPageToken", skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[utoipa::path(post, operation_id = "csc_v1_list", tag = TAG, request_body = ListRequest,
    security(("bearer" = [])),
    responses((status = 200, body = ListResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[post("/credentials/list")]
pub async fn list(
    services: Data<Services>,
    request: Authed<CscV1User, CscJson<ListRequest>>,
) -> Result<Json<ListResponse>, ApiError> {
    let Authed(CscV1User(caller), body) = request;
    let body = body.0;
    // The user is the token's: a userID may only name it, and only with an OAuth2 client's token.
    let (ids, next) = run_as(&services, V1, caller, move |s, principal| {
        credentials::check_user_id(principal, body.user_id.as_deref())?;
        credentials::list(s, principal, body.max_results, body.page_token.as_deref())
    })
    .await?;
    Ok(Json(ListResponse { credential_ids: ids, next_page_token: next }))
}

/// `credentials/info` request (§11.5).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CscV1CredentialInfoRequest)]
pub struct CredentialInfoRequest {
    #[serde(rename = "credentialID")]
    pub credential_id: Option<String>,
    /// `none`, `single` (default) or `chain`.
    pub certificates: Option<String>,
    #[serde(rename = "certInfo")]
    pub cert_info: Option<bool>,
    #[serde(rename = "authInfo")]
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub auth_info: Option<bool>,
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub lang: Option<String>,
    #[serde(rename = "clientData")]
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub client_data: Option<String>,
}

/// The `PIN` object (§11.5).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = CscV1PinInfo)]
pub struct PinInfo {
    /// `true`, `false` or `optional` (a string).
    pub presence: String,
    /// `A` (alphanumeric) or `N` (numeric).
    pub format: String,
    pub label: String,
    pub description: String,
}

/// The `OTP` object (§11.5).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = CscV1OtpInfo)]
pub struct OtpInfo {
    pub presence: String,
    /// `offline`: generated by the person's authenticator app.
    #[serde(rename = "type")]
    pub otp_type: String,
    pub format: String,
    pub label: String,
    pub description: String,
    #[serde(rename = "ID")]
    pub id: String,
    pub provider: String,
}

/// `credentials/info` response (§11.5).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = CscV1CredentialInfoResponse)]
pub struct CredentialInfoResponse {
    pub description: String,
    pub key: KeyInfo,
    pub cert: CertInfo,
    /// Always `explicit`: the client collects the OTP (and PIN) and sends them to credentials/authorize.
    #[serde(rename = "authMode")]
    pub auth_mode: String,
    #[serde(rename = "SCAL")]
    pub scal: String,
    #[serde(rename = "PIN", skip_serializing_if = "Option::is_none")]
    pub pin: Option<PinInfo>,
    #[serde(rename = "OTP")]
    pub otp: OtpInfo,
    pub multisign: i32,
    pub lang: String,
}

#[utoipa::path(post, operation_id = "csc_v1_credential_info", tag = TAG, request_body = CredentialInfoRequest,
    security(("bearer" = [])),
    responses((status = 200, body = CredentialInfoResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[post("/credentials/info")]
pub async fn credential_info(
    services: Data<Services>,
    request: Authed<CscV1User, CscJson<CredentialInfoRequest>>,
) -> Result<Json<CredentialInfoResponse>, ApiError> {
    let Authed(CscV1User(caller), body) = request;
    let body = body.0;
    let id = CredentialId::new(body.credential_id.ok_or_else(|| ApiError::missing("credentialID"))?);
    let wanted = certificates_wanted(body.certificates.as_deref())?;
    let view = run_as(&services, V1, caller, move |s, principal| credentials::info(s, principal, &id)).await?;
    Ok(Json(CredentialInfoResponse {
        description: format!("Qualified signing key {}", view.key_kind),
        key: key_info(&view),
        cert: cert_info(&view, wanted, body.cert_info.unwrap_or(false)),
        auth_mode: "explicit".into(),
        scal: "2".into(),
        pin: view.has_pin.then(|| PinInfo {
            presence: "true".into(),
            format: "N".into(),
            label: "PIN".into(),
            description: "The signing PIN of this credential".into(),
        }),
        otp: OtpInfo {
            presence: "true".into(),
            otp_type: "offline".into(),
            format: "N".into(),
            label: "One-time code".into(),
            description: "The 6-digit code from your authenticator app".into(),
            id: "totp".into(),
            provider: "totp".into(),
        },
        multisign: view.multisign,
        lang: "en-US".into(),
    }))
}

/// `credentials/authorize` request (§11.6).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CscV1AuthorizeRequestBody)]
pub struct AuthorizeRequestBody {
    #[serde(rename = "credentialID")]
    pub credential_id: Option<String>,
    #[serde(rename = "numSignatures")]
    pub num_signatures: Option<i32>,
    /// Base64 digests the SAD is bound to (SCAL2: required).
    pub hash: Option<Vec<String>>,
    #[serde(rename = "PIN")]
    #[schema(value_type = Option<String>)]
    pub pin: Option<SecretString>,
    #[serde(rename = "OTP")]
    #[schema(value_type = Option<String>)]
    pub otp: Option<SecretString>,
    pub description: Option<String>,
    #[serde(rename = "clientData")]
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub client_data: Option<String>,
}

/// `credentials/authorize` and `credentials/extendTransaction` response (§11.6, §11.8).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = CscV1SadResponse)]
pub struct SadResponse {
    #[serde(rename = "SAD")]
    pub sad: String,
    #[serde(rename = "expiresIn")]
    pub expires_in: i64,
}

#[utoipa::path(post, operation_id = "csc_v1_authorize", tag = TAG, request_body = AuthorizeRequestBody,
    security(("bearer" = [])),
    responses((status = 200, body = SadResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[post("/credentials/authorize")]
pub async fn authorize(
    services: Data<Services>,
    request: Authed<CscV1User, CscJson<AuthorizeRequestBody>>,
) -> Result<Json<SadResponse>, ApiError> {
    let Authed(CscV1User(caller), body) = request;
    let body = body.0;
    let request = AuthorizeRequest {
        credential_id: body.credential_id.ok_or_else(|| ApiError::missing("credentialID"))?.into(),
        num_signatures: body.num_signatures.ok_or_else(|| ApiError::missing("numSignatures"))?,
        hashes: decode_hashes(&body.hash.ok_or_else(|| ApiError::missing("hash"))?, "hash")?,
        hash_algo: None,
        otp: body.otp,
        pin: body.pin,
    };
    if body.description.is_some_and(|d| d.chars().count() > 500) {
        return Err(ApiError::invalid("description"));
    }
    let issued =
        run_with_bearer(&services, V1, caller, move |s, bearer| credentials::authorize(s, bearer, request)).await?;
    Ok(Json(SadResponse { sad: issued.sad, expires_in: issued.expires_in }))
}

/// `credentials/extendTransaction` request (§11.8).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CscV1ExtendTransactionRequest)]
pub struct ExtendTransactionRequest {
    #[serde(rename = "credentialID")]
    pub credential_id: Option<String>,
    /// Hashes the renewed SAD keeps: each must be one the SAD still authorises (SCAL2: new hashes need
    /// `credentials/authorize` and a new code). Absent or empty: all it still authorises. The renewed SAD
    /// never lives past `security.sad_max_lifetime_secs` after the code.
    pub hash: Option<Vec<String>>,
    #[serde(rename = "SAD")]
    #[schema(value_type = Option<String>)]
    pub sad: Option<SecretString>,
    #[serde(rename = "clientData")]
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub client_data: Option<String>,
}

#[utoipa::path(post, operation_id = "csc_v1_extend_transaction", tag = TAG, request_body = ExtendTransactionRequest,
    security(("bearer" = [])),
    responses((status = 200, body = SadResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[post("/credentials/extendTransaction")]
pub async fn extend_transaction(
    services: Data<Services>,
    request: Authed<CscV1User, CscJson<ExtendTransactionRequest>>,
) -> Result<Json<SadResponse>, ApiError> {
    let Authed(CscV1User(caller), body) = request;
    let body = body.0;
    let request = ExtendRequest {
        credential_id: body.credential_id.ok_or_else(|| ApiError::missing("credentialID"))?.into(),
        sad: body.sad.ok_or_else(|| ApiError::missing("SAD"))?,
        hashes: decode_hashes(&body.hash.unwrap_or_default(), "hash")?,
        hash_algo: None,
    };
    let issued = run_as(&services, V1, caller, move |s, principal| credentials::extend(s, principal, request)).await?;
    Ok(Json(SadResponse { sad: issued.sad, expires_in: issued.expires_in }))
}

/// `signatures/timestamp` request (§11.10).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CscV1TimestampRequestBody)]
pub struct TimestampRequestBody {
    /// The base64 hash to time-stamp (MessageImprint.hashedMessage).
    pub hash: Option<String>,
    /// Its algorithm's OID (MessageImprint.hashAlgorithm): SHA-256, SHA-384 or SHA-512.
    #[serde(rename = "hashAlgo")]
    pub hash_algo: Option<String>,
    /// A hex nonce, echoed in the token.
    pub nonce: Option<String>,
    #[serde(rename = "clientData")]
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub client_data: Option<String>,
}

/// A time-stamp token for a hash. It spends one transaction of the caller's credential whose
/// certificate expires first among those that can sign now with a transaction left.
#[utoipa::path(post, operation_id = "csc_v1_timestamp", tag = TAG, request_body = TimestampRequestBody,
    security(("bearer" = [])),
    responses((status = 200, body = TimestampResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[post("/signatures/timestamp")]
pub async fn timestamp(
    services: Data<Services>,
    request: Authed<CscV1User, CscJson<TimestampRequestBody>>,
) -> Result<Json<TimestampResponse>, ApiError> {
    let Authed(CscV1User(caller), CscJson(body)) = request;
    let request = timestamp_request(body.hash, body.hash_algo, "hashAlgo", body.nonce)?;
    let token =
        run_as(&services, V1, caller, move |s, principal| timestamps::csc_timestamp(s, principal, request)).await?;
    Ok(Json(TimestampResponse { timestamp: encode_base64(&token) }))
}

/// `signatures/signHash` request (§11.9).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CscV1SignHashRequestBody)]
pub struct SignHashRequestBody {
    #[serde(rename = "credentialID")]
    pub credential_id: Option<String>,
    #[serde(rename = "SAD")]
    #[schema(value_type = Option<String>)]
    pub sad: Option<SecretString>,
    /// Base64 digests to sign.
    pub hash: Option<Vec<String>>,
    /// Digest OID; required with `signAlgo` 1.2.840.113549.1.1.1.
    #[serde(rename = "hashAlgo")]
    pub hash_algo: Option<String>,
    #[serde(rename = "signAlgo")]
    pub sign_algo: Option<String>,
    /// Base64 DER parameters (RSASSA-PSS-params).
    #[serde(rename = "signAlgoParams")]
    pub sign_algo_params: Option<String>,
    #[serde(rename = "clientData")]
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub client_data: Option<String>,
}

/// `signatures/signHash` response (§11.9): one signature per hash, in order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = CscV1SignHashResponse)]
pub struct SignHashResponse {
    pub signatures: Vec<String>,
}

#[utoipa::path(post, operation_id = "csc_v1_sign_hash", tag = TAG, request_body = SignHashRequestBody,
    security(("bearer" = [])),
    responses((status = 200, body = SignHashResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[post("/signatures/signHash")]
pub async fn sign_hash(
    services: Data<Services>,
    request: Authed<CscV1User, CscJson<SignHashRequestBody>>,
) -> Result<Json<SignHashResponse>, ApiError> {
    let Authed(CscV1User(caller), body) = request;
    let body = body.0;
    let request = SignHashRequest {
        credential_id: body.credential_id.ok_or_else(|| ApiError::missing("credentialID"))?.into(),
        sad: body.sad.ok_or_else(|| ApiError::missing("SAD"))?,
        hashes: decode_hashes(&body.hash.ok_or_else(|| ApiError::missing("hash"))?, "hash")?,
        sign_algo: body.sign_algo.ok_or_else(|| ApiError::missing("signAlgo"))?,
        hash_algo: body.hash_algo,
        sign_algo_params: body.sign_algo_params.map(|p| decode_base64(&p, "signAlgoParams")).transpose()?,
        dialect: CscVersion::V1,
    };
    let signatures =
        run_with_bearer(&services, V1, caller, move |s, bearer| signing::sign_hash(s, bearer, request)).await?;
    Ok(Json(SignHashResponse { signatures: signatures.iter().map(|s| encode_base64(s)).collect() }))
}

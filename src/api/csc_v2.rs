//! CSC API v2.0.0.2 under `/csc/v2`: the dialect EU wallets speak. Separate wire types from v1
//! (`hashes`, `hashAlgorithmOID`, the `auth` object and `authData`), the same use cases below.
//! In the OpenAPI document every wire type here is named `CscV2…` (`#[schema(as = ...)]`): schema
//! names are global and v1 uses the same type names.

use actix_web::web::{Data, Json};
use actix_web::{post, HttpRequest, HttpResponse};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::csc_common::{
    self, cert_info, certificates_wanted, key_info, timestamp_request, CertInfo, KeyInfo, TimestampResponse,
};
use super::csc_v1::token_type_hint;
use super::error::{ApiError, Dialect, ErrorBody};
use super::extract::{
    decode_base64, decode_hashes, encode_base64, run_as, run_with_bearer, Authed, CscJson, CscV2User,
};
use crate::domain::ades::{ConformanceLevel, SignatureFormat};
use crate::domain::algorithms::oid;
use crate::domain::{CredentialId, HashAlgorithm};
use crate::service::auth;
use crate::service::credentials::{self, AuthorizeRequest, CscCredential, ExtendRequest};
use crate::service::signing::{self, CscVersion, SignHashRequest};
use crate::service::timestamps;
use crate::service::Services;

const V2: Dialect = Dialect::V2;
const TAG: &str = "CSC v2.0.0.2";

/// `signAlgorithms` of `info` (§11.1).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = CscV2SignAlgorithms)]
pub struct SignAlgorithms {
    pub algos: Vec<String>,
}

/// `signature_formats` of `info` (§11.1): what signDoc makes; `envelope_properties[i]` are the packagings
/// of `formats[i]`, the default first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = CscV2SignatureFormats)]
pub struct SignatureFormats {
    pub formats: Vec<String>,
    pub envelope_properties: Vec<Vec<String>>,
}

/// `info` response (§11.1).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = CscV2InfoResponse)]
pub struct InfoResponse {
    pub specs: String,
    pub name: String,
    pub logo: String,
    pub region: String,
    pub lang: String,
    pub description: String,
    #[serde(rename = "authType")]
    pub auth_type: Vec<String>,
    /// The OAuth2 authorisation server's issuer, its metadata at
    /// `/.well-known/oauth-authorization-server` (RFC 8414); given instead of `oauth2`.
    #[serde(rename = "oauth2Issuer")]
    pub oauth2_issuer: String,
    #[serde(rename = "asynchronousOperationMode")]
    pub asynchronous_operation_mode: bool,
    pub methods: Vec<String>,
    #[serde(rename = "validationInfo")]
    pub validation_info: bool,
    #[serde(rename = "signAlgorithms")]
    pub sign_algorithms: SignAlgorithms,
    pub signature_formats: SignatureFormats,
    pub conformance_levels: Vec<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = CscV2InfoRequest)]
pub struct InfoRequest {
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub lang: Option<String>,
}

#[utoipa::path(post, operation_id = "csc_v2_info", tag = TAG, request_body = InfoRequest,
    responses((status = 200, body = InfoResponse), (status = 400, body = ErrorBody)))]
#[post("/info")]
pub async fn info(services: Data<Services>, _body: CscJson<InfoRequest>) -> Json<InfoResponse> {
    let algos = [
        oid::RSA_ENCRYPTION,
        oid::SHA256_WITH_RSA,
        oid::SHA384_WITH_RSA,
        oid::SHA512_WITH_RSA,
        oid::RSASSA_PSS,
        oid::ECDSA_SHA256,
        oid::ECDSA_SHA384,
        oid::ECDSA_SHA512,
    ];
    Json(InfoResponse {
        specs: "2.0.0.2".into(),
        name: services.config.service_name.clone(),
        logo: csc_common::logo_url(&services),
        region: services.config.ca.country.clone(),
        lang: "en-US".into(),
        description: "rssp remote signature service".into(),
        auth_type: csc_common::AUTH_TYPES.iter().map(|a| a.to_string()).collect(),
        oauth2_issuer: super::oauth2::issuer(&services),
        asynchronous_operation_mode: false,
        methods: csc_common::METHODS.iter().chain(&["signatures/signDoc"]).map(|m| m.to_string()).collect(),
        validation_info: true,
        sign_algorithms: SignAlgorithms { algos: algos.iter().map(|a| a.to_string()).collect() },
        signature_formats: SignatureFormats {
            formats: SignatureFormat::ALL.iter().map(|f| f.to_string()).collect(),
            envelope_properties: SignatureFormat::ALL
                .iter()
                .map(|f| f.packagings().iter().map(|p| p.to_string()).collect())
                .collect(),
        },
        // From B-T on the TSA is needed, whose certificate must be valid now. B-LT and B-LTA are made for
        // whole PDFs.
        conformance_levels: ConformanceLevel::ALL
            .into_iter()
            .filter(|l| !l.has_signature_time_stamp() || services.tsa.unit.valid_at(services.now()))
            .map(|l| l.to_string())
            .collect(),
    })
}

/// `auth/login` request (§11.2).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = CscV2LoginRequest)]
pub struct LoginRequest {
    #[schema(value_type = Option<String>)]
    pub refresh_token: Option<SecretString>,
    #[serde(rename = "rememberMe")]
    pub remember_me: Option<bool>,
    #[serde(rename = "clientData")]
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub client_data: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = CscV2LoginResponse)]
pub struct LoginResponse {
    pub access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub expires_in: i64,
}

#[utoipa::path(post, operation_id = "csc_v2_login", tag = TAG, request_body = LoginRequest,
    security(("basic" = [])),
    responses((status = 200, body = LoginResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[post("/auth/login")]
pub async fn login(
    services: Data<Services>,
    req: HttpRequest,
    body: CscJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let body = body.0;
    let tokens = csc_common::login(&services, &req, body.refresh_token, body.remember_me.unwrap_or(false), V2).await?;
    Ok(Json(LoginResponse {
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        expires_in: tokens.expires_in,
    }))
}

/// `auth/revoke` request (§11.3).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CscV2RevokeRequest)]
pub struct RevokeRequest {
    #[schema(value_type = Option<String>)]
    pub token: Option<SecretString>,
    pub token_type_hint: Option<String>,
    #[serde(rename = "clientData")]
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub client_data: Option<String>,
}

#[utoipa::path(post, operation_id = "csc_v2_revoke", tag = TAG, request_body = RevokeRequest,
    security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[post("/auth/revoke")]
pub async fn revoke(
    services: Data<Services>,
    request: Authed<CscV2User, CscJson<RevokeRequest>>,
) -> Result<HttpResponse, ApiError> {
    let Authed(CscV2User(caller), body) = request;
    let token = body.0.token.filter(|t| !t.expose_secret().is_empty()).ok_or_else(|| ApiError::missing("token"))?;
    let hint = token_type_hint(body.0.token_type_hint.as_deref())?;
    run_as(&services, V2, caller, move |s, principal| auth::revoke(s, principal, token.expose_secret(), hint)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// An authentication object of the `auth` object (§11.5): `Password` with id `PIN` or `OTP`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = CscV2AuthObject)]
pub struct AuthObject {
    #[serde(rename = "type")]
    pub object_type: String,
    pub id: String,
    pub format: String,
    /// `totp` for the one-time code from the person's authenticator app.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
    pub label: String,
    pub description: String,
}

/// The `auth` object (§11.5): always `explicit`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = CscV2AuthInfo)]
pub struct AuthInfo {
    pub mode: String,
    pub expression: String,
    pub objects: Vec<AuthObject>,
}

/// `credentials/info` response (§11.5); in `credentials/list` it also carries `credentialID`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = CscV2CredentialInfo)]
pub struct CredentialInfo {
    #[serde(rename = "credentialID", skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    pub description: String,
    #[serde(rename = "signatureQualifier")]
    pub signature_qualifier: String,
    pub key: KeyInfo,
    pub cert: CertInfo,
    pub auth: AuthInfo,
    #[serde(rename = "SCAL")]
    pub scal: String,
    pub multisign: i32,
    pub lang: String,
}

fn credential_info(
    view: CscCredential,
    wanted: csc_common::CertificatesWanted,
    cert_details: bool,
    with_id: bool,
) -> CredentialInfo {
    let mut objects = Vec::new();
    if view.has_pin {
        objects.push(AuthObject {
            object_type: "Password".into(),
            id: "PIN".into(),
            format: "N".into(),
            generator: None,
            label: "PIN".into(),
            description: "The signing PIN of this credential".into(),
        });
    }
    objects.push(AuthObject {
        object_type: "Password".into(),
        id: "OTP".into(),
        format: "N".into(),
        generator: Some("totp".into()),
        label: "One-time code".into(),
        description: "The 6-digit code from your authenticator app".into(),
    });
    CredentialInfo {
        credential_id: with_id.then(|| view.id.to_string()),
        description: format!("Qualified signing key {}", view.key_kind),
        signature_qualifier: "eu_eidas_qes".into(),
        key: key_info(&view),
        cert: cert_info(&view, wanted, cert_details),
        auth: AuthInfo {
            mode: "explicit".into(),
            expression: if view.has_pin { "PIN AND OTP" } else { "OTP" }.into(),
            objects,
        },
        scal: "2".into(),
        multisign: view.multisign,
        lang: "en-US".into(),
    }
}

/// `credentials/list` request (§11.4).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = CscV2ListRequest)]
pub struct ListRequest {
    #[serde(rename = "userID")]
    pub user_id: Option<String>,
    #[serde(rename = "credentialInfo")]
    pub credential_info: Option<bool>,
    pub certificates: Option<String>,
    #[serde(rename = "certInfo")]
    pub cert_info: Option<bool>,
    #[serde(rename = "authInfo")]
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub auth_info: Option<bool>,
    #[serde(rename = "onlyValid")]
    pub only_valid: Option<bool>,
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub lang: Option<String>,
    #[serde(rename = "clientData")]
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub client_data: Option<String>,
}

/// `credentials/list` response (§11.4).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = CscV2ListResponse)]
pub struct ListResponse {
    #[serde(rename = "credentialIDs")]
    pub credential_ids: Vec<String>,
    #[serde(rename = "credentialInfos", skip_serializing_if = "Option::is_none")]
    pub credential_infos: Option<Vec<CredentialInfo>>,
    #[serde(rename = "onlyValid", skip_serializing_if = "Option::is_none")]
    pub only_valid: Option<bool>,
}

#[utoipa::path(post, operation_id = "csc_v2_list", tag = TAG, request_body = ListRequest,
    security(("bearer" = [])),
    responses((status = 200, body = ListResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[post("/credentials/list")]
pub async fn list(
    services: Data<Services>,
    request: Authed<CscV2User, CscJson<ListRequest>>,
) -> Result<Json<ListResponse>, ApiError> {
    let Authed(CscV2User(caller), body) = request;
    let body = body.0;
    let user_id = body.user_id.clone();
    let wanted = certificates_wanted(body.certificates.as_deref())?;
    let with_info = body.credential_info.unwrap_or(false);
    let only_valid = body.only_valid.unwrap_or(false);
    let cert_details = body.cert_info.unwrap_or(false);
    let views = run_as(&services, V2, caller, move |s, principal| {
        credentials::check_user_id(principal, user_id.as_deref())?;
        credentials::describe_all(s, principal, only_valid)
    })
    .await?;
    Ok(Json(ListResponse {
        credential_ids: views.iter().map(|v| v.id.to_string()).collect(),
        credential_infos: with_info
            .then(|| views.into_iter().map(|v| credential_info(v, wanted, cert_details, true)).collect()),
        only_valid: only_valid.then_some(true),
    }))
}

/// `credentials/info` request (§11.5).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CscV2CredentialInfoRequest)]
pub struct CredentialInfoRequest {
    #[serde(rename = "credentialID")]
    pub credential_id: Option<String>,
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

#[utoipa::path(post, operation_id = "csc_v2_credential_info", tag = TAG, request_body = CredentialInfoRequest,
    security(("bearer" = [])),
    responses((status = 200, body = CredentialInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[post("/credentials/info")]
pub async fn credential_info_handler(
    services: Data<Services>,
    request: Authed<CscV2User, CscJson<CredentialInfoRequest>>,
) -> Result<Json<CredentialInfo>, ApiError> {
    let Authed(CscV2User(caller), body) = request;
    let body = body.0;
    let id = CredentialId::new(body.credential_id.ok_or_else(|| ApiError::missing("credentialID"))?);
    let wanted = certificates_wanted(body.certificates.as_deref())?;
    let view = run_as(&services, V2, caller, move |s, principal| credentials::info(s, principal, &id)).await?;
    Ok(Json(credential_info(view, wanted, body.cert_info.unwrap_or(false), false)))
}

/// One entry of `authData` (§11.6).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CscV2AuthDataEntry)]
pub struct AuthDataEntry {
    pub id: Option<String>,
    #[schema(value_type = Option<String>)]
    pub value: Option<SecretString>,
}

/// `credentials/authorize` request (§11.6).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CscV2AuthorizeRequestBody)]
pub struct AuthorizeRequestBody {
    #[serde(rename = "credentialID")]
    pub credential_id: Option<String>,
    #[serde(rename = "numSignatures")]
    pub num_signatures: Option<i32>,
    pub hashes: Option<Vec<String>>,
    #[serde(rename = "hashAlgorithmOID")]
    pub hash_algorithm_oid: Option<String>,
    #[serde(rename = "authData")]
    pub auth_data: Option<Vec<AuthDataEntry>>,
    pub description: Option<String>,
    #[serde(rename = "clientData")]
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub client_data: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = CscV2SadResponse)]
pub struct SadResponse {
    #[serde(rename = "SAD")]
    pub sad: String,
    #[serde(rename = "expiresIn")]
    pub expires_in: i64,
}

fn hash_algorithm(oid: Option<String>, hashes_given: bool) -> Result<Option<HashAlgorithm>, ApiError> {
    match oid {
        Some(oid) => HashAlgorithm::from_oid(&oid).map(Some).ok_or_else(|| ApiError::invalid("hashAlgorithmOID")),
        // "Each time hash values are provided, the hash algorithm OID must also be provided."
        None if hashes_given => Err(ApiError::missing("hashAlgorithmOID")),
        None => Ok(None),
    }
}

/// Picks the values of `authData` by object id; an unknown id or a repeated one is refused.
fn auth_values(auth_data: Vec<AuthDataEntry>) -> Result<(Option<SecretString>, Option<SecretString>), ApiError> {
    let (mut otp, mut pin) = (None, None);
    for entry in auth_data {
        let slot = match entry.id.as_deref() {
            Some("OTP") => &mut otp,
            Some("PIN") => &mut pin,
            _ => return Err(ApiError::invalid("authData")),
        };
        if slot.is_some() || entry.value.is_none() {
            return Err(ApiError::invalid("authData"));
        }
        *slot = entry.value;
    }
    Ok((otp, pin))
}

#[utoipa::path(post, operation_id = "csc_v2_authorize", tag = TAG, request_body = AuthorizeRequestBody,
    security(("bearer" = [])),
    responses((status = 200, body = SadResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[post("/credentials/authorize")]
pub async fn authorize(
    services: Data<Services>,
    request: Authed<CscV2User, CscJson<AuthorizeRequestBody>>,
) -> Result<Json<SadResponse>, ApiError> {
    let Authed(CscV2User(caller), body) = request;
    let body = body.0;
    let credential_id = body.credential_id.ok_or_else(|| ApiError::missing("credentialID"))?;
    let num_signatures = body.num_signatures.ok_or_else(|| ApiError::missing("numSignatures"))?;
    let hashes = decode_hashes(&body.hashes.ok_or_else(|| ApiError::missing("hashes"))?, "hashes")?;
    let hash_algo = hash_algorithm(body.hash_algorithm_oid, true)?;
    let (otp, pin) = auth_values(body.auth_data.unwrap_or_default())?;
    if body.description.is_some_and(|d| d.chars().count() > 500) {
        return Err(ApiError::invalid("description"));
    }
    let request = AuthorizeRequest { credential_id: credential_id.into(), num_signatures, hashes, hash_algo, otp, pin };
    let issued =
        run_with_bearer(&services, V2, caller, move |s, bearer| credentials::authorize(s, bearer, request)).await?;
    Ok(Json(SadResponse { sad: issued.sad, expires_in: issued.expires_in }))
}

/// `credentials/extendTransaction` request (§11.9).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CscV2ExtendTransactionRequest)]
pub struct ExtendTransactionRequest {
    #[serde(rename = "credentialID")]
    pub credential_id: Option<String>,
    /// Hashes the renewed SAD keeps: each must be one the SAD still authorises (SCAL2: new hashes need
    /// `credentials/authorize` and a new code). Absent or empty: all it still authorises. The renewed SAD
    /// never lives past `security.sad_max_lifetime_secs` after the code.
    pub hashes: Option<Vec<String>>,
    #[serde(rename = "hashAlgorithmOID")]
    pub hash_algorithm_oid: Option<String>,
    #[serde(rename = "SAD")]
    #[schema(value_type = Option<String>)]
    pub sad: Option<SecretString>,
    #[serde(rename = "clientData")]
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub client_data: Option<String>,
}

#[utoipa::path(post, operation_id = "csc_v2_extend_transaction", tag = TAG, request_body = ExtendTransactionRequest,
    security(("bearer" = [])),
    responses((status = 200, body = SadResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[post("/credentials/extendTransaction")]
pub async fn extend_transaction(
    services: Data<Services>,
    request: Authed<CscV2User, CscJson<ExtendTransactionRequest>>,
) -> Result<Json<SadResponse>, ApiError> {
    let Authed(CscV2User(caller), body) = request;
    let body = body.0;
    let hashes = decode_hashes(&body.hashes.unwrap_or_default(), "hashes")?;
    let request = ExtendRequest {
        credential_id: body.credential_id.ok_or_else(|| ApiError::missing("credentialID"))?.into(),
        sad: body.sad.ok_or_else(|| ApiError::missing("SAD"))?,
        hash_algo: hash_algorithm(body.hash_algorithm_oid, !hashes.is_empty())?,
        hashes,
    };
    let issued = run_as(&services, V2, caller, move |s, principal| credentials::extend(s, principal, request)).await?;
    Ok(Json(SadResponse { sad: issued.sad, expires_in: issued.expires_in }))
}

/// `signatures/timestamp` request (§11.13). The algorithm is `hashAlgorithmOID`, as everywhere else in
/// v2; v2.0.0.2's own table still says `hashAlgo`, which is accepted too.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CscV2TimestampRequestBody)]
pub struct TimestampRequestBody {
    /// The base64 hash to time-stamp (MessageImprint.hashedMessage).
    pub hash: Option<String>,
    /// Its algorithm's OID (MessageImprint.hashAlgorithm): SHA-256, SHA-384 or SHA-512.
    #[serde(rename = "hashAlgorithmOID")]
    pub hash_algorithm_oid: Option<String>,
    /// The same, under the name of v2.0.0.2's table for this method.
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
#[utoipa::path(post, operation_id = "csc_v2_timestamp", tag = TAG, request_body = TimestampRequestBody,
    security(("bearer" = [])),
    responses((status = 200, body = TimestampResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[post("/signatures/timestamp")]
pub async fn timestamp(
    services: Data<Services>,
    request: Authed<CscV2User, CscJson<TimestampRequestBody>>,
) -> Result<Json<TimestampResponse>, ApiError> {
    let Authed(CscV2User(caller), CscJson(body)) = request;
    if body.hash_algorithm_oid.is_some() && body.hash_algo.is_some() && body.hash_algorithm_oid != body.hash_algo {
        return Err(ApiError::invalid("hashAlgorithmOID"));
    }
    let hash_algo = body.hash_algorithm_oid.or(body.hash_algo);
    let request = timestamp_request(body.hash, hash_algo, "hashAlgorithmOID", body.nonce)?;
    let token =
        run_as(&services, V2, caller, move |s, principal| timestamps::csc_timestamp(s, principal, request)).await?;
    Ok(Json(TimestampResponse { timestamp: encode_base64(&token) }))
}

/// `signatures/signHash` request (§11.10).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CscV2SignHashRequestBody)]
pub struct SignHashRequestBody {
    #[serde(rename = "credentialID")]
    pub credential_id: Option<String>,
    #[serde(rename = "SAD")]
    #[schema(value_type = Option<String>)]
    pub sad: Option<SecretString>,
    pub hashes: Option<Vec<String>>,
    #[serde(rename = "hashAlgorithmOID")]
    pub hash_algorithm_oid: Option<String>,
    #[serde(rename = "signAlgo")]
    pub sign_algo: Option<String>,
    #[serde(rename = "signAlgoParams")]
    pub sign_algo_params: Option<String>,
    /// Only `S` (synchronous) is offered: `info.asynchronousOperationMode` is false.
    #[serde(rename = "operationMode")]
    pub operation_mode: Option<String>,
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub validity_period: Option<i64>,
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub response_uri: Option<String>,
    #[serde(rename = "clientData")]
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub client_data: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = CscV2SignHashResponse)]
pub struct SignHashResponse {
    pub signatures: Vec<String>,
}

#[utoipa::path(post, operation_id = "csc_v2_sign_hash", tag = TAG, request_body = SignHashRequestBody,
    security(("bearer" = [])),
    responses((status = 200, body = SignHashResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[post("/signatures/signHash")]
pub async fn sign_hash(
    services: Data<Services>,
    request: Authed<CscV2User, CscJson<SignHashRequestBody>>,
) -> Result<Json<SignHashResponse>, ApiError> {
    let Authed(CscV2User(caller), body) = request;
    let body = body.0;
    if body.operation_mode.as_deref().is_some_and(|m| m != "S") {
        return Err(ApiError::invalid("operationMode"));
    }
    let hashes = decode_hashes(&body.hashes.ok_or_else(|| ApiError::missing("hashes"))?, "hashes")?;
    let request = SignHashRequest {
        credential_id: body.credential_id.ok_or_else(|| ApiError::missing("credentialID"))?.into(),
        sad: body.sad.ok_or_else(|| ApiError::missing("SAD"))?,
        hashes,
        sign_algo: body.sign_algo.ok_or_else(|| ApiError::missing("signAlgo"))?,
        hash_algo: body.hash_algorithm_oid,
        sign_algo_params: body.sign_algo_params.map(|p| decode_base64(&p, "signAlgoParams")).transpose()?,
        dialect: CscVersion::V2,
    };
    let signatures =
        run_with_bearer(&services, V2, caller, move |s, bearer| signing::sign_hash(s, bearer, request)).await?;
    Ok(Json(SignHashResponse { signatures: signatures.iter().map(|s| encode_base64(s)).collect() }))
}

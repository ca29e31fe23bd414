//! Registration and activation.

use actix_web::web::{Data, Json};
use actix_web::{get, post, HttpResponse};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{run, CscJson};
use crate::service::accounts::{self, Registration};
use crate::service::Services;

use super::{CodeSentResponse, TokenRequest, L, TAG};

/// Current versions of the documents a person accepts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentsResponse {
    pub privacy: String,
    pub terms: String,
    pub issuance_terms: String,
}

#[utoipa::path(get, tag = TAG, responses((status = 200, body = DocumentsResponse)))]
#[get("/documents")]
pub async fn documents(services: Data<Services>) -> Json<DocumentsResponse> {
    let lifecycle = &services.config.lifecycle;
    Json(DocumentsResponse {
        privacy: lifecycle.privacy_version.clone(),
        terms: lifecycle.terms_version.clone(),
        issuance_terms: lifecycle.issuance_terms_version.clone(),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConsent {
    pub accepted: bool,
    /// The version of the privacy information note shown (see `GET /api/v1/documents`).
    pub version: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationRequest {
    pub given_name: String,
    pub surname: String,
    pub email: String,
    /// International form, e.g. `+38640123456`.
    pub phone: String,
    pub privacy_consent: PrivacyConsent,
    /// The person's country as it goes into the certificate, ISO 3166-1 alpha-2 (e.g. `SI`);
    /// without it, the service's configured default.
    #[serde(default)]
    pub country: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationResponse {
    pub user_id: String,
    pub status: String,
}

/// Registers a person; an invitation e-mail carries the single-use activation link.
#[utoipa::path(post, tag = TAG, request_body = RegistrationRequest,
    responses((status = 201, body = RegistrationResponse), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody)))]
#[post("/registrations")]
pub async fn register(services: Data<Services>, body: CscJson<RegistrationRequest>) -> Result<HttpResponse, ApiError> {
    let b = body.0;
    let registration = Registration {
        given_name: b.given_name,
        surname: b.surname,
        email: b.email,
        phone: b.phone,
        privacy_accepted: b.privacy_consent.accepted,
        privacy_version: b.privacy_consent.version,
        country: b.country,
    };
    let user_id = run(&services, L, move |s| accounts::register(s, registration)).await?;
    Ok(HttpResponse::Created().json(RegistrationResponse { user_id, status: "invited".into() }))
}

/// Activation, step 1: sends the 6-digit SMS code to the registered phone.
#[utoipa::path(post, tag = TAG, request_body = TokenRequest,
    responses((status = 200, body = CodeSentResponse), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
#[post("/activation/send-code")]
pub async fn activation_send_code(
    services: Data<Services>,
    body: CscJson<TokenRequest>,
) -> Result<Json<CodeSentResponse>, ApiError> {
    let sent = run(&services, L, move |s| accounts::activation_send_code(s, body.0.token.expose_secret())).await?;
    Ok(Json(sent.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivationRequest {
    #[schema(value_type = String)]
    pub token: SecretString,
    /// The SMS code.
    #[schema(value_type = String)]
    pub code: SecretString,
    /// The new password (at least 12 characters, a letter and a digit, not the e-mail name).
    #[schema(value_type = String)]
    pub password: SecretString,
}

/// Activation, step 2: the SMS code and the password; the account can log in afterwards.
#[utoipa::path(post, tag = TAG, request_body = ActivationRequest,
    responses((status = 200, body = RegistrationResponse), (status = 400, body = ErrorBody)))]
#[post("/activation/complete")]
pub async fn activation_complete(
    services: Data<Services>,
    body: CscJson<ActivationRequest>,
) -> Result<Json<RegistrationResponse>, ApiError> {
    let b = body.0;
    let user_id = run(&services, L, move |s| {
        accounts::activation_complete(s, b.token.expose_secret(), b.code.expose_secret(), b.password.expose_secret())
    })
    .await?;
    Ok(Json(RegistrationResponse { user_id, status: "active".into() }))
}

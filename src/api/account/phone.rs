//! Phone change, in three steps.

use actix_web::post;
use actix_web::web::{Data, Json};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{run, Authed, CscJson, PortalUser};
use crate::service::accounts;
use crate::service::Services;

use super::{CodeRequest, CodeSentResponse, L, TAG};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneChangeRequest {
    pub new_phone: String,
    /// The account's current password (required).
    #[schema(value_type = Option<String>)]
    pub password: Option<SecretString>,
    /// A code from the authenticator app; required once one is paired.
    #[schema(value_type = Option<String>)]
    pub otp: Option<SecretString>,
}

/// Phone change, step 1: the password and (once paired) a TOTP code; a code by e-mail, valid 5 minutes.
#[utoipa::path(post, tag = TAG, security(("bearer" = [])), request_body = PhoneChangeRequest,
    responses((status = 200, body = CodeSentResponse), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
#[post("/me/phone-change")]
pub async fn phone_change(
    services: Data<Services>,
    request: Authed<PortalUser, CscJson<PhoneChangeRequest>>,
) -> Result<Json<CodeSentResponse>, ApiError> {
    let Authed(PortalUser(principal), body) = request;
    let b = body.0;
    let password = b.password.ok_or_else(|| {
        ApiError::invalid_request("password: the current password is needed to change the phone number")
    })?;
    let sent = run(&services, L, move |s| {
        accounts::phone_change_start(
            s,
            &principal,
            &b.new_phone,
            password.expose_secret(),
            b.otp.as_ref().map(ExposeSecret::expose_secret),
        )
    })
    .await?;
    Ok(Json(sent.into()))
}

/// Phone change, step 2: the e-mail code; a code goes by SMS to the new number, valid 5 minutes.
#[utoipa::path(post, tag = TAG, security(("bearer" = [])), request_body = CodeRequest,
    responses((status = 200, body = CodeSentResponse), (status = 400, body = ErrorBody)))]
#[post("/me/phone-change/verify-email")]
pub async fn phone_change_verify_email(
    services: Data<Services>,
    request: Authed<PortalUser, CscJson<CodeRequest>>,
) -> Result<Json<CodeSentResponse>, ApiError> {
    let Authed(PortalUser(principal), body) = request;
    let sent =
        run(&services, L, move |s| accounts::phone_change_verify_email(s, &principal, body.0.code.expose_secret()))
            .await?;
    Ok(Json(sent.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneResponse {
    pub phone: String,
}

/// Phone change, step 3: the SMS code; the number changes and an e-mail confirms it.
#[utoipa::path(post, tag = TAG, security(("bearer" = [])), request_body = CodeRequest,
    responses((status = 200, body = PhoneResponse), (status = 400, body = ErrorBody)))]
#[post("/me/phone-change/confirm")]
pub async fn phone_change_confirm(
    services: Data<Services>,
    request: Authed<PortalUser, CscJson<CodeRequest>>,
) -> Result<Json<PhoneResponse>, ApiError> {
    let Authed(PortalUser(principal), body) = request;
    let phone =
        run(&services, L, move |s| accounts::phone_change_confirm(s, &principal, body.0.code.expose_secret())).await?;
    Ok(Json(PhoneResponse { phone }))
}

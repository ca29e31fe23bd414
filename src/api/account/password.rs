//! The password: change and recovery.

use actix_web::web::{Data, Json};
use actix_web::{post, HttpResponse};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{run, Authed, CscJson, PortalUser};
use crate::service::accounts;
use crate::service::Services;

use super::{CodeSentResponse, StatusResponse, TokenRequest, L, TAG};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeRequest {
    #[schema(value_type = String)]
    pub current_password: SecretString,
    #[schema(value_type = String)]
    pub new_password: SecretString,
    /// Required once an authenticator is paired.
    #[schema(value_type = Option<String>)]
    pub otp: Option<SecretString>,
}

/// Changes the password; the person's other sessions end.
#[utoipa::path(post, tag = TAG, security(("bearer" = [])), request_body = PasswordChangeRequest,
    responses((status = 200, body = StatusResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[post("/me/password")]
pub async fn change_password(
    services: Data<Services>,
    request: Authed<PortalUser, CscJson<PasswordChangeRequest>>,
) -> Result<Json<StatusResponse>, ApiError> {
    let Authed(PortalUser(principal), body) = request;
    let b = body.0;
    run(&services, L, move |s| {
        accounts::change_password(
            s,
            &principal,
            b.current_password.expose_secret(),
            b.new_password.expose_secret(),
            b.otp.as_ref().map(ExposeSecret::expose_secret),
        )
    })
    .await?;
    Ok(Json(StatusResponse { status: "password_changed".into() }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    pub email: String,
}

/// Password recovery, step 1: a link by e-mail. The answer does not reveal whether the account exists.
#[utoipa::path(post, tag = TAG, request_body = EmailRequest, responses((status = 202), (status = 400, body = ErrorBody)))]
#[post("/password-reset")]
pub async fn password_reset(services: Data<Services>, body: CscJson<EmailRequest>) -> Result<HttpResponse, ApiError> {
    run(&services, L, move |s| accounts::password_reset_request(s, &body.0.email)).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// Password recovery, step 2: with the link's token, an SMS code.
#[utoipa::path(post, tag = TAG, request_body = TokenRequest,
    responses((status = 200, body = CodeSentResponse), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
#[post("/password-reset/send-code")]
pub async fn password_reset_send_code(
    services: Data<Services>,
    body: CscJson<TokenRequest>,
) -> Result<Json<CodeSentResponse>, ApiError> {
    let sent = run(&services, L, move |s| accounts::password_reset_send_code(s, body.0.token.expose_secret())).await?;
    Ok(Json(sent.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetCompleteRequest {
    #[schema(value_type = String)]
    pub token: SecretString,
    #[schema(value_type = String)]
    pub code: SecretString,
    #[schema(value_type = String)]
    pub new_password: SecretString,
}

/// Password recovery, step 3: the SMS code and the new password; every session of the account ends.
#[utoipa::path(post, tag = TAG, request_body = PasswordResetCompleteRequest,
    responses((status = 200, body = StatusResponse), (status = 400, body = ErrorBody)))]
#[post("/password-reset/complete")]
pub async fn password_reset_complete(
    services: Data<Services>,
    body: CscJson<PasswordResetCompleteRequest>,
) -> Result<Json<StatusResponse>, ApiError> {
    let b = body.0;
    run(&services, L, move |s| {
        accounts::password_reset_complete(
            s,
            b.token.expose_secret(),
            b.code.expose_secret(),
            b.new_password.expose_secret(),
        )
    })
    .await?;
    Ok(Json(StatusResponse { status: "password_changed".into() }))
}

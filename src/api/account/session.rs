//! Login (password and, once paired, a TOTP code) and logout.

use actix_web::web::{Data, Json};
use actix_web::{post, HttpRequest, HttpResponse};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{portal_principal, run, CscJson};
use crate::service::accounts;
use crate::service::auth::IssuedTokens;
use crate::service::Services;

use super::{totp_view, TotpView, L, TAG};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AccountLoginRequest)]
pub struct LoginRequest {
    pub email: String,
    #[schema(value_type = String)]
    pub password: SecretString,
    /// The authenticator's code; required once an authenticator is paired.
    #[schema(value_type = Option<String>)]
    pub otp: Option<SecretString>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AccountLoginResponse)]
pub struct LoginResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    pub totp: TotpView,
}

pub(super) fn session(tokens: IssuedTokens) -> (String, String, i64) {
    (tokens.access_token, "Bearer".to_string(), tokens.expires_in)
}

/// Logs in with e-mail, password and (once paired) a TOTP code. Repeated wrong passwords lock logins.
#[utoipa::path(post, tag = TAG, request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[post("/login")]
pub async fn login(services: Data<Services>, body: CscJson<LoginRequest>) -> Result<Json<LoginResponse>, ApiError> {
    let b = body.0;
    let login = run(&services, L, move |s| {
        accounts::login(s, &b.email, b.password.expose_secret(), b.otp.as_ref().map(ExposeSecret::expose_secret))
    })
    .await?;
    let (access_token, token_type, expires_in) = session(login.tokens);
    Ok(Json(LoginResponse { access_token, token_type, expires_in, totp: totp_view(&services, login.totp) }))
}

/// Ends the session.
#[utoipa::path(post, tag = TAG, security(("bearer" = [])), responses((status = 204), (status = 401, body = ErrorBody)))]
#[post("/logout")]
pub async fn logout(services: Data<Services>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let principal = portal_principal(&services, &req).await?;
    run(&services, L, move |s| accounts::logout(s, &principal)).await?;
    Ok(HttpResponse::NoContent().finish())
}

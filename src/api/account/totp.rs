//! The authenticator app: pairing, postponing it, and the reset when it is lost.

use actix_web::web::{Data, Json};
use actix_web::{get, post, HttpRequest};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{portal_principal, run, Authed, CscJson, PortalUser};
use crate::api::lifecycle_types::rfc3339;
use crate::service::accounts::{self, Postpone};
use crate::service::authenticator::{self, PairingStarted};
use crate::service::Services;

use super::session::session;
use super::{totp_view, CodeRequest, CodeSentResponse, StatusResponse, TokenRequest, TotpView, L, TAG};

#[derive(Debug, Serialize, ToSchema)]
pub struct PairingResponse {
    /// The TOTP secret, base32 (for typing into the app).
    pub secret: String,
    pub otpauth_uri: String,
    /// The otpauth URI as a QR code, PNG in base64.
    pub qr_code_png: String,
}

fn pairing_response(p: PairingStarted) -> Result<PairingResponse, ApiError> {
    let png = crate::api::qr::png(&p.otpauth_uri).ok_or_else(ApiError::internal)?;
    Ok(PairingResponse {
        secret: p.secret_base32,
        qr_code_png: crate::api::extract::encode_base64(&png),
        otpauth_uri: p.otpauth_uri,
    })
}

/// Starts pairing an authenticator app: the secret, its otpauth URI and a QR code.
#[utoipa::path(post, tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = PairingResponse), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/totp/pairing")]
pub async fn start_pairing(services: Data<Services>, req: HttpRequest) -> Result<Json<PairingResponse>, ApiError> {
    let principal = portal_principal(&services, &req).await?;
    let pairing = run(&services, L, move |s| authenticator::start_pairing(s, &principal)).await?;
    Ok(Json(pairing_response(pairing)?))
}

/// Confirms the pairing with one code from the app.
#[utoipa::path(post, tag = TAG, security(("bearer" = [])), request_body = CodeRequest,
    responses((status = 200, body = StatusResponse), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/totp/pairing/confirm")]
pub async fn confirm_pairing(
    services: Data<Services>,
    request: Authed<PortalUser, CscJson<CodeRequest>>,
) -> Result<Json<StatusResponse>, ApiError> {
    let Authed(PortalUser(principal), body) = request;
    run(&services, L, move |s| authenticator::confirm_pairing(s, &principal, body.0.code.expose_secret())).await?;
    Ok(Json(StatusResponse { status: "paired".into() }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostponeRequest {
    /// `until` (with `date`), `next_login` or `never` (until pairing becomes mandatory).
    pub mode: String,
    /// `YYYY-MM-DD`, for `until`.
    pub date: Option<String>,
}

/// Postpones pairing, while it is not yet mandatory.
#[utoipa::path(post, tag = TAG, security(("bearer" = [])), request_body = PostponeRequest,
    responses((status = 200, body = TotpView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/totp/postpone")]
pub async fn postpone(
    services: Data<Services>,
    request: Authed<PortalUser, CscJson<PostponeRequest>>,
) -> Result<Json<TotpView>, ApiError> {
    let Authed(PortalUser(principal), body) = request;
    let b = body.0;
    let postpone = match (b.mode.as_str(), b.date.as_deref()) {
        ("until", Some(date)) => {
            Postpone::Until(date.parse().map_err(|_| ApiError::invalid_request("date: a day as YYYY-MM-DD"))?)
        }
        ("until", None) => return Err(ApiError::missing("date")),
        ("next_login", None) => Postpone::NextLogin,
        ("never", None) => Postpone::Never,
        _ => return Err(ApiError::invalid_request("mode: until (with date), next_login or never")),
    };
    let profile = run(&services, L, move |s| accounts::postpone_totp(s, &principal, postpone)).await?;
    Ok(Json(totp_view(&services, profile.totp)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpResetRequest {
    pub email: String,
    #[schema(value_type = String)]
    pub password: SecretString,
}

/// Authenticator lost, step 1: e-mail and password; an SMS code goes to the phone.
#[utoipa::path(post, tag = TAG, request_body = TotpResetRequest,
    responses((status = 200, body = CodeSentResponse), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
#[post("/totp/reset")]
pub async fn totp_reset(
    services: Data<Services>,
    body: CscJson<TotpResetRequest>,
) -> Result<Json<CodeSentResponse>, ApiError> {
    let b = body.0;
    let sent = run(&services, L, move |s| authenticator::reset_start(s, &b.email, b.password.expose_secret())).await?;
    Ok(Json(sent.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpResetConfirmRequest {
    pub email: String,
    #[schema(value_type = String)]
    pub password: SecretString,
    /// The SMS code.
    #[schema(value_type = String)]
    pub code: SecretString,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpResetResponse {
    /// A session for confirming the new pairing.
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    pub pairing: PairingResponse,
    /// The reset: `pending_identity` when the new authenticator may authorise signatures only after
    /// the identity check named by its id is accepted.
    pub reset: AuthenticatorResetView,
}

/// An authenticator reset, and the identity check it needs within the cooling-off period after a
/// password recovery or phone change (its id is the check id for the provider and operators).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthenticatorResetView {
    pub id: String,
    pub user_id: String,
    /// `not_required`, `pending_identity`, `verified`, `rejected` or `cancelled`. Signing is blocked
    /// while the newest reset is `pending_identity`, `rejected` or `cancelled`.
    pub status: String,
    /// Where the person goes for the video identification, while one is needed.
    pub session_url: Option<String>,
    pub reasons: Vec<String>,
    pub decided_by: Option<String>,
    pub created_at: String,
    pub decided_at: Option<String>,
}

impl From<authenticator::ResetView> for AuthenticatorResetView {
    fn from(r: authenticator::ResetView) -> Self {
        AuthenticatorResetView {
            id: r.id,
            user_id: r.user_id,
            status: r.status.as_str().to_string(),
            session_url: r.session_url,
            reasons: r.reasons,
            decided_by: r.decided_by,
            created_at: rfc3339(r.created_at),
            decided_at: r.decided_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuthenticatorResetsResponse {
    pub resets: Vec<AuthenticatorResetView>,
}

/// Authenticator lost, step 2: the SMS code. The old secret stops working at once; a new pairing starts.
#[utoipa::path(post, tag = TAG, request_body = TotpResetConfirmRequest,
    responses((status = 200, body = TotpResetResponse), (status = 400, body = ErrorBody)))]
#[post("/totp/reset/confirm")]
pub async fn totp_reset_confirm(
    services: Data<Services>,
    body: CscJson<TotpResetConfirmRequest>,
) -> Result<Json<TotpResetResponse>, ApiError> {
    let b = body.0;
    let (tokens, pairing, reset) = run(&services, L, move |s| {
        authenticator::reset_confirm(s, &b.email, b.password.expose_secret(), b.code.expose_secret())
    })
    .await?;
    let (access_token, token_type, expires_in) = session(tokens);
    Ok(Json(TotpResetResponse {
        access_token,
        token_type,
        expires_in,
        pairing: pairing_response(pairing)?,
        reset: reset.into(),
    }))
}

/// Cancels an authenticator reset with the link from its e-mail or SMS (no session). The authenticator
/// paired since is removed and none is restored; every session ends; signing stays blocked until a new
/// reset passes an identity check.
#[utoipa::path(post, tag = TAG, request_body = TokenRequest,
    responses((status = 200, body = AuthenticatorResetView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/totp/reset/cancel")]
pub async fn totp_reset_cancel(
    services: Data<Services>,
    body: CscJson<TokenRequest>,
) -> Result<Json<AuthenticatorResetView>, ApiError> {
    let reset = run(&services, L, move |s| authenticator::cancel_reset(s, body.0.token.expose_secret())).await?;
    Ok(Json(reset.into()))
}

/// The person's authenticator resets, oldest first.
#[utoipa::path(get, tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = AuthenticatorResetsResponse), (status = 401, body = ErrorBody)))]
#[get("/totp/resets")]
pub async fn totp_resets(
    services: Data<Services>,
    req: HttpRequest,
) -> Result<Json<AuthenticatorResetsResponse>, ApiError> {
    let principal = portal_principal(&services, &req).await?;
    let resets = run(&services, L, move |s| authenticator::resets_of(s, &principal)).await?;
    Ok(Json(AuthenticatorResetsResponse { resets: resets.into_iter().map(Into::into).collect() }))
}

//! The lifecycle API for front ends (`/api/v1`): registration and activation, two-factor login, the
//! authenticator, consents and account care. Orders and certificates are in `api::certificates`.

use actix_web::web::{Data, Json};
use actix_web::{get, post, HttpRequest, HttpResponse};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, Dialect, ErrorBody};
use super::extract::{portal_principal, run, Authed, CscJson, PortalUser};
use super::lifecycle_types::rfc3339;
use crate::service::accounts::{self, Postpone, Registration, TotpStatus};
use crate::service::auth::IssuedTokens;
use crate::service::authenticator::{self, PairingStarted};
use crate::service::Services;

const L: Dialect = Dialect::Lifecycle;
const TAG: &str = "Account";

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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The token of the link from the e-mail.
    #[schema(value_type = String)]
    pub token: SecretString,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CodeSentResponse {
    /// Where the code went (partly hidden).
    pub destination_hint: String,
    pub code_expires_in: i64,
    /// Seconds before another code may be asked for.
    pub next_code_after: i64,
}

impl From<accounts::CodeSent> for CodeSentResponse {
    fn from(c: accounts::CodeSent) -> Self {
        CodeSentResponse {
            destination_hint: c.destination_hint,
            code_expires_in: c.code_expires_in,
            next_code_after: c.next_code_after,
        }
    }
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

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusResponse {
    pub status: String,
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

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpView {
    /// `paired`, `required` (pair before anything else), `postponed` or `optional` (offer pairing).
    pub status: String,
    /// The last day on which pairing may be postponed.
    pub mandatory_after: String,
}

fn totp_view(services: &Services, status: TotpStatus) -> TotpView {
    TotpView {
        status: status.as_str().into(),
        mandatory_after: services.config.lifecycle.totp_mandatory_after.to_string(),
    }
}

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

fn session(tokens: IssuedTokens) -> (String, String, i64) {
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

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentView {
    /// `privacy`, `terms` or `issuance_terms`.
    pub document: String,
    pub version: String,
    pub accepted_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileResponse {
    pub user_id: String,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// The country that goes into the person's certificates (ISO 3166-1 alpha-2).
    pub country: String,
    pub status: String,
    pub totp: TotpView,
    pub consents: Vec<ConsentView>,
}

fn consent_view(c: crate::db::accounts::Consent) -> ConsentView {
    ConsentView { document: c.document, version: c.version, accepted_at: rfc3339(c.accepted_at) }
}

fn profile_response(services: &Services, p: accounts::Profile) -> ProfileResponse {
    ProfileResponse {
        totp: totp_view(services, p.totp),
        consents: p.consents.into_iter().map(consent_view).collect(),
        user_id: p.account.id,
        given_name: p.account.given_name,
        surname: p.account.surname,
        email: p.account.email,
        phone: p.account.phone,
        country: p.account.country.unwrap_or_else(|| services.config.default_subject_country().to_string()),
        status: p.account.status,
    }
}

/// The person's profile, consents and authenticator status.
#[utoipa::path(get, tag = TAG, security(("bearer" = [])), responses((status = 200, body = ProfileResponse), (status = 401, body = ErrorBody)))]
#[get("/me")]
pub async fn me(services: Data<Services>, req: HttpRequest) -> Result<Json<ProfileResponse>, ApiError> {
    let principal = portal_principal(&services, &req).await?;
    let profile = run(&services, L, move |s| accounts::profile(s, &principal)).await?;
    Ok(Json(profile_response(&services, profile)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    /// `privacy` or `terms`.
    pub document: String,
    pub version: String,
}

/// Records the acceptance of a document's current version.
#[utoipa::path(post, tag = TAG, security(("bearer" = [])), request_body = ConsentRequest,
    responses((status = 201, body = ConsentView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[post("/consents")]
pub async fn consent(
    services: Data<Services>,
    request: Authed<PortalUser, CscJson<ConsentRequest>>,
) -> Result<HttpResponse, ApiError> {
    let Authed(PortalUser(principal), body) = request;
    let b = body.0;
    let consent = run(&services, L, move |s| accounts::accept_consent(s, &principal, &b.document, &b.version)).await?;
    Ok(HttpResponse::Created().json(consent_view(consent)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PairingResponse {
    /// The TOTP secret, base32 (for typing into the app).
    pub secret: String,
    pub otpauth_uri: String,
    /// The otpauth URI as a QR code, PNG in base64.
    pub qr_code_png: String,
}

fn pairing_response(p: PairingStarted) -> Result<PairingResponse, ApiError> {
    let png = super::qr::png(&p.otpauth_uri).ok_or_else(ApiError::internal)?;
    Ok(PairingResponse {
        secret: p.secret_base32,
        qr_code_png: super::extract::encode_base64(&png),
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    #[schema(value_type = String)]
    pub code: SecretString,
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

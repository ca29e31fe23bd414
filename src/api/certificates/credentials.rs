//! Credentials: issuance, the list, rekey and revocation.

use actix_web::web::{Data, Json, Path};
use actix_web::{get, post, HttpRequest, HttpResponse};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{portal_principal, run, Authed, CscJson, PortalUser};
use crate::api::lifecycle_types::{CredentialView, CredentialsResponse, IdentityCheckView, OrderView};
use crate::domain::{CredentialId, OrderStatus, RevocationReason};
use crate::service::issuance::{self, IssueRequest};
use crate::service::rekey::{RekeyOutcome, RekeyRequest};
use crate::service::Services;

use super::{L, TAG};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueRequestBody {
    /// The paid order whose identity check was accepted.
    pub order_id: String,
    /// The version of the issuance terms accepted (see `GET /api/v1/documents`).
    pub issuance_terms_version: String,
    /// The authenticator's code, authorising the issuance.
    #[schema(value_type = String)]
    pub otp: SecretString,
    /// `rsa-2048` (default), `rsa-3072`, `ec-p256` or `ec-p384`.
    pub key_type: Option<String>,
}

/// Issues the certificate: a new key pair in the HSM, certified by the CA. It then appears in CSC `credentials/list`.
#[utoipa::path(post, tag = TAG, security(("bearer" = [])), request_body = IssueRequestBody,
    responses((status = 201, body = CredentialView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/credentials")]
pub async fn issue(
    services: Data<Services>,
    request: Authed<PortalUser, CscJson<IssueRequestBody>>,
) -> Result<HttpResponse, ApiError> {
    let Authed(PortalUser(principal), body) = request;
    let b = body.0;
    let request = IssueRequest {
        order_id: b.order_id.into(),
        issuance_terms_version: b.issuance_terms_version,
        otp: b.otp,
        key_type: b.key_type,
    };
    let summary = run(&services, L, move |s| issuance::issue(s, &principal, request)).await?;
    Ok(HttpResponse::Created().json(CredentialView::new(summary)))
}

/// The person's credentials with status, remaining quota and rekey window.
#[utoipa::path(get, tag = TAG, security(("bearer" = [])), responses((status = 200, body = CredentialsResponse), (status = 401, body = ErrorBody)))]
#[get("/credentials")]
pub async fn list_credentials(
    services: Data<Services>,
    req: HttpRequest,
) -> Result<Json<CredentialsResponse>, ApiError> {
    let principal = portal_principal(&services, &req).await?;
    let rows = run(&services, L, move |s| issuance::list(s, &principal)).await?;
    Ok(Json(CredentialsResponse { credentials: rows.into_iter().map(CredentialView::new).collect() }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RekeyRequestBody {
    /// The paid rekey order of this credential.
    pub order_id: String,
    #[schema(value_type = String)]
    pub otp: SecretString,
    pub key_type: Option<String>,
}

/// A rekey submitted and waiting for its identity decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct RekeySubmittedResponse {
    /// `awaiting_decision`.
    pub status: OrderStatus,
    pub order: OrderView,
    /// The rekey's identity check, decided by an operator or the identification provider.
    pub identity_check: IdentityCheckView,
}

/// Rekey: submits the request (the order's personal data and identity document), signed with a TOTP
/// code. Nothing is issued now: the trust service validates the request (an identity check of kind
/// `rekey`), and on acceptance issues the new key and certificate and e-mails the person; a rejection
/// e-mails the reasons, and the person may submit again while the window is open (it closes 72 hours
/// before expiry). Answers 202 while the decision is pending, or 201 with the new credential when it
/// was accepted at once (unchanged personal data with `lifecycle.rekey_auto_accept_unchanged`).
#[utoipa::path(post, tag = TAG, security(("bearer" = [])), params(("id" = String, Path, description = "Credential id")), request_body = RekeyRequestBody,
    responses((status = 202, body = RekeySubmittedResponse), (status = 201, body = CredentialView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/credentials/{id}/rekey")]
pub async fn rekey(
    services: Data<Services>,
    id: Path<String>,
    request: Authed<PortalUser, CscJson<RekeyRequestBody>>,
) -> Result<HttpResponse, ApiError> {
    let Authed(PortalUser(principal), body) = request;
    let b = body.0;
    let request = RekeyRequest {
        credential_id: id.into_inner().into(),
        order_id: b.order_id.into(),
        otp: b.otp,
        key_type: b.key_type,
    };
    match run(&services, L, move |s| crate::service::rekey::submit(s, &principal, request)).await? {
        RekeyOutcome::AwaitingDecision { order, check } => Ok(HttpResponse::Accepted().json(RekeySubmittedResponse {
            status: order.status,
            order: (*order).into(),
            identity_check: IdentityCheckView::new(&services, *check),
        })),
        RekeyOutcome::Issued(summary) => Ok(HttpResponse::Created().json(CredentialView::new(*summary))),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequestBody {
    #[schema(value_type = String)]
    pub otp: SecretString,
    /// Why, in words (kept in the audit trail and told back by e-mail).
    pub reason: Option<String>,
    /// The CRL reason the CRL entry and the OCSP answer give: `key_compromise`, `affiliation_changed`,
    /// `superseded` or `cessation_of_operation` (`privilege_withdrawn` is an operator's); none: unspecified.
    pub reason_code: Option<RevocationReason>,
}

/// Revokes the credential; the CRL lists it from now on.
#[utoipa::path(post, tag = TAG, security(("bearer" = [])), params(("id" = String, Path, description = "Credential id")), request_body = RevokeRequestBody,
    responses((status = 200, body = CredentialView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/credentials/{id}/revoke")]
pub async fn revoke(
    services: Data<Services>,
    id: Path<CredentialId>,
    request: Authed<PortalUser, CscJson<RevokeRequestBody>>,
) -> Result<Json<CredentialView>, ApiError> {
    let Authed(PortalUser(principal), body) = request;
    let b = body.0;
    let summary = run(&services, L, move |s| {
        issuance::revoke_own(s, &principal, &id, &b.otp, b.reason.as_deref(), b.reason_code)
    })
    .await?;
    Ok(Json(CredentialView::new(summary)))
}

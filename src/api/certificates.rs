//! The lifecycle API for certificates (`/api/v1`): packages and orders, payment, identity checks,
//! issuance, rekey and revocation.

use actix_web::web::{Data, Json, Path};
use actix_web::{get, post, put, HttpRequest, HttpResponse};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, Dialect, ErrorBody};
use super::extract::{decode_base64, portal_principal, run, Authed, CscJson, PortalUser, UploadJson};
use super::lifecycle_types::{
    CredentialView, CredentialsResponse, IdentityCheckView, IdentityChecksResponse, OrderView, OrdersResponse,
};
use crate::domain::enrolment::Invoice;
use crate::service::issuance::{self, IssueRequest, RekeyOutcome, RekeyRequest};
use crate::service::orders::{self, NewOrder, Purpose};
use crate::service::{identity, Services};

const L: Dialect = Dialect::Lifecycle;
const TAG: &str = "Certificates";

#[derive(Debug, Serialize, ToSchema)]
pub struct PackageView {
    pub id: String,
    pub validity_years: i64,
    /// Signatures and timestamps the certificate may make in all.
    pub transactions: i32,
    pub net_cents: i64,
    pub vat_percent: i64,
    pub vat_cents: i64,
    pub gross_cents: i64,
    pub currency: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PackagesResponse {
    pub packages: Vec<PackageView>,
}

/// The package catalogue with prices (net, VAT, gross).
#[utoipa::path(get, tag = TAG, responses((status = 200, body = PackagesResponse)))]
#[get("/packages")]
pub async fn packages(services: Data<Services>) -> Json<PackagesResponse> {
    let lifecycle = &services.config.lifecycle;
    let packages = orders::catalogue(&services)
        .into_iter()
        .map(|p| PackageView {
            id: p.package.id,
            validity_years: p.package.validity_years,
            transactions: p.package.transactions,
            net_cents: p.package.net_cents,
            vat_percent: lifecycle.vat_percent,
            vat_cents: p.vat_cents,
            gross_cents: p.gross_cents,
            currency: lifecycle.currency.clone(),
        })
        .collect();
    Json(PackagesResponse { packages })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    pub package_id: String,
    /// `issuance`, `rekey` or `reissue`.
    pub purpose: String,
    /// For a rekey: the credential to renew.
    pub credential_id: Option<String>,
    pub invoice: Invoice,
}

/// Orders a package (the current terms must be accepted).
#[utoipa::path(post, tag = TAG, security(("bearer" = [])), request_body = OrderRequest,
    responses((status = 201, body = OrderView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/orders")]
pub async fn create_order(
    services: Data<Services>,
    request: Authed<PortalUser, CscJson<OrderRequest>>,
) -> Result<HttpResponse, ApiError> {
    let Authed(PortalUser(principal), body) = request;
    let b = body.0;
    let purpose =
        Purpose::parse(&b.purpose).ok_or_else(|| ApiError::invalid_request("purpose: issuance, rekey or reissue"))?;
    let order = NewOrder { package_id: b.package_id, purpose, credential_id: b.credential_id, invoice: b.invoice };
    let row = run(&services, L, move |s| orders::create(s, &principal, order)).await?;
    Ok(HttpResponse::Created().json(OrderView::from(row)))
}

/// The person's orders.
#[utoipa::path(get, tag = TAG, security(("bearer" = [])), responses((status = 200, body = OrdersResponse), (status = 401, body = ErrorBody)))]
#[get("/orders")]
pub async fn list_orders(services: Data<Services>, req: HttpRequest) -> Result<Json<OrdersResponse>, ApiError> {
    let principal = portal_principal(&services, &req).await?;
    let rows = run(&services, L, move |s| orders::list(s, &principal)).await?;
    Ok(Json(OrdersResponse { orders: rows.into_iter().map(OrderView::from).collect() }))
}

#[utoipa::path(get, tag = TAG, security(("bearer" = [])), params(("id" = String, Path, description = "Order id")),
    responses((status = 200, body = OrderView), (status = 404, body = ErrorBody)))]
#[get("/orders/{id}")]
pub async fn get_order(
    services: Data<Services>,
    req: HttpRequest,
    id: Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    let principal = portal_principal(&services, &req).await?;
    let row = run(&services, L, move |s| orders::get(s, &principal, &id)).await?;
    Ok(Json(row.into()))
}

/// Changes the invoice data, until the invoice is issued (when payment starts).
#[utoipa::path(put, tag = TAG, security(("bearer" = [])), params(("id" = String, Path, description = "Order id")), request_body = Invoice,
    responses((status = 200, body = OrderView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[put("/orders/{id}/invoice")]
pub async fn update_invoice(
    services: Data<Services>,
    id: Path<String>,
    request: Authed<PortalUser, CscJson<Invoice>>,
) -> Result<Json<OrderView>, ApiError> {
    let Authed(PortalUser(principal), body) = request;
    let row = run(&services, L, move |s| orders::update_invoice(s, &principal, &id, body.0)).await?;
    Ok(Json(row.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentResponse {
    pub order_id: String,
    /// The reference the payment provider's webhook names.
    pub payment_ref: String,
    /// The provider's payment page.
    pub payment_url: String,
    pub gross_cents: i64,
    pub currency: String,
}

/// Issues the invoice (its data are frozen) and returns the payment page.
#[utoipa::path(post, tag = TAG, security(("bearer" = [])), params(("id" = String, Path, description = "Order id")),
    responses((status = 200, body = PaymentResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/orders/{id}/payment")]
pub async fn start_payment(
    services: Data<Services>,
    req: HttpRequest,
    id: Path<String>,
) -> Result<Json<PaymentResponse>, ApiError> {
    let principal = portal_principal(&services, &req).await?;
    let started = run(&services, L, move |s| orders::start_payment(s, &principal, &id)).await?;
    Ok(Json(PaymentResponse {
        order_id: started.order.id,
        payment_ref: started.order.payment_ref.unwrap_or_default(),
        payment_url: started.payment_url,
        gross_cents: started.order.gross_cents,
        currency: started.order.currency,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonalDataRequest {
    pub given_name: String,
    pub surname: String,
}

/// Rekey: confirms or updates the names that go into the new certificate (they take effect only when
/// the submitted rekey is accepted).
#[utoipa::path(post, tag = TAG, security(("bearer" = [])), params(("id" = String, Path, description = "Order id")), request_body = PersonalDataRequest,
    responses((status = 200, body = OrderView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/orders/{id}/personal-data")]
pub async fn personal_data(
    services: Data<Services>,
    id: Path<String>,
    request: Authed<PortalUser, CscJson<PersonalDataRequest>>,
) -> Result<Json<OrderView>, ApiError> {
    let Authed(PortalUser(principal), body) = request;
    let b = body.0;
    let row = run(&services, L, move |s| orders::confirm_personal_data(s, &principal, &id, &b.given_name, &b.surname))
        .await?;
    Ok(Json(row.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentUploadRequest {
    /// `application/pdf`, `image/jpeg` or `image/png`.
    pub content_type: String,
    /// The file, base64 (at most 5 MiB).
    pub data: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentResponse {
    pub document_id: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

/// Rekey: a copy of the identity document.
#[utoipa::path(post, tag = TAG, security(("bearer" = [])), params(("id" = String, Path, description = "Order id")), request_body = DocumentUploadRequest,
    responses((status = 201, body = DocumentResponse), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/orders/{id}/identity-document")]
pub async fn identity_document(
    services: Data<Services>,
    id: Path<String>,
    request: Authed<PortalUser, UploadJson<DocumentUploadRequest>>,
) -> Result<HttpResponse, ApiError> {
    let Authed(PortalUser(principal), body) = request;
    let b = body.0;
    let data = decode_base64(&b.data, "data")?;
    let row =
        run(&services, L, move |s| orders::upload_identity_document(s, &principal, &id, &b.content_type, data)).await?;
    Ok(HttpResponse::Created().json(DocumentResponse { document_id: row.id, sha256: row.sha256 }))
}

/// The person's identity checks, with the identification link of the pending one.
#[utoipa::path(get, tag = TAG, security(("bearer" = [])), responses((status = 200, body = IdentityChecksResponse), (status = 401, body = ErrorBody)))]
#[get("/identity-checks")]
pub async fn identity_checks(
    services: Data<Services>,
    req: HttpRequest,
) -> Result<Json<IdentityChecksResponse>, ApiError> {
    let principal = portal_principal(&services, &req).await?;
    let rows = run(&services, L, move |s| identity::checks_of(s, &principal)).await?;
    Ok(Json(IdentityChecksResponse {
        identity_checks: rows.into_iter().map(|c| IdentityCheckView::new(&services, c)).collect(),
    }))
}

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
        order_id: b.order_id,
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
    pub status: String,
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
    let request =
        RekeyRequest { credential_id: id.into_inner(), order_id: b.order_id, otp: b.otp, key_type: b.key_type };
    match run(&services, L, move |s| issuance::rekey(s, &principal, request)).await? {
        RekeyOutcome::AwaitingDecision { order, check } => Ok(HttpResponse::Accepted().json(RekeySubmittedResponse {
            status: order.status.clone(),
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
    pub reason: Option<String>,
}

/// Revokes the credential; the CRL lists it from now on.
#[utoipa::path(post, tag = TAG, security(("bearer" = [])), params(("id" = String, Path, description = "Credential id")), request_body = RevokeRequestBody,
    responses((status = 200, body = CredentialView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/credentials/{id}/revoke")]
pub async fn revoke(
    services: Data<Services>,
    id: Path<String>,
    request: Authed<PortalUser, CscJson<RevokeRequestBody>>,
) -> Result<Json<CredentialView>, ApiError> {
    let Authed(PortalUser(principal), body) = request;
    let b = body.0;
    let summary =
        run(&services, L, move |s| issuance::revoke_own(s, &principal, &id, &b.otp, b.reason.as_deref())).await?;
    Ok(Json(CredentialView::new(summary)))
}

//! Packages and orders: the catalogue, an order, its invoice data.

use actix_web::web::{Data, Json, Path};
use actix_web::{get, post, put, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{portal_principal, run, Authed, CscJson, PortalUser};
use crate::api::lifecycle_types::{OrderView, OrdersResponse};
use crate::domain::enrolment::Invoice;
use crate::domain::{CredentialId, OrderId, Purpose};
use crate::service::orders::{self, NewOrder};
use crate::service::Services;

use super::{L, TAG};

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
        b.purpose.parse::<Purpose>().map_err(|_| ApiError::invalid_request("purpose: issuance, rekey or reissue"))?;
    let order = NewOrder {
        package_id: b.package_id,
        purpose,
        credential_id: b.credential_id.map(CredentialId::from),
        invoice: b.invoice,
    };
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
    id: Path<OrderId>,
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
    id: Path<OrderId>,
    request: Authed<PortalUser, CscJson<Invoice>>,
) -> Result<Json<OrderView>, ApiError> {
    let Authed(PortalUser(principal), body) = request;
    let row = run(&services, L, move |s| orders::update_invoice(s, &principal, &id, body.0)).await?;
    Ok(Json(row.into()))
}

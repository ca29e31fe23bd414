//! Identity checks, and what a rekey order submits for its check: personal data and an identity
//! document.

use actix_web::web::{Data, Json, Path};
use actix_web::{get, post, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{decode_base64, portal_principal, run, Authed, CscJson, PortalUser, UploadJson};
use crate::api::lifecycle_types::{IdentityCheckView, IdentityChecksResponse, OrderView};
use crate::domain::OrderId;
use crate::service::orders;
use crate::service::{identity, Services};

use super::{L, TAG};

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
    id: Path<OrderId>,
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
    id: Path<OrderId>,
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

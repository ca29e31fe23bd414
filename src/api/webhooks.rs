//! Webhooks of the payment and video-identification providers, authenticated by an HMAC-SHA256 of the
//! raw body in `X-Rssp-Signature: sha256=<hex>`. A redelivered event changes nothing.

use actix_web::web::{Data, Json};
use actix_web::{post, HttpRequest};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, Dialect, ErrorBody};
use super::extract::{run, RawBody};
use crate::domain::OrderStatus;
use crate::service::{webhooks, Services};

const TAG: &str = "Webhooks";
pub const SIGNATURE_HEADER: &str = "x-rssp-signature";

fn signature(req: &HttpRequest) -> Option<String> {
    req.headers().get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentWebhookResponse {
    pub order_id: String,
    pub status: OrderStatus,
    /// True when this event was handled before (nothing changed now).
    pub duplicate: bool,
}

/// The payment provider confirms a payment: `{"event_id","payment_ref","status":"paid","amount_cents","currency"}`.
#[utoipa::path(post, tag = TAG, request_body(content = String, description = "The event as JSON", content_type = "application/json"),
    params(("X-Rssp-Signature" = String, Header, description = "sha256=<hex HMAC-SHA256 of the body>")),
    responses((status = 200, body = PaymentWebhookResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[post("/webhooks/payments")]
pub async fn payments(
    services: Data<Services>,
    req: HttpRequest,
    body: RawBody,
) -> Result<Json<PaymentWebhookResponse>, ApiError> {
    let signature = signature(&req);
    let outcome =
        run(&services, Dialect::Lifecycle, move |s| webhooks::payment_webhook(s, &body.0, signature.as_deref()))
            .await?;
    Ok(Json(PaymentWebhookResponse {
        order_id: outcome.order_id.into(),
        status: outcome.status,
        duplicate: outcome.duplicate,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityWebhookResponse {
    pub check_id: String,
    pub status: String,
    pub duplicate: bool,
}

/// The identification provider's verdict: `{"event_id","check_id","result":"accepted"|"rejected","reasons":[...]}`.
#[utoipa::path(post, tag = TAG, request_body(content = String, description = "The event as JSON", content_type = "application/json"),
    params(("X-Rssp-Signature" = String, Header, description = "sha256=<hex HMAC-SHA256 of the body>")),
    responses((status = 200, body = IdentityWebhookResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/webhooks/identity")]
pub async fn identity(
    services: Data<Services>,
    req: HttpRequest,
    body: RawBody,
) -> Result<Json<IdentityWebhookResponse>, ApiError> {
    let signature = signature(&req);
    let outcome =
        run(&services, Dialect::Lifecycle, move |s| webhooks::identity_webhook(s, &body.0, signature.as_deref()))
            .await?;
    Ok(Json(IdentityWebhookResponse {
        check_id: outcome.check_id,
        status: outcome.status,
        duplicate: outcome.duplicate,
    }))
}

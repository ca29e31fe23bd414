//! Paying an order on the payment provider's page.

use actix_web::web::{Data, Json, Path};
use actix_web::{post, HttpRequest};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{portal_principal, run};
use crate::domain::OrderId;
use crate::service::orders;
use crate::service::Services;

use super::{L, TAG};

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
    id: Path<OrderId>,
) -> Result<Json<PaymentResponse>, ApiError> {
    let principal = portal_principal(&services, &req).await?;
    let started = run(&services, L, move |s| orders::start_payment(s, &principal, &id)).await?;
    Ok(Json(PaymentResponse {
        order_id: started.order.id.into(),
        payment_ref: started.order.payment_ref.unwrap_or_default(),
        payment_url: started.payment_url,
        gross_cents: started.order.gross_cents,
        currency: started.order.currency,
    }))
}

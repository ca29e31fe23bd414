//! The providers' webhooks: the payment provider marks an order paid (and a first certificate's
//! identity check opens), the video-identification provider decides an identity check or an
//! authenticator reset. Each event is authenticated by its HMAC signature and handled once, however
//! often it is delivered. This module uses orders, identity and authenticator, so that those need not
//! use each other.

use crate::audit;
use crate::db::orders as store;
use crate::db::{self, accounts};
use crate::domain::secrets;
use crate::domain::{AuditEventName, CheckStatus, OrderId, OrderStatus, Purpose};
use crate::notify::{self, templates};
use secrecy::{ExposeSecret, SecretString};

use super::identity::{self, decide_once};
use super::identity_provider::Decision;
use super::orders::changed_meanwhile;
use super::{audited, Field, ServiceError, Services};

/// Checks a webhook's signature and parses its body.
fn signed_event<T: serde::de::DeserializeOwned>(
    secret: Option<&SecretString>,
    body: &[u8],
    signature: Option<&str>,
) -> Result<T, ServiceError> {
    let secret = secret.ok_or_else(|| ServiceError::Forbidden("This webhook is not configured".into()))?;
    if !signature.is_some_and(|s| secrets::verify_webhook_signature(secret.expose_secret(), body, s)) {
        return Err(ServiceError::InvalidToken);
    }
    serde_json::from_slice(body).map_err(|e| ServiceError::InvalidRequest(format!("Malformed event: {e}")))
}

/// The payment provider's status of a completed payment (its protocol's word; anything else it sends
/// is recorded and changes nothing).
const PROVIDER_PAID: &str = "paid";

/// The payment provider's confirmation, once its signature is checked.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentEvent {
    pub event_id: String,
    pub payment_ref: String,
    /// `paid`; anything else is recorded and changes nothing.
    pub status: String,
    pub amount_cents: i64,
    pub currency: String,
}

#[derive(Debug, Clone)]
pub struct PaymentOutcome {
    pub order_id: OrderId,
    pub status: OrderStatus,
    pub duplicate: bool,
}

/// `POST /webhooks/payments`: marks the order paid (once, however often the event is delivered), and
/// for a new certificate starts the identity verification.
pub fn payment_webhook(
    services: &Services,
    body: &[u8],
    signature: Option<&str>,
) -> Result<PaymentOutcome, ServiceError> {
    audited(services, AuditEventName::WebhookPayment, None, || {
        let event: PaymentEvent = signed_event(services.webhook_secrets.payments.as_ref(), body, signature)?;
        if event.event_id.is_empty() || event.event_id.len() > 128 {
            return Err(ServiceError::invalid_field(Field::EventId, "1 to 128 characters"));
        }
        let now = services.now();
        let mut conn = services.conn()?;
        db::write_transaction(&mut conn, |c| {
            let mut order = store::by_payment_ref(c, &event.payment_ref)?
                .ok_or_else(|| ServiceError::NotFound("No order with this payment_ref".into()))?;
            if !store::first_delivery(c, &format!("payment:{}", event.event_id), &order.id, now)? {
                return Ok(PaymentOutcome { order_id: order.id.into(), status: order.status, duplicate: true });
            }
            if event.status != PROVIDER_PAID {
                audit::success(
                    c,
                    now,
                    AuditEventName::WebhookPayment,
                    Some(&order.user_id),
                    None,
                    format!("order {} payment {}", order.id, event.status),
                )?;
                return Ok(PaymentOutcome { order_id: order.id.into(), status: order.status, duplicate: false });
            }
            if event.amount_cents != order.gross_cents || event.currency != order.currency {
                return Err(ServiceError::InvalidRequest(format!(
                    "The amount does not match the order: expected {} {}",
                    order.gross_cents, order.currency
                )));
            }
            if order.status != OrderStatus::AwaitingPayment {
                return Err(ServiceError::Conflict(format!("The order is {}", order.status)));
            }
            order.status = OrderStatus::Paid;
            order.paid_at = Some(now);
            if !store::update_if(c, &order, OrderStatus::AwaitingPayment)? {
                return Err(changed_meanwhile());
            }
            let account =
                accounts::by_id(c, &order.user_id)?.ok_or_else(|| ServiceError::invariant("order without account"))?;
            if let Some(email) = &account.email {
                notify::enqueue(
                    c,
                    &services.config,
                    now,
                    Some(&account.id),
                    templates::payment_received(email, &order.id, order.gross_cents, &order.currency),
                )?;
            }
            if order.purpose != Purpose::Rekey {
                identity::open_check(services, c, &order, account.email.as_deref(), now)?;
            }
            audit::success(
                c,
                now,
                AuditEventName::WebhookPayment,
                Some(&order.user_id),
                None,
                format!("order {} paid", order.id),
            )?;
            Ok(PaymentOutcome { order_id: order.id.into(), status: order.status, duplicate: false })
        })
    })
}

/// The identification provider's verdict.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityEvent {
    pub event_id: String,
    pub check_id: String,
    /// `accepted` or `rejected`.
    pub result: String,
    #[serde(default)]
    pub reasons: Vec<String>,
}

/// What the identity webhook did: the check decided, its status now, and whether it was a redelivery.
#[derive(Debug, Clone)]
pub struct WebhookOutcome {
    pub check_id: String,
    pub status: String,
    pub duplicate: bool,
}

/// `POST /webhooks/identity`. A redelivered event changes nothing and says so. The check is an order's,
/// or an authenticator reset's (see `authenticator`).
pub fn identity_webhook(
    services: &Services,
    body: &[u8],
    signature: Option<&str>,
) -> Result<WebhookOutcome, ServiceError> {
    let event: IdentityEvent = audited(services, AuditEventName::WebhookIdentity, None, || {
        let event: IdentityEvent = signed_event(services.webhook_secrets.identity.as_ref(), body, signature)?;
        if event.event_id.is_empty() || event.event_id.len() > 128 {
            return Err(ServiceError::invalid_field(Field::EventId, "1 to 128 characters"));
        }
        Ok(event)
    })?;
    let decision = match event.result.parse::<CheckStatus>() {
        Ok(CheckStatus::Accepted) => Decision::Accept,
        Ok(CheckStatus::Rejected) => Decision::Reject { reasons: event.reasons.clone() },
        _ => return Err(ServiceError::invalid_field(Field::Result, "accepted or rejected")),
    };
    let key = format!("identity:{}", event.event_id);
    let by = "identification provider";
    let is_reset = {
        let mut conn = services.conn()?;
        store::check(&mut conn, &event.check_id)?.is_none()
            && crate::db::resets::by_id(&mut conn, &event.check_id)?.is_some()
    };
    if is_reset {
        decision.check_reasons()?;
        let (reset, duplicate) =
            super::authenticator::decide_reset(services, &event.check_id, &decision, by, Some(&key))?;
        return Ok(WebhookOutcome { check_id: reset.id, status: reset.status.as_str().to_string(), duplicate });
    }
    let (check, duplicate, _) = decide_once(services, &event.check_id, decision, by, Some(&key))?;
    Ok(WebhookOutcome { check_id: check.id, status: check.status.to_string(), duplicate })
}

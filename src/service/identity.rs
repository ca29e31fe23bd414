//! Identity verification after payment: a check per attempt, decided by the video-identification
//! provider's signed webhook or by an operator. A rejection opens a new check with a new link.

use crate::audit;
use crate::db::orders::{self as store, IdentityCheckRow, OrderRow};
use crate::db::{self, accounts, DbConnection};
use crate::notify::{self, templates};

use super::orders::signed_event;
use super::{audited, Principal, ServiceError, Services};

pub const PENDING: &str = "pending";
pub const ACCEPTED: &str = "accepted";
pub const REJECTED: &str = "rejected";

/// The provider's page for a check.
pub fn session_url(services: &Services, check_id: &str) -> String {
    services.config.identity.session_url.replace("{check_id}", check_id)
}

/// Opens a pending check for the order and e-mails the link (inside the caller's transaction).
pub(super) fn open_check(
    services: &Services,
    conn: &mut DbConnection,
    order: &OrderRow,
    email: Option<&str>,
    now: i64,
) -> Result<IdentityCheckRow, ServiceError> {
    let row = IdentityCheckRow {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: order.user_id.clone(),
        order_id: order.id.clone(),
        status: PENDING.into(),
        reasons: None,
        decided_by: None,
        created_at: now,
        decided_at: None,
    };
    store::insert_check(conn, &row)?;
    if let Some(email) = email {
        notify::enqueue(
            conn,
            &services.config,
            now,
            Some(&order.user_id),
            templates::identification(email, &session_url(services, &row.id)),
        )?;
    }
    Ok(row)
}

pub fn checks_of(services: &Services, principal: &Principal) -> Result<Vec<IdentityCheckRow>, ServiceError> {
    Ok(store::checks_of_user(&mut *services.conn()?, &principal.user_id)?)
}

/// An operator's or the provider's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accept,
    Reject { reasons: Vec<String> },
}

impl Decision {
    /// Refuses rejection reasons that are empty, too long or too many.
    pub(super) fn check_reasons(&self) -> Result<(), ServiceError> {
        if let Decision::Reject { reasons } = self {
            if reasons.len() > 20 || reasons.iter().any(|r| r.trim().is_empty() || r.chars().count() > 200) {
                return Err(ServiceError::InvalidRequest("reasons: up to 20 reasons of 1 to 200 characters".into()));
            }
        }
        Ok(())
    }
}

/// Decides a pending check. Accepting lets issuance go ahead; rejecting opens a new check. Both e-mail the person.
pub fn decide(
    services: &Services,
    check_id: &str,
    decision: Decision,
    decided_by: &str,
) -> Result<IdentityCheckRow, ServiceError> {
    decide_once(services, check_id, decision, decided_by, None).map(|(check, _)| check)
}

/// Decides a check; with `event_key`, only on the event's first delivery (the bool says it was a redelivery).
fn decide_once(
    services: &Services,
    check_id: &str,
    decision: Decision,
    decided_by: &str,
    event_key: Option<&str>,
) -> Result<(IdentityCheckRow, bool), ServiceError> {
    audited(services, "identity.decision", None, || {
        decision.check_reasons()?;
        let now = services.now();
        db::write_transaction(&mut *services.conn()?, |c| {
            let check =
                store::check(c, check_id)?.ok_or_else(|| ServiceError::NotFound("No such identity check".into()))?;
            if let Some(key) = event_key {
                if !store::first_delivery(c, key, &check.id, now)? {
                    return Ok((check, true));
                }
            }
            let (status, reasons) = match &decision {
                Decision::Accept => (ACCEPTED, None),
                Decision::Reject { reasons } => (REJECTED, Some(reasons.join("\n"))),
            };
            if !store::decide(c, &check.id, status, reasons.as_deref(), decided_by, now)? {
                return Err(ServiceError::Conflict(format!("The identity check was already {}", check.status)));
            }
            let order =
                store::by_id(c, &check.order_id)?.ok_or_else(|| ServiceError::internal("check without order"))?;
            let email = accounts::by_id(c, &check.user_id)?.and_then(|a| a.email);
            match (&decision, email.as_deref()) {
                (Decision::Accept, Some(email)) => {
                    notify::enqueue(
                        c,
                        &services.config,
                        now,
                        Some(&check.user_id),
                        templates::identity_accepted(email),
                    )?;
                }
                (Decision::Reject { reasons }, email) => {
                    // The next attempt gets a check (and link) of its own; the e-mail carries the reasons and the link.
                    let next = open_check(services, c, &order, None, now)?;
                    if let Some(email) = email {
                        notify::enqueue(
                            c,
                            &services.config,
                            now,
                            Some(&check.user_id),
                            templates::identity_rejected(email, reasons, &session_url(services, &next.id)),
                        )?;
                    }
                }
                (Decision::Accept, None) => {}
            }
            audit::success(
                c,
                now,
                "identity.decision",
                Some(&check.user_id),
                None,
                format!("check {} {status} by {decided_by}", check.id),
            )?;
            Ok((store::check(c, &check.id)?.unwrap_or(check), false))
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
    let event: IdentityEvent = audited(services, "webhook.identity", None, || {
        let event: IdentityEvent = signed_event(services.webhook_secrets.identity.as_deref(), body, signature)?;
        if event.event_id.is_empty() || event.event_id.len() > 128 {
            return Err(ServiceError::InvalidRequest("event_id: 1 to 128 characters".into()));
        }
        Ok(event)
    })?;
    let decision = match event.result.as_str() {
        "accepted" => Decision::Accept,
        "rejected" => Decision::Reject { reasons: event.reasons.clone() },
        _ => return Err(ServiceError::InvalidRequest("result: accepted or rejected".into())),
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
    let (check, duplicate) = decide_once(services, &event.check_id, decision, by, Some(&key))?;
    Ok(WebhookOutcome { check_id: check.id, status: check.status, duplicate })
}

//! Identity verification after payment: a check per attempt, decided by the video-identification
//! provider's signed webhook or by an operator. A rejection opens a new check with a new link.
//!
//! A submitted rekey is a check too (kind `rekey`), decided the same ways: acceptance issues the new
//! key and certificate with the submitted names; rejection e-mails the reasons and lets the person
//! submit again while the rekey window is open.

use crate::audit;
use crate::db::orders::{self as store, IdentityCheckRow, OrderRow};
use crate::db::{self, accounts, credentials, DbConnection};
use crate::domain::renewal::RekeyWindow;
use crate::domain::KeyKind;
use crate::domain::{AuditEventName, CheckId, CheckKind, CheckStatus, OrderStatus};
use crate::notify::{self, templates};

use super::identity_provider::{session_url, Decision};
use super::issuance::{self, CredentialSummary, SubjectNames};
use super::orders::check_rekey_window;
use super::views::IdentityCheck;
use super::{audited, Principal, ServiceError, Services};

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
        status: CheckStatus::Pending,
        reasons: None,
        decided_by: None,
        created_at: now,
        decided_at: None,
        kind: CheckKind::Identity,
        given_name: None,
        surname: None,
        document_id: None,
        key_type: None,
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

/// Opens the check of a submitted rekey, with a snapshot of what was submitted (inside the caller's
/// transaction).
pub(super) fn open_rekey_check(
    conn: &mut DbConnection,
    order: &OrderRow,
    names: &SubjectNames,
    document_id: &str,
    kind: KeyKind,
    now: i64,
) -> Result<IdentityCheckRow, ServiceError> {
    let row = IdentityCheckRow {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: order.user_id.clone(),
        order_id: order.id.clone(),
        status: CheckStatus::Pending,
        reasons: None,
        decided_by: None,
        created_at: now,
        decided_at: None,
        kind: CheckKind::Rekey,
        given_name: Some(names.given_name.clone()),
        surname: Some(names.surname.clone()),
        document_id: Some(document_id.to_string()),
        key_type: Some(kind.to_string()),
    };
    store::insert_check(conn, &row)?;
    Ok(row)
}

pub fn checks_of(services: &Services, principal: &Principal) -> Result<Vec<IdentityCheck>, ServiceError> {
    Ok(store::checks_of_user(&mut *services.conn()?, &principal.user_id)?
        .into_iter()
        .map(IdentityCheck::from)
        .collect())
}

/// Decides a pending check. Accepting lets issuance go ahead (for a rekey: issues the new key and
/// certificate); rejecting opens a new check (for a rekey: lets the person submit again). Both e-mail
/// the person.
pub fn decide(
    services: &Services,
    check_id: &CheckId,
    decision: Decision,
    decided_by: &str,
) -> Result<IdentityCheck, ServiceError> {
    decide_once(services, check_id, decision, decided_by, None).map(|(check, _, _)| check.into())
}

/// Accepts a rekey check at once (the auto-accept policy for unchanged personal data).
pub(super) fn decide_rekey_now(
    services: &Services,
    check_id: &str,
    decided_by: &str,
) -> Result<(IdentityCheckRow, Option<CredentialSummary>), ServiceError> {
    decide_once(services, check_id, Decision::Accept, decided_by, None).map(|(check, _, issued)| (check, issued))
}

/// Decides a check; with `event_key`, only on the event's first delivery (the bool says it was a
/// redelivery). An accepted rekey is issued after the decision's transaction, which reserved it.
pub(super) fn decide_once(
    services: &Services,
    check_id: &str,
    decision: Decision,
    decided_by: &str,
    event_key: Option<&str>,
) -> Result<(IdentityCheckRow, bool, Option<CredentialSummary>), ServiceError> {
    audited(services, AuditEventName::IdentityDecision, None, || {
        decision.check_reasons()?;
        let now = services.now();
        // Each step takes its own connection: issuing the rekey takes one too.
        let (check, duplicate, issue_now) =
            db::write_transaction(&mut *services.conn()?, |c| -> Result<_, ServiceError> {
                let check = store::check(c, check_id)?
                    .ok_or_else(|| ServiceError::NotFound("No such identity check".into()))?;
                if let Some(key) = event_key {
                    if !store::first_delivery(c, key, &check.id, now)? {
                        return Ok((check, true, false));
                    }
                }
                if check.kind == CheckKind::Rekey {
                    let issue_now = decide_rekey_in(services, c, &check, &decision, decided_by, now)?;
                    return Ok((check, false, issue_now));
                }
                decide_identity_in(services, c, &check, &decision, decided_by, now)?;
                Ok((check, false, false))
            })?;
        let issued = if issue_now {
            match issuance::complete_accepted_rekey(services, &check) {
                Ok(summary) => Some(summary),
                Err(e) => {
                    // The acceptance was undone: a redelivery of the same event may try again.
                    if let Some(key) = event_key {
                        let _ = db::write_transaction(&mut *services.conn()?, |c| store::forget_delivery(c, key));
                    }
                    return Err(e);
                }
            }
        } else {
            None
        };
        let check = store::check(&mut *services.conn()?, &check.id)?.unwrap_or(check);
        Ok((check, duplicate, issued))
    })
}

/// The verdict on an identity check of an issuance or reissue (inside the decision's transaction).
fn decide_identity_in(
    services: &Services,
    c: &mut DbConnection,
    check: &IdentityCheckRow,
    decision: &Decision,
    decided_by: &str,
    now: i64,
) -> Result<(), ServiceError> {
    let (status, reasons) = match decision {
        Decision::Accept => (CheckStatus::Accepted, None),
        Decision::Reject { reasons } => (CheckStatus::Rejected, Some(reasons.join("\n"))),
    };
    if !store::decide(c, &check.id, status, reasons.as_deref(), decided_by, now)? {
        return Err(ServiceError::Conflict(format!("The identity check was already {}", check.status)));
    }
    let order = store::by_id(c, &check.order_id)?.ok_or_else(|| ServiceError::invariant("check without order"))?;
    let email = accounts::by_id(c, &check.user_id)?.and_then(|a| a.email);
    match (decision, email.as_deref()) {
        (Decision::Accept, Some(email)) => {
            notify::enqueue(c, &services.config, now, Some(&check.user_id), templates::identity_accepted(email))?;
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
        AuditEventName::IdentityDecision,
        Some(&check.user_id),
        None,
        format!("check {} {status} by {decided_by}", check.id),
    )?;
    Ok(())
}

/// The verdict on a submitted rekey (inside the decision's transaction). Acceptance needs the rekey
/// window still open and reserves the order for the issuance (true: issue now); rejection stores
/// the reasons, e-mails them, and puts the order back to paid so the person can submit again.
fn decide_rekey_in(
    services: &Services,
    c: &mut DbConnection,
    check: &IdentityCheckRow,
    decision: &Decision,
    decided_by: &str,
    now: i64,
) -> Result<bool, ServiceError> {
    let order = store::by_id(c, &check.order_id)?.ok_or_else(|| ServiceError::invariant("check without order"))?;
    let old_id =
        order.credential_id.as_deref().ok_or_else(|| ServiceError::invariant("rekey order without credential"))?;
    let old = credentials::by_id(c, old_id)?.ok_or_else(|| ServiceError::invariant("rekey of a missing credential"))?;
    let (status, reasons) = match decision {
        Decision::Accept => (CheckStatus::Accepted, None),
        Decision::Reject { reasons } => (CheckStatus::Rejected, Some(reasons.join("\n"))),
    };
    if !store::decide(c, &check.id, status, reasons.as_deref(), decided_by, now)? {
        return Err(ServiceError::Conflict(format!("The identity check was already {}", check.status)));
    }
    let email = accounts::by_id(c, &check.user_id)?.and_then(|a| a.email);
    let issue_now = match decision {
        Decision::Accept => {
            // A window that closed while the rekey waited cannot be reopened by a decision.
            check_rekey_window(services, &old, now)?;
            issuance::reserve(c, &order.id, OrderStatus::AwaitingDecision)?;
            true
        }
        Decision::Reject { reasons } => {
            if !store::transition(c, &order.id, OrderStatus::AwaitingDecision, OrderStatus::Paid)? {
                return Err(ServiceError::Conflict(format!("The order is {}", order.status)));
            }
            if let Some(email) = email.as_deref() {
                let window =
                    RekeyWindow::for_expiry(old.not_after, services.config.lifecycle.rekey_window_closes_hours);
                notify::enqueue(
                    c,
                    &services.config,
                    now,
                    Some(&check.user_id),
                    templates::rekey_rejected(email, &order.id, reasons, window.closes_at),
                )?;
            }
            false
        }
    };
    audit::success(
        c,
        now,
        AuditEventName::IdentityDecision,
        Some(&check.user_id),
        Some(&old.id),
        format!("rekey check {} of order {} {status} by {decided_by}", check.id, order.id),
    )?;
    Ok(issue_now)
}

//! The lifecycle's scheduled work: rekey notices before expiry (each sent once), rekey orders that
//! were paid but not completed before the old certificate expired, which are marked for refund, and
//! the CRLs, published again before their nextUpdate, and document signing sessions past their time,
//! deleted with their files.
//! Every node may run it: each effect is guarded by a conditional write.

use crate::audit;
use crate::db::orders as store;
use crate::db::{self, accounts, credentials};
use crate::domain::renewal::{self, RekeyWindow};
use crate::domain::{AuditEventName, OrderStatus};
use crate::notify::{self, templates};

use super::{ServiceError, Services};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobReport {
    pub rekey_notices_sent: usize,
    pub orders_marked_for_refund: usize,
    pub crls_published: usize,
    pub ocsp_responder_renewed: bool,
    pub signing_sessions_deleted: usize,
}

pub fn run(services: &Services) -> Result<JobReport, ServiceError> {
    let now = services.now();
    let lifecycle = &services.config.lifecycle;
    // Before taking a connection here: publishing takes its own, one at a time.
    let mut report = JobReport {
        crls_published: super::ca::refresh_crls(services)?,
        // A failed renewal is retried at the next run, and does not hold up the rest of the work.
        ocsp_responder_renewed: super::ocsp::renew_responder_if_due(services).unwrap_or_else(|e| {
            tracing::error!(error = %crate::telemetry::error_chain(&e), "renewing the OCSP responder certificate");
            false
        }),
        // Logged there, retried at the next run, and does not hold up the rest of the work.
        signing_sessions_deleted: super::signing_sessions::delete_expired(services).unwrap_or(0),
        ..JobReport::default()
    };
    let mut conn = services.conn()?;
    let horizon = lifecycle.rekey_notice_days.iter().copied().max().unwrap_or(0) * 86_400;
    for row in credentials::expiring_between(&mut conn, now, now + horizon)? {
        let Some(days) = renewal::due_notice(row.not_after, now, &lifecycle.rekey_notice_days) else {
            continue;
        };
        let sent = db::write_transaction(&mut conn, |c| -> Result<bool, ServiceError> {
            let days = i32::try_from(days).map_err(ServiceError::internal)?;
            if !credentials::first_rekey_notice(c, &row.id, days, now)? {
                return Ok(false);
            }
            if let Some(email) = accounts::by_id(c, &row.user_id)?.and_then(|a| a.email) {
                let window = RekeyWindow::for_expiry(row.not_after, lifecycle.rekey_window_closes_hours);
                let notice = templates::rekey_notice(
                    &email,
                    &row.serial_hex.to_uppercase(),
                    row.not_after,
                    i64::from(days),
                    window.closes_at,
                );
                notify::enqueue(c, &services.config, now, Some(&row.user_id), notice)?;
            }
            audit::success(
                c,
                now,
                AuditEventName::CredentialRekeyNotice,
                Some(&row.user_id),
                Some(&row.id),
                format!("{days} days before expiry"),
            )?;
            Ok(true)
        })?;
        report.rekey_notices_sent += usize::from(sent);
    }
    for order in store::stranded_rekeys(&mut conn, now)? {
        let marked = db::write_transaction(&mut conn, |c| -> Result<bool, ServiceError> {
            // Paid, or submitted and still waiting for its decision (which can no longer accept it).
            if !store::transition(c, &order.id, order.status, OrderStatus::RefundDue)? {
                return Ok(false);
            }
            if let Some(email) = accounts::by_id(c, &order.user_id)?.and_then(|a| a.email) {
                notify::enqueue(
                    c,
                    &services.config,
                    now,
                    Some(&order.user_id),
                    templates::refund_due(&email, &order.id),
                )?;
            }
            audit::success(
                c,
                now,
                AuditEventName::OrderRefundDue,
                Some(&order.user_id),
                order.credential_id.as_deref(),
                format!("order {}: certificate expired before the rekey", order.id),
            )?;
            Ok(true)
        })?;
        report.orders_marked_for_refund += usize::from(marked);
    }
    Ok(report)
}

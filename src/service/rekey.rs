//! Rekey submission: what a person submits to have a credential rekeyed before it expires. It opens
//! the rekey's identity check; the new key and certificate are issued when the check is accepted
//! (`identity` decides, `issuance` issues), at once when the policy accepts unchanged personal data.

use crate::audit;
use crate::db;
use crate::db::orders::{self as store, OrderRow};
use crate::notify::{self, templates};
use secrecy::{ExposeSecret, SecretString};

use super::accounts::require_second_factor_ready;
use super::issuance::{key_kind, owned_credential, CredentialSummary, SubjectNames};
use super::orders::{check_rekey_window, owned_order, Purpose, AWAITING_DECISION, PAID};
use super::{audited, authenticator, identity, second_factor, Principal, ServiceError, Services};

/// What a person sends to rekey a credential.
#[derive(Debug, Clone)]
pub struct RekeyRequest {
    pub credential_id: String,
    pub order_id: String,
    pub otp: SecretString,
    pub key_type: Option<String>,
}

/// Where a submitted rekey stands.
#[derive(Debug, Clone)]
pub enum RekeyOutcome {
    /// Submitted: the rekey's identity check waits for the operator or the provider.
    AwaitingDecision { order: Box<OrderRow>, check: Box<store::IdentityCheckRow> },
    /// Accepted at once (unchanged personal data, with `lifecycle.rekey_auto_accept_unchanged`).
    Issued(Box<CredentialSummary>),
}

/// Rekey submission: a paid rekey order for this credential, personal data confirmed, identity
/// document uploaded, inside the window, signed with a TOTP code. Nothing is generated now: the
/// submission opens an identity check of kind `rekey` with what was submitted, and the new key and
/// certificate are issued when that check is accepted (see `issuance::complete_accepted_rekey`). A rekey whose
/// personal data did not change also waits, unless `lifecycle.rekey_auto_accept_unchanged` is set.
pub fn submit(services: &Services, principal: &Principal, request: RekeyRequest) -> Result<RekeyOutcome, ServiceError> {
    let submitted = audited(services, "credential.rekey", Some(&principal.user_id), || {
        let now = services.now();
        let mut conn = services.conn()?;
        let account = require_second_factor_ready(services, &mut conn, principal)?;
        let old = owned_credential(&mut conn, principal, &request.credential_id)?;
        check_rekey_window(services, &old, now)?;
        let order = owned_order(&mut conn, principal, &request.order_id)?;
        if order.purpose != Purpose::Rekey.as_str() || order.credential_id.as_deref() != Some(old.id.as_str()) {
            return Err(ServiceError::Conflict("The order is not a rekey of this credential".into()));
        }
        if order.status == AWAITING_DECISION {
            return Err(ServiceError::Conflict("The rekey was submitted and waits for a decision".into()));
        }
        if order.status != PAID {
            return Err(ServiceError::Conflict(format!("The order is {}; it must be paid", order.status)));
        }
        let (Some(given_name), Some(surname)) = (&order.requested_given_name, &order.requested_surname) else {
            return Err(ServiceError::Conflict("Confirm the personal data of the order first".into()));
        };
        if !order.personal_data_confirmed {
            return Err(ServiceError::Conflict("Confirm the personal data of the order first".into()));
        }
        let Some(document_id) = order.requested_document_id.clone() else {
            return Err(ServiceError::Conflict("Upload a copy of the identity document first".into()));
        };
        let kind = key_kind(services, request.key_type.as_deref())?;
        authenticator::require_signing_allowed(&mut conn, &account.id)?;
        second_factor::verify_otp(services, &mut conn, &account.id, request.otp.expose_secret())?;
        let unchanged = account.given_name.as_deref() == Some(given_name.as_str())
            && account.surname.as_deref() == Some(surname.as_str());
        let names = SubjectNames { given_name: given_name.clone(), surname: surname.clone() };
        let check = db::write_transaction(&mut conn, |c| {
            if !store::transition(c, &order.id, PAID, AWAITING_DECISION)? {
                return Err(ServiceError::Conflict("The order was changed by another request meanwhile".into()));
            }
            let check = identity::open_rekey_check(c, &order, &names, &document_id, kind, now)?;
            if let Some(email) = &account.email {
                notify::enqueue(
                    c,
                    &services.config,
                    now,
                    Some(&account.id),
                    templates::rekey_submitted(email, &order.id),
                )?;
            }
            audit::success(
                c,
                now,
                "rekey.submitted",
                Some(&account.id),
                Some(&old.id),
                format!(
                    "order {} check {} document {document_id} key {kind}; personal data {}",
                    order.id,
                    check.id,
                    if unchanged { "unchanged" } else { "changed" }
                ),
            )?;
            Ok(check)
        })?;
        let order = store::by_id(&mut conn, &order.id)?.ok_or_else(|| ServiceError::invariant("order vanished"))?;
        Ok((order, check, unchanged))
    })?;
    let (order, check, unchanged) = submitted;
    if unchanged && services.config.lifecycle.rekey_auto_accept_unchanged {
        let by = "rekey policy: unchanged personal data";
        let (_, issued) = identity::decide_rekey_now(services, &check.id, by)?;
        let summary = issued.ok_or_else(|| ServiceError::invariant("an accepted rekey issued nothing"))?;
        return Ok(RekeyOutcome::Issued(Box::new(summary)));
    }
    Ok(RekeyOutcome::AwaitingDecision { order: Box::new(order), check: Box::new(check) })
}

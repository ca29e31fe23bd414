//! Packages and orders: the catalogue, an order with invoice data, payment through the provider's
//! page (its webhook is handled in `webhooks`), and what a rekey order needs (personal data, identity
//! document).

use sha2::{Digest, Sha256};

use crate::audit;
use crate::config::PackageConfig;
use crate::db::orders::{self as store, IdentityDocumentRow, OrderRow};
use crate::db::{self, accounts, credentials, DbConnection};
use crate::domain::documents::{self, DocumentType};
use crate::domain::enrolment::{self, Invoice};
use crate::domain::renewal::RekeyWindow;
use crate::domain::secrets;
use crate::domain::{AuditEventName, CredentialId, OrderId, OrderStatus, Purpose};

use super::accounts::require_second_factor_ready;
use super::views::{IdentityDocument, Order};
use super::{audited, Field, Principal, ServiceError, Services};

/// A package with its price including VAT.
#[derive(Debug, Clone)]
pub struct PackageView {
    pub package: PackageConfig,
    pub vat_cents: i64,
    pub gross_cents: i64,
}

pub fn catalogue(services: &Services) -> Vec<PackageView> {
    let vat = services.config.lifecycle.vat_percent;
    services
        .config
        .lifecycle
        .packages
        .iter()
        .map(|p| {
            let vat_cents = enrolment::vat_cents(p.net_cents, vat);
            PackageView { package: p.clone(), vat_cents, gross_cents: p.net_cents + vat_cents }
        })
        .collect()
}

/// What a person sends to order a package.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub package_id: String,
    pub purpose: Purpose,
    pub credential_id: Option<CredentialId>,
    pub invoice: Invoice,
}

pub(super) fn owned_order(
    conn: &mut DbConnection,
    principal: &Principal,
    order_id: &str,
) -> Result<OrderRow, ServiceError> {
    if order_id.len() > 64 {
        return Err(ServiceError::NotFound("No such order".into()));
    }
    store::owned_by(conn, &principal.user_id, order_id)?.ok_or_else(|| ServiceError::NotFound("No such order".into()))
}

/// The rekey window of a credential, refusing when it is closed (then only a reissue helps).
pub(super) fn check_rekey_window(
    services: &Services,
    credential: &credentials::CredentialRow,
    now: i64,
) -> Result<(), ServiceError> {
    if credential.revoked_at.is_some() || credential.not_after <= now {
        return Err(ServiceError::ReissueRequired(
            "The certificate is expired or revoked and cannot be rekeyed; order a reissue".into(),
        ));
    }
    if credential.replaced_by.is_some() {
        return Err(ServiceError::Conflict("The certificate was already rekeyed".into()));
    }
    let window = RekeyWindow::for_expiry(credential.not_after, services.config.lifecycle.rekey_window_closes_hours);
    if !window.is_open(now) {
        return Err(ServiceError::ReissueRequired(format!(
            "The rekey window closed {} hours before expiry; order a reissue",
            services.config.lifecycle.rekey_window_closes_hours
        )));
    }
    Ok(())
}

pub fn create(services: &Services, principal: &Principal, order: NewOrder) -> Result<Order, ServiceError> {
    audited(services, AuditEventName::OrderCreate, Some(&principal.user_id), || {
        let now = services.now();
        let lifecycle = &services.config.lifecycle;
        let mut conn = services.conn()?;
        require_second_factor_ready(services, &mut conn, principal)?;
        if !accounts::has_consent(&mut conn, &principal.user_id, "terms", &lifecycle.terms_version)? {
            return Err(ServiceError::Forbidden(format!(
                "Accept the terms (version {}) first",
                lifecycle.terms_version
            )));
        }
        let package = lifecycle
            .packages
            .iter()
            .find(|p| p.id == order.package_id)
            .ok_or_else(|| ServiceError::invalid_field(Field::PackageId, "no such package"))?;
        order.invoice.check().map_err(|(field, why)| ServiceError::invalid_field(Field::Invoice(field), why))?;
        let mine = db::credentials::of_user(&mut conn, &principal.user_id, i64::MAX)?;
        match order.purpose {
            Purpose::Issuance if !mine.is_empty() => {
                return Err(ServiceError::Conflict(
                    "A certificate was issued before: order a rekey or a reissue".into(),
                ));
            }
            Purpose::Issuance => {}
            Purpose::Rekey => {
                let id = order
                    .credential_id
                    .as_deref()
                    .ok_or_else(|| ServiceError::invalid_field(Field::CredentialId, "required for a rekey"))?;
                let credential = mine
                    .iter()
                    .find(|c| c.id == id)
                    .ok_or_else(|| ServiceError::NotFound("No such credential".into()))?;
                check_rekey_window(services, credential, now)?;
            }
            Purpose::Reissue => {
                let ended = mine.iter().any(|c| c.revoked_at.is_some() || c.not_after <= now);
                // The current certificate is the one not replaced by a rekey; an older one may still
                // be valid until it expires, which does not stand in the way.
                let current =
                    mine.iter().any(|c| c.revoked_at.is_none() && c.not_after > now && c.replaced_by.is_none());
                if !ended || current {
                    return Err(ServiceError::Conflict(
                        "A reissue is for a certificate that expired or was revoked".into(),
                    ));
                }
            }
        }
        if order.purpose != Purpose::Rekey && order.credential_id.is_some() {
            return Err(ServiceError::invalid_field(Field::CredentialId, "only for a rekey"));
        }
        let vat_cents = enrolment::vat_cents(package.net_cents, lifecycle.vat_percent);
        let row = OrderRow {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: principal.user_id.to_string(),
            package_id: package.id.clone(),
            purpose: order.purpose,
            status: OrderStatus::Created,
            validity_years: i32::try_from(package.validity_years).map_err(ServiceError::internal)?,
            transactions: package.transactions,
            net_cents: package.net_cents,
            vat_cents,
            gross_cents: package.net_cents + vat_cents,
            currency: lifecycle.currency.clone(),
            invoice: serde_json::to_string(&order.invoice).map_err(ServiceError::internal)?,
            invoice_number: None,
            payment_ref: None,
            credential_id: order.credential_id.as_ref().map(CredentialId::to_string),
            new_credential_id: None,
            personal_data_confirmed: false,
            created_at: now,
            paid_at: None,
            fulfilled_at: None,
            requested_given_name: None,
            requested_surname: None,
            requested_document_id: None,
        };
        db::write_transaction(&mut conn, |c| {
            store::insert(c, &row)?;
            audit::success(
                c,
                now,
                AuditEventName::OrderCreate,
                Some(&principal.user_id),
                row.credential_id.as_deref(),
                format!("order {} {} {}", row.id, row.purpose, row.package_id),
            )?;
            Ok(row.clone())
        })
    })
    .map(Order::from)
}

pub(super) fn changed_meanwhile() -> ServiceError {
    ServiceError::Conflict("The order was changed by another request meanwhile; reload it".into())
}

pub fn list(services: &Services, principal: &Principal) -> Result<Vec<Order>, ServiceError> {
    Ok(store::of_user(&mut *services.conn()?, &principal.user_id)?.into_iter().map(Order::from).collect())
}

pub fn get(services: &Services, principal: &Principal, order_id: &OrderId) -> Result<Order, ServiceError> {
    owned_order(&mut *services.conn()?, principal, order_id).map(Order::from)
}

pub fn update_invoice(
    services: &Services,
    principal: &Principal,
    order_id: &OrderId,
    invoice: Invoice,
) -> Result<Order, ServiceError> {
    audited(services, AuditEventName::OrderInvoice, Some(&principal.user_id), || {
        let now = services.now();
        invoice.check().map_err(|(field, why)| ServiceError::invalid_field(Field::Invoice(field), why))?;
        let mut conn = services.conn()?;
        db::write_transaction(&mut conn, |c| {
            let mut order = owned_order(c, principal, order_id)?;
            if order.status != OrderStatus::Created || order.invoice_number.is_some() {
                return Err(ServiceError::Conflict("The invoice data are frozen once the invoice is issued".into()));
            }
            order.invoice = serde_json::to_string(&invoice).map_err(ServiceError::internal)?;
            if !store::update_if(c, &order, OrderStatus::Created)? {
                return Err(changed_meanwhile());
            }
            audit::success(
                c,
                now,
                AuditEventName::OrderInvoice,
                Some(&principal.user_id),
                None,
                format!("order {}", order.id),
            )?;
            Ok(order)
        })
    })
    .map(Order::from)
}

/// Where to pay.
#[derive(Debug, Clone)]
pub struct PaymentStarted {
    pub order: Order,
    pub payment_url: String,
}

fn payment_url(services: &Services, order: &OrderRow) -> String {
    services
        .config
        .payments
        .page_url
        .replace("{payment_ref}", order.payment_ref.as_deref().unwrap_or_default())
        .replace("{gross_cents}", &order.gross_cents.to_string())
        .replace("{currency}", &order.currency)
}

/// Issues the invoice (its data are frozen from now on) and returns the provider's payment page.
/// Asking again while the payment is open returns the same page.
pub fn start_payment(
    services: &Services,
    principal: &Principal,
    order_id: &OrderId,
) -> Result<PaymentStarted, ServiceError> {
    audited(services, AuditEventName::OrderPayment, Some(&principal.user_id), || {
        let now = services.now();
        let mut conn = services.conn()?;
        let order = db::write_transaction(&mut conn, |c| {
            let mut order = owned_order(c, principal, order_id)?;
            match order.status {
                OrderStatus::Created => {}
                OrderStatus::AwaitingPayment => return Ok(order),
                _ => return Err(ServiceError::Conflict(format!("The order is {}", order.status))),
            }
            let year = chrono::DateTime::from_timestamp(now, 0).map(|t| t.format("%Y").to_string()).unwrap_or_default();
            // The id is a UUID made here; `get` keeps even a foreign one from panicking.
            let short_id = order.id.get(..8).unwrap_or(&order.id).to_uppercase();
            order.invoice_number = Some(format!("INV-{year}-{short_id}"));
            order.payment_ref = Some(secrets::new_token());
            order.status = OrderStatus::AwaitingPayment;
            if !store::update_if(c, &order, OrderStatus::Created)? {
                return Err(changed_meanwhile());
            }
            audit::success(
                c,
                now,
                AuditEventName::OrderPayment,
                Some(&principal.user_id),
                None,
                format!("order {} invoice {}", order.id, order.invoice_number.as_deref().unwrap_or_default()),
            )?;
            Ok(order)
        })?;
        Ok(PaymentStarted { payment_url: payment_url(services, &order), order: order.into() })
    })
}

/// Whether the rekey order may still take personal data and a document: paid or not yet paid, and
/// not submitted (what was submitted is what the decision sees).
fn rekey_editable(order: &OrderRow) -> bool {
    order.purpose == Purpose::Rekey
        && matches!(order.status, OrderStatus::Created | OrderStatus::AwaitingPayment | OrderStatus::Paid)
}

/// Rekey: the person confirms (or corrects) the names that go into the new certificate. They are kept
/// on the order and reach the account and the certificate only when the rekey's identity check is
/// accepted.
pub fn confirm_personal_data(
    services: &Services,
    principal: &Principal,
    order_id: &OrderId,
    given_name: &str,
    surname: &str,
) -> Result<Order, ServiceError> {
    audited(services, AuditEventName::OrderPersonalData, Some(&principal.user_id), || {
        let now = services.now();
        let given_name =
            enrolment::parse_name(given_name).map_err(|why| ServiceError::invalid_field(Field::GivenName, why))?;
        let surname = enrolment::parse_name(surname).map_err(|why| ServiceError::invalid_field(Field::Surname, why))?;
        db::write_transaction(&mut *services.conn()?, |c| {
            let mut order = owned_order(c, principal, order_id)?;
            // Only a rekey takes the names as the person states them; for an issuance or reissue the
            // identity check is what vouches for the name.
            if !rekey_editable(&order) {
                return Err(ServiceError::Conflict(
                    "Personal data are confirmed for an open rekey order that is not submitted".into(),
                ));
            }
            order.requested_given_name = Some(given_name.clone());
            order.requested_surname = Some(surname.clone());
            order.personal_data_confirmed = true;
            let status = order.status;
            if !store::update_if(c, &order, status)? {
                return Err(changed_meanwhile());
            }
            audit::success(
                c,
                now,
                AuditEventName::OrderPersonalData,
                Some(&principal.user_id),
                None,
                format!("order {}", order.id),
            )?;
            Ok(order)
        })
    })
    .map(Order::from)
}

/// Largest identity document copy accepted.
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024 * 1024;

/// Rekey: a copy of the identity document, checked to be what its type says.
pub fn upload_identity_document(
    services: &Services,
    principal: &Principal,
    order_id: &OrderId,
    content_type: &str,
    data: Vec<u8>,
) -> Result<IdentityDocument, ServiceError> {
    audited(services, AuditEventName::OrderIdentityDocument, Some(&principal.user_id), || {
        let now = services.now();
        let kind = DocumentType::parse(content_type).ok_or_else(|| {
            ServiceError::invalid_field(Field::ContentType, "application/pdf, image/jpeg or image/png")
        })?;
        if data.is_empty() || data.len() > MAX_DOCUMENT_BYTES {
            return Err(ServiceError::invalid_field(Field::Data, "1 byte to 5 MiB"));
        }
        documents::check(kind, &data)
            .map_err(|why| ServiceError::invalid_field(Field::Data, format!("not a {content_type} file ({why})")))?;
        db::write_transaction(&mut *services.conn()?, |c| {
            let mut order = owned_order(c, principal, order_id)?;
            if !rekey_editable(&order) {
                return Err(ServiceError::Conflict(
                    "An identity document is uploaded for an open rekey order that is not submitted".into(),
                ));
            }
            let row = IdentityDocumentRow {
                id: uuid::Uuid::new_v4().to_string(),
                user_id: principal.user_id.to_string(),
                order_id: order.id.clone(),
                content_type: content_type.to_string(),
                sha256: hex::encode(Sha256::digest(&data)),
                data,
                uploaded_at: now,
            };
            store::insert_document(c, &row)?;
            // The last upload is the one a submission carries.
            order.requested_document_id = Some(row.id.clone());
            let status = order.status;
            if !store::update_if(c, &order, status)? {
                return Err(changed_meanwhile());
            }
            audit::success(
                c,
                now,
                AuditEventName::OrderIdentityDocument,
                Some(&principal.user_id),
                None,
                format!("order {} document sha256 {}", order.id, row.sha256),
            )?;
            Ok(row)
        })
    })
    .map(IdentityDocument::from)
}

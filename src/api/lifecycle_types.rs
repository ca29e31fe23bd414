//! Wire types shared by the lifecycle API (`/api/v1`) and the admin API (`/api/admin/v1`): orders,
//! credentials and identity checks as front ends and operators see them. Times are RFC 3339.

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::enrolment::Invoice;
use crate::domain::{CertificateStatus, CheckKind, CheckStatus, OrderStatus, Purpose};
use crate::service::identity_provider::session_url;
use crate::service::issuance::CredentialSummary;
use crate::service::views::{IdentityCheck, Order};
use crate::service::Services;

pub use crate::clock::rfc3339;

/// An order of a package.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    pub id: String,
    pub user_id: String,
    pub package_id: String,
    /// Why the package is bought.
    pub purpose: Purpose,
    /// Where the order stands (`awaiting_decision`: a submitted rekey).
    pub status: OrderStatus,
    pub net_cents: i64,
    pub vat_cents: i64,
    pub gross_cents: i64,
    pub currency: String,
    pub invoice: Option<Invoice>,
    pub invoice_number: Option<String>,
    pub payment_ref: Option<String>,
    /// Rekey: the credential renewed.
    pub credential_id: Option<String>,
    /// The credential the order produced.
    pub new_credential_id: Option<String>,
    pub personal_data_confirmed: bool,
    /// Rekey: the names asked for (they reach the certificate once the rekey is accepted).
    pub requested_given_name: Option<String>,
    pub requested_surname: Option<String>,
    /// Rekey: the identity document that goes with the submission.
    pub requested_document_id: Option<String>,
    pub created_at: String,
    pub paid_at: Option<String>,
    pub fulfilled_at: Option<String>,
}

impl From<Order> for OrderView {
    fn from(o: Order) -> Self {
        OrderView {
            invoice: o.invoice,
            id: o.id.into(),
            user_id: o.user_id.into(),
            package_id: o.package_id,
            purpose: o.purpose,
            status: o.status,
            net_cents: o.net_cents,
            vat_cents: o.vat_cents,
            gross_cents: o.gross_cents,
            currency: o.currency,
            invoice_number: o.invoice_number,
            payment_ref: o.payment_ref,
            credential_id: o.credential_id.map(String::from),
            new_credential_id: o.new_credential_id.map(String::from),
            personal_data_confirmed: o.personal_data_confirmed,
            requested_given_name: o.requested_given_name,
            requested_surname: o.requested_surname,
            requested_document_id: o.requested_document_id,
            created_at: rfc3339(o.created_at),
            paid_at: o.paid_at.map(rfc3339),
            fulfilled_at: o.fulfilled_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrdersResponse {
    pub orders: Vec<OrderView>,
}

/// The signatures a credential may still make (`total` and `remaining` are null when unlimited).
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaView {
    pub total: Option<i32>,
    pub used: i32,
    pub remaining: Option<i32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RekeyWindowView {
    /// After this instant the credential can no longer be rekeyed, only reissued.
    pub closes: String,
    pub open: bool,
}

/// A credential (key pair and certificate) as the lifecycle shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialView {
    pub credential_id: String,
    /// The certificate's state now.
    pub status: CertificateStatus,
    pub key_type: String,
    pub serial: String,
    pub subject: String,
    pub not_before: String,
    pub not_after: String,
    pub quota: QuotaView,
    pub rekey_window: RekeyWindowView,
    pub replaced_by: Option<String>,
    pub order_id: Option<String>,
    pub revocation_reason: Option<String>,
}

impl CredentialView {
    pub fn new(c: CredentialSummary) -> CredentialView {
        CredentialView {
            status: c.status,
            key_type: c.credential.key_kind,
            serial: c.credential.serial_hex.to_uppercase(),
            subject: c.subject,
            not_before: rfc3339(c.not_before),
            not_after: rfc3339(c.credential.not_after),
            quota: QuotaView {
                total: c.credential.quota_total,
                used: c.credential.quota_used,
                remaining: c.quota_remaining,
            },
            rekey_window: RekeyWindowView { closes: rfc3339(c.rekey_window.closes_at), open: c.rekey_open },
            replaced_by: c.credential.replaced_by.map(String::from),
            order_id: c.credential.order_id.map(String::from),
            revocation_reason: c.credential.revocation_reason,
            credential_id: c.credential.id.into(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialsResponse {
    pub credentials: Vec<CredentialView>,
}

/// One attempt at identity verification.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityCheckView {
    pub id: String,
    pub user_id: String,
    pub order_id: String,
    /// Where the check stands.
    pub status: CheckStatus,
    /// `identity` (video identification before an issuance or reissue) or `rekey` (a submitted rekey).
    pub kind: CheckKind,
    /// Where the person goes for the video identification.
    pub session_url: String,
    /// Rekey: the names submitted for the new certificate.
    pub given_name: Option<String>,
    pub surname: Option<String>,
    /// Rekey: the identity document submitted.
    pub document_id: Option<String>,
    /// Rekey: the key type asked for.
    pub key_type: Option<String>,
    pub reasons: Vec<String>,
    pub decided_by: Option<String>,
    pub created_at: String,
    pub decided_at: Option<String>,
}

impl IdentityCheckView {
    pub fn new(services: &Services, c: IdentityCheck) -> IdentityCheckView {
        IdentityCheckView {
            session_url: session_url(services, &c.id),
            reasons: c.reasons,
            id: c.id.into(),
            user_id: c.user_id.into(),
            order_id: c.order_id.into(),
            status: c.status,
            kind: c.kind,
            given_name: c.given_name,
            surname: c.surname,
            document_id: c.document_id,
            key_type: c.key_type,
            decided_by: c.decided_by,
            created_at: rfc3339(c.created_at),
            decided_at: c.decided_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityChecksResponse {
    pub identity_checks: Vec<IdentityCheckView>,
}

//! What the use cases hand to the HTTP layer: orders, identity checks, credentials, people, consents,
//! outbox messages and audit records as values, typed, without the database rows they are read from
//! (the api layer never sees a row). Times are Unix seconds; the api formats them.

use crate::db::accounts::{Account, Consent as ConsentRow};
use crate::db::audit::AuditRow;
use crate::db::credentials::CredentialRow;
use crate::db::orders::{IdentityCheckRow, IdentityDocumentRow, OrderRow};
use crate::db::outbox::Message;
use crate::domain::enrolment::Invoice;
use crate::domain::{
    AccountStatus, Channel, CheckKind, CheckStatus, CredentialStatus, OrderStatus, OutboxStatus, Purpose,
};
use crate::domain::{CheckId, CredentialId, OrderId, UserId};

/// An order of a package.
#[derive(Debug, Clone)]
pub struct Order {
    /// The order's id.
    pub id: OrderId,
    /// Whose order it is.
    pub user_id: UserId,
    /// The package bought.
    pub package_id: String,
    /// Why the package is bought.
    pub purpose: Purpose,
    /// Where the order stands.
    pub status: OrderStatus,
    /// Price before VAT, in cents.
    pub net_cents: i64,
    /// VAT, in cents.
    pub vat_cents: i64,
    /// Price with VAT, in cents.
    pub gross_cents: i64,
    /// ISO 4217 currency code.
    pub currency: String,
    /// The invoice data (None only if the stored text no longer parses).
    pub invoice: Option<Invoice>,
    /// Set once the invoice is issued.
    pub invoice_number: Option<String>,
    /// The payment provider's reference, once payment started.
    pub payment_ref: Option<String>,
    /// Rekey: the credential renewed.
    pub credential_id: Option<CredentialId>,
    /// The credential the order produced.
    pub new_credential_id: Option<CredentialId>,
    /// Rekey: the person confirmed the names for the new certificate.
    pub personal_data_confirmed: bool,
    /// Rekey: the given name asked for.
    pub requested_given_name: Option<String>,
    /// Rekey: the surname asked for.
    pub requested_surname: Option<String>,
    /// Rekey: the identity document that goes with the submission.
    pub requested_document_id: Option<String>,
    /// When the order was created.
    pub created_at: i64,
    /// When it was paid.
    pub paid_at: Option<i64>,
    /// When its certificate was issued.
    pub fulfilled_at: Option<i64>,
}

impl From<OrderRow> for Order {
    fn from(o: OrderRow) -> Order {
        Order {
            invoice: serde_json::from_str(&o.invoice).ok(),
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
            credential_id: o.credential_id.map(CredentialId::from),
            new_credential_id: o.new_credential_id.map(CredentialId::from),
            personal_data_confirmed: o.personal_data_confirmed,
            requested_given_name: o.requested_given_name,
            requested_surname: o.requested_surname,
            requested_document_id: o.requested_document_id,
            created_at: o.created_at,
            paid_at: o.paid_at,
            fulfilled_at: o.fulfilled_at,
        }
    }
}

/// One attempt at identity verification, or a submitted rekey.
#[derive(Debug, Clone)]
pub struct IdentityCheck {
    /// The check's id.
    pub id: CheckId,
    /// Whose identity is checked.
    pub user_id: UserId,
    /// The order it belongs to.
    pub order_id: OrderId,
    /// Where the check stands.
    pub status: CheckStatus,
    /// What it decides on.
    pub kind: CheckKind,
    /// A rejection's reasons, one per entry.
    pub reasons: Vec<String>,
    /// Who decided (an operator, or the identification provider).
    pub decided_by: Option<String>,
    /// When the check was opened.
    pub created_at: i64,
    /// When it was decided.
    pub decided_at: Option<i64>,
    /// Rekey: the given name submitted.
    pub given_name: Option<String>,
    /// Rekey: the surname submitted.
    pub surname: Option<String>,
    /// Rekey: the identity document submitted.
    pub document_id: Option<String>,
    /// Rekey: the key type asked for.
    pub key_type: Option<String>,
}

impl From<IdentityCheckRow> for IdentityCheck {
    fn from(c: IdentityCheckRow) -> IdentityCheck {
        IdentityCheck {
            reasons: c.reasons.map(|r| r.lines().map(str::to_string).collect()).unwrap_or_default(),
            id: c.id.into(),
            user_id: c.user_id.into(),
            order_id: c.order_id.into(),
            status: c.status,
            kind: c.kind,
            decided_by: c.decided_by,
            created_at: c.created_at,
            decided_at: c.decided_at,
            given_name: c.given_name,
            surname: c.surname,
            document_id: c.document_id,
            key_type: c.key_type,
        }
    }
}

/// An uploaded identity document, without its content.
#[derive(Debug, Clone)]
pub struct IdentityDocument {
    /// The document's id.
    pub id: String,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
}

impl From<IdentityDocumentRow> for IdentityDocument {
    fn from(d: IdentityDocumentRow) -> IdentityDocument {
        IdentityDocument { id: d.id, sha256: d.sha256 }
    }
}

/// A credential's stored facts (its certificate's own are in `issuance::CredentialSummary`).
#[derive(Debug, Clone)]
pub struct Credential {
    /// The credential's id.
    pub id: CredentialId,
    /// Whose credential it is.
    pub user_id: UserId,
    /// The key type (`rsa-3072`, `ec-p256`, ...).
    pub key_kind: String,
    /// The certificate's serial number, lowercase hex.
    pub serial_hex: String,
    /// The certificate's `notAfter`.
    pub not_after: i64,
    /// Whether the key may be used.
    pub status: CredentialStatus,
    /// When the certificate was revoked.
    pub revoked_at: Option<i64>,
    /// Why it was revoked.
    pub revocation_reason: Option<String>,
    /// Signatures the credential may make in all (None: no limit).
    pub quota_total: Option<i32>,
    /// Signatures made.
    pub quota_used: i32,
    /// The order it was issued for (None: provisioned by an operator).
    pub order_id: Option<OrderId>,
    /// The credential that a rekey issued in its place.
    pub replaced_by: Option<CredentialId>,
}

impl From<CredentialRow> for Credential {
    fn from(c: CredentialRow) -> Credential {
        Credential {
            id: c.id.into(),
            user_id: c.user_id.into(),
            key_kind: c.key_kind,
            serial_hex: c.serial_hex,
            not_after: c.not_after,
            status: c.status,
            revoked_at: c.revoked_at,
            revocation_reason: c.revocation_reason,
            quota_total: c.quota_total,
            quota_used: c.quota_used,
            order_id: c.order_id.map(OrderId::from),
            replaced_by: c.replaced_by.map(CredentialId::from),
        }
    }
}

/// A person with an account, without their secrets (password hash, lock-out counters).
#[derive(Debug, Clone)]
pub struct Person {
    /// The user id.
    pub id: UserId,
    /// The login name (the e-mail address for people enrolled through the lifecycle API).
    pub username: String,
    /// Given name, once known.
    pub given_name: Option<String>,
    /// Surname, once known.
    pub surname: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// ISO 3166-1 alpha-2; None: `ca.default_subject_country`.
    pub country: Option<String>,
    /// Whether the account is activated.
    pub status: AccountStatus,
    /// When the account was created.
    pub created_at: i64,
}

impl From<Account> for Person {
    fn from(a: Account) -> Person {
        Person {
            id: a.id.into(),
            username: a.username,
            given_name: a.given_name,
            surname: a.surname,
            email: a.email,
            phone: a.phone,
            country: a.country,
            status: a.status,
            created_at: a.created_at,
        }
    }
}

/// A document (terms, privacy notice) the person accepted.
#[derive(Debug, Clone)]
pub struct Consent {
    /// Which document.
    pub document: String,
    /// Which version of it.
    pub version: String,
    /// When it was accepted.
    pub accepted_at: i64,
}

impl From<ConsentRow> for Consent {
    fn from(c: ConsentRow) -> Consent {
        Consent { document: c.document, version: c.version, accepted_at: c.accepted_at }
    }
}

/// A message in the notification outbox.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    /// The message's id (ascending).
    pub id: i64,
    /// E-mail or SMS.
    pub channel: Channel,
    /// The address or phone number.
    pub recipient: String,
    /// E-mail subject (empty for an SMS).
    pub subject: String,
    /// The text, or a redaction note.
    pub body: String,
    /// Where the message stands.
    pub status: OutboxStatus,
    /// Delivery attempts so far.
    pub attempts: i32,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When the message was queued.
    pub created_at: i64,
    /// It carries a code or a link for the person alone.
    pub secret: bool,
}

impl From<Message> for OutboxMessage {
    fn from(m: Message) -> OutboxMessage {
        OutboxMessage {
            id: m.id,
            channel: m.channel,
            recipient: m.recipient,
            subject: m.subject,
            body: m.body,
            status: m.status,
            attempts: m.attempts,
            last_error: m.last_error,
            created_at: m.created_at,
            secret: m.secret,
        }
    }
}

/// One record of the audit trail.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// Position in the chain.
    pub seq: i64,
    /// When the event happened.
    pub at: i64,
    /// The event's name as stored (older records may hold names no longer written).
    pub event: String,
    /// `success` or `refused`.
    pub outcome: String,
    /// Whose event it is.
    pub user_id: Option<UserId>,
    /// The credential concerned.
    pub credential_id: Option<CredentialId>,
    /// What happened, in words.
    pub detail: String,
    /// The record's chained hash.
    pub hash: String,
    /// The HTTP request that wrote the record.
    pub request_id: Option<String>,
}

impl From<AuditRow> for AuditRecord {
    fn from(r: AuditRow) -> AuditRecord {
        AuditRecord {
            seq: r.seq,
            at: r.at,
            event: r.event,
            outcome: r.outcome,
            user_id: r.user_id.map(UserId::from),
            credential_id: r.credential_id.map(CredentialId::from),
            detail: r.detail,
            hash: r.hash,
            request_id: r.request_id,
        }
    }
}

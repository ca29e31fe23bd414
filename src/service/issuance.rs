//! Certificates of the lifecycle: issuance (and reissue) after payment and identity verification,
//! the issuance of an accepted rekey (its submission is in `rekey`), revocation, and the credentials
//! as a person sees them (status, quota, window).

use secrecy::{ExposeSecret, SecretString};

use crate::audit;
use crate::db::credentials::{self, CredentialRow};
use crate::db::orders::{self as store, OrderRow};
use crate::db::{self, accounts, authenticators, DbConnection};
use crate::domain::renewal::{self, RekeyWindow};
use crate::domain::KeyKind;
use crate::domain::{
    AuditEventName, CertificateStatus, CredentialId, CredentialStatus, OrderId, OrderStatus, Purpose, RevocationReason,
    UserId,
};
use crate::hsm::KeyId;
use crate::metrics::METRICS;
use crate::notify::{self, templates};
use crate::pki::ca::{person_name, provider_serial_number, PersonSubject};
use crate::telemetry::error_chain;

use super::accounts::require_second_factor_ready;
use super::credentials::cert_status;
use super::orders::owned_order;
use super::views::Credential;
use super::{audited, ca, second_factor, Field, Principal, ServiceError, Services};

/// A credential as the lifecycle API shows it.
#[derive(Debug, Clone)]
pub struct CredentialSummary {
    pub credential: Credential,
    pub status: CertificateStatus,
    pub quota_remaining: Option<i32>,
    pub rekey_window: RekeyWindow,
    /// Whether a rekey may be ordered now: valid, not yet replaced, window open.
    pub rekey_open: bool,
    pub subject: String,
    pub not_before: i64,
}

pub(super) fn summary(services: &Services, row: CredentialRow, now: i64) -> CredentialSummary {
    let status = cert_status(&row, now);
    let (subject, not_before) = certificate_facts(&row.certificate);
    let rekey_window = RekeyWindow::for_expiry(row.not_after, services.config.lifecycle.rekey_window_closes_hours);
    CredentialSummary {
        status,
        quota_remaining: renewal::remaining(row.quota_total, row.quota_used),
        rekey_open: status == CertificateStatus::Valid && row.replaced_by.is_none() && rekey_window.is_open(now),
        rekey_window,
        subject,
        not_before,
        credential: row.into(),
    }
}

fn certificate_facts(der: &[u8]) -> (String, i64) {
    use der::Decode;
    match x509_cert::Certificate::from_der(der) {
        Ok(cert) => {
            let tbs = cert.tbs_certificate();
            let not_before = tbs
                .validity()
                .not_before
                .to_system_time()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or_default();
            (tbs.subject().to_string(), not_before)
        }
        Err(_) => (String::new(), 0),
    }
}

pub fn list(services: &Services, principal: &Principal) -> Result<Vec<CredentialSummary>, ServiceError> {
    let rows = credentials::of_user(&mut *services.conn()?, &principal.user_id, i64::MAX)?;
    let now = services.now();
    Ok(rows.into_iter().map(|row| summary(services, row, now)).collect())
}

/// Of another user's credential the answer is the same as of a missing one.
pub(super) fn owned_credential(
    conn: &mut DbConnection,
    principal: &Principal,
    id: &str,
) -> Result<CredentialRow, ServiceError> {
    if id.len() > 64 {
        return Err(ServiceError::NotFound("No such credential".into()));
    }
    credentials::owned_by(conn, &principal.user_id, id)?
        .ok_or_else(|| ServiceError::NotFound("No such credential".into()))
}

pub(super) fn key_kind(services: &Services, requested: Option<&str>) -> Result<KeyKind, ServiceError> {
    requested
        .unwrap_or(&services.config.lifecycle.default_key_type)
        .parse()
        .map_err(|_| ServiceError::invalid_field(Field::KeyType, "rsa-2048, rsa-3072, ec-p256 or ec-p384"))
}

/// The subject of the person's certificate (ETSI EN 319 412-2 §4.2.4): given name, surname, the person's
/// country and rssp's stable identifier of the person. The names are the account's, or for a rekey the
/// accepted ones.
fn person_subject(
    services: &Services,
    account: &accounts::Account,
    names: &SubjectNames,
) -> Result<x509_cert::name::Name, ServiceError> {
    if names.given_name.is_empty() || names.surname.is_empty() {
        return Err(ServiceError::Conflict("The account has no given name and surname for the certificate".into()));
    }
    let person = PersonSubject {
        names: Some((names.given_name.clone(), names.surname.clone())),
        fallback_common_name: account.username.clone(),
        serial_number: provider_serial_number(&account.id),
        country: account.country.clone().unwrap_or_else(|| services.config.default_subject_country().to_string()),
    };
    person_name(&person)
        .map_err(|e| ServiceError::InvalidRequest(format!("The name cannot go into a certificate: {e}")))
}

/// The names that go into the subject of a new certificate.
#[derive(Debug, Clone)]
pub(super) struct SubjectNames {
    pub given_name: String,
    pub surname: String,
}

impl SubjectNames {
    fn of_account(account: &accounts::Account) -> SubjectNames {
        SubjectNames {
            given_name: account.given_name.clone().unwrap_or_default(),
            surname: account.surname.clone().unwrap_or_default(),
        }
    }
}

/// Reserves the order for one issuance: `from` -> `issuing`, conditionally, before anything is
/// generated. Of two requests racing for one order, the second is refused here and never reaches
/// the HSM.
pub(super) fn reserve(c: &mut DbConnection, order_id: &str, from: OrderStatus) -> Result<(), ServiceError> {
    if !store::transition(c, order_id, from, OrderStatus::Issuing)? {
        return Err(ServiceError::Conflict(
            "The order is being issued by another request, or is no longer open for issuance".into(),
        ));
    }
    Ok(())
}

/// Hands a reservation back after a failed issuance (the order goes back to `to`), recording why.
fn release(services: &Services, conn: &mut DbConnection, order: &OrderRow, to: OrderStatus, why: &ServiceError) {
    let now = services.now();
    let result = db::write_transaction(conn, |c| {
        store::transition(c, &order.id, OrderStatus::Issuing, to)?;
        audit::record(
            c,
            now,
            audit::AuditEvent {
                event: AuditEventName::CredentialIssuanceFailed,
                outcome: audit::Outcome::Refused,
                user_id: Some(&order.user_id),
                credential_id: None,
                detail: format!("order {} back to {to}: {}", order.id, error_chain(why)),
            },
        )
    });
    if let Err(e) = result {
        tracing::error!(order = %order.id, error = %e, "could not release the issuance reservation");
    }
}

/// Destroys a key whose issuance failed after it was generated, and records that in the trail.
fn discard_key(services: &Services, conn: &mut DbConnection, user_id: &str, key_id: &KeyId, why: &str) {
    let destroyed = services.keystore.destroy(key_id);
    if let Err(e) = &destroyed {
        tracing::error!(key = %key_id.to_hex(), error = %e, "could not destroy the key of a failed issuance");
    }
    let now = services.now();
    let detail = match &destroyed {
        Ok(_) => format!("key {} destroyed: {why}", key_id.to_hex()),
        Err(e) => format!("key {} NOT destroyed ({e}): {why}", key_id.to_hex()),
    };
    let result = db::write_transaction(conn, |c| {
        audit::record(
            c,
            now,
            audit::AuditEvent {
                event: AuditEventName::CredentialKeyDiscarded,
                outcome: audit::Outcome::Refused,
                user_id: Some(user_id),
                credential_id: None,
                detail,
            },
        )
    });
    if let Err(e) = result {
        tracing::error!(error = %e, "could not record a discarded key");
    }
}

/// A certificate the CA signed whose credential could not be recorded: it is recorded as a revoked
/// credential (its key already destroyed), so it is listed, and the CRL names its serial. Every
/// certificate the CA signs ends up in the credentials table one way or the other.
fn record_unissued_certificate(services: &Services, conn: &mut DbConnection, row: &CredentialRow, why: &str) {
    let now = services.now();
    let mut revoked = row.clone();
    revoked.status = CredentialStatus::Disabled;
    revoked.revoked_at = Some(now);
    revoked.revocation_reason = Some("issuance not completed".into());
    revoked.revocation_code = Some(RevocationReason::CessationOfOperation);
    let result = db::write_transaction(conn, |c| {
        credentials::insert(c, &revoked)?;
        audit::record(
            c,
            now,
            audit::AuditEvent {
                event: AuditEventName::CredentialUnissued,
                outcome: audit::Outcome::Refused,
                user_id: Some(&row.user_id),
                credential_id: Some(&row.id),
                detail: format!("serial {} revoked at once: {why}", row.serial_hex),
            },
        )
    });
    if let Err(e) = result {
        tracing::error!(serial = %row.serial_hex, error = %e, "a signed certificate could not be recorded; revoke it by hand");
    }
}

/// Generates the key in the HSM, has the CA certify it with `names`, and records the credential (with
/// `extra`, in the same transaction). The order must be reserved (`issuing`). On any failure after the
/// key was generated the key is destroyed; a certificate signed but not recorded is recorded revoked.
#[allow(clippy::too_many_arguments)]
fn issue_reserved(
    services: &Services,
    conn: &mut DbConnection,
    account: &accounts::Account,
    order: &OrderRow,
    kind: KeyKind,
    names: &SubjectNames,
    replaces: Option<&str>,
    extra: impl FnOnce(&mut DbConnection) -> Result<(), ServiceError>,
) -> Result<CredentialRow, ServiceError> {
    let now = services.now();
    let subject = person_subject(services, account, names)?;
    let credential_id = uuid::Uuid::new_v4().to_string();
    // The HSM and the CA work without a transaction open.
    let key = services.keystore.generate(kind, &credential_id)?;
    let issued = match services.ca.issue_end_entity(
        services.ca_keys(),
        &key.public_key_der,
        subject,
        &services.public_url,
        now,
        i64::from(order.validity_years) * 365,
    ) {
        Ok(issued) => issued,
        Err(e) => {
            let e = ServiceError::from(e);
            discard_key(services, conn, &account.id, &key.id, &error_chain(&e));
            return Err(e);
        }
    };
    let row = credential_row(services, credential_id, kind, key.id.to_hex(), issued, order, now);
    let recorded = db::write_transaction(conn, |c| {
        extra(c)?;
        record_issuance(services, c, account, order, &row, names, replaces, now)
    });
    if let Err(e) = recorded {
        discard_key(services, conn, &account.id, &key.id, &error_chain(&e));
        record_unissued_certificate(services, conn, &row, &error_chain(&e));
        return Err(e);
    }
    Ok(row)
}

/// Records the new credential and fulfils the reserved order, in one transaction. A rekey also
/// writes the accepted names to the account.
#[allow(clippy::too_many_arguments)]
fn record_issuance(
    services: &Services,
    c: &mut DbConnection,
    account: &accounts::Account,
    order: &OrderRow,
    row: &CredentialRow,
    names: &SubjectNames,
    replaces: Option<&str>,
    now: i64,
) -> Result<(), ServiceError> {
    if !store::transition(c, &order.id, OrderStatus::Issuing, OrderStatus::Fulfilled)? {
        return Err(ServiceError::Conflict("The order was fulfilled meanwhile".into()));
    }
    credentials::insert(c, row)?;
    let mut fulfilled = store::by_id(c, &order.id)?.ok_or_else(|| ServiceError::invariant("order vanished"))?;
    fulfilled.new_credential_id = Some(row.id.clone());
    fulfilled.fulfilled_at = Some(now);
    store::update_if(c, &fulfilled, OrderStatus::Fulfilled)?;
    if let Some(old) = replaces {
        if !credentials::set_replaced_by(c, old, &row.id)? {
            return Err(ServiceError::Conflict("The certificate was already rekeyed".into()));
        }
        accounts::set_names(c, &account.id, &names.given_name, &names.surname)?;
    }
    if let Some(email) = &account.email {
        notify::enqueue(
            c,
            &services.config,
            now,
            Some(&account.id),
            templates::certificate_issued(email, &row.serial_hex.to_uppercase(), row.not_after),
        )?;
    }
    let how = match replaces {
        Some(old) => format!("rekey of {old}"),
        None => format!("{} for order {}", order.purpose, order.id),
    };
    audit::success(
        c,
        now,
        AuditEventName::CredentialIssued,
        Some(&account.id),
        Some(&row.id),
        format!("{how}: key {} serial {}", row.key_kind, row.serial_hex),
    )?;
    Ok(())
}

/// The credential an order's new key and certificate make, with the package's transactions as quota.
fn credential_row(
    services: &Services,
    id: String,
    kind: KeyKind,
    key_id: String,
    issued: crate::pki::ca::IssuedCertificate,
    order: &OrderRow,
    now: i64,
) -> CredentialRow {
    CredentialRow {
        id,
        user_id: order.user_id.clone(),
        key_kind: kind.to_string(),
        key_id,
        certificate: issued.der,
        serial_hex: issued.serial_hex,
        not_after: issued.not_after,
        pin_hash: None,
        multisign: services.config.lifecycle.multisign,
        status: CredentialStatus::Enabled,
        revoked_at: None,
        created_at: now,
        quota_total: Some(order.transactions),
        quota_used: 0,
        order_id: Some(order.id.clone()),
        replaced_by: None,
        revocation_reason: None,
        revocation_code: None,
    }
}

/// What a person sends to have the certificate issued.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    pub order_id: OrderId,
    pub issuance_terms_version: String,
    pub otp: SecretString,
    pub key_type: Option<String>,
}

/// Issuance (and reissue): paid order, identity accepted, authenticator paired, issuance terms
/// accepted, authorised with a TOTP code. The order is reserved first (a second request for it gets
/// 409 and never reaches the HSM), then the key pair is generated in the HSM.
pub fn issue(
    services: &Services,
    principal: &Principal,
    request: IssueRequest,
) -> Result<CredentialSummary, ServiceError> {
    audited(services, AuditEventName::CredentialIssue, Some(&principal.user_id), || {
        let now = services.now();
        let lifecycle = &services.config.lifecycle;
        let mut conn = services.conn()?;
        let account = require_second_factor_ready(services, &mut conn, principal)?;
        let order = owned_order(&mut conn, principal, &request.order_id)?;
        if order.purpose == Purpose::Rekey {
            return Err(ServiceError::Conflict("A rekey order is completed with the credential's rekey".into()));
        }
        if order.status != OrderStatus::Paid {
            return Err(ServiceError::Conflict(format!("The order is {}; it must be paid", order.status)));
        }
        if !store::order_identity_accepted(&mut conn, &order.id)? {
            return Err(ServiceError::Conflict("The identity of the person is not verified yet".into()));
        }
        if !authenticators::has_totp(&mut conn, &account.id)? {
            return Err(ServiceError::Forbidden("Pair an authenticator app first".into()));
        }
        if request.issuance_terms_version != lifecycle.issuance_terms_version {
            return Err(ServiceError::InvalidRequest(format!(
                "issuance_terms_version: the current version is {}",
                lifecycle.issuance_terms_version
            )));
        }
        let kind = key_kind(services, request.key_type.as_deref())?;
        super::authenticator::require_signing_allowed(&mut conn, &account.id)?;
        db::write_transaction(&mut conn, |c| reserve(c, &order.id, OrderStatus::Paid))?;
        let otp = request.otp.expose_secret();
        let result = second_factor::verify_otp(services, &mut conn, &account.id, otp).and_then(|()| {
            let consent = accounts::Consent {
                id: uuid::Uuid::new_v4().to_string(),
                user_id: account.id.clone(),
                document: "issuance_terms".into(),
                version: request.issuance_terms_version.clone(),
                accepted_at: now,
            };
            let names = SubjectNames::of_account(&account);
            issue_reserved(services, &mut conn, &account, &order, kind, &names, None, |c| {
                Ok(accounts::insert_consent(c, &consent)?)
            })
        });
        match result {
            Ok(row) => Ok(summary(services, row, now)),
            Err(e) => {
                release(services, &mut conn, &order, OrderStatus::Paid, &e);
                Err(e)
            }
        }
    })
}

/// Issues the key and certificate of a rekey whose check was just accepted. The caller reserved the
/// order (`awaiting_decision` -> `issuing`) in the decision's transaction; on failure the reservation
/// and the decision are undone (the order waits again, the check is pending again), so the decision
/// can be taken again.
pub(super) fn complete_accepted_rekey(
    services: &Services,
    check: &store::IdentityCheckRow,
) -> Result<CredentialSummary, ServiceError> {
    let now = services.now();
    let mut conn = services.conn()?;
    let order =
        store::by_id(&mut conn, &check.order_id)?.ok_or_else(|| ServiceError::invariant("check without order"))?;
    let result = (|| {
        let account = accounts::by_id(&mut conn, &check.user_id)?
            .ok_or_else(|| ServiceError::invariant("check without account"))?;
        let old =
            order.credential_id.clone().ok_or_else(|| ServiceError::invariant("rekey order without credential"))?;
        let names = SubjectNames {
            given_name: check.given_name.clone().ok_or_else(|| ServiceError::invariant("rekey check without names"))?,
            surname: check.surname.clone().ok_or_else(|| ServiceError::invariant("rekey check without names"))?,
        };
        let kind = key_kind(services, check.key_type.as_deref())?;
        issue_reserved(services, &mut conn, &account, &order, kind, &names, Some(&old), |_| Ok(()))
    })();
    match result {
        Ok(row) => Ok(summary(services, row, now)),
        Err(e) => {
            release(services, &mut conn, &order, OrderStatus::AwaitingDecision, &e);
            let reopened = db::write_transaction(&mut conn, |c| store::reopen_check(c, &check.id));
            if let Err(re) = reopened {
                tracing::error!(check = %check.id, error = %re, "could not reopen the rekey check");
            }
            Err(e)
        }
    }
}

/// Why a revocation is made: the words (shown to the person and kept in the trail) and the CRL reason.
#[derive(Debug, Clone, Copy)]
pub struct Revocation<'a> {
    /// In words.
    pub reason: &'a str,
    /// The CRL reason; None: unspecified.
    pub code: Option<RevocationReason>,
}

fn revoke_in(
    services: &Services,
    c: &mut DbConnection,
    row: &CredentialRow,
    revocation: Revocation<'_>,
    by: &str,
    now: i64,
) -> Result<(), ServiceError> {
    let reason = revocation.reason;
    if !credentials::revoke(c, &row.id, reason, revocation.code, now)? {
        return Err(ServiceError::Conflict("The credential is already revoked".into()));
    }
    if let Some(email) = accounts::by_id(c, &row.user_id)?.and_then(|a| a.email) {
        notify::enqueue(
            c,
            &services.config,
            now,
            Some(&row.user_id),
            templates::certificate_revoked(&email, &row.serial_hex.to_uppercase(), reason),
        )?;
    }
    audit::success(
        c,
        now,
        AuditEventName::CredentialRevoked,
        Some(&row.user_id),
        Some(&row.id),
        match revocation.code {
            Some(code) => format!("by {by}: {reason} ({code})"),
            None => format!("by {by}: {reason}"),
        },
    )?;
    Ok(())
}

fn check_reason(reason: &str) -> Result<(), ServiceError> {
    if reason.chars().count() > 200 || reason.chars().any(char::is_control) {
        return Err(ServiceError::invalid_field(Field::Reason, "at most 200 characters"));
    }
    Ok(())
}

/// Revocation by the person, authorised with a TOTP code. The CRL lists it from now on.
pub fn revoke_own(
    services: &Services,
    principal: &Principal,
    credential_id: &CredentialId,
    otp: &SecretString,
    reason: Option<&str>,
    code: Option<RevocationReason>,
) -> Result<CredentialSummary, ServiceError> {
    audited(services, AuditEventName::CredentialRevoke, Some(&principal.user_id), || {
        let now = services.now();
        let reason = reason.unwrap_or("revoked by the holder");
        check_reason(reason)?;
        // Withdrawing a certificate is the trust service's decision, not the holder's.
        if code == Some(RevocationReason::PrivilegeWithdrawn) {
            return Err(ServiceError::invalid_field(
                Field::ReasonCode,
                "key_compromise, affiliation_changed, superseded or cessation_of_operation",
            ));
        }
        let mut conn = services.conn()?;
        let row = owned_credential(&mut conn, principal, credential_id)?;
        if row.revoked_at.is_some() {
            return Err(ServiceError::Conflict("The credential is already revoked".into()));
        }
        second_factor::verify_otp(services, &mut conn, &principal.user_id, otp.expose_secret())?;
        let revocation = Revocation { reason, code };
        db::write_transaction(&mut conn, |c| revoke_in(services, c, &row, revocation, "the holder", now))?;
        METRICS.certificates_revoked.inc();
        let row =
            credentials::by_id(&mut conn, &row.id)?.ok_or_else(|| ServiceError::invariant("credential vanished"))?;
        // The revocation has committed; the CRL is published with no connection of ours held.
        drop(conn);
        ca::publish_after_revocation(services);
        Ok(summary(services, row, now))
    })
}

/// Revocation by an operator.
pub fn revoke_by_operator(
    services: &Services,
    operator: &str,
    credential_id: &CredentialId,
    reason: &str,
    code: Option<RevocationReason>,
) -> Result<CredentialSummary, ServiceError> {
    audited(services, AuditEventName::CredentialRevoke, None, || {
        let now = services.now();
        check_reason(reason)?;
        if reason.trim().is_empty() {
            return Err(ServiceError::invalid_field(Field::Reason, "required"));
        }
        let mut conn = services.conn()?;
        let row = credentials::by_id(&mut conn, credential_id)?
            .ok_or_else(|| ServiceError::NotFound("No such credential".into()))?;
        db::write_transaction(&mut conn, |c| {
            revoke_in(services, c, &row, Revocation { reason, code }, &format!("operator {operator}"), now)
        })?;
        METRICS.certificates_revoked.inc();
        let row =
            credentials::by_id(&mut conn, &row.id)?.ok_or_else(|| ServiceError::invariant("credential vanished"))?;
        drop(conn);
        ca::publish_after_revocation(services);
        Ok(summary(services, row, now))
    })
}

/// Credentials of any user, for operators.
pub fn of_user(services: &Services, user_id: &UserId) -> Result<Vec<CredentialSummary>, ServiceError> {
    let rows = credentials::of_user(&mut *services.conn()?, user_id, i64::MAX)?;
    let now = services.now();
    Ok(rows.into_iter().map(|row| summary(services, row, now)).collect())
}

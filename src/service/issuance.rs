//! Certificates of the lifecycle: issuance (and reissue) after payment and identity verification,
//! rekey before expiry, revocation, and the credentials as a person sees them (status, quota, window).

use crate::audit;
use crate::db::credentials::{self, CredentialRow};
use crate::db::orders::{self as store, OrderRow};
use crate::db::{self, accounts, DbConnection};
use crate::domain::renewal::{self, RekeyWindow};
use crate::domain::KeyKind;
use crate::notify::{self, templates};
use crate::pki::ca::{person_name, provider_serial_number, PersonSubject};

use super::accounts::{account_of, require_second_factor_ready};
use super::credentials::{cert_status, STATUS_ENABLED};
use super::orders::{check_rekey_window, owned_order, Purpose, FULFILLED, PAID};
use super::{audited, ca, second_factor, Principal, ServiceError, Services};

/// A credential as the lifecycle API shows it.
#[derive(Debug, Clone)]
pub struct CredentialSummary {
    pub row: CredentialRow,
    /// `valid`, `expired` or `revoked`.
    pub status: &'static str,
    pub quota_remaining: Option<i32>,
    pub rekey_window: RekeyWindow,
    /// Whether a rekey may be ordered now: valid, not yet replaced, window open.
    pub rekey_open: bool,
    pub subject: String,
    pub not_before: i64,
}

fn summary(services: &Services, row: CredentialRow, now: i64) -> CredentialSummary {
    let status = cert_status(&row, now);
    let (subject, not_before) = certificate_facts(&row.certificate);
    let rekey_window = RekeyWindow::for_expiry(row.not_after, services.config.lifecycle.rekey_window_closes_hours);
    CredentialSummary {
        status,
        quota_remaining: renewal::remaining(row.quota_total, row.quota_used),
        rekey_open: status == "valid" && row.replaced_by.is_none() && rekey_window.is_open(now),
        rekey_window,
        subject,
        not_before,
        row,
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
fn owned_credential(conn: &mut DbConnection, principal: &Principal, id: &str) -> Result<CredentialRow, ServiceError> {
    if id.len() > 64 {
        return Err(ServiceError::NotFound("No such credential".into()));
    }
    credentials::owned_by(conn, &principal.user_id, id)?
        .ok_or_else(|| ServiceError::NotFound("No such credential".into()))
}

fn key_kind(services: &Services, requested: Option<&str>) -> Result<KeyKind, ServiceError> {
    requested
        .unwrap_or(&services.config.lifecycle.default_key_type)
        .parse()
        .map_err(|_| ServiceError::InvalidRequest("key_type: rsa-2048, rsa-3072, ec-p256 or ec-p384".into()))
}

/// The subject of the person's certificate (ETSI EN 319 412-2 §4.2.4): given name, surname, the person's
/// country and rssp's stable identifier of the person.
fn person_subject(services: &Services, account: &accounts::Account) -> Result<x509_cert::name::Name, ServiceError> {
    let (Some(given_name), Some(surname)) = (account.given_name.as_deref(), account.surname.as_deref()) else {
        return Err(ServiceError::Conflict("The account has no given name and surname for the certificate".into()));
    };
    let person = PersonSubject {
        names: Some((given_name.to_string(), surname.to_string())),
        fallback_common_name: account.username.clone(),
        serial_number: provider_serial_number(&account.id),
        country: account.country.clone().unwrap_or_else(|| services.config.default_subject_country().to_string()),
    };
    person_name(&person)
        .map_err(|e| ServiceError::InvalidRequest(format!("The name cannot go into a certificate: {e}")))
}

/// Generates the key in the HSM and has the CA certify it for the person, for the order's validity.
fn new_certified_key(
    services: &Services,
    account: &accounts::Account,
    order: &OrderRow,
    kind: KeyKind,
    credential_id: &str,
    now: i64,
) -> Result<(String, crate::pki::ca::IssuedCertificate), ServiceError> {
    let subject = person_subject(services, account)?;
    let key = services.keystore.generate(kind, credential_id)?;
    let issued = services.ca.issue_end_entity(
        services.ca_keys(),
        &key.public_key_der,
        subject,
        &services.public_url,
        now,
        i64::from(order.validity_years) * 365,
    )?;
    Ok((key.id.to_hex(), issued))
}

/// Records the new credential and fulfils the order, in one transaction. The order must still be paid:
/// of two requests racing for one order, one gets the credential.
fn record_issuance(
    services: &Services,
    c: &mut DbConnection,
    account: &accounts::Account,
    order: &OrderRow,
    row: &CredentialRow,
    replaces: Option<&str>,
    now: i64,
) -> Result<(), ServiceError> {
    if !store::transition(c, &order.id, PAID, FULFILLED)? {
        return Err(ServiceError::Conflict("The order was fulfilled meanwhile".into()));
    }
    credentials::insert(c, row)?;
    let mut fulfilled = store::by_id(c, &order.id)?.ok_or_else(|| ServiceError::internal("order vanished"))?;
    fulfilled.new_credential_id = Some(row.id.clone());
    fulfilled.fulfilled_at = Some(now);
    store::update_if(c, &fulfilled, FULFILLED)?;
    if let Some(old) = replaces {
        if !credentials::set_replaced_by(c, old, &row.id)? {
            return Err(ServiceError::Conflict("The certificate was already rekeyed".into()));
        }
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
        "credential.issued",
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
        status: STATUS_ENABLED.into(),
        revoked_at: None,
        created_at: now,
        quota_total: Some(order.transactions),
        quota_used: 0,
        order_id: Some(order.id.clone()),
        replaced_by: None,
        revocation_reason: None,
    }
}

/// What a person sends to have the certificate issued.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    pub order_id: String,
    pub issuance_terms_version: String,
    pub otp: String,
    pub key_type: Option<String>,
}

/// Issuance (and reissue): paid order, identity accepted, authenticator paired, issuance terms
/// accepted, authorised with a TOTP code. The key pair is generated in the HSM.
pub fn issue(
    services: &Services,
    principal: &Principal,
    request: IssueRequest,
) -> Result<CredentialSummary, ServiceError> {
    audited(services, "credential.issue", Some(&principal.user_id), || {
        let now = services.now();
        let lifecycle = &services.config.lifecycle;
        let mut conn = services.conn()?;
        let account = require_second_factor_ready(services, &mut conn, principal)?;
        let order = owned_order(&mut conn, principal, &request.order_id)?;
        if order.purpose == Purpose::Rekey.as_str() {
            return Err(ServiceError::Conflict("A rekey order is completed with the credential's rekey".into()));
        }
        if order.status != PAID {
            return Err(ServiceError::Conflict(format!("The order is {}; it must be paid", order.status)));
        }
        if !store::order_identity_accepted(&mut conn, &order.id)? {
            return Err(ServiceError::Conflict("The identity of the person is not verified yet".into()));
        }
        if !accounts::has_totp(&mut conn, &account.id)? {
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
        second_factor::verify_otp(services, &mut conn, &account.id, &request.otp)?;
        let credential_id = uuid::Uuid::new_v4().to_string();
        // The HSM and the CA work without a transaction open.
        let (key_id, issued) = new_certified_key(services, &account, &order, kind, &credential_id, now)?;
        let row = credential_row(services, credential_id, kind, key_id, issued, &order, now);
        db::write_transaction(&mut conn, |c| {
            accounts::insert_consent(
                c,
                &accounts::Consent {
                    id: uuid::Uuid::new_v4().to_string(),
                    user_id: account.id.clone(),
                    document: "issuance_terms".into(),
                    version: request.issuance_terms_version.clone(),
                    accepted_at: now,
                },
            )?;
            record_issuance(services, c, &account, &order, &row, None, now)
        })?;
        Ok(summary(services, row, now))
    })
}

/// What a person sends to rekey a credential.
#[derive(Debug, Clone)]
pub struct RekeyRequest {
    pub credential_id: String,
    pub order_id: String,
    pub otp: String,
    pub key_type: Option<String>,
}

/// Rekey: a paid rekey order for this credential, personal data confirmed, identity document
/// uploaded, inside the window, signed with a TOTP code. The new credential is issued before the old
/// one expires; the old one keeps working until then and shows what replaced it.
pub fn rekey(
    services: &Services,
    principal: &Principal,
    request: RekeyRequest,
) -> Result<CredentialSummary, ServiceError> {
    audited(services, "credential.rekey", Some(&principal.user_id), || {
        let now = services.now();
        let mut conn = services.conn()?;
        let account = require_second_factor_ready(services, &mut conn, principal)?;
        let old = owned_credential(&mut conn, principal, &request.credential_id)?;
        check_rekey_window(services, &old, now)?;
        let order = owned_order(&mut conn, principal, &request.order_id)?;
        if order.purpose != Purpose::Rekey.as_str() || order.credential_id.as_deref() != Some(old.id.as_str()) {
            return Err(ServiceError::Conflict("The order is not a rekey of this credential".into()));
        }
        if order.status != PAID {
            return Err(ServiceError::Conflict(format!("The order is {}; it must be paid", order.status)));
        }
        if !order.personal_data_confirmed {
            return Err(ServiceError::Conflict("Confirm the personal data of the order first".into()));
        }
        if !store::order_has_document(&mut conn, &order.id)? {
            return Err(ServiceError::Conflict("Upload a copy of the identity document first".into()));
        }
        let kind = key_kind(services, request.key_type.as_deref())?;
        super::authenticator::require_signing_allowed(&mut conn, &account.id)?;
        second_factor::verify_otp(services, &mut conn, &account.id, &request.otp)?;
        let account = account_of(&mut conn, principal)?;
        let credential_id = uuid::Uuid::new_v4().to_string();
        let (key_id, issued) = new_certified_key(services, &account, &order, kind, &credential_id, now)?;
        let row = credential_row(services, credential_id, kind, key_id, issued, &order, now);
        db::write_transaction(&mut conn, |c| record_issuance(services, c, &account, &order, &row, Some(&old.id), now))?;
        Ok(summary(services, row, now))
    })
}

fn revoke_in(
    services: &Services,
    c: &mut DbConnection,
    row: &CredentialRow,
    reason: &str,
    by: &str,
    now: i64,
) -> Result<(), ServiceError> {
    if !credentials::revoke(c, &row.id, reason, now)? {
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
    audit::success(c, now, "credential.revoked", Some(&row.user_id), Some(&row.id), format!("by {by}: {reason}"))?;
    Ok(())
}

fn check_reason(reason: &str) -> Result<(), ServiceError> {
    if reason.chars().count() > 200 || reason.chars().any(char::is_control) {
        return Err(ServiceError::InvalidRequest("reason: at most 200 characters".into()));
    }
    Ok(())
}

/// Revocation by the person, authorised with a TOTP code. The CRL lists it from now on.
pub fn revoke_own(
    services: &Services,
    principal: &Principal,
    credential_id: &str,
    otp: &str,
    reason: Option<&str>,
) -> Result<CredentialSummary, ServiceError> {
    audited(services, "credential.revoke", Some(&principal.user_id), || {
        let now = services.now();
        let reason = reason.unwrap_or("revoked by the holder");
        check_reason(reason)?;
        let mut conn = services.conn()?;
        let row = owned_credential(&mut conn, principal, credential_id)?;
        if row.revoked_at.is_some() {
            return Err(ServiceError::Conflict("The credential is already revoked".into()));
        }
        second_factor::verify_otp(services, &mut conn, &principal.user_id, otp)?;
        db::write_transaction(&mut conn, |c| revoke_in(services, c, &row, reason, "the holder", now))?;
        let row =
            credentials::by_id(&mut conn, &row.id)?.ok_or_else(|| ServiceError::internal("credential vanished"))?;
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
    credential_id: &str,
    reason: &str,
) -> Result<CredentialSummary, ServiceError> {
    audited(services, "credential.revoke", None, || {
        let now = services.now();
        check_reason(reason)?;
        if reason.trim().is_empty() {
            return Err(ServiceError::InvalidRequest("reason: required".into()));
        }
        let mut conn = services.conn()?;
        let row = credentials::by_id(&mut conn, credential_id)?
            .ok_or_else(|| ServiceError::NotFound("No such credential".into()))?;
        db::write_transaction(&mut conn, |c| {
            revoke_in(services, c, &row, reason, &format!("operator {operator}"), now)
        })?;
        let row =
            credentials::by_id(&mut conn, &row.id)?.ok_or_else(|| ServiceError::internal("credential vanished"))?;
        drop(conn);
        ca::publish_after_revocation(services);
        Ok(summary(services, row, now))
    })
}

/// Credentials of any user, for operators.
pub fn of_user(services: &Services, user_id: &str) -> Result<Vec<CredentialSummary>, ServiceError> {
    let rows = credentials::of_user(&mut *services.conn()?, user_id, i64::MAX)?;
    let now = services.now();
    Ok(rows.into_iter().map(|row| summary(services, row, now)).collect())
}

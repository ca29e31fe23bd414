//! Operators of the admin API: API keys created with the CLI, and what operators may read.

use crate::audit;
use crate::db::{self, accounts, operators, orders, outbox};
use crate::domain::{secrets, ApiKeyRole, AuditEventName, CheckStatus, OrderStatus, UserId};

use super::views::{AuditRecord, IdentityCheck, Order, OutboxMessage, Person};
use super::{Field, ServiceError, Services};

/// An authenticated operator (or TSA client).
#[derive(Debug, Clone)]
pub struct Operator {
    /// The name the key was created with.
    pub name: String,
}

/// Creates an operator and returns the API key, which is shown this once and stored only as a digest.
pub fn create(services: &Services, name: &str) -> Result<String, ServiceError> {
    create_key(services, name, ApiKeyRole::Admin)
}

/// Creates an API key of `role` under `name` (unique across roles); returns the key, shown this once
/// and stored only as a digest.
pub fn create_key(services: &Services, name: &str, role: ApiKeyRole) -> Result<String, ServiceError> {
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c)) {
        return Err(ServiceError::invalid_field(Field::Name, "1 to 64 of A-Z a-z 0-9 . _ - @"));
    }
    let now = services.now();
    let prefix = match role {
        ApiKeyRole::Admin => "rsspop",
        ApiKeyRole::TsaClient => "rssptsa",
    };
    let key = format!("{prefix}_{}", secrets::new_token());
    db::write_transaction(&mut *services.conn()?, |c| {
        if operators::by_name(c, name)?.is_some() {
            return Err(ServiceError::Conflict(format!("operator {name:?} already exists")));
        }
        operators::insert(
            c,
            &operators::OperatorRow {
                id: uuid::Uuid::new_v4().to_string(),
                name: name.to_string(),
                key_digest: secrets::token_digest(&key),
                created_at: now,
                revoked_at: None,
                role,
            },
        )?;
        audit::success(c, now, AuditEventName::OperatorCreate, None, None, format!("{role} key {name}"))
            .map_err(ServiceError::from)
    })?;
    Ok(key)
}

/// Revokes the API key of `role` named `name` (`rssp operator revoke`, `rssp tsa-client revoke`); the
/// audit records made with it stay.
pub fn revoke(services: &Services, name: &str, role: ApiKeyRole) -> Result<(), ServiceError> {
    let now = services.now();
    db::write_transaction(&mut *services.conn()?, |c| {
        if !operators::revoke(c, name, role, now)? {
            return Err(ServiceError::NotFound(format!("no active {role} key {name:?}")));
        }
        audit::success(c, now, AuditEventName::OperatorRevoke, None, None, format!("{role} key {name}"))
            .map_err(ServiceError::from)
    })
}

/// The holder of an API key of `role`. A key of another role is refused like an unknown one: a TSA
/// client's key opens nothing of the admin API, nor an operator's key `POST /tsa`.
pub(crate) fn authenticate(services: &Services, key: &str, role: ApiKeyRole) -> Result<Operator, ServiceError> {
    let row = operators::by_key_digest(&mut *services.conn()?, &secrets::token_digest(key))?;
    match row {
        Some(op) if op.revoked_at.is_none() && op.role == role => Ok(Operator { name: op.name }),
        _ => {
            services.audit_refusal(AuditEventName::OperatorAuth, None, None, &ServiceError::InvalidToken);
            Err(ServiceError::InvalidToken)
        }
    }
}

pub(crate) fn users(services: &Services, email: Option<&str>) -> Result<Vec<Person>, ServiceError> {
    let email = email.map(|e| e.trim().to_ascii_lowercase());
    Ok(accounts::list(&mut *services.conn()?, email.as_deref(), super::MAX_ROWS)?
        .into_iter()
        .map(Person::from)
        .collect())
}

/// A person with their orders and credentials.
pub type UserDetail = (Person, Vec<Order>, Vec<super::issuance::CredentialSummary>);

pub(crate) fn user(services: &Services, user_id: &UserId) -> Result<UserDetail, ServiceError> {
    let mut conn = services.conn()?;
    let account = accounts::by_id(&mut conn, user_id)?.ok_or_else(|| ServiceError::NotFound("No such user".into()))?;
    let orders = orders::of_user(&mut conn, user_id)?;
    drop(conn);
    let credentials = super::issuance::of_user(services, user_id)?;
    Ok((account.into(), orders.into_iter().map(Order::from).collect(), credentials))
}

pub(crate) fn orders(services: &Services, status: Option<OrderStatus>) -> Result<Vec<Order>, ServiceError> {
    Ok(orders::list(&mut *services.conn()?, status, super::MAX_ROWS)?.into_iter().map(Order::from).collect())
}

pub(crate) fn identity_checks(
    services: &Services,
    status: Option<CheckStatus>,
) -> Result<Vec<IdentityCheck>, ServiceError> {
    Ok(orders::checks(&mut *services.conn()?, status, super::MAX_ROWS)?.into_iter().map(IdentityCheck::from).collect())
}

pub(crate) fn audit_page(services: &Services, after: i64, limit: i64) -> Result<Vec<AuditRecord>, ServiceError> {
    let rows = db::audit::page(&mut *services.conn()?, after, limit.clamp(1, super::MAX_ROWS))?;
    Ok(rows.into_iter().map(AuditRecord::from).collect())
}

/// The bodies of messages with codes or links are redacted unless in development mode
/// (`notify::secret_bodies_visible`): an operator key must not be a way into people's accounts.
pub fn outbox(services: &Services, recipient: Option<&str>, after: i64) -> Result<Vec<OutboxMessage>, ServiceError> {
    let visible = crate::notify::secret_bodies_visible(&services.config);
    let mut messages = outbox::list(&mut *services.conn()?, recipient, after, super::MAX_ROWS)?;
    for message in messages.iter_mut().filter(|m| m.secret && !visible) {
        message.body = REDACTED_BODY.to_string();
    }
    Ok(messages.into_iter().map(OutboxMessage::from).collect())
}

/// What the admin API shows instead of a body that carries a code or a link (production mode).
pub const REDACTED_BODY: &str = "[redacted: carries a code or link for the person only]";

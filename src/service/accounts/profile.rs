//! What `GET /me` shows, and the consents a person gives.

use crate::audit;
use crate::db::accounts;
use crate::db::{self, authenticators};
use crate::domain::AuditEventName;
use crate::service::views::{Consent, Person};
use crate::service::{audited, Field, Principal, ServiceError, Services};

use super::pairing::{totp_status, TotpStatus};
use super::{account_of, record_consent};

/// What `GET /me` shows.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The person.
    pub account: Person,
    /// Where pairing an authenticator stands.
    pub totp: TotpStatus,
    /// The documents accepted.
    pub consents: Vec<Consent>,
}

pub fn profile(services: &Services, principal: &Principal) -> Result<Profile, ServiceError> {
    let mut conn = services.conn()?;
    let account = account_of(&mut conn, principal)?;
    let paired = authenticators::has_totp(&mut conn, &account.id)?;
    let consents = accounts::consents_of(&mut conn, &account.id)?;
    Ok(Profile {
        totp: totp_status(services, &account, paired, services.now()),
        account: account.into(),
        consents: consents.into_iter().map(Consent::from).collect(),
    })
}

pub fn accept_consent(
    services: &Services,
    principal: &Principal,
    document: &str,
    version: &str,
) -> Result<Consent, ServiceError> {
    audited(services, AuditEventName::AccountConsent, Some(&principal.user_id), || {
        let lifecycle = &services.config.lifecycle;
        let current = match document {
            "privacy" => &lifecycle.privacy_version,
            "terms" => &lifecycle.terms_version,
            _ => return Err(ServiceError::invalid_field(Field::Document, "privacy or terms")),
        };
        if version != current {
            return Err(ServiceError::InvalidRequest(format!(
                "version: the current version of {document} is {current}"
            )));
        }
        let now = services.now();
        db::write_transaction(&mut *services.conn()?, |c| {
            let consent = record_consent(c, &principal.user_id, document, version, now)?;
            audit::success(
                c,
                now,
                AuditEventName::AccountConsent,
                Some(&principal.user_id),
                None,
                format!("{document} {version}"),
            )?;
            Ok(consent.into())
        })
    })
}

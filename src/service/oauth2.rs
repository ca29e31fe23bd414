//! The OAuth2 authorisation server of CSC v1.0.4.0 §8.3 and v2.0.0.2 §8: registered clients
//! ([`clients`]), the token endpoint's grants and the revocation endpoint (RFC 7009).
//!
//! Built so far: the `client_credentials` grant, which gives a confidential client bound by an operator
//! to one account (an organisation's e-seal signer) a `service` token for that account, and revocation.
//! The authorisation code flow with its sign-in and consent pages, refresh tokens and the `credential`
//! scope come next (issue 13).

pub mod clients;

use crate::audit;
use crate::db::{self, accounts, oauth_clients, tokens};
use crate::domain::oauth2::Scope;
use crate::domain::{secrets, AccountStatus, AuditEventName};

use self::clients::{Client, ClientAuthentication};
use super::auth::IssuedTokens;
use super::{OAuthErrorCode, ServiceError, Services};

/// The grant types the token endpoint offers (RFC 8414 `grant_types_supported`).
pub const GRANT_TYPES: &[&str] = &["client_credentials"];

/// `grant_type=client_credentials` (RFC 6749 §4.4): a `service` token for the account the operator bound
/// the (confidential) client to. `scope` may be left out or be `service`; the CSC `credential` scope
/// always needs the person (CSC v1.0.4.0 §8.3.3).
pub fn client_credentials(
    services: &Services,
    presented: ClientAuthentication,
    scope: Option<&str>,
) -> Result<IssuedTokens, ServiceError> {
    let claimed = presented.client_id().chars().take(64).collect::<String>();
    let result = (|| {
        let client = clients::authenticate(services, &presented)?;
        let account = match (&client.client_type, &client.account) {
            (crate::domain::ClientType::Confidential, Some(account)) => account.clone(),
            _ => {
                return Err(ServiceError::oauth(
                    OAuthErrorCode::UnauthorizedClient,
                    "This client may not use the client_credentials grant: it acts for no account",
                ))
            }
        };
        let scope = match scope {
            None => Scope::Service,
            Some(scope) => {
                Scope::parse(scope).map_err(|e| ServiceError::oauth(OAuthErrorCode::InvalidScope, e.to_string()))?
            }
        };
        if scope != Scope::Service || !client.scopes.allows(scope) {
            return Err(ServiceError::oauth(
                OAuthErrorCode::InvalidScope,
                "The client_credentials grant gives the service scope only",
            ));
        }
        issue_service_token(services, &client, &account)
    })();
    if let Err(refused) = &result {
        let detail = format!("client_credentials for client {claimed:?} refused: {refused}");
        services.audit_refusal_detailed(AuditEventName::OauthToken, None, None, refused, detail);
    }
    result
}

fn issue_service_token(
    services: &Services,
    client: &Client,
    account: &crate::domain::UserId,
) -> Result<IssuedTokens, ServiceError> {
    let now = services.now();
    let lifetime = services.config.security.access_token_lifetime_secs;
    let access_token = secrets::new_token();
    db::write_transaction(&mut *services.conn()?, |c| {
        // The client's row is updated (and held) by the transaction that issues: a client disabled
        // since it authenticated gets nothing, and a disable waiting on it revokes what was issued.
        if !oauth_clients::use_for_issue(c, &client.id, now)? {
            return Err(ServiceError::oauth(OAuthErrorCode::InvalidClient, "The client is disabled"));
        }
        // Read in the transaction that issues: an account that is gone or not active gets nothing.
        let active = accounts::by_id(c, account)?.is_some_and(|a| a.status == AccountStatus::Active);
        if !active {
            return Err(ServiceError::oauth(
                OAuthErrorCode::InvalidGrant,
                "The account this client acts for is not active",
            ));
        }
        tokens::insert(
            c,
            &tokens::TokenRow {
                digest: secrets::token_digest(&access_token),
                user_id: account.to_string(),
                kind: tokens::OAUTH_SERVICE.into(),
                refresh_digest: None,
                expires_at: now + lifetime,
                revoked: false,
                client_id: Some(client.id.to_string()),
            },
        )?;
        let detail = format!("client_credentials: service token for client {} ({:?})", client.id, client.name);
        audit::success(c, now, AuditEventName::OauthToken, Some(account), None, detail).map_err(ServiceError::from)
    })?;
    Ok(IssuedTokens { access_token, refresh_token: None, expires_in: lifetime })
}

/// `/oauth2/revoke` (RFC 7009): revokes a token issued to the authenticated client (a refresh token
/// takes the access tokens minted with it). A token that is unknown, already revoked or another client's
/// is answered the same way and revokes nothing (RFC 7009 §2.2): the answer tells a client nothing about
/// tokens that are not its own.
pub fn revoke(
    services: &Services,
    presented: ClientAuthentication,
    token: &str,
    hint: Option<&str>,
) -> Result<(), ServiceError> {
    let claimed = presented.client_id().chars().take(64).collect::<String>();
    let result = (|| {
        let client = clients::authenticate(services, &presented)?;
        let mut conn = services.conn()?;
        let digest = secrets::token_digest(token);
        // The hint only says where to look first, and may be ignored (RFC 7009 §2.1): every kind is looked
        // for, so an unknown hint changes nothing either.
        let _ = hint;
        let row = tokens::find(&mut conn, &digest)?
            .filter(|t| !t.revoked && t.client_id.as_deref() == Some(client.id.as_str()));
        let now = services.now();
        db::write_transaction(&mut conn, |c| match &row {
            Some(row) => {
                tokens::revoke(c, &row.digest)?;
                let detail = format!("client {}: {} token revoked", client.id, row.kind);
                audit::success(c, now, AuditEventName::OauthRevoke, Some(&row.user_id), None, detail)
                    .map_err(ServiceError::from)
            }
            None => {
                let detail = format!("client {}: a token unknown, revoked or not its own: nothing revoked", client.id);
                audit::record(
                    c,
                    now,
                    audit::AuditEvent {
                        event: AuditEventName::OauthRevoke,
                        outcome: audit::Outcome::Refused,
                        user_id: None,
                        credential_id: None,
                        detail,
                    },
                )
                .map_err(ServiceError::from)
            }
        })
    })();
    if let Err(refused) = &result {
        let detail = format!("revocation by client {claimed:?} refused: {refused}");
        services.audit_refusal_detailed(AuditEventName::OauthRevoke, None, None, refused, detail);
    }
    result
}

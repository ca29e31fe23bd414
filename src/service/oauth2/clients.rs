//! OAuth2 clients: registered by operators (`rssp oauth-client`, the admin API), listed, disabled, and
//! authenticated at the token and revocation endpoints.

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::audit;
use crate::db::{self, accounts, oauth_clients};
use crate::domain::oauth2::client::{ClientRegistration, ClientScopes};
use crate::domain::oauth2::RedirectUri;
use crate::domain::{secrets, AuditEventName, ClientId, ClientType, UserId};
use crate::service::{OAuthErrorCode, ServiceError, Services};

/// A client as an operator asks to register it.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: String,
    pub client_type: ClientType,
    pub redirect_uris: Vec<String>,
    /// `service`, `credential` or both, separated by commas or spaces.
    pub scopes: String,
    /// The account a confidential client acts for with the `client_credentials` grant.
    pub account: Option<UserId>,
}

/// A registered client's id, and its secret (confidential clients), shown this once.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CreatedClient {
    pub client_id: ClientId,
    pub client_secret: Option<String>,
}

/// A registered client, as operators see it.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: ClientId,
    pub name: String,
    pub client_type: ClientType,
    pub redirect_uris: Vec<RedirectUri>,
    pub scopes: ClientScopes,
    pub account: Option<UserId>,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

impl Client {
    fn from_row(row: oauth_clients::ClientRow) -> Result<Client, ServiceError> {
        let uris: Vec<String> = serde_json::from_str(&row.redirect_uris)
            .map_err(|e| ServiceError::internal_while(format!("redirect URIs of OAuth client {}", row.id), e))?;
        // Checked when registered: a stored URI the rules refuse now is a change of rules, not input.
        let redirect_uris = uris
            .iter()
            .map(|uri| RedirectUri::register(uri))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ServiceError::internal_while(format!("redirect URI of OAuth client {}", row.id), e))?;
        let scopes = ClientScopes::parse(&row.scopes)
            .map_err(|e| ServiceError::internal_while(format!("scopes of OAuth client {}", row.id), e))?;
        Ok(Client {
            id: ClientId::new(row.id),
            name: row.name,
            client_type: row.client_type,
            redirect_uris,
            scopes,
            account: row.account_user_id.map(UserId::new),
            created_at: row.created_at,
            disabled_at: row.disabled_at,
        })
    }
}

/// Registers a client; its secret (for a confidential client) is returned this once and stored only as a
/// digest.
pub fn create(services: &Services, new: NewClient) -> Result<CreatedClient, ServiceError> {
    let invalid =
        |e: crate::domain::oauth2::client::ClientRegistrationError| ServiceError::InvalidRequest(e.to_string());
    let scopes = ClientScopes::parse(&new.scopes).map_err(invalid)?;
    let registration = ClientRegistration::new(&new.name, new.client_type, &new.redirect_uris, scopes, new.account)
        .map_err(invalid)?;
    let client_id = ClientId::generate();
    let secret =
        (registration.client_type == ClientType::Confidential).then(|| format!("rsspcs_{}", secrets::new_token()));
    let uris: Vec<&str> = registration.redirect_uris.iter().map(RedirectUri::as_str).collect();
    let row = oauth_clients::ClientRow {
        id: client_id.to_string(),
        name: registration.name.clone(),
        client_type: registration.client_type,
        secret_digest: secret.as_deref().map(secrets::token_digest),
        redirect_uris: serde_json::to_string(&uris).map_err(ServiceError::internal)?,
        scopes: registration.scopes.stored(),
        account_user_id: registration.account.as_ref().map(|a| a.to_string()),
        created_at: services.now(),
        disabled_at: None,
    };
    let now = services.now();
    db::write_transaction(&mut *services.conn()?, |c| {
        if let Some(account) = &registration.account {
            if accounts::by_id(c, account)?.is_none() {
                return Err(ServiceError::InvalidRequest("account_user_id: no such account".into()));
            }
        }
        oauth_clients::insert(c, &row)?;
        let detail = format!(
            "client {} {:?}: {}, scopes {}, {} redirect URIs{}",
            row.id,
            row.name,
            row.client_type,
            row.scopes,
            uris.len(),
            row.account_user_id.as_ref().map(|a| format!(", acts for account {a}")).unwrap_or_default()
        );
        audit::success(c, now, AuditEventName::OauthClientCreate, row.account_user_id.as_deref(), None, detail)
            .map_err(ServiceError::from)
    })?;
    Ok(CreatedClient { client_id, client_secret: secret })
}

/// The registered clients, the most recent first.
pub fn list(services: &Services) -> Result<Vec<Client>, ServiceError> {
    oauth_clients::list(&mut *services.conn()?, super::super::MAX_ROWS)?.into_iter().map(Client::from_row).collect()
}

/// Disables a client: it authenticates no more, and every token issued to it is revoked, in one
/// transaction.
pub fn disable(services: &Services, client_id: &ClientId) -> Result<(), ServiceError> {
    let now = services.now();
    db::write_transaction(&mut *services.conn()?, |c| {
        if !oauth_clients::disable(c, client_id, now)? {
            return Err(ServiceError::NotFound(format!("no enabled OAuth client {client_id:?}")));
        }
        let detail = format!("client {client_id}: disabled, its tokens revoked");
        audit::success(c, now, AuditEventName::OauthClientDisable, None, None, detail).map_err(ServiceError::from)
    })
}

/// How a client authenticated a request to the token or revocation endpoint (RFC 6749 §2.3).
#[derive(Debug)]
pub enum ClientAuthentication {
    /// `client_secret_basic`: the id and secret in the `Authorization: Basic` header.
    Basic { client_id: String, secret: SecretString },
    /// `client_secret_post`: the id and secret as form parameters.
    Post { client_id: String, secret: SecretString },
    /// A public client: its `client_id` alone.
    IdOnly { client_id: String },
}

impl ClientAuthentication {
    /// The client id it names.
    pub fn client_id(&self) -> &str {
        match self {
            ClientAuthentication::Basic { client_id, .. }
            | ClientAuthentication::Post { client_id, .. }
            | ClientAuthentication::IdOnly { client_id } => client_id,
        }
    }
}

fn client_refused(description: &'static str) -> ServiceError {
    ServiceError::oauth(OAuthErrorCode::InvalidClient, description)
}

/// The enabled client that `presented` authenticates: a confidential client by its secret (compared in
/// constant time with the stored digest), a public client by its id alone (it has no secret: one sent
/// is refused, so that a public client is never mistaken for one that proved something).
pub fn authenticate(conn: &mut db::DbConnection, presented: &ClientAuthentication) -> Result<Client, ServiceError> {
    let row = oauth_clients::find(conn, presented.client_id())?
        .filter(|row| row.disabled_at.is_none())
        .ok_or_else(|| client_refused("Invalid parameter client_id: no such client, or disabled"))?;
    match (row.client_type, presented) {
        (
            ClientType::Confidential,
            ClientAuthentication::Basic { secret, .. } | ClientAuthentication::Post { secret, .. },
        ) => {
            let sent = secrets::token_digest(secret.expose_secret());
            let stored = row.secret_digest.as_deref().unwrap_or_default();
            if !bool::from(sent.as_bytes().ct_eq(stored.as_bytes())) {
                return Err(client_refused("Invalid parameter client_secret"));
            }
        }
        (ClientType::Confidential, ClientAuthentication::IdOnly { .. }) => {
            return Err(client_refused("Client authorization required: this client authenticates with its secret"));
        }
        (ClientType::Public, ClientAuthentication::IdOnly { .. }) => {}
        (ClientType::Public, _) => {
            return Err(client_refused("This client is public: it has no secret, send its client_id alone"));
        }
    }
    Client::from_row(row)
}

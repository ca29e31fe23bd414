//! OAuth2 clients: registered by operators (`rssp oauth-client`, the admin API), listed, disabled, and
//! authenticated at the token and revocation endpoints.

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::audit;
use crate::db::{self, accounts, oauth_clients};
use crate::domain::oauth2::assertion::ClientKeys;
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
    /// A confidential client's public keys (a JWK Set), when it authenticates with `private_key_jwt`
    /// instead of a secret.
    pub jwks: Option<String>,
}

/// A registered client's id, and its secret (a confidential client without keys), shown this once.
#[derive(Debug)]
pub struct CreatedClient {
    pub client_id: ClientId,
    pub client_secret: Option<SecretString>,
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
    /// How it authenticates.
    pub authentication: ClientAuthMethod,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

/// How a registered client proves who it is.
#[derive(Debug, Clone)]
pub enum ClientAuthMethod {
    /// A public client: its id alone.
    None,
    /// Its secret (Basic or in the form).
    Secret,
    /// An assertion signed with one of these keys (`private_key_jwt`).
    PrivateKeyJwt(ClientKeys),
}

impl ClientAuthMethod {
    /// The method's name in RFC 7591 (`token_endpoint_auth_method`).
    pub fn as_str(&self) -> &'static str {
        match self {
            ClientAuthMethod::None => "none",
            ClientAuthMethod::Secret => "client_secret_basic",
            ClientAuthMethod::PrivateKeyJwt(_) => "private_key_jwt",
        }
    }
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
        let authentication = match (row.client_type, &row.jwks) {
            (ClientType::Public, _) => ClientAuthMethod::None,
            (ClientType::Confidential, Some(jwks)) => ClientAuthMethod::PrivateKeyJwt(
                ClientKeys::parse(jwks)
                    .map_err(|e| ServiceError::internal_while(format!("keys of OAuth client {}", row.id), e))?,
            ),
            (ClientType::Confidential, None) => ClientAuthMethod::Secret,
        };
        Ok(Client {
            id: ClientId::new(row.id),
            name: row.name,
            client_type: row.client_type,
            redirect_uris,
            scopes,
            account: row.account_user_id.map(UserId::new),
            authentication,
            created_at: row.created_at,
            disabled_at: row.disabled_at,
        })
    }
}

/// Registers a client; its secret (for a confidential client) is returned this once and stored only as a
/// digest.
pub fn create(services: &Services, new: NewClient, operator: &str) -> Result<CreatedClient, ServiceError> {
    let invalid =
        |e: crate::domain::oauth2::client::ClientRegistrationError| ServiceError::InvalidRequest(e.to_string());
    let scopes = ClientScopes::parse(&new.scopes).map_err(invalid)?;
    let registration = ClientRegistration::new(
        &new.name,
        new.client_type,
        &new.redirect_uris,
        scopes,
        new.account,
        new.jwks.as_deref(),
    )
    .map_err(invalid)?;
    let client_id = ClientId::generate();
    // A confidential client proves itself with a secret, or with its keys when it registered some.
    let secret = (registration.client_type == ClientType::Confidential && registration.jwks.is_none())
        .then(|| format!("rsspcs_{}", secrets::new_token()));
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
        last_used_at: None,
        disabled_at: None,
        jwks: registration.jwks.as_ref().map(|(text, _)| text.clone()),
    };
    let now = services.now();
    db::write_transaction(&mut *services.conn()?, |c| {
        if let Some(account) = &registration.account {
            let no_such_account = || ServiceError::InvalidRequest("account_user_id: no such account".into());
            if !plausible_id(account) {
                return Err(no_such_account());
            }
            let holder = accounts::by_id(c, account)?.ok_or_else(no_such_account)?;
            // The holder learns that an application acts for their account.
            if let Some(email) = &holder.email {
                let notice = crate::notify::templates::application_bound(email, &registration.name);
                crate::notify::enqueue(c, &services.config, now, Some(account), notice)?;
            }
        }
        oauth_clients::insert(c, &row)?;
        let detail = format!(
            "by operator {operator}: client {} {:?}: {}{}, scopes {}, {} redirect URIs{}",
            row.id,
            row.name,
            row.client_type,
            if row.jwks.is_some() { " (private_key_jwt)" } else { "" },
            row.scopes,
            uris.len(),
            row.account_user_id.as_ref().map(|a| format!(", acts for account {a}")).unwrap_or_default()
        );
        audit::success(c, now, AuditEventName::OauthClientCreate, row.account_user_id.as_deref(), None, detail)
            .map_err(ServiceError::from)
    })?;
    Ok(CreatedClient { client_id, client_secret: secret.map(SecretString::from) })
}

/// The registered clients, the most recent first.
pub fn list(services: &Services) -> Result<Vec<Client>, ServiceError> {
    oauth_clients::list(&mut *services.conn()?, super::super::MAX_ROWS)?.into_iter().map(Client::from_row).collect()
}

/// Disables a client: it authenticates no more, and every token issued to it is revoked, in one
/// transaction.
pub fn disable(services: &Services, client_id: &ClientId, operator: &str) -> Result<(), ServiceError> {
    if !plausible_id(client_id) {
        return Err(ServiceError::NotFound(format!("no enabled OAuth client {client_id:?}")));
    }
    let now = services.now();
    db::write_transaction(&mut *services.conn()?, |c| {
        if !oauth_clients::disable(c, client_id, now)? {
            return Err(ServiceError::NotFound(format!("no enabled OAuth client {client_id:?}")));
        }
        let detail = format!("by operator {operator}: client {client_id} disabled, its tokens revoked");
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
    /// `private_key_jwt`: an assertion the client signed (RFC 7523 §2.2); `client_id` is the one sent
    /// beside it or, when none was, the assertion's (unverified) `sub`, which then must verify too.
    Assertion { client_id: String, assertion: SecretString },
}

impl ClientAuthentication {
    /// The client id it names.
    pub fn client_id(&self) -> &str {
        match self {
            ClientAuthentication::Basic { client_id, .. }
            | ClientAuthentication::Post { client_id, .. }
            | ClientAuthentication::IdOnly { client_id }
            | ClientAuthentication::Assertion { client_id, .. } => client_id,
        }
    }
}

/// Whether `id` could be an id rssp made (a UUID) at all: what is not is refused before the database
/// sees it (PostgreSQL refuses a NUL in text, which would be a 500).
fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic())
}

fn client_refused(description: &'static str) -> ServiceError {
    ServiceError::oauth(OAuthErrorCode::InvalidClient, description)
}

/// The enabled client that `presented` authenticates, as it was registered to: a confidential client by
/// its secret (compared in constant time with the stored digest) or by an assertion signed with one of its
/// keys (accepted once: its `jti` is recorded until it expires), a public client by its id alone (it has no
/// secret: one sent is refused, so that a public client is never mistaken for one that proved something).
/// Takes its own connection.
pub fn authenticate(services: &Services, presented: &ClientAuthentication) -> Result<Client, ServiceError> {
    if !plausible_id(presented.client_id()) {
        return Err(client_refused("Invalid parameter client_id: no such client, or disabled"));
    }
    let mut conn = services.conn()?;
    let row = oauth_clients::find(&mut conn, presented.client_id())?
        .filter(|row| row.disabled_at.is_none())
        .ok_or_else(|| client_refused("Invalid parameter client_id: no such client, or disabled"))?;
    let stored_secret = row.secret_digest.clone();
    let client = Client::from_row(row)?;
    match (&client.authentication, presented) {
        (
            ClientAuthMethod::Secret,
            ClientAuthentication::Basic { secret, .. } | ClientAuthentication::Post { secret, .. },
        ) => {
            let Some(stored) = stored_secret else {
                return Err(client_refused("Invalid parameter client_secret"));
            };
            let sent = secrets::token_digest(secret.expose_secret());
            if !bool::from(sent.as_bytes().ct_eq(stored.as_bytes())) {
                return Err(client_refused("Invalid parameter client_secret"));
            }
        }
        (ClientAuthMethod::PrivateKeyJwt(keys), ClientAuthentication::Assertion { assertion, .. }) => {
            let issuer = services.public_url.trim_end_matches('/');
            let token_endpoint = format!("{issuer}/oauth2/token");
            let now = services.now();
            let accepted = keys
                .verify(assertion.expose_secret(), &client.id, &[token_endpoint.as_str(), issuer], now)
                .map_err(|e| ServiceError::oauth(OAuthErrorCode::InvalidClient, e.to_string()))?;
            if !oauth_clients::remember_assertion(&mut conn, &client.id, &accepted.jti, accepted.expires_at, now)? {
                return Err(client_refused("client_assertion was used before: sign a new one (a new jti)"));
            }
        }
        (ClientAuthMethod::None, ClientAuthentication::IdOnly { .. }) => {}
        (ClientAuthMethod::None, _) => {
            return Err(client_refused("This client is public: it has no secret, send its client_id alone"));
        }
        (ClientAuthMethod::Secret, _) => {
            return Err(client_refused("Client authorization required: this client authenticates with its secret"));
        }
        (ClientAuthMethod::PrivateKeyJwt(_), _) => {
            return Err(client_refused(
                "Client authorization required: this client authenticates with a client_assertion (private_key_jwt)",
            ));
        }
    }
    Ok(client)
}

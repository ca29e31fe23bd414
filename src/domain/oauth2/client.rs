//! What an operator may register as an OAuth2 client: its name, whether it keeps a secret, where it may
//! send people back to, which scopes it may ask for, and the one account it may act for by itself.

use super::assertion::{ClientKeys, JwksError};
use super::{RedirectUri, RedirectUriError, Scope};
use crate::domain::{ClientType, UserId};

/// Most redirect URIs one client may register.
pub const MAX_REDIRECT_URIS: usize = 10;

/// The scopes a client may ask for: `service`, `credential` or both (each request asks for one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientScopes {
    service: bool,
    credential: bool,
}

impl ClientScopes {
    /// Scopes named in a list separated by commas or spaces (`service,credential`); at least one.
    pub fn parse(list: &str) -> Result<ClientScopes, ClientRegistrationError> {
        let mut scopes = ClientScopes { service: false, credential: false };
        for name in list.split([',', ' ']).map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "service" => scopes.service = true,
                "credential" => scopes.credential = true,
                other => return Err(ClientRegistrationError::UnknownScope(other.chars().take(64).collect())),
            }
        }
        if !scopes.service && !scopes.credential {
            return Err(ClientRegistrationError::NoScope);
        }
        Ok(scopes)
    }

    /// Whether the client may ask for `scope`.
    pub fn allows(self, scope: Scope) -> bool {
        match scope {
            Scope::Service => self.service,
            Scope::Credential => self.credential,
        }
    }

    /// The scopes' names, `service` first.
    pub fn names(self) -> Vec<&'static str> {
        [(self.service, Scope::Service), (self.credential, Scope::Credential)]
            .into_iter()
            .filter_map(|(allowed, scope)| allowed.then_some(scope.as_str()))
            .collect()
    }

    /// As stored: the names separated by a space (the form of an OAuth `scope` parameter).
    pub fn stored(self) -> String {
        self.names().join(" ")
    }
}

/// Why a client cannot be registered as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientRegistrationError {
    /// The name is empty, too long or holds invisible characters.
    #[error("name: 1 to 100 characters, none of them invisible (control, format or direction marks)")]
    Name,
    /// A scope that is not `service` or `credential`.
    #[error("scopes: unknown scope {0:?} (service, credential)")]
    UnknownScope(String),
    /// No scope at all.
    #[error("scopes: at least one of service, credential")]
    NoScope,
    /// A redirect URI that cannot be registered.
    #[error("redirect_uris: {uri:?}: {why}")]
    RedirectUri {
        /// The URI (its first 200 characters).
        uri: String,
        /// Why not.
        why: RedirectUriError,
    },
    /// More than [`MAX_REDIRECT_URIS`], or one twice.
    #[error("redirect_uris: at most 10 different URIs")]
    RedirectUris,
    /// A public client bound to an account, which would let anyone knowing its id act for that account.
    #[error("account_user_id: only a confidential client (one with a secret) may act for an account by itself")]
    PublicClientWithAccount,
    /// An account binding for a client without the service scope (the client_credentials grant gives
    /// service tokens only).
    #[error("account_user_id: a client acting for an account by itself needs the service scope")]
    AccountWithoutService,
    /// A client through which no person could ever be sent back (no redirect URI) and no account to act
    /// for: nothing could use it.
    #[error("redirect_uris: a client needs a redirect URI, or an account to act for (client_credentials)")]
    Unusable,
    /// Public keys that cannot be registered.
    #[error("{0}")]
    Jwks(JwksError),
    /// Keys for a public client, which does not authenticate.
    #[error("jwks: only a confidential client authenticates with its keys")]
    PublicClientWithKeys,
    /// The credential scope without a redirect URI: a signing token always needs the person's consent.
    #[error("redirect_uris: the credential scope needs a redirect URI (the person approves each signing)")]
    CredentialWithoutRedirect,
}

/// A client as an operator asks to register it, checked.
#[derive(Debug, Clone)]
pub struct ClientRegistration {
    /// Shown to people on the consent page and to operators.
    pub name: String,
    /// Whether it gets a secret.
    pub client_type: ClientType,
    /// Where it may send people back to, in the order given.
    pub redirect_uris: Vec<RedirectUri>,
    /// What it may ask for.
    pub scopes: ClientScopes,
    /// The account it may act for with the `client_credentials` grant.
    pub account: Option<UserId>,
    /// The public keys it signs its assertions with (`private_key_jwt`), as registered, when it
    /// authenticates so instead of with a secret.
    pub jwks: Option<(String, ClientKeys)>,
}

impl ClientRegistration {
    /// Checks a registration: every rule above, the first one broken named.
    pub fn new(
        name: &str,
        client_type: ClientType,
        redirect_uris: &[String],
        scopes: ClientScopes,
        account: Option<UserId>,
        jwks: Option<&str>,
    ) -> Result<ClientRegistration, ClientRegistrationError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(crate::domain::text::is_hidden) {
            return Err(ClientRegistrationError::Name);
        }
        if redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(ClientRegistrationError::RedirectUris);
        }
        let mut registered: Vec<RedirectUri> = Vec::new();
        for uri in redirect_uris {
            let checked = RedirectUri::register(uri)
                .map_err(|why| ClientRegistrationError::RedirectUri { uri: uri.chars().take(200).collect(), why })?;
            if registered.iter().any(|r| r.as_str() == checked.as_str()) {
                return Err(ClientRegistrationError::RedirectUris);
            }
            registered.push(checked);
        }
        if registered.len() > MAX_REDIRECT_URIS {
            return Err(ClientRegistrationError::RedirectUris);
        }
        if account.is_some() && client_type == ClientType::Public {
            return Err(ClientRegistrationError::PublicClientWithAccount);
        }
        let jwks = match jwks {
            Some(_) if client_type == ClientType::Public => return Err(ClientRegistrationError::PublicClientWithKeys),
            Some(text) => Some((text.to_string(), ClientKeys::parse(text).map_err(ClientRegistrationError::Jwks)?)),
            None => None,
        };
        if account.is_some() && !scopes.allows(Scope::Service) {
            return Err(ClientRegistrationError::AccountWithoutService);
        }
        if registered.is_empty() && scopes.allows(Scope::Credential) {
            return Err(ClientRegistrationError::CredentialWithoutRedirect);
        }
        if registered.is_empty() && account.is_none() {
            return Err(ClientRegistrationError::Unusable);
        }
        Ok(ClientRegistration { name: name.to_string(), client_type, redirect_uris: registered, scopes, account, jwks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uris(list: &[&str]) -> Vec<String> {
        list.iter().map(|u| u.to_string()).collect()
    }

    #[test]
    fn scopes_are_read_from_a_list_and_stored_in_one_order() {
        let both = ClientScopes::parse("credential, service").unwrap();
        assert!(both.allows(Scope::Service) && both.allows(Scope::Credential));
        assert_eq!(both.stored(), "service credential");
        assert_eq!(ClientScopes::parse(&both.stored()), Ok(both));
        let service = ClientScopes::parse("service").unwrap();
        assert!(!service.allows(Scope::Credential));
        assert_eq!(ClientScopes::parse(" , "), Err(ClientRegistrationError::NoScope));
        assert_eq!(ClientScopes::parse("service,openid"), Err(ClientRegistrationError::UnknownScope("openid".into())));
    }

    #[test]
    fn a_registration_breaking_a_rule_is_refused_by_that_rule() {
        let service = ClientScopes::parse("service").unwrap();
        let both = ClientScopes::parse("service,credential").unwrap();
        let web = uris(&["https://app.example/cb"]);
        let alice = Some(UserId::new("u-1"));
        use ClientRegistrationError as E;
        let refused =
            |name: &str, t, u: &[String], s, a: Option<UserId>| ClientRegistration::new(name, t, u, s, a, None).err();

        assert_eq!(refused("", ClientType::Public, &web, both, None), Some(E::Name));
        assert_eq!(refused("a\u{7}b", ClientType::Public, &web, both, None), Some(E::Name));
        assert_eq!(refused("Good\u{202E}liaM", ClientType::Public, &web, both, None), Some(E::Name));
        assert_eq!(refused(&"n".repeat(101), ClientType::Public, &web, both, None), Some(E::Name));
        assert!(matches!(
            refused("App", ClientType::Public, &uris(&["http://app.example/cb"]), both, None),
            Some(E::RedirectUri { why: RedirectUriError::PlainHttp, .. })
        ));
        let twice = uris(&["https://app.example/cb", "https://app.example/cb"]);
        assert_eq!(refused("App", ClientType::Public, &twice, both, None), Some(E::RedirectUris));
        let many: Vec<String> = (0..11).map(|i| format!("https://app.example/cb{i}")).collect();
        assert_eq!(refused("App", ClientType::Public, &many, both, None), Some(E::RedirectUris));
        assert_eq!(refused("App", ClientType::Public, &web, service, alice.clone()), Some(E::PublicClientWithAccount));
        let credential = ClientScopes::parse("credential").unwrap();
        assert_eq!(
            refused("App", ClientType::Confidential, &web, credential, alice.clone()),
            Some(E::AccountWithoutService)
        );
        assert_eq!(
            refused("Seal", ClientType::Confidential, &[], both, alice.clone()),
            Some(E::CredentialWithoutRedirect)
        );
        assert_eq!(refused("Nothing", ClientType::Confidential, &[], service, None), Some(E::Unusable));

        let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}"#;
        assert!(matches!(
            ClientRegistration::new("App", ClientType::Public, &web, both, None, Some(jwks)).err(),
            Some(E::PublicClientWithKeys)
        ));
        assert!(matches!(
            ClientRegistration::new("App", ClientType::Confidential, &web, both, None, Some(jwks)).err(),
            Some(E::Jwks(_))
        ));
        let seal = ClientRegistration::new(" Seal ", ClientType::Confidential, &[], service, alice, None).unwrap();
        assert_eq!(seal.name, "Seal");
        let app = ClientRegistration::new("App", ClientType::Public, &web, both, None, None).unwrap();
        assert_eq!(app.redirect_uris[0].as_str(), "https://app.example/cb");
    }
}

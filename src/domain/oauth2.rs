//! Rules of the OAuth2 authorisation server that need no I/O (CSC v1.0.4.0 §8.3, v2.0.0.2 §8): the
//! redirect URIs a client may register and which sent URI matches one (RFC 6749 §3.1.2, RFC 8252 §7 for
//! native apps), PKCE with S256 only (RFC 7636), the two CSC scopes, and the hashes a `credential`
//! request names, read the way clients actually send them; and what an operator may register as a
//! client ([`client`]).

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use url::{Host, Url};

pub mod assertion;
pub mod client;

/// Why a redirect URI cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    /// Not an absolute URI (or https without a host).
    #[error("not an absolute URI")]
    NotAbsolute,
    /// It has a fragment.
    #[error("a redirect URI must not have a fragment (RFC 6749 §3.1.2)")]
    Fragment,
    /// It carries a user name or password.
    #[error("a redirect URI must not carry a user name or password")]
    UserInfo,
    /// http to an address that is not loopback.
    #[error("http is allowed only for a loopback address (127.0.0.1 or [::1], RFC 8252 §7.3); use https")]
    PlainHttp,
    /// http to the name localhost instead of a loopback address.
    #[error("use the loopback address 127.0.0.1 or [::1] instead of localhost (RFC 8252 §8.3)")]
    Localhost,
    /// Another scheme that is not a reverse domain name.
    #[error("a private-use scheme must be a reverse domain name, such as com.example.app (RFC 8252 §7.1)")]
    PrivateUseScheme,
}

/// A redirect URI as an operator registered it for a client: https, an http loopback address for a native
/// app, or a private-use scheme (a reverse domain name) for an app that claims one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri {
    /// Exactly as registered: a sent URI matches it by simple string comparison (RFC 6749 §3.1.2.3).
    registered: String,
    /// An http loopback URI, which matches whatever port the app listens on at the time of the request.
    loopback: Option<Url>,
}

impl RedirectUri {
    /// Checks a URI an operator registers.
    pub fn register(uri: &str) -> Result<RedirectUri, RedirectUriError> {
        let parsed = Url::parse(uri).map_err(|_| RedirectUriError::NotAbsolute)?;
        if parsed.fragment().is_some() || uri.contains('#') {
            return Err(RedirectUriError::Fragment);
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(RedirectUriError::UserInfo);
        }
        let loopback = match parsed.scheme() {
            "https" => {
                if parsed.host_str().is_none() {
                    return Err(RedirectUriError::NotAbsolute);
                }
                None
            }
            "http" => match parsed.host() {
                Some(host) if is_loopback(&host) => Some(parsed),
                Some(Host::Domain(name)) if name.eq_ignore_ascii_case("localhost") => {
                    return Err(RedirectUriError::Localhost)
                }
                _ => return Err(RedirectUriError::PlainHttp),
            },
            scheme if scheme.contains('.') => None,
            _ => return Err(RedirectUriError::PrivateUseScheme),
        };
        Ok(RedirectUri { registered: uri.to_owned(), loopback })
    }

    /// The URI as registered.
    pub fn as_str(&self) -> &str {
        &self.registered
    }

    /// Whether a redirect URI sent in an authorisation request is this one: the same string, or for an
    /// http loopback URI the same address, path and query on any port (RFC 8252 §7.3).
    pub fn accepts(&self, sent: &str) -> bool {
        if sent == self.registered {
            return true;
        }
        let Some(registered) = &self.loopback else {
            return false;
        };
        let Ok(sent_url) = Url::parse(sent) else {
            return false;
        };
        sent_url.scheme() == "http"
            && sent_url.host() == registered.host()
            && sent_url.username().is_empty()
            && sent_url.password().is_none()
            && sent_url.path() == registered.path()
            && sent_url.query() == registered.query()
            && sent_url.fragment().is_none()
            && !sent.contains('#')
    }
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Ipv4(address) => *address == std::net::Ipv4Addr::LOCALHOST,
        Host::Ipv6(address) => *address == std::net::Ipv6Addr::LOCALHOST,
        Host::Domain(_) => false,
    }
}

/// Why a PKCE parameter is refused (RFC 7636 §4.4.1: `invalid_request` at the authorisation endpoint;
/// a verifier that does not match is `invalid_grant` at the token endpoint).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    /// The `plain` method, or a challenge without a method (which means plain).
    #[error("code_challenge_method plain is not supported; use S256")]
    PlainMethod,
    /// A method other than S256 and plain.
    #[error("unknown code_challenge_method; use S256")]
    UnknownMethod,
    /// A method sent without a challenge.
    #[error("code_challenge_method without code_challenge")]
    MethodWithoutChallenge,
    /// A challenge that is not 43 characters of base64url (32 bytes).
    #[error("code_challenge must be the base64url SHA-256 of the verifier: 43 characters, no padding")]
    MalformedChallenge,
    /// A verifier outside RFC 7636 §4.1's syntax.
    #[error("code_verifier must be 43 to 128 characters of A-Z, a-z, 0-9, '-', '.', '_' and '~'")]
    MalformedVerifier,
    /// A verifier whose S256 is not the challenge.
    #[error("code_verifier does not match the code_challenge")]
    Mismatch,
}

/// A PKCE code challenge with the S256 method, the only one accepted: `plain` would let anyone who saw
/// the authorisation request redeem its code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// The challenge of an authorisation request, if it sent one. A challenge without a method is
    /// `plain` (RFC 7636 §4.3), refused as such.
    pub fn from_request(challenge: Option<&str>, method: Option<&str>) -> Result<Option<CodeChallenge>, PkceError> {
        let challenge = match (challenge, method) {
            (None, None) => return Ok(None),
            (None, Some(_)) => return Err(PkceError::MethodWithoutChallenge),
            (Some(_), None | Some("plain")) => return Err(PkceError::PlainMethod),
            (Some(challenge), Some("S256")) => challenge,
            (Some(_), Some(_)) => return Err(PkceError::UnknownMethod),
        };
        let well_formed = challenge.len() == 43
            && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(challenge).is_ok_and(|d| d.len() == 32);
        if !well_formed {
            return Err(PkceError::MalformedChallenge);
        }
        Ok(Some(CodeChallenge(challenge.to_owned())))
    }

    /// The challenge as stored and sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A stored challenge, as [`CodeChallenge::as_str`] gave it.
    pub fn from_stored(challenge: String) -> CodeChallenge {
        CodeChallenge(challenge)
    }

    /// Checks the verifier a token request sends against this challenge, in constant time.
    pub fn verify(&self, verifier: &str) -> Result<(), PkceError> {
        let well_formed = (43..=128).contains(&verifier.len())
            && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if !well_formed {
            return Err(PkceError::MalformedVerifier);
        }
        let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        if bool::from(computed.as_bytes().ct_eq(self.0.as_bytes())) {
            Ok(())
        } else {
            Err(PkceError::Mismatch)
        }
    }
}

/// What an application asks for (CSC v1.0.4.0 §8.3.2, v2.0.0.2 §8.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The CSC API for the person, as an `auth/login` token.
    Service,
    /// Signing: a token that is the SAD for exactly the hashes the person approved.
    Credential,
}

/// Why a `scope` parameter is refused (`invalid_scope`, RFC 6749 §4.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// No scope at all.
    #[error("scope is required: service or credential")]
    Missing,
    /// A value that is neither (its first 64 characters).
    #[error("unknown scope {0:?}: service or credential")]
    Unknown(String),
    /// Both scopes at once.
    #[error("ask for service or credential, not both")]
    Both,
}

impl Scope {
    /// The scope of a request: one of the two, space-separated values allowed (RFC 6749 §3.3), and the
    /// same value repeated reads as once.
    pub fn parse(scope: &str) -> Result<Scope, ScopeError> {
        let mut found = None;
        for value in scope.split(' ').filter(|v| !v.is_empty()) {
            let this = match value {
                "service" => Scope::Service,
                "credential" => Scope::Credential,
                other => return Err(ScopeError::Unknown(other.chars().take(64).collect())),
            };
            match found {
                Some(earlier) if earlier != this => return Err(ScopeError::Both),
                _ => found = Some(this),
            }
        }
        found.ok_or(ScopeError::Missing)
    }

    /// The scope's name in requests and answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Service => "service",
            Scope::Credential => "credential",
        }
    }
}

/// Standard and URL-safe base64, each with or without padding.
const STANDARD_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const URL_SAFE_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A hash of a `credential` request as clients send it: base64 or base64url, padded or not, and from a
/// client that did not percent-encode its query string, with each `+` already turned into a space by the
/// query's decoding. The decoded bytes are what is compared and signed. None when it is neither alphabet.
pub fn decode_sent_hash(sent: &str) -> Option<Vec<u8>> {
    let text = sent.replace(' ', "+");
    let url_safe = text.contains(['-', '_']);
    if url_safe && text.contains(['+', '/']) {
        return None;
    }
    let engine = if url_safe { &URL_SAFE_ANY_PADDING } else { &STANDARD_ANY_PADDING };
    engine.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn https_loopback_and_private_use_redirects_register_and_the_rest_is_refused() {
        for uri in ["https://app.example/cb", "http://127.0.0.1/cb", "http://[::1]:8080/cb?x=1", "com.example.app:/cb"]
        {
            assert!(RedirectUri::register(uri).is_ok(), "{uri}");
        }
        let refused = [
            ("/cb", RedirectUriError::NotAbsolute),
            ("https://app.example/cb#top", RedirectUriError::Fragment),
            ("https://app.example/cb#", RedirectUriError::Fragment),
            ("https://user:pw@app.example/cb", RedirectUriError::UserInfo),
            ("http://app.example/cb", RedirectUriError::PlainHttp),
            ("http://127.0.0.2/cb", RedirectUriError::PlainHttp),
            ("http://localhost:8080/cb", RedirectUriError::Localhost),
            ("myapp:/cb", RedirectUriError::PrivateUseScheme),
            ("javascript:alert(1)", RedirectUriError::PrivateUseScheme),
        ];
        for (uri, why) in refused {
            assert_eq!(RedirectUri::register(uri), Err(why), "{uri}");
        }
    }

    #[test]
    fn a_redirect_matches_exactly_except_a_loopback_port() {
        let web = RedirectUri::register("https://app.example/cb").unwrap();
        assert!(web.accepts("https://app.example/cb"));
        for other in [
            "https://app.example/cb/",
            "https://app.example/cb?x=1",
            "https://app.example:8443/cb",
            "https://APP.example/cb",
            "https://app.example/cb#x",
            "https://app.example.evil/cb",
        ] {
            assert!(!web.accepts(other), "{other}");
        }
        let native = RedirectUri::register("http://127.0.0.1/callback").unwrap();
        for port in ["", ":1", ":49152", ":65535"] {
            assert!(native.accepts(&format!("http://127.0.0.1{port}/callback")), "{port}");
        }
        for other in [
            "http://127.0.0.1:8080/other",
            "http://127.0.0.1:8080/callback?x=1",
            "http://127.0.0.1:8080/callback#x",
            "http://[::1]:8080/callback",
            "http://localhost:8080/callback",
            "https://127.0.0.1:8080/callback",
            "http://127.0.0.1@evil.example:8080/callback",
            "http://x:y@127.0.0.1:8080/callback",
        ] {
            assert!(!native.accepts(other), "{other}");
        }
        let with_port = RedirectUri::register("http://[::1]:4000/cb").unwrap();
        assert!(with_port.accepts("http://[::1]:5000/cb"));
    }

    #[test]
    fn pkce_takes_s256_only_and_checks_the_verifier_of_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        let parsed = CodeChallenge::from_request(Some(challenge), Some("S256")).unwrap().unwrap();
        assert_eq!(parsed.verify(verifier), Ok(()));
        assert_eq!(CodeChallenge::from_stored(parsed.as_str().to_owned()), parsed);
        assert_eq!(parsed.verify(&format!("{}A", &verifier[..42])), Err(PkceError::Mismatch));
        assert_eq!(parsed.verify("short"), Err(PkceError::MalformedVerifier));
        assert_eq!(parsed.verify(&"a".repeat(129)), Err(PkceError::MalformedVerifier));
        assert_eq!(parsed.verify(&format!("{verifier}+")), Err(PkceError::MalformedVerifier));
        assert_eq!(CodeChallenge::from_request(None, None), Ok(None));
        assert_eq!(CodeChallenge::from_request(Some(challenge), None), Err(PkceError::PlainMethod));
        assert_eq!(CodeChallenge::from_request(Some(verifier), Some("plain")), Err(PkceError::PlainMethod));
        assert_eq!(CodeChallenge::from_request(Some(challenge), Some("s256")), Err(PkceError::UnknownMethod));
        assert_eq!(CodeChallenge::from_request(None, Some("S256")), Err(PkceError::MethodWithoutChallenge));
        for bad in [
            &challenge[..42],
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM=",
        ] {
            assert_eq!(
                CodeChallenge::from_request(Some(bad), Some("S256")),
                Err(PkceError::MalformedChallenge),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_scope_is_service_or_credential() {
        assert_eq!(Scope::parse("service"), Ok(Scope::Service));
        assert_eq!(Scope::parse(" credential  credential "), Ok(Scope::Credential));
        assert_eq!(Scope::parse(""), Err(ScopeError::Missing));
        assert_eq!(Scope::parse("service credential"), Err(ScopeError::Both));
        assert_eq!(Scope::parse("openid"), Err(ScopeError::Unknown("openid".into())));
        assert_eq!(Scope::parse("Service"), Err(ScopeError::Unknown("Service".into())));
        assert_eq!(Scope::Credential.as_str(), "credential");
    }

    #[test]
    fn a_sent_hash_mixing_the_two_alphabets_or_not_base64_is_refused() {
        assert_eq!(decode_sent_hash("ab+_"), None);
        assert_eq!(decode_sent_hash("ab/-"), None);
        assert_eq!(decode_sent_hash("a"), None);
        assert_eq!(decode_sent_hash("ab!c"), None);
        assert_eq!(decode_sent_hash("+/8="), Some(vec![0xfb, 0xff]));
        assert_eq!(decode_sent_hash(" /8"), Some(vec![0xfb, 0xff]));
        assert_eq!(decode_sent_hash("-_8"), Some(vec![0xfb, 0xff]));
    }

    proptest! {
        /// Whatever the encoding a client picked, and a `+` that became a space on the way, the bytes are the same.
        #[test]
        fn a_sent_hash_decodes_to_its_bytes_in_every_encoding(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
            for encoded in [STANDARD.encode(&bytes), STANDARD_NO_PAD.encode(&bytes), URL_SAFE.encode(&bytes), URL_SAFE_NO_PAD.encode(&bytes)] {
                prop_assert_eq!(decode_sent_hash(&encoded), Some(bytes.clone()));
                prop_assert_eq!(decode_sent_hash(&encoded.replace('+', " ")), Some(bytes.clone()));
            }
        }
    }
}

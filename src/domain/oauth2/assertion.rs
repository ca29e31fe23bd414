//! `private_key_jwt` client authentication (RFC 7523 §2.2, §3; OpenID Connect Core §9): a client signs a
//! short-lived JWT with its own key, and rssp checks it against the public keys (a JWK Set, RFC 7517)
//! the operator registered for the client. Signatures RS256, PS256, ES256 and ES384; never `none` or an
//! HMAC (the registered keys are public).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use signature::Verifier;

/// Most keys a client may register.
pub const MAX_KEYS: usize = 10;
/// The longest an assertion may live (from now to its `exp`): its `jti` is remembered that long.
pub const MAX_LIFETIME_SECS: i64 = 300;
/// Clock difference tolerated between the client and rssp.
pub const CLOCK_SKEW_SECS: i64 = 60;
/// The `client_assertion_type` of a JWT assertion (RFC 7523 §2.2).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The signature algorithms accepted (RFC 8414 `token_endpoint_auth_signing_alg_values_supported`).
pub const ALGORITHMS: &[&str] = &["RS256", "PS256", "ES256", "ES384"];

/// Why a JWK Set cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// Not a JSON object with a `keys` array of 1 to [`MAX_KEYS`] keys.
    #[error("jwks: a JSON object {{\"keys\": [...]}} with 1 to 10 public keys")]
    Shape,
    /// A key that holds private parts: the client's private key must never leave it.
    #[error("jwks: key {0} holds a private key (d, p, q, ...): register the public key only")]
    PrivateKey(usize),
    /// A key of a type or curve not accepted, or malformed.
    #[error("jwks: key {0}: {1}")]
    Key(usize, &'static str),
    /// Two keys with one `kid`.
    #[error("jwks: two keys share the kid {0:?}")]
    DuplicateKid(String),
}

/// A public key a client signs its assertions with.
#[derive(Debug, Clone)]
enum PublicKey {
    Rsa(rsa::RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

#[derive(Debug, Clone)]
struct ClientKey {
    kid: Option<String>,
    key: PublicKey,
}

/// The public keys registered for a client, checked.
#[derive(Debug, Clone)]
pub struct ClientKeys(Vec<ClientKey>);

/// A JWK as sent (RFC 7517 §4, RFC 7518 §6).
#[derive(Debug, Deserialize)]
struct Jwk {
    kty: Option<String>,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    d: Option<serde_json::Value>,
    p: Option<serde_json::Value>,
    q: Option<serde_json::Value>,
    k: Option<serde_json::Value>,
}

fn b64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

impl ClientKeys {
    /// Checks a JWK Set an operator registers: RSA keys of 2048 bits or more, EC keys on P-256 or P-384,
    /// for signatures; no private parts; kids unique.
    pub fn parse(jwks: &str) -> Result<ClientKeys, JwksError> {
        #[derive(Deserialize)]
        struct Set {
            keys: Vec<serde_json::Value>,
        }
        let set: Set = serde_json::from_str(jwks).map_err(|_| JwksError::Shape)?;
        if set.keys.is_empty() || set.keys.len() > MAX_KEYS {
            return Err(JwksError::Shape);
        }
        let mut keys: Vec<ClientKey> = Vec::new();
        for (i, value) in set.keys.into_iter().enumerate() {
            let jwk: Jwk = serde_json::from_value(value).map_err(|_| JwksError::Key(i, "not a JWK"))?;
            if jwk.d.is_some() || jwk.p.is_some() || jwk.q.is_some() || jwk.k.is_some() {
                return Err(JwksError::PrivateKey(i));
            }
            if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
                return Err(JwksError::Key(i, "\"use\" must be \"sig\""));
            }
            let key = match jwk.kty.as_deref() {
                Some("RSA") => {
                    let (Some(n), Some(e)) = (jwk.n.as_deref().and_then(b64url), jwk.e.as_deref().and_then(b64url))
                    else {
                        return Err(JwksError::Key(i, "an RSA key needs n and e, base64url"));
                    };
                    let n_bytes = n.iter().skip_while(|b| **b == 0).count();
                    if n_bytes < 256 {
                        return Err(JwksError::Key(i, "an RSA key must have 2048 bits or more"));
                    }
                    let key = rsa::RsaPublicKey::new(
                        rsa::BoxedUint::from_be_slice_vartime(&n),
                        rsa::BoxedUint::from_be_slice_vartime(&e),
                    )
                    .map_err(|_| JwksError::Key(i, "not a valid RSA public key"))?;
                    PublicKey::Rsa(key)
                }
                Some("EC") => {
                    let (Some(x), Some(y)) = (jwk.x.as_deref().and_then(b64url), jwk.y.as_deref().and_then(b64url))
                    else {
                        return Err(JwksError::Key(i, "an EC key needs x and y, base64url"));
                    };
                    let point =
                        |size: usize| (x.len() == size && y.len() == size).then(|| [&[0x04][..], &x, &y].concat());
                    match jwk.crv.as_deref() {
                        Some("P-256") => PublicKey::P256(
                            point(32)
                                .and_then(|p| p256::ecdsa::VerifyingKey::from_sec1_bytes(&p).ok())
                                .ok_or(JwksError::Key(i, "not a point on P-256"))?,
                        ),
                        Some("P-384") => PublicKey::P384(
                            point(48)
                                .and_then(|p| p384::ecdsa::VerifyingKey::from_sec1_bytes(&p).ok())
                                .ok_or(JwksError::Key(i, "not a point on P-384"))?,
                        ),
                        _ => return Err(JwksError::Key(i, "EC keys on P-256 or P-384 only")),
                    }
                }
                _ => return Err(JwksError::Key(i, "kty must be RSA or EC")),
            };
            if let Some(kid) = &jwk.kid {
                if keys.iter().any(|k| k.kid.as_deref() == Some(kid.as_str())) {
                    return Err(JwksError::DuplicateKid(kid.chars().take(64).collect()));
                }
            }
            keys.push(ClientKey { kid: jwk.kid, key });
        }
        Ok(ClientKeys(keys))
    }
}

/// Why a client assertion is refused (always `invalid_client` to the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// Not a compact JWS of three base64url parts with JSON header and claims.
    #[error("client_assertion is not a signed JWT")]
    Malformed,
    /// `alg` not one of [`ALGORITHMS`] (`none` and HMAC included).
    #[error("client_assertion: alg must be one of RS256, PS256, ES256, ES384")]
    Algorithm,
    /// No registered key of the header's `kid` and type verifies the signature.
    #[error("client_assertion: the signature does not verify with the client's registered keys")]
    Signature,
    /// `iss` or `sub` is not the client.
    #[error("client_assertion: iss and sub must be the client_id")]
    Subject,
    /// `aud` does not name this server's token endpoint or issuer.
    #[error("client_assertion: aud must name this authorisation server")]
    Audience,
    /// `exp` missing, passed, or too far ahead; `nbf` or `iat` in the future.
    #[error("client_assertion: expired, not yet valid, or valid for more than 300 s")]
    Time,
    /// No `jti` (needed to refuse a replay), or one over 256 characters.
    #[error("client_assertion: jti (1 to 256 characters) is required")]
    Jti,
}

/// What rssp keeps of an accepted assertion: its id and when it expires, to refuse it a second time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedAssertion {
    /// The assertion's id (`jti`).
    pub jti: String,
    /// Until when it must be remembered: its `exp` plus the tolerated clock difference.
    pub expires_at: i64,
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
}

impl ClientKeys {
    /// Checks `assertion` as the authentication of `client_id` at a server that answers to any of
    /// `audiences` (its token endpoint, its issuer), at `now`. The caller refuses a `jti` seen before.
    pub fn verify(
        &self,
        assertion: &str,
        client_id: &str,
        audiences: &[&str],
        now: i64,
    ) -> Result<AcceptedAssertion, AssertionError> {
        let mut parts = assertion.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AssertionError::Malformed);
        };
        let header: Header =
            b64url(header_b64).and_then(|h| serde_json::from_slice(&h).ok()).ok_or(AssertionError::Malformed)?;
        let signature = b64url(signature_b64).ok_or(AssertionError::Malformed)?;
        if !ALGORITHMS.contains(&header.alg.as_str()) {
            return Err(AssertionError::Algorithm);
        }
        let signed = &assertion.as_bytes()[..header_b64.len() + 1 + claims_b64.len()];
        let verified = self
            .0
            .iter()
            .filter(|k| header.kid.is_none() || k.kid == header.kid)
            .any(|k| verifies(&k.key, &header.alg, signed, &signature));
        if !verified {
            return Err(AssertionError::Signature);
        }
        let claims: Claims =
            b64url(claims_b64).and_then(|c| serde_json::from_slice(&c).ok()).ok_or(AssertionError::Malformed)?;
        if claims.iss.as_deref() != Some(client_id) || claims.sub.as_deref() != Some(client_id) {
            return Err(AssertionError::Subject);
        }
        let named = match &claims.aud {
            Some(Audience::One(aud)) => audiences.contains(&aud.as_str()),
            Some(Audience::Many(auds)) => auds.iter().any(|aud| audiences.contains(&aud.as_str())),
            None => false,
        };
        if !named {
            return Err(AssertionError::Audience);
        }
        let exp = claims.exp.ok_or(AssertionError::Time)?;
        let future = |t: Option<i64>| t.is_some_and(|t| t > now + CLOCK_SKEW_SECS);
        if exp + CLOCK_SKEW_SECS <= now || exp > now + MAX_LIFETIME_SECS || future(claims.nbf) || future(claims.iat) {
            return Err(AssertionError::Time);
        }
        let jti = claims.jti.filter(|j| !j.is_empty() && j.chars().count() <= 256).ok_or(AssertionError::Jti)?;
        Ok(AcceptedAssertion { jti, expires_at: exp + CLOCK_SKEW_SECS })
    }
}

/// The client an assertion says it comes from (its `sub`), read without checking anything: only to find
/// the client whose keys then verify it, for a request that sent no `client_id`.
pub fn claimed_client(assertion: &str) -> Option<String> {
    let claims = assertion.split('.').nth(1).and_then(b64url)?;
    let claims: Claims = serde_json::from_slice(&claims).ok()?;
    claims.sub.filter(|sub| !sub.is_empty() && sub.len() <= 200)
}

/// Whether `signature` (JWS form: RSA as is, ECDSA as r || s) over `signed` verifies with `key` under `alg`.
fn verifies(key: &PublicKey, alg: &str, signed: &[u8], signature: &[u8]) -> bool {
    match (key, alg) {
        (PublicKey::Rsa(key), "RS256") => rsa::pkcs1v15::Signature::try_from(signature)
            .is_ok_and(|s| rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key.clone()).verify(signed, &s).is_ok()),
        (PublicKey::Rsa(key), "PS256") => rsa::pss::Signature::try_from(signature)
            .is_ok_and(|s| rsa::pss::VerifyingKey::<sha2::Sha256>::new(key.clone()).verify(signed, &s).is_ok()),
        (PublicKey::P256(key), "ES256") => {
            p256::ecdsa::Signature::from_slice(signature).is_ok_and(|s| key.verify(signed, &s).is_ok())
        }
        (PublicKey::P384(key), "ES384") => {
            p384::ecdsa::Signature::from_slice(signature).is_ok_and(|s| key.verify(signed, &s).is_ok())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer;

    const CLIENT: &str = "client-1";
    const AUD: &str = "https://rssp.example/oauth2/token";
    const NOW: i64 = 1_800_000_000;

    fn p256_key() -> (p256::ecdsa::SigningKey, String) {
        let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let point = key.verifying_key().to_sec1_point(false);
        let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()), "y": URL_SAFE_NO_PAD.encode(point.y().unwrap())}]});
        (key, jwks.to_string())
    }

    fn es256(key: &p256::ecdsa::SigningKey, header: serde_json::Value, claims: serde_json::Value) -> String {
        let signed =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature: p256::ecdsa::Signature = key.sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    fn claims() -> serde_json::Value {
        serde_json::json!({"iss": CLIENT, "sub": CLIENT, "aud": AUD, "exp": NOW + 60, "jti": "a-1"})
    }

    #[test]
    fn an_assertion_signed_by_the_registered_key_for_this_server_is_accepted_once_checked() {
        let (key, jwks) = p256_key();
        let keys = ClientKeys::parse(&jwks).unwrap();
        let header = serde_json::json!({"alg": "ES256", "kid": "k1"});
        let accepted = keys.verify(&es256(&key, header.clone(), claims()), CLIENT, &[AUD], NOW).unwrap();
        assert_eq!(accepted, AcceptedAssertion { jti: "a-1".into(), expires_at: NOW + 60 + CLOCK_SKEW_SECS });
        let as_list =
            serde_json::json!({"iss": CLIENT, "sub": CLIENT, "aud": ["other", AUD], "exp": NOW + 60, "jti": "a-2"});
        assert!(keys.verify(&es256(&key, header.clone(), as_list), CLIENT, &[AUD], NOW).is_ok());

        let with = |change: &dyn Fn(&mut serde_json::Value)| {
            let mut c = claims();
            change(&mut c);
            keys.verify(&es256(&key, header.clone(), c), CLIENT, &[AUD], NOW)
        };
        assert_eq!(with(&|c| c["iss"] = "client-2".into()), Err(AssertionError::Subject));
        assert_eq!(with(&|c| c["sub"] = "client-2".into()), Err(AssertionError::Subject));
        assert_eq!(with(&|c| c["aud"] = "https://elsewhere.example/token".into()), Err(AssertionError::Audience));
        assert_eq!(with(&|c| c["exp"] = (NOW - CLOCK_SKEW_SECS).into()), Err(AssertionError::Time));
        assert_eq!(with(&|c| c["exp"] = (NOW + MAX_LIFETIME_SECS + 1).into()), Err(AssertionError::Time));
        assert_eq!(with(&|c| c["nbf"] = (NOW + 120).into()), Err(AssertionError::Time));
        assert_eq!(
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            Err(AssertionError::Time)
        );
        assert_eq!(
            with(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
            Err(AssertionError::Jti)
        );

        // Another key, another kid, a changed claim, alg none or HS256: refused.
        let other = p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).unwrap();
        assert_eq!(
            keys.verify(&es256(&other, header.clone(), claims()), CLIENT, &[AUD], NOW),
            Err(AssertionError::Signature)
        );
        let other_kid = serde_json::json!({"alg": "ES256", "kid": "k2"});
        assert_eq!(keys.verify(&es256(&key, other_kid, claims()), CLIENT, &[AUD], NOW), Err(AssertionError::Signature));
        let genuine = es256(&key, header, claims());
        let mut parts: Vec<&str> = genuine.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(
            serde_json::json!({"iss": CLIENT, "sub": CLIENT, "aud": AUD, "exp": NOW + 60, "jti": "a-9"}).to_string(),
        );
        parts[1] = &forged;
        assert_eq!(keys.verify(&parts.join("."), CLIENT, &[AUD], NOW), Err(AssertionError::Signature));
        for alg in ["none", "HS256", "ES512"] {
            let token = es256(&key, serde_json::json!({"alg": alg}), claims());
            assert_eq!(keys.verify(&token, CLIENT, &[AUD], NOW), Err(AssertionError::Algorithm), "{alg}");
        }
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        assert_eq!(keys.verify(&unsigned, CLIENT, &[AUD], NOW), Err(AssertionError::Algorithm));
        assert_eq!(keys.verify("a.b", CLIENT, &[AUD], NOW), Err(AssertionError::Malformed));
        assert_eq!(keys.verify("a.b.c.d", CLIENT, &[AUD], NOW), Err(AssertionError::Malformed));
    }

    #[test]
    fn a_jwks_with_a_private_key_weak_key_or_unknown_curve_is_refused() {
        let (_, jwks) = p256_key();
        let mut set: serde_json::Value = serde_json::from_str(&jwks).unwrap();
        let mut private = set.clone();
        private["keys"][0]["d"] = "AAAA".into();
        assert_eq!(ClientKeys::parse(&private.to_string()).err(), Some(JwksError::PrivateKey(0)));
        let mut encryption = set.clone();
        encryption["keys"][0]["use"] = "enc".into();
        assert!(matches!(ClientKeys::parse(&encryption.to_string()), Err(JwksError::Key(0, _))));
        let mut curve = set.clone();
        curve["keys"][0]["crv"] = "P-521".into();
        assert!(matches!(ClientKeys::parse(&curve.to_string()), Err(JwksError::Key(0, _))));
        let mut off_curve = set.clone();
        off_curve["keys"][0]["y"] = URL_SAFE_NO_PAD.encode([1u8; 32]).into();
        assert!(matches!(ClientKeys::parse(&off_curve.to_string()), Err(JwksError::Key(0, _))));
        let weak =
            serde_json::json!({"keys": [{"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xC5u8; 128]), "e": "AQAB"}]});
        assert!(matches!(ClientKeys::parse(&weak.to_string()), Err(JwksError::Key(0, _))));
        let twice = set["keys"][0].clone();
        set["keys"].as_array_mut().unwrap().push(twice);
        assert_eq!(ClientKeys::parse(&set.to_string()).err(), Some(JwksError::DuplicateKid("k1".into())));
        assert_eq!(ClientKeys::parse(r#"{"keys": []}"#).err(), Some(JwksError::Shape));
        assert_eq!(ClientKeys::parse("[]").err(), Some(JwksError::Shape));
    }
}

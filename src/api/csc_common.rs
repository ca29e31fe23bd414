//! Pieces both CSC dialects share: `auth/login` header parsing, the key and certificate objects, and
//! the list of implemented methods. Wire types that differ between v1 and v2 live in their modules.

use actix_web::{get, HttpRequest};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use actix_web::web::Data;

use super::error::{ApiError, AuthScheme, Dialect};
use super::extract::{decode_base64, encode_base64, run};
use crate::domain::{CertificateStatus, CredentialStatus};
use crate::service::auth::{self, IssuedTokens};
use crate::service::credentials::CscCredential;
use crate::service::timestamps::CscTimestampRequest;
use crate::service::Services;

/// How clients may authenticate (CSC `info.authType`): HTTP Basic at `auth/login`, and OAuth2 tokens of
/// the client credentials grant (`/oauth2/token`).
pub const AUTH_TYPES: &[&str] = &["basic", "oauth2client"];

/// Methods implemented in both dialects (CSC `info.methods`).
pub const METHODS: &[&str] = &[
    "auth/login",
    "auth/revoke",
    "credentials/list",
    "credentials/info",
    "credentials/authorize",
    "credentials/extendTransaction",
    "signatures/signHash",
    "signatures/timestamp",
];

/// The fields of a `signatures/timestamp` request (v1 §11.10, v2 §11.13), checked for presence and
/// base64; `hash_algo_name` is the name the dialect gives the algorithm field.
pub fn timestamp_request(
    hash: Option<String>,
    hash_algo: Option<String>,
    hash_algo_name: &str,
    nonce: Option<String>,
) -> Result<CscTimestampRequest, ApiError> {
    let hash = hash.ok_or_else(|| ApiError::missing_in("/signatures/timestamp", "hash"))?;
    if hash.is_empty() {
        return Err(ApiError::invalid_request("Empty hash parameter"));
    }
    Ok(CscTimestampRequest {
        hash: decode_base64(&hash, "hash")?,
        hash_algo: hash_algo.ok_or_else(|| ApiError::missing(hash_algo_name))?,
        nonce,
    })
}

/// `signatures/timestamp` response: the base64 DER TimeStampToken (RFC 3161 as updated by RFC 5816).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TimestampResponse {
    pub timestamp: String,
}

/// The service's logo, built into the binary and served at `/logo.png`: CSC `info.logo` is required
/// (a PNG or JPEG of at most 256x256 pixels) and must point to something that exists.
pub const LOGO_PNG: &[u8] = include_bytes!("../../assets/logo.png");

/// The URL `info` names as the logo.
pub fn logo_url(services: &Services) -> String {
    format!("{}/logo.png", services.public_url)
}

#[utoipa::path(get, tag = "CSC",
    responses((status = 200, description = "The service logo (CSC info.logo), PNG 64x64", content_type = "image/png")))]
#[get("/logo.png")]
pub async fn logo() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("image/png")
        .insert_header(("cache-control", "public, max-age=86400"))
        .body(LOGO_PNG)
}

/// How `auth/login` was asked to authenticate.
pub enum LoginMethod {
    Password { username: String, password: SecretString },
    RefreshToken(SecretString),
}

/// HTTP Basic in the header, or a refresh token in the body (CSC §11.2).
pub fn login_method(req: &HttpRequest, refresh_token: Option<SecretString>) -> Result<LoginMethod, ApiError> {
    let header = req.headers().get("authorization").and_then(|v| v.to_str().ok());
    match (header, refresh_token) {
        (Some(value), _) => {
            let encoded = super::extract::credentials_of(value, "Basic").ok_or_else(|| {
                ApiError::unauthenticated(AuthScheme::Basic, "invalid_request", "Malformed authentication parameter")
            })?;
            let decoded = decode_base64(encoded.trim(), "authorization")
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .map(SecretString::from)
                .ok_or_else(|| ApiError::invalid_request("Malformed username-password"))?;
            let (username, password) = decoded
                .expose_secret()
                .split_once(':')
                .ok_or_else(|| ApiError::invalid_request("Malformed username-password"))?;
            Ok(LoginMethod::Password { username: username.to_string(), password: password.into() })
        }
        (None, Some(token)) if !token.expose_secret().is_empty() => Ok(LoginMethod::RefreshToken(token)),
        (None, Some(_)) => Err(ApiError::invalid_request("Invalid string parameter refresh_token")),
        (None, None) => {
            Err(ApiError::unauthenticated(AuthScheme::Basic, "invalid_request", "Malformed authentication parameter"))
        }
    }
}

/// `auth/login` in either dialect: the tokens for a password or a refresh token.
pub async fn login(
    services: &Data<Services>,
    req: &HttpRequest,
    refresh_token: Option<SecretString>,
    remember_me: bool,
    dialect: Dialect,
) -> Result<IssuedTokens, ApiError> {
    let tokens = match login_method(req, refresh_token)? {
        LoginMethod::Password { username, password } => {
            run(services, dialect, move |s| {
                auth::login_with_password(s, &username, password.expose_secret(), remember_me)
            })
            .await
        }
        LoginMethod::RefreshToken(token) => {
            run(services, dialect, move |s| auth::login_with_refresh_token(s, token.expose_secret())).await
        }
    };
    // A refused refresh token is a 401 too; this route asks for Basic credentials instead.
    tokens.map_err(|e| {
        if e.status == actix_web::http::StatusCode::UNAUTHORIZED {
            e.with_challenge(AuthScheme::Basic)
        } else {
            e
        }
    })
}

/// `certificates` selector of credentials/info and v2 credentials/list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificatesWanted {
    None,
    Single,
    Chain,
}

pub fn certificates_wanted(value: Option<&str>) -> Result<CertificatesWanted, ApiError> {
    match value {
        None | Some("single") => Ok(CertificatesWanted::Single),
        Some("none") => Ok(CertificatesWanted::None),
        Some("chain") => Ok(CertificatesWanted::Chain),
        Some(_) => Err(ApiError::invalid("certificates")),
    }
}

/// The `key` object (CSC v1 §11.5, v2 §11.5).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = CscKeyInfo)]
pub struct KeyInfo {
    /// Whether the key may be used.
    pub status: CredentialStatus,
    /// Signature algorithm OIDs the key can be used with.
    pub algo: Vec<String>,
    /// Key length in bits.
    pub len: u32,
    /// Named curve OID, EC keys only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curve: Option<String>,
}

/// The `cert` object (CSC v1 §11.5, v2 §11.5).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = CscCertInfo)]
pub struct CertInfo {
    /// The certificate's state now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<CertificateStatus>,
    /// Base64 DER certificates, end entity first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificates: Option<Vec<String>>,
    #[serde(rename = "issuerDN", skip_serializing_if = "Option::is_none")]
    pub issuer_dn: Option<String>,
    /// Hex.
    #[serde(rename = "serialNumber", skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    #[serde(rename = "subjectDN", skip_serializing_if = "Option::is_none")]
    pub subject_dn: Option<String>,
    /// GeneralizedTime `YYYYMMDDHHMMSSZ`.
    #[serde(rename = "validFrom", skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    #[serde(rename = "validTo", skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
}

pub fn key_info(view: &CscCredential) -> KeyInfo {
    KeyInfo {
        status: if view.key_enabled { CredentialStatus::Enabled } else { CredentialStatus::Disabled },
        algo: view.key_kind.signature_algorithms().iter().map(|s| s.to_string()).collect(),
        len: view.key_kind.bits(),
        curve: view.key_kind.curve_oid().map(str::to_string),
    }
}

pub fn cert_info(view: &CscCredential, wanted: CertificatesWanted, with_details: bool) -> CertInfo {
    let certificates = match wanted {
        CertificatesWanted::None => None,
        CertificatesWanted::Single => Some(vec![encode_base64(&view.chain[0])]),
        CertificatesWanted::Chain => Some(view.chain.iter().map(|c| encode_base64(c)).collect()),
    };
    let detail = |s: &str| with_details.then(|| s.to_string());
    CertInfo {
        status: Some(view.cert_status),
        certificates,
        issuer_dn: detail(&view.issuer_dn),
        serial_number: detail(&view.serial_hex),
        subject_dn: detail(&view.subject_dn),
        valid_from: detail(&view.valid_from),
        valid_to: detail(&view.valid_to),
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use crate::api::{csc_v1, csc_v2};
    use crate::config::Config;
    use crate::service::credentials::AuthorizeRequest;

    /// The secrets a client sends (PIN, OTP, SAD, tokens) and the configured ones (PINs, webhook
    /// secrets, the SMS token) never show in a `Debug` form, so no `{:?}` can carry them into a log.
    #[test]
    fn no_debug_form_shows_a_secret() {
        let env: Vec<(String, String)> = [
            ("RSSP_HSM_PIN", "S3CRET-HSM-PIN"),
            ("RSSP_HSM_CA_PIN", "S3CRET-CA-PIN"),
            ("RSSP_NOTIFY_SMS_GATEWAY_TOKEN", "S3CRET-SMS-TOKEN"),
            ("RSSP_NOTIFY_SMTP_URL", "smtp://mail:S3CRET-SMTP@mail.example:587"),
            ("RSSP_PAYMENTS_WEBHOOK_SECRET", "S3CRET-PAYMENTS-0123456789"),
            ("RSSP_IDENTITY_WEBHOOK_SECRET", "S3CRET-IDENTITY-0123456789"),
        ]
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
        let config = Config::from_sources(None, &env).unwrap();
        assert_eq!(config.hsm.pin.as_ref().map(|p| p.expose_secret()), Some("S3CRET-HSM-PIN"));

        let v1: csc_v1::AuthorizeRequestBody = serde_json::from_value(serde_json::json!({
            "credentialID": "c1", "numSignatures": 1, "hash": ["AAAA"],
            "PIN": "S3CRET-V1-PIN", "OTP": "S3CRET-V1-OTP",
        }))
        .unwrap();
        assert_eq!(v1.otp.as_ref().map(|o| o.expose_secret()), Some("S3CRET-V1-OTP"));
        let v2: csc_v2::AuthorizeRequestBody = serde_json::from_value(serde_json::json!({
            "credentialID": "c1", "numSignatures": 1, "hashes": ["AAAA"], "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
            "authData": [{"id": "PIN", "value": "S3CRET-V2-PIN"}, {"id": "OTP", "value": "S3CRET-V2-OTP"}],
        }))
        .unwrap();
        let parsed = AuthorizeRequest {
            credential_id: "c1".into(),
            num_signatures: 1,
            hashes: vec![vec![0; 32]],
            hash_algo: None,
            otp: v1.otp.clone(),
            pin: v1.pin.clone(),
        };
        let sign_hash: csc_v1::SignHashRequestBody =
            serde_json::from_value(serde_json::json!({"credentialID": "c1", "SAD": "S3CRET-SAD", "hash": ["AAAA"]}))
                .unwrap();
        let login: csc_v2::LoginRequest =
            serde_json::from_value(serde_json::json!({"refresh_token": "S3CRET-REFRESH"})).unwrap();
        let revoke: csc_v1::RevokeRequest =
            serde_json::from_value(serde_json::json!({"token": "S3CRET-TOKEN"})).unwrap();

        let shown = format!(
            "{config:?} {config:#?} {v1:?} {v2:#?} {parsed:?} {sign_hash:?} {login:?} {revoke:?} {:?}",
            config.hsm
        );
        assert!(!shown.contains("S3CRET"), "{shown}");
        assert!(shown.contains("c1") && shown.contains("mail.example"), "the rest is shown: {shown}");
    }
}

//! The service layer's errors. Each refusal says what was wrong in terms of the request; `api::error`
//! turns them into the CSC status and body once, naming fields in the caller's dialect.

use std::borrow::Cow;

use crate::domain::enrolment::InvoiceField;

/// The error underneath an internal error, kept whole so that the log shows its chain of causes
/// (and, from the HSM, the PKCS#11 return code).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A request field, named differently by the CSC dialects (see `api::error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// CSC `credentialID`.
    CredentialId,
    /// CSC `SAD`.
    Sad,
    /// CSC `hash` (v1) or `hashes` (v2).
    Hash,
    /// CSC `hashAlgo` (v1) or `hashAlgorithmOID` (v2).
    HashAlgo,
    /// CSC `signAlgo`.
    SignAlgo,
    /// CSC `signAlgoParams`.
    SignAlgoParams,
    /// CSC `numSignatures`.
    NumSignatures,
    /// CSC `OTP` (v1; v2 carries it in `authData`).
    Otp,
    /// CSC `PIN` (v1; v2 carries it in `authData`).
    Pin,
    /// CSC v2 `authData`.
    AuthData,
    /// CSC `pageToken`.
    PageToken,
    /// CSC `maxResults`.
    MaxResults,
    /// CSC `certificates`.
    Certificates,
    /// CSC `nonce` (`signatures/timestamp`).
    Nonce,
    /// The token of `auth/revoke`.
    Token,
    /// `token_type_hint` of `auth/revoke`.
    TokenTypeHint,
    /// `refresh_token` of `auth/login`.
    RefreshToken,
    /// CSC `userID`.
    UserId,
}

/// A field of a lifecycle or admin API request (`/api/...`, one snake_case dialect), named in a
/// refusal of its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `email`.
    Email,
    /// `phone`.
    Phone,
    /// `new_phone`.
    NewPhone,
    /// `password`.
    Password,
    /// `current_password`.
    CurrentPassword,
    /// `given_name`.
    GivenName,
    /// `surname`.
    Surname,
    /// `country`.
    Country,
    /// `privacy_consent`.
    PrivacyConsent,
    /// `privacy_consent.version`.
    PrivacyConsentVersion,
    /// `document`.
    Document,
    /// `package_id`.
    PackageId,
    /// `credential_id`.
    CredentialId,
    /// `key_type`.
    KeyType,
    /// `content_type`.
    ContentType,
    /// `data`.
    Data,
    /// `reason`.
    Reason,
    /// `reason_code`.
    ReasonCode,
    /// `reasons`.
    Reasons,
    /// `name`.
    Name,
    /// `username`.
    Username,
    /// `multisign`.
    Multisign,
    /// `quota`.
    Quota,
    /// `pin`.
    Pin,
    /// `event_id`.
    EventId,
    /// `result`.
    Result,
    /// A field of the order's invoice data (`invoice.<field>`).
    Invoice(InvoiceField),
}

impl Field {
    /// The field's name in the request body, which the refusal's text starts with.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Email => "email",
            Field::Phone => "phone",
            Field::NewPhone => "new_phone",
            Field::Password => "password",
            Field::CurrentPassword => "current_password",
            Field::GivenName => "given_name",
            Field::Surname => "surname",
            Field::Country => "country",
            Field::PrivacyConsent => "privacy_consent",
            Field::PrivacyConsentVersion => "privacy_consent.version",
            Field::Document => "document",
            Field::PackageId => "package_id",
            Field::CredentialId => "credential_id",
            Field::KeyType => "key_type",
            Field::ContentType => "content_type",
            Field::Data => "data",
            Field::Reason => "reason",
            Field::ReasonCode => "reason_code",
            Field::Reasons => "reasons",
            Field::Name => "name",
            Field::Username => "username",
            Field::Multisign => "multisign",
            Field::Quota => "quota",
            Field::Pin => "pin",
            Field::EventId => "event_id",
            Field::Result => "result",
            Field::Invoice(field) => field.path(),
        }
    }
}

/// The error codes of the OAuth2 token and revocation endpoints (RFC 6749 §5.2, RFC 7009 §2.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthErrorCode {
    /// A parameter missing, repeated, malformed or not allowed.
    InvalidRequest,
    /// The client is unknown, disabled, or did not authenticate as its registration requires.
    InvalidClient,
    /// The grant (code, refresh token) is invalid, expired, revoked or not this client's.
    InvalidGrant,
    /// The client may not use this grant.
    UnauthorizedClient,
    /// A grant type the server does not offer.
    UnsupportedGrantType,
    /// A scope unknown, or not allowed to the client or the grant.
    InvalidScope,
}

impl OAuthErrorCode {
    /// The code on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthErrorCode::InvalidRequest => "invalid_request",
            OAuthErrorCode::InvalidClient => "invalid_client",
            OAuthErrorCode::InvalidGrant => "invalid_grant",
            OAuthErrorCode::UnauthorizedClient => "unauthorized_client",
            OAuthErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            OAuthErrorCode::InvalidScope => "invalid_scope",
        }
    }
}

/// Why a use case refused or failed a request; `api::error` maps each to a status and CSC error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A required request field is absent.
    #[error("missing parameter {0:?}")]
    Missing(Param),
    /// A request field's value is refused.
    #[error("invalid parameter {0:?}")]
    Invalid(Param),
    /// A lifecycle request field whose value is refused; `why` states the rule, shown to the client
    /// after the field's name.
    #[error("{}: {why}", field.as_str())]
    InvalidField {
        /// The field.
        field: Field,
        /// The rule its value breaks.
        why: Cow<'static, str>,
    },
    /// Any other malformed or refused request, with the description shown to the client.
    #[error("{0}")]
    InvalidRequest(String),
    /// The bearer token (access token, operator key) or the webhook signature is not valid.
    #[error("access token not valid")]
    InvalidToken,
    /// The access token has expired or was revoked.
    #[error("access token expired or revoked")]
    ExpiredToken,
    /// Wrong username or password.
    #[error("authentication failed")]
    AuthenticationFailed,
    /// Too many wrong passwords: logins (CSC and lifecycle alike) are locked until then.
    #[error("logins locked until {until}")]
    LoginLocked {
        /// Unix seconds.
        until: i64,
    },
    /// The one-time code is wrong.
    #[error("the OTP is invalid")]
    InvalidOtp,
    /// The one-time code's time step was already used.
    #[error("the OTP has already been used")]
    OtpReplayed,
    /// Too many wrong codes: codes are refused until then.
    #[error("OTP locked until {until}")]
    OtpLocked {
        /// Unix seconds.
        until: i64,
    },
    /// The signing PIN is wrong.
    #[error("the PIN is invalid")]
    InvalidPin,
    /// The credential is disabled (CSC `key.status`).
    #[error("the credential is disabled")]
    CredentialDisabled,
    /// The SAD, or the chain of renewals it belongs to, has expired.
    #[error("SAD expired")]
    SadExpired,
    /// The SAD's signatures are spent.
    #[error("the SAD does not cover that many signatures")]
    SadBudgetSpent,
    /// A hash the SAD is not bound to.
    #[error("hash not authorised by the SAD")]
    HashNotAuthorized,
    /// signDoc: a document or digest the SAD is not bound to.
    #[error("document or digest not authorised by the SAD")]
    DocumentNotAuthorized,
    /// A hash whose length fits no supported digest, or not the given hash algorithm.
    #[error("invalid digest value length")]
    DigestLength,
    /// The credential's certificate has expired.
    #[error("signing certificate {subject} is expired")]
    CertificateExpired {
        /// The certificate's subject DN.
        subject: String,
    },
    /// The thing asked for does not exist (or is not the caller's).
    #[error("{0}")]
    NotFound(String),
    /// The request is valid but the thing is not in a state that allows it.
    #[error("{0}")]
    Conflict(String),
    /// What the request carries is larger than the service accepts (413).
    #[error("{0}")]
    TooLarge(String),
    /// A rekey asked for outside its window: the certificate must be reissued instead.
    #[error("{0}")]
    ReissueRequired(String),
    /// The caller is known but may not do this (yet).
    #[error("{0}")]
    Forbidden(String),
    /// Too many requests of this kind; a new one is accepted `retry_after` seconds from now.
    #[error("{text}")]
    RateLimited {
        /// The refusal, shown to the client.
        text: String,
        /// Seconds until a new request is accepted (`Retry-After`).
        retry_after: i64,
    },
    /// The credential's signature quota does not cover the request.
    #[error("signature quota exhausted: {remaining} of {total} remain")]
    QuotaExhausted {
        /// Signatures the quota still allows.
        remaining: i32,
        /// The quota.
        total: i32,
    },
    /// A time-stamp for a person who has no credential that can sign now with a transaction left.
    #[error("no credential with a transaction left")]
    NoTransactionLeft,
    /// A refusal of the OAuth2 authorisation server, with its code and the description shown to the client.
    #[error("{}: {description}", code.as_str())]
    OAuth {
        /// The OAuth error code.
        code: OAuthErrorCode,
        /// What was wrong, in terms of the request.
        description: Cow<'static, str>,
    },
    /// The service is overloaded (no database connection or HSM session came free in time); retry shortly.
    #[error("service busy")]
    Unavailable,
    /// The HSM refused rssp's login (see `HsmError::LoginRefused`): nothing that needs it can be served
    /// until an operator corrects the PIN and restarts. Logged once, where it happened.
    #[error("HSM unavailable")]
    HsmUnavailable,
    /// Something that is not the client's fault: logged with its chain of causes where it is mapped
    /// (`api::error`), never shown.
    #[error("internal error")]
    Internal(#[source] BoxError),
}

/// What went wrong in an internal error, in words, and the error underneath when there is one.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
struct Failure {
    what: Cow<'static, str>,
    #[source]
    source: Option<BoxError>,
}

impl ServiceError {
    /// An OAuth2 refusal.
    pub fn oauth(code: OAuthErrorCode, description: impl Into<Cow<'static, str>>) -> ServiceError {
        ServiceError::OAuth { code, description: description.into() }
    }

    /// An error from below that the use case cannot answer, kept as the source.
    pub fn internal(source: impl std::error::Error + Send + Sync + 'static) -> ServiceError {
        ServiceError::Internal(Box::new(source))
    }

    /// `source`, with what was being done when it failed.
    pub fn internal_while(
        what: impl Into<Cow<'static, str>>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> ServiceError {
        ServiceError::Internal(Box::new(Failure { what: what.into(), source: Some(Box::new(source)) }))
    }

    /// An internal failure with what was being done when it happened; any other error (a refusal, a busy
    /// or refusing HSM) stays what it is.
    pub fn in_context(self, what: impl Into<Cow<'static, str>>) -> ServiceError {
        match self {
            ServiceError::Internal(source) => {
                ServiceError::Internal(Box::new(Failure { what: what.into(), source: Some(source) }))
            }
            other => other,
        }
    }

    /// A broken invariant with no error underneath: a row that must exist does not, a stored value
    /// does not parse.
    pub fn invariant(what: impl Into<Cow<'static, str>>) -> ServiceError {
        ServiceError::Internal(Box::new(Failure { what: what.into(), source: None }))
    }

    /// A refused value of a lifecycle request field.
    pub fn invalid_field(field: Field, why: impl Into<Cow<'static, str>>) -> ServiceError {
        ServiceError::InvalidField { field, why: why.into() }
    }

    /// The kind of refusal as a fixed name, for logs and metrics: unlike the message, it can carry
    /// nothing the client sent.
    pub fn reason(&self) -> &'static str {
        match self {
            ServiceError::Missing(_) => "missing_parameter",
            ServiceError::Invalid(Param::Sad) => "invalid_sad",
            ServiceError::Invalid(_) => "invalid_parameter",
            ServiceError::InvalidRequest(_) | ServiceError::InvalidField { .. } => "invalid_request",
            ServiceError::InvalidToken => "invalid_token",
            ServiceError::ExpiredToken => "expired_token",
            ServiceError::AuthenticationFailed => "authentication_failed",
            ServiceError::LoginLocked { .. } => "login_locked",
            ServiceError::InvalidOtp => "invalid_otp",
            ServiceError::OtpReplayed => "otp_replayed",
            ServiceError::OtpLocked { .. } => "otp_locked",
            ServiceError::InvalidPin => "invalid_pin",
            ServiceError::CredentialDisabled => "credential_disabled",
            ServiceError::SadExpired => "sad_expired",
            ServiceError::SadBudgetSpent => "sad_budget_spent",
            ServiceError::HashNotAuthorized => "hash_not_authorized",
            ServiceError::DocumentNotAuthorized => "document_not_authorized",
            ServiceError::DigestLength => "digest_length",
            ServiceError::CertificateExpired { .. } => "certificate_expired",
            ServiceError::NotFound(_) => "not_found",
            ServiceError::Conflict(_) => "conflict",
            ServiceError::TooLarge(_) => "too_large",
            ServiceError::ReissueRequired(_) => "reissue_required",
            ServiceError::Forbidden(_) => "forbidden",
            ServiceError::RateLimited { .. } => "rate_limited",
            ServiceError::QuotaExhausted { .. } | ServiceError::NoTransactionLeft => "quota_exhausted",
            ServiceError::OAuth { code, .. } => code.as_str(),
            ServiceError::Unavailable => "unavailable",
            ServiceError::HsmUnavailable => "hsm_unavailable",
            ServiceError::Internal(_) => "internal",
        }
    }

    /// Why a SAD was refused (`rssp_sad_refusals_total`), when this is a SAD refusal.
    pub fn sad_refusal(&self) -> Option<&'static str> {
        match self {
            ServiceError::Invalid(Param::Sad) => Some("invalid"),
            ServiceError::SadExpired => Some("expired"),
            ServiceError::SadBudgetSpent => Some("budget_spent"),
            ServiceError::HashNotAuthorized | ServiceError::DocumentNotAuthorized => Some("hash_not_authorized"),
            _ => None,
        }
    }

    /// Why a one-time code (or the PIN given with it) was refused (`rssp_otp_refusals_total`).
    pub fn otp_refusal(&self) -> Option<&'static str> {
        match self {
            ServiceError::InvalidOtp => Some("invalid"),
            ServiceError::OtpReplayed => Some("replayed"),
            ServiceError::OtpLocked { .. } => Some("locked"),
            ServiceError::InvalidPin => Some("invalid_pin"),
            _ => None,
        }
    }

    /// Refusals an operator watches for (guessing, replay, locks, misuse of a SAD or token): logged at
    /// `warn`, other refusals at `info`.
    pub fn is_security_refusal(&self) -> bool {
        self.sad_refusal().is_some()
            || self.otp_refusal().is_some()
            || matches!(
                self,
                ServiceError::AuthenticationFailed
                    | ServiceError::LoginLocked { .. }
                    | ServiceError::InvalidToken
                    | ServiceError::Forbidden(_)
                    | ServiceError::OAuth { code: OAuthErrorCode::InvalidClient, .. }
            )
    }
}

impl From<diesel::result::Error> for ServiceError {
    fn from(e: diesel::result::Error) -> Self {
        if gave_up_waiting(&e) {
            return ServiceError::Unavailable;
        }
        ServiceError::internal(e)
    }
}

/// SQLite gave up waiting for its write lock after the busy timeout: the service is overloaded, which
/// the client may retry, not an internal error.
pub(crate) fn gave_up_waiting(e: &diesel::result::Error) -> bool {
    matches!(e, diesel::result::Error::DatabaseError(_, info) if info.message().contains("database is locked"))
}

impl From<crate::db::DbError> for ServiceError {
    fn from(e: crate::db::DbError) -> Self {
        match e {
            crate::db::DbError::Busy | crate::db::DbError::Pool(_) => ServiceError::Unavailable,
            e => ServiceError::internal(e),
        }
    }
}

impl From<diesel::r2d2::PoolError> for ServiceError {
    fn from(_: diesel::r2d2::PoolError) -> Self {
        ServiceError::Unavailable
    }
}

impl From<crate::hsm::HsmError> for ServiceError {
    fn from(e: crate::hsm::HsmError) -> Self {
        match e {
            crate::hsm::HsmError::LoginRefused => ServiceError::HsmUnavailable,
            crate::hsm::HsmError::Busy => ServiceError::Unavailable,
            e => ServiceError::internal(e),
        }
    }
}

impl From<crate::pki::PkiError> for ServiceError {
    fn from(e: crate::pki::PkiError) -> Self {
        match e {
            crate::pki::PkiError::Hsm(e) => e.into(),
            e => ServiceError::internal(e),
        }
    }
}

impl From<crate::domain::algorithms::AlgorithmError> for ServiceError {
    fn from(e: crate::domain::algorithms::AlgorithmError) -> Self {
        use crate::domain::algorithms::AlgorithmError as A;
        match e {
            A::InvalidSignAlgo => ServiceError::Invalid(Param::SignAlgo),
            A::MissingHashAlgo => ServiceError::Missing(Param::HashAlgo),
            A::InvalidHashAlgo => ServiceError::Invalid(Param::HashAlgo),
            A::MissingSignAlgoParams => ServiceError::Missing(Param::SignAlgoParams),
            A::InvalidSignAlgoParams => ServiceError::Invalid(Param::SignAlgoParams),
        }
    }
}

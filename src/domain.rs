//! Pure types and rules, no I/O: algorithms and OIDs, key kinds, the SAD policy, TOTP step rules,
//! enrolment input (contact details, password policy, invoices), renewal rules (rekey window, quota) and
//! the OAuth2 server's rules (redirect URIs, PKCE, scopes).
//! Parse, don't validate: once a value is one of these types it is valid.

pub mod ades;
pub(crate) mod algorithms;
pub(crate) mod documents;
pub(crate) mod enrolment;
pub mod ids;
pub(crate) mod key_kind;
pub mod oauth2;
pub(crate) mod recovery;
pub(crate) mod renewal;
pub mod sad;
pub mod secrets;
pub mod signing_session;
pub mod states;
pub(crate) mod text;
pub mod totp;

pub use algorithms::{HashAlgorithm, Hasher, SignatureScheme};
pub use ids::{CheckId, ClientId, CredentialId, OrderId, UserId};
pub use key_kind::KeyKind;
pub use states::{
    AccountStatus, ApiKeyRole, AuditEventName, CaName, CertificateStatus, Channel, CheckKind, CheckStatus, ClientType,
    CredentialStatus, OrderStatus, OutboxStatus, Purpose, RevocationReason, SignedOutput, SigningSessionState,
    TimeStampRequester, TotpPostponement, TrustServiceName, VerificationPurpose,
};

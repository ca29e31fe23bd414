//! The lifecycle API for front ends (`/api/v1`), one submodule per flow: registration and activation,
//! the session, the profile and consents, the authenticator, the password, the phone. Orders and
//! certificates are in `api::certificates`.

mod password;
mod phone;
mod profile;
mod registration;
mod session;
mod totp;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::Dialect;
use crate::service::accounts::{self, TotpStatus};
use crate::service::Services;

pub use password::*;
pub use phone::*;
pub use profile::*;
pub use registration::*;
pub use session::*;
pub use totp::*;

const L: Dialect = Dialect::Lifecycle;
const TAG: &str = "Account";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The token of the link from the e-mail.
    #[schema(value_type = String)]
    pub token: SecretString,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CodeSentResponse {
    /// Where the code went (partly hidden).
    pub destination_hint: String,
    pub code_expires_in: i64,
    /// Seconds before another code may be asked for.
    pub next_code_after: i64,
}

impl From<accounts::CodeSent> for CodeSentResponse {
    fn from(c: accounts::CodeSent) -> Self {
        CodeSentResponse {
            destination_hint: c.destination_hint,
            code_expires_in: c.code_expires_in,
            next_code_after: c.next_code_after,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusResponse {
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpView {
    /// `paired`, `required` (pair before anything else), `postponed` or `optional` (offer pairing).
    pub status: String,
    /// The last day on which pairing may be postponed.
    pub mandatory_after: String,
}

fn totp_view(services: &Services, status: TotpStatus) -> TotpView {
    TotpView {
        status: status.as_str().into(),
        mandatory_after: services.config.lifecycle.totp_mandatory_after.to_string(),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    #[schema(value_type = String)]
    pub code: SecretString,
}

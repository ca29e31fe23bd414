//! Development mode only: an operator key and the webhook secrets, generated on first start and kept
//! in `<data_dir>/dev-secrets.json`, so that local runs, tests and the `lifecycle-tour` example can act
//! as operator, payment provider and identification provider. Production mode never writes this file.
//!
//! Webhook secrets set in the configuration (`payments.webhook_secret`, `identity.webhook_secret`, the
//! settings production uses) win over generated ones, and the file records the ones in force. Several
//! nodes in development mode therefore need those secrets in their configuration: each would otherwise
//! generate its own, and a webhook signed for one node would be refused by the others. The operator keys
//! live in the shared database, so each node's works on every node.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::db::{self, operators, DbConnection};
use crate::domain::secrets;

use super::{StartError, WebhookSecrets};

/// The file's content, in clear: the file is how local runs and tests learn the secrets. Its `Debug`
/// form shows none of them.
#[derive(Clone, Serialize, Deserialize)]
pub struct DevSecrets {
    /// The operator API key of development mode.
    pub operator_key: String,
    /// Secret of the payment provider's webhook.
    pub payment_webhook_secret: String,
    /// Secret of the identity provider's webhook.
    pub identity_webhook_secret: String,
}

impl std::fmt::Debug for DevSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevSecrets").finish_non_exhaustive()
    }
}

/// Where the development secrets file lives in the data directory.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("dev-secrets.json")
}

/// Reads the file, or creates it; either way the operator key works afterwards. Secrets given in
/// `configured` replace generated ones (and the file is rewritten to show them).
pub fn load_or_create(
    data_dir: &Path,
    conn: &mut DbConnection,
    now: i64,
    configured: &WebhookSecrets,
) -> Result<DevSecrets, StartError> {
    let file = path(data_dir);
    let existing = std::fs::read_to_string(&file).ok().and_then(|text| serde_json::from_str::<DevSecrets>(&text).ok());
    let mut secrets = existing.clone().unwrap_or_else(|| DevSecrets {
        operator_key: format!("rsspop_{}", secrets::new_token()),
        payment_webhook_secret: secrets::new_token(),
        identity_webhook_secret: secrets::new_token(),
    });
    let set = |value: &Option<SecretString>| {
        value.as_ref().map(ExposeSecret::expose_secret).filter(|v| !v.is_empty()).map(str::to_string)
    };
    if let Some(secret) = set(&configured.payments) {
        secrets.payment_webhook_secret = secret;
    }
    if let Some(secret) = set(&configured.identity) {
        secrets.identity_webhook_secret = secret;
    }
    let unchanged = existing.as_ref().is_some_and(|e| {
        e.operator_key == secrets.operator_key
            && e.payment_webhook_secret == secrets.payment_webhook_secret
            && e.identity_webhook_secret == secrets.identity_webhook_secret
    });
    if !unchanged {
        let text = serde_json::to_string_pretty(&secrets)
            .map_err(|e| StartError::failed("encoding the development secrets", e))?;
        write_private(&file, &text).map_err(|e| StartError::failed(file.display().to_string(), e))?;
    }
    let digest = secrets::token_digest(&secrets.operator_key);
    let known = operators::by_key_digest(conn, &digest).map_err(db::DbError::from)?;
    if known.is_none() {
        let row = operators::OperatorRow {
            role: crate::domain::ApiKeyRole::Admin,
            id: uuid::Uuid::new_v4().to_string(),
            name: format!("development-{}", hex::encode(secrets::random_bytes::<4>())),
            key_digest: digest,
            created_at: now,
            revoked_at: None,
        };
        operators::insert(conn, &row).map_err(db::DbError::from)?;
    }
    Ok(secrets)
}

fn write_private(file: &Path, text: &str) -> std::io::Result<()> {
    crate::data_dir::write_private(file, text.as_bytes())
}

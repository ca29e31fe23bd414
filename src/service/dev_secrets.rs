//! Development mode only: an operator key and the webhook secrets, generated on first start and kept
//! in `<data_dir>/dev-secrets.json`, so that local runs, tests and the `lifecycle-tour` example can act
//! as operator, payment provider and identification provider. Production mode never writes this file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::db::{self, operators, DbConnection};
use crate::domain::secrets;

use super::StartError;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevSecrets {
    pub operator_key: String,
    pub payment_webhook_secret: String,
    pub identity_webhook_secret: String,
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("dev-secrets.json")
}

/// Reads the file, or creates it; either way the operator key works afterwards.
pub fn load_or_create(data_dir: &Path, conn: &mut DbConnection, now: i64) -> Result<DevSecrets, StartError> {
    let file = path(data_dir);
    let existing = std::fs::read_to_string(&file).ok().and_then(|text| serde_json::from_str::<DevSecrets>(&text).ok());
    let secrets = match existing {
        Some(s) => s,
        None => {
            let s = DevSecrets {
                operator_key: format!("rsspop_{}", secrets::new_token()),
                payment_webhook_secret: secrets::new_token(),
                identity_webhook_secret: secrets::new_token(),
            };
            let text = serde_json::to_string_pretty(&s).map_err(|e| StartError::Other(e.to_string()))?;
            write_private(&file, &text).map_err(|e| StartError::Other(format!("{}: {e}", file.display())))?;
            s
        }
    };
    let digest = secrets::token_digest(&secrets.operator_key);
    let known = operators::by_key_digest(conn, &digest).map_err(db::DbError::from)?;
    if known.is_none() {
        let row = operators::OperatorRow {
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

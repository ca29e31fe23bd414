//! The use cases. A service function owns its transaction, checks authorisation, calls the stores,
//! writes the audit record in the same transaction, and returns domain values. All of it is blocking
//! (diesel, PKCS#11): the api layer runs it on blocking threads.

pub mod accounts;
pub mod auth;
pub mod authenticator;
pub mod ca;
pub mod credentials;
pub mod dev_secrets;
mod error;
pub mod identity;
pub mod issuance;
pub mod lifecycle_jobs;
mod one_time;
pub mod operators;
pub mod orders;
pub mod provisioning;
mod second_factor;
pub mod signing;

use std::sync::Arc;

pub use error::{Param, ServiceError};

use crate::audit::{self, AuditEvent, Outcome};
use crate::clock::Clock;
use crate::config::{Config, Mode};
use crate::db::{self, DbPool, PooledDb};
use crate::hsm::KeyStore;
use crate::pki::CertificateAuthority;

/// Everything a use case needs; shared by all requests.
pub struct Services {
    pub config: Config,
    pub db: DbPool,
    pub keystore: KeyStore,
    pub ca: CertificateAuthority,
    pub clock: Arc<dyn Clock>,
    /// Base URL put into certificates (AIA, CRL distribution points).
    pub public_url: String,
    pub webhook_secrets: WebhookSecrets,
}

/// The shared secrets that authenticate the providers' webhooks (None: that webhook is refused).
#[derive(Debug, Clone, Default)]
pub struct WebhookSecrets {
    pub payments: Option<String>,
    pub identity: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("HSM: {0}")]
    Hsm(#[from] crate::hsm::HsmError),
    #[error("CA: {0}")]
    Pki(#[from] crate::pki::PkiError),
    #[error("{0}")]
    Other(String),
}

impl Services {
    /// Opens the database (running migrations), the HSM token (creating the embedded one on first
    /// start) and the CA (creating it on first start).
    pub fn open(config: Config, clock: Arc<dyn Clock>, public_url: String) -> Result<Services, StartError> {
        let db = db::connect(&config.database_url(), (config.hsm.sessions as u32 * 2).max(8))?;
        let pin = config.hsm.pin.clone().ok_or_else(|| {
            StartError::Other("bad setting hsm.pin (RSSP_HSM_PIN): the PIN of the HSM token is required".into())
        })?;
        let so_pin = if config.embedded_softhsm() {
            Some(
                crate::hsm::embedded_so_pin(&config.data_dir)
                    .map_err(|e| StartError::Other(format!("data directory: {e}")))?,
            )
        } else {
            None
        };
        let keystore =
            KeyStore::open(&config.hsm.module, &config.hsm.token_label, &pin, config.hsm.sessions, so_pin.as_deref())?;
        let mut conn = db.get().map_err(db::DbError::from)?;
        let ca = ca::load_or_create(&mut conn, &keystore, &config, &public_url, clock.now())?;
        let mut webhook_secrets = WebhookSecrets {
            payments: config.payments.webhook_secret.clone(),
            identity: config.identity.webhook_secret.clone(),
        };
        if config.mode == Mode::Development {
            let dev = dev_secrets::load_or_create(&config.data_dir, &mut conn, clock.now())?;
            webhook_secrets.payments.get_or_insert(dev.payment_webhook_secret);
            webhook_secrets.identity.get_or_insert(dev.identity_webhook_secret);
        }
        drop(conn);
        let services = Services { config, db, keystore, ca, clock, public_url, webhook_secrets };
        // Every CA has a stored CRL before the first request: serving a CRL reads it, never signs.
        ca::refresh_crls(&services).map_err(|e| StartError::Other(format!("publishing the CRLs: {e}")))?;
        Ok(services)
    }

    pub fn conn(&self) -> Result<PooledDb, ServiceError> {
        Ok(self.db.get()?)
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Records a refused request in the audit trail, in a transaction of its own (the refused request
    /// itself changed nothing). Internal errors are logged, not audited as refusals.
    pub fn audit_refusal(&self, event: &str, user_id: Option<&str>, credential_id: Option<&str>, error: &ServiceError) {
        if matches!(error, ServiceError::Internal(_)) {
            tracing::error!(event, %error, "internal error");
            return;
        }
        // The credential id may be whatever the client sent: keep the trail bounded.
        let credential_id = credential_id.map(|id| &id[..id.floor_char_boundary(64)]);
        let result = self.conn().and_then(|mut conn| {
            db::write_transaction(&mut conn, |c| {
                audit::record(
                    c,
                    self.now(),
                    AuditEvent { event, outcome: Outcome::Refused, user_id, credential_id, detail: error.to_string() },
                )
                .map_err(ServiceError::from)
            })
        });
        if let Err(e) = result {
            tracing::error!(event, error = %e, "could not write the audit record of a refusal");
        }
    }
}

/// Runs a use case and records its refusal, if it is refused, in the audit trail.
pub(crate) fn audited<T>(
    services: &Services,
    event: &str,
    user_id: Option<&str>,
    f: impl FnOnce() -> Result<T, ServiceError>,
) -> Result<T, ServiceError> {
    let result = f();
    if let Err(e) = &result {
        services.audit_refusal(event, user_id, None, e);
    }
    result
}

/// The authenticated caller of a request: whose token it is.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    pub token_digest: String,
}

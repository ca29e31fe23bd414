//! The use cases. A service function owns its transaction, checks authorisation, calls the stores,
//! writes the audit record in the same transaction, and returns domain values. All of it is blocking
//! (diesel, PKCS#11): the api layer runs it on blocking threads.

pub(crate) mod accounts;
pub(crate) mod auth;
pub(crate) mod authenticator;
pub mod ca;
mod committed;
pub(crate) mod credentials;
pub mod dev_secrets;
mod error;
pub(crate) mod health;
pub(crate) mod identity;
pub(crate) mod identity_provider;
pub(crate) mod issuance;
pub mod ledger;
pub(crate) mod lifecycle_jobs;
pub(crate) mod oauth2;
pub mod ocsp;
mod one_time;
pub mod operators;
pub(crate) mod orders;
pub mod provisioning;
pub(crate) mod rekey;
mod second_factor;
pub(crate) mod signing;
pub(crate) mod signing_sessions;
pub mod timestamps;
pub mod totp_seal;
mod trust_services;
pub mod validation_data;
pub mod views;
pub(crate) mod webhooks;

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

pub(crate) use committed::Committed;
pub use error::{BoxError, Field, OAuthErrorCode, Param, ServiceError};

use crate::audit::{self, AuditEvent, Outcome};
use crate::clock::Clock;
use crate::config::{Config, Mode};
use crate::db::{self, DbPool};
use crate::domain::{AuditEventName, UserId};
use crate::hsm::KeyStore;
use crate::metrics::METRICS;
use crate::pki::CertificateAuthority;

/// Most rows an admin listing returns.
pub const MAX_ROWS: i64 = 500;

/// Longest wait for a connection to record a refusal in the audit trail.
const AUDIT_POOL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Everything a use case needs; shared by all requests.
pub struct Services {
    /// The configuration the process started with.
    pub config: Config,
    /// The database connection pool; take connections through [`Services::conn`].
    pub db: DbPool,
    /// The subscribers' signing keys (and the seal key of TOTP seeds).
    pub keystore: KeyStore,
    /// The CA keys' own token when `hsm.ca_token_label` is set; see [`Services::ca_keys`].
    pub ca_keystore: Option<KeyStore>,
    /// The root and issuing CA.
    pub ca: CertificateAuthority,
    /// The time-stamping authority (its key on the CA's token).
    pub tsa: timestamps::TimeStampingAuthority,
    /// The OCSP responder (its key on the CA's token) and its cache of signed responses.
    pub ocsp: ocsp::OcspResponder,
    /// The clock every use case reads the time from (a manual one in tests).
    pub clock: Arc<dyn Clock>,
    /// Base URL put into certificates (AIA, CRL distribution points).
    pub public_url: String,
    /// The secrets that authenticate the provider webhooks.
    pub webhook_secrets: WebhookSecrets,
    /// The last readiness result, so that a flood of unauthenticated probes costs one check a second.
    pub readiness: health::ReadinessCache,
    /// The CSC bearer tokens this node found valid, so that their requests need one blocking call, not two.
    pub(crate) seen_tokens: auth::SeenTokens,
    /// The hot path's writes (signHash reservations, authorize's code and SAD) of concurrent requests,
    /// made together.
    pub ledger: ledger::Ledger,
    /// SQLite: copies the write-ahead log into the database file, off the requests' path (stops when dropped).
    _wal_checkpointer: Option<db::WalCheckpointer>,
}

/// The shared secrets that authenticate the providers' webhooks (None: that webhook is refused).
#[derive(Clone, Default)]
pub struct WebhookSecrets {
    /// Secret of the payment provider's webhook.
    pub payments: Option<SecretString>,
    /// Secret of the identity provider's webhook.
    pub identity: Option<SecretString>,
}

/// Says which secrets are set, in the form the configuration's URLs use (`***`).
impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |secret: &Option<SecretString>| secret.as_ref().map(|_| "***");
        f.debug_struct("WebhookSecrets")
            .field("payments", &set(&self.payments))
            .field("identity", &set(&self.identity))
            .finish()
    }
}

/// A production start marks the database; a development start against a marked database is refused.
/// Development mode generates an operator key into the shared `operators` table and lets the admin API
/// read codes from the outbox: a production node that merely forgot `RSSP_MODE` must not do that.
/// A database used in development first becomes marked at its first production start.
fn check_installation_mode(pool: &DbPool, mode: Mode, now: i64) -> Result<(), StartError> {
    let mut conn = db::checkout(pool)?;
    match mode {
        Mode::Production => db::installation::mark_production(&mut conn, now).map_err(db::DbError::from)?,
        Mode::Development => {
            if let Some(row) = db::installation::mode(&mut conn).map_err(db::DbError::from)? {
                if row.mode == db::installation::PRODUCTION {
                    return Err(StartError::Refused(
                        "this database was started in production mode: a development start is refused (it \
                         would register a development operator key and expose codes through the outbox API). \
                         Set RSSP_MODE=production (or mode = \"production\" in rssp.toml)",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Why the server (or a command) could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Db(#[from] db::DbError),
    /// The HSM could not be opened or refused a key operation at start.
    #[error("HSM: {0}")]
    Hsm(#[from] crate::hsm::HsmError),
    /// The CA could not be created or loaded.
    #[error("CA: {0}")]
    Pki(#[from] crate::pki::PkiError),
    /// The configuration is unreadable or refused.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A start refused for a reason the message states in full.
    #[error("{0}")]
    Refused(&'static str),
    /// Something failed underneath: what was being done, and the error, kept as the source.
    #[error("{what}")]
    Failed {
        /// What was being done, in words.
        what: String,
        /// The error underneath.
        #[source]
        source: BoxError,
    },
}

impl StartError {
    /// `source`, with what was being done when it failed.
    pub fn failed(what: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> StartError {
        StartError::Failed { what: what.into(), source: Box::new(source) }
    }
}

impl From<diesel::result::Error> for StartError {
    fn from(e: diesel::result::Error) -> Self {
        StartError::Db(e.into())
    }
}

impl Services {
    /// Opens the database (running migrations), the HSM token (creating the embedded one on first
    /// start) and the CA (creating it on first start).
    pub fn open(config: Config, clock: Arc<dyn Clock>, public_url: String) -> Result<Services, StartError> {
        let private =
            |e: std::io::Error| StartError::failed(format!("data directory {}", config.data_dir.display()), e);
        crate::data_dir::prepare(&config.data_dir).map_err(private)?;
        crate::data_dir::secure_sqlite_files(&config.database_url()).map_err(private)?;
        let db = db::connect_for_server(&config.database_url(), (config.hsm.sessions as u32 * 2).max(8))?;
        check_installation_mode(&db, config.mode, clock.now())?;
        let pin = config.hsm.pin.clone().ok_or_else(|| {
            StartError::Refused("bad setting hsm.pin (RSSP_HSM_PIN): the PIN of the HSM token is required")
        })?;
        let so_pin = if config.embedded_softhsm() {
            Some(crate::hsm::embedded_so_pin(&config.data_dir).map_err(private)?)
        } else {
            None
        };
        let session_wait = std::time::Duration::from_millis(config.hsm.session_wait_ms);
        let so_pin = so_pin.as_ref().map(ExposeSecret::expose_secret);
        let keystore = KeyStore::open(&config.hsm.module, &config.hsm.token_label, &pin, config.hsm.sessions, so_pin)?
            .with_session_wait(session_wait);
        let seeds_sealed = db::authenticators::any_totp_sealed(&mut *db::checkout(&db)?).map_err(db::DbError::from)?;
        keystore.prepare_seal_key(!seeds_sealed)?;
        // CA keys on a token of their own, when configured: a second, small session pool.
        let ca_keystore = match &config.hsm.ca_token_label {
            Some(label) => {
                let ca_pin = config.hsm.ca_pin.as_ref().unwrap_or(&pin);
                let store = KeyStore::open(&config.hsm.module, label, ca_pin, config.hsm.sessions.min(2), so_pin)?;
                Some(store.with_session_wait(session_wait))
            }
            None => None,
        };
        let mut conn = db::checkout(&db)?;
        totp_seal::seal_clear_seeds(&mut conn, &keystore)?;
        // After the sealing, whose own checkpoint must empty the log of the seeds' clear copies: with the
        // checkpointer running it could find the log busy.
        let wal_checkpointer = db::start_wal_checkpointer(&config.database_url())?;
        let ca_keys = ca_keystore.as_ref().unwrap_or(&keystore);
        let ca = ca::load_or_create(&mut conn, ca_keys, &config, &public_url, clock.now())?;
        let tsa = timestamps::load_or_create(&mut conn, ca_keys, &ca, &config, &public_url, clock.now())?;
        let ocsp = ocsp::load_or_create(
            &mut conn,
            ca_keys,
            &ca,
            &tsa.unit.certificate_der,
            &config,
            &public_url,
            clock.now(),
        )?;
        let mut webhook_secrets = WebhookSecrets {
            payments: config.payments.webhook_secret.clone(),
            identity: config.identity.webhook_secret.clone(),
        };
        if config.mode == Mode::Development {
            // Configured secrets win; only missing ones are generated (see dev_secrets).
            let dev = dev_secrets::load_or_create(&config.data_dir, &mut conn, clock.now(), &webhook_secrets)?;
            webhook_secrets.payments = Some(dev.payment_webhook_secret.into());
            webhook_secrets.identity = Some(dev.identity_webhook_secret.into());
        }
        drop(conn);
        let ledger = ledger::Ledger::for_database(&config.database_url());
        let services = Services {
            config,
            db,
            keystore,
            ca_keystore,
            ca,
            tsa,
            ocsp,
            clock,
            public_url,
            webhook_secrets,
            readiness: health::ReadinessCache::default(),
            seen_tokens: auth::SeenTokens::default(),
            ledger,
            _wal_checkpointer: wal_checkpointer,
        };
        // Every CA has a stored CRL before the first request: serving a CRL reads it, never signs.
        ca::refresh_crls(&services).map_err(|e| StartError::failed("publishing the CRLs", e))?;
        // A node that was down past the responder certificate's renewal time renews it before it answers;
        // a failure is retried by the scheduler (once the certificate has expired, answers fail until then).
        if let Err(e) = ocsp::renew_responder_if_due(&services) {
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "renewing the OCSP responder certificate at start");
        }
        Ok(services)
    }

    /// The key store holding the CA keys: their own token when `hsm.ca_token_label` is set, otherwise
    /// the subscribers' token. Every CA signature (certificates, CRLs) goes through this.
    pub fn ca_keys(&self) -> &KeyStore {
        self.ca_keystore.as_ref().unwrap_or(&self.keystore)
    }

    /// A pooled connection. Never ask for one while holding another (see [`db::Conn`]).
    pub fn conn(&self) -> Result<db::Conn, ServiceError> {
        let wait = std::time::Duration::from_millis(self.config.security.db_pool_wait_ms);
        Ok(db::checkout_within(&self.db, wait)?)
    }

    /// The current time, Unix seconds, from [`Services::clock`].
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Whether this node takes the CSC bearer token as seen valid, so that its next request reads the
    /// body before the token is checked (see `auth::SeenTokens`); the tests use it to know when a
    /// token was checked.
    pub fn has_seen_token(&self, token: &str) -> bool {
        auth::seen_recently(self, token)
    }

    /// Records a refused request in the audit trail, in a transaction of its own (the refused request
    /// itself changed nothing). Internal errors are logged, not audited as refusals.
    pub fn audit_refusal(
        &self,
        event: AuditEventName,
        user_id: Option<&str>,
        credential_id: Option<&str>,
        error: &ServiceError,
    ) {
        self.audit_refusal_detailed(event, user_id, credential_id, error, error.to_string());
    }

    /// [`Services::audit_refusal`] with the trail's detail written by the caller; `error` is the
    /// refusal itself, which the log line and the metrics name.
    pub fn audit_refusal_detailed(
        &self,
        event: AuditEventName,
        user_id: Option<&str>,
        credential_id: Option<&str>,
        error: &ServiceError,
        detail: String,
    ) {
        match error {
            // Not a refusal: logged once, with its causes, where it is mapped to an answer (`api::error`).
            ServiceError::Internal(_) => return,
            // Nothing was checked: the request was turned away before it reached the database.
            ServiceError::Unavailable | ServiceError::HsmUnavailable => return,
            _ => {}
        }
        // The credential id may be whatever the client sent: keep the trail bounded.
        let credential_id = credential_id.map(|id| &id[..id.floor_char_boundary(64)]);
        // The log line carries ids and the kind of refusal only: the message may quote what the client
        // sent, and the trail (not the log) is where the detail belongs.
        let reason = error.reason();
        if error.is_security_refusal() {
            tracing::warn!(event = event.as_str(), user_id, credential_id, reason, "refused");
        } else {
            tracing::info!(event = event.as_str(), user_id, credential_id, reason, "refused");
        }
        if let Some(why) = error.sad_refusal() {
            METRICS.sad_refusals.with_label_values(&[why]).inc();
        }
        if let Some(why) = error.otp_refusal() {
            METRICS.otp_refusals.with_label_values(&[why]).inc();
        }
        // A refusal record must not be lost to a busy pool: wait longer than a request would. This
        // cannot deadlock because no code path holds a connection while it asks for another.
        let result = db::checkout_within(&self.db, AUDIT_POOL_WAIT).map_err(ServiceError::from).and_then(|mut conn| {
            db::write_transaction(&mut conn, |c| {
                audit::record(
                    c,
                    self.now(),
                    AuditEvent { event, outcome: Outcome::Refused, user_id, credential_id, detail },
                )
                .map_err(ServiceError::from)
            })
        });
        if let Err(e) = result {
            tracing::error!(event = event.as_str(), error = %crate::telemetry::error_chain(&e), "could not write the audit record of a refusal");
        }
    }
}

/// Runs a use case and records its refusal, if it is refused, in the audit trail.
pub(crate) fn audited<T>(
    services: &Services,
    event: AuditEventName,
    user_id: Option<&str>,
    f: impl FnOnce() -> Result<T, ServiceError>,
) -> Result<T, ServiceError> {
    let result = f();
    if let Err(e) = &result {
        services.audit_refusal(event, user_id, None, e);
    }
    result
}

/// The authenticated caller of a request: whose token it is, and through which OAuth2 client.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user whose token it is.
    pub user_id: UserId,
    pub(crate) token_digest: String,
    /// The OAuth2 client the token was issued to (none for the person's own login): what it authorises
    /// is bound to that client, and it revokes only that client's tokens.
    pub client_id: Option<crate::domain::ClientId>,
}

impl Principal {
    /// Whether `client_id` (a stored row's) is the caller's client: both none, or the same client.
    pub fn is_client(&self, client_id: Option<&str>) -> bool {
        self.client_id.as_deref() == client_id
    }

    /// For an audit record's detail: ` through OAuth client <id>` when the caller acts through a client,
    /// else nothing (the person acted).
    pub fn through_client(&self) -> String {
        self.client_id.as_ref().map(|c| format!(" through OAuth client {c}")).unwrap_or_default()
    }
}

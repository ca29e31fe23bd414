//! Configuration: defaults, then `rssp.toml`, then `RSSP_*` environment variables.
//!
//! Every setting is checked at start; a bad one stops the start with an error that names it.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The default PKCS#11 module: Debian's SoftHSM 2.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Shortest webhook secret accepted (HMAC keys guessed by nobody).
pub const MIN_SECRET_CHARS: usize = 16;

/// Why the configuration was refused; the message names the file or the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file cannot be read.
    #[error("cannot read configuration file {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        cause: std::io::Error,
    },
    /// The configuration file is no valid TOML for rssp's settings.
    #[error("configuration file {path}: {cause}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong in it, with its position.
        cause: String,
    },
    /// A setting's value is refused.
    #[error("bad setting {name}: {reason}")]
    Invalid {
        /// The setting, with its environment variable where it has one.
        name: String,
        /// What the value must be.
        reason: String,
    },
}

fn invalid(name: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { name: name.to_string(), reason: reason.into() }
}

/// The longest a request may wait for a database connection or an HSM session, in milliseconds.
const MAX_WAIT_MS: u64 = 600_000;

/// rssp's settings: defaults, then the file, then `RSSP_*` environment variables (see the README).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// All local state: the SQLite file, the SoftHSM token, the HSM PIN of the embedded default.
    pub data_dir: PathBuf,
    /// address:port to listen on (port 0 picks a free port).
    pub listen: String,
    /// Connection timeouts and the graceful shutdown of the HTTP server.
    pub http: HttpConfig,
    /// address:port of a separate listener serving only `/metrics` (Prometheus), so the metrics need
    /// not be public. Unset: `/metrics` is served on `listen`. When set, `listen` does not serve it.
    pub metrics_listen: Option<String>,
    /// `sqlite://path` or `postgres://...`; defaults to a SQLite file under the data directory.
    pub database_url: Option<String>,
    /// Base URL under which clients reach this server; used in certificates (AIA, CRL distribution point)
    /// and CSC `info`. Required in production mode. When it changes, the issuing CA certificate still
    /// names the old URLs until `rssp pki reissue-issuing-ca` (the start warns).
    pub public_url: Option<String>,
    /// Service name shown by CSC `info`.
    pub service_name: String,
    /// `development` (the default: e-mail and SMS stay in the outbox, development secrets are generated)
    /// or `production` (messages are delivered; webhook secrets and delivery settings are required).
    /// A production start marks the database; a development start against a marked one is refused.
    pub mode: Mode,
    /// Base URL of the front end (portal) that links in e-mails point to; defaults to the public URL.
    pub portal_url: Option<String>,
    /// Production mode refuses the embedded set-up (a SoftHSM token whose PIN is kept in a file under
    /// the data directory, and SQLite) unless this is true: for a single-machine deployment that
    /// chose it knowingly.
    pub allow_embedded: bool,
    /// The PKCS#11 module, token and session pool (`[hsm]`).
    pub hsm: HsmConfig,
    /// Tokens, codes, lockouts and limits (`[security]`).
    pub security: SecurityConfig,
    /// The CA's names, key types and validity (`[ca]`).
    pub ca: CaConfig,
    /// The time-stamping authority (`[tsa]`).
    pub tsa: TsaConfig,
    /// The OCSP responder (`[ocsp]`).
    pub ocsp: OcspConfig,
    /// Packages, orders and the account lifecycle (`[lifecycle]`).
    pub lifecycle: LifecycleConfig,
    /// E-mail and SMS delivery (`[notify]`).
    pub notify: NotifyConfig,
    /// The payment provider (`[payments]`).
    pub payments: PaymentsConfig,
    /// The video-identification provider (`[identity]`).
    pub identity: IdentityConfig,
    /// The portal's document signing sessions (`[signing_sessions]`).
    pub signing_sessions: SigningSessionsConfig,
}

/// The HTTP server's connections and shutdown.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// How long an idle keep-alive connection stays open. Longer than the idle timeout of common
    /// client pools (aiohttp: 15 s) and of reverse proxies' upstream pools (nginx: 60 s), so that such
    /// a client never sends a request into a connection the server is closing at that moment (a client
    /// that keeps idle connections longer, like Go's default 90 s, must retry or be set shorter);
    /// 0 turns keep-alive off.
    pub keep_alive_secs: u64,
    /// How long a client may take to send a request's head (line and headers) once it started, and
    /// then again its body; a slower one gets 408 (this bounds slow-header and slow-body attacks).
    pub request_timeout_secs: u64,
    /// Most open client connections (all workers together); more wait in the listen backlog. Keeps
    /// idle or slow connections from using up the file descriptors the database and HSM also need.
    pub max_connections: usize,
    /// On SIGTERM or SIGINT the server stops accepting connections at once and lets requests in
    /// flight finish for at most this long, then stops the background jobs and closes the HSM
    /// sessions.
    pub shutdown_grace_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { keep_alive_secs: 75, request_timeout_secs: 30, max_connections: 4096, shutdown_grace_secs: 30 }
    }
}

/// Development (local runs, outbox readable, embedded set-up allowed) or production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The default: e-mail and SMS stay in the outbox, development secrets are written to the data directory.
    Development,
    /// A real deployment: see [`Config::mode`] for what it requires and refuses.
    Production,
}

/// Timings and rules of the account and certificate lifecycle.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleConfig {
    /// Lifetime of the invitation (activation) link.
    pub activation_link_lifetime_secs: i64,
    /// Lifetime of an SMS code (activation, password recovery, TOTP reset).
    pub sms_code_lifetime_secs: i64,
    /// Lifetime of the codes of a phone change (by e-mail, then by SMS to the new number).
    pub phone_change_code_lifetime_secs: i64,
    /// How long after a code was sent a new one may be asked for (per account and purpose).
    pub code_resend_cooldown_secs: i64,
    /// Codes sent to one e-mail address or phone number per hour, whoever asks.
    pub codes_per_address_per_hour: i64,
    /// Wrong tries before a code is used up.
    pub code_max_attempts: i32,
    /// Lifetime of the password-recovery link.
    pub password_reset_link_lifetime_secs: i64,
    /// Wrong passwords in a row before logins lock.
    pub login_max_failures: i32,
    /// How long logins stay locked.
    pub login_lockout_secs: i64,
    /// The last day (UTC) on which pairing an authenticator may be postponed.
    pub totp_mandatory_after: chrono::NaiveDate,
    /// Days before expiry on which the rekey notices go out (each once).
    pub rekey_notice_days: Vec<i64>,
    /// Hours before expiry at which the rekey window closes (after that: reissue).
    pub rekey_window_closes_hours: i64,
    /// Whether a rekey whose personal data did not change is accepted at once, without waiting for an
    /// identity decision (default false: every rekey waits for the operator or the provider).
    pub rekey_auto_accept_unchanged: bool,
    /// How often the lifecycle jobs (rekey notices, refunds) run.
    pub scheduler_interval_secs: u64,
    /// Key type of issued credentials unless the person chooses another.
    pub default_key_type: String,
    /// Most signatures one authorisation may cover on an issued credential.
    pub multisign: i32,
    /// Current versions of the documents a person accepts.
    pub privacy_version: String,
    pub(crate) terms_version: String,
    pub(crate) issuance_terms_version: String,
    /// The package catalogue.
    pub packages: Vec<PackageConfig>,
    /// ISO 4217 currency of the prices.
    pub currency: String,
    /// VAT added to the net prices.
    pub vat_percent: i64,
}

/// A certificate package a person can order (`[[lifecycle.packages]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageConfig {
    /// The package's id, as orders name it.
    pub id: String,
    /// Validity of the certificate issued for it, in years.
    pub validity_years: i64,
    /// Signatures the credential may make in all.
    pub transactions: i32,
    /// Price without VAT, in cents.
    pub net_cents: i64,
}

/// Delivery of e-mail and SMS from the outbox (production mode).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Sender of e-mails, e.g. `rssp <no-reply@example.org>`.
    pub email_from: String,
    /// SMTP server as a URL: `smtp://host:port` (plain), `smtp://user:pass@host:587?tls=required`, `smtps://host`.
    pub smtp_url: Option<String>,
    /// HTTP SMS gateway: rssp POSTs `{"to": "+386...", "text": "..."}` as JSON.
    pub sms_gateway_url: Option<String>,
    /// Bearer token for the SMS gateway.
    pub sms_gateway_token: Option<SecretString>,
    /// How often the outbox is delivered.
    pub delivery_interval_secs: u64,
    /// Tries before a message is given up (status `failed`).
    pub max_attempts: i32,
}

/// The payment provider (`[payments]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentsConfig {
    /// Shared secret of the payment provider's webhook (HMAC-SHA256 of the body).
    pub webhook_secret: Option<SecretString>,
    /// The provider's payment page; `{payment_ref}`, `{gross_cents}` and `{currency}` are filled in.
    pub page_url: String,
}

/// The video-identification provider (`[identity]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// Shared secret of the video-identification provider's webhook (HMAC-SHA256 of the body).
    pub webhook_secret: Option<SecretString>,
    /// The provider's identification session; `{check_id}` is filled in.
    pub session_url: String,
}

/// The PKCS#11 module and token that hold the keys (`[hsm]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HsmConfig {
    /// Path of the PKCS#11 module.
    pub module: PathBuf,
    /// Label of the token holding the CA and signing keys.
    pub token_label: String,
    /// User PIN of the token. The embedded default generates one under the data directory.
    pub pin: Option<SecretString>,
    /// Number of logged-in sessions kept open (the signing concurrency towards the HSM).
    pub sessions: usize,
    /// Longest wait for a free session when all are busy, before the request is answered 503 with
    /// `Retry-After` (an HSM that cannot keep up must not queue every request behind it).
    pub session_wait_ms: u64,
    /// Label of a separate token (same module) for the CA keys, apart from the subscribers' keys.
    /// None: the CA keys live on `token_label` too (still under their own `rssp-ca-*` labels).
    pub ca_token_label: Option<String>,
    /// User PIN of the CA token; defaults to `pin`.
    pub ca_pin: Option<SecretString>,
}

/// Tokens, codes, lockouts and limits (`[security]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Lifetime of an access token from `auth/login`.
    pub access_token_lifetime_secs: i64,
    /// Lifetime of a refresh token (`rememberMe`).
    pub refresh_token_lifetime_secs: i64,
    /// Lifetime of a SAD from `credentials/authorize` or `extendTransaction`.
    pub sad_lifetime_secs: i64,
    /// Absolute lifetime of a chain of SADs renewed through `extendTransaction`, counted from the
    /// one-time code that started it: no renewal outlives it.
    pub sad_max_lifetime_secs: i64,
    /// Wrong one-time codes in a row before the OTP factor locks.
    pub otp_max_failures: i32,
    /// How long a locked OTP factor stays locked.
    pub otp_lockout_secs: i64,
    /// Most hashes accepted in one request (and most signatures in one signDoc).
    pub max_hashes_per_request: usize,
    /// Most document bytes one `signatures/signDoc` may carry, all its documents together (before base64).
    pub max_signdoc_document_bytes: usize,
    /// Longest wait for a pooled database connection before a request is answered 503 with
    /// `Retry-After` (a flood must not queue every other request behind it).
    pub db_pool_wait_ms: u64,
    /// After a password recovery or a phone change, an authenticator reset within this many seconds
    /// needs a new identity verification before the new authenticator may authorise signatures; the
    /// link that cancels a reset works this long too.
    pub recovery_cooling_off_secs: i64,
}

/// The portal's document signing sessions (`[signing_sessions]`, `/api/v1/signing-sessions`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningSessionsConfig {
    /// Most files in one session (all signed with one code; at most `lifecycle.multisign` too).
    pub max_documents: usize,
    /// Largest file, in bytes (413 beyond).
    pub max_document_bytes: usize,
    /// Most bytes of files in one session, all together (413 beyond; the request carries them base64).
    pub max_session_bytes: usize,
    /// Most sessions a person may have open (unexpired) at once: each holds its files in the database.
    pub max_open_per_person: usize,
    /// How long an unsigned session lasts, from its creation.
    pub lifetime_secs: i64,
    /// How long the signed files can be downloaded, from the signing; then the scheduler deletes them.
    pub kept_after_signing_secs: i64,
}

/// The CA (`[ca]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaConfig {
    /// Organisation named in the CA certificates.
    pub organization: String,
    /// ISO 3166 country code used in the CA and end-entity subjects.
    pub country: String,
    /// Validity of end-entity certificates in days (never beyond the issuing CA's notAfter).
    pub end_entity_validity_days: i64,
    /// Country (ISO 3166-1 alpha-2) of a person whose account names none; default: `country`.
    pub default_subject_country: Option<String>,
    /// Whether end-entity certificates carry the QcSSCD statement (key in a qualified signature creation
    /// device). Unset: off when the PKCS#11 module is SoftHSM, which is not a QSCD; on otherwise.
    pub qc_sscd: Option<bool>,
    /// Time from a CRL's thisUpdate to its nextUpdate.
    pub crl_lifetime_secs: i64,
    /// How long before nextUpdate the scheduler publishes the next CRL.
    pub crl_refresh_before_secs: i64,
}

/// Who may ask `POST /tsa` for a time-stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TsaAccess {
    /// Anyone: relying parties and signing tools without an account (RFC 3161 clients send no credentials).
    Open,
    /// Only with an operator API key (`Authorization: Bearer <key>`).
    Bearer,
    /// Not served: 404. People still get time-stamps through CSC `signatures/timestamp`.
    Off,
}

/// The time-stamping authority (`[tsa]`): RFC 3161 over `POST /tsa` and CSC `signatures/timestamp`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TsaConfig {
    /// Who may use `POST /tsa`. Unset: `bearer` in production, `open` in development.
    pub access: Option<TsaAccess>,
    /// The TSA policy OID every token names (TSTInfo policy); a request naming another is rejected.
    /// Default: ETSI EN 319 421's best-practices policy, 0.4.0.2023.1.1.
    pub policy_oid: String,
    /// The accuracy the tokens state, in milliseconds (TSTInfo accuracy): how far genTime may be from
    /// UTC. genTime has whole seconds, so at least 1000.
    pub accuracy_millis: u32,
    /// Whether tokens claim to be qualified electronic time-stamps (ETSI EN 319 422 esi4-qtstStatement-1).
    /// Only a TSA on the EU trusted list may say so.
    pub qualified: bool,
    /// The kind of the TSA key, when it is generated (first start): rsa-2048, rsa-3072, ec-p256 or
    /// ec-p384. RSA-3072 by default: tokens must verify for decades.
    pub key_kind: String,
}

impl TsaConfig {
    /// Who may use `POST /tsa` in `mode`.
    pub fn access(&self, mode: Mode) -> TsaAccess {
        self.access.unwrap_or(match mode {
            Mode::Production => TsaAccess::Bearer,
            Mode::Development => TsaAccess::Open,
        })
    }

    /// The key kind of the TSA key.
    pub fn key_kind(&self) -> Result<crate::domain::KeyKind, ConfigError> {
        self.key_kind
            .parse()
            .map_err(|_| invalid("tsa.key_kind (RSSP_TSA_KEY_KIND)", "must be rsa-2048, rsa-3072, ec-p256 or ec-p384"))
    }

    /// The policy OID.
    pub fn policy(&self) -> Result<der::asn1::ObjectIdentifier, ConfigError> {
        self.policy_oid
            .parse()
            .map_err(|_| invalid("tsa.policy_oid (RSSP_TSA_POLICY_OID)", "must be a dotted object identifier"))
    }
}

impl Default for TsaConfig {
    fn default() -> Self {
        TsaConfig {
            access: None,
            policy_oid: "0.4.0.2023.1.1".to_string(),
            accuracy_millis: 1000,
            qualified: false,
            key_kind: "rsa-3072".to_string(),
        }
    }
}

/// The OCSP responder (`[ocsp]`) at `/ocsp`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OcspConfig {
    /// From a response's thisUpdate to its nextUpdate. A response is signed once and served from the
    /// cache until half of this has passed or the certificate's status changes.
    pub response_validity_secs: i64,
    /// How often a node looks for revocations and issuances made by other nodes before it serves a
    /// cached response: a revocation shows in every node's answers at most this long after it
    /// committed (at once on the node that revoked). 0: on every request.
    pub status_poll_ms: u64,
    /// Validity of the delegated responder's certificate (it carries id-pkix-ocsp-nocheck, so it is
    /// kept short).
    pub responder_validity_days: i64,
    /// The responder's certificate is renewed (same key) when it has fewer days left than this.
    pub responder_renew_before_days: i64,
}

impl Default for OcspConfig {
    fn default() -> Self {
        OcspConfig {
            response_validity_secs: 4 * 3600,
            status_poll_ms: 250,
            responder_validity_days: 7,
            responder_renew_before_days: 2,
        }
    }
}

/// An optional URL in a `Debug` form, its passwords replaced (see `db::redact_url`).
struct RedactedUrl<'a>(&'a Option<String>);

impl std::fmt::Debug for RedactedUrl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.as_deref().map(crate::db::redact_url).fmt(f)
    }
}

// PINs, tokens and webhook secrets are `SecretString`s, whose `Debug` prints a redaction. URLs may
// carry a password in their text, so what holds one has a hand-written `Debug` that shows the URL
// with its passwords replaced. The fields are destructured: a new field does not compile until it is
// placed here, as a URL or not.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Config {
            data_dir,
            listen,
            http,
            metrics_listen,
            database_url,
            public_url,
            service_name,
            mode,
            portal_url,
            allow_embedded,
            hsm,
            security,
            ca,
            tsa,
            ocsp,
            lifecycle,
            notify,
            payments,
            identity,
            signing_sessions,
        } = self;
        f.debug_struct("Config")
            .field("data_dir", data_dir)
            .field("listen", listen)
            .field("http", http)
            .field("metrics_listen", metrics_listen)
            .field("database_url", &RedactedUrl(database_url))
            .field("public_url", public_url)
            .field("service_name", service_name)
            .field("mode", mode)
            .field("portal_url", portal_url)
            .field("allow_embedded", allow_embedded)
            .field("hsm", hsm)
            .field("security", security)
            .field("ca", ca)
            .field("tsa", tsa)
            .field("ocsp", ocsp)
            .field("lifecycle", lifecycle)
            .field("notify", notify)
            .field("payments", payments)
            .field("identity", identity)
            .field("signing_sessions", signing_sessions)
            .finish()
    }
}

impl std::fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let NotifyConfig {
            email_from,
            smtp_url,
            sms_gateway_url,
            sms_gateway_token,
            delivery_interval_secs,
            max_attempts,
        } = self;
        f.debug_struct("NotifyConfig")
            .field("email_from", email_from)
            .field("smtp_url", &RedactedUrl(smtp_url))
            .field("sms_gateway_url", &RedactedUrl(sms_gateway_url))
            .field("sms_gateway_token", sms_gateway_token)
            .field("delivery_interval_secs", delivery_interval_secs)
            .field("max_attempts", max_attempts)
            .finish()
    }
}

/// Whether the setting at this path may hold a secret (a PIN, a token, a webhook secret, a URL that can
/// carry a password): its value is never repeated in an error.
fn holds_secret(path: &str) -> bool {
    let name = path.rsplit('.').next().unwrap_or(path);
    ["pin", "secret", "token", "password", "url"]
        .iter()
        .any(|word| name == *word || name.ends_with(&format!("_{word}")))
}

/// serde's message without the value it quotes: "invalid type: integer `98765432`, expected a string"
/// becomes "invalid type, expected a string (the value is not shown: the setting may hold a secret)".
fn without_value(message: &str) -> String {
    const NOT_SHOWN: &str = "the value is not shown: the setting may hold a secret";
    match message.split_once(", expected ") {
        Some((what, expected)) => {
            let kind = what.split_once(':').map_or("invalid value", |(kind, _)| kind);
            format!("{kind}, expected {expected} ({NOT_SHOWN})")
        }
        None => format!("invalid value ({NOT_SHOWN})"),
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("rssp-data"),
            listen: "127.0.0.1:8080".to_string(),
            http: HttpConfig::default(),
            metrics_listen: None,
            database_url: None,
            public_url: None,
            service_name: "rssp".to_string(),
            mode: Mode::Development,
            portal_url: None,
            allow_embedded: false,
            hsm: HsmConfig::default(),
            security: SecurityConfig::default(),
            ca: CaConfig::default(),
            tsa: TsaConfig::default(),
            ocsp: OcspConfig::default(),
            lifecycle: LifecycleConfig::default(),
            notify: NotifyConfig::default(),
            payments: PaymentsConfig::default(),
            identity: IdentityConfig::default(),
            signing_sessions: SigningSessionsConfig::default(),
        }
    }
}

impl Default for HsmConfig {
    fn default() -> Self {
        HsmConfig {
            module: PathBuf::from(SOFTHSM_MODULE),
            token_label: "rssp".to_string(),
            pin: None,
            sessions: 4,
            session_wait_ms: 5000,
            ca_token_label: None,
            ca_pin: None,
        }
    }
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            access_token_lifetime_secs: 3600,
            refresh_token_lifetime_secs: 30 * 24 * 3600,
            sad_lifetime_secs: 300,
            sad_max_lifetime_secs: 900,
            otp_max_failures: 5,
            otp_lockout_secs: 900,
            max_hashes_per_request: 1000,
            max_signdoc_document_bytes: 20 * 1024 * 1024,
            db_pool_wait_ms: 2000,
            recovery_cooling_off_secs: 7 * 24 * 3600,
        }
    }
}

impl Default for SigningSessionsConfig {
    fn default() -> Self {
        SigningSessionsConfig {
            max_documents: 10,
            max_document_bytes: 20 * 1024 * 1024,
            max_session_bytes: 50 * 1024 * 1024,
            max_open_per_person: 5,
            lifetime_secs: 3600,
            kept_after_signing_secs: 3600,
        }
    }
}

impl Default for CaConfig {
    fn default() -> Self {
        CaConfig {
            organization: "rssp Trust Services".to_string(),
            country: "SI".to_string(),
            end_entity_validity_days: 365,
            default_subject_country: None,
            qc_sscd: None,
            crl_lifetime_secs: 24 * 3600,
            crl_refresh_before_secs: 6 * 3600,
        }
    }
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        let package = |id: &str, validity_years, transactions, net_cents| PackageConfig {
            id: id.to_string(),
            validity_years,
            transactions,
            net_cents,
        };
        LifecycleConfig {
            activation_link_lifetime_secs: 72 * 3600,
            sms_code_lifetime_secs: 600,
            phone_change_code_lifetime_secs: 300,
            code_resend_cooldown_secs: 1800,
            codes_per_address_per_hour: 5,
            code_max_attempts: 5,
            password_reset_link_lifetime_secs: 3600,
            login_max_failures: 5,
            login_lockout_secs: 900,
            totp_mandatory_after: chrono::NaiveDate::from_ymd_opt(2026, 12, 31).unwrap_or_default(),
            rekey_notice_days: vec![45, 15],
            rekey_window_closes_hours: 72,
            rekey_auto_accept_unchanged: false,
            scheduler_interval_secs: 60,
            default_key_type: "rsa-2048".to_string(),
            multisign: 100,
            privacy_version: "2026-01".to_string(),
            terms_version: "2026-01".to_string(),
            issuance_terms_version: "2026-01".to_string(),
            packages: vec![package("1y", 1, 200, 3900), package("2y", 2, 400, 5900), package("3y", 3, 600, 7900)],
            currency: "EUR".to_string(),
            vat_percent: 22,
        }
    }
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            email_from: "rssp <no-reply@localhost>".to_string(),
            smtp_url: None,
            sms_gateway_url: None,
            sms_gateway_token: None,
            delivery_interval_secs: 5,
            max_attempts: 10,
        }
    }
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        PaymentsConfig {
            webhook_secret: None,
            page_url: "https://pay.example.com/checkout?ref={payment_ref}&amount={gross_cents}&currency={currency}"
                .to_string(),
        }
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig { webhook_secret: None, session_url: "https://vid.example.com/session/{check_id}".to_string() }
    }
}

/// The type an environment variable is parsed as before it is laid over the file.
enum Kind {
    Str,
    Int,
    Bool,
}

/// Environment variables and the setting each one overrides (a dotted path into the TOML).
const ENV_SETTINGS: &[(&str, &str, Kind)] = &[
    ("RSSP_DATA_DIR", "data_dir", Kind::Str),
    ("RSSP_LISTEN", "listen", Kind::Str),
    ("RSSP_HTTP_KEEP_ALIVE_SECS", "http.keep_alive_secs", Kind::Int),
    ("RSSP_HTTP_REQUEST_TIMEOUT_SECS", "http.request_timeout_secs", Kind::Int),
    ("RSSP_HTTP_MAX_CONNECTIONS", "http.max_connections", Kind::Int),
    ("RSSP_SHUTDOWN_GRACE_SECS", "http.shutdown_grace_secs", Kind::Int),
    ("RSSP_METRICS_LISTEN", "metrics_listen", Kind::Str),
    ("RSSP_DATABASE_URL", "database_url", Kind::Str),
    ("RSSP_PUBLIC_URL", "public_url", Kind::Str),
    ("RSSP_SERVICE_NAME", "service_name", Kind::Str),
    ("RSSP_HSM_MODULE", "hsm.module", Kind::Str),
    ("RSSP_HSM_TOKEN_LABEL", "hsm.token_label", Kind::Str),
    ("RSSP_HSM_PIN", "hsm.pin", Kind::Str),
    ("RSSP_HSM_SESSIONS", "hsm.sessions", Kind::Int),
    ("RSSP_HSM_SESSION_WAIT_MS", "hsm.session_wait_ms", Kind::Int),
    ("RSSP_HSM_CA_TOKEN_LABEL", "hsm.ca_token_label", Kind::Str),
    ("RSSP_HSM_CA_PIN", "hsm.ca_pin", Kind::Str),
    ("RSSP_ACCESS_TOKEN_LIFETIME_SECS", "security.access_token_lifetime_secs", Kind::Int),
    ("RSSP_REFRESH_TOKEN_LIFETIME_SECS", "security.refresh_token_lifetime_secs", Kind::Int),
    ("RSSP_SAD_LIFETIME_SECS", "security.sad_lifetime_secs", Kind::Int),
    ("RSSP_SAD_MAX_LIFETIME_SECS", "security.sad_max_lifetime_secs", Kind::Int),
    ("RSSP_DB_POOL_WAIT_MS", "security.db_pool_wait_ms", Kind::Int),
    ("RSSP_OTP_MAX_FAILURES", "security.otp_max_failures", Kind::Int),
    ("RSSP_OTP_LOCKOUT_SECS", "security.otp_lockout_secs", Kind::Int),
    ("RSSP_MAX_HASHES_PER_REQUEST", "security.max_hashes_per_request", Kind::Int),
    ("RSSP_MAX_SIGNDOC_DOCUMENT_BYTES", "security.max_signdoc_document_bytes", Kind::Int),
    ("RSSP_RECOVERY_COOLING_OFF_SECS", "security.recovery_cooling_off_secs", Kind::Int),
    ("RSSP_SIGNING_SESSIONS_MAX_DOCUMENTS", "signing_sessions.max_documents", Kind::Int),
    ("RSSP_SIGNING_SESSIONS_MAX_DOCUMENT_BYTES", "signing_sessions.max_document_bytes", Kind::Int),
    ("RSSP_SIGNING_SESSIONS_MAX_SESSION_BYTES", "signing_sessions.max_session_bytes", Kind::Int),
    ("RSSP_SIGNING_SESSIONS_MAX_OPEN_PER_PERSON", "signing_sessions.max_open_per_person", Kind::Int),
    ("RSSP_SIGNING_SESSIONS_LIFETIME_SECS", "signing_sessions.lifetime_secs", Kind::Int),
    ("RSSP_SIGNING_SESSIONS_KEPT_AFTER_SIGNING_SECS", "signing_sessions.kept_after_signing_secs", Kind::Int),
    ("RSSP_CA_ORGANIZATION", "ca.organization", Kind::Str),
    ("RSSP_CA_COUNTRY", "ca.country", Kind::Str),
    ("RSSP_CA_END_ENTITY_VALIDITY_DAYS", "ca.end_entity_validity_days", Kind::Int),
    ("RSSP_CA_DEFAULT_SUBJECT_COUNTRY", "ca.default_subject_country", Kind::Str),
    ("RSSP_CA_CRL_LIFETIME_SECS", "ca.crl_lifetime_secs", Kind::Int),
    ("RSSP_CA_CRL_REFRESH_BEFORE_SECS", "ca.crl_refresh_before_secs", Kind::Int),
    ("RSSP_TSA_ACCESS", "tsa.access", Kind::Str),
    ("RSSP_TSA_POLICY_OID", "tsa.policy_oid", Kind::Str),
    ("RSSP_TSA_ACCURACY_MILLIS", "tsa.accuracy_millis", Kind::Int),
    ("RSSP_TSA_QUALIFIED", "tsa.qualified", Kind::Bool),
    ("RSSP_TSA_KEY_KIND", "tsa.key_kind", Kind::Str),
    ("RSSP_OCSP_RESPONSE_VALIDITY_SECS", "ocsp.response_validity_secs", Kind::Int),
    ("RSSP_OCSP_STATUS_POLL_MS", "ocsp.status_poll_ms", Kind::Int),
    ("RSSP_OCSP_RESPONDER_VALIDITY_DAYS", "ocsp.responder_validity_days", Kind::Int),
    ("RSSP_OCSP_RESPONDER_RENEW_BEFORE_DAYS", "ocsp.responder_renew_before_days", Kind::Int),
    ("RSSP_MODE", "mode", Kind::Str),
    ("RSSP_PORTAL_URL", "portal_url", Kind::Str),
    ("RSSP_ALLOW_EMBEDDED", "allow_embedded", Kind::Bool),
    ("RSSP_TOTP_MANDATORY_AFTER", "lifecycle.totp_mandatory_after", Kind::Str),
    ("RSSP_CODE_RESEND_COOLDOWN_SECS", "lifecycle.code_resend_cooldown_secs", Kind::Int),
    ("RSSP_SCHEDULER_INTERVAL_SECS", "lifecycle.scheduler_interval_secs", Kind::Int),
    ("RSSP_NOTIFY_EMAIL_FROM", "notify.email_from", Kind::Str),
    ("RSSP_NOTIFY_SMTP_URL", "notify.smtp_url", Kind::Str),
    ("RSSP_NOTIFY_SMS_GATEWAY_URL", "notify.sms_gateway_url", Kind::Str),
    ("RSSP_NOTIFY_SMS_GATEWAY_TOKEN", "notify.sms_gateway_token", Kind::Str),
    ("RSSP_PAYMENTS_WEBHOOK_SECRET", "payments.webhook_secret", Kind::Str),
    ("RSSP_PAYMENTS_PAGE_URL", "payments.page_url", Kind::Str),
    ("RSSP_IDENTITY_WEBHOOK_SECRET", "identity.webhook_secret", Kind::Str),
    ("RSSP_IDENTITY_SESSION_URL", "identity.session_url", Kind::Str),
];

impl Config {
    /// Loads the configuration: defaults, then the file (`RSSP_CONFIG`, or `rssp.toml` in the working
    /// directory when it exists), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("RSSP_CONFIG").map(PathBuf::from))
            .or_else(|| Some(PathBuf::from("rssp.toml")).filter(|p| p.exists()));
        Self::from_sources(file.as_deref(), &env)
    }

    /// Builds the configuration from an optional file and a list of environment variables.
    pub fn from_sources(file: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|cause| ConfigError::Read { path: path.to_path_buf(), cause })?;
                // toml's own Display quotes the offending line, which may be `pin = "…` of a secret:
                // the line number and the message say enough.
                text.parse::<toml::Table>().map_err(|e| {
                    let line = e
                        .span()
                        .map(|span| text.as_bytes().iter().take(span.start).filter(|b| **b == b'\n').count() + 1);
                    let cause = match line {
                        Some(line) => format!("line {line}: {}", e.message().trim_end()),
                        None => e.message().trim_end().to_string(),
                    };
                    ConfigError::Parse { path: path.to_path_buf(), cause }
                })?
            }
            None => toml::Table::new(),
        };
        // (setting path, environment variable) of every setting the environment gave.
        let mut from_env: Vec<(&str, &str)> = Vec::new();
        for (name, value) in env {
            // RSSP_LOG and RSSP_LOG_FORMAT set up logging, read by the binary before the configuration.
            if !name.starts_with("RSSP_")
                || name == "RSSP_CONFIG"
                || name == "RSSP_LOG"
                || name == "RSSP_LOG_FORMAT"
                || name.starts_with("RSSP_TEST_")
            {
                continue;
            }
            let Some((_, path, kind)) = ENV_SETTINGS.iter().find(|(n, _, _)| n == name) else {
                return Err(invalid(name, "unknown setting"));
            };
            let value = match kind {
                Kind::Str => toml::Value::String(value.clone()),
                Kind::Int => toml::Value::Integer(
                    value.trim().parse().map_err(|_| invalid(name, format!("expected an integer, got {value:?}")))?,
                ),
                Kind::Bool => match value.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => toml::Value::Boolean(true),
                    "false" | "0" | "no" => toml::Value::Boolean(false),
                    _ => return Err(invalid(name, format!("expected true or false, got {value:?}"))),
                },
            };
            set_path(&mut table, path, value);
            from_env.push((path, name.as_str()));
        }
        // The path of a bad value names the setting; an environment variable that set it is named too
        // (e.g. `RSSP_MODE=prod` answers with RSSP_MODE and the allowed values).
        let config: Config = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(
            |e: serde_path_to_error::Error<toml::de::Error>| {
                let path = e.path().to_string();
                let cause = if holds_secret(&path) {
                    without_value(e.inner().message())
                } else {
                    e.inner().message().to_string()
                };
                match from_env.iter().find(|(setting, _)| *setting == path) {
                    Some((setting, variable)) => invalid(&format!("{setting} ({variable})"), cause),
                    None if path.is_empty() || path == "." => {
                        let source = file.map(|p| p.display().to_string()).unwrap_or_else(|| "environment".into());
                        ConfigError::Parse { path: PathBuf::from(source), cause }
                    }
                    None => {
                        let source = file.map(|p| p.display().to_string()).unwrap_or_else(|| "defaults".into());
                        ConfigError::Parse { path: PathBuf::from(source), cause: format!("{path}: {cause}") }
                    }
                }
            },
        )?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        self.metrics_listen_addr()?;
        let url = self.database_url();
        if crate::db::Backend::of_url(&url).is_none() {
            return Err(invalid(
                "database_url (RSSP_DATABASE_URL)",
                "must start with sqlite://, postgres:// or postgresql://",
            ));
        }
        if let Some(public) = &self.public_url {
            if !(public.starts_with("http://") || public.starts_with("https://")) {
                return Err(invalid("public_url (RSSP_PUBLIC_URL)", "must be an http:// or https:// URL"));
            }
        }
        if self.hsm.token_label.is_empty() || self.hsm.token_label.len() > 32 {
            return Err(invalid("hsm.token_label (RSSP_HSM_TOKEN_LABEL)", "must be 1 to 32 characters"));
        }
        if let Some(ca_label) = &self.hsm.ca_token_label {
            if ca_label.is_empty() || ca_label.len() > 32 || *ca_label == self.hsm.token_label {
                return Err(invalid(
                    "hsm.ca_token_label (RSSP_HSM_CA_TOKEN_LABEL)",
                    "must be 1 to 32 characters and differ from hsm.token_label",
                ));
            }
        }
        if !(1..=256).contains(&self.hsm.sessions) {
            return Err(invalid("hsm.sessions (RSSP_HSM_SESSIONS)", "must be between 1 and 256"));
        }
        // A longer wait bounds nothing (the HTTP request times out first), and a huge one would overflow
        // the clock when a request computes its deadline.
        let waits = [
            ("hsm.session_wait_ms (RSSP_HSM_SESSION_WAIT_MS)", self.hsm.session_wait_ms),
            ("security.db_pool_wait_ms (RSSP_DB_POOL_WAIT_MS)", self.security.db_pool_wait_ms),
        ];
        for (name, value) in waits {
            if value > MAX_WAIT_MS {
                return Err(invalid(name, "must be at most 600000 (10 minutes)"));
            }
        }
        let positive = [
            ("hsm.session_wait_ms (RSSP_HSM_SESSION_WAIT_MS)", self.hsm.session_wait_ms as i64),
            ("security.access_token_lifetime_secs", self.security.access_token_lifetime_secs),
            ("security.refresh_token_lifetime_secs", self.security.refresh_token_lifetime_secs),
            ("security.sad_lifetime_secs", self.security.sad_lifetime_secs),
            ("security.sad_max_lifetime_secs", self.security.sad_max_lifetime_secs),
            ("security.db_pool_wait_ms", self.security.db_pool_wait_ms as i64),
            ("security.otp_lockout_secs", self.security.otp_lockout_secs),
            ("security.otp_max_failures", i64::from(self.security.otp_max_failures)),
            ("security.max_hashes_per_request", self.security.max_hashes_per_request as i64),
            ("security.max_signdoc_document_bytes", self.security.max_signdoc_document_bytes as i64),
            ("security.recovery_cooling_off_secs", self.security.recovery_cooling_off_secs),
            ("ca.end_entity_validity_days", self.ca.end_entity_validity_days),
            ("signing_sessions.max_documents", self.signing_sessions.max_documents as i64),
            ("signing_sessions.max_document_bytes", self.signing_sessions.max_document_bytes as i64),
            ("signing_sessions.max_session_bytes", self.signing_sessions.max_session_bytes as i64),
            ("signing_sessions.max_open_per_person", self.signing_sessions.max_open_per_person as i64),
            ("signing_sessions.lifetime_secs", self.signing_sessions.lifetime_secs),
            ("signing_sessions.kept_after_signing_secs", self.signing_sessions.kept_after_signing_secs),
        ];
        for (name, value) in positive {
            if value < 1 {
                return Err(invalid(name, "must be at least 1"));
            }
        }
        let lifecycle = &self.lifecycle;
        let positive = [
            ("lifecycle.activation_link_lifetime_secs", lifecycle.activation_link_lifetime_secs),
            ("lifecycle.sms_code_lifetime_secs", lifecycle.sms_code_lifetime_secs),
            ("lifecycle.phone_change_code_lifetime_secs", lifecycle.phone_change_code_lifetime_secs),
            ("lifecycle.codes_per_address_per_hour", lifecycle.codes_per_address_per_hour),
            ("lifecycle.code_max_attempts", i64::from(lifecycle.code_max_attempts)),
            ("lifecycle.password_reset_link_lifetime_secs", lifecycle.password_reset_link_lifetime_secs),
            ("lifecycle.login_max_failures", i64::from(lifecycle.login_max_failures)),
            ("lifecycle.login_lockout_secs", lifecycle.login_lockout_secs),
            ("lifecycle.scheduler_interval_secs", lifecycle.scheduler_interval_secs as i64),
            ("http.request_timeout_secs (RSSP_HTTP_REQUEST_TIMEOUT_SECS)", self.http.request_timeout_secs as i64),
            ("http.max_connections (RSSP_HTTP_MAX_CONNECTIONS)", self.http.max_connections as i64),
            ("lifecycle.multisign", i64::from(lifecycle.multisign)),
            ("notify.delivery_interval_secs", self.notify.delivery_interval_secs as i64),
            ("notify.max_attempts", i64::from(self.notify.max_attempts)),
        ];
        for (name, value) in positive {
            if value < 1 {
                return Err(invalid(name, "must be at least 1"));
            }
        }
        let sessions = &self.signing_sessions;
        if sessions.max_document_bytes > sessions.max_session_bytes {
            return Err(invalid(
                "signing_sessions.max_document_bytes",
                "must be at most signing_sessions.max_session_bytes",
            ));
        }
        // A session is signed by one signDoc of all its files.
        if sessions.max_documents > self.security.max_hashes_per_request {
            return Err(invalid("signing_sessions.max_documents", "must be at most security.max_hashes_per_request"));
        }
        if lifecycle.code_resend_cooldown_secs < 0 || lifecycle.rekey_window_closes_hours < 0 {
            return Err(invalid("lifecycle", "cooldowns and windows cannot be negative"));
        }
        if lifecycle.default_key_type.parse::<crate::domain::KeyKind>().is_err() {
            return Err(invalid("lifecycle.default_key_type", "one of rsa-2048, rsa-3072, ec-p256, ec-p384"));
        }
        if lifecycle.packages.is_empty()
            || lifecycle.packages.iter().any(|p| p.id.is_empty() || p.validity_years < 1 || p.transactions < 1)
        {
            return Err(invalid("lifecycle.packages", "at least one package, each with an id, years and transactions"));
        }
        if !(0..=100).contains(&lifecycle.vat_percent) {
            return Err(invalid("lifecycle.vat_percent", "must be between 0 and 100"));
        }
        if let Some(portal) = &self.portal_url {
            if !(portal.starts_with("http://") || portal.starts_with("https://")) {
                return Err(invalid("portal_url (RSSP_PORTAL_URL)", "must be an http:// or https:// URL"));
            }
        }
        // Secrets are checked in both modes when set: development mode uses configured ones too.
        let secrets = [
            ("payments.webhook_secret (RSSP_PAYMENTS_WEBHOOK_SECRET)", &self.payments.webhook_secret),
            ("identity.webhook_secret (RSSP_IDENTITY_WEBHOOK_SECRET)", &self.identity.webhook_secret),
        ];
        for (name, value) in secrets {
            match value.as_ref().map(ExposeSecret::expose_secret) {
                // Empty is unset: development mode generates it, production mode says it is required.
                None | Some("") => {}
                Some(secret) if secret.chars().count() < MIN_SECRET_CHARS => {
                    return Err(invalid(
                        name,
                        format!(
                        "secret too short: at least {MIN_SECRET_CHARS} characters (a random one: openssl rand -hex 32)"
                    ),
                    ))
                }
                Some(_) => {}
            }
        }
        if self.mode == Mode::Production {
            self.check_production()?;
        }
        if self.ca.country.len() != 2 || !self.ca.country.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(invalid("ca.country (RSSP_CA_COUNTRY)", "must be a two-letter ISO 3166 code like SI"));
        }
        if let Some(country) = &self.ca.default_subject_country {
            if crate::domain::enrolment::parse_country(country).is_err() {
                return Err(invalid(
                    "ca.default_subject_country (RSSP_CA_DEFAULT_SUBJECT_COUNTRY)",
                    "must be a two-letter ISO 3166 code like SI",
                ));
            }
        }
        if self.ca.crl_refresh_before_secs < 1 || self.ca.crl_refresh_before_secs >= self.ca.crl_lifetime_secs {
            return Err(invalid(
                "ca.crl_refresh_before_secs (RSSP_CA_CRL_REFRESH_BEFORE_SECS)",
                "must be at least 1 and less than ca.crl_lifetime_secs",
            ));
        }
        self.tsa.key_kind()?;
        if self.tsa.policy()? == crate::pki::tsp::oid::BEST_PRACTICES_TS_POLICY && self.tsa.accuracy_millis > 1000 {
            return Err(invalid(
                "tsa.accuracy_millis (RSSP_TSA_ACCURACY_MILLIS)",
                "must be at most 1000 under the best-practices policy 0.4.0.2023.1.1 (ETSI EN 319 421): \
                 name a policy of your own for a coarser accuracy",
            ));
        }
        if !(1000..=60_000).contains(&self.tsa.accuracy_millis) {
            return Err(invalid(
                "tsa.accuracy_millis (RSSP_TSA_ACCURACY_MILLIS)",
                "must be 1000 to 60000: genTime has whole seconds",
            ));
        }
        if !(60..=7 * 24 * 3600).contains(&self.ocsp.response_validity_secs) {
            return Err(invalid(
                "ocsp.response_validity_secs (RSSP_OCSP_RESPONSE_VALIDITY_SECS)",
                "must be 60 to 604800 (RFC 5019 clients cache responses until nextUpdate)",
            ));
        }
        if self.ocsp.status_poll_ms > 60_000 {
            return Err(invalid("ocsp.status_poll_ms (RSSP_OCSP_STATUS_POLL_MS)", "must be 0 to 60000"));
        }
        if self.ocsp.responder_validity_days < 2
            || self.ocsp.responder_renew_before_days < 1
            || self.ocsp.responder_renew_before_days >= self.ocsp.responder_validity_days
        {
            return Err(invalid(
                "ocsp.responder_renew_before_days (RSSP_OCSP_RESPONDER_RENEW_BEFORE_DAYS)",
                "must be at least 1 and less than ocsp.responder_validity_days (at least 2)",
            ));
        }
        if self.ocsp.response_validity_secs >= self.ocsp.responder_renew_before_days * 86_400 {
            return Err(invalid(
                "ocsp.response_validity_secs (RSSP_OCSP_RESPONSE_VALIDITY_SECS)",
                "must be shorter than ocsp.responder_renew_before_days: a response must not outlive the certificate that signed it",
            ));
        }
        Ok(())
    }

    /// What production mode needs on top: the secrets and delivery URLs, a public URL, and no embedded
    /// set-up unless `allow_embedded` says so. Each refusal names the setting and says what is wrong.
    fn check_production(&self) -> Result<(), ConfigError> {
        const WHY: &str = "required in production mode";
        let required = [
            (
                "public_url (RSSP_PUBLIC_URL)",
                self.public_url.as_deref(),
                "the base URL clients and relying parties reach (it goes into the CA certificates and CRL URLs)",
            ),
            (
                "payments.webhook_secret (RSSP_PAYMENTS_WEBHOOK_SECRET)",
                self.payments.webhook_secret.as_ref().map(ExposeSecret::expose_secret),
                "the secret shared with the payment provider",
            ),
            (
                "identity.webhook_secret (RSSP_IDENTITY_WEBHOOK_SECRET)",
                self.identity.webhook_secret.as_ref().map(ExposeSecret::expose_secret),
                "the secret shared with the identification provider",
            ),
            (
                "notify.smtp_url (RSSP_NOTIFY_SMTP_URL)",
                self.notify.smtp_url.as_deref(),
                "URL required: e-mail is delivered through it",
            ),
            (
                "notify.sms_gateway_url (RSSP_NOTIFY_SMS_GATEWAY_URL)",
                self.notify.sms_gateway_url.as_deref(),
                "URL required: SMS is delivered through it",
            ),
        ];
        for (name, value, what) in required {
            if value.is_none_or(|v| v.trim().is_empty()) {
                return Err(invalid(name, format!("{WHY}: {what}")));
            }
        }
        if !self.allow_embedded {
            // The embedded token keeps its PINs (the SO PIN always, the user PIN unless hsm.pin is set)
            // in files under the data directory, next to the database: whoever reads the directory
            // can sign. A network HSM keeps them apart.
            if self.embedded_softhsm() {
                return Err(invalid(
                    "hsm.module (RSSP_HSM_MODULE)",
                    "production mode refuses the embedded SoftHSM token, whose PINs are kept in files under the \
                     data directory: configure your HSM's PKCS#11 module and RSSP_HSM_PIN, or set \
                     RSSP_ALLOW_EMBEDDED=true (allow_embedded) for a single-machine deployment that accepts it",
                ));
            }
            if crate::db::Backend::of_url(&self.database_url()) == Some(crate::db::Backend::Sqlite) {
                return Err(invalid(
                    "database_url (RSSP_DATABASE_URL)",
                    "production mode refuses SQLite: set a postgres:// URL, or set RSSP_ALLOW_EMBEDDED=true \
                     (allow_embedded) for a single-machine deployment that accepts it",
                ));
            }
        }
        Ok(())
    }

    /// The separate metrics listener, when configured.
    pub fn metrics_listen_addr(&self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        self.metrics_listen
            .as_deref()
            .map(|addr| {
                addr.parse().map_err(|_| {
                    invalid("metrics_listen (RSSP_METRICS_LISTEN)", "must be address:port, e.g. 127.0.0.1:9090")
                })
            })
            .transpose()
    }

    pub(crate) fn listen_addr(&self) -> Result<std::net::SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| invalid("listen (RSSP_LISTEN)", "must be address:port, e.g. 127.0.0.1:8080"))
    }

    /// The database URL: the one configured, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("rssp.sqlite").display()),
        }
    }

    /// The base URL put into certificates; without `public_url`, the listen address.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.listen),
        }
    }

    /// Base URL of the links in e-mails (the portal), without a trailing slash.
    pub fn portal_url(&self, public_url: &str) -> String {
        self.portal_url.as_deref().unwrap_or(public_url).trim_end_matches('/').to_string()
    }

    /// Whether issued certificates claim a QSCD (the QcSSCD statement and the QCP-n-qscd policy): as
    /// configured, else only when the module is not SoftHSM (a software token is no QSCD).
    pub fn qc_sscd(&self) -> bool {
        self.ca.qc_sscd.unwrap_or_else(|| !self.softhsm_module())
    }

    /// True when the PKCS#11 module is SoftHSM (wherever it is installed).
    pub fn softhsm_module(&self) -> bool {
        self.hsm.module.file_name().is_some_and(|name| name.to_string_lossy().to_lowercase().contains("softhsm"))
    }

    /// The country of a person whose account names none.
    pub fn default_subject_country(&self) -> &str {
        self.ca.default_subject_country.as_deref().unwrap_or(&self.ca.country)
    }

    /// True when the HSM is the SoftHSM token that rssp manages itself under the data directory.
    pub fn embedded_softhsm(&self) -> bool {
        self.hsm.module == Path::new(SOFTHSM_MODULE)
    }
}

fn set_path(table: &mut toml::Table, path: &str, value: toml::Value) {
    match path.split_once('.') {
        None => {
            table.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let entry = table.entry(head.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(inner) = entry {
                set_path(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn environment_overrides_file_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rssp.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\n[hsm]\nsessions = 2\n").unwrap();
        let config =
            Config::from_sources(Some(&file), &env(&[("RSSP_HSM_SESSIONS", "8"), ("RSSP_DATA_DIR", "/tmp/x")]))
                .unwrap();
        assert_eq!(config.listen, "127.0.0.1:9000");
        assert_eq!(config.hsm.sessions, 8);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.database_url(), "sqlite:///tmp/x/rssp.sqlite");
    }

    #[test]
    fn a_bad_setting_is_named() {
        let err = Config::from_sources(None, &env(&[("RSSP_LISTEN", "nowhere")])).unwrap_err();
        assert!(err.to_string().contains("RSSP_LISTEN"), "{err}");
        let err = Config::from_sources(None, &env(&[("RSSP_HSM_SESSIONS", "many")])).unwrap_err();
        assert!(err.to_string().contains("RSSP_HSM_SESSIONS"), "{err}");
        let err = Config::from_sources(None, &env(&[("RSSP_DATABASE_URL", "mysql://x")])).unwrap_err();
        assert!(err.to_string().contains("RSSP_DATABASE_URL"), "{err}");
        let err = Config::from_sources(None, &env(&[("RSSP_TYPO", "1")])).unwrap_err();
        assert!(err.to_string().contains("RSSP_TYPO"), "{err}");
    }

    #[test]
    fn an_enum_setting_names_its_variable_and_values() {
        let err = Config::from_sources(None, &env(&[("RSSP_MODE", "prod")])).unwrap_err().to_string();
        assert!(err.contains("RSSP_MODE") && err.contains("development") && err.contains("production"), "{err}");
        let err = Config::from_sources(None, &env(&[("RSSP_ALLOW_EMBEDDED", "maybe")])).unwrap_err().to_string();
        assert!(err.contains("RSSP_ALLOW_EMBEDDED"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rssp.toml");
        std::fs::write(&file, "[lifecycle]\ntotp_mandatory_after = \"soon\"\n").unwrap();
        let err = Config::from_sources(Some(&file), &[]).unwrap_err().to_string();
        assert!(err.contains("lifecycle.totp_mandatory_after"), "{err}");
    }

    #[test]
    fn production_mode_names_what_is_missing_and_why() {
        let production = [
            ("RSSP_MODE", "production"),
            ("RSSP_PUBLIC_URL", "https://rssp.example.org"),
            ("RSSP_PAYMENTS_WEBHOOK_SECRET", "0123456789abcdef"),
            ("RSSP_IDENTITY_WEBHOOK_SECRET", "0123456789abcdef"),
            ("RSSP_NOTIFY_SMTP_URL", "smtp://mail"),
            ("RSSP_NOTIFY_SMS_GATEWAY_URL", "https://sms"),
            ("RSSP_DATABASE_URL", "postgres://rssp@db/rssp"),
            ("RSSP_HSM_MODULE", "/opt/hsm/libpkcs11.so"),
            ("RSSP_HSM_PIN", "1234"),
        ];
        let without = |name: &str| -> Vec<(String, String)> {
            env(&production.iter().copied().filter(|(n, _)| *n != name).collect::<Vec<_>>())
        };
        let replaced = |name: &str, value: &str| -> Vec<(String, String)> {
            let mut e = without(name);
            e.push((name.to_string(), value.to_string()));
            e
        };
        Config::from_sources(None, &env(&production)).unwrap();
        let err = Config::from_sources(None, &without("RSSP_PUBLIC_URL")).unwrap_err().to_string();
        assert!(err.contains("RSSP_PUBLIC_URL") && err.contains("required in production mode"), "{err}");
        let err =
            Config::from_sources(None, &replaced("RSSP_PAYMENTS_WEBHOOK_SECRET", "short")).unwrap_err().to_string();
        assert!(err.contains("secret too short") && !err.contains("URL required"), "{err}");
        let err = Config::from_sources(None, &without("RSSP_NOTIFY_SMTP_URL")).unwrap_err().to_string();
        assert!(err.contains("URL required") && !err.contains("too short"), "{err}");
        let err = Config::from_sources(None, &without("RSSP_DATABASE_URL")).unwrap_err().to_string();
        assert!(err.contains("SQLite") && err.contains("RSSP_ALLOW_EMBEDDED"), "{err}");
        let err = Config::from_sources(None, &without("RSSP_HSM_MODULE")).unwrap_err().to_string();
        assert!(err.contains("embedded SoftHSM") && err.contains("RSSP_ALLOW_EMBEDDED"), "{err}");
        let mut embedded = without("RSSP_HSM_MODULE");
        embedded.retain(|(n, _)| n != "RSSP_DATABASE_URL");
        embedded.push(("RSSP_ALLOW_EMBEDDED".into(), "true".into()));
        let config = Config::from_sources(None, &embedded).unwrap();
        assert!(config.allow_embedded);
        // Development mode checks a configured secret too, and accepts none.
        let err = Config::from_sources(None, &env(&[("RSSP_IDENTITY_WEBHOOK_SECRET", "short")])).unwrap_err();
        assert!(err.to_string().contains("secret too short"), "{err}");
        Config::from_sources(None, &[]).unwrap();
    }

    #[test]
    fn log_settings_are_not_configuration_and_the_metrics_listener_is_checked() {
        let config = Config::from_sources(None, &env(&[("RSSP_LOG", "debug"), ("RSSP_LOG_FORMAT", "json")])).unwrap();
        assert_eq!(config.metrics_listen, None);
        let config = Config::from_sources(None, &env(&[("RSSP_METRICS_LISTEN", "127.0.0.1:9090")])).unwrap();
        assert_eq!(config.metrics_listen_addr().unwrap(), Some("127.0.0.1:9090".parse().unwrap()));
        let err = Config::from_sources(None, &env(&[("RSSP_METRICS_LISTEN", "everywhere")])).unwrap_err();
        assert!(err.to_string().contains("RSSP_METRICS_LISTEN"), "{err}");
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rssp.toml");
        std::fs::write(&file, "lisen = \"127.0.0.1:9000\"\n").unwrap();
        let err = Config::from_sources(Some(&file), &[]).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn a_secret_of_the_wrong_type_is_named_without_its_value() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rssp.toml");
        let cases = [
            ("[hsm]\npin = 98765432\n", "hsm.pin"),
            ("[hsm]\nca_pin = 98765433\n", "hsm.ca_pin"),
            ("[payments]\nwebhook_secret = 98765434\n", "payments.webhook_secret"),
            ("[identity]\nwebhook_secret = 98765435\n", "identity.webhook_secret"),
            ("[notify]\nsms_gateway_token = 98765436\n", "notify.sms_gateway_token"),
            ("[notify]\nsmtp_url = 98765437\n", "notify.smtp_url"),
            ("database_url = 98765438\n", "database_url"),
            ("[hsm]\npin = [\"987654\", \"39\"]\n", "hsm.pin"),
            ("[hsm]\npin = { value = \"98765440\" }\n", "hsm.pin"),
        ];
        for (text, setting) in cases {
            std::fs::write(&file, text).unwrap();
            let err = Config::from_sources(Some(&file), &[]).unwrap_err().to_string();
            assert!(err.contains(setting), "{text}: {err}");
            assert!(err.contains("expected") || err.contains("invalid"), "{text}: what is wrong is said: {err}");
            assert!(!err.contains("987654"), "{text}: the value is shown: {err}");
        }
        // A setting without a secret still shows its value.
        std::fs::write(&file, "[hsm]\nsessions = \"many\"\n").unwrap();
        let err = Config::from_sources(Some(&file), &[]).unwrap_err().to_string();
        assert!(err.contains("many") && err.contains("hsm.sessions"), "{err}");
        // A syntax error names the line, not its text.
        std::fs::write(&file, "[hsm]\npin = \"98765441\n").unwrap();
        let err = Config::from_sources(Some(&file), &[]).unwrap_err().to_string();
        assert!(err.contains("line 2") && !err.contains("98765441"), "{err}");
    }

    #[test]
    fn the_debug_form_shows_no_secret() {
        let config = Config::from_sources(
            None,
            &env(&[
                ("RSSP_HSM_PIN", "S3CRETPIN1"),
                ("RSSP_HSM_CA_PIN", "S3CRETPIN2"),
                ("RSSP_DATABASE_URL", "postgres://rssp:S3CRETDB@db/rssp?sslpassword=S3CRETSSL"),
                ("RSSP_NOTIFY_SMTP_URL", "smtp://mail:S3CRETSMTP@mail.example:587"),
                ("RSSP_NOTIFY_SMS_GATEWAY_TOKEN", "S3CRETSMS"),
                ("RSSP_PAYMENTS_WEBHOOK_SECRET", "S3CRETPAYMENTS0123456789"),
                ("RSSP_IDENTITY_WEBHOOK_SECRET", "S3CRETIDENTITY0123456789"),
            ]),
        )
        .unwrap();
        let shown = format!("{config:?} {config:#?}");
        assert!(!shown.contains("S3CRET"), "{shown}");
        assert!(shown.contains("db/rssp") && shown.contains("mail.example") && shown.contains("***"), "{shown}");
        let secrets =
            crate::service::WebhookSecrets { payments: config.payments.webhook_secret.clone(), identity: None };
        let shown = format!("{secrets:?}");
        assert!(!shown.contains("S3CRET") && shown.contains("***") && shown.contains("None"), "{shown}");
    }
}

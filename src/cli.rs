//! The command line: `rssp serve` and the operator commands. Their output is a stable interface:
//! scripts and the conformance suite parse it.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use crate::clock::SystemClock;
use crate::config::Config;
use crate::domain::{ApiKeyRole, ClientId, ClientType, KeyKind, UserId};
use crate::service::oauth2::clients::{self as oauth_clients, NewClient};
use crate::service::provisioning::{self, NewSigner};
use crate::service::{ca, operators};
use crate::{audit, hsm, startup};

#[derive(Debug, Parser)]
#[command(
    name = "rssp",
    version,
    about = "rssp: a remote signing server speaking the CSC API, keys in a PKCS#11 HSM, with its own CA, TSA and OCSP responder.",
    long_about = "rssp: a remote signing server speaking the Cloud Signature Consortium API (v1.0.4.0 at /csc/v1, \
                  v2.0.0.2 at /csc/v2), keys in a PKCS#11 HSM, with its own CA, an RFC 3161 time-stamping authority \
                  (POST /tsa; CSC signatures/timestamp) and an OCSP responder (/ocsp).\n\n\
                  With no configuration it runs on its embedded default: SQLite and a SoftHSM token under ./rssp-data, \
                  listening on 127.0.0.1:8080. Settings come from defaults, then rssp.toml (or --config), then \
                  RSSP_* environment variables: RSSP_DATA_DIR, RSSP_LISTEN, RSSP_DATABASE_URL (sqlite://... or \
                  postgres://...), RSSP_PUBLIC_URL, RSSP_HSM_MODULE, RSSP_HSM_TOKEN_LABEL, RSSP_HSM_PIN, \
                  RSSP_HSM_SESSIONS, RSSP_SAD_LIFETIME_SECS, RSSP_OTP_MAX_FAILURES, RSSP_OTP_LOCKOUT_SECS, \
                  RSSP_METRICS_LISTEN and more (see the README); logging: RSSP_LOG (a tracing filter) and \
                  RSSP_LOG_FORMAT (text or json).\n\nQuick start:\n  rssp serve\n  rssp provision-user --username alice --password-stdin <<< 'a long secret 2026'\n  \
                  rssp pki root-cert > root.pem\n  rssp operator create --name ops\n  \
                  rssp oauth-client create --name 'Seal signer' --type confidential --scopes service --account-user-id <id>\n\n\
                  Front ends drive the account and certificate lifecycle through /api/v1 (registration, activation, \
                  TOTP pairing, orders and payment, identity verification, issuance, rekey, reissue, revocation); \
                  operators use /api/admin/v1. In development mode (the default; RSSP_MODE=production for real \
                  deployments, which requires RSSP_PUBLIC_URL and refuses the embedded SoftHSM token and SQLite \
                  unless RSSP_ALLOW_EMBEDDED=true) e-mail and SMS stay in the outbox (GET /api/admin/v1/outbox, codes and links readable; in production \
                  mode they are redacted there and wiped once delivered) and the data directory \
                  gets dev-secrets.json with an operator key and the webhook secrets (those set in the configuration win; \
                  several nodes need them there).\n\nWhen the public URL changes, `rssp pki reissue-issuing-ca` gives \
                  the issuing CA a certificate with the new URLs (the start warns until then)."
)]
/// The `rssp` command line.
pub struct Cli {
    /// Configuration file (default: rssp.toml in the working directory, or RSSP_CONFIG).
    #[arg(long, global = true)]
    pub(crate) config: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the server (CSC API, PKI publication, OpenAPI at /openapi.json, Swagger UI at /docs/, probes
    /// /healthz and /readyz, Prometheus /metrics). SIGTERM or Ctrl-C stops it gracefully: no new
    /// connections, requests in flight finish within http.shutdown_grace_secs, then the HSM sessions close.
    Serve,
    /// Create a ready signer: user, TOTP authenticator, key pair in the HSM, qualified certificate.
    /// Prints one JSON object: user_id, username, credential_id, totp_secret, totp_uri.
    /// The password follows the lifecycle API's policy: 12 to 128 characters, a letter and a digit,
    /// not containing the username.
    ProvisionUser {
        #[arg(long)]
        username: String,
        /// The person's password (visible to other local users in the process list: prefer --password-stdin).
        #[arg(long, required_unless_present = "password_stdin", conflicts_with = "password_stdin", value_parser = secret_arg)]
        password: Option<SecretString>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Key type: rsa-2048, rsa-3072, ec-p256 or ec-p384.
        #[arg(long, default_value = "rsa-2048")]
        key: KeyKind,
        /// Most signatures one authorisation (SAD) may cover.
        #[arg(long, default_value_t = 100)]
        multisign: i32,
        /// Optional signing PIN (digits), asked for on every authorisation besides the one-time code.
        #[arg(long, value_parser = secret_arg)]
        pin: Option<SecretString>,
        /// Signatures the credential may make in all, like a package's transactions (default: no limit).
        #[arg(long)]
        quota: Option<i32>,
        /// The person's given name for the certificate subject (with --surname; without both the
        /// certificate's commonName is the username).
        #[arg(long, requires = "surname")]
        given_name: Option<String>,
        /// The person's surname for the certificate subject (with --given-name).
        #[arg(long, requires = "given_name")]
        surname: Option<String>,
        /// The person's country, ISO 3166-1 alpha-2 (default: ca.default_subject_country).
        #[arg(long)]
        country: Option<String>,
    },
    /// Operators of the admin API (/api/admin/v1).
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
    },
    /// API keys of relying parties' time-stamping tools (POST /tsa when tsa.access = bearer).
    TsaClient {
        #[command(subcommand)]
        command: TsaClientCommand,
    },
    /// Applications that act for people through the OAuth2 authorisation server (/oauth2/token).
    OauthClient {
        #[command(subcommand)]
        command: OauthClientCommand,
    },
    /// The CA and the time-stamping unit.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print the OpenAPI document (the one committed under openapi/).
    Openapi,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PkiCommand {
    /// Print the root CA certificate as PEM (the trust anchor for validating signatures).
    RootCert,
    /// Print the issuing CA certificate as PEM.
    IssuingCert,
    /// Print the time-stamping unit's certificate as PEM (what `openssl ts -verify -untrusted` takes).
    TsaCert,
    /// Issue a new issuing CA certificate for the same key with the URLs (AIA, CRL distribution point) of
    /// the current public URL, signed by the root, and make it the current one; prints it as PEM. The
    /// replaced certificate stays published at /pki/issuing-ca/<serial>.cer. Restart running nodes
    /// afterwards so they serve the new certificate.
    // The doc comment is the --help text, which shows `<serial>` as it is: not an HTML tag.
    #[allow(rustdoc::invalid_html_tags)]
    ReissueIssuingCa,
}

#[derive(Debug, Subcommand)]
pub(crate) enum OperatorCommand {
    /// Create an operator; prints its API key once (use it as `Authorization: Bearer <key>`).
    Create {
        #[arg(long)]
        name: String,
    },
    /// Revoke an operator's API key.
    Revoke {
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TsaClientCommand {
    /// Create a TSA client; prints its API key once (its tool sends it as `Authorization: Bearer <key>`
    /// to POST /tsa). The key opens nothing else.
    Create {
        #[arg(long)]
        name: String,
    },
    /// Revoke a TSA client's API key.
    Revoke {
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum OauthClientCommand {
    /// Register a client. Prints one JSON object: client_id, and client_secret for a confidential
    /// client (shown this once; only its digest is kept).
    Create {
        /// Shown to people when the application asks for access, and to operators.
        #[arg(long)]
        name: String,
        /// confidential (a server-side application with a secret) or public (a native or browser app: no
        /// secret, must use PKCE).
        #[arg(long = "type")]
        client_type: ClientType,
        /// Where the client may send people back to (repeat for several): https, http to 127.0.0.1 or
        /// [::1] on any port, or a private-use scheme such as com.example.app:/cb. Matched exactly.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// What it may ask for: service, credential, or service,credential.
        #[arg(long)]
        scopes: String,
        /// The user id of the account a confidential client acts for with the client_credentials grant
        /// (an organisation's e-seal signer).
        #[arg(long)]
        account_user_id: Option<String>,
        /// A file with a confidential client's public keys, an RFC 7517 JWK Set: the client then
        /// authenticates with assertions it signs (private_key_jwt) and gets no secret.
        #[arg(long)]
        jwks_file: Option<PathBuf>,
    },
    /// List the registered clients as JSON lines.
    List,
    /// Disable a client: it gets no more tokens, and every token issued to it is revoked.
    Disable {
        #[arg(long)]
        client_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check the hash chain of the audit trail; reports the first broken link. Exit code 1 when broken.
    Verify,
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// Runs the command line. Returns the process exit code. An error comes back as one message naming
/// each cause once (library errors often repeat their source in their own text).
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    run_command(cli).map_err(|e| anyhow::anyhow!(error_text(&e)))
}

/// The error and its causes joined with ": ", leaving out a cause whose text the message already holds.
pub fn error_text(error: &anyhow::Error) -> String {
    crate::telemetry::error_chain(error.as_ref())
}

/// A password or PIN given as an option: a secret from the start, so the parsed command's `Debug`
/// form does not show it.
fn secret_arg(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(value.into())
}

/// The password of `provision-user`: from the option, or the first line of standard input.
fn read_password(password: Option<SecretString>, from_stdin: bool) -> anyhow::Result<SecretString> {
    match password {
        Some(password) if !from_stdin => Ok(password),
        _ => {
            let mut line = zeroize::Zeroizing::new(String::new());
            std::io::stdin().read_line(&mut line)?;
            let password = line.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                anyhow::bail!("--password-stdin: standard input held no password");
            }
            Ok(password.into())
        }
    }
}

fn run_command(cli: Cli) -> anyhow::Result<i32> {
    if let Command::Openapi = cli.command {
        print!("{}", crate::api::openapi_json());
        return Ok(0);
    }
    // Read before anything starts, so a refused password costs no start-up.
    let password = match &cli.command {
        Command::ProvisionUser { password, password_stdin, .. } => {
            Some(read_password(password.clone(), *password_stdin)?)
        }
        _ => None,
    };
    let mut config = Config::load(cli.config.as_deref())?;
    let data_dir = config.data_dir.clone();
    let in_data_dir = |e: std::io::Error| anyhow::anyhow!("data directory {}: {e}", data_dir.display());
    crate::data_dir::prepare(&config.data_dir).map_err(in_data_dir)?;
    // Before any thread starts: it may set SOFTHSM2_CONF for this process.
    hsm::prepare_embedded_softhsm(&mut config).map_err(in_data_dir)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let clock = Arc::new(SystemClock);
        if let Command::Serve = cli.command {
            let server = startup::start(config, clock).await?;
            // Scripts and tests read the address from standard output (port 0 picks one).
            println!("rssp listening on {}", server.base_url());
            if let Some(metrics) = server.metrics_addr {
                println!("rssp metrics on http://{metrics}/metrics");
            }
            server.wait().await?;
            return Ok(0);
        }
        let public_url = config.public_url();
        let services = startup::open_services(config, clock, public_url).await?;
        let services = Arc::new(services);
        let code = tokio::task::spawn_blocking(move || -> anyhow::Result<i32> {
            match cli.command {
                Command::ProvisionUser {
                    username,
                    key,
                    multisign,
                    pin,
                    quota,
                    given_name,
                    surname,
                    country,
                    ..
                } => {
                    let names = given_name.zip(surname);
                    let password = password.unwrap_or_default();
                    let signer = provisioning::provision(
                        &services,
                        NewSigner {
                            username,
                            password,
                            key_kind: key,
                            multisign,
                            pin,
                            quota,
                            names,
                            country,
                        },
                    )?;
                    println!("{}", serde_json::to_string(&signer)?);
                    Ok(0)
                }
                Command::Operator { command: OperatorCommand::Create { name } } => {
                    let key = operators::create(&services, &name)?;
                    println!("{key}");
                    Ok(0)
                }
                Command::Operator { command: OperatorCommand::Revoke { name } } => {
                    operators::revoke(&services, &name, ApiKeyRole::Admin)?;
                    println!("operator {name} revoked");
                    Ok(0)
                }
                Command::TsaClient { command: TsaClientCommand::Create { name } } => {
                    let key = operators::create_key(&services, &name, ApiKeyRole::TsaClient)?;
                    println!("{key}");
                    Ok(0)
                }
                Command::TsaClient { command: TsaClientCommand::Revoke { name } } => {
                    operators::revoke(&services, &name, ApiKeyRole::TsaClient)?;
                    println!("TSA client {name} revoked");
                    Ok(0)
                }
                Command::OauthClient {
                    command:
                        OauthClientCommand::Create { name, client_type, redirect_uris, scopes, account_user_id, jwks_file },
                } => {
                    let jwks = jwks_file
                        .map(|path| {
                            std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("--jwks-file {}: {e}", path.display()))
                        })
                        .transpose()?;
                    let account = account_user_id.map(UserId::new);
                    let created = oauth_clients::create(
                        &services,
                        NewClient { name, client_type, redirect_uris, scopes, account, jwks },
                        "cli",
                    )?;
                    let secret = created.client_secret.as_ref().map(|s| s.expose_secret());
                    println!("{}", serde_json::json!({"client_id": created.client_id, "client_secret": secret}));
                    Ok(0)
                }
                Command::OauthClient { command: OauthClientCommand::List } => {
                    for client in oauth_clients::list(&services)? {
                        let line = serde_json::json!({
                            "client_id": client.id,
                            "name": client.name,
                            "type": client.client_type,
                            "redirect_uris": client.redirect_uris.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
                            "scopes": client.scopes.names(),
                            "account_user_id": client.account,
                            "token_endpoint_auth_method": client.authentication.as_str(),
                            "created_at": client.created_at,
                            "disabled_at": client.disabled_at,
                        });
                        println!("{line}");
                    }
                    Ok(0)
                }
                Command::OauthClient { command: OauthClientCommand::Disable { client_id } } => {
                    oauth_clients::disable(&services, &ClientId::new(client_id.clone()), "cli")?;
                    println!("OAuth client {client_id} disabled, its tokens revoked");
                    Ok(0)
                }
                Command::Pki { command: PkiCommand::RootCert } => {
                    print!("{}", pem("CERTIFICATE", &services.ca.root.certificate_der));
                    Ok(0)
                }
                Command::Pki { command: PkiCommand::IssuingCert } => {
                    print!("{}", pem("CERTIFICATE", &services.ca.issuing.certificate_der));
                    Ok(0)
                }
                Command::Pki { command: PkiCommand::TsaCert } => {
                    print!("{}", pem("CERTIFICATE", &services.tsa.unit.certificate_der));
                    Ok(0)
                }
                Command::Pki { command: PkiCommand::ReissueIssuingCa } => {
                    let reissued = ca::reissue_issuing_ca(&services)?;
                    eprintln!(
                        "rssp: new issuing CA certificate {} (same key) replaces {}, publishing {}{} and {}{}; \
                         the old one stays published at {}/pki/issuing-ca/{}.cer. Restart running nodes to serve the new one.",
                        reissued.serial_hex,
                        reissued.previous_serial_hex,
                        services.public_url,
                        crate::pki::ca::paths::ROOT_CERT,
                        services.public_url,
                        crate::pki::ca::paths::ROOT_CRL,
                        services.public_url,
                        reissued.previous_serial_hex,
                    );
                    print!("{}", pem("CERTIFICATE", &reissued.certificate));
                    Ok(0)
                }
                Command::Audit { command: AuditCommand::Verify } => {
                    let mut conn = services.conn()?;
                    match audit::verify(&mut conn)? {
                        audit::ChainReport::Intact { records } => {
                            println!("audit trail intact: {records} records");
                            Ok(0)
                        }
                        audit::ChainReport::Broken { seq, reason } => {
                            println!("audit trail broken at record {seq}: {reason}");
                            Ok(1)
                        }
                    }
                }
                Command::Serve | Command::Openapi => Ok(0),
            }
        })
        .await??;
        Ok(code)
    })
}

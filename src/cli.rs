//! The command line: `rssp serve` and the operator commands. Their output is a stable interface:
//! scripts and the conformance suite parse it.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::clock::SystemClock;
use crate::config::Config;
use crate::domain::KeyKind;
use crate::service::operators;
use crate::service::provisioning::{self, NewSigner};
use crate::{audit, hsm, startup};

#[derive(Debug, Parser)]
#[command(
    name = "rssp",
    version,
    about = "rssp: a remote signing server speaking the CSC API, keys in a PKCS#11 HSM, with its own CA.",
    long_about = "rssp: a remote signing server speaking the Cloud Signature Consortium API (v1.0.4.0 at /csc/v1, \
                  v2.0.0.2 at /csc/v2), keys in a PKCS#11 HSM, with its own CA.\n\n\
                  With no configuration it runs on its embedded default: SQLite and a SoftHSM token under ./rssp-data, \
                  listening on 127.0.0.1:8080. Settings come from defaults, then rssp.toml (or --config), then \
                  RSSP_* environment variables: RSSP_DATA_DIR, RSSP_LISTEN, RSSP_DATABASE_URL (sqlite://... or \
                  postgres://...), RSSP_PUBLIC_URL, RSSP_HSM_MODULE, RSSP_HSM_TOKEN_LABEL, RSSP_HSM_PIN, \
                  RSSP_HSM_SESSIONS, RSSP_SAD_LIFETIME_SECS, RSSP_OTP_MAX_FAILURES, RSSP_OTP_LOCKOUT_SECS, \
                  RSSP_METRICS_LISTEN and more (see the README); logging: RSSP_LOG (a tracing filter) and \
                  RSSP_LOG_FORMAT (text or json).\n\nQuick start:\n  rssp serve\n  rssp provision-user --username alice --password 'a long secret'\n  \
                  rssp pki root-cert > root.pem\n  rssp operator create --name ops\n\n\
                  Front ends drive the account and certificate lifecycle through /api/v1 (registration, activation, \
                  TOTP pairing, orders and payment, identity verification, issuance, rekey, reissue, revocation); \
                  operators use /api/admin/v1. In development mode (the default; RSSP_MODE=production for real \
                  deployments) e-mail and SMS stay in the outbox (GET /api/admin/v1/outbox, codes and links readable; in production \
                  mode they are redacted there and wiped once delivered) and the data directory \
                  gets dev-secrets.json with an operator key and the webhook secrets."
)]
pub struct Cli {
    /// Configuration file (default: rssp.toml in the working directory, or RSSP_CONFIG).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (CSC API, PKI publication, OpenAPI at /openapi.json, Swagger UI at /docs/).
    Serve,
    /// Create a ready signer: user, TOTP authenticator, key pair in the HSM, qualified certificate.
    /// Prints one JSON object: user_id, username, credential_id, totp_secret, totp_uri.
    ProvisionUser {
        #[arg(long)]
        username: String,
        #[arg(long)]
        password: String,
        /// Key type: rsa-2048, rsa-3072, ec-p256 or ec-p384.
        #[arg(long, default_value = "rsa-2048")]
        key: KeyKind,
        /// Most signatures one authorisation (SAD) may cover.
        #[arg(long, default_value_t = 100)]
        multisign: i32,
        /// Optional signing PIN (digits), asked for on every authorisation besides the one-time code.
        #[arg(long)]
        pin: Option<String>,
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
    /// The CA.
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
pub enum PkiCommand {
    /// Print the root CA certificate as PEM (the trust anchor for validating signatures).
    RootCert,
    /// Print the issuing CA certificate as PEM.
    IssuingCert,
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
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
pub enum AuditCommand {
    /// Check the hash chain of the audit trail; reports the first broken link. Exit code 1 when broken.
    Verify,
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// Runs the command line. Returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    if let Command::Openapi = cli.command {
        print!("{}", crate::api::openapi_json());
        return Ok(0);
    }
    let mut config = Config::load(cli.config.as_deref())?;
    crate::data_dir::prepare(&config.data_dir)?;
    // Before any thread starts: it may set SOFTHSM2_CONF for this process.
    hsm::prepare_embedded_softhsm(&mut config)?;
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
                    password,
                    key,
                    multisign,
                    pin,
                    quota,
                    given_name,
                    surname,
                    country,
                } => {
                    let names = given_name.zip(surname);
                    let signer = provisioning::provision(
                        &services,
                        NewSigner { username, password, key_kind: key, multisign, pin, quota, names, country },
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
                    operators::revoke(&services, &name)?;
                    println!("operator {name} revoked");
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

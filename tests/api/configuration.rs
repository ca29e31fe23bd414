//! Starting rssp as an operator would, through the real binary: configuration mistakes stop the start
//! quickly with their cause named (and no password shown), production mode's refusals, a failed first
//! start that leaves nothing behind to trip the next one, `provision-user`'s password policy, and
//! `rssp pki reissue-issuing-ca` after the public URL changed, checked with openssl.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::common;
use crate::common::binary::rssp;
use crate::common::fresh_postgres_database;
use crate::common::pki::{openssl, pem};

/// The binary with a clean environment: no RSSP_* of the caller, the embedded SoftHSM configuration
/// under the data directory, `dir` as working directory.
fn rssp_command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = common::binary::rssp_command(dir);
    command.args(args).envs(env.iter().copied());
    command
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Whether a PostgreSQL server answers on 127.0.0.1:5432 (the cases that need one are skipped otherwise).
fn postgres_answers() -> bool {
    std::net::TcpStream::connect_timeout(&"127.0.0.1:5432".parse().unwrap(), Duration::from_millis(500)).is_ok()
}

#[test]
fn a_postgres_url_that_cannot_connect_stops_the_start_at_once_with_the_servers_reason() {
    let dir = tempfile::tempdir().unwrap();
    let password = "Sup3rSecretPw";
    let mut cases = vec![(format!("postgres://rssp:{password}@127.0.0.1:1/rssp"), "Connection refused")];
    if postgres_answers() {
        cases.push((format!("postgres://postgres:{password}@127.0.0.1:5432/rssp_no_such_database"), "does not exist"));
        cases.push((format!("postgresql://rssp_no_such_role:{password}@127.0.0.1:5432/postgres"), "rssp_no_such_role"));
    } else {
        eprintln!("no PostgreSQL on 127.0.0.1:5432: only the refused-port case runs");
    }
    for (url, cause) in cases {
        let started = Instant::now();
        let out = rssp(dir.path(), &["serve"], &[("RSSP_DATABASE_URL", &url), ("RSSP_LISTEN", "127.0.0.1:0")]);
        let elapsed = started.elapsed();
        let text = stderr(&out);
        assert!(!out.status.success(), "{url}: the start must fail");
        assert!(elapsed < Duration::from_secs(5), "{url}: failed after {elapsed:?}, not within 5 s");
        assert!(text.contains(cause), "{url}: the server's reason {cause:?} is missing in: {text}");
        assert!(text.contains("PostgreSQL"), "{url}: the backend is named: {text}");
        assert!(!text.contains("multiconnection"), "{url}: diesel's MultiConnection guess leaked: {text}");
        assert!(!text.contains(password), "{url}: the password is printed: {text}");
    }
}

#[test]
fn a_bad_mode_names_the_variable_and_the_allowed_values() {
    let dir = tempfile::tempdir().unwrap();
    let out = rssp(dir.path(), &["serve"], &[("RSSP_MODE", "prod")]);
    assert!(!out.status.success());
    let text = stderr(&out);
    for part in ["RSSP_MODE", "prod", "development", "production"] {
        assert!(text.contains(part), "{part:?} missing in: {text}");
    }
    let out = rssp(dir.path(), &["serve"], &[("RSSP_ALLOW_EMBEDDED", "perhaps")]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("RSSP_ALLOW_EMBEDDED"), "{}", stderr(&out));
    // The same setting in the file is named with its key.
    std::fs::write(dir.path().join("rssp.toml"), "mode = \"prod\"\n").unwrap();
    let out = rssp(dir.path(), &["serve"], &[]);
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(text.contains("mode") && text.contains("production"), "{text}");
}

#[test]
fn a_data_directory_that_cannot_be_created_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-file"), b"").unwrap();
    let wanted = dir.path().join("a-file").join("data");
    let out = rssp(dir.path(), &["serve"], &[("RSSP_DATA_DIR", wanted.to_str().unwrap())]);
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(text.contains(wanted.to_str().unwrap()), "the path is named: {text}");
    assert!(!wanted.exists());
}

#[test]
fn a_wrong_pin_and_a_missing_module_print_their_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = rssp(dir.path(), &["pki", "root-cert"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = rssp(dir.path(), &["pki", "root-cert"], &[("RSSP_HSM_PIN", "00000000")]);
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(text.contains("PIN is incorrect"), "{text}");
    assert_eq!(text.matches("PIN is incorrect").count(), 1, "the cause is printed once: {text}");
    let out = rssp(
        dir.path(),
        &["pki", "root-cert"],
        &[("RSSP_HSM_MODULE", "/nonexistent/libpkcs11.so"), ("RSSP_HSM_PIN", "1234")],
    );
    assert!(!out.status.success());
    let text = stderr(&out);
    assert_eq!(text.matches("/nonexistent/libpkcs11.so: cannot open").count(), 1, "printed once: {text}");
}

#[test]
fn a_failed_first_start_leaves_nothing_that_breaks_the_next() {
    // A database that cannot be reached: the data directory and the token set-up are left, and the
    // next start (on the embedded SQLite) goes through.
    let dir = tempfile::tempdir().unwrap();
    let out = rssp(dir.path(), &["pki", "root-cert"], &[("RSSP_DATABASE_URL", "postgres://x:y@127.0.0.1:1/x")]);
    assert!(!out.status.success());
    let out = rssp(dir.path(), &["pki", "root-cert"], &[]);
    assert!(out.status.success(), "second start: {}", stderr(&out));

    // A user PIN the token refuses (SoftHSM wants 4 to 255 characters): the token is created but its
    // user PIN cannot be set. The next start, with the generated PIN, finishes the token and starts.
    let dir = tempfile::tempdir().unwrap();
    let out = rssp(dir.path(), &["pki", "root-cert"], &[("RSSP_HSM_PIN", "12")]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("PIN is too long or too short"), "{}", stderr(&out));
    let out = rssp(dir.path(), &["pki", "root-cert"], &[]);
    assert!(out.status.success(), "second start: {}", stderr(&out));
    let out = rssp(dir.path(), &["pki", "root-cert"], &[]);
    assert!(out.status.success(), "third start: {}", stderr(&out));
}

/// What production mode needs besides the HSM and database choice.
const PRODUCTION: &[(&str, &str)] = &[
    ("RSSP_MODE", "production"),
    ("RSSP_PUBLIC_URL", "https://rssp.example.org"),
    ("RSSP_PAYMENTS_WEBHOOK_SECRET", "0123456789abcdef0123"),
    ("RSSP_IDENTITY_WEBHOOK_SECRET", "fedcba9876543210fedc"),
    ("RSSP_NOTIFY_SMTP_URL", "smtp://127.0.0.1:1"),
    ("RSSP_NOTIFY_SMS_GATEWAY_URL", "http://127.0.0.1:1/sms"),
];

fn with(
    base: &[(&'static str, &'static str)],
    changes: &[(&'static str, &'static str)],
) -> Vec<(&'static str, &'static str)> {
    let mut env: Vec<_> = base.iter().filter(|(k, _)| !changes.iter().any(|(c, _)| c == k)).copied().collect();
    env.extend(changes.iter().filter(|(_, v)| !v.is_empty()).copied());
    env
}

#[test]
fn production_mode_is_strict_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |env: Vec<(&str, &str)>, expected: &[&str]| {
        let out = rssp(dir.path(), &["pki", "root-cert"], &env);
        assert!(!out.status.success(), "refused: {env:?}");
        let text = stderr(&out);
        for part in expected {
            assert!(text.contains(part), "{part:?} missing in: {text}");
        }
    };
    // The embedded SoftHSM token (PINs in files) and SQLite, without allow_embedded.
    refused(with(PRODUCTION, &[]), &["RSSP_HSM_MODULE", "embedded SoftHSM", "RSSP_ALLOW_EMBEDDED"]);
    refused(
        with(PRODUCTION, &[("RSSP_HSM_MODULE", "/opt/hsm/libvendor-pkcs11.so"), ("RSSP_HSM_PIN", "12345678")]),
        &["RSSP_DATABASE_URL", "SQLite", "RSSP_ALLOW_EMBEDDED"],
    );
    // No public URL.
    refused(with(PRODUCTION, &[("RSSP_PUBLIC_URL", "")]), &["RSSP_PUBLIC_URL", "required in production mode"]);
    // A secret too short is not the same as a URL missing.
    refused(
        with(PRODUCTION, &[("RSSP_PAYMENTS_WEBHOOK_SECRET", "short")]),
        &["RSSP_PAYMENTS_WEBHOOK_SECRET", "secret too short", "16"],
    );
    refused(with(PRODUCTION, &[("RSSP_NOTIFY_SMTP_URL", "")]), &["RSSP_NOTIFY_SMTP_URL", "URL required"]);
    // allow_embedded: a single machine that chose SoftHSM and SQLite on purpose starts.
    let out = rssp(dir.path(), &["pki", "root-cert"], &with(PRODUCTION, &[("RSSP_ALLOW_EMBEDDED", "true")]));
    assert!(out.status.success(), "allow_embedded accepted: {}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("BEGIN CERTIFICATE"));
    assert!(!rssp::service::dev_secrets::path(&dir.path().join("data")).exists(), "production writes no dev secrets");
}

#[test]
fn provision_user_applies_the_password_policy_and_reads_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    for weak in ["short1", "no digits in this one", "123456789012345"] {
        let out = rssp(dir.path(), &["provision-user", "--username", "weak", "--password", weak], &[]);
        assert!(!out.status.success(), "{weak:?} is refused");
        assert!(stderr(&out).contains("at least 12"), "the policy is stated: {}", stderr(&out));
    }
    let out =
        rssp(dir.path(), &["provision-user", "--username", "dora", "--password", "dora-has-1-long-password"], &[]);
    assert!(!out.status.success(), "a password containing the username is refused");

    let mut child = rssp_command(dir.path(), &["provision-user", "--username", "stdin", "--password-stdin"], &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"A long secret 2026\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["username"], "stdin");

    let out = rssp(
        dir.path(),
        &["provision-user", "--username", "both", "--password", "A long secret 2026", "--password-stdin"],
        &[],
    );
    assert!(!out.status.success(), "--password and --password-stdin exclude each other");
    assert!(stderr(&out).contains("--password-stdin"), "{}", stderr(&out));
}

/// `rssp serve` on a free port; killed on drop.
struct Served {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Served {
    fn start(dir: &Path, env: &[(&str, &str)]) -> Served {
        let log = dir.join(format!("serve-{}.log", std::process::id()));
        let mut child = rssp_command(dir, &["serve"], env)
            .env("RSSP_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("rssp listening on ").unwrap_or_else(|| {
            panic!("no listening line: {line:?}; log: {}", std::fs::read_to_string(&log).unwrap_or_default())
        });
        Served { url: url.to_string(), child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn extension_text(pem_path: &str) -> String {
    let (ok, text) = openssl(&["x509", "-in", pem_path, "-noout", "-text"]);
    assert!(ok, "{text}");
    text
}

#[tokio::test]
async fn reissue_issuing_ca_follows_the_public_url_and_keeps_the_old_certificate_published() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let old_url = [("RSSP_PUBLIC_URL", "http://old.example:8080")];
    let new_url = [("RSSP_PUBLIC_URL", "https://signing.example.org")];

    let out = rssp(dir.path(), &["pki", "issuing-cert"], &old_url);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(path("old.pem"), &out.stdout).unwrap();
    let out = rssp(dir.path(), &["pki", "root-cert"], &old_url);
    std::fs::write(path("root.pem"), &out.stdout).unwrap();
    assert!(!stderr(&out).contains("reissue-issuing-ca"), "no warning while the URLs match: {}", stderr(&out));

    // The public URL changed: every start says so, with the command that fixes it.
    let out = rssp(dir.path(), &["pki", "root-cert"], &new_url);
    let text = stderr(&out);
    assert!(
        text.contains("rssp pki reissue-issuing-ca") && text.contains("http://old.example:8080/pki/root-ca.cer"),
        "{text}"
    );

    let out = rssp(dir.path(), &["pki", "reissue-issuing-ca"], &new_url);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(path("new.pem"), &out.stdout).unwrap();
    let new_text = extension_text(&path("new.pem"));
    assert!(new_text.contains("CA Issuers - URI:https://signing.example.org/pki/root-ca.cer"), "{new_text}");
    assert!(new_text.contains("URI:https://signing.example.org/pki/root-ca.crl"), "{new_text}");
    assert!(!new_text.contains("old.example"), "{new_text}");
    let (ok, text) = openssl(&["verify", "-CAfile", &path("root.pem"), &path("new.pem")]);
    assert!(ok, "openssl verify of the new issuing CA: {text}");
    // Same key, same name: the key identifiers did not change.
    let old_text = extension_text(&path("old.pem"));
    let ski =
        |text: &str| text.split("Subject Key Identifier:").nth(1).unwrap().lines().nth(1).unwrap().trim().to_string();
    assert_eq!(ski(&old_text), ski(&new_text));
    let serial = |p: &str| {
        let (_, text) = openssl(&["x509", "-in", p, "-noout", "-serial"]);
        text.trim().trim_start_matches("serial=").to_lowercase()
    };
    let old_serial = serial(&path("old.pem"));
    assert_ne!(old_serial, serial(&path("new.pem")));

    let out = rssp(dir.path(), &["pki", "issuing-cert"], &new_url);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        std::fs::read_to_string(path("new.pem")).unwrap(),
        "it is current"
    );
    assert!(!stderr(&out).contains("reissue-issuing-ca"), "no more warning: {}", stderr(&out));
    // Without a configured public URL there is nothing to compare with (development, port 0).
    let out = rssp(dir.path(), &["pki", "root-cert"], &[]);
    assert!(!stderr(&out).contains("reissue-issuing-ca"), "no configured URL, no warning: {}", stderr(&out));

    // A signer issued afterwards chains to root + new issuing CA; the old certificate is still served.
    let password = "A long secret 2026";
    let out = rssp(
        dir.path(),
        &["provision-user", "--username", "after", "--password", password, "--key", "ec-p256"],
        &new_url,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let signer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let served = Served::start(dir.path(), &new_url);
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{}/csc/v1/auth/login", served.url))
        .basic_auth("after", Some(password))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap_or_else(|| panic!("{login}; {}", served.log()));
    let info: Value = http
        .post(format!("{}/csc/v1/credentials/info", served.url))
        .bearer_auth(token)
        .json(&json!({"credentialID": signer["credential_id"], "certificates": "chain"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let chain: Vec<Vec<u8>> =
        info["cert"]["certificates"].as_array().unwrap().iter().map(|c| common::unb64(c.as_str().unwrap())).collect();
    std::fs::write(path("ee.pem"), pem(&chain[0])).unwrap();
    std::fs::write(path("chain-ca.pem"), pem(&chain[1])).unwrap();
    assert_eq!(
        std::fs::read_to_string(path("chain-ca.pem")).unwrap(),
        std::fs::read_to_string(path("new.pem")).unwrap()
    );
    let (ok, text) =
        openssl(&["verify", "-CAfile", &path("root.pem"), "-untrusted", &path("new.pem"), &path("ee.pem")]);
    assert!(ok, "openssl verify of a certificate issued after the reissue: {text}");
    assert!(extension_text(&path("ee.pem")).contains("https://signing.example.org/pki/issuing-ca.cer"));

    let get = |p: String| {
        let http = http.clone();
        async move {
            let response = http.get(p).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.bytes().await.unwrap().to_vec())
        }
    };
    let (status, current) = get(format!("{}/pki/issuing-ca.cer", served.url)).await;
    assert_eq!(status, 200);
    assert_eq!(pem(&current), std::fs::read_to_string(path("new.pem")).unwrap());
    let (status, old) = get(format!("{}/pki/issuing-ca/{old_serial}.cer", served.url)).await;
    assert_eq!(status, 200, "the replaced certificate stays published");
    assert_eq!(pem(&old), std::fs::read_to_string(path("old.pem")).unwrap());
    let (status, _) = get(format!("{}/pki/issuing-ca/{}.cer", served.url, "ab".repeat(16))).await;
    assert_eq!(status, 404, "an unknown serial");
    // The issuing CA's CRL still verifies with the new certificate (same key).
    let (_, crl) = get(format!("{}/pki/issuing-ca.crl", served.url)).await;
    std::fs::write(path("crl.der"), crl).unwrap();
    let (ok, text) =
        openssl(&["crl", "-inform", "DER", "-in", &path("crl.der"), "-CAfile", &path("new.pem"), "-noout"]);
    assert!(ok && text.contains("verify OK"), "{text}");

    // CSC info names a logo that is served.
    let info: Value =
        http.post(format!("{}/csc/v1/info", served.url)).json(&json!({})).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["logo"], "https://signing.example.org/logo.png");
    let response = http.get(format!("{}/logo.png", served.url)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert!(response.bytes().await.unwrap().starts_with(b"\x89PNG"));
}

#[tokio::test]
async fn development_mode_uses_the_webhook_secrets_of_the_configuration() {
    let payments = "configured-payment-secret-0001";
    let server = common::TestServer::start_with(|c| c.payments.webhook_secret = Some(payments.into())).await;
    let secrets = server.dev_secrets();
    assert_eq!(secrets.payment_webhook_secret, payments, "the file shows the secret in force");
    assert_ne!(secrets.identity_webhook_secret, payments, "the other one is generated");
    let services = server.services();
    assert_eq!(services.webhook_secrets.payments.as_ref().map(|s| s.expose_secret()), Some(payments));
    assert_eq!(
        services.webhook_secrets.identity.as_ref().map(|s| s.expose_secret()),
        Some(secrets.identity_webhook_secret.as_str())
    );
    // A webhook signed with another secret is refused, one signed with the configured secret is not
    // refused for its signature.
    let body = json!({"event_id": "e1", "payment_ref": "nothing", "status": "paid"});
    let (status, _) = server.webhook("/api/v1/webhooks/payments", "some-other-secret-000", &body).await;
    assert_eq!(status, 401);
    let (status, answer) = server.webhook("/api/v1/webhooks/payments", payments, &body).await;
    assert_ne!(status, 401, "{answer}");
}

#[tokio::test]
async fn a_reissue_is_recorded_in_the_database_and_served_by_nodes_started_before_it() {
    let server = common::TestServer::start().await;
    let services = server.server.as_ref().unwrap().services.clone();
    let loaded = services.ca.issuing.certificate_der.clone();
    let (reissued, second) = tokio::task::spawn_blocking(move || {
        let reissued = rssp::service::ca::reissue_issuing_ca(&services).unwrap();
        // This process still holds the certificate it loaded, which is no longer current: a second
        // reissue from it would put a stale certificate in the history, and is refused.
        let second = rssp::service::ca::reissue_issuing_ca(&services).map(|_| ()).map_err(|e| e.to_string());
        (reissued, second)
    })
    .await
    .unwrap();
    assert!(second.unwrap_err().contains("changed since this process started"));
    let get = |serial: String| {
        let http = server.http.clone();
        let url = server.url.clone();
        async move {
            let response = http.get(format!("{url}/pki/issuing-ca/{serial}.cer")).send().await.unwrap();
            (response.status().as_u16(), response.bytes().await.unwrap().to_vec())
        }
    };
    let (status, old) = get(reissued.previous_serial_hex.clone()).await;
    assert_eq!((status, old), (200, loaded), "the replaced certificate, served from the history");
    let (status, new) = get(reissued.serial_hex.to_uppercase()).await;
    assert_eq!((status, new), (200, reissued.certificate.clone()), "the new one, from the database");
    let (status, _) = get("not-hex".into()).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_ca_creation_that_fails_half_way_leaves_no_key_on_the_token() {
    let server = common::TestServer::start().await;
    let services = server.server.as_ref().unwrap().services.clone();
    let (before, result, after) = tokio::task::spawn_blocking(move || {
        let keys = services.ca_keys();
        let before = keys.private_key_count().unwrap();
        // Both CA keys are generated before the issuing CA's URL (not IA5: non-ASCII) is refused.
        let result =
            rssp::pki::CertificateAuthority::create(keys, "Stray Org", "SI", "https://exämple.org", services.now())
                .map(|_| ());
        (before, result, keys.private_key_count().unwrap())
    })
    .await
    .unwrap();
    assert!(result.is_err(), "the creation must fail");
    assert_eq!(after, before, "the keys it generated are destroyed");
}

/// (URL, its secret): passwords where a naive redaction misses them, and URLs libpq fails to parse
/// and then quotes (the password, a piece of it, or the whole URL).
const SECRET_URLS: &[(&str, &str)] = &[
    ("postgres://db.invalid/rssp?password=S3CRETQ", "S3CRETQ"),
    ("postgres://rssp:pa#SS3CRET@127.0.0.1:1/rssp", "SS3CRET"),
    ("postgres://rssp:pa/SS3CRET@127.0.0.1:1/rssp", "SS3CRET"),
    ("postgres://rssp:S3CR%zzET@127.0.0.1:1/rssp", "S3CR"),
    ("postgres://rssp:S3CRETV6@[::1/rssp", "S3CRETV6"),
    ("postgres://rssp@127.0.0.1:1/rssp?sslpassword=S3CRETK", "S3CRETK"),
    ("postgres://rssp:S3CRET%2FX@127.0.0.1:1/rssp", "S3CRET"),
];

#[test]
fn no_form_of_a_database_password_is_printed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for (url, secret) in SECRET_URLS {
        let out = rssp(dir.path(), &["serve"], &[("RSSP_DATABASE_URL", url), ("RSSP_LISTEN", "127.0.0.1:0")]);
        let text = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
        assert!(!out.status.success(), "{url}: the start must fail");
        assert!(text.contains("PostgreSQL"), "{url}: the cause is still said: {text}");
        assert!(!text.contains(secret), "{url}: the password is printed: {text}");
    }
}

#[test]
fn a_secret_typed_as_a_number_in_the_file_is_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rssp.toml"), "[hsm]\npin = 98765432\n").unwrap();
    let out = rssp(dir.path(), &["serve"], &[]);
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(text.contains("hsm.pin") && text.contains("expected a string"), "{text}");
    assert!(!text.contains("98765432"), "the PIN is printed: {text}");
}

#[test]
fn a_database_started_in_production_refuses_a_development_start() {
    let mut databases = vec![None];
    match fresh_postgres_database() {
        Some(url) => databases.push(Some(url)),
        None => eprintln!("RSSP_TEST_POSTGRES_URL unset: SQLite only"),
    }
    for database in databases {
        let dir = tempfile::tempdir().unwrap();
        let mut base: Vec<(&str, &str)> = Vec::new();
        if let Some(url) = &database {
            base.push(("RSSP_DATABASE_URL", url));
        }
        let production: Vec<(&str, &str)> =
            PRODUCTION.iter().copied().chain([("RSSP_ALLOW_EMBEDDED", "true")]).chain(base.iter().copied()).collect();
        // A development start before any production one is fine, and marks nothing.
        let out = rssp(dir.path(), &["pki", "root-cert"], &base);
        assert!(out.status.success(), "{database:?}: {}", stderr(&out));
        let out = rssp(dir.path(), &["pki", "root-cert"], &production);
        assert!(out.status.success(), "{database:?}: {}", stderr(&out));
        // Now the database is production's: forgetting RSSP_MODE is refused, with the variable named.
        let out = rssp(dir.path(), &["pki", "root-cert"], &base);
        assert!(!out.status.success(), "{database:?}: a development start is refused");
        let text = stderr(&out);
        assert!(text.contains("RSSP_MODE") && text.contains("production"), "{database:?}: {text}");
        let out = rssp(dir.path(), &["serve"], &base);
        assert!(!out.status.success() && stderr(&out).contains("RSSP_MODE"), "{database:?}: {}", stderr(&out));
        // Production starts again.
        let out = rssp(dir.path(), &["pki", "root-cert"], &production);
        assert!(out.status.success(), "{database:?}: {}", stderr(&out));
    }
}

#[test]
fn starting_on_a_fresh_sqlite_database_logs_no_locked_database() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(dir.path(), &[("RSSP_LOG", "info")]);
    // The pool opens its connections in the background: give them time to fail, as they did.
    std::thread::sleep(Duration::from_secs(2));
    let log = served.log();
    assert!(!log.is_empty(), "the log is written");
    assert!(!log.contains("database is locked"), "{log}");
    assert!(!log.contains("ERROR r2d2"), "{log}");
}

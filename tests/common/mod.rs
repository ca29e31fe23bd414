//! The test harness: the real application on port 0, a real SoftHSM token, a real SQLite file (or a
//! fresh PostgreSQL database when RSSP_TEST_POSTGRES_URL is set). Tests speak HTTP like a client.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use base64::Engine;
use rssp::clock::ManualClock;
use rssp::config::Config;
use rssp::domain::{secrets, totp, KeyKind};
use rssp::service::provisioning::{self, NewSigner, ProvisionedSigner};
use rssp::startup::{self, RunningServer};
use serde_json::{json, Value};

pub const PASSWORD: &str = "correct horse battery 7";

/// One SoftHSM configuration per test process (the module reads it once); each server gets a token of its own.
fn softhsm_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rssp-test-hsm-{}", std::process::id()));
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()),
        )
        .unwrap();
        std::env::set_var("SOFTHSM2_CONF", &conf);
        dir
    })
}

fn database_url(data_dir: &std::path::Path) -> String {
    match std::env::var("RSSP_TEST_POSTGRES_URL") {
        Ok(base) if !base.is_empty() => {
            use diesel::{Connection, RunQueryDsl};
            let name = format!("rssp_test_{}", hex::encode(secrets::random_bytes::<6>()));
            let mut conn = diesel::PgConnection::establish(&base).expect("connect to RSSP_TEST_POSTGRES_URL");
            diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn).expect("create test database");
            let (prefix, _) = base.rsplit_once('/').expect("postgres URL with a database name");
            format!("{prefix}/{name}")
        }
        _ => format!("sqlite://{}", data_dir.join("rssp.sqlite").display()),
    }
}

pub struct TestServer {
    pub server: Option<RunningServer>,
    pub url: String,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
    _data: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        softhsm_dir();
        let data = tempfile::tempdir().unwrap();
        let mut config =
            Config { data_dir: data.path().to_path_buf(), listen: "127.0.0.1:0".into(), ..Config::default() };
        config.database_url = Some(database_url(data.path()));
        config.hsm.token_label = format!("t{}", hex::encode(secrets::random_bytes::<8>()));
        config.hsm.pin = Some("98765432".into());
        config.hsm.sessions = 2;
        adjust(&mut config);
        let clock = Arc::new(ManualClock::default());
        let server = startup::start(config, clock.clone()).await.expect("server starts");
        let url = server.base_url();
        TestServer { server: Some(server), url, clock, http: reqwest::Client::new(), _data: data }
    }

    pub fn services(&self) -> &rssp::service::Services {
        &self.server.as_ref().unwrap().services
    }

    pub async fn provision(&self, username: &str, key: KeyKind, multisign: i32, pin: Option<&str>) -> Signer {
        self.provision_with_quota(username, key, multisign, pin, None).await
    }

    pub async fn provision_with_quota(
        &self,
        username: &str,
        key: KeyKind,
        multisign: i32,
        pin: Option<&str>,
        quota: Option<i32>,
    ) -> Signer {
        let services = self.server.as_ref().unwrap().services.clone();
        let signer = NewSigner {
            username: username.into(),
            password: PASSWORD.into(),
            key_kind: key,
            multisign,
            pin: pin.map(str::to_string),
            quota,
            names: None,
            country: None,
        };
        let provisioned =
            tokio::task::spawn_blocking(move || provisioning::provision(&services, signer)).await.unwrap().unwrap();
        Signer::new(provisioned)
    }

    /// POST JSON and return (status, body as JSON or Null).
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = self.http.post(format!("{}{path}", self.url)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// POST a raw body with a content type.
    pub async fn post_raw(&self, path: &str, token: &str, body: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn login(&self, version: &str, signer: &Signer) -> String {
        let response = self
            .http
            .post(format!("{}/csc/{version}/auth/login", self.url))
            .basic_auth(&signer.username, Some(PASSWORD))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }

    /// v1 signHash with just the required fields.
    pub async fn sign_v1(
        &self,
        token: &str,
        credential: &str,
        sad: &str,
        hashes: &[Vec<u8>],
        sign_algo: &str,
    ) -> (u16, Value) {
        let body = json!({"credentialID": credential, "SAD": sad, "hash": b64_all(hashes), "signAlgo": sign_algo});
        self.post("/csc/v1/signatures/signHash", Some(token), body).await
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self._data.path()
    }

    /// Development mode's operator key and webhook secrets.
    pub fn dev_secrets(&self) -> rssp::service::dev_secrets::DevSecrets {
        let text = std::fs::read_to_string(rssp::service::dev_secrets::path(self.data_dir())).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// GET with an optional bearer token; (status, JSON or Null).
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.http.get(format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// PUT JSON with a bearer token.
    pub async fn put(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let response =
            self.http.put(format!("{}{path}", self.url)).bearer_auth(token).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// POSTs a webhook body signed with `secret`.
    pub async fn webhook(&self, path: &str, secret: &str, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .header("x-rssp-signature", secrets::webhook_signature(secret, &bytes))
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub fn now(&self) -> i64 {
        use rssp::clock::Clock;
        self.clock.now()
    }

    /// The current code of the signer's authenticator. A code is accepted once, so each call moves the
    /// test clock to the next 30-second step first.
    pub fn next_otp(&self, signer: &Signer) -> String {
        self.clock.advance(totp::STEP_SECONDS);
        totp::code_at_step(&signer.totp_seed, totp::step_of(self.now()))
    }

    /// Authorises `hashes` on v1 and returns the SAD.
    pub async fn authorize_v1(&self, token: &str, signer: &Signer, hashes: &[Vec<u8>], num: usize) -> String {
        let otp = self.next_otp(signer);
        let (status, body) = self
            .post(
                "/csc/v1/credentials/authorize",
                Some(token),
                json!({"credentialID": signer.credential_id, "numSignatures": num, "hash": b64_all(hashes), "OTP": otp}),
            )
            .await;
        assert_eq!(status, 200, "authorize: {body}");
        body["SAD"].as_str().unwrap().to_string()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Keep the services (and their HSM sessions) alive until the process ends: otherwise an
        // actix worker thread may close its sessions while the test process is already exiting and
        // SoftHSM's own teardown runs, which crashes inside SoftHSM.
        static KEEP: std::sync::Mutex<Vec<actix_web::web::Data<rssp::service::Services>>> =
            std::sync::Mutex::new(Vec::new());
        if let Some(server) = self.server.take() {
            KEEP.lock().unwrap_or_else(|e| e.into_inner()).push(server.services.clone());
        }
    }
}

pub struct Signer {
    pub user_id: String,
    pub username: String,
    pub credential_id: String,
    pub totp_seed: Vec<u8>,
}

impl Signer {
    fn new(p: ProvisionedSigner) -> Signer {
        Signer {
            totp_seed: secrets::from_base32(&p.totp_secret).unwrap(),
            user_id: p.user_id,
            username: p.username,
            credential_id: p.credential_id,
        }
    }
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn b64_all(hashes: &[Vec<u8>]) -> Vec<String> {
    hashes.iter().map(|h| b64(h)).collect()
}

pub fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}

pub fn sha384(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha384::digest(data).to_vec()
}

/// Distinct digests for a test.
pub fn digests(n: usize, tag: &str) -> Vec<Vec<u8>> {
    (0..n).map(|i| sha256(format!("{tag}-{i}").as_bytes())).collect()
}

/// Asserts a CSC error answer.
pub fn assert_error(status: u16, body: &Value, want_status: u16, want_error: &str, want_text: &str) {
    assert_eq!(status, want_status, "status; body {body}");
    assert_eq!(body["error"], want_error, "error code; body {body}");
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(description.contains(want_text), "description {description:?} should contain {want_text:?}");
}
pub mod journey;
pub mod loopback;
pub mod pki;
pub mod recovery;
pub mod rekey;

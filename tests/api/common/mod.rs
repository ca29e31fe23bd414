//! The test harness: the real application on port 0, a real SoftHSM token (or another PKCS#11
//! implementation, see [`TestPkcs11`]), a real SQLite file (or a
//! fresh PostgreSQL database when RSSP_TEST_POSTGRES_URL is set). Tests speak HTTP like a client.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use base64::Engine;
use rssp::clock::ManualClock;
use rssp::config::Config;
use rssp::domain::{secrets, totp, KeyKind};
use rssp::service::provisioning::{self, NewSigner, ProvisionedSigner};
use rssp::startup::{self, RunningServer};
use serde_json::{json, Value};

pub const PASSWORD: &str = "correct horse battery 7";

/// The PKCS#11 implementation the tests run against. SoftHSM by default, through the same embedded set-up
/// `rssp serve` uses (rssp creates each server's token itself). With `RSSP_TEST_PKCS11=kryoptic` and
/// `RSSP_TEST_PKCS11_MODULE` naming Kryoptic's module (`hsm-config/second-pkcs11/run.sh` builds it and
/// sets both), the servers use that module as an operator's HSM: a token made beforehand, named by
/// module path, label and PIN; rssp neither knows nor cares which implementation it is.
pub enum TestPkcs11 {
    SoftHsm,
    /// A second implementation: its module, and the SO PIN the harness initialises tokens with.
    Other {
        module: PathBuf,
    },
}

/// The SO PIN of the tokens the harness initialises on a second implementation.
const TEST_SO_PIN: &str = "12345678";
/// Slots of the Kryoptic configuration: each server takes one (two with a CA token of its own), and the
/// whole integration suite, one process, starts about a hundred servers.
const KRYOPTIC_SLOTS: u32 = 256;

/// The implementation of this test process, configured once (a module reads its configuration when it is
/// first initialised).
pub fn test_pkcs11() -> &'static TestPkcs11 {
    static PKCS11: OnceLock<TestPkcs11> = OnceLock::new();
    PKCS11.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rssp-test-hsm-{}", std::process::id()));
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        match std::env::var("RSSP_TEST_PKCS11").unwrap_or_default().as_str() {
            "" | "softhsm" => {
                let conf = dir.join("softhsm2.conf");
                // The embedded default's own configuration (hsm-config/softhsm2.conf.template).
                std::fs::write(&conf, rssp::hsm::softhsm_conf(&tokens)).unwrap();
                std::env::set_var("SOFTHSM2_CONF", &conf);
                TestPkcs11::SoftHsm
            }
            "kryoptic" => {
                let module = PathBuf::from(
                    std::env::var("RSSP_TEST_PKCS11_MODULE")
                        .expect("RSSP_TEST_PKCS11=kryoptic needs RSSP_TEST_PKCS11_MODULE (the module's path)"),
                );
                assert!(module.is_file(), "RSSP_TEST_PKCS11_MODULE: no file at {}", module.display());
                // Kryoptic: one SQLite file per slot; a slot whose file is new holds an uninitialised token.
                let mut conf = String::new();
                for slot in 1..=KRYOPTIC_SLOTS {
                    conf.push_str(&format!(
                        "[[slots]]\nslot = {slot}\ndbtype = \"sqlite\"\ndbargs = \"{}\"\n\n",
                        tokens.join(format!("slot{slot}.sql")).display()
                    ));
                }
                let conf_path = dir.join("kryoptic.conf");
                std::fs::write(&conf_path, conf).unwrap();
                std::env::set_var("KRYOPTIC_CONF", &conf_path);
                TestPkcs11::Other { module }
            }
            other => panic!("RSSP_TEST_PKCS11={other:?}: expected softhsm or kryoptic"),
        }
    })
}

impl TestPkcs11 {
    /// The module path a test opens by itself (to look at a server's token as another application).
    pub fn module(&self) -> PathBuf {
        match self {
            TestPkcs11::SoftHsm => PathBuf::from(rssp::config::SOFTHSM_MODULE),
            TestPkcs11::Other { module } => module.clone(),
        }
    }

    /// Points the configuration at a second implementation (SoftHSM needs nothing: it is the default).
    fn prepare(&self, config: &mut Config) {
        let TestPkcs11::Other { module } = self else { return };
        config.hsm.module = module.clone();
        // A software token is no QSCD; rssp's default guesses that only for SoftHSM.
        config.ca.qc_sscd.get_or_insert(false);
    }

    /// On a second implementation, initialises the configured tokens (the CA token too, when set) as an
    /// operator would before the first start: rssp creates only the embedded SoftHSM token itself. The
    /// tokens are made with rssp's own PKCS#11 code (`KeyStore::open` with an SO PIN: C_InitToken in a
    /// free slot, then C_InitPIN), so no other tool is needed.
    fn init_tokens(&self, config: &Config) {
        if let TestPkcs11::Other { module } = self {
            let pin = config.hsm.pin.clone().unwrap();
            let mut tokens = vec![(config.hsm.token_label.clone(), pin.clone())];
            if let Some(ca_label) = &config.hsm.ca_token_label {
                tokens.push((ca_label.clone(), config.hsm.ca_pin.clone().unwrap_or(pin)));
            }
            for (label, pin) in tokens {
                rssp::hsm::KeyStore::open(module, &label, &pin, 1, Some(TEST_SO_PIN))
                    .unwrap_or_else(|e| panic!("initialise token {label} on {}: {e}", module.display()));
            }
        }
    }
}

/// A fresh PostgreSQL database when RSSP_TEST_POSTGRES_URL is set, else none.
pub fn fresh_postgres_database() -> Option<String> {
    use diesel::{Connection, RunQueryDsl};
    let base = std::env::var("RSSP_TEST_POSTGRES_URL").ok().filter(|b| !b.is_empty())?;
    let name = format!("rssp_test_{}", hex::encode(secrets::random_bytes::<6>()));
    let mut conn = diesel::PgConnection::establish(&base).expect("connect to RSSP_TEST_POSTGRES_URL");
    diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn).expect("create test database");
    let (prefix, _) = base.rsplit_once('/').expect("postgres URL with a database name");
    Some(format!("{prefix}/{name}"))
}

fn database_url(data_dir: &std::path::Path) -> String {
    fresh_postgres_database().unwrap_or_else(|| format!("sqlite://{}", data_dir.join("rssp.sqlite").display()))
}

/// Which test servers may run beside each other. rssp counts its metrics per process
/// (`rssp::metrics::METRICS`), and every test of this binary shares the process: a test that reads counts
/// takes a server that runs alone ([`alone::TestServer`]), which waits until no other test server runs,
/// and the others wait while it runs. Others never wait for each other, nor for an alone server that is
/// only waiting (a test with two servers takes two turns; letting a waiting one go first could deadlock).
struct Turns {
    /// (test servers running beside each other, whether one runs alone)
    running: Mutex<(usize, bool)>,
    changed: Condvar,
}

static TURNS: Turns = Turns { running: Mutex::new((0, false)), changed: Condvar::new() };

/// A test server's turn, held while it runs.
enum Turn {
    Shared,
    Alone,
}

impl Turn {
    fn take(alone: bool) -> Turn {
        let mut running = TURNS.running.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match *running {
                (0, false) if alone => {
                    running.1 = true;
                    return Turn::Alone;
                }
                (shared, false) if !alone => {
                    running.0 = shared + 1;
                    return Turn::Shared;
                }
                _ => running = TURNS.changed.wait(running).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut running = TURNS.running.lock().unwrap_or_else(|e| e.into_inner());
        match self {
            Turn::Shared => running.0 -= 1,
            Turn::Alone => running.1 = false,
        }
        TURNS.changed.notify_all();
    }
}

/// A server of one test, stopped when it is dropped.
pub struct TestServer {
    pub server: Option<RunningServer>,
    pub url: String,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
    /// The runtime the server runs on. Its own, not the test's: dropping the test server blocks the
    /// test's thread until the server has stopped, and the server must go on running meanwhile.
    runtime: Option<tokio::runtime::Runtime>,
    _data: tempfile::TempDir,
    /// Given back once the server has stopped (fields drop after `drop`).
    _turn: Turn,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_in_turn(Turn::take(false), adjust).await
    }

    async fn start_in_turn(turn: Turn, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let pkcs11 = test_pkcs11();
        let data = tempfile::tempdir().unwrap();
        let mut config =
            Config { data_dir: data.path().to_path_buf(), listen: "127.0.0.1:0".into(), ..Config::default() };
        config.database_url = Some(database_url(data.path()));
        config.hsm.token_label = format!("t{}", hex::encode(secrets::random_bytes::<8>()));
        config.hsm.pin = Some("98765432".into());
        config.hsm.sessions = 2;
        pkcs11.prepare(&mut config);
        adjust(&mut config);
        pkcs11.init_tokens(&config);
        let clock = Arc::new(ManualClock::default());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("test-server")
            .enable_all()
            .build()
            .unwrap();
        let server = runtime.spawn(startup::start(config, clock.clone())).await.unwrap().expect("server starts");
        let url = server.base_url();
        TestServer {
            server: Some(server),
            url,
            clock,
            http: reqwest::Client::new(),
            runtime: Some(runtime),
            _data: data,
            _turn: turn,
        }
    }

    pub fn services(&self) -> &rssp::service::Services {
        &self.server.as_ref().unwrap().services
    }

    /// The services, for a thread of the test's own that outlives a borrow.
    pub fn services_shared(&self) -> std::sync::Arc<rssp::service::Services> {
        self.server.as_ref().unwrap().services.clone().into_inner()
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
            pin: pin.map(Into::into),
            quota,
            names: None,
            country: None,
        };
        let provisioned =
            tokio::task::spawn_blocking(move || provisioning::provision(&services, signer)).await.unwrap().unwrap();
        Signer::new(provisioned)
    }

    /// Sends a request; (status, body as JSON or Null).
    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// POST JSON and return (status, body as JSON or Null).
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = self.http.post(format!("{}{path}", self.url)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    /// POST a raw body with a content type.
    pub async fn post_raw(&self, path: &str, token: &str, body: &str) -> (u16, Value) {
        let request = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string());
        self.send(request).await
    }

    /// CSC `auth/login` (`version` v1 or v2) with HTTP Basic credentials and a JSON body.
    pub async fn basic_login(&self, version: &str, username: &str, password: &str, body: Value) -> (u16, Value) {
        let request = self
            .http
            .post(format!("{}/csc/{version}/auth/login", self.url))
            .basic_auth(username, Some(password))
            .json(&body);
        self.send(request).await
    }

    pub async fn login(&self, version: &str, signer: &Signer) -> String {
        let (status, body) = self.basic_login(version, &signer.username, PASSWORD, json!({})).await;
        assert_eq!(status, 200);
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
        self.send(request).await
    }

    /// PUT JSON with a bearer token.
    pub async fn put(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.send(self.http.put(format!("{}{path}", self.url)).bearer_auth(token).json(&body)).await
    }

    /// POSTs a webhook body signed with `secret`.
    pub async fn webhook(&self, path: &str, secret: &str, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        let request = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .header("x-rssp-signature", secrets::webhook_signature(secret, &bytes))
            .body(bytes);
        self.send(request).await
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
    /// Stops the server before the test ends: requests in flight finish, the background workers stop
    /// and the server's HSM sessions close. Left running, its actix workers would close those sessions
    /// at some later moment, perhaps while the process exits and SoftHSM's own teardown runs, which
    /// crashes inside SoftHSM.
    fn drop(&mut self) {
        let (Some(server), Some(runtime)) = (self.server.take(), self.runtime.take()) else { return };
        let (stopped, wait) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            server.stop().await;
            let _ = stopped.send(());
        });
        if wait.recv_timeout(std::time::Duration::from_secs(60)).is_err() {
            eprintln!("the test server at {} did not stop within 60 s", self.url);
        }
        // Everything on it has ended; this only lets its threads go (dropping would block, not allowed
        // inside the test's runtime).
        runtime.shutdown_background();
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
            user_id: p.user_id.into(),
            username: p.username,
            credential_id: p.credential_id.into(),
        }
    }
}

/// ECDSA with SHA-256, the algorithm of the P-256 signers most tests use.
pub const ES256: &str = "1.2.840.10045.4.3.2";

/// v1 signHash with ES256.
pub async fn sign(server: &TestServer, token: &str, credential: &str, sad: &str, hashes: &[Vec<u8>]) -> (u16, Value) {
    server.sign_v1(token, credential, sad, hashes, ES256).await
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
/// Test servers that run alone in the process, for the tests that read rssp's metrics (counted per
/// process): the same [`TestServer`](super::TestServer) otherwise.
pub mod alone {
    use rssp::config::Config;

    use super::Turn;

    pub struct TestServer(super::TestServer);

    impl TestServer {
        pub async fn start() -> TestServer {
            Self::start_with(|_| {}).await
        }

        pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
            TestServer(super::TestServer::start_in_turn(Turn::take(true), adjust).await)
        }
    }

    impl std::ops::Deref for TestServer {
        type Target = super::TestServer;

        fn deref(&self) -> &super::TestServer {
            &self.0
        }
    }
}

pub mod binary;
pub mod journey;
pub mod loopback;
pub mod pki;
pub mod recovery;
pub mod rekey;

//! Signing throughput: raw signing through the HSM key store against the full HTTP path
//! (`/csc/v1/signatures/signHash`), RSA-2048 and P-256, SADs covering 1 and 100 hashes, concurrency
//! 1 to 64. Prints signatures per second, the ratio to raw, and p50/p99 request latency.
//!
//! Each authorised hash signs once, so every request spends a SAD of its own. To measure signHash
//! alone, the SADs are written into the store ahead of each measurement, as `credentials/authorize`
//! would after a code (one TOTP step each would make authorising them the bottleneck).
//!
//!     cargo bench --bench signing            (RSSP_BENCH_SECS=3 per measurement by default)
//!
//! `RSSP_BENCH_KEYS=ec-p256`, `RSSP_BENCH_CONCURRENCY=16,64` and `RSSP_BENCH_HASHES=1` narrow the run to
//! some of the measurements (comma-separated; all of them by default).
//!
//! A measurement, not a test: nothing here asserts a speed.

// A separate crate that inherits [lints]: here a panic is a failed test or run, which is what it
// should be, and nothing outside uses its items, so they need no docs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use rssp::clock::ManualClock;
use rssp::domain::{secrets, HashAlgorithm, KeyKind, SignatureScheme};
use rssp::hsm::KeyId;
use rssp::service::provisioning::{self, NewSigner};
use serde_json::{json, Value};

const CONCURRENCY: [usize; 4] = [1, 4, 16, 64];
const BATCHES: [usize; 2] = [1, 100];

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn digest(i: usize) -> Vec<u8> {
    HashAlgorithm::Sha256.digest(format!("bench-{i}").as_bytes())
}

/// Raw: `concurrency` threads signing one digest at a time through the key store until the deadline.
/// Signatures per second, and the process's CPU time per signature.
fn raw(
    services: &rssp::service::Services,
    key: &KeyId,
    scheme: SignatureScheme,
    concurrency: usize,
    secs: f64,
) -> (f64, Duration) {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let cpu_before = process_cpu();
    let total: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..concurrency)
            .map(|t| {
                scope.spawn(move || {
                    let mut done = 0;
                    while Instant::now() < deadline {
                        services.keystore.sign_digests(key, scheme, &[digest(t)]).expect("raw sign");
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    let cpu = process_cpu().saturating_sub(cpu_before) / total.max(1) as u32;
    (total as f64 / start.elapsed().as_secs_f64(), cpu)
}

struct HttpResult {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    /// The process's CPU time (server and client together) per request answered.
    cpu_per_request: Duration,
    /// Requests answered with an error (an overloaded server's 503, say), by status and error code.
    failures: std::collections::BTreeMap<String, usize>,
}

/// SADs for `count` requests, each bound to `hashes`, written straight into the store.
fn mint_sads(
    services: &rssp::service::Services,
    user_id: &str,
    credential_id: &str,
    hashes: &[Vec<u8>],
    count: usize,
) -> Vec<String> {
    use rssp::db::sads::{self, SadRow};
    let now = services.now();
    let bound = rssp::domain::sad::encode_hashes(hashes);
    let tokens: Vec<String> = (0..count).map(|_| secrets::new_token()).collect();
    let mut conn = services.conn().expect("connection");
    rssp::db::write_transaction(&mut conn, |c| {
        for token in &tokens {
            sads::insert(
                c,
                &SadRow {
                    digest: secrets::token_digest(token),
                    user_id: user_id.to_string(),
                    credential_id: credential_id.to_string(),
                    hashes: bound.clone(),
                    num_signatures: hashes.len() as i32,
                    used: 0,
                    expires_at: now + 24 * 3600,
                    revoked: false,
                    chain_expires_at: now + 24 * 3600,
                    client_id: None,
                },
            )?;
        }
        Ok::<_, diesel::result::Error>(())
    })
    .expect("mint SADs");
    tokens
}

/// `concurrency` clients calling signHash until the deadline, each request with a fresh SAD.
#[allow(clippy::too_many_arguments)]
async fn http(
    url: &str,
    token: &str,
    credential: &str,
    sads: Vec<String>,
    hashes: &[String],
    sign_algo: &str,
    concurrency: usize,
    secs: f64,
) -> HttpResult {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let cpu_before = process_cpu();
    let sads = Arc::new(std::sync::Mutex::new(sads));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, token, credential, sads) =
            (client.clone(), url.to_string(), token.to_string(), credential.to_string(), sads.clone());
        let (hashes, sign_algo) = (hashes.to_vec(), sign_algo.to_string());
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut failures) = (Vec::new(), std::collections::BTreeMap::<String, usize>::new());
            while Instant::now() < deadline {
                let Some(sad) = sads.lock().unwrap().pop() else {
                    eprintln!("ran out of SADs before the deadline: the figure covers the time until then");
                    break;
                };
                let body = json!({"credentialID": credential, "SAD": sad, "hash": hashes, "signAlgo": sign_algo});
                let t = Instant::now();
                let response = client
                    .post(format!("{url}/csc/v1/signatures/signHash"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .expect("request");
                let status = response.status();
                let answer: Value = response.json().await.expect("json");
                if status.is_success() {
                    latencies.push(t.elapsed());
                } else {
                    *failures.entry(format!("{status} {}", answer["error"])).or_default() += 1;
                }
            }
            (latencies, failures)
        }));
    }
    let (mut latencies, mut failures) = (Vec::new(), std::collections::BTreeMap::new());
    for task in tasks {
        let (done, failed) = task.await.unwrap();
        latencies.extend(done);
        for (why, n) in failed {
            *failures.entry(why).or_default() += n;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = process_cpu().saturating_sub(cpu_before);
    latencies.sort();
    HttpResult {
        per_second: (latencies.len() * hashes.len()) as f64 / elapsed,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        cpu_per_request: cpu / (latencies.len() + failures.values().sum::<usize>()).max(1) as u32,
        failures,
    }
}

async fn json_answer(request: reqwest::RequestBuilder) -> Value {
    request.send().await.expect("request").json().await.expect("JSON answer")
}

mod support;
use support::{percentile, process_cpu};

/// The values of a comma-separated environment variable that are among `all`; all when it is unset.
fn chosen<T: Copy + std::fmt::Display>(var: &str, all: &[T]) -> Vec<T> {
    match std::env::var(var) {
        Ok(list) => {
            let wanted: Vec<&str> = list.split(',').map(str::trim).collect();
            all.iter().copied().filter(|v| wanted.contains(&v.to_string().as_str())).collect()
        }
        Err(_) => all.to_vec(),
    }
}

fn main() {
    // Logging as a server runs it (info, every line formatted), written nowhere: its cost is part of the path.
    tracing_subscriber::fmt().with_env_filter("info,actix_server=warn").with_writer(std::io::sink).init();
    let secs: f64 = std::env::var("RSSP_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let (_dir, mut config) = support::embedded_server_config();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        config.security.sad_lifetime_secs = 24 * 3600;
        config.security.access_token_lifetime_secs = 30 * 24 * 3600;
        let clock = Arc::new(ManualClock::default());
        let server = rssp::startup::start(config.clone(), clock.clone()).await.expect("server");
        let url = server.base_url();
        let services = server.services.clone();
        println!(
            "rssp signing benchmark: {} s per measurement, {} HSM sessions, SQLite, debug assertions {}",
            secs,
            config.hsm.sessions,
            cfg!(debug_assertions)
        );
        println!(
            "{:<9} {:>7} {:>5} {:>12} {:>12} {:>7} {:>10} {:>10} {:>9} {:>9}",
            "key", "hashes", "conc", "raw sig/s", "http sig/s", "ratio", "p50", "p99", "raw cpu", "http cpu"
        );
        println!("(cpu: the process's CPU time, server and client together, per raw signature and per request)");

        let kinds = chosen("RSSP_BENCH_KEYS", &[KeyKind::Rsa2048, KeyKind::EcP256]);
        for kind in kinds {
            let sign_algo = if kind.is_rsa() { "1.2.840.113549.1.1.11" } else { "1.2.840.10045.4.3.2" };
            let username = format!("bench-{}", kind.as_str());
            let provisioned = {
                let services = services.clone();
                let signer = NewSigner {
                    username: username.clone(),
                    password: "bench password 2026".into(),
                    key_kind: kind,
                    multisign: 1_000_000,
                    pin: None,
                    quota: None,
                    names: None,
                    country: None,
                };
                tokio::task::spawn_blocking(move || provisioning::provision(&services, signer)).await.unwrap().unwrap()
            };
            let scheme = if kind.is_rsa() {
                SignatureScheme::RsaPkcs1(HashAlgorithm::Sha256)
            } else {
                SignatureScheme::Ecdsa(HashAlgorithm::Sha256)
            };
            let key = {
                let mut conn = services.conn().unwrap();
                let row = rssp::db::credentials::owned_by(&mut conn, &provisioned.user_id, &provisioned.credential_id)
                    .unwrap()
                    .unwrap();
                KeyId::from_hex(&row.key_id).unwrap()
            };
            let client = reqwest::Client::new();
            let login = json_answer(
                client
                    .post(format!("{url}/csc/v1/auth/login"))
                    .basic_auth(&username, Some("bench password 2026"))
                    .json(&json!({})),
            )
            .await;
            let token = login["access_token"].as_str().unwrap().to_string();

            for concurrency in chosen("RSSP_BENCH_CONCURRENCY", &CONCURRENCY) {
                let (raw_rate, raw_cpu) = {
                    let services = services.clone();
                    let key = key.clone();
                    tokio::task::spawn_blocking(move || raw(&services, &key, scheme, concurrency, secs)).await.unwrap()
                };
                for batch in chosen("RSSP_BENCH_HASHES", &BATCHES) {
                    let hashes: Vec<Vec<u8>> = (0..batch).map(digest).collect();
                    let encoded: Vec<String> = hashes.iter().map(|h| b64(h)).collect();
                    // One SAD per request, enough for well above the fastest rates seen here (about
                    // 4,000 requests/s with one hash, 10,000 signatures/s with 100).
                    let ceiling = if batch == 1 { 12_000.0 } else { 40_000.0 / batch as f64 };
                    let count = (secs * ceiling).ceil() as usize + concurrency;
                    let sads = {
                        let services = services.clone();
                        let (user, credential) = (provisioned.user_id.clone(), provisioned.credential_id.clone());
                        tokio::task::spawn_blocking(move || mint_sads(&services, &user, &credential, &hashes, count))
                            .await
                            .unwrap()
                    };
                    let result =
                        http(&url, &token, &provisioned.credential_id, sads, &encoded, sign_algo, concurrency, secs)
                            .await;
                    let failed = if result.failures.is_empty() {
                        String::new()
                    } else {
                        format!(" FAILED: {:?}", result.failures)
                    };
                    println!(
                        "{:<9} {:>7} {:>5} {:>12.0} {:>12.0} {:>6.0}% {:>8.1}ms {:>8.1}ms {:>7}µs {:>7}µs{failed}",
                        kind.as_str(),
                        batch,
                        concurrency,
                        raw_rate,
                        result.per_second,
                        100.0 * result.per_second / raw_rate,
                        result.p50.as_secs_f64() * 1000.0,
                        result.p99.as_secs_f64() * 1000.0,
                        raw_cpu.as_micros(),
                        result.cpu_per_request.as_micros(),
                    );
                }
            }
        }
        server.stop().await;
    });
}

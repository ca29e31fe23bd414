//! A population of signers, as a trust service has them: many people, each signing now and then. One
//! server (SQLite, the embedded SoftHSM token) grows to each size in turn (10, 1,000 and 10,000
//! P-256 credentials by default) and at each size this measures:
//!
//! - provisioning: the time per credential of `provisioning::provision` (Argon2 of the password, TOTP
//!   seed sealed in the HSM, key pair generated, certificate issued, rows written), run on two threads
//!   while the population grows to the size; and the key generation alone (`KeyStore::generate`);
//! - the server's start on that token (as after a restart or on a node that did not create the keys);
//! - (a) the first signHash of a credential after that start, one credential after the other, each
//!   credential for the first time, and (b) the same credentials signing again;
//! - full SCAL2 rounds, one per person: `credentials/authorize` with the person's current TOTP code
//!   and one hash, then `signatures/signHash` with the SAD, at concurrency 1, 16 and 64;
//! - the process's resident memory (server and this client together).
//!
//! Run it with:
//!
//!     cargo bench --bench population
//!     RSSP_BENCH_SIZES=10,1000 RSSP_BENCH_SECS=3 cargo bench --bench population
//!
//! Access tokens and the SADs of (a) and (b) are written into the store directly (an Argon2 login
//! per person would make the population take hours to log in); the SCAL2 rounds use the HTTP API for
//! both of their steps. A measurement, not a test: nothing here asserts a speed.

// A separate crate that inherits [lints]: here a panic is a failed run, and nothing outside uses its
// items, so they need no docs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use rssp::clock::{Clock, ManualClock};
use rssp::domain::{secrets, totp, HashAlgorithm, KeyKind};
use rssp::service::provisioning::{self, NewSigner};
use rssp::service::Services;
use serde_json::{json, Value};

mod support;
use support::{percentile, process_cpu};

const P256: &str = "1.2.840.10045.4.3.2";
const PASSWORD: &str = "bench password 2026";
const ROUND_CONCURRENCY: [usize; 3] = [1, 16, 64];
/// Credentials whose first signature is measured at each size (at most the population).
const FIRST_SIGNATURES: usize = 300;

/// One signer of the population.
#[derive(Clone)]
struct Person {
    user_id: String,
    credential_id: String,
    seed: Vec<u8>,
    access_token: String,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Resident memory of this process, MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Provisions people until there are `size`, on two threads; the time each provisioning took.
fn grow(services: &Services, people: &Mutex<Vec<Person>>, size: usize) -> Vec<Duration> {
    let start = people.lock().unwrap().len();
    let next = AtomicUsize::new(start);
    let times = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= size {
                    break;
                }
                let signer = NewSigner {
                    username: format!("person-{i}"),
                    password: PASSWORD.into(),
                    key_kind: KeyKind::EcP256,
                    multisign: 1000,
                    pin: None,
                    quota: None,
                    names: None,
                    country: None,
                };
                let t = Instant::now();
                let provisioned = provisioning::provision(services, signer).expect("provision");
                times.lock().unwrap().push(t.elapsed());
                let seed = data_encoding::BASE32_NOPAD.decode(provisioned.totp_secret.as_bytes()).expect("base32 seed");
                let access_token = mint_access_token(services, &provisioned.user_id);
                people.lock().unwrap().push(Person {
                    user_id: provisioned.user_id.to_string(),
                    credential_id: provisioned.credential_id.to_string(),
                    seed,
                    access_token,
                });
            });
        }
    });
    times.into_inner().unwrap()
}

/// An access token for the person, written as `auth/login` would after the password.
fn mint_access_token(services: &Services, user_id: &str) -> String {
    use rssp::db::tokens::{self, TokenRow};
    let token = secrets::new_token();
    let mut conn = services.conn().expect("connection");
    tokens::insert(
        &mut conn,
        &TokenRow {
            digest: secrets::token_digest(&token),
            user_id: user_id.to_string(),
            kind: tokens::ACCESS.to_string(),
            refresh_digest: None,
            expires_at: services.now() + 365 * 24 * 3600,
            revoked: false,
            client_id: None,
        },
    )
    .expect("token");
    token
}

/// A SAD for one signature over `hash`, written as `credentials/authorize` would after a code.
fn mint_sad(services: &Services, person: &Person, hash: &[u8]) -> String {
    use rssp::db::sads::{self, SadRow};
    let now = services.now();
    let token = secrets::new_token();
    let mut conn = services.conn().expect("connection");
    sads::insert(
        &mut conn,
        &SadRow {
            digest: secrets::token_digest(&token),
            user_id: person.user_id.clone(),
            credential_id: person.credential_id.clone(),
            hashes: rssp::domain::sad::encode_hashes(&[hash.to_vec()]),
            num_signatures: 1,
            used: 0,
            expires_at: now + 24 * 3600,
            revoked: false,
            chain_expires_at: now + 24 * 3600,
            client_id: None,
        },
    )
    .expect("SAD");
    token
}

/// The JSON answer of a POST; an answer other than 200 is an error naming its status and body.
async fn post(client: &reqwest::Client, url: &str, token: &str, body: Value) -> Result<Value, String> {
    let response = client.post(url).bearer_auth(token).json(&body).send().await.expect("request");
    let status = response.status();
    let answer: Value = response.json().await.expect("JSON answer");
    if status.is_success() {
        Ok(answer)
    } else {
        Err(format!("{status} {} {}", answer["error"], answer["error_description"]))
    }
}

/// What a measurement saw: latencies of the requests (or rounds) that succeeded, sorted, and the
/// failures by answer.
#[derive(Default)]
struct Outcome {
    latencies: Vec<Duration>,
    failures: std::collections::BTreeMap<String, usize>,
    /// The process's CPU time (server and client) over the measurement, where measured.
    cpu: Duration,
}

impl Outcome {
    fn record(&mut self, result: Result<Duration, String>) {
        match result {
            Ok(latency) => self.latencies.push(latency),
            Err(why) => *self.failures.entry(why).or_default() += 1,
        }
    }

    fn merge(&mut self, other: Outcome) {
        self.latencies.extend(other.latencies);
        for (why, n) in other.failures {
            *self.failures.entry(why).or_default() += n;
        }
    }

    fn failed(&self) -> String {
        if self.failures.is_empty() {
            String::new()
        } else {
            format!("; FAILED: {:?}", self.failures)
        }
    }
}

/// signHash for each person in turn, with a SAD minted just before.
async fn sign_each(services: &Services, url: &str, people: &[Person], round: usize) -> Outcome {
    let client = reqwest::Client::new();
    let mut outcome = Outcome::default();
    for (i, person) in people.iter().enumerate() {
        let hash = HashAlgorithm::Sha256.digest(format!("first-{round}-{i}").as_bytes());
        let sad = mint_sad(services, person, &hash);
        let body = json!({"credentialID": person.credential_id, "SAD": sad, "hash": [b64(&hash)], "signAlgo": P256});
        let t = Instant::now();
        let result = post(&client, &format!("{url}/csc/v1/signatures/signHash"), &person.access_token, body).await;
        outcome.record(result.map(|_| t.elapsed()));
    }
    outcome.latencies.sort();
    outcome
}

/// Full SCAL2 rounds by `concurrency` clients for `secs`: each round takes the next person, asks
/// `credentials/authorize` with the person's current code and one hash, and signs it. A code is good once
/// per time step, so each pass over the population moves the clock one step on: a person's next round
/// uses the next step's code. A person whose round of the pass before is still in flight (its code
/// would make that one a replay), or who already had a round of a later pass, is skipped in this pass.
async fn rounds(
    url: &str,
    clock: &Arc<ManualClock>,
    people: &[Person],
    concurrency: usize,
    secs: f64,
) -> (f64, Outcome) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
    let people = Arc::new(people.to_vec());
    // The codes of the step before were used by the measurement before.
    clock.advance(totp::STEP_SECONDS);
    // The time step of each pass begun: one later than the pass before (the server's clock also moves
    // with real time, which may have moved it on already).
    let passes = Arc::new(Mutex::new(vec![totp::step_of(clock.now())]));
    let cursor = Arc::new(AtomicUsize::new(0));
    let in_flight: Arc<Vec<AtomicBool>> = Arc::new(people.iter().map(|_| AtomicBool::new(false)).collect());
    // The latest step each person's code was sent for.
    let last_steps: Arc<Vec<AtomicI64>> = Arc::new(people.iter().map(|_| AtomicI64::new(i64::MIN)).collect());
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let cpu_before = process_cpu();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (client, url, people, cursor) = (client.clone(), url.to_string(), people.clone(), cursor.clone());
        let (clock, passes, in_flight, last_steps) =
            (clock.clone(), passes.clone(), in_flight.clone(), last_steps.clone());
        tasks.push(tokio::spawn(async move {
            let mut outcome = Outcome::default();
            let mut n = 0;
            while Instant::now() < deadline {
                let index = cursor.fetch_add(1, Ordering::SeqCst);
                let (pass, person) = (index / people.len(), &people[index % people.len()]);
                let busy = &in_flight[index % people.len()];
                if busy.swap(true, Ordering::SeqCst) {
                    continue;
                }
                let step = {
                    let mut steps = passes.lock().unwrap();
                    while steps.len() <= pass {
                        let next = (steps[steps.len() - 1] + 1).max(totp::step_of(clock.now()));
                        while totp::step_of(clock.now()) < next {
                            clock.advance(totp::STEP_SECONDS);
                        }
                        steps.push(next);
                    }
                    steps[pass]
                };
                // A round of a later pass may have come and gone for this person while this worker was
                // between taking its index and marking the person busy: this pass's code would be a replay.
                if last_steps[index % people.len()].fetch_max(step, Ordering::SeqCst) >= step {
                    busy.store(false, Ordering::SeqCst);
                    continue;
                }
                let code = totp::code_at_step(&person.seed, step);
                let hash = HashAlgorithm::Sha256.digest(format!("round-{worker}-{n}").as_bytes());
                n += 1;
                let t = Instant::now();
                let authorized = post(
                    &client,
                    &format!("{url}/csc/v1/credentials/authorize"),
                    &person.access_token,
                    json!({"credentialID": person.credential_id, "numSignatures": 1, "hash": [b64(&hash)], "OTP": code}),
                )
                .await;
                let signed = match authorized {
                    Ok(authorized) => {
                        let sad = authorized["SAD"].as_str().expect("SAD").to_string();
                        let body = json!({"credentialID": person.credential_id, "SAD": sad, "hash": [b64(&hash)], "signAlgo": P256});
                        post(&client, &format!("{url}/csc/v1/signatures/signHash"), &person.access_token, body)
                            .await
                            .map_err(|e| format!("signHash {e}"))
                    }
                    Err(e) => Err(format!("authorize {e}")),
                };
                outcome.record(signed.map(|_| t.elapsed()));
                busy.store(false, Ordering::SeqCst);
            }
            outcome
        }));
    }
    let mut outcome = Outcome::default();
    for task in tasks {
        outcome.merge(task.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    outcome.cpu = process_cpu().saturating_sub(cpu_before);
    outcome.latencies.sort();
    (outcome.latencies.len() as f64 / elapsed, outcome)
}

fn main() {
    // Logging as a server runs it (info, every line formatted), written nowhere: its cost is part of the path.
    tracing_subscriber::fmt().with_env_filter("info,actix_server=warn").with_writer(std::io::sink).init();
    let secs: f64 = std::env::var("RSSP_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let sizes: Vec<usize> = std::env::var("RSSP_BENCH_SIZES")
        .unwrap_or_else(|_| "10,1000,10000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("RSSP_BENCH_SIZES: numbers separated by commas"))
        .collect();
    let (_dir, mut config) = support::embedded_server_config();
    config.security.sad_lifetime_secs = 24 * 3600;
    config.security.access_token_lifetime_secs = 365 * 24 * 3600;
    // Concurrency 64 on one node: enough connections that requests wait on the database, not on the pool.
    let clock = Arc::new(ManualClock::default());

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        println!(
            "rssp population benchmark: P-256, SQLite, {} HSM sessions, {} s per round measurement, debug assertions {}",
            config.hsm.sessions,
            secs,
            cfg!(debug_assertions)
        );
        let people = Arc::new(Mutex::new(Vec::<Person>::new()));
        let mut server = rssp::startup::start(config.clone(), clock.clone()).await.expect("server");
        let mut samples = 0;
        for size in sizes {
            // Grow the population to the size.
            let grown = {
                let (services, people) = (server.services.clone(), people.clone());
                tokio::task::spawn_blocking(move || grow(&services, &people, size)).await.unwrap()
            };
            eprintln!("[{size}] provisioned; measuring");
            let mut provision_times = grown.clone();
            provision_times.sort();
            // The key generation alone, 50 times at this size (the keys stay on the token).
            samples += 50;
            let keygen = {
                let services = server.services.clone();
                tokio::task::spawn_blocking(move || {
                    let mut times: Vec<Duration> = (0..50)
                        .map(|i| {
                            let t = Instant::now();
                            services.keystore.generate(KeyKind::EcP256, &format!("sample-{size}-{i}")).unwrap();
                            t.elapsed()
                        })
                        .collect();
                    times.sort();
                    times
                })
                .await
                .unwrap()
            };

            // A start on this token, as after a restart: nothing of the keys is known to the new server.
            server.stop().await;
            let t = Instant::now();
            server = rssp::startup::start(config.clone(), clock.clone()).await.expect("server");
            let start_time = t.elapsed();
            let url = server.base_url();
            let sample: Vec<Person> = {
                let people = people.lock().unwrap();
                // The most recently provisioned first: in the old code they were the slowest to find.
                people.iter().rev().take(FIRST_SIGNATURES).cloned().collect()
            };
            let first = sign_each(&server.services, &url, &sample, 0).await;
            let again = sign_each(&server.services, &url, &sample, 1).await;

            let population: Vec<Person> = people.lock().unwrap().clone();
            eprintln!("[{size}] SCAL2 rounds");
            let mut round_rows = Vec::new();
            for concurrency in ROUND_CONCURRENCY {
                // A person may have one round in flight at a time (a second code of the same person
                // in the next step would make the first one a replay): enough people for the clients.
                if population.len() >= 4 * concurrency {
                    round_rows.push((concurrency, rounds(&url, &clock, &population, concurrency, secs).await));
                }
            }
            let rss = rss_mib();
            println!("\n== {size} credentials (and {samples} more keys from the key-generation samples) ==");
            if !provision_times.is_empty() {
                println!(
                    "provisioning while growing to {size}: {} credentials, p50 {:.1} ms, p99 {:.1} ms per credential (two threads); key generation alone p50 {:.2} ms, p99 {:.2} ms",
                    provision_times.len(),
                    ms(percentile(&provision_times, 0.5)),
                    ms(percentile(&provision_times, 0.99)),
                    ms(percentile(&keygen, 0.5)),
                    ms(percentile(&keygen, 0.99)),
                );
            }
            println!("server start on the token: {:.0} ms", ms(start_time));
            println!(
                "signHash, first for the credential since the start: p50 {:.2} ms, p99 {:.2} ms ({} credentials){}",
                ms(percentile(&first.latencies, 0.5)),
                ms(percentile(&first.latencies, 0.99)),
                first.latencies.len(),
                first.failed()
            );
            println!(
                "signHash, the same credentials again:               p50 {:.2} ms, p99 {:.2} ms{}",
                ms(percentile(&again.latencies, 0.5)),
                ms(percentile(&again.latencies, 0.99)),
                again.failed()
            );
            for (concurrency, (per_second, outcome)) in &round_rows {
                println!(
                    "SCAL2 rounds (authorize + signHash), concurrency {concurrency:>2}: {per_second:>6.0}/s, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} rounds, CPU {:.2} ms per round){}",
                    ms(percentile(&outcome.latencies, 0.5)),
                    ms(percentile(&outcome.latencies, 0.99)),
                    ms(outcome.latencies.last().copied().unwrap_or_default()),
                    outcome.latencies.len(),
                    ms(outcome.cpu) / outcome.latencies.len().max(1) as f64,
                    outcome.failed()
                );
            }
            println!("resident memory: {rss:.0} MiB");
        }
        server.stop().await;
    });
}

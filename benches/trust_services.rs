//! Trust services throughput, in one run: time-stamps through `POST /tsa` and through CSC
//! `signatures/timestamp` against raw HSM signing with the TSA key, and OCSP answers served from the
//! cache (no nonce: one signed response per certificate) and made afresh (a nonce in every request,
//! so every answer is signed), at concurrency 1, 16 and 64.
//!
//!     cargo bench --bench trust_services     (RSSP_BENCH_SECS=3 per measurement by default)
//!
//! `RSSP_BENCH_TSA_KEY=ec-p256` picks the TSA key kind (default: rsa-3072, the server's default);
//! `RSSP_BENCH_CONCURRENCY=16,64` narrows the run. A measurement, not a test: nothing here asserts a speed.

// A separate crate that inherits [lints]: here a panic is a failed test or run, which is what it
// should be, and nothing outside uses its items, so they need no docs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use der::{Decode, Encode};
use rssp::clock::ManualClock;
use rssp::domain::{HashAlgorithm, KeyKind};
use rssp::pki::ocsp::asn1::{CertId, OcspRequest, Request, TbsRequest};
use rssp::pki::tsp::{MessageImprint, TimeStampReq};
use rssp::service::provisioning::{self, NewSigner};
use serde_json::{json, Value};

mod support;
use support::percentile;

const CONCURRENCY: [usize; 3] = [1, 16, 64];

struct Measured {
    /// Answers that did what was asked, per second.
    per_second: f64,
    /// Answers that said "try later" (counted apart, not in `per_second`).
    try_later: usize,
    p50: Duration,
    p99: Duration,
}

/// How an answer is counted.
#[derive(PartialEq)]
enum Verdict {
    Done,
    TryLater,
    Wrong,
}

/// `concurrency` clients sending `request(i)` until the deadline; each answer is judged by `judge`.
async fn load<R, F>(concurrency: usize, secs: f64, request: R, judge: F) -> Measured
where
    R: Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
    F: Fn(u16, &[u8]) -> Verdict + Send + Sync + 'static,
{
    let ok = judge;
    let try_later = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
    let (request, ok) = (Arc::new(request), Arc::new(ok));
    let counter = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, request, ok, counter) = (client.clone(), request.clone(), ok.clone(), counter.clone());
        let try_later = try_later.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let response = request(&client, i).send().await.expect("request");
                let status = response.status().as_u16();
                let body = response.bytes().await.expect("body");
                match ok(status, &body) {
                    Verdict::Done => latencies.push(t.elapsed()),
                    Verdict::TryLater => _ = try_later.fetch_add(1, Ordering::Relaxed),
                    Verdict::Wrong => panic!("unexpected answer: {status} {}", String::from_utf8_lossy(&body)),
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    Measured {
        per_second: latencies.len() as f64 / elapsed,
        try_later: try_later.load(Ordering::Relaxed),
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
    }
}

/// Raw: `concurrency` threads signing a SHA-256 digest with the TSA key until the deadline.
fn raw(services: &rssp::service::Services, concurrency: usize, secs: f64) -> f64 {
    let unit = &services.tsa.unit;
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let total: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..concurrency)
            .map(|t| {
                scope.spawn(move || {
                    let mut done = 0;
                    let digest = unit.scheme().hash().digest(format!("raw-{t}").as_bytes());
                    while Instant::now() < deadline {
                        services
                            .ca_keys()
                            .sign_digests(&unit.key, unit.scheme(), std::slice::from_ref(&digest))
                            .expect("raw sign");
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    total as f64 / start.elapsed().as_secs_f64()
}

fn sha256_imprint(i: usize) -> MessageImprint {
    MessageImprint {
        hash_algorithm: spki::AlgorithmIdentifierOwned {
            oid: der::asn1::ObjectIdentifier::new_unwrap(HashAlgorithm::Sha256.oid()),
            parameters: None,
        },
        hashed_message: der::asn1::OctetString::new(HashAlgorithm::Sha256.digest(&i.to_be_bytes())).unwrap(),
    }
}

/// An RFC 3161 request for hash `i`, with a nonce and certReq, as signing tools send them.
fn tsa_query(i: usize) -> Vec<u8> {
    TimeStampReq {
        version: 1,
        message_imprint: sha256_imprint(i),
        req_policy: None,
        nonce: rssp::pki::tsa::nonce_from_hex(&format!("{:x}", i + 1)),
        cert_req: true,
        extensions: None,
    }
    .to_der()
    .unwrap()
}

/// An OCSP request about `certificate` (issued by `issuer`), with a 16-byte nonce `nonce` when given.
fn ocsp_query(certificate: &[u8], issuer: &[u8], nonce: Option<usize>) -> Vec<u8> {
    use sha1::Digest;
    let certificate = x509_cert::Certificate::from_der(certificate).unwrap();
    let issuer = x509_cert::Certificate::from_der(issuer).unwrap();
    let issuer = issuer.tbs_certificate();
    let cert_id = CertId {
        hash_algorithm: spki::AlgorithmIdentifierOwned {
            oid: der::asn1::ObjectIdentifier::new_unwrap("1.3.14.3.2.26"),
            parameters: Some(der::asn1::Null.into()),
        },
        issuer_name_hash: der::asn1::OctetString::new(sha1::Sha1::digest(issuer.subject().to_der().unwrap()).to_vec())
            .unwrap(),
        issuer_key_hash: der::asn1::OctetString::new(
            sha1::Sha1::digest(issuer.subject_public_key_info().subject_public_key.raw_bytes()).to_vec(),
        )
        .unwrap(),
        serial_number: certificate.tbs_certificate().serial_number().clone(),
    };
    let request_extensions = nonce.map(|n| {
        let mut value = [0u8; 16];
        value[..8].copy_from_slice(&(n as u64).to_be_bytes());
        vec![x509_cert::ext::Extension {
            extn_id: rssp::pki::ocsp::asn1::oid::NONCE,
            critical: false,
            extn_value: der::asn1::OctetString::new(der::asn1::OctetString::new(value).unwrap().to_der().unwrap())
                .unwrap(),
        }]
    });
    OcspRequest {
        tbs_request: TbsRequest {
            version: 0,
            requestor_name: None,
            request_list: vec![Request { req_cert: cert_id, single_request_extensions: None }],
            request_extensions,
        },
        optional_signature: None,
    }
    .to_der()
    .unwrap()
}

fn verdict(done: bool) -> Verdict {
    if done {
        Verdict::Done
    } else {
        Verdict::Wrong
    }
}

/// A granted TimeStampResp.
fn granted(status: u16, body: &[u8]) -> Verdict {
    verdict(status == 200 && rssp::pki::tsp::TimeStampResp::from_der(body).is_ok_and(|r| r.time_stamp_token.is_some()))
}

/// A successful OCSPResponse; tryLater counted apart.
fn ocsp_answer(status: u16, body: &[u8]) -> Verdict {
    use rssp::pki::ocsp::asn1::{OcspResponse, OcspResponseStatus};
    match OcspResponse::from_der(body).map(|r| r.response_status) {
        Ok(OcspResponseStatus::Successful) if status == 200 => Verdict::Done,
        Ok(OcspResponseStatus::TryLater) => Verdict::TryLater,
        _ => Verdict::Wrong,
    }
}

fn chosen_concurrency() -> Vec<usize> {
    match std::env::var("RSSP_BENCH_CONCURRENCY") {
        Ok(list) => list.split(',').filter_map(|c| c.trim().parse().ok()).collect(),
        Err(_) => CONCURRENCY.to_vec(),
    }
}

fn row(what: &str, concurrency: usize, raw: Option<f64>, measured: &Measured) {
    let (raw_text, ratio) = match raw {
        Some(raw) => (format!("{raw:.0}"), format!("{:.0}%", 100.0 * measured.per_second / raw)),
        None => ("-".into(), "-".into()),
    };
    println!(
        "{:<22} {:>5} {:>10} {:>10.0} {:>7} {:>8.1}ms {:>8.1}ms {:>10}",
        what,
        concurrency,
        raw_text,
        measured.per_second,
        ratio,
        measured.p50.as_secs_f64() * 1000.0,
        measured.p99.as_secs_f64() * 1000.0,
        measured.try_later
    );
}

fn main() {
    // Logging as a server runs it, written nowhere: its cost is part of the path.
    tracing_subscriber::fmt().with_env_filter("info,actix_server=warn").with_writer(std::io::sink).init();
    let secs: f64 = std::env::var("RSSP_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let (_dir, mut config) = support::embedded_server_config();
    if let Ok(kind) = std::env::var("RSSP_BENCH_TSA_KEY") {
        config.tsa.key_kind = kind;
    }
    config.security.access_token_lifetime_secs = 30 * 24 * 3600;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let clock = Arc::new(ManualClock::default());
        let server = rssp::startup::start(config.clone(), clock).await.expect("server");
        let url = server.base_url();
        let services = server.services.clone();
        println!(
            "rssp trust services benchmark: {} s per measurement, TSA key {}, {} HSM sessions, SQLite, debug assertions {}",
            secs,
            services.tsa.unit.kind,
            config.hsm.sessions,
            cfg!(debug_assertions)
        );
        println!(
            "{:<22} {:>5} {:>10} {:>10} {:>7} {:>10} {:>10} {:>10}",
            "what", "conc", "raw sig/s", "answers/s", "ratio", "p50", "p99", "tryLater"
        );

        // A person with an unlimited package, for signatures/timestamp, whose certificate OCSP is asked about.
        let provisioned = {
            let services = services.clone();
            let signer = NewSigner {
                username: "bench-stamps".into(),
                password: "bench password 2026".into(),
                key_kind: KeyKind::EcP256,
                multisign: 1,
                pin: None,
                quota: None,
                names: None,
                country: None,
            };
            tokio::task::spawn_blocking(move || provisioning::provision(&services, signer)).await.unwrap().unwrap()
        };
        let client = reqwest::Client::new();
        let login: Value = client
            .post(format!("{url}/csc/v1/auth/login"))
            .basic_auth("bench-stamps", Some("bench password 2026"))
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["access_token"].as_str().unwrap().to_string();
        let certificate = {
            let mut conn = services.conn().unwrap();
            rssp::db::credentials::by_id(&mut conn, &provisioned.credential_id).unwrap().unwrap().certificate
        };
        let issuing = services.ca.issuing.certificate_der.clone();

        for concurrency in chosen_concurrency() {
            let raw_rate = {
                let services = services.clone();
                tokio::task::spawn_blocking(move || raw(&services, concurrency, secs)).await.unwrap()
            };
            let tsa_url = format!("{url}/tsa");
            let measured = load(
                concurrency,
                secs,
                move |client, i| {
                    client.post(&tsa_url).header("content-type", "application/timestamp-query").body(tsa_query(i))
                },
                granted,
            )
            .await;
            row("POST /tsa", concurrency, Some(raw_rate), &measured);

            let (csc_url, bearer) = (format!("{url}/csc/v1/signatures/timestamp"), token.clone());
            let measured = load(
                concurrency,
                secs,
                move |client, i| {
                    let hash = base64::engine::general_purpose::STANDARD.encode(HashAlgorithm::Sha256.digest(&i.to_be_bytes()));
                    client.post(&csc_url).bearer_auth(&bearer).json(&json!({
                        "hash": hash, "hashAlgo": HashAlgorithm::Sha256.oid(), "nonce": format!("{i:x}")
                    }))
                },
                |status, body| {
                    verdict(status == 200 && serde_json::from_slice::<Value>(body).is_ok_and(|v| v["timestamp"].is_string()))
                },
            )
            .await;
            row("signatures/timestamp", concurrency, Some(raw_rate), &measured);

            let ocsp_url = format!("{url}/ocsp");
            let cached = ocsp_query(&certificate, &issuing, None);
            let (u, c) = (ocsp_url.clone(), cached.clone());
            let measured = load(
                concurrency,
                secs,
                move |client, _| client.post(&u).header("content-type", "application/ocsp-request").body(c.clone()),
                ocsp_answer,
            )
            .await;
            row("OCSP cached", concurrency, None, &measured);

            let (u, cert, iss) = (ocsp_url.clone(), certificate.clone(), issuing.clone());
            let measured = load(
                concurrency,
                secs,
                move |client, i| {
                    client
                        .post(&u)
                        .header("content-type", "application/ocsp-request")
                        .body(ocsp_query(&cert, &iss, Some(i)))
                },
                // Past hsm.sessions responses in the making the responder answers tryLater: counted apart.
                ocsp_answer,
            )
            .await;
            row("OCSP fresh (nonce)", concurrency, None, &measured);
        }
        server.stop().await;
    });
}

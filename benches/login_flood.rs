//! A flood of bad logins against a signer's everyday requests: waves of 64 parallel CSC `auth/login`
//! with wrong passwords (for one real user, who gets locked out, and for unknown names), while one
//! client keeps calling `credentials/list` with a valid token. Prints the latency of the valid
//! requests (p50, p99, max) and how the bad logins were answered (status counts).
//!
//!     cargo bench --bench login_flood          (RSSP_BENCH_SECS=10 by default)
//!
//! A measurement, not a test: nothing here asserts a speed.

// A separate crate that inherits [lints]: here a panic is a failed test or run, which is what it
// should be, and nothing outside uses its items, so they need no docs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rssp::clock::ManualClock;
use rssp::domain::KeyKind;
use rssp::service::provisioning::{self, NewSigner};
use serde_json::{json, Value};

const FLOOD: usize = 64;

mod support;
use support::percentile;

fn main() {
    // The server's warnings and errors (a 500 or a pool timeout would show here).
    tracing_subscriber::fmt().with_env_filter("warn").with_writer(std::io::stderr).init();
    let secs: f64 = std::env::var("RSSP_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let (_dir, config) = support::embedded_server_config();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let clock = Arc::new(ManualClock::default());
        let server = rssp::startup::start(config.clone(), clock).await.expect("server");
        let url = server.base_url();
        let services = server.services.clone();
        let signer = tokio::task::spawn_blocking(move || {
            provisioning::provision(
                &services,
                NewSigner {
                    username: "victim".into(),
                    password: "the right password 1".into(),
                    key_kind: KeyKind::EcP256,
                    multisign: 1,
                    pin: None,
                    quota: None,
                    names: None,
                    country: None,
                },
            )
        })
        .await
        .unwrap()
        .unwrap();
        let client = reqwest::Client::new();
        let login: Value = client
            .post(format!("{url}/csc/v1/auth/login"))
            .basic_auth(&signer.username, Some("the right password 1"))
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["access_token"].as_str().expect("token").to_string();
        println!(
            "rssp login-flood benchmark: {secs} s, waves of {FLOOD} bad logins, {} HSM sessions, SQLite, debug assertions {}",
            config.hsm.sessions,
            cfg!(debug_assertions)
        );

        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let flood = {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut answers: BTreeMap<u16, usize> = BTreeMap::new();
                let mut wave = 0;
                while Instant::now() < deadline {
                    let requests = (0..FLOOD).map(|i| {
                        let username = if i % 4 == 0 { "victim".to_string() } else { format!("nobody-{wave}-{i}") };
                        let (client, url) = (client.clone(), url.clone());
                        async move {
                            client
                                .post(format!("{url}/csc/v1/auth/login"))
                                .basic_auth(username, Some("a wrong guess"))
                                .json(&json!({}))
                                .send()
                                .await
                                .map(|r| r.status().as_u16())
                                .unwrap_or(0)
                        }
                    });
                    for status in futures::future::join_all(requests).await {
                        *answers.entry(status).or_default() += 1;
                    }
                    wave += 1;
                }
                (wave, answers)
            })
        };
        let mut latencies = Vec::new();
        let mut failures = 0;
        while Instant::now() < deadline {
            let t = Instant::now();
            let response = client
                .post(format!("{url}/csc/v1/credentials/list"))
                .bearer_auth(&token)
                .json(&json!({}))
                .send()
                .await
                .expect("request");
            if !response.status().is_success() {
                failures += 1;
            }
            latencies.push(t.elapsed());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (waves, answers) = flood.await.unwrap();
        latencies.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "credentials/list during the flood: {} requests, {} not 200, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            latencies.len(),
            failures,
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            ms(latencies.last().copied().unwrap_or_default())
        );
        println!("bad logins: {waves} waves of {FLOOD}; answers by HTTP status: {answers:?}");
        server.stop().await;
    });
}

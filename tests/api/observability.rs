//! What an operator watches: the log settings of every command, JSON log lines carrying the request id,
//! the request id in the response header and the audit trail, the health and readiness probes (the
//! database going away on PostgreSQL), and the Prometheus metrics.

use crate::common::binary::{rssp_command, serve};
use crate::common::*;
// rssp counts its metrics per process, and these tests read them: their servers run alone.
use crate::common::alone::TestServer;
use rssp::domain::KeyKind;
use serde_json::{json, Value};

/// The binary on a fresh data directory, with no RSSP_* setting of the caller's environment.
#[test]
fn log_settings_work_for_every_command_and_bad_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = rssp_command(dir.path()).args(["pki", "root-cert"]).env("RSSP_LOG", "debug").output().unwrap();
    assert!(out.status.success(), "RSSP_LOG=debug: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(!out.stderr.is_empty(), "debug logging writes to standard error");

    let out = rssp_command(dir.path())
        .args(["pki", "root-cert"])
        .env("RSSP_LOG", "rssp=debug,info")
        .env("RSSP_LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert!(out.status.success(), "json: {}", String::from_utf8_lossy(&out.stderr));
    for line in String::from_utf8_lossy(&out.stderr).lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
    }

    let out = rssp_command(dir.path()).args(["pki", "root-cert"]).env("RSSP_LOG_FORMAT", "xml").output().unwrap();
    assert!(!out.status.success(), "an unknown format stops the command");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RSSP_LOG_FORMAT") && err.contains("json") && err.contains("text"), "{err}");
    assert!(out.stdout.is_empty(), "nothing was done");

    let out = rssp_command(dir.path()).args(["pki", "root-cert"]).env("RSSP_LOG", "rssp=loud").output().unwrap();
    assert!(!out.status.success(), "a malformed filter stops the command");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RSSP_LOG"), "{err}");
}

/// Starts `rssp serve` with JSON logs on port 0; returns the child and its base URL.
fn serve_json(dir: &std::path::Path) -> (std::process::Child, String) {
    let mut command = rssp_command(dir);
    command.env("RSSP_LOG_FORMAT", "json");
    serve(command)
}

/// The request ids of a JSON log line's spans.
fn request_ids(line: &Value) -> Vec<String> {
    line["spans"]
        .as_array()
        .map(|spans| spans.iter().filter_map(|s| s["request_id"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

#[test]
fn json_log_lines_carry_the_request_id_and_odd_ids_are_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = serve_json(dir.path());
    let http = reqwest::blocking::Client::new();

    let response = http.get(format!("{url}/healthz")).header("x-request-id", "obs-test-42").send().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "obs-test-42", "a sane id is kept");

    // A refusal (no credentials) and a 404 carry the id too.
    let response = http
        .post(format!("{url}/csc/v2/auth/login"))
        .header("x-request-id", "obs-login-7")
        .json(&json!({}))
        .send()
        .unwrap();
    assert!(response.status().is_client_error());
    assert_eq!(response.headers()["x-request-id"], "obs-login-7");
    let response = http.get(format!("{url}/no/such/path")).header("x-request-id", "obs-404").send().unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["x-request-id"], "obs-404");

    // Ids that are too long or hold other characters are replaced by a new UUID; none gets a missing id.
    let mut made = Vec::new();
    for odd in [Some("bad id!".to_string()), Some("a".repeat(65)), Some("x<script>".into()), None] {
        let mut request = http.get(format!("{url}/healthz"));
        if let Some(odd) = &odd {
            request = request.header("x-request-id", odd);
        }
        let response = request.send().unwrap();
        let id = response.headers()["x-request-id"].to_str().unwrap().to_string();
        assert_ne!(Some(&id), odd.as_ref());
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "a UUID: {id}");
        made.push(id);
    }
    made.sort();
    made.dedup();
    assert_eq!(made.len(), 4, "each request gets its own id");

    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    // Nothing here is an error: in particular the start's mechanism check asks only for what rssp uses
    // (reading SoftHSM's whole list logged an error per vendor mechanism type at every start).
    let errors: Vec<&Value> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    assert!(errors.is_empty(), "error lines: {errors:?}");
    let summary = lines
        .iter()
        .find(|l| l["fields"]["message"] == "rssp started")
        .unwrap_or_else(|| panic!("a start-up summary: {log}"));
    for field in ["mode", "data_dir", "database", "hsm_module", "hsm_token", "ca_subject", "public_url", "listen"] {
        assert!(summary["fields"][field].is_string(), "summary has {field}: {summary}");
    }
    assert_eq!(summary["fields"]["database"], "sqlite");
    assert_eq!(format!("http://{}", summary["fields"]["listen"].as_str().unwrap()), url, "the bound address");

    let tagged: Vec<&Value> = lines.iter().filter(|l| request_ids(l).contains(&"obs-test-42".to_string())).collect();
    assert!(
        tagged.iter().any(|l| l["target"] == "rssp::access" && l["fields"]["status"] == 200),
        "the access line carries the id and the status: {log}"
    );
    let login: Vec<&Value> = lines.iter().filter(|l| request_ids(l).contains(&"obs-login-7".to_string())).collect();
    assert!(!login.is_empty(), "{log}");
    assert!(!log.contains("bad id!") && !log.contains("<script>"), "odd ids never reach the log");
}

#[tokio::test]
async fn request_ids_are_stored_with_the_audit_records_they_write() {
    let server = TestServer::start().await;
    let signer = server.provision("audited", KeyKind::Rsa2048, 5, None).await;
    let login = |id: &'static str, password: &'static str| {
        server
            .http
            .post(format!("{}/csc/v1/auth/login", server.url))
            .header("x-request-id", id)
            .basic_auth(&signer.username, Some(password))
            .json(&json!({}))
            .send()
    };
    let response = login("audit-login-ok", PASSWORD).await.unwrap();
    assert_eq!(response.status(), 200);
    let response = login("audit-login-bad", "wrong password here").await.unwrap();
    assert!(response.status().is_client_error());
    assert_eq!(response.headers()["x-request-id"], "audit-login-bad");

    let key = server.dev_secrets().operator_key;
    let (status, audit) = server.get("/api/admin/v1/audit", Some(&key)).await;
    assert_eq!(status, 200, "{audit}");
    let records = audit["records"].as_array().unwrap();
    let with_id = |id: &str| records.iter().filter(|r| r["request_id"] == id).cloned().collect::<Vec<_>>();
    let ok = with_id("audit-login-ok");
    assert_eq!(ok.len(), 1, "{audit}");
    assert_eq!((ok[0]["event"].as_str(), ok[0]["outcome"].as_str()), (Some("auth.login"), Some("success")));
    let bad = with_id("audit-login-bad");
    assert_eq!(bad.len(), 1, "{audit}");
    assert_eq!((bad[0]["event"].as_str(), bad[0]["outcome"].as_str()), (Some("auth.login"), Some("refused")));
    // Records not written by a request (provisioning here) have none.
    assert!(records.iter().any(|r| r["request_id"].is_null()), "{audit}");

    // The chain of records with and without ids verifies, and an id is covered by its record's hash.
    let services = server.server.as_ref().unwrap().services.clone();
    let report = tokio::task::spawn_blocking(move || {
        let mut conn = services.conn().unwrap();
        let intact = rssp::audit::verify(&mut conn).unwrap();
        use diesel::RunQueryDsl;
        diesel::sql_query("UPDATE audit_log SET request_id = 'forged' WHERE request_id = 'audit-login-ok'")
            .execute(&mut *conn)
            .unwrap();
        (intact, rssp::audit::verify(&mut conn).unwrap())
    })
    .await
    .unwrap();
    assert!(matches!(report.0, rssp::audit::ChainReport::Intact { .. }), "{:?}", report.0);
    assert!(matches!(report.1, rssp::audit::ChainReport::Broken { .. }), "a changed id breaks the chain");
}

#[tokio::test]
async fn health_and_readiness_answer_without_authentication() {
    let server = TestServer::start().await;
    let (status, body) = server.get("/healthz", None).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let (status, body) = server.get("/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"status": "ready", "checks": {"database": "ok", "hsm": "ok", "ca": "ok"}}));
    // The probes are documented.
    let (_, doc) = server.get("/openapi.json", None).await;
    assert!(doc["paths"]["/healthz"]["get"].is_object() && doc["paths"]["/readyz"]["get"].is_object());
}

#[tokio::test]
async fn readiness_follows_the_database_on_postgresql() {
    let Ok(base) = std::env::var("RSSP_TEST_POSTGRES_URL") else {
        eprintln!("skipped: RSSP_TEST_POSTGRES_URL is not set");
        return;
    };
    if base.is_empty() {
        eprintln!("skipped: RSSP_TEST_POSTGRES_URL is empty");
        return;
    }
    let server = TestServer::start().await;
    let db_url = server.services().config.database_url();
    let name = db_url.rsplit('/').next().unwrap().to_string();
    assert!(name.starts_with("rssp_test_"), "a database of this test: {name}");
    let admin = |sql: String| {
        let base = base.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                use diesel::{Connection, RunQueryDsl};
                let mut conn = diesel::PgConnection::establish(&base).unwrap();
                diesel::sql_query(sql).execute(&mut conn).unwrap();
            })
            .await
            .unwrap()
        }
    };
    let (status, _) = server.get("/readyz", None).await;
    assert_eq!(status, 200);

    admin(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).await;
    admin(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    ))
    .await;
    // A readiness result is reused for a second, so the change shows within about that.
    let started = std::time::Instant::now();
    let (status, text) = loop {
        let response = server.http.get(format!("{}/readyz", server.url)).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        if status != 200 || started.elapsed() > std::time::Duration::from_secs(10) {
            break (status, text);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "answered quickly: {:?}", started.elapsed());
    assert_eq!(status, 503, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["database"], "unreachable");
    assert_eq!(body["checks"]["hsm"], "ok");
    assert_eq!(body["checks"]["ca"], "ok");
    let data_dir = server.data_dir().display().to_string();
    for secret in [name.as_str(), "postgres", "127.0.0.1", "5432", "password", "connection", data_dir.as_str()] {
        assert!(!text.contains(secret), "{secret:?} leaked in {text}");
    }
    // Liveness does not depend on the database.
    assert_eq!(server.get("/healthz", None).await.0, 200);

    admin(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await;
    let mut status = 0;
    for _ in 0..20 {
        status = server.get("/readyz", None).await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(status, 200, "ready again once the database is back");
}

/// One sample of the text format: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// Parses the Prometheus text format: every sample line is `name{labels} value`. Returns the samples as
/// (name, labels, value).
fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or_else(|| panic!("no value: {line}"));
        let name = &line[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .enumerate()
                    .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())),
            "metric name {name:?} in {line}"
        );
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(after) = rest.strip_prefix('{') {
            let close = outside_quotes(after, '}').next().unwrap_or_else(|| panic!("unclosed labels: {line}"));
            let labels_text = &after[..close];
            let mut start = 0;
            for end in outside_quotes(labels_text, ',').chain([labels_text.len()]) {
                let pair = &labels_text[start..end];
                start = end + 1;
                if pair.is_empty() {
                    continue;
                }
                let (key, value) = pair.split_once('=').unwrap_or_else(|| panic!("label {pair:?} in {line}"));
                assert!(value.len() >= 2 && value.starts_with('"') && value.ends_with('"'), "quoted: {line}");
                labels.push((key.to_string(), value[1..value.len() - 1].to_string()));
            }
            rest = &after[close + 1..];
        }
        let value = rest.strip_prefix(' ').unwrap_or_else(|| panic!("one space before the value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value {v:?} in {line}")),
        };
        samples.push((name.to_string(), labels, value));
    }
    samples
}

/// Where `wanted` occurs in `text` outside double-quoted label values (which may hold any character, a
/// route template's `{id}` for one, and escape `"` and `\\` with a backslash).
fn outside_quotes(text: &str, wanted: char) -> impl Iterator<Item = usize> + '_ {
    let (mut quoted, mut escaped) = (false, false);
    text.char_indices().filter_map(move |(i, c)| {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == wanted && !quoted => return Some(i),
            _ => {}
        }
        None
    })
}

fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v)))
        .map(|(_, _, v)| v)
        .sum()
}

async fn scrape(http: &reqwest::Client, url: &str) -> Vec<Sample> {
    let response = http.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    parse_metrics(&response.text().await.unwrap())
}

#[tokio::test]
async fn metrics_parse_and_count_a_signature() {
    let server = TestServer::start().await;
    let signer = server.provision("metered", KeyKind::Rsa2048, 1, None).await;
    let token = server.login("v1", &signer).await;
    let signature = [("algorithm", "rsa_pkcs1_sha256"), ("dialect", "csc_v1")];
    let before = scrape(&server.http, &server.url).await;

    let hashes = digests(1, "metrics");
    let otp = server.next_otp(&signer);
    let authorize =
        json!({"credentialID": signer.credential_id, "numSignatures": 1, "hash": b64_all(&hashes), "OTP": otp});
    let (status, body) = server.post("/csc/v1/credentials/authorize", Some(&token), authorize.clone()).await;
    assert_eq!(status, 200, "{body}");
    let sad = body["SAD"].as_str().unwrap().to_string();
    // The same code again is a replay: refused and counted.
    let (status, _) = server.post("/csc/v1/credentials/authorize", Some(&token), authorize).await;
    assert_eq!(status, 400);
    let (status, body) = server.sign_v1(&token, &signer.credential_id, &sad, &hashes, "1.2.840.113549.1.1.11").await;
    assert_eq!(status, 200, "{body}");
    // The SAD is spent: a second signHash is refused for it.
    let (status, _) = server.sign_v1(&token, &signer.credential_id, &sad, &hashes, "1.2.840.113549.1.1.11").await;
    assert_eq!(status, 400);

    let after = scrape(&server.http, &server.url).await;
    assert_eq!(
        sample(&after, "rssp_signatures_total", &signature) - sample(&before, "rssp_signatures_total", &signature),
        1.0,
        "one signature counted"
    );
    let sad_refusals = sample(&after, "rssp_sad_refusals_total", &[]) - sample(&before, "rssp_sad_refusals_total", &[]);
    assert_eq!(sad_refusals, 1.0, "one SAD refusal counted");
    let replayed = [("reason", "replayed")];
    assert_eq!(
        sample(&after, "rssp_otp_refusals_total", &replayed) - sample(&before, "rssp_otp_refusals_total", &replayed),
        1.0,
        "one replayed code counted"
    );
    let route = [("route", "/csc/v1/signatures/signHash"), ("status", "200")];
    assert!(sample(&after, "rssp_http_requests_total", &route) >= 1.0);
    assert!(
        sample(&after, "rssp_http_request_duration_seconds_count", &[("route", "/csc/v1/signatures/signHash")]) >= 2.0
    );
    // Route templates label the requests, never raw paths, and no credential id appears anywhere.
    for (name, labels, _) in &after {
        for (_, value) in labels {
            assert!(!value.contains(&signer.credential_id), "{name} {value}");
        }
    }
    for gauge in ["rssp_hsm_sessions_in_use", "rssp_outbox_backlog", "rssp_db_pool_connections"] {
        assert!(after.iter().any(|(n, _, _)| n == gauge), "{gauge} is exported");
    }
    assert!(sample(&after, "rssp_certificates_issued_total", &[]) >= 1.0, "the provisioned certificate");
}

#[tokio::test]
async fn metrics_can_listen_apart_from_the_public_listener() {
    let server = TestServer::start_with(|c| c.metrics_listen = Some("127.0.0.1:0".into())).await;
    let metrics_addr = server.server.as_ref().unwrap().metrics_addr.expect("a metrics listener");
    let (status, _) = server.get("/metrics", None).await;
    assert_eq!(status, 404, "not on the public listener");
    let samples = scrape(&server.http, &format!("http://{metrics_addr}")).await;
    assert!(samples.iter().any(|(n, _, _)| n == "rssp_http_requests_total"));
    // Only /metrics there.
    let response = server.http.get(format!("http://{metrics_addr}/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn production_mode_serves_no_metrics_on_the_public_listener() {
    let server = TestServer::start_with(|c| {
        c.mode = rssp::config::Mode::Production;
        c.notify.smtp_url = Some("smtp://127.0.0.1:1".into());
        c.notify.sms_gateway_url = Some("http://127.0.0.1:1/sms".into());
        c.payments.webhook_secret = Some("payment secret of the test".into());
        c.identity.webhook_secret = Some("identity secret of the test".into());
    })
    .await;
    let (status, _) = server.get("/metrics", None).await;
    assert_eq!(status, 404, "signature and refusal counts are not public in production");
    let (status, _) = server.post("/metrics", None, json!({})).await;
    assert_eq!(status, 404, "not 405: nothing here says /metrics exists");
    let (status, _) = server.get("/healthz", None).await;
    assert_eq!(status, 200);
}

//! HTTP at the edges, against the real server: requests without credentials (401 with a challenge,
//! checked before the body), body limits (413), deep JSON, methods a path does not take (405),
//! multi-byte input, `/docs`, idle keep-alive connections, and a graceful stop on SIGTERM.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::journey::Person;
use crate::common::{assert_error, b64, TestServer};
use rssp::domain::KeyKind;
use serde_json::{json, Value};

/// Every route that needs credentials, with a body it would otherwise take.
const AUTHENTICATED: &[(&str, &str)] = &[
    ("POST", "/csc/v1/auth/revoke"),
    ("POST", "/csc/v1/credentials/list"),
    ("POST", "/csc/v1/credentials/info"),
    ("POST", "/csc/v1/credentials/authorize"),
    ("POST", "/csc/v1/credentials/extendTransaction"),
    ("POST", "/csc/v1/signatures/signHash"),
    ("POST", "/csc/v1/signatures/timestamp"),
    ("POST", "/csc/v2/auth/revoke"),
    ("POST", "/csc/v2/credentials/list"),
    ("POST", "/csc/v2/credentials/info"),
    ("POST", "/csc/v2/credentials/authorize"),
    ("POST", "/csc/v2/credentials/extendTransaction"),
    ("POST", "/csc/v2/signatures/signHash"),
    ("POST", "/csc/v2/signatures/timestamp"),
    ("GET", "/api/v1/me"),
    ("POST", "/api/v1/consents"),
    ("POST", "/api/v1/me/password"),
    ("POST", "/api/v1/orders"),
    ("PUT", "/api/v1/orders/x/invoice"),
    ("POST", "/api/v1/orders/x/identity-document"),
    ("POST", "/api/v1/credentials"),
    ("POST", "/api/v1/credentials/x/revoke"),
    ("GET", "/api/admin/v1/users"),
    ("GET", "/api/admin/v1/outbox?after=not-a-number"),
    ("POST", "/api/admin/v1/identity-checks/x/decision"),
];

async fn send(
    server: &TestServer,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<Vec<u8>>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = server.http.request(method, format!("{}{path}", server.url));
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null);
    (status, headers, body)
}

fn challenge(headers: &reqwest::header::HeaderMap) -> String {
    headers.get("www-authenticate").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

#[tokio::test]
async fn no_credentials_is_401_with_a_challenge_before_the_body_is_read() {
    let server = TestServer::start().await;
    for (method, path) in AUTHENTICATED {
        for body in [None, Some(b"{not json".to_vec()), Some(vec![b'['; 100_000])] {
            let what = format!("{method} {path} body {:?}", body.as_ref().map(|b| b.len()));
            let (status, headers, answer) = send(&server, method, path, None, body).await;
            assert_eq!(status, 401, "{what}: {answer}");
            assert_eq!(challenge(&headers), "Bearer realm=\"rssp\"", "{what}");
            assert!(answer["error"].is_string() && answer["error_description"].is_string(), "{what}: {answer}");
        }
        // A token that is not valid is 401 too, still before the body, and the challenge says why.
        let (status, headers, answer) =
            send(&server, method, path, Some("Bearer not-a-token"), Some(b"{not json".to_vec())).await;
        assert_error(status, &answer, 401, "invalid_token", "");
        assert_eq!(challenge(&headers), "Bearer realm=\"rssp\", error=\"invalid_token\"", "{method} {path}");
    }
    // A body over the limit from an anonymous caller is not read: 401, not 413.
    let (status, _, _) =
        send(&server, "POST", "/csc/v1/signatures/signHash", None, Some(vec![b' '; 2 * 1024 * 1024])).await;
    assert_eq!(status, 401);

    // A CSC header that is not `Bearer <token>` is 400, as the CSC method tables say.
    for auth in ["Basic YTpi", "Bearer", "Token abc"] {
        let (status, _, answer) =
            send(&server, "POST", "/csc/v1/credentials/list", Some(auth), Some(b"{}".to_vec())).await;
        assert_error(status, &answer, 400, "invalid_request", "Malformed authorization header");
    }
    // The lifecycle API answers any unusable header with 401 and a challenge.
    let (status, headers, answer) = send(&server, "GET", "/api/v1/me", Some("Basic YTpi"), None).await;
    assert_error(status, &answer, 401, "invalid_token", "bearer token is required");
    assert_eq!(challenge(&headers), "Bearer realm=\"rssp\"");

    // auth/login takes Basic: no credentials at all is 401 with the Basic challenge, in both dialects.
    for version in ["v1", "v2"] {
        let path = format!("/csc/{version}/auth/login");
        let (status, headers, answer) = send(&server, "POST", &path, None, Some(b"{}".to_vec())).await;
        assert_error(status, &answer, 401, "invalid_request", "Malformed authentication parameter");
        assert_eq!(challenge(&headers), "Basic realm=\"rssp\", charset=\"UTF-8\"");
        let (status, headers, answer) = send(&server, "POST", &path, Some("Bearer x"), Some(b"{}".to_vec())).await;
        assert_error(status, &answer, 401, "invalid_request", "Malformed authentication parameter");
        assert!(challenge(&headers).starts_with("Basic "));
        // An unknown refresh token is a bad parameter (CSC: 400), not missing credentials.
        let (status, _, answer) =
            send(&server, "POST", &path, None, Some(br#"{"refresh_token":"stale"}"#.to_vec())).await;
        assert_error(status, &answer, 400, "invalid_request", "refresh_token");
    }

    // An operator's query string that does not parse gets the CSC error body too.
    let operator = format!("Bearer {}", server.operator_key());
    let (status, _, answer) =
        send(&server, "GET", "/api/admin/v1/outbox?after=not-a-number", Some(&operator), None).await;
    assert_error(status, &answer, 400, "invalid_request", "Invalid query string");

    // With credentials, the body is what is judged.
    let signer = server.provision("edges", KeyKind::EcP256, 1, None).await;
    let token = server.login("v1", &signer).await;
    let (status, _, answer) = send(
        &server,
        "POST",
        "/csc/v1/credentials/list",
        Some(&format!("Bearer {token}")),
        Some(b"{not json".to_vec()),
    )
    .await;
    assert_error(status, &answer, 400, "invalid_request", "Malformed JSON");
}

#[tokio::test]
async fn bodies_are_bounded_with_413_and_deep_json_is_400() {
    let server = TestServer::start().await;
    let signer = server.provision("limits", KeyKind::EcP256, 1, None).await;
    let bearer = format!("Bearer {}", server.login("v1", &signer).await);
    let limit = rssp::api::extract::json_body_limit(Some(server.services()));
    assert_eq!(limit, 64 * 1024 + 256 * 1000, "the default limit the README and the OpenAPI document state");

    // A signHash with the most hashes the server accepts fits (and is judged on its content).
    let hashes: Vec<String> = (0..1000).map(|i| b64(&common::sha256(format!("{i}").as_bytes()))).collect();
    let body =
        json!({"credentialID": signer.credential_id, "SAD": "x", "hash": hashes, "signAlgo": "1.2.840.10045.4.3.2"});
    let (status, _, answer) =
        send(&server, "POST", "/csc/v1/signatures/signHash", Some(&bearer), Some(body.to_string().into_bytes())).await;
    assert_eq!(status, 400, "{answer}");
    assert!(!answer["error_description"].as_str().unwrap().contains("too large"), "{answer}");
    // One byte over the limit is 413, with the CSC error body; so is a stream that only turns out
    // too long (no Content-Length).
    let mut over = vec![b' '; limit + 1];
    over[0] = b'{';
    over[limit] = b'}';
    for path in ["/csc/v1/signatures/signHash", "/csc/v2/credentials/list"] {
        let (status, _, answer) = send(&server, "POST", path, Some(&bearer), Some(over.clone())).await;
        assert_error(status, &answer, 413, "invalid_request", "Request body too large");
    }
    let addr = server.url.trim_start_matches("http://").to_string();
    let chunked_head = format!(
        "POST /csc/v1/credentials/list HTTP/1.1\r\nHost: rssp\r\nAuthorization: {bearer}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let streamed = over.clone();
    let (status, answer) = tokio::task::spawn_blocking(move || {
        let over = streamed;
        let stream = TcpStream::connect(&addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        writer.write_all(chunked_head.as_bytes()).unwrap();
        // The server may answer (and stop reading) before the last chunk: later writes may fail.
        for chunk in over.chunks(64 * 1024) {
            if writer.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).is_err()
                || writer.write_all(chunk).is_err()
                || writer.write_all(b"\r\n").is_err()
            {
                break;
            }
        }
        let _ = writer.write_all(b"0\r\n\r\n");
        read_response(&mut reader)
    })
    .await
    .unwrap();
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("Request body too large"), "{answer}");
    // Exactly the limit is read (and judged on its content).
    let mut exact = vec![b' '; limit];
    exact[0] = b'{';
    exact[limit - 1] = b'}';
    let (status, _, answer) = send(&server, "POST", "/csc/v1/credentials/list", Some(&bearer), Some(exact)).await;
    assert_eq!(status, 200, "{answer}");

    // The webhooks are bounded the same way.
    let (status, _, answer) = send(&server, "POST", "/api/v1/webhooks/payments", None, Some(over.clone())).await;
    assert_error(status, &answer, 413, "invalid_request", "Request body too large");

    // Nesting far beyond serde_json's limit is malformed JSON, not a crash: on a CSC route, a
    // lifecycle route and a route whose body is free-form JSON.
    let deep = format!("{{\"a\":{}{}}}", "[".repeat(50_000), "]".repeat(50_000));
    for (path, auth) in [
        ("/csc/v1/credentials/list", Some(bearer.as_str())),
        ("/csc/v2/info", None),
        ("/api/v1/registrations", None),
        ("/api/v1/webhooks/payments", None),
    ] {
        let (status, _, answer) = send(&server, "POST", path, auth, Some(deep.clone().into_bytes())).await;
        assert!((400..500).contains(&status), "{path}: {status} {answer}");
        assert!(answer["error"].is_string(), "{path}: {answer}");
    }
    let (status, _, answer) =
        send(&server, "POST", "/csc/v1/credentials/list", Some(&bearer), Some(deep.into_bytes())).await;
    assert_error(status, &answer, 400, "invalid_request", "Malformed JSON");

    // Headers: many, or one huge one, are refused with a 4xx (or the connection closed), never 5xx.
    let mut request = server.http.get(format!("{}/api/v1/packages", server.url));
    for i in 0..200 {
        request = request.header(format!("x-extra-{i}"), "1");
    }
    if let Ok(response) = request.send().await {
        assert_eq!(response.status().as_u16(), 431, "200 headers");
    }
    let huge = "a".repeat(256 * 1024);
    if let Ok(response) = server.http.get(format!("{}/api/v1/packages", server.url)).header("x-huge", huge).send().await
    {
        assert_eq!(response.status().as_u16(), 431, "a 256 KiB header");
    }
    // The server still serves.
    assert_eq!(server.get("/api/v1/packages", None).await.0, 200);
}

/// A PDF of exactly `size` bytes: a valid structure with a comment to pad it.
fn pdf_of_size(size: usize) -> Vec<u8> {
    let build = common::rekey::padded_pdf;
    // The structure's length depends on the padding only through the digits of `startxref`.
    let mut padding = size.saturating_sub(build(0).len());
    loop {
        let pdf = build(padding);
        match pdf.len().cmp(&size) {
            std::cmp::Ordering::Equal => return pdf,
            std::cmp::Ordering::Greater => padding -= pdf.len() - size,
            std::cmp::Ordering::Less => padding += size - pdf.len(),
        }
    }
}

#[tokio::test]
async fn identity_documents_up_to_5_mib_are_taken_and_larger_bodies_are_413() {
    let server = TestServer::start().await;
    let (person, credential) = server.certified_person("upload@example.org", "+38640111333").await;
    let credential_id = credential["credential_id"].as_str().unwrap().to_string();
    let order = server.buy(&person, "rekey", Some(&credential_id)).await;

    let document = pdf_of_size(4_900 * 1024);
    assert_eq!(document.len(), 4_900 * 1024);
    let (status, body) = server.rekey_document(&person, &order, "application/pdf", &document).await;
    assert_eq!(status, 201, "a 4.9 MiB document: {body}");
    assert_eq!(body["sha256"], hex::encode(common::sha256(&document)));

    // Exactly 5 MiB is the largest document; one byte more is refused by the service.
    let (status, body) = server.rekey_document(&person, &order, "application/pdf", &pdf_of_size(5 * 1024 * 1024)).await;
    assert_eq!(status, 201, "5 MiB: {body}");
    let (status, body) =
        server.rekey_document(&person, &order, "application/pdf", &pdf_of_size(5 * 1024 * 1024 + 1)).await;
    assert_error(status, &body, 400, "invalid_request", "5 MiB");

    // A body over the upload limit is 413; the same body on a JSON method is 413 much earlier.
    let over = format!(
        "{{\"content_type\":\"application/pdf\",\"data\":\"{}\"}}",
        "A".repeat(rssp::api::extract::UPLOAD_BODY_LIMIT)
    );
    let path = format!("/api/v1/orders/{order}/identity-document");
    let bearer = format!("Bearer {}", person.token);
    let (status, _, answer) = send(&server, "POST", &path, Some(&bearer), Some(over.into_bytes())).await;
    assert_error(status, &answer, 413, "invalid_request", "Request body too large");
    let names = json!({"given_name": "A".repeat(400_000), "surname": "Novak"}).to_string();
    let (status, _, answer) = send(
        &server,
        "POST",
        &format!("/api/v1/orders/{order}/personal-data"),
        Some(&bearer),
        Some(names.into_bytes()),
    )
    .await;
    assert_error(status, &answer, 413, "invalid_request", "Request body too large");
}

#[tokio::test]
async fn a_known_path_with_another_method_is_405_with_allow() {
    let server = TestServer::start().await;
    let cases = [
        ("GET", "/csc/v1/signatures/signHash", "POST"),
        ("PUT", "/csc/v2/info", "POST"),
        ("DELETE", "/api/v1/orders", "GET, HEAD, POST"),
        ("POST", "/api/v1/orders/abc/invoice", "PUT"),
        ("PATCH", "/api/admin/v1/users/abc", "GET, HEAD"),
        ("POST", "/pki/root-ca.crl", "GET, HEAD"),
        ("OPTIONS", "/api/v1/me", "GET, HEAD"),
    ];
    for (method, path, allow) in cases {
        let (status, headers, answer) = send(&server, method, path, None, None).await;
        assert_error(status, &answer, 405, "invalid_request", "Method not allowed");
        assert_eq!(headers.get("allow").map(|v| v.to_str().unwrap()), Some(allow), "{method} {path}");
    }
    for (method, path) in [("GET", "/csc/v1/nothing"), ("POST", "/api/v1/orders/abc/nothing"), ("GET", "/csc/v3/info")]
    {
        let (status, headers, answer) = send(&server, method, path, None, None).await;
        assert_error(status, &answer, 404, "invalid_request", "Unknown method or path");
        assert!(headers.get("allow").is_none());
    }
}

async fn company_order(server: &TestServer, person: &Person, vat_id: &str) -> (u16, Value) {
    let invoice = json!({"type": "company", "company_name": "Žabnik d.o.o.", "vat_id": vat_id,
                         "address": "Čopova 1", "postal_code": "1000", "city": "Ljubljana", "country": "SI"});
    server
        .post(
            "/api/v1/orders",
            Some(&person.token),
            json!({"package_id": "1y", "purpose": "issuance", "invoice": invoice}),
        )
        .await
}

#[tokio::test]
async fn multi_byte_input_is_a_4xx_never_a_500() {
    let server = TestServer::start().await;
    let person = server.enrol("bytes@example.org", "+38640111444").await;
    let (status, body) =
        server.post("/api/v1/consents", Some(&person.token), json!({"document": "terms", "version": "2026-01"})).await;
    assert_eq!(status, 201, "{body}");
    let refused = ["Sé12345", "é", "SI€", "€SI12345", "SI12345é", "🇸🇮1234567", "ŠI12345678"];
    for vat_id in refused {
        let (status, body) = company_order(&server, &person, vat_id).await;
        assert_error(status, &body, 400, "invalid_request", "vat_id");
    }
    let (status, order) = company_order(&server, &person, "SI12345678").await;
    assert_eq!(status, 201, "{order}");
    let path = format!("/api/v1/orders/{}/invoice", order["id"].as_str().unwrap());
    for vat_id in refused {
        let invoice = json!({"type": "company", "company_name": "Žabnik d.o.o.", "vat_id": vat_id,
                             "address": "Čopova 1", "postal_code": "1000", "city": "Ljubljana", "country": "SI"});
        let (status, body) = server.put(&path, &person.token, invoice).await;
        assert_error(status, &body, 400, "invalid_request", "vat_id");
    }
    let invoice = json!({"type": "company", "company_name": "日本 d.o.o.", "vat_id": "DE123456789",
                         "address": "Čopova 1", "postal_code": "1000", "city": "Ljubljana", "country": "SI"});
    let (status, body) = server.put(&path, &person.token, invoice).await;
    assert_eq!(status, 200, "{body}");
    // Other text fields and ids with multi-byte characters: a 4xx, never a 5xx.
    let probes = [
        ("/api/v1/orders", json!({"package_id": "1é", "purpose": "issuancé", "invoice": {"type": "persoé"}})),
        ("/api/v1/orders/é€🇸🇮/personal-data", json!({"given_name": "Ana", "surname": "Novak"})),
        ("/api/v1/credentials/é€🇸🇮/revoke", json!({"reason": "é"})),
        ("/api/v1/me/phone-change", json!({"phone": "+3864€0123456"})),
        ("/api/v1/login", json!({"email": "é@é.é", "password": "é".repeat(200)})),
    ];
    for (path, body) in probes {
        let (status, answer) = server.post(path, Some(&person.token), body).await;
        assert!((400..500).contains(&status), "{path}: {status} {answer}");
    }
}

#[tokio::test]
async fn docs_redirects_to_its_slash_and_swagger_loads_the_document_relatively() {
    let server = TestServer::start().await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = http.get(format!("{}/docs", server.url)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 308);
    assert_eq!(response.headers()["location"], "docs/");
    // Followed, it lands on Swagger UI.
    let response = server.http.get(format!("{}/docs", server.url)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.url().path().ends_with("/docs/"));
    let initializer = server
        .http
        .get(format!("{}/docs/swagger-initializer.js", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(initializer.contains("\"url\": \"../openapi.json\""), "{initializer}");
    assert!(!initializer.contains("\"/openapi.json\""), "{initializer}");
}

/// Reads one HTTP/1.1 response with a Content-Length body; returns the status and body.
fn read_response(reader: &mut BufReader<TcpStream>) -> (u16, String) {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status: u16 = line.split(' ').nth(1).unwrap_or_else(|| panic!("status line {line:?}")).parse().unwrap();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        if header == "\r\n" || header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

const INFO_REQUEST: &str =
    "POST /csc/v1/info HTTP/1.1\r\nHost: rssp\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";

/// pyHanko lost a request sent into a connection the server closed after actix's old 5 s idle
/// timeout; the server now keeps idle connections longer than clients do. (The one test that sleeps.)
#[tokio::test]
async fn an_idle_keep_alive_connection_survives_a_pause_longer_than_5_seconds() {
    let server = TestServer::start().await;
    let addr = server.url.trim_start_matches("http://").to_string();
    tokio::task::spawn_blocking(move || {
        let stream = TcpStream::connect(&addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        writer.write_all(INFO_REQUEST.as_bytes()).unwrap();
        let (status, body) = read_response(&mut reader);
        assert_eq!(status, 200, "{body}");
        std::thread::sleep(Duration::from_millis(6500));
        writer.write_all(INFO_REQUEST.as_bytes()).unwrap();
        let (status, body) = read_response(&mut reader);
        assert_eq!(status, 200, "the second request on the same connection: {body}");
        assert!(body.contains("\"specs\":\"1.0.4.0\""), "{body}");
    })
    .await
    .unwrap();
}

#[test]
fn the_timeouts_are_settings_with_long_defaults() {
    let config = rssp::config::Config::default();
    assert_eq!(config.http.keep_alive_secs, 75);
    assert_eq!(config.http.request_timeout_secs, 30);
    assert_eq!(config.http.shutdown_grace_secs, 30);
    let env = |pairs: &[(&str, &str)]| pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
    let config = rssp::config::Config::from_sources(
        None,
        &env(&[
            ("RSSP_HTTP_KEEP_ALIVE_SECS", "120"),
            ("RSSP_HTTP_REQUEST_TIMEOUT_SECS", "10"),
            ("RSSP_SHUTDOWN_GRACE_SECS", "5"),
        ]),
    )
    .unwrap();
    assert_eq!(
        (config.http.keep_alive_secs, config.http.request_timeout_secs, config.http.shutdown_grace_secs),
        (120, 10, 5)
    );
    let err = rssp::config::Config::from_sources(None, &env(&[("RSSP_HTTP_REQUEST_TIMEOUT_SECS", "0")])).unwrap_err();
    assert!(err.to_string().contains("RSSP_HTTP_REQUEST_TIMEOUT_SECS"), "{err}");
}

/// `rssp serve` on SIGTERM: refuses new connections, finishes the request in flight, stops the
/// workers, closes the HSM sessions and exits 0, well within the grace period.
#[test]
fn sigterm_drains_the_request_in_flight_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = common::binary::rssp_command(dir.path());
    command.env("RSSP_SHUTDOWN_GRACE_SECS", "20").env("RSSP_LOG", "info");
    let (mut child, url) = common::binary::serve(command);
    let addr = url.strip_prefix("http://").unwrap_or_else(|| panic!("no address in {url:?}")).to_string();

    // A request in flight: its head and half its body are sent, the rest comes after the signal.
    let stream = TcpStream::connect(&addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let (head, tail) = INFO_REQUEST.split_at(INFO_REQUEST.len() - 1);
    writer.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let signalled = Instant::now();
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    // New connections are refused once the listener is closed.
    let mut refused = false;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        if TcpStream::connect(&addr).is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "the listener still accepts after SIGTERM");
    writer.write_all(tail.as_bytes()).unwrap();
    let (status, body) = read_response(&mut reader);
    assert_eq!(status, 200, "the request in flight finishes: {body}");
    drop(writer);
    drop(reader);

    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(signalled.elapsed() < Duration::from_secs(15), "still running 15 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(status.success(), "exit {status:?}; log:\n{log}");
    for expected in ["SIGTERM", "HTTP server stopped", "background workers stopped", "HSM sessions closed"] {
        assert!(log.contains(expected), "{expected:?} not in the log:\n{log}");
    }
}

/// A compressed body is refused before anything is unpacked: a few kilobytes of zstd or gzip would
/// unpack to gigabytes before a size limit could look at them.
#[tokio::test]
async fn compressed_bodies_are_415_before_anything_is_unpacked() {
    let server = TestServer::start().await;
    for encoding in ["gzip", "deflate", "br", "zstd", "GZIP"] {
        let response = server
            .http
            .post(format!("{}/csc/v2/info", server.url))
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap();
        assert_error(status, &answer, 415, "invalid_request", "Compressed request bodies are not accepted");
    }
    // identity is no compression.
    let response = server
        .http
        .post(format!("{}/csc/v2/info", server.url))
        .header("content-type", "application/json")
        .header("content-encoding", "identity")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

/// A body that trickles in slower than `http.request_timeout_secs` is 408, not a connection held open.
#[tokio::test]
async fn a_body_that_trickles_in_is_408() {
    let server = TestServer::start_with(|c| c.http.request_timeout_secs = 1).await;
    let addr = server.url.trim_start_matches("http://").to_string();
    tokio::task::spawn_blocking(move || {
        let stream = TcpStream::connect(&addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let started = Instant::now();
        writer
            .write_all(
                b"POST /csc/v1/info HTTP/1.1\r\nHost: rssp\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
            )
            .unwrap();
        let (status, body) = read_response(&mut reader);
        assert_eq!(status, 408, "{body}");
        assert!(body.contains("did not arrive in time"), "{body}");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    })
    .await
    .unwrap();
}

/// HEAD is GET without the body (RFC 9110 §9.3.2): load balancers probe with it, CRL fetchers use it.
#[tokio::test]
async fn head_answers_wherever_get_does() {
    let server = TestServer::start().await;
    for path in ["/healthz", "/readyz", "/pki/root-ca.cer", "/pki/issuing-ca.crl", "/logo.png"] {
        let get = server.http.get(format!("{}{path}", server.url)).send().await.unwrap();
        assert_eq!(get.status().as_u16(), 200, "GET {path}");
        let get_length = get.bytes().await.unwrap().len();
        let head = server.http.head(format!("{}{path}", server.url)).send().await.unwrap();
        assert_eq!(head.status().as_u16(), 200, "HEAD {path}");
        let length: usize = head.headers()["content-length"].to_str().unwrap().parse().unwrap();
        assert_eq!(length, get_length, "HEAD {path} announces the GET's length");
        assert!(head.bytes().await.unwrap().is_empty(), "HEAD {path} has no body");
    }
    // A path without GET still says which methods it takes.
    let (status, headers, answer) = send(&server, "HEAD", "/csc/v1/signatures/signHash", None, None).await;
    assert_eq!(status, 405, "{answer}");
    assert_eq!(headers.get("allow").map(|v| v.to_str().unwrap()), Some("POST"));
}

/// Authentication scheme names are case-insensitive (RFC 9110 §11.1).
#[tokio::test]
async fn scheme_names_are_case_insensitive() {
    let server = TestServer::start().await;
    let signer = server.provision("casey", KeyKind::EcP256, 1, None).await;
    let basic = b64(format!("{}:{}", signer.username, common::PASSWORD).as_bytes());
    let response = server
        .http
        .post(format!("{}/csc/v1/auth/login", server.url))
        .header("authorization", format!("basic {basic}"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "lower-case basic");
    let token = response.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string();
    let response = server
        .http
        .post(format!("{}/csc/v1/credentials/list", server.url))
        .header("authorization", format!("BEARER {token}"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "upper-case bearer");
}

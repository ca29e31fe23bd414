//! Production mode delivers the outbox: e-mail to a real SMTP listener and SMS to an HTTP gateway,
//! both on loopback.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use common::journey::{link_token, six_digits};
use common::TestServer;
use rssp::config::Mode;
use serde_json::json;

/// A minimal SMTP server: accepts every message and passes its DATA on.
fn smtp_listener() -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let _ = stream.write_all(b"220 test ESMTP\r\n");
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    let command = line.to_ascii_uppercase();
                    let reply: &[u8] = if command.starts_with("EHLO") {
                        b"250-test\r\n250 8BITMIME\r\n"
                    } else if command.starts_with("DATA") {
                        let _ = stream.write_all(b"354 go ahead\r\n");
                        let mut data = String::new();
                        loop {
                            let mut l = String::new();
                            if reader.read_line(&mut l).unwrap_or(0) == 0 || l == ".\r\n" {
                                break;
                            }
                            data.push_str(&l);
                        }
                        let _ = tx.send(data);
                        b"250 queued\r\n"
                    } else if command.starts_with("QUIT") {
                        let _ = stream.write_all(b"221 bye\r\n");
                        break;
                    } else {
                        b"250 ok\r\n"
                    };
                    let _ = stream.write_all(reply);
                    line.clear();
                }
            });
        }
    });
    (port, rx)
}

/// A minimal HTTP endpoint standing for the SMS gateway: answers 200 and passes each body on.
fn sms_gateway() -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = tx.send(String::from_utf8_lossy(&body).to_string());
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (port, rx)
}

#[tokio::test]
async fn production_mode_delivers_email_by_smtp_and_sms_through_the_gateway() {
    let (smtp_port, mails) = smtp_listener();
    let (sms_port, texts) = sms_gateway();
    let ts = TestServer::start_with(|c| {
        c.mode = Mode::Production;
        c.notify.smtp_url = Some(format!("smtp://127.0.0.1:{smtp_port}"));
        c.notify.sms_gateway_url = Some(format!("http://127.0.0.1:{sms_port}/sms"));
        c.notify.delivery_interval_secs = 1;
        c.payments.webhook_secret = Some("payment secret of the test".into());
        c.identity.webhook_secret = Some("identity secret of the test".into());
    })
    .await;
    assert!(!rssp::service::dev_secrets::path(ts.data_dir()).exists(), "production writes no development secrets");

    ts.register("ivy@example.org", "+38641000007").await;
    let mail = mails.recv_timeout(Duration::from_secs(20)).expect("the invitation reaches the SMTP server");
    assert!(mail.contains("To: ivy@example.org"), "{mail}");
    assert!(mail.contains("Subject: Activate your signing account"), "{mail}");
    // The body is quoted-printable: undo the soft line breaks and the escaped "=".
    let token = link_token(&mail.replace("=\r\n", "").replace("=3D", "="));

    let (status, body) = ts.post("/api/v1/activation/send-code", None, json!({"token": token})).await;
    assert_eq!(status, 200, "{body}");
    let sms: serde_json::Value =
        serde_json::from_str(&texts.recv_timeout(Duration::from_secs(20)).expect("the SMS reaches the gateway"))
            .unwrap();
    assert_eq!(sms["to"], "+38641000007");
    let code = six_digits(sms["text"].as_str().unwrap());
    let (status, body) = ts
        .post(
            "/api/v1/activation/complete",
            None,
            json!({"token": token, "code": code, "password": "Delivered-2026-pass"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // The outbox records what went out.
    let services = ts.server.as_ref().unwrap().services.clone();
    let key =
        tokio::task::spawn_blocking(move || rssp::service::operators::create(&services, "ops")).await.unwrap().unwrap();
    let mut statuses = Vec::new();
    for _ in 0..50 {
        let (_, body) = ts.get("/api/admin/v1/outbox", Some(&key)).await;
        statuses =
            body["messages"].as_array().unwrap().iter().map(|m| m["status"].as_str().unwrap().to_string()).collect();
        if statuses.iter().all(|s| s == "sent") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(statuses, vec!["sent", "sent"]);
}

//! Production mode delivers the outbox: e-mail to a real SMTP listener and SMS to an HTTP gateway,
//! both on loopback.

use std::time::Duration;

use crate::common::journey::{link_token, six_digits};
use crate::common::loopback::{sms_gateway, smtp_listener};
use crate::common::TestServer;
use rssp::config::Mode;
use serde_json::json;

#[tokio::test]
async fn production_mode_delivers_email_by_smtp_and_sms_through_the_gateway() {
    let (smtp_port, mut mails) = smtp_listener();
    let (sms_port, mut texts) = sms_gateway();
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
    let mail = mails.next_matching(|_| true);
    assert!(mail.contains("To: ivy@example.org"), "{mail}");
    assert!(mail.contains("Subject: Activate your signing account"), "{mail}");
    let token = link_token(&mail);

    let (status, body) = ts.post("/api/v1/activation/send-code", None, json!({"token": token})).await;
    assert_eq!(status, 200, "{body}");
    let sms: serde_json::Value = serde_json::from_str(&texts.next_matching(|_| true)).unwrap();
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

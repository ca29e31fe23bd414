//! Helpers for the account-recovery tests: recovering a password, resetting the authenticator,
//! authorising on both CSC dialects, and a production-mode server whose e-mail and SMS go to loopback
//! listeners (the person's mailbox and phone), so that the outbox is delivered and wiped.

use std::time::Duration;

use rssp::config::Mode;
use rssp::domain::secrets;
use serde_json::{json, Value};

use super::journey::{csc_authorize, invoice, link_token, six_digits, Person, PERSON_PASSWORD};
use super::loopback::{sms_gateway, smtp_listener, Inbox};
use super::{b64_all, TestServer};

pub const PAYMENT_SECRET: &str = "payment secret of the recovery test";
pub const IDENTITY_SECRET: &str = "identity secret of the recovery test";

impl TestServer {
    /// Password recovery as anyone holding the mailbox and the SIM: e-mail link, SMS code, new password.
    pub async fn recover_password(&self, person: &mut Person, new_password: &str) {
        let (status, _) = self.post("/api/v1/password-reset", None, json!({"email": person.email})).await;
        assert_eq!(status, 202);
        let token = link_token(&self.last_message(&person.email).await);
        let (status, body) = self.post("/api/v1/password-reset/send-code", None, json!({"token": token})).await;
        assert_eq!(status, 200, "send-code: {body}");
        let code = six_digits(&self.last_message(&person.phone).await);
        let (status, body) = self
            .post(
                "/api/v1/password-reset/complete",
                None,
                json!({"token": token, "code": code, "new_password": new_password}),
            )
            .await;
        assert_eq!(status, 200, "complete: {body}");
        person.password = new_password.into();
    }

    /// Authenticator reset with the password and an SMS code, then a new authenticator paired on the
    /// session it opens. Returns the reset confirmation's body.
    pub async fn reset_and_pair(&self, person: &mut Person) -> Value {
        let (status, body) =
            self.post("/api/v1/totp/reset", None, json!({"email": person.email, "password": person.password})).await;
        assert_eq!(status, 200, "reset: {body}");
        let code = six_digits(&self.last_message(&person.phone).await);
        let (status, confirmed) = self
            .post(
                "/api/v1/totp/reset/confirm",
                None,
                json!({"email": person.email, "password": person.password, "code": code}),
            )
            .await;
        assert_eq!(status, 200, "reset confirm: {confirmed}");
        person.token = confirmed["access_token"].as_str().unwrap().to_string();
        person.totp_seed = Some(secrets::from_base32(confirmed["pairing"]["secret"].as_str().unwrap()).unwrap());
        let otp = self.person_otp(person);
        let (status, body) = self.post("/api/v1/totp/pairing/confirm", Some(&person.token), json!({"code": otp})).await;
        assert_eq!(status, 200, "confirm pairing: {body}");
        confirmed
    }

    /// `credentials/authorize` on CSC v1 with the person's next code.
    pub async fn authorize_person_v1(&self, person: &Person, credential: &str, hashes: &[Vec<u8>]) -> (u16, Value) {
        csc_authorize(self, &person.token, person, credential, hashes).await
    }

    /// `credentials/authorize` on CSC v2 with the person's next code.
    pub async fn authorize_person_v2(&self, person: &Person, credential: &str, hashes: &[Vec<u8>]) -> (u16, Value) {
        let otp = self.person_otp(person);
        let body = json!({"credentialID": credential, "numSignatures": hashes.len(), "hashes": b64_all(hashes),
                          "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1", "authData": [{"id": "OTP", "value": otp}]});
        self.post("/csc/v2/credentials/authorize", Some(&person.token), body).await
    }

    /// A CSC `auth/login` with `rememberMe`: (access token, refresh token).
    pub async fn csc_session_with_refresh(&self, person: &Person) -> (String, String) {
        let (status, body) = self.basic_login("v1", &person.email, &person.password, json!({"rememberMe": true})).await;
        assert_eq!(status, 200);
        (body["access_token"].as_str().unwrap().to_string(), body["refresh_token"].as_str().unwrap().to_string())
    }

    /// A CSC `auth/login` with a refresh token: the status.
    pub async fn csc_refresh(&self, refresh_token: &str) -> u16 {
        self.post("/csc/v1/auth/login", None, json!({"refresh_token": refresh_token})).await.0
    }
}

/// A production-mode server: the outbox is delivered to loopback SMTP and SMS listeners.
pub struct ProductionServer {
    pub ts: TestServer,
    pub mails: Inbox,
    pub texts: Inbox,
    pub operator_key: String,
}

impl ProductionServer {
    pub async fn start() -> ProductionServer {
        let (smtp_port, mails) = smtp_listener();
        let (sms_port, texts) = sms_gateway();
        let ts = TestServer::start_with(|c| {
            c.mode = Mode::Production;
            c.notify.smtp_url = Some(format!("smtp://127.0.0.1:{smtp_port}"));
            c.notify.sms_gateway_url = Some(format!("http://127.0.0.1:{sms_port}/sms"));
            c.notify.delivery_interval_secs = 1;
            c.payments.webhook_secret = Some(PAYMENT_SECRET.into());
            c.identity.webhook_secret = Some(IDENTITY_SECRET.into());
        })
        .await;
        let services = ts.server.as_ref().unwrap().services.clone();
        let operator_key = tokio::task::spawn_blocking(move || rssp::service::operators::create(&services, "ops"))
            .await
            .unwrap()
            .unwrap();
        ProductionServer { ts, mails, texts, operator_key }
    }

    /// The next e-mail delivered to `to` whose text contains `needle`.
    pub fn mail(&mut self, to: &str, needle: &str) -> String {
        let to = format!("To: {to}");
        self.mails.next_matching(|m| m.contains(&to) && m.contains(needle))
    }

    /// The text of the next SMS delivered to `to` whose text contains `needle`.
    pub fn sms(&mut self, to: &str, needle: &str) -> String {
        let message = self.texts.next_matching(|m| {
            let v: Value = serde_json::from_str(m).unwrap_or(Value::Null);
            v["to"] == to && v["text"].as_str().unwrap_or_default().contains(needle)
        });
        let v: Value = serde_json::from_str(&message).unwrap();
        v["text"].as_str().unwrap().to_string()
    }

    /// Registers, activates (codes as delivered), logs in, pairs, buys, passes identity (an operator)
    /// and gets a certificate.
    pub async fn certified_person(&mut self, email: &str, phone: &str) -> (Person, Value) {
        let user_id = self.ts.register(email, phone).await;
        let token = link_token(&self.mail(email, "token="));
        let (status, body) = self.ts.post("/api/v1/activation/send-code", None, json!({"token": token})).await;
        assert_eq!(status, 200, "send-code: {body}");
        let code = six_digits(&self.sms(phone, "activate"));
        let (status, body) = self
            .ts
            .post(
                "/api/v1/activation/complete",
                None,
                json!({"token": token, "code": code, "password": PERSON_PASSWORD}),
            )
            .await;
        assert_eq!(status, 200, "activate: {body}");
        let mut person = Person {
            email: email.into(),
            phone: phone.into(),
            password: PERSON_PASSWORD.into(),
            user_id,
            token: String::new(),
            totp_seed: None,
        };
        person.token = self.ts.portal_login(&person).await;
        self.ts.pair(&mut person).await;

        let ts = &self.ts;
        let (status, body) =
            ts.post("/api/v1/consents", Some(&person.token), json!({"document": "terms", "version": "2026-01"})).await;
        assert_eq!(status, 201, "terms: {body}");
        let (status, order) = ts
            .post(
                "/api/v1/orders",
                Some(&person.token),
                json!({"package_id": "1y", "purpose": "issuance", "invoice": invoice()}),
            )
            .await;
        assert_eq!(status, 201, "order: {order}");
        let order_id = order["id"].as_str().unwrap().to_string();
        let (status, payment) =
            ts.post(&format!("/api/v1/orders/{order_id}/payment"), Some(&person.token), json!({})).await;
        assert_eq!(status, 200, "payment: {payment}");
        let event = json!({"event_id": uuid::Uuid::new_v4().to_string(), "payment_ref": payment["payment_ref"],
                           "status": "paid", "amount_cents": payment["gross_cents"], "currency": payment["currency"]});
        let (status, body) = ts.webhook("/api/v1/webhooks/payments", PAYMENT_SECRET, &event).await;
        assert_eq!(status, 200, "payment webhook: {body}");
        let check = ts.pending_check(&person, &order_id).await;
        let (status, body) = ts
            .post(
                &format!("/api/admin/v1/identity-checks/{check}/decision"),
                Some(&self.operator_key),
                json!({"decision": "accept"}),
            )
            .await;
        assert_eq!(status, 200, "decision: {body}");
        let credential = ts.issue(&person, &order_id).await;
        (person, credential)
    }

    /// The admin outbox as an operator sees it.
    pub async fn admin_outbox(&self, recipient: &str) -> Value {
        let path = format!("/api/admin/v1/outbox?recipient={}", recipient.replace('+', "%2B"));
        let (status, body) = self.ts.get(&path, Some(&self.operator_key)).await;
        assert_eq!(status, 200, "outbox: {body}");
        body
    }

    /// Waits until every message in the outbox was delivered.
    pub async fn wait_all_sent(&self) {
        for _ in 0..100 {
            let services = self.ts.server.as_ref().unwrap().services.clone();
            let pending = tokio::task::spawn_blocking(move || {
                let mut conn = services.conn().unwrap();
                rssp::db::outbox::list(&mut conn, None, 0, 10_000)
                    .unwrap()
                    .into_iter()
                    .any(|m| m.status != rssp::domain::OutboxStatus::Sent)
            })
            .await
            .unwrap();
            if !pending {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the outbox was not delivered");
    }

    /// Every stored outbox message, read from the database.
    pub async fn stored_outbox(&self) -> Vec<rssp::db::outbox::Message> {
        let services = self.ts.server.as_ref().unwrap().services.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = services.conn().unwrap();
            rssp::db::outbox::list(&mut conn, None, 0, 10_000).unwrap()
        })
        .await
        .unwrap()
    }
}

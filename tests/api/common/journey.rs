//! A person walking the lifecycle API, for the lifecycle tests: each step asserts it worked.

use rssp::domain::{secrets, totp};
use serde_json::{json, Value};

use super::{b64_all, TestServer};

pub const PERSON_PASSWORD: &str = "Journey-password-2026";

pub struct Person {
    pub email: String,
    pub phone: String,
    pub password: String,
    pub user_id: String,
    pub token: String,
    pub totp_seed: Option<Vec<u8>>,
}

pub fn invoice() -> Value {
    json!({"type": "person", "name": "Ana Novak", "address": "Slovenska 1", "postal_code": "1000", "city": "Ljubljana", "country": "SI"})
}

impl TestServer {
    pub fn operator_key(&self) -> String {
        self.dev_secrets().operator_key
    }

    /// Messages to `recipient`, oldest first, read as an operator.
    pub async fn outbox(&self, recipient: &str) -> Vec<Value> {
        let key = self.operator_key();
        let path = format!("/api/admin/v1/outbox?recipient={}", recipient.replace('+', "%2B"));
        let (status, body) = self.get(&path, Some(&key)).await;
        assert_eq!(status, 200, "outbox: {body}");
        body["messages"].as_array().unwrap().clone()
    }

    /// The newest message to `recipient`.
    pub async fn last_message(&self, recipient: &str) -> String {
        let messages = self.outbox(recipient).await;
        messages.last().unwrap_or_else(|| panic!("no message to {recipient}"))["body"].as_str().unwrap().to_string()
    }

    pub async fn register(&self, email: &str, phone: &str) -> String {
        self.register_in(email, phone, None).await
    }

    /// Registers, naming the person's country (ISO 3166) when given.
    pub async fn register_in(&self, email: &str, phone: &str, country: Option<&str>) -> String {
        self.register_as("Ana", "Novak", email, phone, country).await
    }

    /// Registers a person with these names (and country, when given); returns the user id.
    pub async fn register_as(
        &self,
        given_name: &str,
        surname: &str,
        email: &str,
        phone: &str,
        country: Option<&str>,
    ) -> String {
        let mut registration = json!({"given_name": given_name, "surname": surname, "email": email, "phone": phone,
                                      "privacy_consent": {"accepted": true, "version": "2026-01"}});
        if let Some(country) = country {
            registration["country"] = json!(country);
        }
        let (status, body) = self.post("/api/v1/registrations", None, registration).await;
        assert_eq!(status, 201, "register: {body}");
        body["user_id"].as_str().unwrap().to_string()
    }

    /// Registers, activates and logs in a person (no authenticator yet).
    pub async fn enrol(&self, email: &str, phone: &str) -> Person {
        self.enrol_in(email, phone, None).await
    }

    /// Registers (with the person's country, when given), activates and logs in.
    pub async fn enrol_in(&self, email: &str, phone: &str, country: Option<&str>) -> Person {
        let user_id = self.register_in(email, phone, country).await;
        self.activate(email, phone, user_id).await
    }

    /// Activates a registered account (the link by e-mail, the code by SMS, [`PERSON_PASSWORD`]) and
    /// logs in.
    pub async fn activate(&self, email: &str, phone: &str, user_id: String) -> Person {
        let token = link_token(&self.last_message(email).await);
        let (status, body) = self.post("/api/v1/activation/send-code", None, json!({"token": token})).await;
        assert_eq!(status, 200, "send-code: {body}");
        let code = six_digits(&self.last_message(phone).await);
        let (status, body) = self
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
        person.token = self.portal_login(&person).await;
        person
    }

    pub async fn portal_login(&self, person: &Person) -> String {
        let otp = person.totp_seed.as_ref().map(|_| self.person_otp(person));
        let (status, body) = self
            .post("/api/v1/login", None, json!({"email": person.email, "password": person.password, "otp": otp}))
            .await;
        assert_eq!(status, 200, "login: {body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// The person's next authenticator code (the test clock moves to the next step first).
    pub fn person_otp(&self, person: &Person) -> String {
        self.clock.advance(totp::STEP_SECONDS);
        totp::code_at_step(person.totp_seed.as_ref().expect("paired"), totp::step_of(self.now()))
    }

    pub async fn pair(&self, person: &mut Person) {
        let (status, body) = self.post("/api/v1/totp/pairing", Some(&person.token), json!({})).await;
        assert_eq!(status, 200, "pairing: {body}");
        person.totp_seed = Some(secrets::from_base32(body["secret"].as_str().unwrap()).unwrap());
        let code = self.person_otp(person);
        let (status, body) =
            self.post("/api/v1/totp/pairing/confirm", Some(&person.token), json!({"code": code})).await;
        assert_eq!(status, 200, "confirm pairing: {body}");
    }

    /// Orders and pays a package; returns the order id.
    pub async fn buy(&self, person: &Person, purpose: &str, credential: Option<&str>) -> String {
        let (status, body) = self
            .post("/api/v1/consents", Some(&person.token), json!({"document": "terms", "version": "2026-01"}))
            .await;
        assert_eq!(status, 201, "terms: {body}");
        let (status, order) = self
            .post(
                "/api/v1/orders",
                Some(&person.token),
                json!({"package_id": "1y", "purpose": purpose, "credential_id": credential, "invoice": invoice()}),
            )
            .await;
        assert_eq!(status, 201, "order: {order}");
        let order_id = order["id"].as_str().unwrap().to_string();
        self.pay(person, &order_id).await;
        order_id
    }

    pub async fn pay(&self, person: &Person, order_id: &str) -> Value {
        let (status, payment) =
            self.post(&format!("/api/v1/orders/{order_id}/payment"), Some(&person.token), json!({})).await;
        assert_eq!(status, 200, "payment: {payment}");
        let event = json!({"event_id": uuid::Uuid::new_v4().to_string(), "payment_ref": payment["payment_ref"],
                           "status": "paid", "amount_cents": payment["gross_cents"], "currency": payment["currency"]});
        let (status, body) =
            self.webhook("/api/v1/webhooks/payments", &self.dev_secrets().payment_webhook_secret, &event).await;
        assert_eq!(status, 200, "payment webhook: {body}");
        event
    }

    /// The pending identity check of an order.
    pub async fn pending_check(&self, person: &Person, order_id: &str) -> String {
        let (status, body) = self.get("/api/v1/identity-checks", Some(&person.token)).await;
        assert_eq!(status, 200, "checks: {body}");
        let check = body["identity_checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["order_id"] == order_id && c["status"] == "pending")
            .unwrap_or_else(|| panic!("no pending check for {order_id}: {body}"))
            .clone();
        check["id"].as_str().unwrap().to_string()
    }

    pub async fn accept_identity(&self, person: &Person, order_id: &str) {
        let check = self.pending_check(person, order_id).await;
        let (status, body) = self
            .post(
                &format!("/api/admin/v1/identity-checks/{check}/decision"),
                Some(&self.operator_key()),
                json!({"decision": "accept"}),
            )
            .await;
        assert_eq!(status, 200, "decision: {body}");
    }

    /// Issues the certificate of a paid, identity-checked order; returns the credential view.
    pub async fn issue(&self, person: &Person, order_id: &str) -> Value {
        let otp = self.person_otp(person);
        let (status, body) = self
            .post(
                "/api/v1/credentials",
                Some(&person.token),
                json!({"order_id": order_id, "issuance_terms_version": "2026-01", "otp": otp}),
            )
            .await;
        assert_eq!(status, 201, "issue: {body}");
        body
    }

    /// Enrols, pairs, buys, passes identity and gets a certificate.
    pub async fn certified_person(&self, email: &str, phone: &str) -> (Person, Value) {
        let mut person = self.enrol(email, phone).await;
        let credential = self.certify(&mut person).await;
        (person, credential)
    }

    /// Pairs an enrolled person's authenticator, buys, passes identity and gets a certificate.
    pub async fn certify(&self, person: &mut Person) -> Value {
        self.pair(person).await;
        let order = self.buy(person, "issuance", None).await;
        self.accept_identity(person, &order).await;
        self.issue(person, &order).await
    }
}

/// `credentials/authorize` on CSC v1 with the person's next code, on a session of theirs.
pub async fn csc_authorize(
    ts: &TestServer,
    token: &str,
    person: &Person,
    credential: &str,
    hashes: &[Vec<u8>],
) -> (u16, Value) {
    let otp = ts.person_otp(person);
    ts.post(
        "/csc/v1/credentials/authorize",
        Some(token),
        json!({"credentialID": credential, "numSignatures": hashes.len(), "hash": b64_all(hashes), "OTP": otp}),
    )
    .await
}

/// The token of the link in a message.
pub fn link_token(body: &str) -> String {
    let start = body.find("token=").expect("a link with a token") + "token=".len();
    body[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

/// The first six-digit code in a message.
pub fn six_digits(body: &str) -> String {
    let bytes = body.as_bytes();
    (0..bytes.len().saturating_sub(5))
        .find(|&i| {
            bytes[i..i + 6].iter().all(u8::is_ascii_digit)
                && (i == 0 || !bytes[i - 1].is_ascii_digit())
                && bytes.get(i + 6).is_none_or(|b| !b.is_ascii_digit())
        })
        .map(|i| body[i..i + 6].to_string())
        .expect("a six-digit code")
}

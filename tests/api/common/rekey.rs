//! Rekey helpers: identity document files that really are what they say, the submission, and the
//! operator's decision.

use serde_json::{json, Value};

use super::journey::Person;
use super::TestServer;

/// A minimal PDF with a correct cross-reference table and trailer.
pub fn tiny_pdf() -> Vec<u8> {
    padded_pdf(0)
}

/// [`tiny_pdf`] with a comment line of `padding` bytes after the header.
pub fn padded_pdf(padding: usize) -> Vec<u8> {
    let mut pdf = b"%PDF-1.4\n%".to_vec();
    pdf.resize(pdf.len() + padding, b'x');
    pdf.push(b'\n');
    let catalog = pdf.len();
    pdf.extend_from_slice(b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n");
    let pages = pdf.len();
    pdf.extend_from_slice(b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n");
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!(
            "xref\n0 3\n0000000000 65535 f \n{catalog:010} 00000 n \n{pages:010} 00000 n \n\
             trailer\n<< /Size 3 /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
        )
        .as_bytes(),
    );
    pdf
}

/// A 2x2 grey PNG.
pub fn tiny_png() -> Vec<u8> {
    let mut png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png, 2, 2);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&[0, 255, 255, 0]).unwrap();
    }
    png
}

/// A 16x16 baseline JPEG.
pub fn tiny_jpeg() -> Vec<u8> {
    include_bytes!("../../data/tiny.jpg").to_vec()
}

impl TestServer {
    /// Sets the names asked for on a rekey order.
    pub async fn rekey_names(&self, person: &Person, order: &str, given_name: &str, surname: &str) -> (u16, Value) {
        self.post(
            &format!("/api/v1/orders/{order}/personal-data"),
            Some(&person.token),
            json!({"given_name": given_name, "surname": surname}),
        )
        .await
    }

    /// Uploads an identity document copy for a rekey order.
    pub async fn rekey_document(&self, person: &Person, order: &str, content_type: &str, data: &[u8]) -> (u16, Value) {
        self.post(
            &format!("/api/v1/orders/{order}/identity-document"),
            Some(&person.token),
            json!({"content_type": content_type, "data": super::b64(data)}),
        )
        .await
    }

    /// Submits the rekey with the person's next code.
    pub async fn submit_rekey(&self, person: &Person, credential: &str, order: &str) -> (u16, Value) {
        let otp = self.person_otp(person);
        self.post(
            &format!("/api/v1/credentials/{credential}/rekey"),
            Some(&person.token),
            json!({"order_id": order, "otp": otp}),
        )
        .await
    }

    /// An operator's decision on an identity check (of any kind).
    pub async fn operator_decides(&self, check: &str, decision: &str, reasons: &[&str]) -> (u16, Value) {
        self.post(
            &format!("/api/admin/v1/identity-checks/{check}/decision"),
            Some(&self.operator_key()),
            json!({"decision": decision, "reasons": reasons}),
        )
        .await
    }

    /// The person's credentials as the lifecycle API lists them.
    pub async fn credentials_of(&self, person: &Person) -> Vec<Value> {
        let (status, body) = self.get("/api/v1/credentials", Some(&person.token)).await;
        assert_eq!(status, 200, "credentials: {body}");
        body["credentials"].as_array().unwrap().clone()
    }
}

impl TestServer {
    /// Like `certified_person`, with the person's own names in the certificate.
    pub async fn certified_named(&self, email: &str, phone: &str, given_name: &str, surname: &str) -> (Person, Value) {
        let user_id = self.register_as(given_name, surname, email, phone, None).await;
        let mut person = self.activate(email, phone, user_id).await;
        let credential = self.certify(&mut person).await;
        (person, credential)
    }

    /// Audit records of `event` about `user_id`.
    pub async fn audit_events(&self, event: &str, user_id: &str) -> Vec<Value> {
        let (status, body) = self.get("/api/admin/v1/audit?limit=500", Some(&self.operator_key())).await;
        assert_eq!(status, 200, "audit: {body}");
        body["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["event"] == event && r["user_id"] == user_id)
            .cloned()
            .collect()
    }

    /// Private keys on the server's token (CA keys included).
    pub fn private_keys_on_token(&self) -> usize {
        self.services().keystore.private_key_count().unwrap()
    }
}
